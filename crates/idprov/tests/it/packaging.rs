//! The systemd unit and example configuration in `packaging/`: the unit
//! passes `systemd-analyze verify`, the example configuration is valid, and
//! the server runs as the unit runs it: an unprivileged user of its own,
//! umask 077, no new privileges, the state directory it is given, the
//! configuration from `IDPROV_CONFIG`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{idprov, is_root, require, skip, stderr};

fn packaging(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging")
        .join(name)
}

fn unit_value(key: &str) -> Vec<String> {
    std::fs::read_to_string(packaging("idprov.service"))
        .expect("unit file")
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_unit_file_verifies_and_is_hardened() {
    for (key, value) in [
        ("User", "idprov"),
        ("StateDirectory", "idprov"),
        ("StateDirectoryMode", "0700"),
        ("NoNewPrivileges", "yes"),
        ("UMask", "0077"),
        ("ProtectSystem", "strict"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(unit_value(key), vec![value.to_owned()], "{key}");
    }
    if !require(&["systemd-analyze"], "systemd") {
        return;
    }
    // verify checks that ExecStart's program exists: point it at this build.
    let tmp = tempfile::tempdir().expect("tempdir");
    let unit = std::fs::read_to_string(packaging("idprov.service"))
        .expect("unit")
        .replace("/usr/local/bin/idprov", env!("CARGO_BIN_EXE_idprov"));
    let path = tmp.path().join("idprov.service");
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    let text = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
    // Unknown or misspelt keys are only warnings: any line about our unit fails.
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("idprov")).collect();
    assert!(out.status.success() && ours.is_empty(), "{text}");
}

#[test]
fn the_example_configuration_is_valid() {
    let raw = idprov_server::config::read(Some(&packaging("idprov.toml"))).expect("parses");
    let config = raw.validate().expect("valid");
    assert_eq!(config.data_dir, Path::new("/var/lib/idprov"));
}

#[test]
fn the_server_runs_as_its_own_unprivileged_user() {
    if !is_root() {
        skip("running as another user needs root");
        return;
    }
    if !require(&["setpriv"], "util-linux") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // The build directory may not be reachable by nobody: a copy is.
    let bin = tmp.path().join("idprov");
    std::fs::copy(env!("CARGO_BIN_EXE_idprov"), &bin).expect("copy binary");
    // systemd's StateDirectory: created 0700 and owned by the service user.
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).expect("chown");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            "sh",
            "-c",
            "umask 077; exec \"$0\" \"$@\"",
        ])
        .arg(&bin)
        .args([
            "serve",
            "--no-dns-sd",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&state)
        .env("IDPROV_CONFIG", packaging("idprov.toml"))
        .env("HOME", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("server starts");
    // The administrator (root) manages it with the files it created.
    let server = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let added = loop {
        let out = idprov(
            &[
                "oob",
                "add",
                "unit-1",
                "--server",
                &server,
                "--data-dir",
                state.to_str().expect("path"),
            ],
            None,
        );
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        if child.try_wait().expect("wait").is_some() {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    let mut log = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut log);
    }
    assert!(added.status.success(), "{}\n{log}", stderr(&added));
    assert!(status.success(), "clean exit on SIGTERM: {status:?}\n{log}");
    for entry in std::fs::read_dir(&state).expect("state") {
        let entry = entry.expect("entry");
        let meta = entry.metadata().expect("metadata");
        assert_eq!(
            meta.uid(),
            65534,
            "{:?} belongs to the service user",
            entry.file_name()
        );
        let name = entry.file_name().into_string().expect("name");
        if name.ends_with(".key") || name.starts_with("idprov.") {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        }
    }
}

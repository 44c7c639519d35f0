//! `idprov serve` as a process: first start, later start, signals, config errors.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{idprov, stderr};

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn spawn_server(data_dir: &std::path::Path, port: u16) -> Child {
    spawn_server_with(data_dir, port, None, &[])
}

/// `idprov serve` on 127.0.0.1:`port`, with a configuration file and extra
/// environment variables if given.
pub(crate) fn spawn_server_with(
    data_dir: &std::path::Path,
    port: u16,
    config: Option<&std::path::Path>,
    env: &[(&str, &str)],
) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idprov"));
    cmd.args([
        "serve",
        "--no-dns-sd",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data_dir)
    .env("HOME", std::env::temp_dir())
    .env("XDG_CONFIG_HOME", "/nonexistent-config-home")
    .env_remove("IDPROV_CONFIG")
    .envs(env.iter().copied())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.spawn().expect("server starts")
}

pub(crate) fn wait_ready(data_dir: &std::path::Path, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = idprov(
            &[
                "oob",
                "list",
                "--server",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
                data_dir.to_str().expect("path"),
            ],
            None,
        );
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server not ready: {}",
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn stop(mut child: Child) -> String {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let status = child.wait().expect("wait");
    let mut err = String::new();
    use std::io::Read;
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "clean exit on SIGTERM: {status:?}\n{err}");
    err
}

#[test]
fn serve_starts_from_nothing_and_reuses_its_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("state");
    let port = free_port();
    let child = spawn_server(&data, port);
    wait_ready(&data, port);
    let log = stop(child);
    assert!(log.contains("generated a new CA"), "{log}");
    for f in [
        "ca.pem",
        "ca.key",
        "server.pem",
        "server.key",
        "admin.pem",
        "admin.key",
        "idprov.db",
    ] {
        assert!(data.join(f).exists(), "{f}");
    }
    let ca = std::fs::read(data.join("ca.pem")).expect("read");
    let child = spawn_server(&data, port);
    wait_ready(&data, port);
    let log = stop(child);
    assert!(!log.contains("generated a new CA"), "{log}");
    assert_eq!(
        std::fs::read(data.join("ca.pem")).expect("read"),
        ca,
        "the CA is reused"
    );
}

#[test]
fn configuration_errors_name_the_key_and_exit_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("idprov.toml");
    std::fs::write(&config, "[certificates]\ndevice_validity = \"0s\"\n").expect("write");
    let state = tmp.path().join("state");
    let state = state.to_str().expect("path");
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--no-dns-sd",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            state,
        ];
        args.extend_from_slice(extra);
        idprov(&args, None)
    };
    let out = serve(&["--config", config.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("certificates.device_validity"),
        "{}",
        stderr(&out)
    );

    std::fs::write(&config, "listen = 5\n").expect("write");
    let out = idprov(
        &[
            "serve",
            "--no-dns-sd",
            "--data-dir",
            state,
            "--config",
            config.to_str().expect("path"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("listen"), "{}", stderr(&out));

    let out = serve(&["--config", "/nonexistent/idprov.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn environment_variables_override_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("idprov.toml");
    std::fs::write(&config, "[certificates]\ndevice_validity = \"7d\"\n").expect("write");
    // SAFETY of the environment: the variable is set for the child only.
    let mut child = Command::new(env!("CARGO_BIN_EXE_idprov"))
        .args([
            "serve",
            "--no-dns-sd",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(tmp.path().join("state"))
        .arg("--config")
        .arg(&config)
        .env("IDPROV_CERTIFICATES__DEVICE_VALIDITY", "nonsense")
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nonsense") && err.contains("device_validity"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_on_every_request_line_and_never_a_secret() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("state");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_idprov"))
        .args([
            "serve",
            "--no-dns-sd",
            "--log-format",
            "json",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env("HOME", std::env::temp_dir())
        .env("XDG_CONFIG_HOME", "/nonexistent-config-home")
        .env_remove("IDPROV_CONFIG")
        // Our crates at their most verbose: a secret must not appear even there.
        .env(
            "RUST_LOG",
            "info,idprov=trace,idprov_server=trace,idprov_store=trace,idprov_ca=trace",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("server starts");
    tokio::task::block_in_place(|| wait_ready(&data, port));
    let server = format!("127.0.0.1:{port}");
    let dir = data.to_str().expect("path");
    const SECRET: &str = "log-probe-Secret-8472";
    const IMPORTED: &str = "imported-Secret-5531";
    let out = tokio::task::block_in_place(|| {
        idprov(
            &[
                "oob",
                "add",
                "log-1",
                "-",
                "--server",
                &server,
                "--data-dir",
                dir,
            ],
            Some(&format!("{SECRET}\n")),
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = tmp.path().join("rows.csv");
    std::fs::write(&csv, format!("deviceID,secret\nlog-2,{IMPORTED}\n")).expect("csv");
    let out = tokio::task::block_in_place(|| {
        idprov(
            &[
                "oob",
                "import",
                csv.to_str().expect("path"),
                "--server",
                &server,
                "--data-dir",
                dir,
            ],
            None,
        )
    });
    assert!(out.status.success(), "{}", stderr(&out));

    let client = idprov_testkit::http_client(
        idprov_client::Credentials {
            ca_pem: std::fs::read_to_string(data.join("ca-chain.pem")).expect("CA"),
            cert_pem: None,
            key_pem: None,
        }
        .client_config()
        .expect("TLS"),
    );
    let device = idprov_testkit::TestDevice::new("log-1");
    let mut ids = Vec::new();
    for secret in ["a-wrong-guess", SECRET] {
        let r = client
            .post(format!("https://{server}/idprov/provreq"))
            .body(device.request(Some(secret)).to_json())
            .send()
            .await
            .expect("provisioning request");
        assert_eq!(r.status(), 200);
        ids.push(
            r.headers()["x-request-id"]
                .to_str()
                .expect("ASCII")
                .to_owned(),
        );
    }
    let log = tokio::task::block_in_place(move || stop(child));
    assert!(
        !log.contains(SECRET) && !log.contains(IMPORTED),
        "a secret was logged"
    );
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &lines {
        assert!(
            line["level"].is_string() && line["timestamp"].is_string(),
            "{line}"
        );
        if let Some(span) = line.get("span") {
            assert!(
                span["request_id"].is_string(),
                "a request line without its ID: {line}"
            );
        }
    }
    for id in &ids {
        let of_request: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["span"]["request_id"] == id.as_str())
            .collect();
        assert!(
            of_request.iter().any(|l| l["message"] == "request handled"),
            "request {id} has no log line"
        );
    }
}

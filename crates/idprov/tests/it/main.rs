//! Tests of the `idprov` binary: the real executable against a real server.

mod admin;
mod administration;
mod attacks;
mod backup;
mod crash;
mod db;
mod est;
mod listing;
mod mosquitto;
mod netns;
mod packaging;
mod readme;
mod revocation;
mod serve;

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `idprov ARGS`, feeding `stdin`; returns its output.
pub fn idprov(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idprov"))
        .args(args)
        .env_remove("IDPROV_SERVER")
        .env_remove("IDPROV_CONFIG")
        .env("HOME", std::env::temp_dir())
        .env("XDG_CONFIG_HOME", "/nonexistent-config-home")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("idprov runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    // Drain both pipes while waiting, or a large output would block the child.
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out_pipe, &mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err_pipe, &mut buf);
        buf
    });
    // Never hang a test run: a command that should have failed but started a
    // server instead is killed after a minute (and the test fails on its code).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// True when `cmd` is on the PATH.
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// True when every one of `cmds` is on the PATH; otherwise [`skip`]s,
/// naming the Debian `packages` test.sh installs.
pub fn require(cmds: &[&str], packages: &str) -> bool {
    cmds.iter().all(|c| have(c)) || skip(&format!("{packages} not installed"))
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// A test that cannot run here because of `why`: under `CI=true` (where
/// ./test.sh installed everything and runs as root) that fails it; else it
/// says it skips. Always false, for `if !… { return; }`.
pub fn skip(why: &str) -> bool {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "required in CI: {why}"
    );
    eprintln!("skipping: {why}");
    false
}

/// A loopback port free a moment ago (for a program that binds it itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Waits (up to 20 s) until something listens on loopback `port`; fails
/// with `why()` otherwise.
pub fn wait_for_port(port: u16, why: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{}", why());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

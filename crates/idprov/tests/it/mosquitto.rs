//! A real service accepts the certificate: Debian's mosquitto, requiring
//! client certificates from our CA, lets a device provisioned by our agent
//! connect and publish, and refuses a certificate from another CA; reading
//! our CRL file, it refuses a revoked device after a SIGHUP — sent by hand,
//! or by the server's `crl.on_publish` hook.
//!
//! Needs mosquitto and mosquitto-clients; skipped otherwise, except under
//! `CI=true`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use idprov_ca::{IssueParams, KeyAlgorithm, Usage};
use idprov_testkit::{Setup, TestServer};

use crate::{free_port, idprov, require, stderr, wait_for_port};

pub(crate) struct Broker(Child);

impl Broker {
    /// Makes the broker reread its files (the CRL) with SIGHUP, and gives
    /// it a moment to do so.
    pub(crate) fn reload(&self) {
        let _ = Command::new("kill")
            .args(["-HUP", &self.0.id().to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(500));
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// True, after saying so, when mosquitto and its clients are missing and
/// the test should stop; under `CI=true` their absence fails the test.
pub(crate) fn mosquitto_missing() -> bool {
    !require(
        &["mosquitto", "mosquitto_pub", "mosquitto_sub"],
        "mosquitto and mosquitto-clients",
    )
}

/// Starts mosquitto on a free loopback port with the broker's `cert` and
/// `key`, requiring client certificates that chain to `ca` (and, with
/// `crl`, are not on that CRL); returns once it listens.
pub(crate) fn start_broker(
    dir: &Path,
    ca: &Path,
    cert: &Path,
    key: &Path,
    crl: Option<&Path>,
) -> (Broker, u16) {
    let port = free_port();
    let conf = dir.join(format!("mosquitto-{port}.conf"));
    let crl = crl.map_or(String::new(), |c| format!("crlfile {}\n", c.display()));
    std::fs::write(
        &conf,
        format!(
            "user root\npersistence false\nlog_dest stderr\nlistener {port} 127.0.0.1\n\
             cafile {}\ncertfile {}\nkeyfile {}\n{crl}require_certificate true\n\
             use_identity_as_username true\nallow_anonymous false\n",
            ca.display(),
            cert.display(),
            key.display(),
        ),
    )
    .expect("write");
    let broker = Broker(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts"),
    );
    wait_for_port(port, || "mosquitto did not start".into());
    (broker, port)
}

pub(crate) fn publish(
    port: u16,
    ca: &str,
    cert: &str,
    key: &str,
    message: &str,
) -> std::process::Output {
    Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--cafile",
            ca,
            "--cert",
            cert,
            "--key",
            key,
        ])
        .args(["-t", "idprov/test", "-m", message, "-q", "1"])
        .output()
        .expect("mosquitto_pub runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_accepts_a_provisioned_device_and_refuses_another_ca() {
    if mosquitto_missing() {
        return;
    }
    let server = TestServer::start().await;
    let dir = server.temp_dir().to_owned();

    // The device, provisioned by our agent with a secret from the admin tool.
    let secret = dir.join("secret");
    std::fs::write(&secret, "mosquitto-device-secret\n").expect("write");
    let data = server.data_dir();
    let dev = dir.join("device");
    let (server_arg, data_s, dev_s, secret_s) = (
        server.server_arg(),
        data.to_str().expect("p").to_owned(),
        dev.to_str().expect("p").to_owned(),
        secret.to_str().expect("p").to_owned(),
    );
    tokio::task::block_in_place(|| {
        let out = idprov(
            &[
                "oob",
                "add",
                "sensor-mqtt",
                "--secret-file",
                &secret_s,
                "--server",
                &server_arg,
                "--data-dir",
                &data_s,
            ],
            None,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let out = idprov(
            &[
                "device",
                "provision",
                "--id",
                "sensor-mqtt",
                "--secret-file",
                &secret_s,
                "--server",
                &server_arg,
                "--dir",
                &dev_s,
            ],
            None,
        );
        assert!(out.status.success(), "{}", stderr(&out));
    });

    // The broker: a server certificate from our CA, client certificates required.
    let (broker_cert, broker_key) = server.issue_loopback_server_cert("mqtt-broker");
    std::fs::write(dir.join("broker.pem"), &broker_cert).expect("write");
    std::fs::write(dir.join("broker.key"), broker_key.as_bytes()).expect("write");
    let ca = data.join("ca-chain.pem");
    let (_broker, port) = start_broker(
        &dir,
        &ca,
        &dir.join("broker.pem"),
        &dir.join("broker.key"),
        None,
    );

    let cert = dev.join("current/cert.pem");
    let key = dev.join("current/key.pem");
    let ca_s = ca.to_str().expect("p");
    // A subscriber with the device's own certificate sees what it publishes.
    let sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--cafile", ca_s])
        .args([
            "--cert",
            cert.to_str().expect("p"),
            "--key",
            key.to_str().expect("p"),
        ])
        .args(["-t", "idprov/test", "-C", "1", "-W", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub runs");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = publish(
        port,
        ca_s,
        cert.to_str().expect("p"),
        key.to_str().expect("p"),
        "hello from sensor-mqtt",
    );
    assert!(
        out.status.success(),
        "publish refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let received = tokio::task::block_in_place(|| sub.wait_with_output()).expect("subscriber");
    assert_eq!(
        String::from_utf8_lossy(&received.stdout).trim(),
        "hello from sensor-mqtt"
    );

    // A certificate from another CA is refused by the broker.
    let rogue = idprov_ca::Ca::generate(
        "rogue",
        KeyAlgorithm::EcdsaP256,
        std::time::SystemTime::now(),
        Duration::from_secs(86_400),
    )
    .expect("rogue CA");
    let (rogue_cert, rogue_key) = rogue
        .ca
        .issue_with_new_key(
            KeyAlgorithm::EcdsaP256,
            IssueParams {
                common_name: "sensor-mqtt",
                organizational_unit: "iotdevice",
                organization: "rogue",
                usage: Usage::Client,
                now: std::time::SystemTime::now(),
                validity: Duration::from_secs(3600),
                crl_url: None,
                ocsp_url: None,
            },
        )
        .expect("rogue certificate");
    std::fs::write(dir.join("rogue.pem"), &rogue_cert.pem).expect("write");
    std::fs::write(dir.join("rogue.key"), &rogue_key).expect("write");
    let out = publish(
        port,
        ca_s,
        dir.join("rogue.pem").to_str().expect("p"),
        dir.join("rogue.key").to_str().expect("p"),
        "should not arrive",
    );
    assert!(
        !out.status.success(),
        "a certificate from another CA must be refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_reading_our_crl_refuses_a_revoked_device_after_sighup() {
    revoked_device_refused_by_mosquitto(false).await;
}

/// `crl.on_publish` reloads the broker: no SIGHUP by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crl_hook_reloads_mosquitto_which_then_refuses_the_revoked_device() {
    revoked_device_refused_by_mosquitto(true).await;
}

/// A device accepted by a broker reading `crl.pem`, revoked with the CLI,
/// then refused once the broker rereads the file: after a SIGHUP sent by
/// the test, or — with `hook` — sent by the server's `crl.on_publish`
/// command (the README's configuration line).
async fn revoked_device_refused_by_mosquitto(hook: bool) {
    if mosquitto_missing() {
        return;
    }
    let server = if hook {
        TestServer::start_with(Setup {
            configure: Box::new(|c| {
                let pid_file = c.data_dir.with_file_name("broker.pid");
                c.crl_on_publish = Some(format!("kill -HUP \"$(cat '{}')\"", pid_file.display()));
            }),
            ..Setup::default()
        })
        .await
    } else {
        TestServer::start().await
    };
    let dir = server.temp_dir().to_owned();
    let data = server.data_dir();
    let (server_arg, data_s, dir_s) = (
        server.server_arg(),
        data.to_str().expect("p").to_owned(),
        dir.to_str().expect("p").to_owned(),
    );
    std::fs::write(dir.join("secret"), "crl-device-secret\n").expect("write");
    let secret_s = dir.join("secret").to_str().expect("p").to_owned();
    let dev_s = dir.join("device").to_str().expect("p").to_owned();
    tokio::task::block_in_place(|| {
        for args in [
            vec![
                "oob",
                "add",
                "crl-device",
                "--secret-file",
                &secret_s,
                "--server",
                &server_arg,
                "--data-dir",
                &data_s,
            ],
            vec![
                "device",
                "provision",
                "--id",
                "crl-device",
                "--secret-file",
                &secret_s,
                "--server",
                &server_arg,
                "--dir",
                &dev_s,
            ],
            // The broker's own certificate, issued with our tool.
            vec![
                "certs",
                "issue",
                "--ou",
                "service",
                "--cn",
                "broker",
                "--san",
                "127.0.0.1",
                "--out",
                &dir_s,
                "--server",
                &server_arg,
                "--data-dir",
                &data_s,
            ],
        ] {
            let out = idprov(&args, None);
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        }
    });
    let ca = data.join("ca-chain.pem");
    let (broker, port) = start_broker(
        &dir,
        &ca,
        &dir.join("broker.pem"),
        &dir.join("broker.key"),
        Some(&data.join("crl.pem")),
    );
    std::fs::write(dir.join("broker.pid"), broker.0.id().to_string()).expect("pid file");
    let cert = dir.join("device/current/cert.pem");
    let key = dir.join("device/current/key.pem");
    let ca_s = ca.to_str().expect("p");
    let device_publishes = |message: &str| {
        publish(
            port,
            ca_s,
            cert.to_str().expect("p"),
            key.to_str().expect("p"),
            message,
        )
        .status
        .success()
    };
    assert!(device_publishes("before"), "accepted before revocation");

    tokio::task::block_in_place(|| {
        let out = idprov(
            &[
                "devices",
                "revoke",
                "crl-device",
                "--reason",
                "keyCompromise",
                "--server",
                &server_arg,
                "--data-dir",
                &data_s,
            ],
            None,
        );
        assert!(out.status.success(), "{}", stderr(&out));
    });
    if !hook {
        // The broker rereads its CRL file on SIGHUP.
        broker.reload();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while device_publishes("after") {
        assert!(
            Instant::now() < deadline,
            "the revoked certificate must be refused once the broker reloaded"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The broker is up and still accepts a certificate that is not revoked.
    let out = publish(
        port,
        ca_s,
        dir.join("broker.pem").to_str().expect("p"),
        dir.join("broker.key").to_str().expect("p"),
        "still up",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! The agent: provision, renew at 45–55%, fall back to the OOB path, wait.
//! Time is the test server's injected clock, shared with the agent, so the
//! test steps it instead of sleeping.

use std::time::Duration;

use idprov_client::device::{AgentOptions, DeviceOptions, ServerTarget, leaf_of_pem, run};
use idprov_proto::{DeviceId, OobSecret};
use idprov_testkit::{TestServer, capture_logs, captured_logs};
use tokio::sync::watch;

fn serial_in(dir: &std::path::Path) -> Option<idprov_proto::SerialNumber> {
    let pem = std::fs::read_to_string(dir.join("current/cert.pem")).ok()?;
    leaf_of_pem(&pem).ok().map(|l| l.serial)
}

/// A device of the test server, `id` with `secret`, in a directory of its
/// own (returned), on the server's clock.
fn device(server: &TestServer, id: &str, secret: &str) -> (DeviceOptions, std::path::PathBuf) {
    let dir = server.temp_dir().join(id);
    let mut opts = DeviceOptions::new(DeviceId::parse(id).expect("id"), dir.clone());
    opts.secret = Some(OobSecret::parse(secret).expect("secret"));
    opts.server = ServerTarget::Address(server.server_arg());
    opts.clock = server.clock.clone();
    (opts, dir)
}

/// The agent's pace in tests: polls every 20 ms.
fn pace() -> AgentOptions {
    AgentOptions {
        poll: Duration::from_millis(20),
        ..AgentOptions::default()
    }
}

/// Waits (real time, bounded) until `f` holds.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_provisions_renews_and_recovers_from_expiry() {
    capture_logs();
    let server = TestServer::start().await;
    let (opts, dir) = device(&server, "agent-1", "agent-secret-1");
    let (stop, stopped) = watch::channel(false);
    let agent = tokio::spawn(run(opts, pace(), stopped));

    // No secret yet: the agent waits, then provisions once it is registered.
    eventually("a waiting request", || {
        captured_logs().contains("waiting for the server")
    })
    .await;
    server.add_secret("agent-1", "agent-secret-1").await;
    server.clock.advance(Duration::from_secs(70));
    eventually("the first certificate", || serial_in(&dir).is_some()).await;
    let first = serial_in(&dir).expect("serial");

    // Half-way through the 30-day validity it renews over mutual TLS.
    server.clock.advance(Duration::from_secs(13 * 86_400));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        serial_in(&dir).as_ref().map(|s| s.as_str()),
        Some(first.as_str()),
        "not before 45%"
    );
    server.clock.advance(Duration::from_secs(4 * 86_400));
    eventually("a renewed certificate", || {
        serial_in(&dir).is_some_and(|s| s != first)
    })
    .await;
    let renewed = serial_in(&dir).expect("serial");
    let history = server
        .registry()
        .certificates_of(idprov_store::CertKind::Device, "agent-1")
        .await
        .expect("history");
    assert_eq!(history[0].issue_kind, idprov_store::IssueKind::Renewal);

    // The certificate expires while the device is off; it goes back to the
    // OOB path, which waits (the secret was used) until it is re-registered.
    server.clock.advance(Duration::from_secs(31 * 86_400));
    eventually("the re-register hint", || {
        captured_logs().contains("re-register or approve device agent-1")
    })
    .await;
    server.add_secret("agent-1", "agent-secret-1").await;
    server.clock.advance(Duration::from_secs(120));
    eventually("a certificate after expiry", || {
        serial_in(&dir).is_some_and(|s| s != renewed)
    })
    .await;

    let _ = stop.send(true);
    agent.await.expect("join").expect("agent stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_renewal_retries_once_without_the_certificate() {
    capture_logs();
    let server = TestServer::start().await;
    server.add_secret("agent-2", "agent-secret-2").await;
    let (opts, dir) = device(&server, "agent-2", "agent-secret-2");
    let (stop, stopped) = watch::channel(false);
    let agent = tokio::spawn(run(opts, pace(), stopped));
    eventually("the first certificate", || serial_in(&dir).is_some()).await;
    // An administrator revokes it.
    let serial = serial_in(&dir).expect("serial");
    server
        .admin()
        .revoke_device(
            "agent-2",
            &idprov_proto::admin::RevokeRequest {
                reason: Some("keyCompromise".into()),
                note: None,
                serial: Some(serial.to_string()),
            },
        )
        .await
        .expect("revoked");
    // Past 55% of the 30-day validity: the renewal is due whatever fraction was drawn.
    server.clock.advance(Duration::from_secs(17 * 86_400));
    eventually("the fallback", || {
        let logs = captured_logs();
        logs.contains("renewal with the certificate failed; retrying once without it")
            && logs.contains("re-register or approve device agent-2")
    })
    .await;
    let _ = stop.send(true);
    agent.await.expect("join").expect("agent stops cleanly");
}

/// A v2 agent (a label idprov:2): first contact over idprov v2 with a
/// v2-only registration, then renewal over mutual TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_agent_provisions_over_v2_and_renews_over_mutual_tls() {
    capture_logs();
    let server = TestServer::start().await;
    server.add_v2_only("agent-v2", "20461").await;
    let (mut opts, dir) = device(&server, "agent-v2", "20461");
    opts.ca_fingerprint = Some(server.ca().fingerprint());
    opts.v2 = true;
    let (stop, stopped) = watch::channel(false);
    let agent = tokio::spawn(run(opts, pace(), stopped));
    eventually("the first certificate", || serial_in(&dir).is_some()).await;
    let first = serial_in(&dir).expect("serial");
    server.clock.advance(Duration::from_secs(17 * 86_400));
    eventually("a renewed certificate", || {
        serial_in(&dir).is_some_and(|s| s != first)
    })
    .await;
    let history = server
        .registry()
        .certificates_of(idprov_store::CertKind::Device, "agent-v2")
        .await
        .expect("history");
    assert_eq!(history[0].issue_kind, idprov_store::IssueKind::Renewal);
    assert_eq!(history[1].issue_kind, idprov_store::IssueKind::Oob);
    let _ = stop.send(true);
    agent.await.expect("join").expect("agent stops cleanly");
    assert!(
        captured_logs().contains("idprov v2: the server proved it holds this device's verifier")
    );
}

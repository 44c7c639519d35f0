//! idprov v2 first contact (SPAKE2+, PROTOCOL.md §11): the device library
//! against the real server, and a hand-driven run for what an honest
//! device never does (a relay over a second TLS connection).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use idprov_client::device::{Device, DeviceError, DeviceOptions, Outcome};
use idprov_proto::clock::Clock as _;
use idprov_proto::v2::{
    self, Binding, FinishRequest, ParamsRequest, ParamsResponse, SeededRng, StartRequest,
    StartResponse,
};
use idprov_proto::{ProvisionRequest, ProvisionResponse};
use idprov_testkit::{Setup, TestDevice, TestServer};

/// A v2 device pinned to the server's CA.
fn options(server: &TestServer, id: &str, secret: &str) -> DeviceOptions {
    let mut o = crate::options(server, id, Some(secret));
    o.ca_fingerprint = Some(server.ca().fingerprint());
    o.v2 = true;
    o
}

#[tokio::test]
async fn a_v2_only_registration_provisions_over_v2_and_never_over_v1() {
    let server = TestServer::start().await;
    // A six-digit PIN: what v2 makes safe to print.
    server.add_v2_only("d-pake", "493817").await;
    let live = server
        .registry()
        .live_secret("d-pake", idprov_proto::UnixTime::from(server.clock.now()))
        .await
        .expect("read")
        .expect("registered");
    assert!(live.sealed.is_empty(), "no form of the secret is kept");
    assert!(live.pake.is_some(), "the verifier is");

    // v1 with the right secret: refused, and the registration stays.
    let mut v1 = options(&server, "d-pake", "493817");
    v1.v2 = false;
    let mut v1 = Device::open(v1).expect("open");
    assert!(matches!(
        v1.provision(false).await.expect("attempt"),
        Outcome::Rejected(_)
    ));
    assert!(v1.current().expect("read").is_none());

    let mut device = Device::open(options(&server, "d-pake", "493817")).expect("open");
    let Outcome::Approved(installed) = device.provision(false).await.expect("attempt") else {
        panic!("expected Approved");
    };
    assert_eq!(installed.verified_with, "v2 session key");
    let (_, leaf) = device.current().expect("read").expect("installed");
    assert_eq!(leaf.common_names, vec!["d-pake"]);
    // Consumed: the registration is gone, and the source's count cleared.
    let now = idprov_proto::UnixTime::from(server.clock.now());
    assert!(
        server
            .registry()
            .live_secret("d-pake", now)
            .await
            .expect("read")
            .is_none()
    );
    let lock = server
        .registry()
        .lockout("d-pake", "127.0.0.1")
        .await
        .expect("read");
    assert!(lock.is_none_or(|l| l.failures == 0), "{lock:?}");
    // Renewal is v1 over mutual TLS, as before.
    let Outcome::Approved(renewed) = device.provision(true).await.expect("renewal") else {
        panic!("expected Approved");
    };
    assert_eq!(renewed.verified_with, "empty key");
}

#[tokio::test]
async fn a_default_registration_serves_v1_and_v2() {
    let server = TestServer::start().await;
    server.add_secret("d-both", "default-registration").await;
    let mut device =
        Device::open(options(&server, "d-both", "default-registration")).expect("open");
    let Outcome::Approved(installed) = device.provision(false).await.expect("attempt") else {
        panic!("expected Approved");
    };
    assert_eq!(installed.verified_with, "v2 session key");
}

#[tokio::test]
async fn a_wrong_v2_secret_is_refused_and_counted_as_a_guess() {
    let server = TestServer::start().await;
    server.add_v2_only("d-guess", "493817").await;
    let mut device = Device::open(options(&server, "d-guess", "493818")).expect("open");
    for n in 1..=2u32 {
        let err = device.provision(false).await.expect_err("wrong secret");
        assert!(matches!(err, DeviceError::PakeFailed), "{err}");
        let lock = server
            .registry()
            .lockout("d-guess", "127.0.0.1")
            .await
            .expect("read")
            .expect("counted");
        assert_eq!(lock.failures, n);
        let budget = server
            .registry()
            .guess_budget("d-guess")
            .await
            .expect("read")
            .expect("budget");
        assert_eq!(budget.failures, n);
    }
    assert!(device.current().expect("read").is_none());
    // The registration is still there for the right secret.
    let mut right = Device::open(options(&server, "d-guess", "493817")).expect("open");
    assert!(matches!(
        right.provision(false).await.expect("attempt"),
        Outcome::Approved(_)
    ));
}

#[tokio::test]
async fn unknown_devices_get_parameters_like_registered_ones() {
    let server = TestServer::start().await;
    server.add_secret("d-known", "a-default-secret").await;
    let client = server.http();
    let mut answers = Vec::new();
    for id in ["d-known", "d-unknown", "d-unknown"] {
        let resp = client
            .post(server.url(v2::PARAMS_PATH))
            .body(
                ParamsRequest {
                    device_id: id.into(),
                }
                .to_json(),
            )
            .send()
            .await
            .expect("params");
        assert_eq!(resp.status(), 200);
        answers.push(ParamsResponse::from_json(&resp.bytes().await.expect("body")).expect("parse"));
    }
    assert_eq!(answers[0].iterations, answers[1].iterations);
    assert_eq!(answers[0].salt.len(), answers[1].salt.len());
    assert_ne!(answers[0].salt, answers[1].salt);
    assert_eq!(answers[1], answers[2], "stable for one device ID");
}

/// One HTTP/1.1 connection over TLS 1.3 to the test server.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    exporter: [u8; 32],
}

async fn conn(server: &TestServer) -> Conn {
    let mut config = server.tls_config(None);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("tcp");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").expect("name"),
            tcp,
        )
        .await
        .expect("tls");
    let exporter = tls
        .get_ref()
        .1
        .export_keying_material([0u8; 32], v2::EXPORTER_LABEL, None)
        .expect("exporter");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("http");
    tokio::spawn(connection);
    Conn { sender, exporter }
}

async fn post(c: &mut Conn, path: &str, body: Vec<u8>) -> (u16, Bytes) {
    c.sender.ready().await.expect("ready");
    let resp = c
        .sender
        .send_request(
            hyper::Request::post(path)
                .header("host", "localhost")
                .body(Full::new(Bytes::from(body)))
                .expect("request"),
        )
        .await
        .expect("answer");
    let status = resp.status().as_u16();
    (
        status,
        resp.into_body().collect().await.expect("body").to_bytes(),
    )
}

/// A relay: the device's run is bound to connection A (the one it has with
/// whoever it talks to), and its messages reach the server over connection
/// B. The server's confirmation does not verify for the device, and the
/// device's confirmation is refused by the server, which counts it; a
/// finish on another connection than its start finds no run.
#[tokio::test]
async fn a_run_relayed_over_another_tls_connection_fails() {
    let server = TestServer::start().await;
    server.add_v2_only("d-relay", "493817").await;
    let mut a = conn(&server).await;
    let mut b = conn(&server).await;
    let (status, body) = post(
        &mut a,
        v2::PARAMS_PATH,
        ParamsRequest {
            device_id: "d-relay".into(),
        }
        .to_json(),
    )
    .await;
    assert_eq!(status, 200);
    let params = ParamsResponse::from_json(&body).expect("params");
    let secret = v2::derive(b"493817", "d-relay", &params).expect("derive");
    let ca = server.ca().fingerprint();
    let (prover, share_p) = v2::prover_start(
        &secret,
        &Binding::new("d-relay", &ca, &a.exporter),
        &mut SeededRng::new([3; 64]),
    );
    let (status, body) = post(
        &mut b,
        v2::START_PATH,
        StartRequest::new("d-relay", &share_p).to_json(),
    )
    .await;
    assert_eq!(status, 200);
    let (share_v, confirm_v) = StartResponse::from_json(&body).expect("start");
    assert!(
        matches!(
            prover.finish(&share_v, &confirm_v),
            Err(v2::V2Error::ConfirmationFailed)
        ),
        "the device sees the relay"
    );

    // A relay that goes on anyway, with what a device bound to B would
    // compute had it guessed right, still cannot finish on A.
    let (prover_b, share_p) = v2::prover_start(
        &secret,
        &Binding::new("d-relay", &ca, &b.exporter),
        &mut SeededRng::new([4; 64]),
    );
    let (_, body) = post(
        &mut b,
        v2::START_PATH,
        StartRequest::new("d-relay", &share_p).to_json(),
    )
    .await;
    let (share_v, confirm_v) = StartResponse::from_json(&body).expect("start");
    let (confirm_p, keys) = prover_b.finish(&share_v, &confirm_v).expect("bound to B");
    let device = TestDevice::new("d-relay");
    let request = ProvisionRequest {
        device_id: "d-relay".into(),
        ip: "<nil>".into(),
        mac: String::new(),
        public_key_pem: device.request(None).public_key_pem,
        signature: String::new(),
    };
    let finish = FinishRequest::new(request, &confirm_p, &keys).to_json();
    let (status, body) = post(&mut a, v2::FINISH_PATH, finish.clone()).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("no unfinished idprov v2 run"));
    // Each start was a guess, counted.
    let lock = server
        .registry()
        .lockout("d-relay", "127.0.0.1")
        .await
        .expect("read")
        .expect("counted");
    assert_eq!(lock.failures, 2);
    // On its own connection the run finishes, and the answer is signed
    // with the run's key.
    let (status, body) = post(&mut b, v2::FINISH_PATH, finish).await;
    assert_eq!(status, 200);
    let answer = ProvisionResponse::from_json(&body).expect("answer");
    assert_eq!(answer.status, idprov_proto::ProvisionStatus::Approved);
    assert!(answer.verify_v2(&keys));
}

#[tokio::test]
async fn a_v2_device_never_falls_back_to_v1() {
    let server = TestServer::start_with(Setup {
        configure: Box::new(|c| c.v2 = false),
        ..Setup::default()
    })
    .await;
    server.add_secret("d-nov2", "registered-for-v1").await;
    let dir = server.temp_dir().to_owned();
    let mut device = Device::open(options(&server, "d-nov2", "registered-for-v1")).expect("open");
    let err = device.provision(false).await.expect_err("no v2");
    assert!(matches!(err, DeviceError::NoV2(_)), "{err}");
    assert!(device.current().expect("read").is_none());
    // Nothing reached v1: the secret is unused, nothing is queued.
    let now = idprov_proto::UnixTime::from(server.clock.now());
    assert!(
        server
            .registry()
            .live_secret("d-nov2", now)
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        server
            .registry()
            .waiting_for("d-nov2")
            .await
            .expect("read")
            .is_empty()
    );
    // The directory does not advertise v2 either.
    let directory = server
        .http()
        .get(server.url("/idprov/directory"))
        .send()
        .await
        .expect("directory")
        .text()
        .await
        .expect("body");
    assert!(!directory.contains("pake"), "{directory}");
    drop(dir);
}

/// The independent Go implementation (tests/go/v2device, written from RFC
/// 9383 and PROTOCOL.md §11): RFC 9383's vectors, then a v2 run against
/// this server with a v2-only registration; a wrong secret stops at the
/// device's check of `confirmV`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_v2_device_passes_the_vectors_and_provisions() {
    let Some(binary) = idprov_testkit::build_go_program("v2device") else {
        return;
    };
    let out = std::process::Command::new(&binary)
        .arg("-vectors")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "vectors ok");

    let server = TestServer::start().await;
    server.add_v2_only("go-pake", "271828").await;
    let ca = server.temp_dir().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).expect("CA file");
    let run = |secret: &str| {
        let (binary, ca, server_arg) = (binary.clone(), ca.clone(), server.server_arg());
        let dir = server.temp_dir().join("go-pake");
        let secret = secret.to_owned();
        move || {
            std::process::Command::new(binary)
                .args(["-server", &server_arg, "-id", "go-pake", "-secret", &secret])
                .arg("-ca")
                .arg(ca)
                .arg("-dir")
                .arg(dir)
                .output()
                .expect("runs")
        }
    };
    let wrong = tokio::task::spawn_blocking(run("271829"))
        .await
        .expect("join");
    assert_eq!(
        wrong.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let ok = tokio::task::spawn_blocking(run("271828"))
        .await
        .expect("join");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let line = String::from_utf8_lossy(&ok.stdout).trim().to_owned();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[0], "Approved", "{line}");
    assert_eq!(fields[2], "go-pake");
    let certs = server
        .registry()
        .certificates_of(idprov_store::CertKind::Device, "go-pake")
        .await
        .expect("read");
    assert_eq!(certs.len(), 1);
}

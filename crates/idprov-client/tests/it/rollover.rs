//! A CA rollover as devices live it: one renews through the transition
//! and ends with the new CA's certificate and anchor; one offline through
//! the whole transition is told plainly and goes back to the OOB path.

use std::time::SystemTime;

use idprov_client::device::{Device, DeviceError, Outcome};
use idprov_proto::Fingerprint;
use idprov_proto::clock::Clock;
use idprov_server::cakeys;
use idprov_server::datadir::DataDir;
use idprov_testkit::TestServer;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::options;

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("PEM")
}

fn fingerprints(pem: &str) -> Vec<Fingerprint> {
    certs(pem).iter().map(|c| Fingerprint::of_der(c)).collect()
}

/// True when `chain` (leaf first) verifies for client auth with `anchor`
/// as the only trusted certificate.
fn verifies_with(
    chain: &[CertificateDer<'static>],
    anchor: &CertificateDer<'_>,
    now: SystemTime,
) -> bool {
    let anchors = [webpki::anchor_from_trusted_cert(anchor)
        .expect("anchor")
        .to_owned()];
    let leaf = webpki::EndEntityCert::try_from(&chain[0]).expect("leaf");
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &chain[1..],
        rustls_pki_types::UnixTime::since_unix_epoch(
            now.duration_since(SystemTime::UNIX_EPOCH).expect("time"),
        ),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .is_ok()
}

async fn stop_and(
    server: &mut TestServer,
    step: impl FnOnce(&idprov_server::ServerConfig, &DataDir),
) {
    server.stop().await;
    let dir = DataDir::open(&server.config.data_dir, true).expect("data directory");
    step(&server.config, &dir);
    drop(dir);
    server.restart().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_renews_through_a_rollover_and_one_offline_throughout_falls_back_to_oob() {
    let mut server = TestServer::start().await;
    server.add_secret("roll-a", "secret-of-roll-a").await;
    server.add_secret("roll-b", "secret-of-roll-b").await;
    let mut a = Device::open(options(&server, "roll-a", Some("secret-of-roll-a"))).expect("a");
    let mut b = Device::open(options(&server, "roll-b", Some("secret-of-roll-b"))).expect("b");
    for d in [&mut a, &mut b] {
        assert!(matches!(
            d.provision(false).await.expect("provision"),
            Outcome::Approved(_)
        ));
    }
    let old = server.ca().cert_der().clone();
    let old_fp = server.ca().fingerprint();

    // The rollover: a new CA issues, both are trusted.
    let now = server.clock.now();
    stop_and(&mut server, |config, dir| {
        cakeys::rollover(config, dir, now).expect("rollover");
    })
    .await;
    let new = server.ca().cert_der().clone();
    let new_fp = server.ca().fingerprint();
    assert_ne!(old_fp, new_fp);
    assert_eq!(
        server.ca().previous().expect("transition").fingerprint(),
        old_fp
    );
    // The directory and ca-chain.pem carry both.
    let chain = std::fs::read_to_string(server.data_dir().join("ca-chain.pem")).expect("chain");
    assert_eq!(fingerprints(&chain), vec![new_fp, old_fp]);
    let dir: serde_json::Value = server
        .http()
        .get(server.url("/idprov/directory"))
        .send()
        .await
        .expect("directory")
        .json()
        .await
        .expect("JSON");
    let ca_b64 = dir["caCert"].as_str().expect("caCert");
    use base64::Engine as _;
    let ca_text = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(ca_b64)
            .expect("base64"),
    )
    .expect("UTF-8");
    assert_eq!(fingerprints(&ca_text), vec![new_fp, old_fp]);
    // Cross-certificates both ways.
    for name in ["ca-cross-new-by-old.pem", "ca-cross-old-by-new.pem"] {
        assert!(server.data_dir().join(name).exists(), "{name}");
    }

    // The device renews over mutual TLS with its old-CA certificate, and
    // gets a certificate of the new CA with a chain its old anchor accepts.
    let Outcome::Approved(_) = a.provision(true).await.expect("renewal") else {
        panic!("renewal not approved");
    };
    let (set, leaf) = a.current().expect("read").expect("installed");
    let chain = certs(&set.cert_pem);
    assert!(
        verifies_with(&chain, &new, now),
        "the new anchor accepts it"
    );
    assert!(
        verifies_with(&chain, &old, now),
        "the old anchor accepts it (cross-certificate)"
    );
    assert!(
        !verifies_with(&chain[..1], &old, now),
        "not issued by the old CA itself"
    );
    assert!(
        fingerprints(&set.ca_pem).contains(&new_fp),
        "new anchor installed"
    );
    // Both CAs sign a CRL during the transition.
    let crl = std::fs::read_to_string(server.data_dir().join("crl.pem")).expect("crl");
    assert_eq!(crl.matches("BEGIN X509 CRL").count(), 2, "{crl}");
    let _ = leaf;

    // The transition ends: the old CA is retired, its key destroyed.
    let now = server.clock.now();
    stop_and(&mut server, |config, dir| {
        cakeys::finish_rollover(config, dir, now).expect("finish");
    })
    .await;
    assert!(server.ca().previous().is_none());
    assert!(
        !server.data_dir().join("ca-previous.key").exists(),
        "old key destroyed"
    );
    let chain = std::fs::read_to_string(server.data_dir().join("ca-chain.pem")).expect("chain");
    assert_eq!(fingerprints(&chain), vec![new_fp]);
    let Outcome::Approved(_) = a.provision(true).await.expect("renewal") else {
        panic!("renewal after the transition not approved");
    };
    let (set, _) = a.current().expect("read").expect("installed");
    assert_eq!(
        fingerprints(&set.ca_pem),
        vec![new_fp],
        "only the new anchor"
    );
    assert!(verifies_with(&certs(&set.cert_pem), &new, now));
    // The audit log (checkpoints of both CAs) still verifies.
    let status: serde_json::Value = server
        .http_with(
            &std::fs::read_to_string(server.data_dir().join("admin.pem")).expect("admin"),
            &std::fs::read_to_string(server.data_dir().join("admin.key")).expect("key"),
        )
        .get(server.url("/idprov/admin/audit/status"))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("JSON");
    assert_eq!(status["verified"], true, "{status}");

    // The device that slept through the whole transition (past the
    // re-delivery window of its first certificate): told plainly, then the
    // OOB path with a new secret.
    server.clock.advance(std::time::Duration::from_secs(3600));
    let err = b.provision(true).await.expect_err("old CA gone");
    assert!(matches!(err, DeviceError::CaReplaced { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("CA rollover ended while this device was away"),
        "{err}"
    );
    assert!(matches!(
        b.provision(false).await.expect("OOB path"),
        Outcome::Waiting(_)
    ));
    server.add_secret("roll-b", "a-new-secret-of-roll-b").await;
    let mut b =
        Device::open(options(&server, "roll-b", Some("a-new-secret-of-roll-b"))).expect("b");
    let err = b.provision(true).await.expect_err("still the old CA");
    assert!(matches!(err, DeviceError::CaReplaced { .. }), "{err}");
    let Outcome::Approved(_) = b.provision(false).await.expect("OOB") else {
        panic!("OOB path not approved");
    };
    let (set, _) = b.current().expect("read").expect("installed");
    assert_eq!(fingerprints(&set.ca_pem), vec![new_fp]);
}

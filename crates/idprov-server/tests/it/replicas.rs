//! Two server replicas on one PostgreSQL database, sharing one data
//! directory (one CA key, one secrets key): they act as one service.
//!
//! Needs PostgreSQL (the test kit starts a throw-away cluster); skipped
//! without it, except under `CI=true`.

use std::sync::Arc;

use idprov_proto::admin::{Decision, RevokeRequest};
use idprov_proto::{ProvisionStatus, clock::Clock};
use idprov_server::config::Database;
use idprov_testkit::{Setup, TestDevice, TestServer, provision};

use crate::common::{add_secret, leaf_of, provision_ok};

/// Replica A on a fresh database, and replica B on the same database and
/// the same data directory.
async fn replicas(hint: &str) -> Option<(TestServer, TestServer)> {
    let Some(url) = idprov_testkit::postgres::fresh_database(hint).await else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the replica tests need PostgreSQL in CI"
        );
        eprintln!("skipping: PostgreSQL is not installed");
        return None;
    };
    let a_url = url.clone();
    let a = TestServer::start_with(Setup {
        configure: Box::new(move |c| c.database = Database::Postgres(a_url)),
        ..Setup::default()
    })
    .await;
    let shared_dir = a.data_dir();
    let b = TestServer::start_with(Setup {
        configure: Box::new(move |c| {
            c.database = Database::Postgres(url);
            c.data_dir = shared_dir;
        }),
        ..Setup::default()
    })
    .await;
    Some((a, b))
}

/// The CRL number of a DER CRL.
fn crl_number(der: &[u8]) -> u64 {
    use x509_parser::prelude::FromDer;
    let (_, crl) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(der).expect("a CRL");
    let n = crl.crl_number().expect("a CRL number");
    u64::try_from(n).expect("small")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_secrets_queue_lockouts_decisions_revocations_and_the_crl() {
    let Some((a, b)) = replicas("replicas_share").await else {
        return;
    };
    // One CA: every replica signs, with the shared key.
    assert_eq!(a.ca().fingerprint(), b.ca().fingerprint());

    // A secret posted to A is used on B.
    add_secret(&a, "shared-1", "secret-posted-to-a").await;
    let d1 = TestDevice::new("shared-1");
    let issued = provision_ok(&b, &d1, "secret-posted-to-a").await;
    assert!(
        a.admin().list_secrets(None).await.expect("list").is_empty(),
        "consumed for both"
    );

    // Lockout counters: four wrong secrets on A, the fifth on B locks the pair.
    add_secret(&a, "shared-2", "the-right-one").await;
    let d2 = TestDevice::new("shared-2");
    for server in [&a, &a, &a, &a, &b] {
        let (_, resp, _) = provision(&server.http(), server, &d2.request(Some("wrong"))).await;
        assert_eq!(resp.expect("answer").status, ProvisionStatus::Rejected);
    }
    let (status, _, _) = provision(&a.http(), &a, &d2.request(Some("the-right-one"))).await;
    assert_eq!(status, 429, "locked on A by failures counted on both");

    // A request waiting on A is approved through B, then Approved on A.
    let w1 = TestDevice::new("shared-3");
    let (_, resp, _) = provision(&a.http(), &a, &w1.request(None)).await;
    assert_eq!(resp.expect("answer").status, ProvisionStatus::Waiting);
    let queue = b.admin().list_requests(None).await.expect("queue");
    assert!(queue.iter().any(|w| w.device_id == "shared-3"), "{queue:?}");
    b.admin()
        .decide("shared-3", "approve", &Decision::default())
        .await
        .expect("approved on B");
    let (_, resp, _) = provision(&a.http(), &a, &w1.request(None)).await;
    assert_eq!(resp.expect("answer").status, ProvisionStatus::Approved);

    // A rejection made on A holds on B.
    let w2 = TestDevice::new("shared-4");
    provision(&b.http(), &b, &w2.request(None)).await;
    a.admin()
        .decide(
            "shared-4",
            "reject",
            &Decision {
                key_fingerprint: None,
                reason: Some("not ours".into()),
            },
        )
        .await
        .expect("rejected on A");
    let (_, resp, _) = provision(&b.http(), &b, &w2.request(None)).await;
    assert_eq!(resp.expect("answer").status, ProvisionStatus::Rejected);

    // A revocation on A: B refuses the certificate for renewal, and the CRL
    // both serve lists it, its number only growing.
    let before = crl_number(&b.admin().crl(false).await.expect("CRL"));
    let serial = leaf_of(&issued.client_cert).serial;
    let revoked = a
        .admin()
        .revoke_device(
            "shared-1",
            &RevokeRequest {
                reason: Some("keyCompromise".into()),
                note: None,
                serial: None,
            },
        )
        .await
        .expect("revoked");
    assert_eq!(revoked.serials, vec![serial.clone()]);
    let (_, resp, _) = provision(
        &b.http_with(&issued.client_cert, &d1.key_pem()),
        &b,
        &d1.request(None),
    )
    .await;
    assert_eq!(
        resp.expect("answer").status,
        ProvisionStatus::Waiting,
        "B no longer renews a certificate revoked on A"
    );
    for server in [&a, &b] {
        use x509_parser::prelude::FromDer;
        let der = server.admin().crl(false).await.expect("CRL");
        let n = crl_number(&der);
        assert!(n > before, "CRL number {n} after {before}");
        let (_, crl) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(&der).expect("CRL");
        assert!(
            crl.iter_revoked_certificates()
                .any(|r| idprov_proto::SerialNumber::from_octets(r.raw_serial())
                    .is_ok_and(|s| s == serial)),
            "the CRL lists the revoked serial"
        );
    }

    // Both replicas wrote to one audit chain.
    let entries = b.registry().audit_entries(0, 10_000).await.expect("audit");
    idprov_store::verify_chain(None, &entries).expect("one valid chain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_secret_is_consumed_once_when_both_replicas_race_for_it() {
    let Some((a, b)) = replicas("replicas_race").await else {
        return;
    };
    let (ca, cb) = (a.http(), b.http());
    let a = Arc::new(a);
    let b = Arc::new(b);
    const ROUNDS: usize = 200;
    let mut winners = [0usize; 2];
    for round in 0..ROUNDS {
        let id = format!("race-{round}");
        add_secret(&a, &id, "one-secret-two-claimants").await;
        // Two claimants with their own keys: neither can be re-delivered
        // the other's certificate.
        let first = TestDevice::new(&id).request(Some("one-secret-two-claimants"));
        let second = TestDevice::new(&id).request(Some("one-secret-two-claimants"));
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        // Alternate which replica gets the first request.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut tasks = Vec::new();
        for (slot, req) in order.into_iter().zip([first, second]) {
            let (server, client, barrier) = if slot == 0 {
                (a.clone(), ca.clone(), barrier.clone())
            } else {
                (b.clone(), cb.clone(), barrier.clone())
            };
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let (status, resp, body) = provision(&client, &server, &req).await;
                assert_eq!(status, 200, "{body}");
                (slot, resp.expect("answer").status)
            }));
        }
        let mut approved = Vec::new();
        for t in tasks {
            let (slot, status) = t.await.expect("request");
            if status == ProvisionStatus::Approved {
                approved.push(slot);
            } else {
                assert_eq!(status, ProvisionStatus::Waiting, "the loser waits");
            }
        }
        assert_eq!(
            approved.len(),
            1,
            "round {round}: exactly one issue, not {approved:?}"
        );
        winners[approved[0]] += 1;
        let certs = a
            .registry()
            .certificates_of(idprov_store::CertKind::Device, &id)
            .await
            .expect("history");
        assert_eq!(certs.len(), 1, "round {round}: one certificate recorded");
    }
    eprintln!("race winners: A {} B {}", winners[0], winners[1]);
    let entries = a.registry().audit_entries(0, 100_000).await.expect("audit");
    idprov_store::verify_chain(None, &entries).expect("one valid chain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_provisions_with_a_secret_registered_before() {
    let Some((a, mut b)) = replicas("replicas_restart").await else {
        return;
    };
    add_secret(&a, "kept-1", "registered-before-restart").await;
    b.restart().await;
    let device = TestDevice::new("kept-1");
    provision_ok(&b, &device, "registered-before-restart").await;
    // The clocks are the test's: the secret was not merely young.
    assert!(b.clock.now() >= a.clock.now() - std::time::Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_another_secrets_key_is_refused() {
    let Some((a, _b)) = replicas("replicas_other_key").await else {
        return;
    };
    add_secret(&a, "sealed-1", "sealed-with-the-shared-key").await;
    // A third replica with a copy of the directory but a different key.
    let copy = tempfile::tempdir().expect("tempdir");
    let key = copy.path().join("other.key");
    idprov_server::datadir::write_private_file(
        &key,
        b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
    )
    .expect("key");
    let mut config = a.config.clone();
    config.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    config.secret_key = idprov_server::config::SecretKeySource::File(key);
    let err = idprov_server::start(config, Default::default())
        .await
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("every replica must use the same secrets key"),
        "{err}"
    );
    // And the secret is still there for the others.
    assert_eq!(a.admin().list_secrets(None).await.expect("list").len(), 1);
}

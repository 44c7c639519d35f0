//! The OOB path of PROTOCOL.md §6, branch by branch, through real TLS.

use std::time::Duration;

use idprov_ca::KeyAlgorithm;
use idprov_proto::canonical::EscapeStyle;
use idprov_proto::sign::{KeyVariant, sign_bytes};
use idprov_proto::{ProvisionStatus, StatusMessage};
use idprov_testkit::{TestDevice, TestServer, provision};

use crate::common::{add_secret, audit_events, leaf_of, provision_ok};

#[tokio::test]
async fn approved_with_the_secret_signed_with_the_secret_and_consumed() {
    let server = TestServer::start().await;
    add_secret(&server, "sensor-1", "correct horse battery").await;
    let device = TestDevice::new("sensor-1");
    let resp = provision_ok(&server, &device, "correct horse battery").await;

    // Signed with the raw secret (PROTOCOL.md §5 rule 2).
    let v = resp
        .verify(b"correct horse battery")
        .expect("signature verifies");
    assert_eq!(v.variant, KeyVariant::RawSecret);
    assert!(resp.verify(b"").is_none(), "not the empty key");
    // retrySec is half the 30-day validity.
    assert_eq!(resp.retry_sec, 15 * 86_400);
    // caCert is plain PEM of the chain, clientCert the issued leaf.
    assert_eq!(resp.ca_cert, server.ca_pem());
    let leaf = leaf_of(&resp.client_cert);
    assert_eq!(leaf.common_names, vec!["sensor-1"]);
    assert_eq!(leaf.organizational_units, vec!["iotdevice"]);
    assert!(leaf.eku_client_auth);
    assert_eq!(
        leaf.spki_der,
        idprov_ca::PublicKey::from_pem(&device.key.public_key_pem())
            .expect("key")
            .spki_der()
    );

    // The secret is consumed: the status is Approved and no secret is left.
    let status = server.admin().status("sensor-1").await.expect("status");
    assert_eq!(status.status, ProvisionStatus::Approved);
    assert_eq!(
        status.client_cert.as_deref(),
        Some(resp.client_cert.as_str())
    );
    assert!(
        server
            .admin()
            .list_secrets(None)
            .await
            .expect("list")
            .is_empty()
    );
    // One issuance, audited with the way it was authorized.
    let entries = server
        .registry()
        .audit_entries(0, 100)
        .await
        .expect("audit");
    let issued = entries
        .iter()
        .find(|e| e.event == "certificate_issued" && e.device_id.as_deref() == Some("sensor-1"))
        .expect("audited");
    assert_eq!(issued.detail["how"], "oob");
    assert!(
        issued.actor.starts_with("source:127.0.0.1"),
        "{}",
        issued.actor
    );
}

#[tokio::test]
async fn status_json_has_base64_client_cert_and_404_for_unknown() {
    let server = TestServer::start().await;
    add_secret(&server, "s-1", "a-long-enough-secret").await;
    let device = TestDevice::new("s-1");
    let approved = provision_ok(&server, &device, "a-long-enough-secret").await;
    let admin = idprov_testkit::http_client(server.tls_config(Some((
        &std::fs::read_to_string(server.data_dir().join("admin.pem")).expect("cert"),
        &std::fs::read_to_string(server.data_dir().join("admin.key")).expect("key"),
    ))));
    let body = admin
        .get(server.url("/idprov/status/s-1"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let keys: Vec<_> = v.as_object().expect("object").keys().cloned().collect();
    assert_eq!(keys.len(), 4);
    assert!(
        body.starts_with(
            r#"{"deviceID":"s-1","status":"Approved","caCert":"-----BEGIN CERTIFICATE-----"#
        ),
        "{body}"
    );
    let parsed = StatusMessage::from_json(body.as_bytes()).expect("status");
    assert_eq!(
        parsed.client_cert.as_deref(),
        Some(approved.client_cert.as_str())
    );
    assert!(
        !v["clientCert"]
            .as_str()
            .expect("string")
            .starts_with("-----"),
        "base64 on the wire"
    );

    let unknown = admin
        .get(server.url("/idprov/status/never-heard-of"))
        .send()
        .await
        .expect("request");
    assert_eq!(unknown.status(), 404);
    assert!(
        unknown
            .text()
            .await
            .expect("body")
            .contains("unknown device")
    );
}

#[tokio::test]
async fn no_secret_is_waiting_recorded_once_then_approved_when_the_secret_arrives() {
    let server = TestServer::start().await;
    let device = TestDevice::new("thermo-7");
    let client = server.http();
    for _ in 0..2 {
        let (status, resp, _) =
            provision(&client, &server, &device.request(Some("whatever"))).await;
        assert_eq!(status, 200, "Waiting is a 200");
        let resp = resp.expect("response");
        assert_eq!(resp.status, ProvisionStatus::Waiting);
        assert_eq!(resp.retry_sec, 60);
        assert_eq!(resp.signature, "");
        assert_eq!(resp.client_cert, "");
    }
    let waiting = server.admin().list_requests(None).await.expect("list");
    assert_eq!(waiting.len(), 1, "recorded once per (device, key)");
    assert_eq!(waiting[0].device_id, "thermo-7");
    assert_eq!(waiting[0].attempts, 2);
    assert_eq!(waiting[0].claimed_ip, "192.0.2.10");
    assert_eq!(waiting[0].source, "127.0.0.1");
    assert_eq!(waiting[0].key_type, "ECDSA-P256");
    // A second key for the same device is a second entry.
    let other_key = TestDevice::new("thermo-7");
    provision(&client, &server, &other_key.request(None)).await;
    assert_eq!(
        server
            .admin()
            .list_requests(None)
            .await
            .expect("list")
            .len(),
        2
    );
    let status = server.admin().status("thermo-7").await.expect("status");
    assert_eq!(status.status, ProvisionStatus::Waiting);
    assert_eq!(status.client_cert, None);

    add_secret(&server, "thermo-7", "now-it-is-registered").await;
    provision_ok(&server, &device, "now-it-is-registered").await;
    // Approving clears that key's waiting entry; the other key's stays.
    assert_eq!(
        server
            .admin()
            .list_requests(None)
            .await
            .expect("list")
            .len(),
        1
    );
    // The first new request of a source in an interval is audited as it
    // happens, the others of that interval in one summary at its end.
    assert_eq!(
        audit_events(&server)
            .await
            .iter()
            .filter(|e| *e == "request_queued")
            .count(),
        1
    );
    server.clock.advance(Duration::from_secs(61));
    server.server().state().flush_aggregated(false).await;
    let entries = server
        .registry()
        .audit_entries(0, 1000)
        .await
        .expect("audit");
    let summary = entries
        .iter()
        .find(|e| e.event == "audit_aggregated")
        .expect("a summary");
    assert_eq!(summary.detail["event"], "request_queued");
    assert_eq!(summary.detail["count"], 1);
}

#[tokio::test]
async fn an_unauthenticated_flood_adds_a_bounded_number_of_audit_entries() {
    let server = TestServer::start_with(idprov_testkit::Setup {
        configure: Box::new(|c| {
            c.provisioning_rate = 1_000_000.0;
            c.provisioning_burst = 1_000_000.0;
        }),
        ..Default::default()
    })
    .await;
    let before = server
        .registry()
        .audit_entries(0, 10_000)
        .await
        .expect("audit")
        .len();
    let client = server.http();
    // 300 never-seen devices, and 60 wrong secrets against 10 devices
    // (a lock each), all from one address.
    for n in 0..300 {
        provision(
            &client,
            &server,
            &TestDevice::new(&format!("flood-{n}")).request(None),
        )
        .await;
    }
    for d in 0..10 {
        let id = format!("locked-{d}");
        add_secret(&server, &id, "the-real-secret").await;
        let guesser = TestDevice::new(&id);
        for g in 0..6 {
            provision(
                &client,
                &server,
                &guesser.request(Some(&format!("guess-{g}"))),
            )
            .await;
        }
    }
    server.clock.advance(Duration::from_secs(61));
    server.server().state().flush_aggregated(false).await;
    let entries = server
        .registry()
        .audit_entries(0, 10_000)
        .await
        .expect("audit");
    let added: Vec<&str> = entries[before..]
        .iter()
        .map(|e| e.event.as_str())
        .filter(|e| *e != "secret_added")
        .collect();
    // One entry per event as it happened, one summary per event.
    assert!(added.len() <= 8, "{} entries: {added:?}", added.len());
    let count = |event: &str| -> u64 {
        entries
            .iter()
            .filter(|e| e.event == "audit_aggregated" && e.detail["event"] == event)
            .map(|e| e.detail["count"].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(
        count("request_queued"),
        299,
        "every queued request is counted"
    );
    assert_eq!(count("lockout_started"), 9);
    // The chain still verifies.
    assert!(idprov_store::verify_chain(None, &entries).is_ok());
}

#[tokio::test]
async fn wrong_secret_is_rejected_and_does_not_consume_the_secret() {
    let server = TestServer::start().await;
    add_secret(&server, "lamp-1", "the-right-secret").await;
    let device = TestDevice::new("lamp-1");
    let (status, resp, _) = provision(
        &server.http(),
        &server,
        &device.request(Some("a-wrong-one")),
    )
    .await;
    assert_eq!(status, 200, "Rejected is a 200");
    let resp = resp.expect("response");
    assert_eq!(resp.status, ProvisionStatus::Rejected);
    assert_eq!(resp.retry_sec, 0, "no back-off after one failure");
    assert_eq!(resp.client_cert, "");
    // The correct secret still works.
    provision_ok(&server, &device, "the-right-secret").await;
}

#[tokio::test]
async fn the_fifth_failure_locks_the_pair_even_for_a_correct_signature() {
    let server = TestServer::start().await;
    add_secret(&server, "door-9", "the-right-secret").await;
    let device = TestDevice::new("door-9");
    let client = server.http();
    for n in 1..=5 {
        let (status, resp, _) = provision(&client, &server, &device.request(Some("guess"))).await;
        assert_eq!(status, 200);
        let resp = resp.expect("response");
        assert_eq!(resp.status, ProvisionStatus::Rejected);
        assert_eq!(resp.retry_sec, if n == 5 { 60 } else { 0 }, "failure {n}");
    }
    // Locked: a correct signature is refused with 429 and Retry-After.
    let resp = client
        .post(server.url("/idprov/provreq"))
        .body(device.request(Some("the-right-secret")).to_json())
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "60");
    // The lock is per (device, source): another address is not locked.
    let other_source = reqwest::Client::builder()
        .use_preconfigured_tls(server.tls_config(None))
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    let (status, resp, body) = provision(
        &other_source,
        &server,
        &device.request(Some("the-right-secret")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(resp.expect("response").status, ProvisionStatus::Approved);
    // A sixth failure from the locked source after the lock doubles it.
    add_secret(&server, "door-9", "the-right-secret").await;
    server.clock.advance(Duration::from_secs(61));
    let (_, resp, _) = provision(&client, &server, &device.request(Some("guess"))).await;
    assert_eq!(resp.expect("response").retry_sec, 120);
    server.clock.advance(Duration::from_secs(121));
    provision_ok(&server, &device, "the-right-secret").await;
    assert!(
        audit_events(&server)
            .await
            .iter()
            .any(|e| e == "lockout_started")
    );
}

#[tokio::test]
async fn the_sha256_variant_is_accepted_and_answered_in_kind() {
    let server = TestServer::start().await;
    add_secret(&server, "v-1", "variant-secret").await;
    let device = TestDevice::new("v-1");
    let mut req = device.request(None);
    req.signature = sign_bytes(
        b"variant-secret",
        KeyVariant::Sha256OfSecret,
        &req.signing_bytes(EscapeStyle::Go119),
    );
    let (status, resp, body) = provision(&server.http(), &server, &req).await;
    assert_eq!(status, 200, "{body}");
    let resp = resp.expect("response");
    assert_eq!(resp.status, ProvisionStatus::Approved);
    let v = resp.verify(b"variant-secret").expect("verifies");
    assert_eq!(
        v.variant,
        KeyVariant::Sha256OfSecret,
        "answered in the variant the request used"
    );
}

#[tokio::test]
async fn a_go_1_22_signature_over_short_escapes_is_accepted() {
    let server = TestServer::start().await;
    add_secret(&server, "v-2", "variant-secret").await;
    let device = TestDevice::new("v-2");
    let mut req = device.request(None);
    req.mac = "a\u{8}b\u{c}c".into();
    req.signature = sign_bytes(
        b"variant-secret",
        KeyVariant::RawSecret,
        &req.signing_bytes(EscapeStyle::Go122),
    );
    let (_, resp, body) = provision(&server.http(), &server, &req).await;
    assert_eq!(
        resp.expect("response").status,
        ProvisionStatus::Approved,
        "{body}"
    );
}

#[tokio::test]
async fn a_lost_response_is_redelivered_within_the_window_only() {
    let server = TestServer::start().await;
    add_secret(&server, "re-1", "redelivery-secret").await;
    let device = TestDevice::new("re-1");
    let first = provision_ok(&server, &device, "redelivery-secret").await;
    // The same request again (the device never saw the answer).
    server.clock.advance(Duration::from_secs(300));
    let again = provision_ok(&server, &device, "redelivery-secret").await;
    assert_eq!(
        again.client_cert, first.client_cert,
        "the same certificate, not a new one"
    );
    assert!(again.verify(b"redelivery-secret").is_some());
    // Another key with the old secret gets nothing.
    let thief = TestDevice::new("re-1");
    let (_, resp, _) = provision(
        &server.http(),
        &server,
        &thief.request(Some("redelivery-secret")),
    )
    .await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);
    // After the window the same key waits like anyone else.
    server.clock.advance(Duration::from_secs(301));
    let (_, resp, _) = provision(
        &server.http(),
        &server,
        &device.request(Some("redelivery-secret")),
    )
    .await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);
    let devices = server
        .registry()
        .certificates_of(idprov_store::CertKind::Device, "re-1")
        .await
        .expect("certs");
    assert_eq!(devices.len(), 1, "exactly one certificate was issued");
    assert!(
        audit_events(&server)
            .await
            .iter()
            .any(|e| e == "certificate_redelivered")
    );
}

#[tokio::test]
async fn an_approved_answer_is_redelivered_to_the_same_key_within_the_window_only() {
    let server = TestServer::start().await;
    let device = TestDevice::new("ap-1");
    let (_, resp, _) = provision(&server.http(), &server, &device.request(None)).await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);
    server
        .admin()
        .decide("ap-1", "approve", &idprov_proto::admin::Decision::default())
        .await
        .expect("approved");
    let (_, first, _) = provision(&server.http(), &server, &device.request(None)).await;
    let first = first.expect("response");
    assert_eq!(first.status, ProvisionStatus::Approved);
    assert!(
        first.verify(b"").is_some(),
        "an approval is signed with the empty key"
    );

    // The device could not accept it (no pinned CA) and asks again: the
    // approval is used up, but the same certificate comes back.
    server.clock.advance(Duration::from_secs(300));
    let (_, again, _) = provision(&server.http(), &server, &device.request(None)).await;
    let again = again.expect("response");
    assert_eq!(again.status, ProvisionStatus::Approved);
    assert_eq!(again.client_cert, first.client_cert, "the same certificate");
    assert!(again.verify(b"").is_some());

    // Another key for the same device ID gets nothing.
    let other = TestDevice::new("ap-1");
    let (_, resp, _) = provision(&server.http(), &server, &other.request(None)).await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);

    // A live secret the request proves goes the secret's way (a new
    // certificate signed with the secret), not the approval's.
    add_secret(&server, "ap-1", "ap-1-later-secret").await;
    let by_secret = provision_ok(&server, &device, "ap-1-later-secret").await;
    assert_ne!(by_secret.client_cert, first.client_cert);
    assert!(by_secret.verify(b"ap-1-later-secret").is_some());

    // After the window the key waits like anyone else's.
    server.clock.advance(Duration::from_secs(301));
    let later = TestDevice::new("ap-2");
    let (_, resp, _) = provision(&server.http(), &server, &later.request(None)).await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);
    server
        .admin()
        .decide("ap-2", "approve", &idprov_proto::admin::Decision::default())
        .await
        .expect("approved");
    let (_, resp, _) = provision(&server.http(), &server, &later.request(None)).await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Approved);
    server.clock.advance(Duration::from_secs(601));
    let (_, resp, _) = provision(&server.http(), &server, &later.request(None)).await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);

    // A revoked certificate is never re-delivered.
    let revoked = TestDevice::new("ap-3");
    provision(&server.http(), &server, &revoked.request(None)).await;
    server
        .admin()
        .decide("ap-3", "approve", &idprov_proto::admin::Decision::default())
        .await
        .expect("approved");
    let (_, resp, _) = provision(&server.http(), &server, &revoked.request(None)).await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Approved);
    server
        .admin()
        .revoke_device("ap-3", &idprov_proto::admin::RevokeRequest::default())
        .await
        .expect("revoked");
    let (_, resp, _) = provision(&server.http(), &server, &revoked.request(None)).await;
    assert_ne!(resp.expect("response").status, ProvisionStatus::Approved);

    let issued = server
        .registry()
        .certificates_of(idprov_store::CertKind::Device, "ap-1")
        .await
        .expect("certs");
    assert_eq!(issued.len(), 2, "the approval's and the secret's, no more");
    let events = audit_events(&server).await;
    assert!(events.iter().any(|e| e == "certificate_redelivered"));
}

#[tokio::test]
async fn every_accepted_key_type_is_provisioned() {
    let server = TestServer::start().await;
    for (i, alg) in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::Rsa2048,
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("kt-{i}");
        add_secret(&server, &id, "key-type-secret").await;
        let device = TestDevice::with_key(&id, alg);
        let resp = provision_ok(&server, &device, "key-type-secret").await;
        let leaf = leaf_of(&resp.client_cert);
        assert_eq!(leaf.common_names, vec![id]);
    }
}

#[tokio::test]
async fn an_expired_secret_is_no_secret() {
    let server = TestServer::start().await;
    add_secret(&server, "exp-1", "expiring-secret").await;
    server.clock.advance(Duration::from_secs(3 * 86_400 + 1));
    let device = TestDevice::new("exp-1");
    let (_, resp, _) = provision(
        &server.http(),
        &server,
        &device.request(Some("expiring-secret")),
    )
    .await;
    assert_eq!(resp.expect("response").status, ProvisionStatus::Waiting);
}

#[tokio::test]
async fn an_offline_go_client_ip_of_nil_is_accepted() {
    let server = TestServer::start().await;
    add_secret(&server, "nil-ip", "offline-secret").await;
    let device = TestDevice::new("nil-ip");
    let mut req = device.request(None);
    req.ip = "<nil>".into();
    req.mac = "<script>alert(1)</script>".into();
    req.sign(b"offline-secret");
    let (_, resp, body) = provision(&server.http(), &server, &req).await;
    assert_eq!(
        resp.expect("response").status,
        ProvisionStatus::Approved,
        "{body}"
    );
}

#[tokio::test]
async fn guessing_from_many_addresses_spends_the_device_budget() {
    let server = TestServer::start_with(idprov_testkit::Setup {
        configure: Box::new(|c| {
            c.lockout.device_budget = 30;
        }),
        ..Default::default()
    })
    .await;
    add_secret(&server, "pin-1", "123456").await;
    let attacker = TestDevice::new("pin-1");
    // One wrong guess from each of 30 addresses: no address is locked…
    for n in 0..30 {
        let client = server.http_from(&format!("127.0.1.{}", n + 1));
        let (status, resp, body) = provision(
            &client,
            &server,
            &attacker.request(Some(&format!("{n:06}"))),
        )
        .await;
        assert_eq!(status, 200, "guess {n}: {body}");
        assert_eq!(resp.expect("answer").status, ProvisionStatus::Rejected);
    }
    // …but the device's budget is spent: even the right secret, from a new
    // address, is refused without being looked at.
    let device = TestDevice::new("pin-1");
    let fresh = server.http_from("127.0.2.1");
    let r = fresh
        .post(server.url("/idprov/provreq"))
        .body(device.request(Some("123456")).to_json())
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(
        (3000..=3600).contains(&retry),
        "until the window ends: {retry}"
    );
    let text = r.text().await.expect("body");
    assert!(text.contains("all addresses"), "{text}");
    // The secret was not consumed, and the refused request is in the queue
    // for an administrator.
    assert!(
        server
            .registry()
            .live_secret("pin-1", idprov_proto::clock::unix_now(&*server.clock))
            .await
            .expect("read")
            .is_some()
    );
    let queue = server.admin().list_requests(None).await.expect("queue");
    let fp = idprov_ca::PublicKey::from_pem(&device.request(None).public_key_pem)
        .expect("key")
        .fingerprint();
    assert!(
        queue
            .iter()
            .any(|w| w.device_id == "pin-1" && w.key_fingerprint == fp),
        "{queue:?}"
    );
    assert!(
        audit_events(&server)
            .await
            .iter()
            .any(|e| e == "guess_budget_spent")
    );
    // The administrator approves that key: the device gets its certificate.
    server
        .admin()
        .decide(
            "pin-1",
            "approve",
            &idprov_proto::admin::Decision {
                key_fingerprint: Some(fp.to_string()),
                reason: None,
            },
        )
        .await
        .expect("approved");
    let (_, resp, _) = provision(&fresh, &server, &device.request(Some("123456"))).await;
    assert_eq!(resp.expect("answer").status, ProvisionStatus::Approved);

    // Or registers a fresh secret: a new budget.
    add_secret(&server, "pin-2", "654321").await;
    let attacker = TestDevice::new("pin-2");
    for n in 0..30 {
        let client = server.http_from(&format!("127.0.3.{}", n + 1));
        provision(
            &client,
            &server,
            &attacker.request(Some(&format!("{n:06}"))),
        )
        .await;
    }
    let other = TestDevice::new("pin-2");
    let r = fresh
        .post(server.url("/idprov/provreq"))
        .body(other.request(Some("654321")).to_json())
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 429, "pin-2's budget is spent too");
    add_secret(&server, "pin-2", "a-fresh-secret-for-pin-2").await;
    let (_, resp, _) = provision(
        &fresh,
        &server,
        &other.request(Some("a-fresh-secret-for-pin-2")),
    )
    .await;
    assert_eq!(resp.expect("answer").status, ProvisionStatus::Approved);

    // After the window the old secret can be guessed again (and is right).
    add_secret(&server, "pin-3", "111111").await;
    let attacker = TestDevice::new("pin-3");
    for n in 0..30 {
        let client = server.http_from(&format!("127.0.4.{}", n + 1));
        provision(
            &client,
            &server,
            &attacker.request(Some(&format!("9{n:05}"))),
        )
        .await;
    }
    server.clock.advance(Duration::from_secs(3601));
    let third = TestDevice::new("pin-3");
    let (_, resp, _) = provision(&fresh, &server, &third.request(Some("111111"))).await;
    assert_eq!(resp.expect("answer").status, ProvisionStatus::Approved);
}

#[tokio::test]
async fn ipv6_sources_of_one_64_share_a_lockout() {
    // Counted per /64: addresses of one host's prefix are one source.
    assert_eq!(
        idprov_core::lockout_source("2001:db8:1:2:aaaa::1".parse().expect("ip")),
        idprov_core::lockout_source("2001:db8:1:2:bbbb::2".parse().expect("ip")),
    );
    assert_eq!(
        idprov_core::lockout_source("2001:db8:1:2::1".parse().expect("ip")),
        "2001:db8:1:2::/64"
    );
    assert_ne!(
        idprov_core::lockout_source("2001:db8:1:3::1".parse().expect("ip")),
        idprov_core::lockout_source("2001:db8:1:2::1".parse().expect("ip")),
    );
    assert_eq!(
        idprov_core::lockout_source("::ffff:10.0.0.1".parse().expect("ip")),
        "10.0.0.1"
    );
}

//! Micro-benchmarks of the provisioning hot path, one stage at a time:
//! parsing + canonical encoding + HMAC verification of a request, issuing a
//! certificate, and the registry's issue transaction (secret consumed,
//! certificate and audit entry written, one durable commit).
//!
//! `cargo bench -p idprov-bench` (divan; medians are what it prints first).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use idprov_ca::{Ca, IssueParams, KeyAlgorithm, PublicKey, Usage};
use idprov_proto::ProvisionRequest;
use idprov_store::prelude::*;
use idprov_store::{
    Actor, AuditEvent, AuditOf, AuditRecord, CertKind, ConsumeSecret, IssueKind, IssueRecord,
    NewCertificate, NewSecret, SqliteRegistry,
};

fn main() {
    divan::main();
}

const SECRET: &[u8] = b"7K3M-bench-secret-QX9P";

fn request() -> (Vec<u8>, String) {
    let key = KeyAlgorithm::EcdsaP256.generate().expect("key");
    let mut req = ProvisionRequest {
        device_id: "sensor-0042".into(),
        ip: "192.0.2.10".into(),
        mac: "02:00:00:00:00:01".into(),
        public_key_pem: key.public_key_pem(),
        signature: String::new(),
    };
    req.sign(SECRET);
    (req.to_json(), key.public_key_pem())
}

/// What the server does first with a request body: strict JSON parsing, the
/// canonical re-encoding and the HMAC check.
#[divan::bench]
fn parse_and_verify_request(bencher: divan::Bencher) {
    let (body, _) = request();
    bencher.bench(|| {
        let req = ProvisionRequest::from_json(divan::black_box(&body)).expect("parses");
        assert!(req.verify(SECRET).is_some());
    });
}

/// Canonical encoding alone (what the signature covers).
#[divan::bench]
fn canonical_encoding(bencher: divan::Bencher) {
    let (body, _) = request();
    let req = ProvisionRequest::from_json(&body).expect("parses");
    bencher.bench(|| divan::black_box(&req).signing_bytes(idprov_proto::EscapeStyle::Go119));
}

/// Parsing the submitted public key (points checked on the curve).
#[divan::bench]
fn parse_public_key(bencher: divan::Bencher) {
    let (_, pem) = request();
    bencher.bench(|| PublicKey::from_pem(divan::black_box(&pem)).expect("key"));
}

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| {
        Ca::generate(
            "bench CA",
            KeyAlgorithm::EcdsaP256,
            SystemTime::now(),
            Duration::from_secs(86_400 * 365),
        )
        .expect("CA")
        .ca
    })
}

/// Issuing a device certificate: random serial, extensions, one ECDSA
/// P-256 signature, DER and PEM.
#[divan::bench]
fn issue_device_certificate(bencher: divan::Bencher) {
    let (_, pem) = request();
    let public = PublicKey::from_pem(&pem).expect("key");
    let ca = ca();
    bencher.bench(|| {
        ca.issue(
            &public,
            &IssueParams {
                common_name: "sensor-0042",
                organizational_unit: "iotdevice",
                organization: "idprov",
                usage: Usage::Client,
                now: SystemTime::now(),
                validity: Duration::from_secs(30 * 86_400),
                crl_url: Some("https://hub.local:43776/idprov/crl"),
                ocsp_url: None,
            },
        )
        .expect("issued")
    });
}

struct Store {
    _dir: tempfile::TempDir,
    registry: Arc<SqliteRegistry>,
    runtime: tokio::runtime::Runtime,
}

fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry =
            Arc::new(SqliteRegistry::open(&dir.path().join("idprov.db")).expect("registry"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Store {
            _dir: dir,
            registry,
            runtime,
        }
    })
}

/// The registry's issue transaction as the OOB path runs it: the secret
/// consumed conditionally, the certificate row, the lockout reset, the
/// waiting entry cleared and the audit entry appended, in one
/// `synchronous=FULL` commit. The secret is registered untimed.
#[divan::bench]
fn store_issue_transaction(bencher: divan::Bencher) {
    static N: AtomicU64 = AtomicU64::new(0);
    let s = store();
    let now = idprov_proto::UnixTime::from_secs(1_800_000_000);
    let fp = idprov_proto::KeyFingerprint::of_spki(b"bench key");
    bencher
        .with_inputs(|| {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let device = format!("dev-{n}");
            s.runtime.block_on(async {
                s.registry
                    .put_secret(
                        NewSecret {
                            device_id: device.clone(),
                            sealed: vec![7u8; 60],
                            key_id: "k".into(),
                            created_at: now,
                            valid_until: now + 3600,
                            created_by: Actor::named("admin", "bench"),
                            pake: None,
                        },
                        AuditOf::always(AuditRecord::new(
                            now,
                            Actor::named("admin", "bench"),
                            AuditEvent::SecretAdded {
                                valid_until: now + 3600,
                                short: None,
                                generated: None,
                                labels: None,
                                v2_only: None,
                                replaced: false,
                            },
                            Some(&device),
                        )),
                    )
                    .await
                    .expect("secret");
                let id = s
                    .registry
                    .live_secret(&device, now)
                    .await
                    .expect("read")
                    .expect("live")
                    .id;
                (device, n, id)
            })
        })
        .bench_values(|(device, n, id)| {
            s.runtime.block_on(async {
                s.registry
                    .record_issue(IssueRecord {
                        cert: NewCertificate {
                            serial: idprov_proto::SerialNumber::parse(&format!("{n:032x}"))
                                .expect("serial"),
                            kind: CertKind::Device,
                            subject: device.clone(),
                            pem: "x".repeat(700),
                            key_fingerprint: fp.clone(),
                            key_type: "ECDSA-P256".into(),
                            not_before: now - 60,
                            not_after: now + 30 * 86_400,
                            issued_at: now,
                            issue_kind: IssueKind::Oob,
                            authorized_by: "source:127.0.0.1".into(),
                            protocol: Some(idprov_proto::kinds::Protocol::V1),
                        },
                        consume_secret: Some(ConsumeSecret {
                            secret_id: id,
                            key_fingerprint: fp.clone(),
                        }),
                        consume_approval: None,
                        reset_lockout_for: Some("127.0.0.1".into()),
                        clear_waiting_key: Some(fp.clone()),
                        supersede_older_at: None,
                        audit: AuditRecord::new(
                            now,
                            Actor::source("127.0.0.1"),
                            AuditEvent::CertificateIssued {
                                serial: idprov_proto::SerialNumber::parse(&format!("{n:032x}"))
                                    .expect("serial"),
                                how: "oob".into(),
                                secret_used: true,
                                key_fingerprint: fp.clone(),
                                key_type: "ECDSA-P256".into(),
                                not_after: now + 30 * 86_400,
                                protocol: Some(idprov_proto::kinds::Protocol::V1),
                            },
                            Some(&device),
                        ),
                    })
                    .await
                    .expect("recorded")
            })
        });
}

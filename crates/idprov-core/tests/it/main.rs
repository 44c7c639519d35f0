//! The provisioning core driven directly — no HTTP, no TLS — one test per
//! branch of PROTOCOL.md §6, on a real SQLite registry in a temporary
//! directory with a manual clock.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use idprov_ca::{Ca, KeyAlgorithm, PublicKey};
use idprov_core::{
    AnswerKey, Claimed, Identity, Outcome, Policy, Proof, Provisioner, Refusal, RejectReason,
    Request, Role, secrets::SecretBox,
};
use idprov_proto::UnixTime;
use idprov_proto::clock::{Clock, ManualClock};
use idprov_proto::kinds::Protocol;
use idprov_proto::{DeviceId, OobSecret, ProvisionRequest};
use idprov_store::{
    Actor, AuditEvent, AuditOf, AuditRecord, LockoutPolicy, NewSecret, PutSecretOutcome, Registry,
    SqliteRegistry, WaitingCaps,
};

/// The service over a fresh registry, with what tests reach into.
struct Lab {
    core: Provisioner,
    ca: Arc<Ca>,
    registry: Arc<dyn Registry>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

fn policy() -> Policy {
    Policy {
        organization: "lab".into(),
        device_validity: Duration::from_secs(30 * 86_400),
        crl_url: "https://hub.local:43776/idprov/crl".into(),
        ocsp_url: Some("http://hub.local:8080/idprov/ocsp".into()),
        supersede_after: None,
        redelivery_window: Duration::from_secs(600),
        lockout: LockoutPolicy {
            threshold: 5,
            base_secs: 60,
            max_secs: 3600,
            forget_after_secs: 86_400,
            device_budget: 30,
            device_window_secs: 3600,
        },
        waiting_caps: WaitingCaps {
            per_source: 3,
            total: 100,
        },
        waiting_retry: Duration::from_secs(60),
        reserved_device_ids: vec!["admin".into(), "localhost".into()],
        v2_iterations: 1_000,
        v2_sessions: idprov_core::SessionLimits {
            lifetime: Duration::from_secs(60),
            per_source: 4,
            total: 6,
        },
    }
}

fn lab() -> Lab {
    lab_with(policy())
}

fn lab_with(policy: Policy) -> Lab {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry: Arc<dyn Registry> =
        Arc::new(SqliteRegistry::open(&dir.path().join("idprov.db")).expect("registry"));
    let clock = Arc::new(ManualClock::starting_now());
    let ca = Ca::generate(
        "lab",
        KeyAlgorithm::EcdsaP256,
        clock.now(),
        Duration::from_secs(3650 * 86_400),
    )
    .expect("CA")
    .ca;
    let ca = Arc::new(ca);
    let core = Provisioner::new(
        registry.clone(),
        ca.clone(),
        SecretBox::ephemeral().expect("key"),
        clock.clone(),
        policy,
    );
    Lab {
        core,
        ca,
        registry,
        clock,
        _dir: dir,
    }
}

impl Lab {
    fn now(&self) -> UnixTime {
        UnixTime::from(self.clock.now())
    }

    /// Step 5: the secret `device` proved is consumed and `issued` is
    /// recorded before the answer; its record.
    async fn consumed_and_recorded(
        &self,
        device: &str,
        issued: &idprov_core::Issued,
    ) -> idprov_store::CertRecord {
        assert!(
            self.registry
                .live_secret(device, self.now())
                .await
                .expect("read")
                .is_none(),
            "the secret is consumed"
        );
        self.registry
            .certificate(&issued.serial)
            .await
            .expect("read")
            .expect("recorded")
    }

    async fn add_secret(&self, device: &str, secret: &str) {
        let sealed = self
            .core
            .secrets()
            .seal(device, &OobSecret::parse(secret).expect("secret"))
            .expect("seal");
        self.register(device, sealed, None).await;
    }

    /// Registers `secret` for idprov v2 only: its verifier, no secret.
    async fn add_v2_only(&self, device: &str, secret: &str) {
        let verifier = self
            .core
            .secrets()
            .pake_verifier(
                device,
                &OobSecret::parse(secret).expect("secret"),
                self.core.policy().v2_iterations,
            )
            .expect("verifier");
        self.register(device, Vec::new(), Some(verifier)).await;
    }

    async fn register(
        &self,
        device: &str,
        sealed: Vec<u8>,
        pake: Option<idprov_store::PakeVerifier>,
    ) {
        let now = self.now();
        let dev = device.to_owned();
        let v2_only = pake.is_some().then_some(true);
        self.registry
            .put_secret(
                NewSecret {
                    device_id: device.into(),
                    sealed,
                    key_id: self.core.secrets().key_id().into(),
                    created_at: now,
                    valid_until: now.plus_secs(3 * 86_400),
                    created_by: Actor::named("admin", "admin"),
                    pake,
                },
                AuditOf::one(move |outcome: &PutSecretOutcome| {
                    AuditRecord::new(
                        now,
                        Actor::named("admin", "admin"),
                        AuditEvent::SecretAdded {
                            valid_until: now.plus_secs(3 * 86_400),
                            short: None,
                            generated: None,
                            labels: None,
                            v2_only,
                            replaced: *outcome == PutSecretOutcome::Replaced,
                        },
                        Some(dev.as_str()),
                    )
                }),
            )
            .await
            .expect("secret");
    }

    /// A whole idprov v2 run of `device` with `secret` and `key` on the
    /// connection whose exporter value is `[connection; 32]`, as the device
    /// sees it: `None` when the server's `confirmV` does not verify (the
    /// device stops there), else the outcome and the run's keys.
    async fn v2_run(
        &self,
        device: &str,
        secret: &str,
        key: &Key,
        connection: u8,
    ) -> Option<(Outcome, idprov_proto::v2::SessionKeys)> {
        use idprov_proto::v2;
        let id = DeviceId::parse(device).expect("id");
        let params = self.core.pake_params(&id).await.expect("params");
        let prover = v2::derive(secret.as_bytes(), device, &params).expect("derive");
        let exporter = [connection; 32];
        let binding = v2::Binding::new(device, &self.ca.fingerprint(), &exporter);
        let (prover, share_p) =
            v2::prover_start(&prover, &binding, &mut v2::SeededRng::new([connection; 64]));
        let (share_v, confirm_v) = self
            .core
            .pake_start(&id, &share_p, &exporter, source("10.0.9.9"))
            .await
            .expect("decided")
            .expect("a run");
        let (confirm_p, keys) = prover.finish(&share_v, &confirm_v).ok()?;
        let mut request = v1(device, key, None, "10.0.9.9");
        let Proof::V1(message) = &request.proof else {
            unreachable!()
        };
        let finish = v2::FinishRequest::new(message.clone(), &confirm_p, &keys);
        request.proof = self
            .core
            .pake_finish(&finish, &confirm_p, &exporter)
            .expect("finished");
        request.protocol = Protocol::V2;
        Some((self.core.provision(&request).await.expect("decided"), keys))
    }

    async fn approve(&self, device: &str, key: &Key) {
        assert!(
            self.registry
                .approve(
                    device,
                    &key.public.fingerprint(),
                    self.now().plus_secs(3 * 86_400),
                    AuditRecord::new(
                        self.now(),
                        Actor::named("admin", "admin"),
                        AuditEvent::RequestApproved {
                            key_fingerprint: key.public.fingerprint(),
                            expires_at: self.now().plus_secs(3 * 86_400),
                        },
                        Some(device),
                    ),
                )
                .await
                .expect("approve")
        );
    }
}

/// A device key.
struct Key {
    public: PublicKey,
    pem: String,
}

fn key() -> Key {
    let pair = KeyAlgorithm::EcdsaP256.generate().expect("key");
    let pem = pair.public_key_pem();
    Key {
        public: PublicKey::from_pem(&pem).expect("public key"),
        pem,
    }
}

fn source(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// A v1 request from `from` for `device` with `key`, signed with `secret`.
fn v1(device: &str, key: &Key, secret: Option<&str>, from: &str) -> Request {
    let mut message = ProvisionRequest {
        device_id: device.into(),
        ip: "192.0.2.1".into(),
        mac: String::new(),
        public_key_pem: key.pem.clone(),
        signature: String::new(),
    };
    if let Some(s) = secret {
        message.sign(s.as_bytes());
    }
    Request {
        device_id: DeviceId::parse(device).expect("id"),
        key: key.public.clone(),
        claimed: Claimed {
            ip: message.ip.clone(),
            mac: String::new(),
        },
        source: source(from),
        caller: None,
        proof: Proof::V1(message),
        protocol: Protocol::V1,
    }
}

fn approved(o: &Outcome) -> &idprov_core::Issued {
    match o {
        Outcome::Approved(i) => i,
        other => panic!("expected Approved, got {other:?}"),
    }
}

fn events(entries: &[idprov_store::AuditEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.event.as_str()).collect()
}

#[tokio::test]
async fn step_1_reserved_device_ids_are_invalid() {
    let lab = lab();
    let k = key();
    let err = lab
        .core
        .provision(&v1("Admin", &k, Some("x-secret"), "10.0.0.1"))
        .await
        .unwrap_err();
    assert!(matches!(err, idprov_core::CoreError::Invalid(_)), "{err}");
    assert!(
        lab.registry
            .device("Admin", lab.now())
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test]
async fn step_2_an_administrator_gets_any_device_a_certificate_signed_with_the_empty_key() {
    let lab = lab();
    let k = key();
    let mut req = v1("sensor-2", &k, None, "10.0.0.1");
    for role in [Role::Admin, Role::Plugin] {
        req.caller = Some(Identity {
            role,
            name: "alice".into(),
            spki_der: vec![1, 2, 3],
        });
        let out = lab.core.provision(&req).await.expect("decided");
        let issued = approved(&out);
        assert!(matches!(issued.key, AnswerKey::Empty));
        assert!(!issued.redelivered);
    }
    let certs = lab
        .registry
        .certificates_of(idprov_store::CertKind::Device, "sensor-2")
        .await
        .expect("certs");
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0].issue_kind, idprov_store::IssueKind::Admin);
}

#[tokio::test]
async fn step_3_a_device_renews_its_own_certificate_and_may_change_key() {
    let lab = lab();
    let k = key();
    let mut req = v1("sensor-3", &k, None, "10.0.0.1");
    req.caller = Some(Identity {
        role: Role::Device,
        name: "sensor-3".into(),
        spki_der: k.public.spki_der().to_vec(),
    });
    approved(&lab.core.provision(&req).await.expect("renewal"));
    // Another key: a re-key.
    let k2 = key();
    let mut rekey = v1("sensor-3", &k2, None, "10.0.0.1");
    rekey.caller = req.caller.clone();
    approved(&lab.core.provision(&rekey).await.expect("re-key"));
    let kinds: Vec<_> = lab
        .registry
        .certificates_of(idprov_store::CertKind::Device, "sensor-3")
        .await
        .expect("certs")
        .iter()
        .map(|c| c.issue_kind)
        .collect();
    assert_eq!(
        kinds,
        [
            idprov_store::IssueKind::Rekey,
            idprov_store::IssueKind::Renewal
        ]
    );
    // Another device's certificate authorizes nothing here: the OOB path,
    // which finds no secret.
    let mut other = v1("sensor-x", &k, None, "10.0.0.1");
    other.caller = req.caller.clone();
    assert!(matches!(
        lab.core.provision(&other).await.expect("decided"),
        Outcome::Waiting { retry_secs: 60 }
    ));
}

#[tokio::test]
async fn step_4_1_a_locked_pair_is_refused_even_with_the_right_secret() {
    let lab = lab();
    lab.add_secret("lock-1", "the-real-secret").await;
    let k = key();
    for n in 0..5 {
        let out = lab
            .core
            .provision(&v1("lock-1", &k, Some(&format!("guess-{n}")), "10.0.0.5"))
            .await
            .expect("decided");
        assert!(matches!(out, Outcome::Rejected { .. }), "{out:?}");
    }
    let out = lab
        .core
        .provision(&v1("lock-1", &k, Some("the-real-secret"), "10.0.0.5"))
        .await
        .expect("decided");
    assert!(
        matches!(
            out,
            Outcome::Refused {
                reason: Refusal::LockedOut,
                retry_after_secs: 60
            }
        ),
        "{out:?}"
    );
    // Another source is not locked.
    approved(
        &lab.core
            .provision(&v1("lock-1", &k, Some("the-real-secret"), "10.0.0.6"))
            .await
            .expect("decided"),
    );
}

#[tokio::test]
async fn step_4_2_a_rejected_key_is_rejected_without_counting() {
    let lab = lab();
    let k = key();
    lab.core
        .provision(&v1("rej-1", &k, None, "10.0.0.1"))
        .await
        .expect("queued");
    assert!(
        lab.registry
            .reject(
                "rej-1",
                &k.public.fingerprint(),
                "not ours",
                AuditRecord::new(
                    lab.now(),
                    Actor::system(),
                    AuditEvent::RequestRejected {
                        key_fingerprint: k.public.fingerprint(),
                        reason: "not ours".into(),
                    },
                    Some("rej-1"),
                ),
            )
            .await
            .expect("reject")
    );
    lab.add_secret("rej-1", "even-with-a-secret").await;
    let out = lab
        .core
        .provision(&v1("rej-1", &k, Some("even-with-a-secret"), "10.0.0.1"))
        .await
        .expect("decided");
    assert!(
        matches!(
            out,
            Outcome::Rejected {
                retry_secs: 0,
                why: RejectReason::Administrator
            }
        ),
        "{out:?}"
    );
    assert!(
        lab.registry
            .lockout("rej-1", "10.0.0.1")
            .await
            .expect("read")
            .is_none(),
        "not counted"
    );
}

#[tokio::test]
async fn step_4_3_an_approval_issues_once_with_the_empty_key() {
    let lab = lab();
    let k = key();
    lab.core
        .provision(&v1("app-1", &k, None, "10.0.0.1"))
        .await
        .expect("queued");
    lab.approve("app-1", &k).await;
    let out = lab
        .core
        .provision(&v1("app-1", &k, None, "10.0.0.1"))
        .await
        .expect("decided");
    let issued = approved(&out);
    assert!(matches!(issued.key, AnswerKey::Empty));
    assert!(
        lab.registry
            .approval("app-1", &k.public.fingerprint(), lab.now())
            .await
            .expect("read")
            .is_none(),
        "used up"
    );
}

#[tokio::test]
async fn step_4_4_a_lost_answer_is_redelivered_to_the_same_key_only() {
    let lab = lab();
    lab.add_secret("re-1", "the-real-secret").await;
    let k = key();
    let first = lab
        .core
        .provision(&v1("re-1", &k, Some("the-real-secret"), "10.0.0.1"))
        .await
        .expect("decided");
    let first = approved(&first).clone();
    assert!(matches!(first.key, AnswerKey::Secret(..)));
    lab.clock.advance(Duration::from_secs(300));
    let again = lab
        .core
        .provision(&v1("re-1", &k, Some("the-real-secret"), "10.0.0.1"))
        .await
        .expect("decided");
    let again = approved(&again);
    assert!(again.redelivered);
    assert_eq!(again.serial, first.serial);
    // Another key with the consumed secret gets nothing.
    let thief = key();
    assert!(matches!(
        lab.core
            .provision(&v1("re-1", &thief, Some("the-real-secret"), "10.0.0.1"))
            .await
            .expect("decided"),
        Outcome::Waiting { .. }
    ));
    // The approval path too, for a request proving no secret.
    let k2 = key();
    lab.core
        .provision(&v1("re-2", &k2, None, "10.0.0.1"))
        .await
        .expect("queued");
    lab.approve("re-2", &k2).await;
    let a = approved(
        &lab.core
            .provision(&v1("re-2", &k2, None, "10.0.0.1"))
            .await
            .expect("decided"),
    )
    .clone();
    let b = lab
        .core
        .provision(&v1("re-2", &k2, None, "10.0.0.1"))
        .await
        .expect("decided");
    assert_eq!(approved(&b).serial, a.serial);
    // Past the window: nothing is re-delivered.
    lab.clock.advance(Duration::from_secs(601));
    assert!(matches!(
        lab.core
            .provision(&v1("re-1", &k, Some("the-real-secret"), "10.0.0.1"))
            .await
            .expect("decided"),
        Outcome::Waiting { .. }
    ));
}

#[tokio::test]
async fn step_4_5_no_secret_is_waiting_recorded_once_within_the_caps() {
    let lab = lab();
    let k = key();
    for _ in 0..3 {
        assert!(matches!(
            lab.core
                .provision(&v1("wait-1", &k, None, "10.0.0.9"))
                .await
                .expect("decided"),
            Outcome::Waiting { retry_secs: 60 }
        ));
    }
    let queue = lab.registry.waiting_for("wait-1").await.expect("read");
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].attempts, 3);
    // The per-source cap (3 here): the fourth device from that source is refused.
    for n in 2..=3 {
        lab.core
            .provision(&v1(&format!("wait-{n}"), &key(), None, "10.0.0.9"))
            .await
            .expect("decided");
    }
    assert!(matches!(
        lab.core
            .provision(&v1("wait-4", &key(), None, "10.0.0.9"))
            .await
            .expect("decided"),
        Outcome::Refused {
            reason: Refusal::WaitingFromSource,
            ..
        }
    ));
}

#[tokio::test]
async fn step_4_6_a_wrong_secret_is_rejected_and_counted_and_the_budget_holds_across_sources() {
    let lab = lab();
    lab.add_secret("pin-1", "123456").await;
    let k = key();
    let out = lab
        .core
        .provision(&v1("pin-1", &k, Some("000000"), "10.0.1.1"))
        .await
        .expect("decided");
    assert!(matches!(
        out,
        Outcome::Rejected {
            retry_secs: 0,
            why: RejectReason::WrongSecret
        }
    ));
    assert_eq!(
        lab.registry
            .lockout("pin-1", "10.0.1.1")
            .await
            .expect("read")
            .map(|l| l.failures),
        Some(1)
    );
    assert!(
        lab.registry
            .live_secret("pin-1", lab.now())
            .await
            .expect("read")
            .is_some(),
        "the secret stays"
    );
    // An unsigned request is no guess.
    let unsigned = lab
        .core
        .provision(&v1("pin-1", &k, None, "10.0.1.2"))
        .await
        .expect("decided");
    assert!(matches!(
        unsigned,
        Outcome::Rejected {
            retry_secs: 0,
            why: RejectReason::NoProof
        }
    ));
    // 29 more wrong secrets from 29 addresses spend the budget of 30.
    for n in 2..=30 {
        lab.core
            .provision(&v1(
                "pin-1",
                &k,
                Some(&format!("{n:06}")),
                &format!("10.0.2.{n}"),
            ))
            .await
            .expect("decided");
    }
    let out = lab
        .core
        .provision(&v1("pin-1", &k, Some("123456"), "10.0.3.1"))
        .await
        .expect("decided");
    assert!(
        matches!(
            out,
            Outcome::Refused {
                reason: Refusal::GuessBudgetSpent,
                ..
            }
        ),
        "{out:?}"
    );
}

#[tokio::test]
async fn step_4_7_the_right_secret_issues_consumes_and_is_recorded_at_once() {
    let lab = lab();
    lab.add_secret("ok-1", "the-real-secret").await;
    let k = key();
    let out = lab
        .core
        .provision(&v1("ok-1", &k, Some("the-real-secret"), "10.0.0.1"))
        .await
        .expect("decided");
    let issued = approved(&out);
    assert!(matches!(issued.key, AnswerKey::Secret(..)));
    assert!(issued.chain_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(issued.renew_after_secs, 15 * 86_400);
    // Step 5: the certificate, the consumed secret and the audit entry are
    // in the registry before the answer.
    let cert = lab.consumed_and_recorded("ok-1", issued).await;
    assert_eq!(cert.subject, "ok-1");
    let entries = lab.registry.audit_entries(0, 100).await.expect("audit");
    assert!(events(&entries).contains(&"certificate_issued"));
    // A verified certificate on the connection (any) makes it the empty key.
    lab.add_secret("ok-2", "another-secret").await;
    let mut with_cert = v1("ok-2", &k, Some("another-secret"), "10.0.0.1");
    with_cert.caller = Some(Identity {
        role: Role::Client,
        name: "someone".into(),
        spki_der: vec![],
    });
    let out = lab.core.provision(&with_cert).await.expect("decided");
    assert!(matches!(approved(&out).key, AnswerKey::Empty));
}

#[tokio::test]
async fn unauthenticated_events_are_audited_at_a_bounded_rate() {
    let lab = lab_with(Policy {
        waiting_caps: WaitingCaps {
            per_source: 1000,
            total: 1000,
        },
        ..policy()
    });
    for n in 0..50 {
        lab.core
            .provision(&v1(&format!("flood-{n}"), &key(), None, "10.0.0.1"))
            .await
            .expect("decided");
    }
    let entries = lab.registry.audit_entries(0, 1000).await.expect("audit");
    assert_eq!(events(&entries), ["request_queued"]);
    lab.clock.advance(Duration::from_secs(61));
    lab.core.flush_aggregated(false).await;
    let entries = lab.registry.audit_entries(0, 1000).await.expect("audit");
    assert_eq!(events(&entries), ["request_queued", "audit_aggregated"]);
    assert_eq!(entries[1].detail["count"], 49);
}

/// idprov v2 (pake.rs): unfinished runs are kept per connection, bounded
/// per source and in all, and expire; a new run on a connection replaces
/// its old one; a run against a registration is counted as a guess when it
/// starts, and a locked-out source gets no run.
#[tokio::test]
async fn unfinished_v2_runs_are_bounded_counted_and_expire() {
    use idprov_proto::v2;
    let lab = lab();
    let device = idprov_proto::DeviceId::parse("pake-dev").expect("id");
    let secret = v2::derive(
        b"493817",
        "pake-dev",
        &lab.core.pake_params(&device).await.expect("params"),
    )
    .expect("derive");
    let ca = idprov_proto::Fingerprint::from_bytes([1; 32]);
    let share = |n: u8| {
        let binding = v2::Binding::new("pake-dev", &ca, &[n; 32]);
        v2::prover_start(&secret, &binding, &mut v2::SeededRng::new([n; 64])).1
    };
    let start = |n: u8, source: &'static str| {
        let core = &lab.core;
        let device = device.clone();
        let share_p = share(n);
        async move {
            core.pake_start(&device, &share_p, &[n; 32], source.parse().expect("ip"))
                .await
                .expect("decided")
        }
    };
    // No registration: decoy runs, not counted, but kept and bounded.
    for n in 0..4 {
        assert!(start(n, "10.0.0.1").await.is_ok());
    }
    assert!(
        start(0, "10.0.0.1").await.is_ok(),
        "a connection's new run replaces its old one"
    );
    let (refusal, _) = start(4, "10.0.0.1").await.expect_err("per source");
    assert_eq!(refusal, idprov_core::Refusal::PakeSessions);
    assert!(start(10, "10.0.0.2").await.is_ok());
    assert!(start(11, "10.0.0.2").await.is_ok());
    assert!(
        start(12, "10.0.0.3").await.expect_err("in all").0 == idprov_core::Refusal::PakeSessions
    );
    assert_eq!(lab.core.pake_sessions().len(), 6);
    // A minute later they have expired and make room.
    lab.clock.advance(Duration::from_secs(61));
    assert!(start(12, "10.0.0.3").await.is_ok());
    assert!(
        lab.registry
            .lockout("pake-dev", "10.0.0.1")
            .await
            .expect("read")
            .is_none()
    );

    // Registered: each run is a guess; the fifth locks the source out.
    lab.add_secret("pake-dev", "493817").await;
    for n in 20..25 {
        lab.clock.advance(Duration::from_secs(61));
        assert!(start(n, "10.0.0.9").await.is_ok());
    }
    let lock = lab
        .registry
        .lockout("pake-dev", "10.0.0.9")
        .await
        .expect("read")
        .expect("counted");
    assert_eq!(lock.failures, 5);
    let (refusal, retry) = start(25, "10.0.0.9").await.expect_err("locked out");
    assert_eq!(refusal, idprov_core::Refusal::LockedOut);
    assert!(retry > 0);
}

#[tokio::test]
async fn a_renewal_supersedes_the_older_certificates_after_the_grace_period() {
    let lab = lab_with(Policy {
        supersede_after: Some(Duration::from_secs(3600)),
        ..policy()
    });
    let k = key();
    let caller = Identity {
        role: Role::Device,
        name: "sensor-s".into(),
        spki_der: k.public.spki_der().to_vec(),
    };
    let mut first = v1("sensor-s", &k, None, "10.0.0.1");
    first.caller = Some(caller.clone());
    let old = approved(&lab.core.provision(&first).await.expect("issued")).clone();
    // The certificate names the configured OCSP responder and CRL.
    let der = idprov_ca::pem::parse_certificates(&old.chain_pem).expect("PEM")[0].clone();
    let text = String::from_utf8_lossy(&der).into_owned();
    assert!(
        text.contains("http://hub.local:8080/idprov/ocsp"),
        "AIA OCSP URL"
    );
    assert!(
        text.contains("https://hub.local:43776/idprov/crl"),
        "CRL DP"
    );

    // A re-key 10 minutes later: the old certificate is superseded an hour
    // after that, by the registry's sweep, with reason 4.
    lab.clock.advance(Duration::from_secs(600));
    let k2 = key();
    let mut rekey = v1("sensor-s", &k2, None, "10.0.0.1");
    rekey.caller = Some(caller);
    let new = approved(&lab.core.provision(&rekey).await.expect("re-key")).clone();
    let sweep = |at: UnixTime| {
        let registry = lab.registry.clone();
        async move {
            registry
                .revoke_superseded(at, idprov_core::sweep::superseded(at))
                .await
                .expect("sweep")
        }
    };
    assert!(
        sweep(lab.now().plus_secs(3599)).await.is_empty(),
        "grace period"
    );
    let revoked = sweep(lab.now().plus_secs(3600)).await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].serial, old.serial);
    assert_eq!(revoked[0].by, new.serial);
    let entries = lab.registry.audit_entries(0, 1000).await.expect("audit");
    let last = entries.last().expect("entry");
    assert_eq!(last.event, "certificate_revoked");
    assert_eq!(last.actor, "system");
    assert_eq!(last.device_id.as_deref(), Some("sensor-s"));
    assert_eq!(last.detail["reason"], 4);
    assert_eq!(
        last.detail["note"],
        format!("superseded by {}", new.serial).as_str()
    );
    let current = lab
        .registry
        .certificate(&new.serial)
        .await
        .expect("read")
        .expect("known");
    assert!(current.revoked_at.is_none(), "the newest stays valid");
}

#[tokio::test]
async fn without_the_policy_nothing_is_superseded() {
    let lab = lab();
    let k = key();
    let mut req = v1("sensor-n", &k, None, "10.0.0.1");
    req.caller = Some(Identity {
        role: Role::Device,
        name: "sensor-n".into(),
        spki_der: k.public.spki_der().to_vec(),
    });
    approved(&lab.core.provision(&req).await.expect("issued"));
    approved(&lab.core.provision(&req).await.expect("renewed"));
    let at = lab.now().plus_secs(365 * 86_400);
    assert!(
        lab.registry
            .revoke_superseded(at, idprov_core::sweep::superseded(at))
            .await
            .expect("sweep")
            .is_empty()
    );
}

/// An EST request from `from` for `device` with `key`, with its Basic
/// password `secret` (the secret in clear) or none.
fn est(device: &str, key: &Key, secret: Option<&str>, from: &str) -> Request {
    Request {
        device_id: DeviceId::parse(device).expect("id"),
        key: key.public.clone(),
        claimed: Claimed::default(),
        source: source(from),
        caller: None,
        proof: secret.map_or(Proof::None, |s| {
            Proof::Secret(OobSecret::parse(s).expect("secret"))
        }),
        protocol: Protocol::Est,
    }
}

#[tokio::test]
async fn a_secret_in_clear_is_checked_consumed_and_counted_like_an_hmac() {
    let lab = lab();
    lab.add_secret("est-1", "the-real-secret").await;
    let k = key();
    // No password where a secret is registered: no guess, nothing counted.
    let out = lab
        .core
        .provision(&est("est-1", &k, None, "10.0.4.1"))
        .await
        .expect("decided");
    assert!(
        matches!(
            out,
            Outcome::Rejected {
                retry_secs: 0,
                why: RejectReason::NoProof
            }
        ),
        "{out:?}"
    );
    // Wrong secrets over EST and wrong HMACs over v1 count toward one lock.
    for n in 0..4 {
        let out = lab
            .core
            .provision(&est("est-1", &k, Some(&format!("guess-{n}")), "10.0.4.1"))
            .await
            .expect("decided");
        assert!(
            matches!(
                out,
                Outcome::Rejected {
                    why: RejectReason::WrongSecret,
                    ..
                }
            ),
            "{out:?}"
        );
    }
    lab.core
        .provision(&v1("est-1", &k, Some("guess-v1"), "10.0.4.1"))
        .await
        .expect("decided");
    let out = lab
        .core
        .provision(&est("est-1", &k, Some("the-real-secret"), "10.0.4.1"))
        .await
        .expect("decided");
    assert!(
        matches!(
            out,
            Outcome::Refused {
                reason: Refusal::LockedOut,
                ..
            }
        ),
        "{out:?}"
    );
    // Another source with the right secret: issued, consumed, recorded as EST.
    let out = lab
        .core
        .provision(&est("est-1", &k, Some("the-real-secret"), "10.0.4.2"))
        .await
        .expect("decided");
    let issued = approved(&out).clone();
    assert!(!issued.redelivered);
    let cert = lab.consumed_and_recorded("est-1", &issued).await;
    assert_eq!(cert.protocol, Some(Protocol::Est));
    let entries = lab.registry.audit_entries(0, 100).await.expect("audit");
    let entry = entries
        .iter()
        .find(|e| e.event == "certificate_issued")
        .expect("audited");
    assert_eq!(entry.detail["protocol"], "est");
    assert_eq!(entry.detail["how"], "oob");
    // A lost answer: the same secret and key get the same certificate.
    let again = lab
        .core
        .provision(&est("est-1", &k, Some("the-real-secret"), "10.0.4.2"))
        .await
        .expect("decided");
    assert_eq!(approved(&again).serial, issued.serial);
    assert!(approved(&again).redelivered);
    // A device that asks with nothing is queued as an EST request.
    let k2 = key();
    assert!(matches!(
        lab.core
            .provision(&est("est-2", &k2, None, "10.0.4.3"))
            .await
            .expect("decided"),
        Outcome::Waiting { .. }
    ));
    let waiting = lab.registry.waiting_for("est-2").await.expect("read");
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].protocol, Protocol::Est);
}

/// idprov v2 re-delivery (PROTOCOL.md §11.5, §6 4.4): a device whose
/// Approved answer was lost runs v2 again, with the same key, against the
/// registration its first run consumed, and is given the same certificate,
/// signed with the new run's key; with another key it is not. For a
/// v2-only registration (its stored verifier) and a default one (the record
/// derived from its sealed secret) alike.
#[tokio::test]
async fn a_lost_v2_answer_is_delivered_again() {
    let lab = lab();
    lab.add_v2_only("pake-lost", "493817").await;
    lab.add_secret("plain-lost", "7K3MQ2Z8WX4VTN6R").await;
    for (device, secret) in [("pake-lost", "493817"), ("plain-lost", "7K3MQ2Z8WX4VTN6R")] {
        let k = key();
        let (first, _) = lab.v2_run(device, secret, &k, 1).await.expect("confirmed");
        let first = approved(&first).clone();
        assert!(!first.redelivered);
        lab.consumed_and_recorded(device, &first).await;

        // The answer was lost: the same run again, on a new connection.
        lab.clock.advance(Duration::from_secs(30));
        let (again, keys) = lab.v2_run(device, secret, &k, 2).await.expect("confirmed");
        let again = approved(&again);
        assert!(again.redelivered, "{device}");
        assert_eq!(again.serial, first.serial);
        match &again.key {
            AnswerKey::Session(s) => assert_eq!(s.bytes(), &*keys.answer_key()),
            other => panic!("expected the run's key, got {other:?}"),
        }
        let entries = lab.registry.audit_entries(0, 1000).await.expect("audit");
        let last = entries.last().expect("entry");
        assert_eq!(last.event, "certificate_redelivered");
        assert_eq!(last.detail["protocol"], "v2");

        // A wrong secret against the consumed registration confirms nothing.
        assert!(lab.v2_run(device, "000000", &k, 3).await.is_none());
        // Another key gets no certificate: there is no live registration.
        let (other, _) = lab
            .v2_run(device, secret, &key(), 4)
            .await
            .expect("confirmed");
        assert!(matches!(other, Outcome::Waiting { .. }), "{other:?}");

        // After the re-delivery window the consumed registration is gone:
        // a decoy run, whose confirmV the device refuses.
        lab.clock.advance(Duration::from_secs(601));
        assert!(lab.v2_run(device, secret, &k, 5).await.is_none());
    }
}

/// A v2-only registration keeps no form of the secret, so a proof of the
/// secret itself — v1's HMAC, EST's password, or none — is Rejected as
/// `V2Only` and not counted (PROTOCOL.md §11.1); the registration stays, and
/// a v2 run with the same secret then issues.
#[tokio::test]
async fn a_v2_only_registration_refuses_v1_and_est_without_counting() {
    let lab = lab();
    lab.add_v2_only("pin-only", "493817").await;
    let k = key();
    for request in [
        v1("pin-only", &k, Some("493817"), "10.0.5.1"),
        v1("pin-only", &k, None, "10.0.5.1"),
        est("pin-only", &k, Some("493817"), "10.0.5.1"),
        est("pin-only", &k, None, "10.0.5.1"),
    ] {
        for _ in 0..6 {
            let out = lab.core.provision(&request).await.expect("decided");
            assert!(
                matches!(
                    out,
                    Outcome::Rejected {
                        why: RejectReason::V2Only,
                        retry_secs: 0
                    }
                ),
                "{out:?}"
            );
        }
    }
    assert!(
        lab.registry
            .lockout("pin-only", "10.0.5.1")
            .await
            .expect("read")
            .is_none(),
        "nothing counted"
    );
    let (out, _) = lab
        .v2_run("pin-only", "493817", &k, 7)
        .await
        .expect("confirmed");
    approved(&out);
}

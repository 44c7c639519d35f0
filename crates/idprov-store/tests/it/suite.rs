//! Backend-independent registry behaviour. Every function takes any
//! [`Registry`] and asserts what the trait promises.

use std::sync::Arc;

use idprov_proto::{KeyFingerprint, SerialNumber, UnixTime};
use idprov_store::*;
use serde_json::json;

/// Defines one `#[tokio::test]` per suite test below, each on a registry
/// from `$open(test_name)`: an `async fn(&str) -> Option<(Guard,
/// Arc<dyn Registry>)>` (`None` skips the test, for a backend that is not
/// installed). The list is kept here once; each backend's module invokes
/// `suite::backend_tests!(open);`, so a new suite test runs on both.
macro_rules! backend_tests {
    ($open:ident) => {
        $crate::suite::backend_tests!(@each $open;
            secrets_add_replace_list_remove,
            a_v2_only_registration_keeps_its_verifier_and_no_secret,
            consuming_a_secret_is_conditional,
            redelivery_window,
            lockout_doubles_and_resets,
            the_guess_budget_spans_sources_and_restarts_with_a_new_secret,
            waiting_requests_are_recorded_once_and_capped,
            device_facts_and_listing,
            audit_chain_links_every_entry,
            purge_drops_unreadable_and_expired,
            concurrent_writers_all_commit,
            approvals_rejections_and_clearing,
            revocation_crl_and_removal,
            superseded_certificates_are_revoked_when_due,
            device_filters_agree_with_the_status_table,
            bulk_secrets_in_one_transaction,
            audit_filters_and_checkpoints,
            queue_expiry,
            web_passwords_are_kept_replaced_and_audited,
            an_issue_that_fails_a_precondition_changes_nothing,
            the_protocol_is_kept_with_certificates_requests_and_the_listing
        );
    };
    (@each $open:ident; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some((_guard, reg)) = $open(stringify!($name)).await else {
                    return;
                };
                $crate::suite::$name(&reg).await;
            }
        )*
    };
}
pub(crate) use backend_tests;

/// A fixed "now" so expiry arithmetic is exact.
pub const NOW: UnixTime = UnixTime::from_secs(1_800_000_000);

/// The fingerprint of a key named `name` in a test (a real fingerprint:
/// the store reads back only well-formed ones).
pub(crate) fn fp(name: &str) -> KeyFingerprint {
    KeyFingerprint::of_spki(name.as_bytes())
}

/// A serial number from its hex text.
pub(crate) fn serial(hex: &str) -> SerialNumber {
    SerialNumber::parse(hex).expect("a test serial")
}

pub(crate) fn audit(event: &str, device: &str) -> AuditRecord {
    AuditRecord::new(
        NOW,
        Actor::named("admin", "tester"),
        event_named(event),
        Some(device),
    )
}

/// An event of this name, with placeholder details: the suite checks
/// chains, counts and filters, not the details the server fills in.
pub(crate) fn event_named(name: &str) -> AuditEvent {
    let fp = || fp("fp-1");
    match name {
        "secret_added" => AuditEvent::SecretAdded {
            valid_until: NOW,
            short: None,
            generated: None,
            labels: None,
            v2_only: None,
            replaced: false,
        },
        "secret_removed" => AuditEvent::SecretRemoved {},
        "secrets_imported" => AuditEvent::SecretsImported {
            accepted: 0,
            replaced: 0,
            rejected: 0,
            rows_sha256: String::new(),
        },
        "request_queued" => AuditEvent::RequestQueued {
            key_fingerprint: fp(),
            key_type: "ECDSA-P256".into(),
            source: "10.0.0.1".into(),
            claimed_ip: String::new(),
            claimed_mac: String::new(),
            protocol: Some(Protocol::Est),
        },
        "request_approved" => AuditEvent::RequestApproved {
            key_fingerprint: fp(),
            expires_at: NOW,
        },
        "request_rejected" => AuditEvent::RequestRejected {
            key_fingerprint: fp(),
            reason: "test".into(),
        },
        "requests_cleared" => AuditEvent::RequestsCleared {
            key_fingerprint: None,
        },
        "certificate_issued" => AuditEvent::CertificateIssued {
            serial: serial("00"),
            how: "oob".into(),
            secret_used: true,
            key_fingerprint: fp(),
            key_type: "ECDSA-P256".into(),
            not_after: NOW,
            protocol: Some(Protocol::V1),
        },
        "lockout_cleared" => AuditEvent::LockoutCleared {},
        "web_password_set" => AuditEvent::WebPasswordSet {
            name: "tester".into(),
        },
        "web_password_removed" => AuditEvent::WebPasswordRemoved {
            name: "tester".into(),
            why: "test".into(),
        },
        other => panic!("the suite has no event {other:?}"),
    }
}

/// The entries of a secret registration, from its outcome.
pub(crate) fn added(device: &str) -> AuditOf<PutSecretOutcome> {
    let device = device.to_owned();
    AuditOf::one(move |outcome: &PutSecretOutcome| {
        AuditRecord::new(
            NOW,
            Actor::named("admin", "tester"),
            AuditEvent::SecretAdded {
                valid_until: NOW,
                short: None,
                generated: None,
                labels: None,
                v2_only: None,
                replaced: *outcome == PutSecretOutcome::Replaced,
            },
            Some(&device),
        )
    })
}

/// The entries of a revocation or a removal, from the serials revoked.
pub(crate) fn revoking(device: &str) -> AuditOf<[SerialNumber]> {
    let device = device.to_owned();
    AuditOf::one(move |serials: &[SerialNumber]| {
        AuditRecord::new(
            NOW,
            Actor::named("admin", "tester"),
            AuditEvent::CertificateRevoked {
                reason: 1,
                note: String::new(),
                serials: serials.to_vec(),
            },
            Some(&device),
        )
    })
}

/// The entry of a bulk import, from its outcome.
pub(crate) fn imported() -> AuditOf<BulkOutcome> {
    AuditOf::one(|o: &BulkOutcome| {
        AuditRecord::new(
            NOW,
            Actor::named("admin", "tester"),
            AuditEvent::SecretsImported {
                accepted: o.accepted,
                replaced: o.replaced,
                rejected: o.rejected.len() as u64,
                rows_sha256: o.rows_sha256.clone(),
            },
            None,
        )
    })
}

/// The entries of a sweep, from its two counts (as the core makes them).
pub(crate) fn swept(now: UnixTime) -> AuditOf<(u64, u64)> {
    AuditOf::new(move |&(a, b): &(u64, u64)| {
        let mut v = Vec::new();
        if a > 0 {
            v.push(AuditRecord::new(
                now,
                Actor::system(),
                AuditEvent::SecretsPurged {
                    count: a,
                    reason: "test".into(),
                },
                None,
            ));
        }
        if b > 0 {
            v.push(AuditRecord::new(
                now,
                Actor::system(),
                AuditEvent::SecretsExpired { count: b },
                None,
            ));
        }
        v
    })
}

pub(crate) fn secret(device: &str, valid_until: UnixTime) -> NewSecret {
    NewSecret {
        device_id: device.into(),
        sealed: format!("sealed-{device}-{valid_until}").into_bytes(),
        key_id: "key-1".into(),
        created_at: NOW,
        valid_until,
        created_by: Actor::named("admin", "tester"),
        pake: None,
    }
}

pub(crate) fn cert(device: &str, hex: &str, not_after: UnixTime) -> NewCertificate {
    NewCertificate {
        serial: serial(hex),
        kind: CertKind::Device,
        subject: device.into(),
        pem: format!("PEM {hex}"),
        key_fingerprint: fp("fp-1"),
        key_type: "ECDSA-P256".into(),
        not_before: NOW - 60,
        not_after,
        issued_at: NOW,
        issue_kind: IssueKind::Oob,
        authorized_by: format!("device:{device}"),
        protocol: Some(Protocol::V1),
    }
}

pub(crate) fn issue(device: &str, serial: &str, consume: Option<i64>) -> IssueRecord {
    IssueRecord {
        cert: cert(device, serial, NOW + 30 * 86_400),
        consume_approval: None,
        consume_secret: consume.map(|id| ConsumeSecret {
            secret_id: id,
            key_fingerprint: fp("fp-1"),
        }),
        reset_lockout_for: Some("10.0.0.9".into()),
        clear_waiting_key: Some(fp("fp-1")),
        supersede_older_at: None,
        audit: audit("certificate_issued", device),
    }
}

/// A v2-only registration (PROTOCOL.md §11) stores its verifier and an
/// empty `sealed`; the single read and the OOB path's one-statement view
/// both return it; a default registration has no verifier. Consumed, it
/// keeps its verifier and its id for re-delivery (§11.5), found by device
/// and key, and as the device's last consumed registration; a bulk import
/// stores a row's verifier too.
pub async fn a_v2_only_registration_keeps_its_verifier_and_no_secret(reg: &Arc<dyn Registry>) {
    let verifier = PakeVerifier {
        salt: vec![9; 16],
        iterations: 10_000,
        sealed_record: vec![7; 125],
    };
    let mut s = secret("pake-1", NOW + 100);
    s.sealed = Vec::new();
    s.pake = Some(verifier.clone());
    reg.put_secret(s, added("pake-1")).await.expect("put");
    let live = reg
        .live_secret("pake-1", NOW)
        .await
        .expect("read")
        .expect("live");
    assert_eq!(live.sealed_secret(), None);
    assert_eq!(live.pake, Some(verifier.clone()));
    let view = reg
        .oob_view("pake-1", &fp("k"), "127.0.0.1", NOW, NOW - 600)
        .await
        .expect("view");
    assert_eq!(view.live_secret.as_ref(), Some(&live));
    reg.put_secret(secret("plain-1", NOW + 100), added("plain-1"))
        .await
        .expect("put");
    let plain = reg
        .live_secret("plain-1", NOW)
        .await
        .expect("read")
        .expect("live");
    assert_eq!(plain.pake, None);
    assert!(plain.sealed_secret().is_some());

    // Consumed: kept for re-delivery with its verifier and its id.
    reg.record_issue(issue("pake-1", "cc01", Some(live.id)))
        .await
        .expect("issue");
    let consumed = reg
        .consumed_secret("pake-1", &fp("fp-1"), NOW - 600)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(consumed.sealed_secret(), None);
    assert_eq!(consumed.pake, Some(verifier.clone()));
    assert_eq!(consumed.secret_id, Some(live.id));
    assert_eq!(
        reg.last_consumed("pake-1", NOW - 600)
            .await
            .expect("read")
            .as_ref(),
        Some(&consumed)
    );
    assert!(
        reg.last_consumed("pake-1", NOW + 1)
            .await
            .expect("read")
            .is_none(),
        "outside the window"
    );
    let view = reg
        .oob_view("pake-1", &fp("fp-1"), "127.0.0.1", NOW, NOW - 600)
        .await
        .expect("view");
    assert_eq!(view.consumed, Some(consumed));
    assert_eq!(view.live_secret, None);
    // A default registration's consumed record has a sealed secret and
    // no verifier.
    reg.record_issue(issue("plain-1", "cc02", Some(plain.id)))
        .await
        .expect("issue");
    let consumed = reg
        .last_consumed("plain-1", NOW - 600)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!((consumed.pake, consumed.secret_id), (None, Some(plain.id)));
    assert_eq!(consumed.sealed, plain.sealed);

    // In bulk.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut row = secret("pake-bulk", NOW + 100);
    row.sealed = Vec::new();
    row.pake = Some(verifier.clone());
    tx.send(BulkMessage::Row(BulkSecret {
        index: 0,
        secret: row,
    }))
    .await
    .expect("send");
    tx.send(BulkMessage::End {
        rows_sha256: "abc".into(),
    })
    .await
    .expect("end");
    drop(tx);
    let outcome = reg
        .put_secrets_bulk(rx, true, false, imported())
        .await
        .expect("import");
    assert_eq!(outcome.accepted, 1);
    let bulk = reg
        .live_secret("pake-bulk", NOW)
        .await
        .expect("read")
        .expect("live");
    assert_eq!(bulk.sealed_secret(), None);
    assert_eq!(bulk.pake, Some(verifier));
}

pub async fn secrets_add_replace_list_remove(reg: &Arc<dyn Registry>) {
    assert_eq!(
        reg.put_secret(secret("dev-1", NOW + 100), added("dev-1"))
            .await
            .expect("put"),
        PutSecretOutcome::Added
    );
    let first = reg
        .live_secret("dev-1", NOW)
        .await
        .expect("read")
        .expect("live");
    assert_eq!(
        reg.put_secret(secret("dev-1", NOW + 200), added("dev-1"))
            .await
            .expect("put"),
        PutSecretOutcome::Replaced
    );
    let second = reg
        .live_secret("dev-1", NOW)
        .await
        .expect("read")
        .expect("live");
    assert_ne!(first.id, second.id, "a replaced secret has a new identity");
    assert_eq!(second.valid_until, NOW + 200);
    // Expired at NOW + 201.
    assert!(
        reg.live_secret("dev-1", NOW + 201)
            .await
            .expect("read")
            .is_none()
    );

    for i in 0..25 {
        reg.put_secret(secret(&format!("bulk-{i:02}"), NOW + 100), added("x"))
            .await
            .expect("put");
    }
    // Keyset paging returns every entry once, in byte order.
    let mut seen = Vec::new();
    let mut page = Page {
        after: None,
        limit: 10,
    };
    loop {
        let rows = reg.list_secrets(&page).await.expect("list");
        if rows.is_empty() {
            break;
        }
        page.after = rows.last().map(|r| r.device_id.clone());
        seen.extend(rows.into_iter().map(|r| r.device_id));
    }
    assert_eq!(seen.len(), 26);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);

    assert!(
        reg.remove_secret("dev-1", audit("secret_removed", "dev-1"))
            .await
            .expect("rm")
    );
    assert!(
        !reg.remove_secret("dev-1", audit("secret_removed", "dev-1"))
            .await
            .expect("rm")
    );
    assert!(reg.live_secret("dev-1", NOW).await.expect("read").is_none());
}

pub async fn consuming_a_secret_is_conditional(reg: &Arc<dyn Registry>) {
    reg.put_secret(secret("dev-c", NOW + 100), added("dev-c"))
        .await
        .expect("put");
    let s = reg
        .live_secret("dev-c", NOW)
        .await
        .expect("read")
        .expect("live");
    assert_eq!(
        reg.record_issue(issue("dev-c", "aa01", Some(s.id)))
            .await
            .expect("issue"),
        IssueOutcome::Recorded
    );
    assert!(
        reg.live_secret("dev-c", NOW).await.expect("read").is_none(),
        "consumed"
    );
    // A second request verified against the same secret cannot consume it again.
    assert_eq!(
        reg.record_issue(issue("dev-c", "aa02", Some(s.id)))
            .await
            .expect("issue"),
        IssueOutcome::SecretGone
    );
    assert!(
        reg.certificate(&serial("aa02"))
            .await
            .expect("read")
            .is_none(),
        "nothing recorded"
    );
    // Nor can a request verified against a secret that was replaced meanwhile.
    reg.put_secret(secret("dev-c", NOW + 100), added("dev-c"))
        .await
        .expect("put");
    let old = reg
        .live_secret("dev-c", NOW)
        .await
        .expect("read")
        .expect("live");
    reg.put_secret(secret("dev-c", NOW + 300), added("dev-c"))
        .await
        .expect("replace");
    assert_eq!(
        reg.record_issue(issue("dev-c", "aa03", Some(old.id)))
            .await
            .expect("issue"),
        IssueOutcome::SecretGone
    );
    let recorded = reg
        .certificate(&serial("aa01"))
        .await
        .expect("read")
        .expect("present");
    assert_eq!(recorded.subject, "dev-c");
    assert_eq!(recorded.issue_kind, IssueKind::Oob);
    assert_eq!(recorded.revoked_at, None);
}

pub async fn redelivery_window(reg: &Arc<dyn Registry>) {
    reg.put_secret(secret("dev-r", NOW + 100), added("dev-r"))
        .await
        .expect("put");
    let s = reg
        .live_secret("dev-r", NOW)
        .await
        .expect("read")
        .expect("live");
    reg.record_issue(issue("dev-r", "bb01", Some(s.id)))
        .await
        .expect("issue");
    let consumed = reg
        .consumed_secret("dev-r", &fp("fp-1"), NOW - 600)
        .await
        .expect("read")
        .expect("kept for re-delivery");
    assert_eq!(consumed.serial, "bb01");
    assert_eq!(consumed.sealed, s.sealed);
    assert!(
        reg.consumed_secret("dev-r", &fp("other-key"), NOW - 600)
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        reg.consumed_secret("dev-r", &fp("fp-1"), NOW + 1)
            .await
            .expect("read")
            .is_none()
    );
}

pub async fn lockout_doubles_and_resets(reg: &Arc<dyn Registry>) {
    let policy = LockoutPolicy {
        threshold: 5,
        base_secs: 60,
        max_secs: 3600,
        forget_after_secs: 86_400,
        device_budget: 0,
        device_window_secs: 3600,
    };
    let mut last = None;
    for n in 1..=4 {
        let l = reg
            .record_failure("dev-l", "10.0.0.9", 1, NOW, &policy)
            .await
            .expect("fail")
            .lockout;
        assert_eq!(l.failures, n);
        assert_eq!(
            l.locked_until,
            UnixTime::EPOCH,
            "no lock before the fifth failure"
        );
        last = Some(l);
    }
    assert!(last.is_some());
    let fifth = reg
        .record_failure("dev-l", "10.0.0.9", 1, NOW, &policy)
        .await
        .expect("fail")
        .lockout;
    assert_eq!(fifth.locked_until, NOW + 60);
    let sixth = reg
        .record_failure("dev-l", "10.0.0.9", 1, NOW + 61, &policy)
        .await
        .expect("fail")
        .lockout;
    assert_eq!(sixth.locked_until, NOW + 61 + 120, "doubling");
    let mut l = sixth;
    for _ in 0..10 {
        l = reg
            .record_failure("dev-l", "10.0.0.9", 1, NOW + 100, &policy)
            .await
            .expect("fail")
            .lockout;
    }
    assert_eq!(l.locked_until, NOW + 100 + 3600, "capped at one hour");
    // Counters are per (device, source).
    assert!(
        reg.lockout("dev-l", "10.0.0.8")
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        reg.lockout("dev-l", "10.0.0.9")
            .await
            .expect("read")
            .map(|l| l.failures),
        Some(16)
    );
    // A successful issuance for that source resets it.
    reg.record_issue(issue("dev-l", "cc01", None))
        .await
        .expect("issue");
    assert!(
        reg.lockout("dev-l", "10.0.0.9")
            .await
            .expect("read")
            .is_none()
    );
    // The store reports when a lock starts (the server audits it), and
    // audits nothing itself: anyone can cause these.
    let f = reg
        .record_failure("dev-m", "10.0.0.9", 1, NOW, &policy)
        .await
        .expect("fail");
    assert_eq!(f.lock_started, 0);
    for _ in 0..3 {
        reg.record_failure("dev-m", "10.0.0.9", 1, NOW, &policy)
            .await
            .expect("fail");
    }
    let fifth = reg
        .record_failure("dev-m", "10.0.0.9", 1, NOW, &policy)
        .await
        .expect("fail");
    assert_eq!(fifth.lock_started, 60);
    let entries = reg.audit_entries(0, 1000).await.expect("audit");
    assert!(!entries.iter().any(|e| e.event == "lockout_started"));
}

pub async fn the_guess_budget_spans_sources_and_restarts_with_a_new_secret(
    reg: &Arc<dyn Registry>,
) {
    let policy = LockoutPolicy {
        threshold: 5,
        base_secs: 60,
        max_secs: 3600,
        forget_after_secs: 86_400,
        device_budget: 3,
        device_window_secs: 3600,
    };
    // Three wrong secrets from three addresses: no source is locked, the
    // device's budget is spent.
    for (n, source) in ["10.0.0.1", "10.0.0.2", "2001:db8:1:2::/64"]
        .iter()
        .enumerate()
    {
        let f = reg
            .record_failure("dev-g", source, 7, NOW + n as i64, &policy)
            .await
            .expect("fail");
        assert_eq!(f.lockout.failures, 1);
        assert_eq!(f.budget.failures, n as u32 + 1);
        assert_eq!(f.budget_spent, n == 2, "spent by the third");
        assert_eq!((f.budget.secret_id, f.budget.window_start), (7, NOW));
    }
    let budget = reg.guess_budget("dev-g").await.expect("read");
    assert_eq!(
        GuessBudget::exhausted_until(budget.as_ref(), 7, &policy, NOW + 10),
        Some(NOW + 3600)
    );
    assert_eq!(
        reg.oob_view("dev-g", &fp("fp-1"), "10.0.0.9", NOW, NOW - 600)
            .await
            .expect("view")
            .guess_budget,
        budget,
        "the OOB path reads the same budget"
    );
    // A fresh secret (another id) is not covered by the spent budget…
    assert_eq!(
        GuessBudget::exhausted_until(budget.as_ref(), 8, &policy, NOW + 10),
        None
    );
    // …and its first wrong guess starts a budget of its own.
    let f = reg
        .record_failure("dev-g", "10.0.0.3", 8, NOW + 20, &policy)
        .await
        .expect("fail");
    assert_eq!((f.budget.secret_id, f.budget.failures), (8, 1));
    // A window that ended starts again.
    let f = reg
        .record_failure("dev-g", "10.0.0.3", 8, NOW + 20 + 3600, &policy)
        .await
        .expect("fail");
    assert_eq!(
        (f.budget.failures, f.budget.window_start),
        (1, NOW + 20 + 3600)
    );
    assert_eq!(
        GuessBudget::exhausted_until(Some(&f.budget), 8, &policy, NOW + 4000),
        None
    );
    // Spending it is reported once (the server audits it).
    // An administrator's unlock clears it.
    assert_eq!(
        reg.clear_lockouts("dev-g", audit("lockout_cleared", "dev-g"))
            .await
            .expect("clear"),
        4,
        "the four sources' counters (and the budget)"
    );
    assert_eq!(reg.guess_budget("dev-g").await.expect("read"), None);
    // With no budget configured, nothing is ever spent.
    let off = LockoutPolicy {
        device_budget: 0,
        ..policy
    };
    let f = reg
        .record_failure("dev-g", "10.0.0.4", 8, NOW, &off)
        .await
        .expect("fail");
    assert_eq!(
        GuessBudget::exhausted_until(Some(&f.budget), 8, &off, NOW),
        None
    );
}

pub async fn waiting_requests_are_recorded_once_and_capped(reg: &Arc<dyn Registry>) {
    let caps = WaitingCaps {
        per_source: 2,
        total: 3,
    };
    let req = |device: &str, key: &str, source: &str, at: UnixTime| WaitingRequest {
        device_id: device.into(),
        key_fingerprint: fp(key),
        key_type: "ECDSA-P256".into(),
        public_key_pem: "PEM".into(),
        claimed_ip: "<nil>".into(),
        claimed_mac: "<script>".into(),
        source: source.into(),
        first_seen: at,
        last_seen: at,
        attempts: 1,
        protocol: Protocol::V1,
    };
    assert_eq!(
        reg.record_waiting(
            req("w1", "k1", "10.0.0.1", NOW),
            caps,
            Some(audit("request_queued", "w1"))
        )
        .await
        .expect("w"),
        WaitingOutcome::Queued
    );
    assert_eq!(
        reg.record_waiting(
            req("w1", "k1", "10.0.0.1", NOW + 5),
            caps,
            Some(audit("request_queued", "w1"))
        )
        .await
        .expect("w"),
        WaitingOutcome::Updated
    );
    assert_eq!(
        reg.record_waiting(
            req("w2", "k1", "10.0.0.1", NOW),
            caps,
            Some(audit("request_queued", "w2"))
        )
        .await
        .expect("w"),
        WaitingOutcome::Queued
    );
    assert_eq!(
        reg.record_waiting(
            req("w3", "k1", "10.0.0.1", NOW),
            caps,
            Some(audit("request_queued", "w3"))
        )
        .await
        .expect("w"),
        WaitingOutcome::SourceCapReached
    );
    assert_eq!(
        reg.record_waiting(
            req("w3", "k1", "10.0.0.2", NOW),
            caps,
            Some(audit("request_queued", "w3"))
        )
        .await
        .expect("w"),
        WaitingOutcome::Queued
    );
    // Full: 10.0.0.1 holds the most (2) and more than 10.0.0.3 (none), so
    // its least recently seen entry (w2) makes room.
    assert_eq!(
        reg.record_waiting(
            req("w4", "k1", "10.0.0.3", NOW),
            caps,
            Some(audit("request_queued", "w4"))
        )
        .await
        .expect("w"),
        WaitingOutcome::Evicted
    );
    // Now no source holds more than 10.0.0.3: nothing recorded.
    assert_eq!(
        reg.record_waiting(
            req("w5", "k1", "10.0.0.3", NOW),
            caps,
            Some(audit("request_queued", "w5"))
        )
        .await
        .expect("w"),
        WaitingOutcome::TotalCapReached
    );
    let all = reg
        .list_waiting(&Page {
            after: None,
            limit: 100,
        })
        .await
        .expect("list");
    assert_eq!(all.len(), 3);
    let kept: Vec<&str> = all.iter().map(|w| w.device_id.as_str()).collect();
    assert_eq!(kept, ["w1", "w3", "w4"], "w2 made room");
    let w1 = &all[0];
    assert_eq!((w1.device_id.as_str(), w1.attempts), ("w1", 2));
    assert_eq!((w1.first_seen, w1.last_seen), (NOW, NOW + 5));
    assert_eq!(w1.claimed_mac, "<script>", "free text is stored as sent");
    // Queued once: one audit entry for w1 despite two requests.
    let entries = reg.audit_entries(0, 1000).await.expect("audit");
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.event == "request_queued" && e.device_id.as_deref() == Some("w1"))
            .count(),
        1
    );
    // Issuing for (w1, k1) clears its waiting entry.
    let mut rec = issue("w1", "dd01", None);
    rec.clear_waiting_key = Some(fp("k1"));
    reg.record_issue(rec).await.expect("issue");
    assert_eq!(
        reg.list_waiting(&Page {
            after: None,
            limit: 100
        })
        .await
        .expect("list")
        .len(),
        2
    );
    // The caps follow what left the queue: 10.0.0.1 holds nothing now and
    // the queue two of three, so its next request is queued, and then the
    // queue is full again.
    assert_eq!(
        reg.record_waiting(
            req("w6", "k1", "10.0.0.1", NOW),
            caps,
            Some(audit("request_queued", "w6"))
        )
        .await
        .expect("w"),
        WaitingOutcome::Queued
    );
    assert_eq!(
        reg.record_waiting(
            req("w7", "k1", "10.0.0.3", NOW),
            caps,
            Some(audit("request_queued", "w7"))
        )
        .await
        .expect("w"),
        WaitingOutcome::TotalCapReached
    );
    assert_eq!(reg.gauges(NOW, NOW).await.expect("gauges").waiting, 3);
}

pub async fn device_facts_and_listing(reg: &Arc<dyn Registry>) {
    assert!(
        reg.device("dev-a", NOW).await.expect("read").is_none(),
        "never heard of"
    );
    reg.put_secret(secret("dev-a", NOW + 100), added("dev-a"))
        .await
        .expect("put");
    let a = reg
        .device("dev-a", NOW)
        .await
        .expect("read")
        .expect("known");
    assert!(a.live_secret && a.newest_valid.is_none() && a.certificates == 0);

    // Two certificates for dev-b: the newer one is the one reported.
    let mut older = issue("dev-b", "ee01", None);
    older.cert.issued_at = NOW - 10;
    reg.record_issue(older).await.expect("issue");
    reg.record_issue(issue("dev-b", "ee02", None))
        .await
        .expect("issue");
    let b = reg
        .device("dev-b", NOW)
        .await
        .expect("read")
        .expect("known");
    assert_eq!(
        b.newest_valid.as_ref().map(|c| c.serial.as_str()),
        Some("ee02")
    );
    assert_eq!(b.certificates, 2);
    // After expiry there is no valid certificate.
    let later = reg
        .device("dev-b", NOW + 31 * 86_400)
        .await
        .expect("read")
        .expect("known");
    assert!(later.newest_valid.is_none());

    let certs = reg
        .certificates_of(CertKind::Device, "dev-b")
        .await
        .expect("certs");
    assert_eq!(
        certs.iter().map(|c| c.serial.as_str()).collect::<Vec<_>>(),
        vec!["ee02", "ee01"],
        "newest first"
    );
    let list = reg
        .list_devices(
            &Page {
                after: None,
                limit: 10,
            },
            NOW,
            &DeviceFilter::default(),
        )
        .await
        .expect("list");
    let ids: Vec<_> = list.iter().map(|d| d.device_id.as_str()).collect();
    assert_eq!(ids, vec!["dev-a", "dev-b"]);
    assert_eq!(list[1].serial, Some(serial("ee02")));
    assert_eq!(list[1].certificates, 2);
    assert!(list[0].live_secret);
    let next = reg
        .list_devices(
            &Page {
                after: Some("dev-a".into()),
                limit: 10,
            },
            NOW,
            &DeviceFilter::default(),
        )
        .await
        .expect("list");
    assert_eq!(next.len(), 1);
}

pub async fn audit_chain_links_every_entry(reg: &Arc<dyn Registry>) {
    for i in 0..10 {
        reg.append_audit(AuditRecord::new(
            NOW + i,
            Actor::system(),
            AuditEvent::SecretsExported {
                count: i as u64,
                source: "ünïcødé <&>".into(),
            },
            None,
        ))
        .await
        .expect("append");
    }
    let entries = reg.audit_entries(0, 100).await.expect("read");
    assert_eq!(entries.len(), 10);
    assert_eq!(entries[0].prev_hash, audit::GENESIS_HASH);
    verify_chain(None, &entries).expect("valid chain");
    // Paging continues the chain.
    let tail = reg.audit_entries(5, 100).await.expect("read");
    verify_chain(Some(&entries[4]), &tail).expect("valid tail");
    // Any edit is detected at that entry.
    let mut edited = entries.clone();
    edited[3].detail = json!({ "i": 99 });
    assert_eq!(verify_chain(None, &edited), Err(ChainError::Altered(4)));
    let mut gap = entries.clone();
    gap.remove(6);
    assert_eq!(verify_chain(None, &gap), Err(ChainError::Gap(7)));
}

pub async fn purge_drops_unreadable_and_expired(reg: &Arc<dyn Registry>) {
    reg.put_secret(secret("p1", NOW + 100), added("p1"))
        .await
        .expect("put");
    reg.put_secret(secret("p2", NOW - 1), added("p2"))
        .await
        .expect("put");
    let mut other_key = secret("p3", NOW + 100);
    other_key.key_id = "key-0".into();
    reg.put_secret(other_key, added("p3")).await.expect("put");
    let (unreadable, expired) = reg
        .purge_secrets("key-1", NOW, NOW - 600, swept(NOW))
        .await
        .expect("purge");
    assert_eq!((unreadable, expired), (1, 1));
    let left = reg
        .list_secrets(&Page {
            after: None,
            limit: 10,
        })
        .await
        .expect("list");
    assert_eq!(
        left.iter()
            .map(|s| s.device_id.as_str())
            .collect::<Vec<_>>(),
        vec!["p1"]
    );
    let entries = reg.audit_entries(0, 100).await.expect("audit");
    let purged = entries
        .iter()
        .find(|e| e.event == "secrets_purged")
        .expect("audited");
    assert_eq!(purged.detail["count"], 1);
    // Nothing to purge: no new entries.
    let before = entries.len();
    reg.purge_secrets("key-1", NOW, NOW - 600, swept(NOW))
        .await
        .expect("purge");
    assert_eq!(
        reg.audit_entries(0, 100).await.expect("audit").len(),
        before
    );
}

pub async fn concurrent_writers_all_commit(reg: &Arc<dyn Registry>) {
    // Many writers at once share group commits; every one must be recorded
    // and the chain must stay one valid chain.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let reg = reg.clone();
        tasks.push(tokio::spawn(async move {
            reg.put_secret(secret(&format!("c-{i:03}"), NOW + 100), added("c"))
                .await
        }));
    }
    for t in tasks {
        assert_eq!(
            t.await.expect("join").expect("put"),
            PutSecretOutcome::Added
        );
    }
    let all = reg
        .list_secrets(&Page {
            after: None,
            limit: 1000,
        })
        .await
        .expect("list");
    assert_eq!(all.len(), 200);
    let entries = reg.audit_entries(0, 1000).await.expect("audit");
    assert_eq!(entries.len(), 200);
    verify_chain(None, &entries).expect("one valid chain");
}

pub(crate) fn waiting(device: &str, key: &str) -> WaitingRequest {
    WaitingRequest {
        device_id: device.into(),
        key_fingerprint: fp(key),
        key_type: "ECDSA-P256".into(),
        public_key_pem: "PEM".into(),
        claimed_ip: "".into(),
        claimed_mac: "".into(),
        source: "10.0.0.1".into(),
        first_seen: NOW,
        last_seen: NOW,
        attempts: 1,
        protocol: Protocol::V1,
    }
}

const CAPS: WaitingCaps = WaitingCaps {
    per_source: 100,
    total: 100,
};

pub async fn approvals_rejections_and_clearing(reg: &Arc<dyn Registry>) {
    reg.record_waiting(
        waiting("q1", "k1"),
        CAPS,
        Some(audit("request_queued", "q1")),
    )
    .await
    .expect("w");
    reg.record_waiting(
        waiting("q1", "k2"),
        CAPS,
        Some(audit("request_queued", "q1")),
    )
    .await
    .expect("w");
    assert!(
        !reg.approve("q1", &fp("nope"), NOW + 10, audit("request_approved", "q1"))
            .await
            .expect("a")
    );
    assert!(
        reg.approve("q1", &fp("k1"), NOW + 10, audit("request_approved", "q1"))
            .await
            .expect("a")
    );
    assert!(
        reg.reject("q1", &fp("k2"), "stolen", audit("request_rejected", "q1"))
            .await
            .expect("r")
    );
    assert_eq!(
        reg.approval("q1", &fp("k1"), NOW)
            .await
            .expect("read")
            .map(|a| a.expires_at),
        Some(NOW + 10)
    );
    assert!(
        reg.approval("q1", &fp("k1"), NOW + 11)
            .await
            .expect("read")
            .is_none(),
        "lapsed"
    );
    assert_eq!(
        reg.rejection("q1", &fp("k2"))
            .await
            .expect("read")
            .map(|r| r.reason),
        Some("stolen".into())
    );
    let queue = reg
        .list_queue(
            &Page {
                after: None,
                limit: 10,
            },
            NOW,
        )
        .await
        .expect("queue");
    assert_eq!(queue.len(), 2);
    // In (device, key fingerprint) order; each entry carries its own decision.
    assert!(queue[0].request.key_fingerprint < queue[1].request.key_fingerprint);
    let entry = |key: &str| {
        queue
            .iter()
            .find(|e| e.request.key_fingerprint == fp(key))
            .expect("listed")
    };
    assert!(entry("k1").approval.is_some() && entry("k1").rejection.is_none());
    assert!(entry("k2").rejection.is_some() && entry("k2").approval.is_none());
    let facts = reg.device("q1", NOW).await.expect("read").expect("known");
    assert!(facts.approved && facts.rejected);
    assert_eq!(
        facts.status(),
        ProvisionStatus::Rejected,
        "a rejection wins over pending work"
    );

    // An approval is used once, atomically with the issuance.
    let mut rec = issue("q1", "ff01", None);
    rec.consume_approval = Some(fp("k1"));
    rec.clear_waiting_key = Some(fp("k1"));
    assert_eq!(
        reg.record_issue(rec).await.expect("issue"),
        IssueOutcome::Recorded
    );
    let mut again = issue("q1", "ff02", None);
    again.consume_approval = Some(fp("k1"));
    assert_eq!(
        reg.record_issue(again).await.expect("issue"),
        IssueOutcome::SecretGone
    );
    assert!(
        reg.certificate(&serial("ff02"))
            .await
            .expect("read")
            .is_none()
    );

    // Approving a rejected key replaces the rejection.
    assert!(
        reg.approve("q1", &fp("k2"), NOW + 10, audit("request_approved", "q1"))
            .await
            .expect("a")
    );
    assert!(
        reg.rejection("q1", &fp("k2"))
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        reg.waiting_for("q1").await.expect("read").len(),
        1,
        "k1 left the queue when issued"
    );
    let n = reg
        .clear_requests("q1", None, audit("requests_cleared", "q1"))
        .await
        .expect("clear");
    assert_eq!(n, 2, "the k2 request and its approval");
    assert!(reg.waiting_for("q1").await.expect("read").is_empty());
}

/// One entry per device of a supersession sweep, as the core makes them.
fn superseding() -> AuditOf<[Superseded]> {
    AuditOf::new(|superseded: &[Superseded]| {
        superseded
            .iter()
            .map(|s| {
                AuditRecord::new(
                    NOW,
                    Actor::system(),
                    AuditEvent::CertificateRevoked {
                        reason: 4,
                        note: format!("superseded by {}", s.by),
                        serials: vec![s.serial.clone()],
                    },
                    Some(&s.device_id),
                )
            })
            .collect()
    })
}

pub async fn superseded_certificates_are_revoked_when_due(reg: &Arc<dyn Registry>) {
    let renew = |device: &str, hex: &str, due: UnixTime| IssueRecord {
        supersede_older_at: Some(due),
        ..issue(device, hex, None)
    };
    let entries = |reg: &Arc<dyn Registry>| {
        let reg = reg.clone();
        async move { reg.audit_entries(0, 10_000).await.expect("audit").len() }
    };
    reg.record_issue(issue("sup", "ab10", None))
        .await
        .expect("issue");
    // Another device's certificate is never its business.
    reg.record_issue(issue("bystander", "ab20", None))
        .await
        .expect("issue");
    reg.record_issue(renew("sup", "ab11", NOW + 100))
        .await
        .expect("renewal");
    // A second renewal before the first is due: the first supersession
    // keeps its time, the second renewal supersedes the first one.
    reg.record_issue(renew("sup", "ab12", NOW + 200))
        .await
        .expect("renewal");

    let before = entries(reg).await;
    assert!(
        reg.revoke_superseded(NOW + 99, superseding())
            .await
            .expect("sweep")
            .is_empty(),
        "nothing is due yet"
    );
    assert_eq!(
        entries(reg).await,
        before,
        "nothing revoked, nothing audited"
    );

    let first = reg
        .revoke_superseded(NOW + 100, superseding())
        .await
        .expect("sweep");
    assert_eq!(
        first,
        vec![Superseded {
            device_id: "sup".into(),
            serial: serial("ab10"),
            by: serial("ab11"),
        }]
    );
    let ab10 = reg
        .certificate(&serial("ab10"))
        .await
        .expect("read")
        .expect("known");
    assert_eq!(ab10.revoked_at, Some(NOW + 100));
    assert_eq!(ab10.revocation_reason, Some(4), "reason superseded");
    assert_eq!(entries(reg).await, before + 1, "one entry for the device");
    let audited = reg
        .audit_query(&AuditFilter {
            device_id: Some("sup".into()),
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .expect("query");
    let last = audited.last().expect("entries");
    assert_eq!(last.event, "certificate_revoked");
    assert_eq!(last.detail["reason"], 4);

    let second = reg
        .revoke_superseded(NOW + 200, superseding())
        .await
        .expect("sweep");
    assert_eq!(
        second
            .iter()
            .map(|s| (s.serial.as_str(), s.by.as_str()))
            .collect::<Vec<_>>(),
        vec![("ab11", "ab12")]
    );
    for (hex, revoked) in [("ab12", false), ("ab20", false), ("ab11", true)] {
        let c = reg
            .certificate(&serial(hex))
            .await
            .expect("read")
            .expect("known");
        assert_eq!(c.revoked_at.is_some(), revoked, "{hex}");
    }
    assert!(
        reg.revoke_superseded(NOW + 10_000, superseding())
            .await
            .expect("sweep")
            .is_empty(),
        "a supersession is acted on once"
    );

    // Revoked meanwhile by an administrator, or expired by the time it is
    // due: nothing to do, nothing audited.
    reg.record_issue(issue("sup2", "ac10", None))
        .await
        .expect("issue");
    reg.record_issue(IssueRecord {
        cert: cert("sup2", "ac11", NOW + 150),
        ..issue("sup2", "ac11", None)
    })
    .await
    .expect("issue");
    reg.record_issue(renew("sup2", "ac12", NOW + 300))
        .await
        .expect("renewal");
    reg.revoke(Revocation {
        kind: CertKind::Device,
        subject: "sup2".into(),
        serial: Some(serial("ac10")),
        reason: 1,
        at: NOW + 10,
        audit: revoking("sup2"),
    })
    .await
    .expect("revoke");
    let before = entries(reg).await;
    assert!(
        reg.revoke_superseded(NOW + 300, superseding())
            .await
            .expect("sweep")
            .is_empty()
    );
    assert_eq!(entries(reg).await, before);
    let ac10 = reg
        .certificate(&serial("ac10"))
        .await
        .expect("read")
        .expect("known");
    assert_eq!(
        ac10.revocation_reason,
        Some(1),
        "the administrator's reason stays"
    );

    // Removing a device forgets its pending supersessions.
    reg.record_issue(issue("sup3", "ad10", None))
        .await
        .expect("issue");
    reg.record_issue(renew("sup3", "ad11", NOW + 400))
        .await
        .expect("renewal");
    reg.remove_device("sup3", NOW + 1, revoking("sup3"))
        .await
        .expect("remove")
        .expect("known");
    assert!(
        reg.revoke_superseded(NOW + 400, superseding())
            .await
            .expect("sweep")
            .is_empty()
    );
}

pub async fn revocation_crl_and_removal(reg: &Arc<dyn Registry>) {
    reg.record_issue(issue("rv", "aa01", None))
        .await
        .expect("issue");
    reg.record_issue(issue("rv", "aa02", None))
        .await
        .expect("issue");
    let revoke = |serial: Option<&str>| Revocation {
        kind: CertKind::Device,
        subject: "rv".into(),
        serial: serial.map(self::serial),
        reason: 1,
        at: NOW,
        audit: revoking("rv"),
    };
    assert_eq!(
        reg.revoke(revoke(Some("aa01"))).await.expect("revoke"),
        vec!["aa01"]
    );
    assert_eq!(
        reg.revoke(revoke(None)).await.expect("revoke"),
        vec!["aa02"]
    );
    assert!(
        reg.revoke(revoke(None)).await.expect("revoke").is_empty(),
        "nothing left"
    );
    let revoked = reg.revoked_certificates(NOW).await.expect("read");
    assert_eq!(
        revoked
            .iter()
            .map(|r| r.serial.as_str())
            .collect::<Vec<_>>(),
        vec!["aa01", "aa02"]
    );
    assert_eq!(revoked[0].reason, 1);
    assert!(
        reg.revoked_certificates(NOW + 31 * 86_400)
            .await
            .expect("read")
            .is_empty(),
        "expired ones leave"
    );
    let facts = reg.device("rv", NOW).await.expect("read").expect("known");
    assert_eq!(
        facts.status(),
        ProvisionStatus::Rejected,
        "every certificate revoked"
    );

    // CRL numbers only grow, even when a signed CRL is never stored.
    let n1 = reg.next_crl_number().await.expect("n");
    let n2 = reg.next_crl_number().await.expect("n");
    assert_eq!(n2, n1 + 1);
    reg.store_crl(CrlRecord {
        number: n1,
        this_update: NOW,
        next_update: NOW + 1,
        der: vec![1],
    })
    .await
    .expect("store");
    assert!(
        reg.crl().await.expect("read").is_none(),
        "an older number is not stored"
    );
    reg.store_crl(CrlRecord {
        number: n2,
        this_update: NOW,
        next_update: NOW + 1,
        der: vec![2],
    })
    .await
    .expect("store");
    assert_eq!(reg.crl().await.expect("read").map(|c| c.number), Some(n2));

    // Removing a device revokes and forgets it; its certificates stay for the CRL.
    reg.record_issue(issue("gone", "bb01", None))
        .await
        .expect("issue");
    reg.put_secret(secret("gone", NOW + 100), added("gone"))
        .await
        .expect("put");
    let serials = reg
        .remove_device("gone", NOW, revoking("gone"))
        .await
        .expect("rm");
    assert_eq!(serials, Some(vec![serial("bb01")]));
    assert!(reg.device("gone", NOW).await.expect("read").is_none());
    assert!(reg.live_secret("gone", NOW).await.expect("read").is_none());
    assert!(
        reg.certificate(&serial("bb01"))
            .await
            .expect("read")
            .is_some_and(|c| c.revoked_at.is_some())
    );
    assert_eq!(
        reg.remove_device("gone", NOW, revoking("gone"))
            .await
            .expect("rm"),
        None
    );
}

pub async fn device_filters_agree_with_the_status_table(reg: &Arc<dyn Registry>) {
    // approved, expiring soon
    let mut soon = issue("f-soon", "cc01", None);
    soon.cert.not_after = NOW + 3 * 86_400;
    reg.record_issue(soon).await.expect("issue");
    // approved, long
    reg.record_issue(issue("f-long", "cc02", None))
        .await
        .expect("issue");
    // waiting (secret)
    reg.put_secret(secret("f-wait", NOW + 100), added("f-wait"))
        .await
        .expect("put");
    // rejected (all revoked)
    reg.record_issue(issue("f-rev", "cc03", None))
        .await
        .expect("issue");
    reg.revoke(Revocation {
        kind: CertKind::Device,
        subject: "f-rev".into(),
        serial: None,
        reason: 0,
        at: NOW,
        audit: revoking("f-rev"),
    })
    .await
    .expect("revoke");
    // missed renewal: issued long ago, past 55% + a day, still valid
    let mut old = issue("f-missed", "cc04", None);
    old.cert.not_before = NOW - 20 * 86_400;
    old.cert.not_after = NOW + 10 * 86_400;
    reg.record_issue(old).await.expect("issue");

    let page = Page {
        after: None,
        limit: 100,
    };
    let all = reg
        .list_devices(&page, NOW, &DeviceFilter::default())
        .await
        .expect("list");
    for d in &all {
        let facts = reg
            .device(&d.device_id, NOW)
            .await
            .expect("read")
            .expect("known");
        assert_eq!(
            d.status,
            facts.status(),
            "{}: listing and facts agree",
            d.device_id
        );
    }
    let ids = |f: DeviceFilter| {
        let reg = reg.clone();
        let page = page.clone();
        async move {
            reg.list_devices(&page, NOW, &f)
                .await
                .expect("list")
                .into_iter()
                .map(|d| d.device_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids(DeviceFilter {
            status: Some(ProvisionStatus::Rejected),
            ..Default::default()
        })
        .await,
        vec!["f-rev"]
    );
    assert_eq!(
        ids(DeviceFilter {
            status: Some(ProvisionStatus::Waiting),
            ..Default::default()
        })
        .await,
        vec!["f-wait"]
    );
    assert_eq!(
        ids(DeviceFilter {
            expiring_within: Some(7 * 86_400),
            ..Default::default()
        })
        .await,
        vec!["f-soon"]
    );
    assert_eq!(
        ids(DeviceFilter {
            missed_renewal: true,
            ..Default::default()
        })
        .await,
        vec!["f-missed"]
    );
    assert_eq!(
        ids(DeviceFilter {
            prefix: Some("f-l".into()),
            ..Default::default()
        })
        .await,
        vec!["f-long"]
    );
    // The dashboard's counts agree with the listing's classification.
    let all = reg
        .list_devices(
            &Page {
                after: None,
                limit: 1000,
            },
            NOW,
            &DeviceFilter::default(),
        )
        .await
        .expect("list");
    let of = |st: ProvisionStatus| all.iter().filter(|d| d.status == st).count() as u64;
    let expiring = reg
        .list_devices(
            &Page {
                after: None,
                limit: 1000,
            },
            NOW,
            &DeviceFilter {
                expiring_within: Some(7 * 86_400),
                ..DeviceFilter::default()
            },
        )
        .await
        .expect("list")
        .len() as u64;
    let missed = reg
        .list_devices(
            &Page {
                after: None,
                limit: 1000,
            },
            NOW,
            &DeviceFilter {
                missed_renewal: true,
                ..DeviceFilter::default()
            },
        )
        .await
        .expect("list")
        .len() as u64;
    let overview = reg
        .device_overview(NOW, NOW + 7 * 86_400)
        .await
        .expect("overview");
    assert_eq!(overview.total, all.len() as u64);
    assert_eq!(overview.approved, of(ProvisionStatus::Approved));
    assert_eq!(overview.waiting, of(ProvisionStatus::Waiting));
    assert_eq!(overview.rejected, of(ProvisionStatus::Rejected));
    assert_eq!(overview.expiring, expiring);
    assert_eq!(overview.missed_renewal, missed);
    assert!(overview.revoked >= 1, "f-rev has every certificate revoked");
}

pub async fn bulk_secrets_in_one_transaction(reg: &Arc<dyn Registry>) {
    reg.put_secret(secret("b-1", NOW + 100), added("b-1"))
        .await
        .expect("put");
    let send = |rows: Vec<&'static str>, replace: bool, dry_run: bool, end: bool| {
        let reg = reg.clone();
        async move {
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            let task = tokio::spawn(async move {
                reg.put_secrets_bulk(rx, replace, dry_run, imported()).await
            });
            for (i, id) in rows.into_iter().enumerate() {
                tx.send(BulkMessage::Row(BulkSecret {
                    index: i as u64,
                    secret: secret(id, NOW + 100),
                }))
                .await
                .expect("send");
            }
            if end {
                tx.send(BulkMessage::End {
                    rows_sha256: "abc".into(),
                })
                .await
                .expect("end");
            }
            drop(tx);
            task.await.expect("join")
        }
    };
    let before = reg.audit_entries(0, 1000).await.expect("audit").len();
    // Dry run: validated against the registry, nothing written.
    let dry = send(vec!["b-1", "b-2"], false, true, true)
        .await
        .expect("dry run");
    assert_eq!((dry.accepted, dry.replaced, dry.rejected.len()), (1, 0, 1));
    assert_eq!(dry.rejected[0].0, 0);
    assert!(reg.live_secret("b-2", NOW).await.expect("read").is_none());
    // An interrupted stream stores nothing.
    assert!(send(vec!["b-3"], true, false, false).await.is_err());
    assert!(reg.live_secret("b-3", NOW).await.expect("read").is_none());
    assert_eq!(
        reg.audit_entries(0, 1000).await.expect("audit").len(),
        before
    );
    // A real run: replacing, one audit entry for all rows.
    let real = send(vec!["b-1", "b-2", "b-3"], true, false, true)
        .await
        .expect("import");
    assert_eq!((real.accepted, real.replaced), (3, 1));
    let entries = reg.audit_entries(0, 1000).await.expect("audit");
    assert_eq!(entries.len(), before + 1);
    assert_eq!(
        entries.last().map(|e| e.detail["accepted"].clone()),
        Some(serde_json::json!(3))
    );
    assert_eq!(
        reg.existing_secrets(vec!["b-1".into(), "zz".into(), "b-3".into()], NOW)
            .await
            .expect("read"),
        vec!["b-1", "b-3"]
    );
    let sealed = reg
        .sealed_secrets(
            &Page {
                after: None,
                limit: 10,
            },
            NOW,
        )
        .await
        .expect("read");
    assert_eq!(sealed.len(), 3);
}

pub async fn audit_filters_and_checkpoints(reg: &Arc<dyn Registry>) {
    for (i, (event, device)) in [
        ("secret_removed", "d1"),
        ("lockout_cleared", "d2"),
        ("secret_removed", "d2"),
    ]
    .into_iter()
    .enumerate()
    {
        reg.append_audit(AuditRecord::new(
            NOW + i as i64,
            Actor::system(),
            event_named(event),
            Some(device),
        ))
        .await
        .expect("append");
    }
    let q = |f: AuditFilter| {
        let reg = reg.clone();
        async move {
            reg.audit_query(&f)
                .await
                .expect("query")
                .into_iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        q(AuditFilter {
            limit: 10,
            event: Some("secret_removed".into()),
            ..Default::default()
        })
        .await,
        vec![1, 3]
    );
    assert_eq!(
        q(AuditFilter {
            limit: 10,
            device_id: Some("d2".into()),
            ..Default::default()
        })
        .await,
        vec![2, 3]
    );
    assert_eq!(
        q(AuditFilter {
            limit: 10,
            since: Some(NOW + 1),
            until: Some(NOW + 1),
            ..Default::default()
        })
        .await,
        vec![2]
    );
    assert_eq!(
        q(AuditFilter {
            limit: 10,
            after: 2,
            ..Default::default()
        })
        .await,
        vec![3]
    );
    let (seq, hash) = reg.audit_head().await.expect("head").expect("some");
    assert_eq!(seq, 3);
    reg.add_checkpoint(Checkpoint {
        seq,
        head_hash: hash.clone(),
        at: NOW,
        signer: "s".into(),
        signature: vec![1, 2],
    })
    .await
    .expect("checkpoint");
    let cps = reg.checkpoints().await.expect("read");
    assert_eq!(cps.len(), 1);
    assert_eq!(cps[0].head_hash, hash);
}

pub async fn queue_expiry(reg: &Arc<dyn Registry>) {
    reg.record_waiting(
        waiting("e1", "k"),
        CAPS,
        Some(audit("request_queued", "e1")),
    )
    .await
    .expect("w");
    let mut late = waiting("e2", "k");
    late.first_seen = NOW + 100;
    late.last_seen = NOW + 100;
    reg.record_waiting(late, CAPS, Some(audit("request_queued", "w")))
        .await
        .expect("w");
    reg.approve("e2", &fp("k"), NOW + 10, audit("request_approved", "e2"))
        .await
        .expect("a");
    let (w, a) = reg
        .expire_queue(NOW + 50, NOW + 20, swept(NOW + 20))
        .await
        .expect("expire");
    assert_eq!((w, a), (1, 1));
    assert_eq!(
        reg.list_waiting(&Page {
            after: None,
            limit: 10
        })
        .await
        .expect("list")
        .len(),
        1
    );
}

pub async fn web_passwords_are_kept_replaced_and_audited(reg: &Arc<dyn Registry>) {
    assert_eq!(reg.web_password_count().await.expect("count"), 0);
    assert!(reg.web_password("alice").await.expect("read").is_none());
    for hash in ["$argon2id$v=19$first", "$argon2id$v=19$second"] {
        reg.set_web_password(
            WebPassword {
                name: "alice".into(),
                hash: hash.into(),
                updated_at: NOW,
            },
            audit("web_password_set", "alice"),
        )
        .await
        .expect("set");
    }
    let stored = reg.web_password("alice").await.expect("read").expect("set");
    assert_eq!(stored.hash, "$argon2id$v=19$second");
    assert_eq!(reg.web_password_count().await.expect("count"), 1);
    let entries = reg.audit_entries(0, 100).await.expect("audit");
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.event == "web_password_set")
            .count(),
        2
    );
    // Removed (an administrator revoked, or `idprov admin password --remove`).
    assert!(
        reg.remove_web_password("alice", audit("web_password_removed", "alice"))
            .await
            .expect("remove")
    );
    assert!(reg.web_password("alice").await.expect("read").is_none());
    assert_eq!(reg.web_password_count().await.expect("count"), 0);
    assert!(
        !reg.remove_web_password("alice", audit("web_password_removed", "alice"))
            .await
            .expect("remove again"),
        "nothing to remove"
    );
    let removals = reg
        .audit_entries(0, 100)
        .await
        .expect("audit")
        .iter()
        .filter(|e| e.event == "web_password_removed")
        .count();
    assert_eq!(removals, 1, "audited once, when something was removed");
}

pub async fn an_issue_that_fails_a_precondition_changes_nothing(reg: &Arc<dyn Registry>) {
    reg.put_secret(secret("both-1", NOW + 300), added("both-1"))
        .await
        .expect("put");
    let s = reg
        .live_secret("both-1", NOW)
        .await
        .expect("read")
        .expect("live");
    // The secret is there but no approval: the whole issue is refused, and
    // the secret it would have consumed stays.
    let mut rec = issue("both-1", "dd01", Some(s.id));
    rec.consume_approval = Some(fp("fp-1"));
    assert_eq!(
        reg.record_issue(rec).await.expect("issue"),
        IssueOutcome::SecretGone
    );
    assert!(
        reg.live_secret("both-1", NOW)
            .await
            .expect("read")
            .is_some(),
        "not consumed"
    );
    assert!(
        reg.certificate(&serial("dd01"))
            .await
            .expect("read")
            .is_none()
    );
}

/// Which protocol a device asked by is kept with each certificate (none
/// for the server's own credentials), with each waiting request (its
/// latest attempt's), and the device listing shows its newest
/// certificate's.
pub async fn the_protocol_is_kept_with_certificates_requests_and_the_listing(
    reg: &Arc<dyn Registry>,
) {
    let caps = WaitingCaps {
        per_source: 10,
        total: 10,
    };
    let mut queued = waiting("router-1", "k1");
    queued.protocol = Protocol::Est;
    reg.record_waiting(queued.clone(), caps, None)
        .await
        .expect("queued");
    assert_eq!(
        reg.waiting_for("router-1").await.expect("read")[0].protocol,
        Protocol::Est
    );
    // A later attempt by v1 with the same key is what the entry shows.
    queued.protocol = Protocol::V1;
    queued.last_seen = NOW + 1;
    reg.record_waiting(queued, caps, None)
        .await
        .expect("updated");
    let entries = reg
        .list_queue(
            &Page {
                after: None,
                limit: 10,
            },
            NOW,
        )
        .await
        .expect("queue");
    assert_eq!(entries[0].request.protocol, Protocol::V1);
    assert_eq!(entries[0].request.attempts, 2);

    let mut first = issue("router-1", "0a01", None);
    first.cert.protocol = Some(Protocol::V1);
    reg.record_issue(first).await.expect("issued");
    let mut second = issue("router-1", "0a02", None);
    second.cert.protocol = Some(Protocol::Est);
    second.cert.issued_at = NOW + 10;
    reg.record_issue(second).await.expect("issued");
    let mut local = issue("hub", "0a03", None);
    local.cert.kind = CertKind::Server;
    local.cert.protocol = None;
    local.clear_waiting_key = None;
    reg.record_issue(local).await.expect("issued");

    let history = reg
        .certificates_of(CertKind::Device, "router-1")
        .await
        .expect("history");
    let protocols: Vec<_> = history.iter().map(|c| c.protocol).collect();
    assert_eq!(protocols, [Some(Protocol::Est), Some(Protocol::V1)]);
    assert_eq!(
        reg.certificate(&serial("0a03"))
            .await
            .expect("read")
            .expect("recorded")
            .protocol,
        None
    );
    let listed = reg
        .list_devices(
            &Page {
                after: None,
                limit: 10,
            },
            NOW,
            &DeviceFilter::default(),
        )
        .await
        .expect("listing");
    let row = listed
        .iter()
        .find(|d| d.device_id == "router-1")
        .expect("listed");
    assert_eq!(row.protocol, Some(Protocol::Est));
    assert_eq!(row.certificates, 2);
}

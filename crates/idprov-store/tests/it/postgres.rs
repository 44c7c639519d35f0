//! The suite on PostgreSQL, plus what only a shared database raises: two
//! registry instances (two server replicas) writing at once, migrations
//! raced and versioned, byte-order collation on a linguistic database.
//!
//! Each test gets a fresh database of the cluster `pg_cluster` starts; the
//! tests skip themselves when PostgreSQL is not installed (not under CI).

use std::collections::BTreeSet;
use std::sync::Arc;

use idprov_proto::{SerialNumber, UnixTime};
use idprov_store::*;
use tokio::sync::Barrier;

use crate::pg_cluster;
use crate::suite::{self, NOW, added, audit, fp, imported, issue, secret, serial};

/// A registry on a fresh database, and that database's URL; `None` when
/// PostgreSQL is not installed.
async fn open(hint: &str) -> Option<(String, Arc<PostgresRegistry>)> {
    let url = pg_cluster::fresh_database(hint).await?;
    let reg = PostgresRegistry::connect(&url).await.expect("connect");
    Some((url, Arc::new(reg)))
}

fn dyn_of(reg: &Arc<PostgresRegistry>) -> Arc<dyn Registry> {
    reg.clone()
}

/// A registry for the suite: a fresh database of the cluster.
async fn open_dyn(test: &str) -> Option<(String, Arc<dyn Registry>)> {
    let (url, reg) = open(test).await?;
    Some((url, reg))
}

suite::backend_tests!(open_dyn);

const CAPS: WaitingCaps = WaitingCaps {
    per_source: 1000,
    total: 1000,
};

/// Every audit entry, checked as one chain from the first.
async fn whole_chain(reg: &dyn Registry) -> Vec<AuditEntry> {
    let mut entries: Vec<AuditEntry> = Vec::new();
    loop {
        let after = entries.last().map_or(0, |e| e.seq);
        let page = reg.audit_entries(after, 1000).await.expect("audit");
        if page.is_empty() {
            break;
        }
        entries.extend(page);
    }
    verify_chain(None, &entries).expect("one valid chain, no gaps, no forks");
    entries
}

#[tokio::test]
async fn durability_settings_are_read_back() {
    let Some((url, reg)) = open("durability").await else {
        return;
    };
    assert_eq!(reg.setting("fsync").await.expect("setting"), "on");
    assert_eq!(
        reg.setting("synchronous_commit").await.expect("setting"),
        "on"
    );
    // A database configured to acknowledge commits before they are flushed
    // does not make the registry do so.
    let db = url.rsplit('/').next().expect("database name");
    pg_cluster::admin_url(&url)
        .await
        .batch_execute(&format!("ALTER DATABASE {db} SET synchronous_commit = off"))
        .await
        .expect("alter");
    let again = PostgresRegistry::connect(&url).await.expect("connect");
    assert_eq!(
        again.setting("synchronous_commit").await.expect("setting"),
        "on"
    );
}

#[tokio::test]
async fn the_database_refuses_audit_edits() {
    let Some((url, reg)) = open("audit_edits").await else {
        return;
    };
    suite::audit_chain_links_every_entry(&dyn_of(&reg)).await;
    reg.add_checkpoint(Checkpoint {
        seq: 1,
        head_hash: "h".into(),
        at: NOW,
        signer: "s".into(),
        signature: vec![1],
    })
    .await
    .expect("checkpoint");
    // A superuser connection of its own: the triggers, not the registry's
    // code, refuse the change.
    let db = pg_cluster::admin_url(&url).await;
    for sql in [
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 10",
        "TRUNCATE audit_log",
        "UPDATE audit_checkpoints SET signer = 'mallory'",
        "DELETE FROM audit_checkpoints",
        "TRUNCATE audit_checkpoints",
    ] {
        let err = db.batch_execute(sql).await.expect_err(sql);
        let text = format!("{err:?}");
        assert!(text.contains("append-only"), "{sql}: {text}");
    }
    assert_eq!(whole_chain(&*reg).await.len(), 10, "nothing changed");
}

#[tokio::test]
async fn migrations_are_versioned_raced_and_a_newer_schema_is_refused() {
    let Some(url) = pg_cluster::fresh_database("migrations").await else {
        return;
    };
    // Two replicas starting at once on an empty database: one migrates, the
    // other waits for the lock and finds the work done.
    let (a, b) = tokio::join!(
        PostgresRegistry::connect(&url),
        PostgresRegistry::connect(&url)
    );
    let (a, b) = (a.expect("first replica"), b.expect("second replica"));
    let db = pg_cluster::admin_url(&url).await;
    let version: i64 = db
        .query_one("SELECT value FROM schema_meta WHERE key = 'version'", &[])
        .await
        .expect("version")
        .get(0);
    assert_eq!(version, POSTGRES_SCHEMA_VERSION);
    // The backends migrate in step: a version means the same tables.
    assert_eq!(POSTGRES_SCHEMA_VERSION, SCHEMA_VERSION);
    a.append_audit(audit("secret_removed", "d"))
        .await
        .expect("write");
    b.append_audit(audit("lockout_cleared", "d"))
        .await
        .expect("write");
    drop((a, b));
    // Connecting again migrates nothing and keeps the data.
    let again = PostgresRegistry::connect(&url).await.expect("reconnect");
    assert_eq!(whole_chain(&again).await.len(), 2);
    drop(again);

    db.batch_execute("UPDATE schema_meta SET value = 999 WHERE key = 'version'")
        .await
        .expect("bump");
    let err = PostgresRegistry::connect(&url).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 999,
                supported: POSTGRES_SCHEMA_VERSION
            }
        ),
        "{err:?}"
    );
    // The same words as SQLite's refusal.
    let text = err.to_string();
    assert!(
        text.contains("999") && text.contains("upgrade idprov"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_keys_sort_in_byte_order_like_sqlite() {
    let Some((url, pg)) = open("collation").await else {
        return;
    };
    // The database's own collation (ICU en-US) would order these otherwise,
    // so this test fails if a column lacks COLLATE "C".
    let ids = ["B", "a", "_x", "A-1", "A.1"];
    let db = pg_cluster::admin_url(&url).await;
    let linguistic: Vec<String> = db
        .query(
            "SELECT x FROM unnest($1::text[]) AS x ORDER BY x",
            &[&ids.to_vec()],
        )
        .await
        .expect("order")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut bytewise: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    bytewise.sort();
    assert_eq!(bytewise, ["A-1", "A.1", "B", "_x", "a"]);
    assert_ne!(linguistic, bytewise, "the database's default collation");

    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite: Arc<dyn Registry> =
        Arc::new(SqliteRegistry::open(&dir.path().join("idprov.db")).expect("open"));
    let pg: Arc<dyn Registry> = pg;
    let mut seen = Vec::new();
    for reg in [&sqlite, &pg] {
        for id in ids {
            reg.put_secret(secret(id, NOW + 100), added(id))
                .await
                .expect("put");
            reg.record_waiting(
                suite::waiting(id, "fp-1"),
                CAPS,
                Some(audit("request_queued", "w")),
            )
            .await
            .expect("wait");
        }
        // Pages of two: the keyset cursor compares in the same order.
        let mut secrets = Vec::new();
        let mut page = Page {
            after: None,
            limit: 2,
        };
        loop {
            let rows = reg.list_secrets(&page).await.expect("list");
            let Some(last) = rows.last() else { break };
            page.after = Some(last.device_id.clone());
            secrets.extend(rows.into_iter().map(|r| r.device_id));
        }
        let mut devices = Vec::new();
        let mut page = Page {
            after: None,
            limit: 2,
        };
        loop {
            let rows = reg
                .list_devices(&page, NOW, &DeviceFilter::default())
                .await
                .expect("list");
            let Some(last) = rows.last() else { break };
            page.after = Some(last.device_id.clone());
            devices.extend(rows.into_iter().map(|r| r.device_id));
        }
        let all = Page {
            after: None,
            limit: 100,
        };
        let waiting: Vec<String> = reg
            .list_waiting(&all)
            .await
            .expect("waiting")
            .into_iter()
            .map(|w| w.device_id)
            .collect();
        let sealed: Vec<String> = reg
            .sealed_secrets(&all, NOW)
            .await
            .expect("sealed")
            .into_iter()
            .map(|s| s.device_id)
            .collect();
        let after_b: Vec<String> = reg
            .list_secrets(&Page {
                after: Some("B".into()),
                limit: 100,
            })
            .await
            .expect("list")
            .into_iter()
            .map(|s| s.device_id)
            .collect();
        assert_eq!(secrets, bytewise);
        assert_eq!(devices, bytewise);
        assert_eq!(waiting, bytewise);
        assert_eq!(sealed, bytewise);
        assert_eq!(after_b, ["_x", "a"]);
        seen.push((secrets, devices, waiting, sealed, after_b));
    }
    assert_eq!(seen[0], seen[1], "SQLite and PostgreSQL list alike");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_keep_one_audit_chain() {
    let Some((url, a)) = open("two_writers").await else {
        return;
    };
    let b = Arc::new(
        PostgresRegistry::connect(&url)
            .await
            .expect("second replica"),
    );
    let replicas: [Arc<dyn Registry>; 2] = [a, b];
    // Both replicas at once, on many connections each, with writes of every
    // shape that appends to the log.
    let mut tasks = Vec::new();
    for i in 0..300 {
        let reg = replicas[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let device = format!("c-{i:03}");
            match i % 3 {
                0 => reg
                    .put_secret(secret(&device, NOW + 100), added(&device))
                    .await
                    .map(|_| ()),
                1 => reg
                    .append_audit(audit("secret_removed", &device))
                    .await
                    .map(|_| ()),
                _ => reg
                    .record_waiting(
                        suite::waiting(&device, "fp-1"),
                        CAPS,
                        Some(audit("request_queued", "w")),
                    )
                    .await
                    .map(|_| ()),
            }
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("write");
    }
    let entries = whole_chain(&*replicas[0]).await;
    assert_eq!(entries.len(), 300, "every write audited once");
    assert_eq!(
        replicas[0].audit_head().await.expect("head"),
        replicas[1].audit_head().await.expect("head"),
        "both replicas see one head"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_consumed_once_when_two_instances_race() {
    const ROUNDS: usize = 200;
    let Some((url, a)) = open("secret_race").await else {
        return;
    };
    let b = Arc::new(
        PostgresRegistry::connect(&url)
            .await
            .expect("second replica"),
    );
    let replicas: [Arc<dyn Registry>; 2] = [a, b];
    let mut wins = [0usize; 2];
    let mut double_issues = 0;
    for round in 0..ROUNDS {
        let device = format!("race-{round:03}");
        replicas[0]
            .put_secret(secret(&device, NOW + 100), added(&device))
            .await
            .expect("put");
        let id = replicas[1]
            .live_secret(&device, NOW)
            .await
            .expect("read")
            .expect("live")
            .id;
        // Both verified the request against the same row; the barrier lets
        // them record at the same instant. Which one is spawned (and
        // reaches the barrier) first alternates.
        let barrier = Arc::new(Barrier::new(2));
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut racers = Vec::new();
        for r in order {
            let reg = replicas[r].clone();
            let barrier = barrier.clone();
            let serial = serial(&format!("{round:04x}{r:02x}"));
            let device = device.clone();
            racers.push(tokio::spawn(async move {
                barrier.wait().await;
                let outcome = reg
                    .record_issue(issue(&device, serial.as_str(), Some(id)))
                    .await;
                (r, serial, outcome.expect("record"))
            }));
        }
        let mut recorded = Vec::new();
        for racer in racers {
            let (r, serial, outcome) = racer.await.expect("join");
            match outcome {
                IssueOutcome::Recorded => recorded.push((r, serial)),
                IssueOutcome::SecretGone => {
                    assert!(
                        replicas[0]
                            .certificate(&serial)
                            .await
                            .expect("read")
                            .is_none(),
                        "the loser's certificate is not recorded"
                    );
                }
            }
        }
        if recorded.len() > 1 {
            double_issues += 1;
        }
        assert_eq!(recorded.len(), 1, "round {round}: exactly one issuance");
        let (winner, serial) = &recorded[0];
        wins[*winner] += 1;
        let certs = replicas[1]
            .certificates_of(CertKind::Device, &device)
            .await
            .expect("certs");
        assert_eq!(certs.len(), 1);
        let consumed = replicas[0]
            .consumed_secret(&device, &fp("fp-1"), NOW)
            .await
            .expect("read")
            .expect("kept for re-delivery");
        assert_eq!(&consumed.serial, serial, "re-delivery names the winner");
    }
    assert_eq!(double_issues, 0);
    let entries = whole_chain(&*replicas[0]).await;
    assert_eq!(entries.len(), 2 * ROUNDS, "one secret_added, one issuance");
    eprintln!(
        "{ROUNDS} rounds: replica A won {}, replica B won {}, double issues {double_issues}",
        wins[0], wins[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crl_numbers_only_grow_when_two_instances_reserve() {
    let Some((url, a)) = open("crl_race").await else {
        return;
    };
    let b = Arc::new(
        PostgresRegistry::connect(&url)
            .await
            .expect("second replica"),
    );
    let replicas: [Arc<dyn Registry>; 2] = [a, b];
    let mut tasks = Vec::new();
    for t in 0..8 {
        let reg = replicas[t % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..25 {
                mine.push(reg.next_crl_number().await.expect("reserve"));
            }
            mine
        }));
    }
    let mut all = BTreeSet::new();
    for t in tasks {
        let mine = t.await.expect("join");
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "each caller sees its numbers grow: {mine:?}"
        );
        for n in mine {
            assert!(all.insert(n), "{n} handed out twice");
        }
    }
    assert_eq!(
        all.into_iter().collect::<Vec<_>>(),
        (1..=200).collect::<Vec<i64>>()
    );
    assert_eq!(replicas[1].next_crl_number().await.expect("reserve"), 201);
}

/// Runs one bulk import and returns what it answered and what it left.
async fn bulk_run(
    reg: &Arc<dyn Registry>,
    rows: &[(&str, UnixTime)],
    replace: bool,
    dry_run: bool,
) -> (
    BulkOutcome,
    Vec<(String, Vec<u8>)>,
    Vec<(String, UnixTime)>,
    Option<serde_json::Value>,
) {
    // Before the import: a live and an expired secret, and a device without one.
    reg.put_secret(secret("x-1", NOW + 100), added("x-1"))
        .await
        .expect("put");
    reg.put_secret(secret("x-2", NOW - 100), added("x-2"))
        .await
        .expect("put");
    reg.record_waiting(
        suite::waiting("w-1", "fp-1"),
        CAPS,
        Some(audit("request_queued", "w-1")),
    )
    .await
    .expect("wait");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let task = {
        let reg = reg.clone();
        tokio::spawn(async move { reg.put_secrets_bulk(rx, replace, dry_run, imported()).await })
    };
    for (i, (id, valid_until)) in rows.iter().enumerate() {
        let mut s = secret(id, *valid_until);
        s.created_at = NOW + i as i64;
        tx.send(BulkMessage::Row(BulkSecret {
            index: 10 + i as u64,
            secret: s,
        }))
        .await
        .expect("send");
    }
    tx.send(BulkMessage::End {
        rows_sha256: "digest".into(),
    })
    .await
    .expect("end");
    drop(tx);
    let outcome = task.await.expect("join").expect("import");
    let all = Page {
        after: None,
        limit: 100,
    };
    let sealed = reg
        .sealed_secrets(&all, UnixTime::EPOCH)
        .await
        .expect("sealed")
        .into_iter()
        .map(|s| (s.device_id, s.sealed))
        .collect();
    let devices = reg
        .list_devices(&all, NOW, &DeviceFilter::default())
        .await
        .expect("devices")
        .into_iter()
        .map(|d| (d.device_id, d.created_at))
        .collect();
    let entries = reg.audit_entries(0, 1000).await.expect("audit");
    verify_chain(None, &entries).expect("chain");
    let last = entries
        .last()
        .filter(|e| e.event == "secrets_imported")
        .map(|e| e.detail.clone());
    (outcome, sealed, devices, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_import_matches_sqlite_row_by_row() {
    // Repeated devices, existing live and expired secrets, an existing device
    // without one: the set-based PostgreSQL import must answer and store
    // exactly what SQLite's row-by-row loop does, in every mode.
    let rows: &[(&str, UnixTime)] = &[
        ("x-1", NOW + 1),
        ("n-1", NOW + 2),
        ("n-1", NOW + 3),
        ("x-2", NOW + 4),
        ("w-1", NOW + 5),
        ("n-2", NOW + 6),
        ("n-1", NOW + 7),
        ("x-1", NOW + 8),
    ];
    for (replace, dry_run) in [(false, false), (true, false), (false, true), (true, true)] {
        let hint = format!("bulk_{replace}_{dry_run}");
        let Some((_url, pg)) = open(&hint).await else {
            return;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite: Arc<dyn Registry> =
            Arc::new(SqliteRegistry::open(&dir.path().join("idprov.db")).expect("open"));
        let expected = bulk_run(&sqlite, rows, replace, dry_run).await;
        let got = bulk_run(&dyn_of(&pg), rows, replace, dry_run).await;
        assert_eq!(got, expected, "replace={replace} dry_run={dry_run}");
        // And the case is not trivial.
        assert!(expected.0.accepted > 0 && (replace || !expected.0.rejected.is_empty()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_import_streams_in_one_transaction() {
    const ROWS: usize = 20_000;
    let Some((_url, reg)) = open("bulk_large").await else {
        return;
    };
    let reg = dyn_of(&reg);
    let send = |end: bool| {
        let reg = reg.clone();
        async move {
            // A small channel: the store must consume while the producer
            // produces, not collect first.
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            let task =
                tokio::spawn(
                    async move { reg.put_secrets_bulk(rx, true, false, imported()).await },
                );
            for i in 0..ROWS {
                tx.send(BulkMessage::Row(BulkSecret {
                    index: i as u64,
                    secret: secret(&format!("bulk-{i:06}"), NOW + 100),
                }))
                .await
                .expect("send");
            }
            if end {
                tx.send(BulkMessage::End {
                    rows_sha256: "d".into(),
                })
                .await
                .expect("end");
            }
            drop(tx);
            task.await.expect("join")
        }
    };
    // Interrupted after every row was sent: nothing is stored.
    let err = send(false).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(
        reg.live_secret("bulk-000000", NOW)
            .await
            .expect("read")
            .is_none()
    );
    assert!(reg.audit_head().await.expect("head").is_none());

    let started = std::time::Instant::now();
    let outcome = send(true).await.expect("import");
    let took = started.elapsed();
    assert_eq!(outcome.accepted, ROWS as u64);
    let all = reg
        .sealed_secrets(
            &Page {
                after: None,
                limit: 10_000,
            },
            NOW,
        )
        .await
        .expect("read");
    assert_eq!(all.len(), 10_000, "a full page");
    assert!(
        reg.live_secret("bulk-019999", NOW)
            .await
            .expect("read")
            .is_some()
    );
    assert_eq!(whole_chain(&*reg).await.len(), 1, "one audit entry");
    eprintln!(
        "{ROWS} rows imported in {took:?} ({:.0} rows/s)",
        ROWS as f64 / took.as_secs_f64()
    );
}

#[tokio::test]
async fn bad_data_is_an_error_never_a_panic() {
    let Some((url, reg)) = open("bad_data").await else {
        return;
    };
    reg.record_issue(issue("bad", "ab01", None))
        .await
        .expect("issue");
    reg.record_failure(
        "bad",
        "10.0.0.1",
        1,
        NOW,
        &LockoutPolicy {
            threshold: 5,
            base_secs: 60,
            max_secs: 3600,
            forget_after_secs: 86_400,
            device_budget: 30,
            device_window_secs: 3600,
        },
    )
    .await
    .expect("fail");
    let db = pg_cluster::admin_url(&url).await;
    db.batch_execute(
        "UPDATE certificates SET kind = 'bogus' WHERE serial = 'ab01';
         UPDATE lockouts SET failures = 1099511627776;",
    )
    .await
    .expect("corrupt");
    let err = reg.certificate(&serial("ab01")).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    let err = reg.lockout("bad", "10.0.0.1").await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    // A stored key fingerprint that is not one fails the read, by name.
    reg.record_waiting(
        suite::waiting("badfp", "k1"),
        CAPS,
        Some(audit("request_queued", "badfp")),
    )
    .await
    .expect("queued");
    db.batch_execute(
        "UPDATE waiting_requests SET key_fingerprint = 'fp-1' WHERE device_id = 'badfp';",
    )
    .await
    .expect("corrupt");
    let err = reg.waiting_for("badfp").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("key fingerprint")),
        "{err:?}"
    );

    // A serial recorded twice breaks a unique constraint: a conflict, and the
    // transaction (its audit entry too) is rolled back.
    let before = reg.audit_head().await.expect("head");
    let err = reg
        .record_issue(issue("bad2", "ab01", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(reg.audit_head().await.expect("head"), before);
    assert!(reg.device("bad2", NOW).await.expect("read").is_none());

    // PostgreSQL text cannot hold NUL, which SQLite stores: such free text
    // is refused with an error rather than altered.
    let mut w = suite::waiting("nul", "fp-1");
    w.claimed_mac = "aa\0bb".into();
    let err = reg
        .record_waiting(w, CAPS, Some(audit("request_queued", "w")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    assert!(reg.device("nul", NOW).await.expect("read").is_none());
}

#[tokio::test]
async fn a_closed_registry_answers_closed() {
    let Some((_url, reg)) = open("closed").await else {
        return;
    };
    reg.append_audit(audit("secret_removed", "d"))
        .await
        .expect("write");
    reg.close();
    let err = reg
        .append_audit(audit("lockout_cleared", "d"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err:?}");
}

#[tokio::test]
async fn reconnecting_keeps_everything() {
    let Some((url, reg)) = open("reconnect").await else {
        return;
    };
    suite::device_facts_and_listing(&dyn_of(&reg)).await;
    reg.close();
    drop(reg);
    let reg = PostgresRegistry::connect(&url).await.expect("reconnect");
    let facts = reg.device("dev-b", NOW).await.expect("read");
    assert!(facts.is_some_and(|f| f.newest_valid.is_some()));
    whole_chain(&reg).await;
}

/// Needs no cluster: refused before any connection is attempted.
#[tokio::test]
async fn plaintext_to_a_remote_database_is_refused() {
    for url in [
        "postgresql://idprov@192.0.2.10/idprov",
        "host=db.example.invalid user=idprov",
        "postgresql://idprov@localhost/idprov?sslmode=require",
        "host=localhost hostaddr=192.0.2.10 user=idprov",
    ] {
        let err = PostgresRegistry::connect(url)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TLS to PostgreSQL is not supported yet"),
            "{url}: {err}"
        );
    }
    let err = PostgresRegistry::connect("postgresql://[")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid PostgreSQL connection string")
    );
}

/// The facts of one OOB request, comparable (the secret's row id aside,
/// which each backend numbers itself).
type OobFacts = (
    Option<Lockout>,
    Option<Rejection>,
    Option<Approval>,
    Option<ConsumedSecret>,
    Option<(String, Vec<u8>, String, UnixTime, UnixTime)>,
    Option<SerialNumber>,
);

fn oob_facts(v: OobView) -> OobFacts {
    (
        v.lockout,
        v.rejection,
        v.approval,
        v.consumed,
        v.live_secret
            .map(|s| (s.device_id, s.sealed, s.key_id, s.created_at, s.valid_until)),
        v.approved_serial,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oob_view_is_the_single_reads_in_one() {
    let Some((_url, pg)) = open("oob_view").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite: Arc<dyn Registry> =
        Arc::new(SqliteRegistry::open(&dir.path().join("idprov.db")).expect("open"));
    let pg = dyn_of(&pg);
    let policy = LockoutPolicy {
        threshold: 5,
        base_secs: 60,
        max_secs: 3600,
        forget_after_secs: 86_400,
        device_budget: 30,
        device_window_secs: 3600,
    };
    for reg in [&sqlite, &pg] {
        // o-1: a live secret, an approved key, a rejected key, two failures
        // from one source; o-2: a secret consumed by fp-1.
        reg.put_secret(secret("o-1", NOW + 100), added("o-1"))
            .await
            .expect("put");
        for key in ["k1", "k2"] {
            let w = suite::waiting("o-1", key);
            reg.record_waiting(w, CAPS, Some(audit("request_queued", "w")))
                .await
                .expect("wait");
        }
        assert!(
            reg.approve("o-1", &fp("k1"), NOW + 10, audit("request_approved", "o-1"))
                .await
                .expect("approve")
        );
        assert!(
            reg.reject("o-1", &fp("k2"), "stolen", audit("request_rejected", "o-1"))
                .await
                .expect("reject")
        );
        for _ in 0..2 {
            reg.record_failure("o-1", "10.0.0.1", 1, NOW, &policy)
                .await
                .expect("fail");
        }
        reg.put_secret(secret("o-2", NOW + 100), added("o-2"))
            .await
            .expect("put");
        let id = reg
            .live_secret("o-2", NOW)
            .await
            .expect("read")
            .expect("live")
            .id;
        assert_eq!(
            reg.record_issue(issue("o-2", "cd01", Some(id)))
                .await
                .expect("issue"),
            IssueOutcome::Recorded
        );
        // o-3: a certificate issued on an approval of fp-1 (re-delivery).
        let mut approved = issue("o-3", "ef01", None);
        approved.cert.issue_kind = IssueKind::Approval;
        assert_eq!(
            reg.record_issue(approved).await.expect("issue"),
            IssueOutcome::Recorded
        );
    }
    let mut nonempty = 0;
    for (device, key, source) in [
        ("o-1", "k1", "10.0.0.1"),
        ("o-1", "k2", "10.0.0.1"),
        ("o-1", "k1", "10.0.0.2"),
        ("o-2", "fp-1", "10.0.0.1"),
        ("o-3", "fp-1", "10.0.0.1"),
        ("o-3", "k1", "10.0.0.1"),
        ("nobody", "k1", "10.0.0.1"),
    ] {
        // Now, and later: the approval lapsed, the secret expired, the
        // consumption left the window.
        let fp = &fp(key);
        for (now, since) in [(NOW, NOW - 600), (NOW + 1000, NOW + 1)] {
            let view = pg
                .oob_view(device, fp, source, now, since)
                .await
                .expect("view");
            // The one statement answers what the five reads answer…
            assert_eq!(
                view.live_secret,
                pg.live_secret(device, now).await.expect("read")
            );
            assert_eq!(
                view.lockout,
                pg.lockout(device, source).await.expect("read")
            );
            assert_eq!(
                view.rejection,
                pg.rejection(device, fp).await.expect("read")
            );
            assert_eq!(
                view.approval,
                pg.approval(device, fp, now).await.expect("read")
            );
            assert_eq!(
                view.consumed,
                pg.consumed_secret(device, fp, since).await.expect("read")
            );
            // …and what SQLite answers.
            let facts = oob_facts(view);
            let expected = oob_facts(
                sqlite
                    .oob_view(device, fp, source, now, since)
                    .await
                    .expect("view"),
            );
            assert_eq!(facts, expected, "{device} {key} {source} at {now}");
            if facts != (None, None, None, None, None, None) {
                nonempty += 1;
            }
        }
    }
    // Every kind of fact was present in some view.
    assert!(nonempty >= 6);
    let view = pg
        .oob_view("o-3", &fp("fp-1"), "10.0.0.1", NOW, NOW - 600)
        .await
        .expect("view");
    assert_eq!(view.approved_serial, Some(serial("ef01")));
}

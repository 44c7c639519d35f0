//! The suite on SQLite, plus SQLite-specific checks.

use std::sync::Arc;

use idprov_store::SqliteRegistry;
use idprov_store::prelude::*;

use crate::suite;

fn open() -> (tempfile::TempDir, Arc<SqliteRegistry>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = SqliteRegistry::open(&dir.path().join("idprov.db")).expect("open");
    (dir, Arc::new(reg))
}

fn dyn_of(reg: &Arc<SqliteRegistry>) -> Arc<dyn Registry> {
    reg.clone()
}

/// A registry for the suite: a fresh file, removed with the directory.
async fn open_dyn(_test: &str) -> Option<(tempfile::TempDir, Arc<dyn Registry>)> {
    let (dir, reg) = open();
    Some((dir, reg))
}

suite::backend_tests!(open_dyn);

#[tokio::test]
async fn durability_settings_are_read_back() {
    let (_dir, reg) = open();
    // 2 = FULL: every commit is fsynced, so an acknowledged change survives power loss.
    assert_eq!(reg.pragma("synchronous").await.expect("pragma"), "2");
    assert_eq!(reg.pragma("journal_mode").await.expect("pragma"), "wal");
}

#[tokio::test]
async fn the_database_refuses_audit_edits() {
    let (dir, reg) = open();
    suite::audit_chain_links_every_entry(&dyn_of(&reg)).await;
    reg.close();
    let conn = rusqlite::Connection::open(dir.path().join("idprov.db")).expect("open");
    let update = conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1", []);
    assert!(
        update.unwrap_err().to_string().contains("append-only"),
        "updates are refused"
    );
    let delete = conn.execute("DELETE FROM audit_log", []);
    assert!(delete.unwrap_err().to_string().contains("append-only"));
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("idprov.db");
    drop(SqliteRegistry::open(&path).expect("open"));
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute(
        "UPDATE schema_meta SET value = 999 WHERE key = 'version'",
        [],
    )
    .expect("bump");
    drop(conn);
    let err = SqliteRegistry::open(&path).unwrap_err().to_string();
    assert!(
        err.contains("999") && err.contains("upgrade idprov"),
        "{err}"
    );
}

#[tokio::test]
async fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("idprov.db");
    {
        let reg = Arc::new(SqliteRegistry::open(&path).expect("open"));
        suite::device_facts_and_listing(&dyn_of(&reg)).await;
        reg.close();
    }
    let reg = SqliteRegistry::open(&path).expect("reopen");
    let facts = reg.device("dev-b", suite::NOW).await.expect("read");
    assert!(facts.is_some_and(|f| f.newest_valid.is_some()));
    let entries = reg.audit_entries(0, 1000).await.expect("audit");
    idprov_store::verify_chain(None, &entries).expect("chain intact after reopen");
}

#[tokio::test]
async fn snapshots_of_a_stopped_database_check_out_and_tampering_is_named() {
    let (dir, reg) = open();
    suite::audit_chain_links_every_entry(&dyn_of(&reg)).await;
    let entries = reg.audit_entries(0, 1000).await.expect("audit").len() as u64;
    reg.close();
    drop(reg);
    // The server stopped: its -wal and -shm files are gone.
    let copy = dir.path().join("copy.db");
    let summary =
        idprov_store::snapshot_database(&dir.path().join("idprov.db"), &copy).expect("snapshot");
    assert_eq!(summary.audit_entries, entries);
    assert_eq!(summary.schema_version, idprov_store::SCHEMA_VERSION);
    assert_eq!(idprov_store::check_database(&copy).expect("check"), summary);
    assert!(
        !dir.path().join("copy.db-wal").exists(),
        "checking a snapshot leaves no journal beside it"
    );
    // A snapshot is never written over an existing file.
    assert!(idprov_store::snapshot_database(&dir.path().join("idprov.db"), &copy).is_err());

    // An audit entry edited behind the triggers' back is found.
    let conn = rusqlite::Connection::open(&copy).expect("open");
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS audit_log_no_update;
         UPDATE audit_log SET actor = 'mallory' WHERE seq = 2;",
    )
    .expect("tamper");
    drop(conn);
    let err = idprov_store::check_database(&copy).unwrap_err().to_string();
    assert!(err.contains("audit entry 2"), "{err}");

    // Not a database at all.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database").expect("write");
    assert!(idprov_store::check_database(&junk).is_err());
}

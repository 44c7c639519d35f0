//! Online snapshots of the SQLite registry, and the checks a restore runs.
//!
//! A snapshot is `VACUUM INTO` on its own connection: one read transaction,
//! so it is consistent while the server keeps writing (WAL readers do not
//! block the writer), and the copy is compact and needs no -wal file.

use std::path::Path;

use rusqlite::{OptionalExtension, params};

use super::{SqliteDb, worker};
use crate::audit::{AuditEntry, verify_chain};
use crate::error::{Result, StoreError};
use crate::sql::{Db, args, run_now};

/// What a database file holds, read when it is snapshotted or restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSummary {
    /// The schema version.
    pub schema_version: i64,
    /// Devices with a row.
    pub devices: u64,
    /// Certificates issued.
    pub certificates: u64,
    /// Audit entries; the chain over them verified.
    pub audit_entries: u64,
}

/// Copies the live database at `db` into the new file `dest` (mode 0600,
/// fsynced), then checks the copy.
pub fn snapshot(db: &Path, dest: &Path) -> Result<DatabaseSummary> {
    if !db.is_file() {
        return Err(StoreError::Database(format!(
            "{}: no such file",
            db.display()
        )));
    }
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)
            .map_err(|e| StoreError::Database(format!("creating {}: {e}", dest.display())))?;
    }
    // A read-write connection that only reads: a read-only one cannot open
    // a WAL database whose -shm file is gone (the server is stopped).
    let conn = worker::open(db, false)?;
    let dest_text = dest
        .to_str()
        .ok_or_else(|| StoreError::Database(format!("{}: not a UTF-8 path", dest.display())))?;
    conn.execute("VACUUM INTO ?1", params![dest_text])?;
    drop(conn);
    std::fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::Database(format!("syncing {}: {e}", dest.display())))?;
    check(dest)
}

/// Opens `db` read-only and checks it: SQLite's integrity check, a schema
/// this binary understands, and an unbroken audit chain.
pub fn check(db: &Path) -> Result<DatabaseSummary> {
    if !db.is_file() {
        return Err(StoreError::Database(format!(
            "{}: no such file",
            db.display()
        )));
    }
    let mut conn = open_immutable(db)?;
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if integrity != "ok" {
        return Err(StoreError::Corrupt(format!(
            "{}: integrity check failed: {integrity}",
            db.display()
        )));
    }
    let schema_version: i64 = conn
        .query_row(
            "SELECT value FROM schema_meta WHERE key = 'version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|_| StoreError::Corrupt(format!("{}: not an idprov registry", db.display())))?
        .ok_or_else(|| StoreError::Corrupt(format!("{}: not an idprov registry", db.display())))?;
    if schema_version > super::SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: schema_version,
            supported: super::SCHEMA_VERSION,
        });
    }
    let count = |table: &str| -> Result<u64> {
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    let devices = count("devices")?;
    let certificates = count("certificates")?;
    // The chain, in batches so a long log does not sit in memory at once.
    let mut prev: Option<AuditEntry> = None;
    let mut audit_entries = 0u64;
    let mut sdb = SqliteDb::new(&mut conn);
    loop {
        let after = prev.as_ref().map_or(0, |p| p.seq);
        let rows = run_now(sdb.rows(
            &format!(
                "SELECT {} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 10000",
                crate::ops::AUDIT_COLUMNS
            ),
            args![after],
        ))?;
        let batch = crate::ops::decode(rows, <AuditEntry as crate::ops::FromRow>::decode)?;
        let Some(last) = batch.last().cloned() else {
            break;
        };
        verify_chain(prev.as_ref(), &batch)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", db.display())))?;
        audit_entries += batch.len() as u64;
        prev = Some(last);
    }
    Ok(DatabaseSummary {
        schema_version,
        devices,
        certificates,
        audit_entries,
    })
}

/// Opens a file nobody else writes (a snapshot) without creating -wal or
/// -shm files beside it.
fn open_immutable(db: &Path) -> Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let path = db
        .to_str()
        .ok_or_else(|| StoreError::Database(format!("{}: not a UTF-8 path", db.display())))?;
    // The few characters a URI path must escape.
    let mut escaped = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '?' => escaped.push_str("%3f"),
            '#' => escaped.push_str("%23"),
            c => escaped.push(c),
        }
    }
    Ok(rusqlite::Connection::open_with_flags(
        format!("file:{escaped}?immutable=1"),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?)
}

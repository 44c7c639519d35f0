//! Copying a SQLite registry into an empty PostgreSQL one (`idprov db
//! migrate`): every row of every table as it is — devices, certificates with
//! their ids, the audit chain with its hashes and signed checkpoints, the
//! queue, lockouts, decisions, the CRL state — in one transaction, then
//! verified against the source.
//!
//! OOB secrets are sealed with a key the database does not hold: they are
//! carried only when sealed with the key the destination servers will use
//! (`keep_key_id`, the id of the persistent-mode source's key); the others
//! could never be opened and are counted, not copied.

use std::path::Path;

use rusqlite::types::Value;
use tokio_postgres::types::ToSql;

use super::{Postgres, Store, WriteTx, begin_write, db_error, execute, query_one};
use crate::audit::{AuditOf, verify_chain};
use crate::error::{Result, StoreError};
use crate::sql::Arg;

/// What a migration copied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationReport {
    /// Rows copied, per table, in copy order.
    pub tables: Vec<(String, u64)>,
    /// OOB secrets left behind: sealed with a key other than the one
    /// given, so no server could open them.
    pub secrets_not_carried: u64,
    /// Re-delivery records (consumed secrets, kept minutes) left behind for
    /// the same reason.
    pub redelivery_records_not_carried: u64,
    /// Audit entries copied; the chain verified in the destination, ending
    /// on the source's head hash.
    pub audit_entries: u64,
    /// The head hash of the copied chain.
    pub audit_head: Option<String>,
}

/// The tables in dependency-free copy order, with their columns (the same
/// in both schemas) and the identity column, if any, whose values are kept.
/// Values are copied as SQLite holds them; PostgreSQL checks each against
/// its column's type and constraints, so a foreign value fails the copy.
const TABLES: &[(&str, &str, Option<&str>)] = &[
    ("devices", "device_id, created_at", None),
    (
        "oob_secrets",
        "id, device_id, sealed, key_id, created_at, valid_until, created_by, pake_salt, pake_iterations, pake_verifier",
        Some("id"),
    ),
    (
        "consumed_secrets",
        "device_id, key_fingerprint, sealed, key_id, serial, consumed_at, secret_id, pake_salt, pake_iterations, pake_verifier",
        None,
    ),
    (
        "certificates",
        "id, serial, kind, subject, pem, key_fingerprint, key_type, not_before, not_after, issued_at, issue_kind, authorized_by, protocol, revoked_at, revocation_reason",
        Some("id"),
    ),
    (
        "waiting_requests",
        "device_id, key_fingerprint, key_type, public_key_pem, claimed_ip, claimed_mac, source, first_seen, last_seen, attempts, protocol",
        None,
    ),
    (
        "lockouts",
        "device_id, source, failures, last_failure, locked_until",
        None,
    ),
    (
        "guess_budgets",
        "device_id, secret_id, window_start, failures",
        None,
    ),
    (
        "supersessions",
        "cert_id, device_id, by_serial, due_at",
        None,
    ),
    (
        "audit_log",
        "seq, at, actor, event, device_id, detail, prev_hash, hash",
        None,
    ),
    (
        "approvals",
        "device_id, key_fingerprint, approved_by, created_at, expires_at",
        None,
    ),
    (
        "rejections",
        "device_id, key_fingerprint, rejected_by, reason, created_at",
        None,
    ),
    (
        "crl_state",
        "id, number, this_update, next_update, der",
        None,
    ),
    ("web_passwords", "name, hash, updated_at", None),
    (
        "audit_checkpoints",
        "seq, head_hash, at, signer, signature",
        None,
    ),
];

/// Rows per INSERT statement.
const BATCH: usize = 500;

/// A source value as a statement parameter.
fn param<'a>(v: &'a Value, table: &str) -> Result<Arg<'a>> {
    Ok(match v {
        Value::Null => Arg::Null,
        Value::Integer(i) => Arg::Int(*i),
        Value::Text(t) => Arg::Text(t),
        Value::Blob(b) => Arg::Blob(b),
        Value::Real(_) => {
            return Err(StoreError::Corrupt(format!(
                "{table}: a floating-point value in the source"
            )));
        }
    })
}

impl Store<Postgres> {
    /// Copies the SQLite registry at `sqlite` (a server's `idprov.db`, which
    /// is snapshotted first, so it may be in use) into this database, which
    /// must hold no registry data yet. Secrets are carried only when sealed
    /// with `keep_key_id`. Verifies the copy before committing it, and
    /// appends one `registry_migrated` audit entry.
    pub async fn import_sqlite(
        &self,
        sqlite: &Path,
        keep_key_id: Option<&str>,
        audit: AuditOf<MigrationReport>,
    ) -> Result<MigrationReport> {
        // A consistent, WAL-free copy of the source to read from.
        let tmp = tempfile::tempdir()
            .map_err(|e| StoreError::Database(format!("temporary directory: {e}")))?;
        let snapshot = tmp.path().join("source.db");
        let summary = crate::sqlite::backup::snapshot(sqlite, &snapshot)?;
        if summary.schema_version != crate::SCHEMA_VERSION {
            return Err(StoreError::Conflict(format!(
                "the source registry has schema version {}, this idprov {}: start this idprov's \
                 server on it once to upgrade it, then migrate",
                summary.schema_version,
                crate::SCHEMA_VERSION
            )));
        }
        let source = rusqlite::Connection::open_with_flags(
            &snapshot,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;

        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        for table in ["devices", "certificates", "audit_log", "oob_secrets"] {
            let n: i64 = super::col(
                &query_one(w.conn(), &format!("SELECT count(*) FROM {table}"), &[]).await?,
                0,
            )?;
            if n > 0 {
                return Err(StoreError::Conflict(format!(
                    "the destination database already holds {n} rows in {table}: migrate into an empty database"
                )));
            }
        }
        // The CRL row a fresh server may have reserved is replaced by the source's.
        execute(w.conn(), "DELETE FROM crl_state", &[]).await?;

        let mut report = MigrationReport {
            tables: Vec::new(),
            secrets_not_carried: 0,
            redelivery_records_not_carried: 0,
            audit_entries: 0,
            audit_head: None,
        };
        for (table, columns, identity) in TABLES {
            let (copied, skipped) =
                copy_table(&source, &w, table, columns, *identity, keep_key_id).await?;
            match *table {
                "oob_secrets" => report.secrets_not_carried = skipped,
                "consumed_secrets" => report.redelivery_records_not_carried = skipped,
                _ => {}
            }
            report.tables.push(((*table).to_owned(), copied));
        }
        drop(source);

        // Verify before committing: every count, and the chain end to end.
        let check = rusqlite::Connection::open_with_flags(
            &snapshot,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        for (table, copied) in &report.tables {
            let n: i64 = super::col(
                &query_one(w.conn(), &format!("SELECT count(*) FROM {table}"), &[]).await?,
                0,
            )?;
            if u64::try_from(n).unwrap_or(0) != *copied {
                return Err(StoreError::Corrupt(format!(
                    "{table}: {n} rows in the destination, {copied} copied"
                )));
            }
        }
        let mut prev = None;
        loop {
            let after = prev.as_ref().map_or(0, |p: &crate::AuditEntry| p.seq);
            let rows = w
                .conn()
                .query(
                    "SELECT seq, at, actor, event, device_id, detail, prev_hash, hash \
                     FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 10000",
                    &[&after],
                )
                .await
                .map_err(db_error)?;
            let batch = rows
                .iter()
                .map(super::audit_from_row)
                .collect::<Result<Vec<_>>>()?;
            let Some(last) = batch.last().cloned() else {
                break;
            };
            verify_chain(prev.as_ref(), &batch)
                .map_err(|e| StoreError::Corrupt(format!("the copied audit chain: {e}")))?;
            report.audit_entries += batch.len() as u64;
            prev = Some(last);
        }
        let source_head: Option<String> = check
            .query_row(
                "SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .ok();
        report.audit_head = prev.map(|p| p.hash);
        if report.audit_head != source_head {
            return Err(StoreError::Corrupt(
                "the copied audit chain does not end on the source's head".into(),
            ));
        }
        for record in audit.records(&report) {
            super::append_audit_tx(&w, &record).await?;
        }
        w.commit().await?;
        Ok(report)
    }
}

async fn copy_table(
    source: &rusqlite::Connection,
    w: &WriteTx<'_>,
    table: &str,
    columns: &str,
    identity: Option<&str>,
    keep_key_id: Option<&str>,
) -> Result<(u64, u64)> {
    let names: Vec<&str> = columns.split(", ").collect();
    let key_id_at = names.iter().position(|n| *n == "key_id");
    let mut st = source
        .prepare(&format!(
            "SELECT {} FROM {table} ORDER BY rowid",
            names.join(", ")
        ))
        .or_else(|_| {
            // WITHOUT ROWID tables: their primary key order.
            source.prepare(&format!("SELECT {} FROM {table}", names.join(", ")))
        })?;
    let mut rows = st.query([])?;
    let mut batch: Vec<Value> = Vec::new();
    let (mut copied, mut skipped, mut in_batch) = (0u64, 0u64, 0usize);
    while let Some(row) = rows.next()? {
        let values: Vec<Value> = (0..names.len())
            .map(|i| row.get::<_, Value>(i))
            .collect::<rusqlite::Result<_>>()?;
        if let Some(at) = key_id_at {
            let carried =
                matches!((&values[at], keep_key_id), (Value::Text(k), Some(keep)) if k == keep);
            if !carried {
                skipped += 1;
                continue;
            }
        }
        batch.extend(values);
        in_batch += 1;
        copied += 1;
        if in_batch == BATCH {
            insert(w, table, &names, identity.is_some(), &batch, in_batch).await?;
            batch.clear();
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        insert(w, table, &names, identity.is_some(), &batch, in_batch).await?;
    }
    if let Some(id) = identity {
        // New rows continue after the copied ids.
        execute(
            w.conn(),
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{id}'), \
                 GREATEST((SELECT COALESCE(MAX({id}), 0) FROM {table}), 1), \
                 (SELECT COUNT(*) > 0 FROM {table}))"
            ),
            &[],
        )
        .await?;
    }
    // Only the secret tables skip rows.
    Ok((copied, if key_id_at.is_some() { skipped } else { 0 }))
}

async fn insert(
    w: &WriteTx<'_>,
    table: &str,
    names: &[&str],
    keep_identity: bool,
    values: &[Value],
    rows: usize,
) -> Result<()> {
    let width = names.len();
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let cells: Vec<String> = (0..width)
                .map(|c| format!("${}", r * width + c + 1))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({}) {}VALUES {}",
        names.join(", "),
        if keep_identity {
            "OVERRIDING SYSTEM VALUE "
        } else {
            ""
        },
        tuples.join(", ")
    );
    let args = values
        .iter()
        .map(|v| param(v, table))
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
    w.conn().execute(&sql, &refs).await.map_err(db_error)?;
    Ok(())
}

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

use super::{PostgresRegistry, WriteTx, begin_write, db_error, execute, query_one};
use crate::audit::{AuditRecord, verify_chain};
use crate::error::{Result, StoreError};

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

/// A column of a copied table, and how it is read from SQLite.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    NullInt,
    Text,
    NullText,
    Blob,
}

/// The tables in dependency-free copy order, with their columns (the same
/// in both schemas) and the identity column, if any, whose values are kept.
/// A table: its name, its columns, and the identity column it keeps.
type Table = (
    &'static str,
    &'static [(&'static str, Kind)],
    Option<&'static str>,
);

const TABLES: &[Table] = &[
    (
        "devices",
        &[("device_id", Kind::Text), ("created_at", Kind::Int)],
        None,
    ),
    (
        "oob_secrets",
        &[
            ("id", Kind::Int),
            ("device_id", Kind::Text),
            ("sealed", Kind::Blob),
            ("key_id", Kind::Text),
            ("created_at", Kind::Int),
            ("valid_until", Kind::Int),
            ("created_by", Kind::Text),
        ],
        Some("id"),
    ),
    (
        "consumed_secrets",
        &[
            ("device_id", Kind::Text),
            ("key_fingerprint", Kind::Text),
            ("sealed", Kind::Blob),
            ("key_id", Kind::Text),
            ("serial", Kind::Text),
            ("consumed_at", Kind::Int),
        ],
        None,
    ),
    (
        "certificates",
        &[
            ("id", Kind::Int),
            ("serial", Kind::Text),
            ("kind", Kind::Text),
            ("subject", Kind::Text),
            ("pem", Kind::Text),
            ("key_fingerprint", Kind::Text),
            ("key_type", Kind::Text),
            ("not_before", Kind::Int),
            ("not_after", Kind::Int),
            ("issued_at", Kind::Int),
            ("issue_kind", Kind::Text),
            ("authorized_by", Kind::Text),
            ("revoked_at", Kind::NullInt),
            ("revocation_reason", Kind::NullInt),
        ],
        Some("id"),
    ),
    (
        "waiting_requests",
        &[
            ("device_id", Kind::Text),
            ("key_fingerprint", Kind::Text),
            ("key_type", Kind::Text),
            ("public_key_pem", Kind::Text),
            ("claimed_ip", Kind::Text),
            ("claimed_mac", Kind::Text),
            ("source", Kind::Text),
            ("first_seen", Kind::Int),
            ("last_seen", Kind::Int),
            ("attempts", Kind::Int),
        ],
        None,
    ),
    (
        "lockouts",
        &[
            ("device_id", Kind::Text),
            ("source", Kind::Text),
            ("failures", Kind::Int),
            ("last_failure", Kind::Int),
            ("locked_until", Kind::Int),
        ],
        None,
    ),
    (
        "guess_budgets",
        &[
            ("device_id", Kind::Text),
            ("secret_id", Kind::Int),
            ("window_start", Kind::Int),
            ("failures", Kind::Int),
        ],
        None,
    ),
    (
        "audit_log",
        &[
            ("seq", Kind::Int),
            ("at", Kind::Int),
            ("actor", Kind::Text),
            ("event", Kind::Text),
            ("device_id", Kind::NullText),
            ("detail", Kind::Text),
            ("prev_hash", Kind::Text),
            ("hash", Kind::Text),
        ],
        None,
    ),
    (
        "approvals",
        &[
            ("device_id", Kind::Text),
            ("key_fingerprint", Kind::Text),
            ("approved_by", Kind::Text),
            ("created_at", Kind::Int),
            ("expires_at", Kind::Int),
        ],
        None,
    ),
    (
        "rejections",
        &[
            ("device_id", Kind::Text),
            ("key_fingerprint", Kind::Text),
            ("rejected_by", Kind::Text),
            ("reason", Kind::Text),
            ("created_at", Kind::Int),
        ],
        None,
    ),
    (
        "crl_state",
        &[
            ("id", Kind::Int),
            ("number", Kind::Int),
            ("this_update", Kind::Int),
            ("next_update", Kind::Int),
            ("der", Kind::Blob),
        ],
        None,
    ),
    (
        "web_passwords",
        &[
            ("name", Kind::Text),
            ("hash", Kind::Text),
            ("updated_at", Kind::Int),
        ],
        None,
    ),
    (
        "audit_checkpoints",
        &[
            ("seq", Kind::Int),
            ("head_hash", Kind::Text),
            ("at", Kind::Int),
            ("signer", Kind::Text),
            ("signature", Kind::Blob),
        ],
        None,
    ),
];

/// Rows per INSERT statement.
const BATCH: usize = 500;

type Param = Box<dyn ToSql + Sync + Send>;

fn param(v: Value, kind: Kind, table: &str, column: &str) -> Result<Param> {
    let bad = || StoreError::Corrupt(format!("{table}.{column}: unexpected value in the source"));
    Ok(match (kind, v) {
        (Kind::Int, Value::Integer(i)) => Box::new(i),
        (Kind::NullInt, Value::Integer(i)) => Box::new(Some(i)),
        (Kind::NullInt, Value::Null) => Box::new(None::<i64>),
        (Kind::Text, Value::Text(t)) => Box::new(t),
        (Kind::NullText, Value::Text(t)) => Box::new(Some(t)),
        (Kind::NullText, Value::Null) => Box::new(None::<String>),
        (Kind::Blob, Value::Blob(b)) => Box::new(b),
        _ => return Err(bad()),
    })
}

impl PostgresRegistry {
    /// Copies the SQLite registry at `sqlite` (a server's `idprov.db`, which
    /// is snapshotted first, so it may be in use) into this database, which
    /// must hold no registry data yet. Secrets are carried only when sealed
    /// with `keep_key_id`. Verifies the copy before committing it, and
    /// appends one `registry_migrated` audit entry.
    pub async fn import_sqlite(
        &self,
        sqlite: &Path,
        keep_key_id: Option<&str>,
        audit: AuditRecord,
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
        let mut audit = audit;
        if let Some(detail) = audit.detail.as_object_mut() {
            detail.insert(
                "tables".into(),
                serde_json::to_value(&report.tables).unwrap_or_default(),
            );
            detail.insert(
                "secretsNotCarried".into(),
                report.secrets_not_carried.into(),
            );
        }
        super::append_audit_tx(&w, &audit).await?;
        w.commit().await?;
        Ok(report)
    }
}

async fn copy_table(
    source: &rusqlite::Connection,
    w: &WriteTx<'_>,
    table: &str,
    columns: &[(&str, Kind)],
    identity: Option<&str>,
    keep_key_id: Option<&str>,
) -> Result<(u64, u64)> {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
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
    let mut batch: Vec<Param> = Vec::new();
    let (mut copied, mut skipped, mut in_batch) = (0u64, 0u64, 0usize);
    while let Some(row) = rows.next()? {
        let values: Vec<Value> = (0..columns.len())
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
        for (v, (name, kind)) in values.into_iter().zip(columns) {
            batch.push(param(v, *kind, table, name)?);
        }
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
    params: &[Param],
    rows: usize,
) -> Result<()> {
    let width = names.len();
    let values: Vec<String> = (0..rows)
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
        values.join(", ")
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    w.conn().execute(&sql, &refs).await.map_err(db_error)?;
    Ok(())
}

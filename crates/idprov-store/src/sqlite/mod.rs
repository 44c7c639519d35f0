//! The SQLite backend: one file in the data directory, WAL journal,
//! `synchronous=FULL`, one writer thread with group commit, pooled readers.

pub mod backup;
mod schema;
mod worker;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::audit::{Actor, AuditEntry, AuditRecord};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::registry::Registry;

pub use schema::SCHEMA_VERSION;
use worker::{Readers, Writer};

/// The registry in a SQLite file.
#[derive(Debug)]
pub struct SqliteRegistry {
    path: PathBuf,
    writer: Writer,
    readers: Readers,
}

impl SqliteRegistry {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteRegistry> {
        // Created 0600 before SQLite opens it: its -wal and -shm files take
        // the same mode. The rows hold sealed secrets and the audit log.
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| StoreError::Database(format!("creating {}: {e}", path.display())))?;
        }
        let mut conn = worker::open(path, false)?;
        schema::migrate(&mut conn)?;
        Ok(SqliteRegistry {
            path: path.to_owned(),
            writer: Writer::start(conn),
            readers: Readers::new(path.to_owned()),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A PRAGMA value as the writer's settings apply it (tests read back
    /// `synchronous` and `journal_mode`).
    pub async fn pragma(&self, name: &'static str) -> Result<String> {
        self.writer
            .write(move |c| {
                Ok(c.query_row(&format!("PRAGMA {name}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| match v {
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    other => format!("{other:?}"),
                })?)
            })
            .await
    }

    /// Finishes queued writes and stops the writer thread.
    pub fn close(&self) {
        self.writer.close();
    }
}

impl Drop for SqliteRegistry {
    fn drop(&mut self) {
        self.writer.close();
    }
}

/// Appends an audit entry inside the current transaction, linking it to the
/// chain's head.
fn append_audit_tx(c: &Connection, r: &AuditRecord) -> Result<i64> {
    let head: Option<(i64, String)> = c
        .query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let link = r.link(head)?;
    c.prepare_cached(
        "INSERT INTO audit_log (seq, at, actor, event, device_id, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        link.seq,
        r.at,
        r.actor.as_str(),
        r.event,
        r.device_id,
        link.detail,
        link.prev_hash,
        link.hash
    ])?;
    Ok(link.seq)
}

fn ensure_device(c: &Connection, device_id: &str, now: i64) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO devices (device_id, created_at) VALUES (?1, ?2)
         ON CONFLICT(device_id) DO NOTHING",
    )?
    .execute(params![device_id, now])?;
    Ok(())
}

const CERT_COLUMNS: &str = "serial, kind, subject, pem, key_fingerprint, key_type, not_before, \
     not_after, issued_at, issue_kind, authorized_by, revoked_at, revocation_reason";

fn cert_from_row(r: &Row<'_>) -> rusqlite::Result<CertRecord> {
    let kind: String = r.get(1)?;
    let issue_kind: String = r.get(9)?;
    let bad = |what: &str, v: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown {what} {v:?}").into(),
        )
    };
    Ok(CertRecord {
        serial: r.get(0)?,
        kind: CertKind::parse(&kind).ok_or_else(|| bad("certificate kind", &kind))?,
        subject: r.get(2)?,
        pem: r.get(3)?,
        key_fingerprint: r.get(4)?,
        key_type: r.get(5)?,
        not_before: r.get(6)?,
        not_after: r.get(7)?,
        issued_at: r.get(8)?,
        issue_kind: IssueKind::parse(&issue_kind).ok_or_else(|| bad("issue kind", &issue_kind))?,
        authorized_by: r.get(10)?,
        revoked_at: r.get(11)?,
        revocation_reason: r.get(12)?,
    })
}

fn waiting_from_row(r: &Row<'_>) -> rusqlite::Result<WaitingRequest> {
    Ok(WaitingRequest {
        device_id: r.get(0)?,
        key_fingerprint: r.get(1)?,
        key_type: r.get(2)?,
        public_key_pem: r.get(3)?,
        claimed_ip: r.get(4)?,
        claimed_mac: r.get(5)?,
        source: r.get(6)?,
        first_seen: r.get(7)?,
        last_seen: r.get(8)?,
        attempts: r.get(9)?,
    })
}

fn audit_from_row(r: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    let detail: String = r.get(5)?;
    Ok(AuditEntry {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        event: r.get(3)?,
        device_id: r.get(4)?,
        // A detail that no longer parses still fails the hash check.
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
        prev_hash: r.get(6)?,
        hash: r.get(7)?,
    })
}

/// A bulk import's rows on disk while they arrive: a private SQLite file
/// beside the registry (0600: the rows hold sealed secrets), written without
/// journal or fsync (it is only a buffer; the registry's commit is what is
/// durable), removed when dropped.
struct Spool {
    path: PathBuf,
    conn: Option<Connection>,
    digest: String,
}

impl Spool {
    fn create(db: &Path) -> Result<Spool> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = db.parent().unwrap_or_else(|| Path::new("."));
        // Unique, not secret: std's per-process random hasher keys suffice.
        let unique = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            h.finish()
        };
        let path = dir.join(format!(".import-{unique:016x}.spool"));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StoreError::Database(format!("creating {}: {e}", path.display())))?;
        let mut spool = Spool {
            path,
            conn: None,
            digest: String::new(),
        };
        let conn = Connection::open(&spool.path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
             CREATE TABLE rows (seq INTEGER PRIMARY KEY, idx INTEGER NOT NULL, device_id TEXT NOT NULL,
               sealed BLOB NOT NULL, key_id TEXT NOT NULL, created_at INTEGER NOT NULL,
               valid_until INTEGER NOT NULL, created_by TEXT NOT NULL);",
        )?;
        spool.conn = Some(conn);
        Ok(spool)
    }

    /// Receives the rows until `End`; an interrupted stream is an error
    /// (and nothing is stored).
    fn fill(mut self, rows: &mut tokio::sync::mpsc::Receiver<BulkMessage>) -> Result<Spool> {
        let conn = self
            .conn
            .take()
            .ok_or_else(|| StoreError::Database("spool already filled".into()))?;
        conn.execute_batch("BEGIN")?;
        {
            let mut insert = conn.prepare(
                "INSERT INTO rows (idx, device_id, sealed, key_id, created_at, valid_until, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            loop {
                match rows.blocking_recv() {
                    Some(BulkMessage::Row(row)) => {
                        let s = &row.secret;
                        insert.execute(params![
                            i64::try_from(row.index).unwrap_or(i64::MAX),
                            s.device_id,
                            s.sealed,
                            s.key_id,
                            s.created_at,
                            s.valid_until,
                            s.created_by.as_str()
                        ])?;
                    }
                    Some(BulkMessage::End { rows_sha256 }) => {
                        self.digest = rows_sha256;
                        break;
                    }
                    None => {
                        return Err(StoreError::Conflict(
                            "the import was interrupted; nothing was stored".into(),
                        ));
                    }
                }
            }
        }
        conn.execute_batch("COMMIT")?;
        Ok(self)
    }

    /// A connection that reads the spooled rows.
    fn reader(&self) -> Result<Connection> {
        Ok(Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.conn = None;
        let _ = std::fs::remove_file(&self.path);
    }
}

// The reads of the OOB path (PROTOCOL.md §6 4.1–4.5), shared by the single
// trait methods and `oob_view`. Cached statements: they run on every request.

fn read_live_secret(c: &Connection, device_id: &str, now: i64) -> Result<Option<StoredSecret>> {
    Ok(c.prepare_cached(
        "SELECT id, device_id, sealed, key_id, created_at, valid_until
         FROM oob_secrets WHERE device_id = ?1 AND valid_until >= ?2",
    )?
    .query_row(params![device_id, now], |r| {
        Ok(StoredSecret {
            id: r.get(0)?,
            device_id: r.get(1)?,
            sealed: r.get(2)?,
            key_id: r.get(3)?,
            created_at: r.get(4)?,
            valid_until: r.get(5)?,
        })
    })
    .optional()?)
}

fn read_consumed_secret(
    c: &Connection,
    device_id: &str,
    key_fingerprint: &str,
    since: i64,
) -> Result<Option<ConsumedSecret>> {
    Ok(c.prepare_cached(
        "SELECT sealed, key_id, serial, consumed_at FROM consumed_secrets
         WHERE device_id = ?1 AND key_fingerprint = ?2 AND consumed_at >= ?3",
    )?
    .query_row(params![device_id, key_fingerprint, since], |r| {
        Ok(ConsumedSecret {
            sealed: r.get(0)?,
            key_id: r.get(1)?,
            serial: r.get(2)?,
            consumed_at: r.get(3)?,
        })
    })
    .optional()?)
}

/// The source holding the most waiting requests, and how many.
const WAITING_TOP_SOURCE_SQL: &str = "SELECT source, COUNT(*) AS n FROM waiting_requests
     GROUP BY source ORDER BY n DESC, source LIMIT 1";

const APPROVED_SERIAL_SQL: &str = "SELECT serial FROM certificates
     WHERE kind = 'device' AND subject = ?1 AND key_fingerprint = ?2
       AND issue_kind = 'approval' AND issued_at >= ?3 AND revoked_at IS NULL
     ORDER BY id DESC LIMIT 1";

/// The approval path's re-delivery: the newest unrevoked certificate issued
/// on an approval of (device, key) at or after `since`.
fn read_approved_serial(
    c: &Connection,
    device_id: &str,
    key_fingerprint: &str,
    since: i64,
) -> Result<Option<String>> {
    Ok(c.prepare_cached(APPROVED_SERIAL_SQL)?
        .query_row(params![device_id, key_fingerprint, since], |r| r.get(0))
        .optional()?)
}

fn read_guess_budget(c: &Connection, device_id: &str) -> Result<Option<GuessBudget>> {
    Ok(c.prepare_cached(
        "SELECT secret_id, window_start, failures FROM guess_budgets WHERE device_id = ?1",
    )?
    .query_row([device_id], |r| {
        Ok(GuessBudget {
            secret_id: r.get(0)?,
            window_start: r.get(1)?,
            failures: r.get(2)?,
        })
    })
    .optional()?)
}

fn read_lockout(c: &Connection, device_id: &str, source: &str) -> Result<Option<Lockout>> {
    Ok(c.prepare_cached(
        "SELECT failures, locked_until FROM lockouts WHERE device_id = ?1 AND source = ?2",
    )?
    .query_row(params![device_id, source], |r| {
        Ok(Lockout {
            failures: r.get(0)?,
            locked_until: r.get(1)?,
        })
    })
    .optional()?)
}

/// One page of the waiting queue, in (device, key) order.
fn read_waiting_page(c: &Connection, page: &Page) -> Result<Vec<WaitingRequest>> {
    let (device, fp) = page.waiting_cursor();
    let mut st = c.prepare_cached(
        "SELECT device_id, key_fingerprint, key_type, public_key_pem, claimed_ip,
            claimed_mac, source, first_seen, last_seen, attempts
         FROM waiting_requests
         WHERE (?2 IS NULL AND device_id > ?1)
            OR (?2 IS NOT NULL AND (device_id, key_fingerprint) > (?1, ?2))
         ORDER BY device_id, key_fingerprint LIMIT ?3",
    )?;
    let rows = st.query_map(params![device, fp, page.sql_limit()], waiting_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn read_approval(
    c: &Connection,
    device_id: &str,
    key_fingerprint: &str,
    now: i64,
) -> Result<Option<Approval>> {
    Ok(c.prepare_cached(
        "SELECT device_id, key_fingerprint, approved_by, created_at, expires_at FROM approvals
         WHERE device_id = ?1 AND key_fingerprint = ?2 AND expires_at >= ?3",
    )?
    .query_row(params![device_id, key_fingerprint, now], |r| {
        Ok(Approval {
            device_id: r.get(0)?,
            key_fingerprint: r.get(1)?,
            approved_by: r.get(2)?,
            created_at: r.get(3)?,
            expires_at: r.get(4)?,
        })
    })
    .optional()?)
}

fn read_rejection(
    c: &Connection,
    device_id: &str,
    key_fingerprint: &str,
) -> Result<Option<Rejection>> {
    Ok(c.prepare_cached(
        "SELECT device_id, key_fingerprint, rejected_by, reason, created_at FROM rejections
         WHERE device_id = ?1 AND key_fingerprint = ?2",
    )?
    .query_row(params![device_id, key_fingerprint], |r| {
        Ok(Rejection {
            device_id: r.get(0)?,
            key_fingerprint: r.get(1)?,
            rejected_by: r.get(2)?,
            reason: r.get(3)?,
            created_at: r.get(4)?,
        })
    })
    .optional()?)
}

/// The issue transaction's statements (inside `record_issue`'s savepoint).
fn record_issue_tx(c: &Connection, rec: &IssueRecord) -> Result<IssueOutcome> {
    let cert = &rec.cert;
    if let Some(consume) = &rec.consume_secret {
        // Conditional consumption: the row must still be the one the
        // request was verified against, and still unexpired.
        // (SQLite makes every change of a DELETE … RETURNING at
        // its first step, so reading one row is enough.)
        let row: Option<(Vec<u8>, String)> = c
            .prepare_cached(
                "DELETE FROM oob_secrets WHERE id = ?1 AND device_id = ?2 AND valid_until >= ?3
                 RETURNING sealed, key_id",
            )?
            .query_row(
                params![consume.secret_id, cert.subject, cert.issued_at],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((sealed, key_id)) = row else {
            return Ok(IssueOutcome::SecretGone);
        };
        c.prepare_cached("INSERT INTO consumed_secrets (device_id, key_fingerprint, sealed, key_id, serial, consumed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(device_id, key_fingerprint) DO UPDATE SET
                sealed = excluded.sealed, key_id = excluded.key_id,
                serial = excluded.serial, consumed_at = excluded.consumed_at")?.execute(params![
                cert.subject,
                consume.key_fingerprint,
                sealed,
                key_id,
                cert.serial,
                cert.issued_at
            ])?;
    }
    if let Some(fp) = &rec.consume_approval {
        let used = c.prepare_cached("DELETE FROM approvals WHERE device_id = ?1 AND key_fingerprint = ?2 AND expires_at >= ?3")?.execute(params![cert.subject, fp, cert.issued_at])?;
        if used == 0 {
            return Ok(IssueOutcome::SecretGone);
        }
    }
    if cert.kind == CertKind::Device {
        ensure_device(c, &cert.subject, cert.issued_at)?;
    }
    c.prepare_cached(&format!(
        "INSERT INTO certificates ({CERT_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, NULL, NULL)"
    ))?
    .execute(params![
        cert.serial,
        cert.kind.as_str(),
        cert.subject,
        cert.pem,
        cert.key_fingerprint,
        cert.key_type,
        cert.not_before,
        cert.not_after,
        cert.issued_at,
        cert.issue_kind.as_str(),
        cert.authorized_by
    ])?;
    if let Some(source) = &rec.reset_lockout_for {
        c.prepare_cached("DELETE FROM lockouts WHERE device_id = ?1 AND source = ?2")?
            .execute(params![cert.subject, source])?;
    }
    if let Some(fp) = &rec.clear_waiting_key {
        c.prepare_cached(
            "DELETE FROM waiting_requests WHERE device_id = ?1 AND key_fingerprint = ?2",
        )?
        .execute(params![cert.subject, fp])?;
    }
    append_audit_tx(c, &rec.audit)?;
    Ok(IssueOutcome::Recorded)
}

#[async_trait]
impl Registry for SqliteRegistry {
    async fn put_secret(&self, s: NewSecret, mut audit: AuditRecord) -> Result<PutSecretOutcome> {
        self.writer
            .write(move |c| {
                ensure_device(c, &s.device_id, s.created_at)?;
                let replaced = c.execute(
                    "DELETE FROM oob_secrets WHERE device_id = ?1",
                    [&s.device_id],
                )? > 0;
                c.execute(
                    "INSERT INTO oob_secrets (device_id, sealed, key_id, created_at, valid_until, created_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        s.device_id,
                        s.sealed,
                        s.key_id,
                        s.created_at,
                        s.valid_until,
                        s.created_by.as_str()
                    ],
                )?;
                if let Some(detail) = audit.detail.as_object_mut() {
                    detail.insert("replaced".into(), replaced.into());
                }
                append_audit_tx(c, &audit)?;
                Ok(if replaced {
                    PutSecretOutcome::Replaced
                } else {
                    PutSecretOutcome::Added
                })
            })
            .await
    }

    async fn remove_secret(&self, device_id: &str, audit: AuditRecord) -> Result<bool> {
        let device_id = device_id.to_owned();
        self.writer
            .write(move |c| {
                let removed =
                    c.execute("DELETE FROM oob_secrets WHERE device_id = ?1", [&device_id])? > 0;
                if removed {
                    append_audit_tx(c, &audit)?;
                }
                Ok(removed)
            })
            .await
    }

    async fn device_overview(&self, now: i64, soon: i64) -> Result<DeviceOverview> {
        self.readers
            .read(move |c| {
                // The classification of list_devices, counted.
                let mut st = c.prepare_cached(
                    "WITH d AS (
                        SELECT dv.device_id,
                          (SELECT COUNT(*) FROM certificates WHERE kind = 'device' AND subject = dv.device_id) AS certs,
                          (SELECT COUNT(revoked_at) FROM certificates WHERE kind = 'device' AND subject = dv.device_id) AS revoked,
                          (SELECT id FROM certificates WHERE kind = 'device' AND subject = dv.device_id
                              AND revoked_at IS NULL AND not_before <= ?1 AND not_after >= ?1
                              ORDER BY id DESC LIMIT 1) AS valid_id,
                          (SELECT MAX(id) FROM certificates WHERE kind = 'device' AND subject = dv.device_id) AS latest_id,
                          EXISTS(SELECT 1 FROM oob_secrets WHERE device_id = dv.device_id AND valid_until >= ?1) AS live,
                          (SELECT COUNT(*) FROM waiting_requests WHERE device_id = dv.device_id) AS waiting,
                          EXISTS(SELECT 1 FROM approvals WHERE device_id = dv.device_id AND expires_at >= ?1) AS approved,
                          EXISTS(SELECT 1 FROM rejections WHERE device_id = dv.device_id) AS rejected
                        FROM devices dv
                    ), s AS (
                        SELECT
                          CASE WHEN d.valid_id IS NOT NULL THEN 'Approved'
                               WHEN d.rejected THEN 'Rejected'
                               WHEN d.live OR d.waiting > 0 OR d.approved THEN 'Waiting'
                               WHEN d.certs > 0 AND d.revoked = d.certs THEN 'Rejected'
                               ELSE 'Waiting' END AS status,
                          (d.certs > 0 AND d.revoked = d.certs) AS all_revoked,
                          (v.not_after IS NOT NULL AND v.not_after <= ?2) AS expiring,
                          (l.id IS NOT NULL AND l.revoked_at IS NULL
                            AND ?1 > l.not_before + (l.not_after - l.not_before) * 55 / 100 + 86400) AS missed
                        FROM d
                        LEFT JOIN certificates v ON v.id = d.valid_id
                        LEFT JOIN certificates l ON l.id = d.latest_id
                    )
                    SELECT COUNT(*),
                      COALESCE(SUM(status = 'Approved'), 0), COALESCE(SUM(status = 'Waiting'), 0),
                      COALESCE(SUM(status = 'Rejected'), 0), COALESCE(SUM(all_revoked), 0),
                      COALESCE(SUM(expiring), 0), COALESCE(SUM(missed), 0)
                    FROM s",
                )?;
                Ok(st.query_row(params![now, soon], |r| {
                    Ok(DeviceOverview {
                        total: count(r.get(0)?),
                        approved: count(r.get(1)?),
                        waiting: count(r.get(2)?),
                        rejected: count(r.get(3)?),
                        revoked: count(r.get(4)?),
                        expiring: count(r.get(5)?),
                        missed_renewal: count(r.get(6)?),
                    })
                })?)
            })
            .await
    }

    async fn set_web_password(&self, password: WebPassword, audit: AuditRecord) -> Result<()> {
        self.writer
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO web_passwords (name, hash, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(name) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at",
                )?
                .execute(params![password.name, password.hash, password.updated_at])?;
                append_audit_tx(c, &audit)?;
                Ok(())
            })
            .await
    }

    async fn web_password(&self, name: &str) -> Result<Option<WebPassword>> {
        let name = name.to_owned();
        self.readers
            .read(move |c| {
                Ok(c.prepare_cached(
                    "SELECT name, hash, updated_at FROM web_passwords WHERE name = ?1",
                )?
                .query_row([name], |r| {
                    Ok(WebPassword {
                        name: r.get(0)?,
                        hash: r.get(1)?,
                        updated_at: r.get(2)?,
                    })
                })
                .optional()?)
            })
            .await
    }

    async fn remove_web_password(&self, name: &str, audit: AuditRecord) -> Result<bool> {
        let name = name.to_owned();
        self.writer
            .write(move |c| {
                let removed = c
                    .prepare_cached("DELETE FROM web_passwords WHERE name = ?1")?
                    .execute([name])?
                    > 0;
                if removed {
                    append_audit_tx(c, &audit)?;
                }
                Ok(removed)
            })
            .await
    }

    async fn web_password_count(&self) -> Result<u64> {
        self.readers
            .read(|c| {
                Ok(count(
                    c.prepare_cached("SELECT COUNT(*) FROM web_passwords")?
                        .query_row([], |r| r.get(0))?,
                ))
            })
            .await
    }

    async fn secret_key_ids(&self) -> Result<Vec<(String, u64)>> {
        self.readers
            .read(|c| {
                let mut st = c.prepare_cached(
                    "SELECT key_id, count(*) FROM oob_secrets GROUP BY key_id ORDER BY key_id",
                )?;
                let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, count(r.get(1)?))))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn live_secret(&self, device_id: &str, now: i64) -> Result<Option<StoredSecret>> {
        let device_id = device_id.to_owned();
        self.readers
            .read(move |c| read_live_secret(c, &device_id, now))
            .await
    }

    async fn consumed_secret(
        &self,
        device_id: &str,
        key_fingerprint: &str,
        since: i64,
    ) -> Result<Option<ConsumedSecret>> {
        let (device_id, key_fingerprint) = (device_id.to_owned(), key_fingerprint.to_owned());
        self.readers
            .read(move |c| read_consumed_secret(c, &device_id, &key_fingerprint, since))
            .await
    }

    async fn list_secrets(&self, page: &Page) -> Result<Vec<SecretSummary>> {
        let after = page.after.clone().unwrap_or_default();
        let limit = page.sql_limit();
        self.readers
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT device_id, created_at, valid_until, created_by FROM oob_secrets
                     WHERE device_id > ?1 ORDER BY device_id LIMIT ?2",
                )?;
                let rows = st.query_map(params![after, limit], |r| {
                    Ok(SecretSummary {
                        device_id: r.get(0)?,
                        created_at: r.get(1)?,
                        valid_until: r.get(2)?,
                        created_by: r.get(3)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn purge_secrets(
        &self,
        current_key_id: &str,
        now: i64,
        consumed_before: i64,
    ) -> Result<(u64, u64)> {
        let key_id = current_key_id.to_owned();
        self.writer
            .write(move |c| {
                // Only registered secrets count: consumed ones served re-delivery.
                let unreadable = c.execute("DELETE FROM oob_secrets WHERE key_id != ?1", [&key_id])?;
                c.execute("DELETE FROM consumed_secrets WHERE key_id != ?1", [&key_id])?;
                let expired =
                    c.execute("DELETE FROM oob_secrets WHERE valid_until < ?1", [now])?;
                c.execute(
                    "DELETE FROM consumed_secrets WHERE consumed_at < ?1",
                    [consumed_before],
                )?;
                let (unreadable, expired) = (unreadable as u64, expired as u64);
                if unreadable > 0 {
                    append_audit_tx(
                        c,
                        &AuditRecord::new(
                            now,
                            Actor::system(),
                            "secrets_purged",
                            None,
                            serde_json::json!({
                                "count": unreadable,
                                "reason": "sealed under a key this server no longer has (restart without a persistent secret key)"
                            }),
                        ),
                    )?;
                }
                if expired > 0 {
                    append_audit_tx(
                        c,
                        &AuditRecord::new(
                            now,
                            Actor::system(),
                            "secrets_expired",
                            None,
                            serde_json::json!({ "count": expired }),
                        ),
                    )?;
                }
                Ok((unreadable, expired))
            })
            .await
    }

    async fn lockout(&self, device_id: &str, source: &str) -> Result<Option<Lockout>> {
        let (device_id, source) = (device_id.to_owned(), source.to_owned());
        self.readers
            .read(move |c| read_lockout(c, &device_id, &source))
            .await
    }

    async fn record_failure(
        &self,
        device_id: &str,
        source: &str,
        secret_id: i64,
        now: i64,
        policy: &LockoutPolicy,
    ) -> Result<Failure> {
        let (device_id, source, policy) = (device_id.to_owned(), source.to_owned(), *policy);
        self.writer
            .write(move |c| {
                let previous: Option<(u32, i64)> = c
                    .query_row(
                        "SELECT failures, last_failure FROM lockouts WHERE device_id = ?1 AND source = ?2",
                        params![device_id, source],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let (lockout, lock_started) = policy.after_failure(previous, now);
                c.execute(
                    "INSERT INTO lockouts (device_id, source, failures, last_failure, locked_until)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(device_id, source) DO UPDATE SET
                        failures = excluded.failures, last_failure = excluded.last_failure,
                        locked_until = excluded.locked_until",
                    params![device_id, source, lockout.failures, now, lockout.locked_until],
                )?;
                let (budget, budget_spent) =
                    policy.after_device_failure(secret_id, read_guess_budget(c, &device_id)?, now);
                c.execute(
                    "INSERT INTO guess_budgets (device_id, secret_id, window_start, failures)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(device_id) DO UPDATE SET secret_id = excluded.secret_id,
                        window_start = excluded.window_start, failures = excluded.failures",
                    params![device_id, budget.secret_id, budget.window_start, budget.failures],
                )?;
                Ok(Failure {
                    lockout,
                    lock_started,
                    budget,
                    budget_spent,
                })
            })
            .await
    }

    async fn guess_budget(&self, device_id: &str) -> Result<Option<GuessBudget>> {
        let device_id = device_id.to_owned();
        self.readers
            .read(move |c| read_guess_budget(c, &device_id))
            .await
    }

    async fn clear_lockouts(&self, device_id: &str, audit: AuditRecord) -> Result<u64> {
        let device_id = device_id.to_owned();
        self.writer
            .write(move |c| {
                let n =
                    c.execute("DELETE FROM lockouts WHERE device_id = ?1", [&device_id])? as u64;
                let budget = c.execute(
                    "DELETE FROM guess_budgets WHERE device_id = ?1",
                    [&device_id],
                )?;
                if n > 0 || budget > 0 {
                    append_audit_tx(c, &audit)?;
                }
                Ok(n)
            })
            .await
    }

    async fn gauges(&self, now: i64, soon: i64) -> Result<Gauges> {
        self.readers
            .read(move |c| {
                let waiting: i64 =
                    c.query_row("SELECT COUNT(*) FROM waiting_requests", [], |r| r.get(0))?;
                let devices: i64 = c.query_row("SELECT COUNT(*) FROM devices", [], |r| r.get(0))?;
                let expiring: i64 = c.query_row(
                    "SELECT COUNT(*) FROM certificates WHERE kind = 'device' AND revoked_at IS NULL
                       AND not_after >= ?1 AND not_after < ?2",
                    params![now, soon],
                    |r| r.get(0),
                )?;
                Ok(Gauges {
                    waiting: count(waiting),
                    expiring: count(expiring),
                    devices: count(devices),
                })
            })
            .await
    }

    async fn record_waiting(
        &self,
        w: WaitingRequest,
        caps: WaitingCaps,
        audit: Option<AuditRecord>,
    ) -> Result<WaitingOutcome> {
        self.writer
            .write(move |c| {
                let updated = c.execute(
                    "UPDATE waiting_requests SET claimed_ip = ?3, claimed_mac = ?4, source = ?5,
                        last_seen = ?6, attempts = attempts + 1
                     WHERE device_id = ?1 AND key_fingerprint = ?2",
                    params![
                        w.device_id,
                        w.key_fingerprint,
                        w.claimed_ip,
                        w.claimed_mac,
                        w.source,
                        w.last_seen
                    ],
                )?;
                if updated > 0 {
                    return Ok(WaitingOutcome::Updated);
                }
                let from_source: i64 = c.query_row(
                    "SELECT COUNT(*) FROM waiting_requests WHERE source = ?1",
                    [&w.source],
                    |r| r.get(0),
                )?;
                if count(from_source) >= caps.per_source {
                    return Ok(WaitingOutcome::SourceCapReached);
                }
                let total: i64 =
                    c.query_row("SELECT COUNT(*) FROM waiting_requests", [], |r| r.get(0))?;
                let mut outcome = WaitingOutcome::Queued;
                if count(total) >= caps.total {
                    // Full: the source holding the most gives up its least
                    // recently seen entry, if it holds more than this one.
                    let top: Option<(String, i64)> = c
                        .query_row(WAITING_TOP_SOURCE_SQL, [], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    match top {
                        Some((source, n)) if n > from_source + 1 => {
                            c.execute(
                                "DELETE FROM waiting_requests WHERE (device_id, key_fingerprint) IN (
                                    SELECT device_id, key_fingerprint FROM waiting_requests
                                    WHERE source = ?1
                                    ORDER BY last_seen, device_id, key_fingerprint LIMIT 1)",
                                [source],
                            )?;
                            outcome = WaitingOutcome::Evicted;
                        }
                        _ => return Ok(WaitingOutcome::TotalCapReached),
                    }
                }
                ensure_device(c, &w.device_id, w.first_seen)?;
                c.execute(
                    "INSERT INTO waiting_requests (device_id, key_fingerprint, key_type, public_key_pem,
                        claimed_ip, claimed_mac, source, first_seen, last_seen, attempts)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1)",
                    params![
                        w.device_id,
                        w.key_fingerprint,
                        w.key_type,
                        w.public_key_pem,
                        w.claimed_ip,
                        w.claimed_mac,
                        w.source,
                        w.first_seen,
                        w.last_seen
                    ],
                )?;
                if let Some(audit) = &audit {
                    append_audit_tx(c, audit)?;
                }
                Ok(outcome)
            })
            .await
    }

    async fn record_issue(&self, rec: IssueRecord) -> Result<IssueOutcome> {
        self.writer
            .write(move |c| {
                // A savepoint of its own: when a precondition fails after an
                // earlier one consumed something, nothing of it remains.
                c.prepare_cached("SAVEPOINT issue")?.execute([])?;
                let outcome = record_issue_tx(c, &rec);
                let end = match &outcome {
                    Ok(IssueOutcome::Recorded) => "RELEASE issue",
                    _ => "ROLLBACK TO issue",
                };
                c.prepare_cached(end)?.execute([])?;
                if end != "RELEASE issue" {
                    c.prepare_cached("RELEASE issue")?.execute([])?;
                }
                outcome
            })
            .await
    }

    async fn certificate(&self, serial: &str) -> Result<Option<CertRecord>> {
        let serial = serial.to_owned();
        self.readers
            .read(move |c| {
                Ok(c.prepare_cached(&format!(
                    "SELECT {CERT_COLUMNS} FROM certificates WHERE serial = ?1"
                ))?
                .query_row([serial], cert_from_row)
                .optional()?)
            })
            .await
    }

    async fn certificates_of(&self, kind: CertKind, subject: &str) -> Result<Vec<CertRecord>> {
        let subject = subject.to_owned();
        self.readers
            .read(move |c| {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {CERT_COLUMNS} FROM certificates WHERE kind = ?1 AND subject = ?2
                     ORDER BY id DESC"
                ))?;
                let rows = st.query_map(params![kind.as_str(), subject], cert_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn device(&self, device_id: &str, now: i64) -> Result<Option<DeviceFacts>> {
        let device_id = device_id.to_owned();
        self.readers
            .read(move |c| {
                let Some(created_at) = c
                    .query_row(
                        "SELECT created_at FROM devices WHERE device_id = ?1",
                        [&device_id],
                        |r| r.get::<_, i64>(0),
                    )
                    .optional()?
                else {
                    return Ok(None);
                };
                let newest_valid = c
                    .query_row(
                        &format!(
                            "SELECT {CERT_COLUMNS} FROM certificates
                             WHERE kind = 'device' AND subject = ?1 AND revoked_at IS NULL
                               AND not_before <= ?2 AND not_after >= ?2
                             ORDER BY id DESC LIMIT 1"
                        ),
                        params![device_id, now],
                        cert_from_row,
                    )
                    .optional()?;
                let (certificates, revoked): (i64, i64) = c.query_row(
                    "SELECT COUNT(*), COUNT(revoked_at) FROM certificates
                     WHERE kind = 'device' AND subject = ?1",
                    [&device_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let live_secret: bool = c.query_row(
                    "SELECT EXISTS(SELECT 1 FROM oob_secrets WHERE device_id = ?1 AND valid_until >= ?2)",
                    params![device_id, now],
                    |r| r.get(0),
                )?;
                let waiting: i64 = c.query_row(
                    "SELECT COUNT(*) FROM waiting_requests WHERE device_id = ?1",
                    [&device_id],
                    |r| r.get(0),
                )?;
                let approved: bool = c.query_row(
                    "SELECT EXISTS(SELECT 1 FROM approvals WHERE device_id = ?1 AND expires_at >= ?2)",
                    params![device_id, now],
                    |r| r.get(0),
                )?;
                let rejected: bool = c.query_row(
                    "SELECT EXISTS(SELECT 1 FROM rejections WHERE device_id = ?1)",
                    [&device_id],
                    |r| r.get(0),
                )?;
                Ok(Some(DeviceFacts {
                    device_id,
                    created_at,
                    newest_valid,
                    certificates: count(certificates),
                    revoked: count(revoked),
                    live_secret,
                    waiting: count(waiting),
                    approved,
                    rejected,
                }))
            })
            .await
    }

    async fn list_devices(
        &self,
        page: &Page,
        now: i64,
        filter: &DeviceFilter,
    ) -> Result<Vec<DeviceSummary>> {
        let after = page.after.clone().unwrap_or_default();
        let limit = page.sql_limit();
        let filter = filter.clone();
        self.readers
            .read(move |c| {
                // The CASE mirrors ProvisionStatus::derive.
                let mut st = c.prepare_cached(
                    "WITH d AS (
                        SELECT dv.device_id, dv.created_at,
                          (SELECT COUNT(*) FROM certificates WHERE kind = 'device' AND subject = dv.device_id) AS certs,
                          (SELECT COUNT(revoked_at) FROM certificates WHERE kind = 'device' AND subject = dv.device_id) AS revoked,
                          (SELECT id FROM certificates WHERE kind = 'device' AND subject = dv.device_id
                              AND revoked_at IS NULL AND not_before <= ?3 AND not_after >= ?3
                              ORDER BY id DESC LIMIT 1) AS valid_id,
                          (SELECT MAX(id) FROM certificates WHERE kind = 'device' AND subject = dv.device_id) AS latest_id,
                          EXISTS(SELECT 1 FROM oob_secrets WHERE device_id = dv.device_id AND valid_until >= ?3) AS live,
                          (SELECT COUNT(*) FROM waiting_requests WHERE device_id = dv.device_id) AS waiting,
                          EXISTS(SELECT 1 FROM approvals WHERE device_id = dv.device_id AND expires_at >= ?3) AS approved,
                          EXISTS(SELECT 1 FROM rejections WHERE device_id = dv.device_id) AS rejected
                        FROM devices dv
                        WHERE dv.device_id > ?1
                          AND (?4 IS NULL OR substr(dv.device_id, 1, length(?4)) = ?4)
                    ), s AS (
                        SELECT d.*, v.not_after AS valid_until, v.serial AS valid_serial,
                          l.issued_at AS last_issued,
                          CASE WHEN d.valid_id IS NOT NULL THEN 'Approved'
                               WHEN d.rejected THEN 'Rejected'
                               WHEN d.live OR d.waiting > 0 OR d.approved THEN 'Waiting'
                               WHEN d.certs > 0 AND d.revoked = d.certs THEN 'Rejected'
                               ELSE 'Waiting' END AS status,
                          (l.id IS NOT NULL AND l.revoked_at IS NULL
                            AND ?3 > l.not_before + (l.not_after - l.not_before) * 55 / 100 + 86400) AS missed
                        FROM d
                        LEFT JOIN certificates v ON v.id = d.valid_id
                        LEFT JOIN certificates l ON l.id = d.latest_id
                    )
                    SELECT device_id, created_at, certs, revoked, valid_until, valid_serial,
                           last_issued, live, waiting, approved, rejected, status
                    FROM s
                    WHERE (?5 IS NULL OR status = ?5)
                      AND (?6 IS NULL OR (valid_until IS NOT NULL AND valid_until <= ?3 + ?6))
                      AND (?7 = 0 OR missed)
                    ORDER BY device_id LIMIT ?2",
                )?;
                let status = filter.status.map(ProvisionStatus::as_str);
                let rows = st.query_map(
                    params![
                        after,
                        limit,
                        now,
                        filter.prefix,
                        status,
                        filter.expiring_within,
                        filter.missed_renewal
                    ],
                    |r| {
                        let status: String = r.get(11)?;
                        Ok(DeviceSummary {
                            device_id: r.get(0)?,
                            created_at: r.get(1)?,
                            certificates: count(r.get(2)?),
                            revoked: count(r.get(3)?),
                            valid_until: r.get(4)?,
                            serial: r.get(5)?,
                            last_issued_at: r.get(6)?,
                            live_secret: r.get(7)?,
                            waiting: count(r.get(8)?),
                            approved: r.get(9)?,
                            rejected: r.get(10)?,
                            status: ProvisionStatus::parse_any_case(&status).unwrap_or(ProvisionStatus::Waiting),
                        })
                    },
                )?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn list_waiting(&self, page: &Page) -> Result<Vec<WaitingRequest>> {
        let page = page.clone();
        self.readers
            .read(move |c| read_waiting_page(c, &page))
            .await
    }

    async fn append_audit(&self, record: AuditRecord) -> Result<i64> {
        self.writer
            .write(move |c| append_audit_tx(c, &record))
            .await
    }

    async fn audit_entries(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        let limit = crate::model::sql_limit(limit);
        self.readers
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT seq, at, actor, event, device_id, detail, prev_hash, hash
                     FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?;
                let rows = st.query_map(params![after, limit], audit_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn waiting_for(&self, device_id: &str) -> Result<Vec<WaitingRequest>> {
        let device_id = device_id.to_owned();
        self.readers
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT device_id, key_fingerprint, key_type, public_key_pem, claimed_ip,
                        claimed_mac, source, first_seen, last_seen, attempts
                     FROM waiting_requests WHERE device_id = ?1 ORDER BY key_fingerprint",
                )?;
                let rows = st.query_map([device_id], waiting_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn list_queue(&self, page: &Page, now: i64) -> Result<Vec<QueueEntry>> {
        let page = page.clone();
        // The page and its decisions from one snapshot.
        self.readers
            .read(move |c| {
                let tx = c.unchecked_transaction()?;
                let mut out = Vec::new();
                for request in read_waiting_page(&tx, &page)? {
                    let (d, k) = (&request.device_id, &request.key_fingerprint);
                    out.push(QueueEntry {
                        approval: read_approval(&tx, d, k, now)?,
                        rejection: read_rejection(&tx, d, k)?,
                        request,
                    });
                }
                tx.finish()?;
                Ok(out)
            })
            .await
    }

    async fn approve(
        &self,
        device_id: &str,
        key_fingerprint: &str,
        expires_at: i64,
        audit: AuditRecord,
    ) -> Result<bool> {
        let (device_id, fp) = (device_id.to_owned(), key_fingerprint.to_owned());
        self.writer
            .write(move |c| {
                let waiting: bool = c.query_row(
                    "SELECT EXISTS(SELECT 1 FROM waiting_requests WHERE device_id = ?1 AND key_fingerprint = ?2)",
                    params![device_id, fp],
                    |r| r.get(0),
                )?;
                if !waiting {
                    return Ok(false);
                }
                c.execute(
                    "DELETE FROM rejections WHERE device_id = ?1 AND key_fingerprint = ?2",
                    params![device_id, fp],
                )?;
                c.execute(
                    "INSERT INTO approvals (device_id, key_fingerprint, approved_by, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(device_id, key_fingerprint) DO UPDATE SET
                        approved_by = excluded.approved_by, created_at = excluded.created_at,
                        expires_at = excluded.expires_at",
                    params![device_id, fp, audit.actor.as_str(), audit.at, expires_at],
                )?;
                append_audit_tx(c, &audit)?;
                Ok(true)
            })
            .await
    }

    async fn reject(
        &self,
        device_id: &str,
        key_fingerprint: &str,
        reason: &str,
        audit: AuditRecord,
    ) -> Result<bool> {
        let (device_id, fp, reason) = (
            device_id.to_owned(),
            key_fingerprint.to_owned(),
            reason.to_owned(),
        );
        self.writer
            .write(move |c| {
                let waiting: bool = c.query_row(
                    "SELECT EXISTS(SELECT 1 FROM waiting_requests WHERE device_id = ?1 AND key_fingerprint = ?2)",
                    params![device_id, fp],
                    |r| r.get(0),
                )?;
                if !waiting {
                    return Ok(false);
                }
                c.execute(
                    "DELETE FROM approvals WHERE device_id = ?1 AND key_fingerprint = ?2",
                    params![device_id, fp],
                )?;
                c.execute(
                    "INSERT INTO rejections (device_id, key_fingerprint, rejected_by, reason, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(device_id, key_fingerprint) DO UPDATE SET
                        rejected_by = excluded.rejected_by, reason = excluded.reason,
                        created_at = excluded.created_at",
                    params![device_id, fp, audit.actor.as_str(), reason, audit.at],
                )?;
                append_audit_tx(c, &audit)?;
                Ok(true)
            })
            .await
    }

    async fn clear_requests(
        &self,
        device_id: &str,
        key_fingerprint: Option<&str>,
        audit: AuditRecord,
    ) -> Result<u64> {
        let (device_id, fp) = (device_id.to_owned(), key_fingerprint.map(str::to_owned));
        self.writer
            .write(move |c| {
                let mut n = 0;
                for table in ["waiting_requests", "approvals", "rejections"] {
                    n += c.execute(
                        &format!(
                            "DELETE FROM {table} WHERE device_id = ?1 AND (?2 IS NULL OR key_fingerprint = ?2)"
                        ),
                        params![device_id, fp],
                    )?;
                }
                if n > 0 {
                    append_audit_tx(c, &audit)?;
                }
                Ok(n as u64)
            })
            .await
    }

    async fn approval(
        &self,
        device_id: &str,
        key_fingerprint: &str,
        now: i64,
    ) -> Result<Option<Approval>> {
        let (device_id, fp) = (device_id.to_owned(), key_fingerprint.to_owned());
        self.readers
            .read(move |c| read_approval(c, &device_id, &fp, now))
            .await
    }

    async fn rejection(&self, device_id: &str, key_fingerprint: &str) -> Result<Option<Rejection>> {
        let (device_id, fp) = (device_id.to_owned(), key_fingerprint.to_owned());
        self.readers
            .read(move |c| read_rejection(c, &device_id, &fp))
            .await
    }

    async fn oob_view(
        &self,
        device_id: &str,
        key_fingerprint: &str,
        source: &str,
        now: i64,
        consumed_since: i64,
    ) -> Result<OobView> {
        let (device_id, fp, source) = (
            device_id.to_owned(),
            key_fingerprint.to_owned(),
            source.to_owned(),
        );
        // One trip to a reader thread and one read transaction (a
        // consistent snapshot) instead of five.
        self.readers
            .read(move |c| {
                let tx = c.unchecked_transaction()?;
                let view = OobView {
                    lockout: read_lockout(&tx, &device_id, &source)?,
                    rejection: read_rejection(&tx, &device_id, &fp)?,
                    approval: read_approval(&tx, &device_id, &fp, now)?,
                    consumed: read_consumed_secret(&tx, &device_id, &fp, consumed_since)?,
                    live_secret: read_live_secret(&tx, &device_id, now)?,
                    approved_serial: read_approved_serial(&tx, &device_id, &fp, consumed_since)?,
                    guess_budget: read_guess_budget(&tx, &device_id)?,
                };
                tx.finish()?;
                Ok(view)
            })
            .await
    }

    async fn expire_queue(&self, waiting_before: i64, now: i64) -> Result<(u64, u64)> {
        self.writer
            .write(move |c| {
                let waiting = c.execute(
                    "DELETE FROM waiting_requests WHERE last_seen < ?1",
                    [waiting_before],
                )? as u64;
                let approvals = c.execute("DELETE FROM approvals WHERE expires_at < ?1", [now])? as u64;
                if waiting + approvals > 0 {
                    append_audit_tx(
                        c,
                        &AuditRecord::new(
                            now,
                            Actor::system(),
                            "queue_expired",
                            None,
                            serde_json::json!({ "waitingRequests": waiting, "approvals": approvals }),
                        ),
                    )?;
                }
                Ok((waiting, approvals))
            })
            .await
    }

    async fn revoke(&self, r: Revocation) -> Result<Vec<String>> {
        self.writer
            .write(move |c| {
                let mut st = c.prepare_cached(
                    "UPDATE certificates SET revoked_at = ?1, revocation_reason = ?2
                     WHERE kind = ?3 AND subject = ?4 AND revoked_at IS NULL
                       AND (?5 IS NULL OR serial = ?5)
                     RETURNING serial",
                )?;
                let serials = st
                    .query_map(
                        params![r.at, r.reason, r.kind.as_str(), r.subject, r.serial],
                        |row| row.get::<_, String>(0),
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                if !serials.is_empty() {
                    let mut audit = r.audit.clone();
                    if let Some(d) = audit.detail.as_object_mut() {
                        d.insert("serials".into(), serde_json::json!(serials));
                    }
                    append_audit_tx(c, &audit)?;
                }
                Ok(serials)
            })
            .await
    }

    async fn remove_device(
        &self,
        device_id: &str,
        at: i64,
        audit: AuditRecord,
    ) -> Result<Option<Vec<String>>> {
        let device_id = device_id.to_owned();
        self.writer
            .write(move |c| {
                let known = c.execute("DELETE FROM devices WHERE device_id = ?1", [&device_id])? > 0;
                if !known {
                    return Ok(None);
                }
                let mut st = c.prepare_cached(
                    "UPDATE certificates SET revoked_at = ?1, revocation_reason = 5
                     WHERE kind = 'device' AND subject = ?2 AND revoked_at IS NULL RETURNING serial",
                )?;
                let serials = st
                    .query_map(params![at, device_id], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for table in [
                    "oob_secrets",
                    "consumed_secrets",
                    "waiting_requests",
                    "approvals",
                    "rejections",
                    "lockouts",
                    "guess_budgets",
                ] {
                    c.execute(&format!("DELETE FROM {table} WHERE device_id = ?1"), [&device_id])?;
                }
                let mut audit = audit.clone();
                if let Some(d) = audit.detail.as_object_mut() {
                    d.insert("serials".into(), serde_json::json!(serials));
                }
                append_audit_tx(c, &audit)?;
                Ok(Some(serials))
            })
            .await
    }

    async fn revoked_certificates(&self, now: i64) -> Result<Vec<RevokedCert>> {
        self.readers
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT serial, revoked_at, COALESCE(revocation_reason, 0), not_after FROM certificates
                     WHERE revoked_at IS NOT NULL AND not_after >= ?1 ORDER BY id",
                )?;
                let rows = st.query_map([now], |r| {
                    Ok(RevokedCert {
                        serial: r.get(0)?,
                        revoked_at: r.get(1)?,
                        reason: r.get(2)?,
                        not_after: r.get(3)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn certificates_by_kind(&self, kind: CertKind) -> Result<Vec<CertRecord>> {
        self.readers
            .read(move |c| {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {CERT_COLUMNS} FROM certificates WHERE kind = ?1 ORDER BY subject, id DESC"
                ))?;
                let rows = st.query_map([kind.as_str()], cert_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn next_crl_number(&self) -> Result<i64> {
        self.writer
            .write(|c| {
                // Reserve the number in the stored row, so it only grows even if
                // the CRL signed with it is never stored.
                let current: Option<i64> = c
                    .query_row("SELECT number FROM crl_state WHERE id = 1", [], |r| r.get(0))
                    .optional()?;
                let next = current.unwrap_or(0) + 1;
                c.execute(
                    "INSERT INTO crl_state (id, number, this_update, next_update, der) VALUES (1, ?1, 0, 0, x'')
                     ON CONFLICT(id) DO UPDATE SET number = excluded.number",
                    [next],
                )?;
                Ok(next)
            })
            .await
    }

    async fn store_crl(&self, crl: CrlRecord) -> Result<()> {
        self.writer
            .write(move |c| {
                c.execute(
                    "UPDATE crl_state SET this_update = ?2, next_update = ?3, der = ?4
                     WHERE id = 1 AND number = ?1",
                    params![crl.number, crl.this_update, crl.next_update, crl.der],
                )?;
                Ok(())
            })
            .await
    }

    async fn crl(&self) -> Result<Option<CrlRecord>> {
        self.readers
            .read(|c| {
                Ok(c.query_row(
                    "SELECT number, this_update, next_update, der FROM crl_state WHERE id = 1 AND length(der) > 0",
                    [],
                    |r| {
                        Ok(CrlRecord {
                            number: r.get(0)?,
                            this_update: r.get(1)?,
                            next_update: r.get(2)?,
                            der: r.get(3)?,
                        })
                    },
                )
                .optional()?)
            })
            .await
    }

    async fn audit_query(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let f = f.clone();
        let limit = crate::model::sql_limit(f.limit);
        self.readers
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT seq, at, actor, event, device_id, detail, prev_hash, hash
                     FROM audit_log
                     WHERE seq > ?1
                       AND (?3 IS NULL OR device_id = ?3)
                       AND (?4 IS NULL OR event = ?4)
                       AND (?5 IS NULL OR actor = ?5)
                       AND (?6 IS NULL OR at >= ?6)
                       AND (?7 IS NULL OR at <= ?7)
                     ORDER BY seq LIMIT ?2",
                )?;
                let rows = st.query_map(
                    params![
                        f.after,
                        limit,
                        f.device_id,
                        f.event,
                        f.actor,
                        f.since,
                        f.until
                    ],
                    audit_from_row,
                )?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        self.readers
            .read(|c| {
                Ok(c.query_row(
                    "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?)
            })
            .await
    }

    async fn add_checkpoint(&self, cp: Checkpoint) -> Result<()> {
        self.writer
            .write(move |c| {
                c.execute(
                    "INSERT INTO audit_checkpoints (seq, head_hash, at, signer, signature)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(seq) DO NOTHING",
                    params![cp.seq, cp.head_hash, cp.at, cp.signer, cp.signature],
                )?;
                Ok(())
            })
            .await
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        self.readers
            .read(|c| {
                let mut st = c.prepare_cached(
                    "SELECT seq, head_hash, at, signer, signature FROM audit_checkpoints ORDER BY seq",
                )?;
                let rows = st.query_map([], |r| {
                    Ok(Checkpoint {
                        seq: r.get(0)?,
                        head_hash: r.get(1)?,
                        at: r.get(2)?,
                        signer: r.get(3)?,
                        signature: r.get(4)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn put_secrets_bulk(
        &self,
        mut rows: tokio::sync::mpsc::Receiver<BulkMessage>,
        replace: bool,
        dry_run: bool,
        mut audit: AuditRecord,
    ) -> Result<BulkOutcome> {
        // The rows are spooled to a private file beside the database first,
        // at the pace of the upload, without holding the writer: a slow
        // uploader must not stall provisioning. Only then does the writer
        // apply them, in one transaction, reading the spool — so the rows
        // never sit in memory all at once either.
        let spool = Spool::create(&self.path)?;
        let spool = tokio::task::spawn_blocking(move || spool.fill(&mut rows))
            .await
            .map_err(|_| StoreError::Database("spooling the import panicked".into()))??;
        self.writer
            .write(move |c| {
                let mut outcome = BulkOutcome::default();
                let mut exists = c.prepare_cached("SELECT EXISTS(SELECT 1 FROM oob_secrets WHERE device_id = ?1)")?;
                let mut delete = c.prepare_cached("DELETE FROM oob_secrets WHERE device_id = ?1")?;
                let mut device = c.prepare_cached(
                    "INSERT INTO devices (device_id, created_at) VALUES (?1, ?2) ON CONFLICT(device_id) DO NOTHING",
                )?;
                let mut insert = c.prepare_cached(
                    "INSERT INTO oob_secrets (device_id, sealed, key_id, created_at, valid_until, created_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                let digest = spool.digest.clone();
                let reader = spool.reader()?;
                let mut spooled = reader.prepare(
                    "SELECT idx, device_id, sealed, key_id, created_at, valid_until, created_by
                     FROM rows ORDER BY seq",
                )?;
                let mut spooled = spooled.query([])?;
                loop {
                    let Some(r) = spooled.next()? else {
                        break;
                    };
                    let row = BulkSecret {
                        index: r.get::<_, i64>(0).map(|i| u64::try_from(i).unwrap_or(0))?,
                        secret: NewSecret {
                            device_id: r.get(1)?,
                            sealed: r.get(2)?,
                            key_id: r.get(3)?,
                            created_at: r.get(4)?,
                            valid_until: r.get(5)?,
                            created_by: Actor(r.get::<_, String>(6)?),
                        },
                    };
                    let s = &row.secret;
                    let had: bool = exists.query_row([&s.device_id], |r| r.get(0))?;
                    if had && !replace {
                        outcome.rejected.push((
                            row.index,
                            s.device_id.clone(),
                            "a secret is already registered for this device (--no-replace)".into(),
                        ));
                        continue;
                    }
                    outcome.accepted += 1;
                    if had {
                        outcome.replaced += 1;
                    }
                    if dry_run {
                        continue;
                    }
                    if had {
                        delete.execute([&s.device_id])?;
                    }
                    device.execute(params![s.device_id, s.created_at])?;
                    insert.execute(params![
                        s.device_id,
                        s.sealed,
                        s.key_id,
                        s.created_at,
                        s.valid_until,
                        s.created_by.as_str()
                    ])?;
                }
                if !dry_run && outcome.accepted > 0 {
                    if let Some(d) = audit.detail.as_object_mut() {
                        d.insert("accepted".into(), outcome.accepted.into());
                        d.insert("replaced".into(), outcome.replaced.into());
                        d.insert("rejected".into(), (outcome.rejected.len() as u64).into());
                        d.insert("rowsSha256".into(), digest.clone().into());
                    }
                    append_audit_tx(c, &audit)?;
                }
                Ok(outcome)
            })
            .await
    }

    async fn existing_secrets(&self, device_ids: Vec<String>, now: i64) -> Result<Vec<String>> {
        self.readers
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT EXISTS(SELECT 1 FROM oob_secrets WHERE device_id = ?1 AND valid_until >= ?2)",
                )?;
                let mut out = Vec::new();
                for id in device_ids {
                    if st.query_row(params![id, now], |r| r.get::<_, bool>(0))? {
                        out.push(id);
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn sealed_secrets(&self, page: &Page, now: i64) -> Result<Vec<SealedSecret>> {
        let after = page.after.clone().unwrap_or_default();
        let limit = page.sql_limit();
        self.readers
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT device_id, sealed, key_id, valid_until FROM oob_secrets
                     WHERE device_id > ?1 AND valid_until >= ?3 ORDER BY device_id LIMIT ?2",
                )?;
                let rows = st.query_map(params![after, limit, now], |r| {
                    Ok(SealedSecret {
                        device_id: r.get(0)?,
                        sealed: r.get(1)?,
                        key_id: r.get(2)?,
                        valid_until: r.get(3)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }
}

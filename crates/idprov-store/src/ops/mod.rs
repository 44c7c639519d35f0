//! The registry written once: every capability trait of
//! [`crate::registry`] implemented for [`Store`] over any [`Backend`], with
//! the SQL both dialects share and the rules they share (`rules.rs`).
//! A backend only says how a write is serialised and made durable, how a
//! read gets a connection, and how a bulk import streams in.
//!
//! One file per capability: `secrets.rs`, `queue.rs`, `devices.rs`,
//! `audit.rs`, `accounts.rs`.

mod accounts;
mod audit;
mod devices;
mod queue;
pub(crate) mod rules;
mod secrets;

use crate::audit::{AuditEntry, AuditRecord};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::sql::{Arg, Db, Row, args};

/// The registry on a backend. [`crate::SqliteRegistry`] and
/// [`crate::PostgresRegistry`] are this over their backends.
#[derive(Debug)]
pub struct Store<B> {
    pub(crate) backend: B,
}

impl<B> Store<B> {
    pub(crate) fn new(backend: B) -> Self {
        Store { backend }
    }
}

/// Runs `$body` (an expression using `$db: &mut dyn Db`) in a write
/// transaction of `$store`; the closure owns what it captures.
macro_rules! in_write {
    ($store:expr, |$db:ident| $body:expr) => {
        $store
            .backend
            .write(move |$db: &mut dyn $crate::sql::Db| Box::pin(async move { $body }))
    };
}

/// Runs `$body` on a read connection of `$store`.
macro_rules! in_read {
    ($store:expr, |$db:ident| $body:expr) => {
        $store
            .backend
            .read(move |$db: &mut dyn $crate::sql::Db| Box::pin(async move { $body }))
    };
}
pub(crate) use {in_read, in_write};

/// Appends an audit entry inside the current write transaction, linked to
/// the chain's head. Both backends serialise writes (one writer thread, one
/// advisory lock), so the head read here is the last one committed.
pub(crate) async fn append_audit(db: &mut dyn Db, r: &AuditRecord) -> Result<i64> {
    let head = match db
        .opt(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            args![],
        )
        .await?
    {
        Some(mut row) => Some((row.int(0)?, row.text(1)?)),
        None => None,
    };
    let link = r.link(head)?;
    db.exec(
        "INSERT INTO audit_log (seq, at, actor, event, device_id, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            link.seq,
            r.at,
            r.actor.as_str(),
            &r.event,
            &r.device_id,
            &link.detail,
            &link.prev_hash,
            &link.hash
        ],
    )
    .await?;
    Ok(link.seq)
}

/// Records the device as known (first heard of at `now`) unless it is.
pub(crate) async fn ensure_device(db: &mut dyn Db, device_id: &str, now: i64) -> Result<()> {
    db.exec(
        "INSERT INTO devices (device_id, created_at) VALUES ($1, $2)
         ON CONFLICT (device_id) DO NOTHING",
        args![device_id, now],
    )
    .await?;
    Ok(())
}

/// Decodes every row with `f`.
pub(crate) fn decode<T>(rows: Vec<Row>, f: impl Fn(Row) -> Result<T>) -> Result<Vec<T>> {
    rows.into_iter().map(f).collect()
}

pub(crate) const CERT_COLUMNS: &str = "serial, kind, subject, pem, key_fingerprint, key_type, \
     not_before, not_after, issued_at, issue_kind, authorized_by, revoked_at, revocation_reason";

/// A certificate from [`CERT_COLUMNS`] starting at column `at`.
pub(crate) fn cert_from_row(r: &mut Row, at: usize) -> Result<CertRecord> {
    let kind = r.text(at + 1)?;
    let issue_kind = r.text(at + 9)?;
    Ok(CertRecord {
        serial: r.text(at)?,
        kind: CertKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown certificate kind {kind:?}")))?,
        subject: r.text(at + 2)?,
        pem: r.text(at + 3)?,
        key_fingerprint: r.text(at + 4)?,
        key_type: r.text(at + 5)?,
        not_before: r.int(at + 6)?,
        not_after: r.int(at + 7)?,
        issued_at: r.int(at + 8)?,
        issue_kind: IssueKind::parse(&issue_kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown issue kind {issue_kind:?}")))?,
        authorized_by: r.text(at + 10)?,
        revoked_at: r.opt_int(at + 11)?,
        revocation_reason: r.opt_int(at + 12)?,
    })
}

pub(crate) const WAITING_COLUMNS: &str = "device_id, key_fingerprint, key_type, public_key_pem, \
     claimed_ip, claimed_mac, source, first_seen, last_seen, attempts";

pub(crate) fn waiting_from_row(r: &mut Row) -> Result<WaitingRequest> {
    Ok(WaitingRequest {
        device_id: r.text(0)?,
        key_fingerprint: r.text(1)?,
        key_type: r.text(2)?,
        public_key_pem: r.text(3)?,
        claimed_ip: r.text(4)?,
        claimed_mac: r.text(5)?,
        source: r.text(6)?,
        first_seen: r.int(7)?,
        last_seen: r.int(8)?,
        attempts: r.int(9)?,
    })
}

pub(crate) const AUDIT_COLUMNS: &str = "seq, at, actor, event, device_id, detail, prev_hash, hash";

pub(crate) fn audit_from_row(mut r: Row) -> Result<AuditEntry> {
    let detail = r.text(5)?;
    Ok(AuditEntry {
        seq: r.int(0)?,
        at: r.int(1)?,
        actor: r.text(2)?,
        event: r.text(3)?,
        device_id: r.opt_text(4)?,
        // A detail that no longer parses still fails the hash check.
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
        prev_hash: r.text(6)?,
        hash: r.text(7)?,
    })
}

pub(crate) fn approval_from_row(r: &mut Row, at: usize) -> Result<Approval> {
    Ok(Approval {
        device_id: r.text(at)?,
        key_fingerprint: r.text(at + 1)?,
        approved_by: r.text(at + 2)?,
        created_at: r.int(at + 3)?,
        expires_at: r.int(at + 4)?,
    })
}

pub(crate) fn rejection_from_row(r: &mut Row, at: usize) -> Result<Rejection> {
    Ok(Rejection {
        device_id: r.text(at)?,
        key_fingerprint: r.text(at + 1)?,
        rejected_by: r.text(at + 2)?,
        reason: r.text(at + 3)?,
        created_at: r.int(at + 4)?,
    })
}

pub(crate) fn guess_budget_from_row(r: &Row, at: usize) -> Result<GuessBudget> {
    Ok(GuessBudget {
        secret_id: r.int(at)?,
        window_start: r.int(at + 1)?,
        failures: r.u32(at + 2)?,
    })
}

/// Every row of a query, decoded with `f`.
pub(crate) async fn all<T>(
    db: &mut dyn Db,
    sql: &str,
    args: &[Arg<'_>],
    f: impl Fn(Row) -> Result<T> + Send,
) -> Result<Vec<T>> {
    decode(db.rows(sql, args).await?, f)
}

/// The row of a query, if any, decoded with `f`.
pub(crate) async fn first<T>(
    db: &mut dyn Db,
    sql: &str,
    args: &[Arg<'_>],
    f: impl FnOnce(Row) -> Result<T> + Send,
) -> Result<Option<T>> {
    db.opt(sql, args).await?.map(f).transpose()
}

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
pub(crate) mod devices;
mod queue;
pub(crate) mod rules;
pub(crate) mod secrets;

use crate::audit::{AuditEntry, AuditRecord};
use crate::error::Result;
use crate::model::*;
use crate::sql::{Arg, Db, Row, args};
use idprov_proto::UnixTime;

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
/// Runs `$body`, a point read (lookups by key), on a read connection of
/// `$store` (see [`crate::sql::Backend::read_point`]).
macro_rules! in_read_point {
    ($store:expr, |$db:ident| $body:expr) => {
        $store
            .backend
            .read_point(move |$db: &mut dyn $crate::sql::Db| Box::pin(async move { $body }))
    };
}
pub(crate) use {in_read, in_read_point, in_write};

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
            r.at(),
            &r.actor().to_string(),
            r.event().name(),
            r.device_id(),
            &link.detail,
            &link.prev_hash,
            &link.hash
        ],
    )
    .await?;
    Ok(link.seq)
}

/// Appends each of `records` inside the current write transaction.
pub(crate) async fn append_all(db: &mut dyn Db, records: Vec<AuditRecord>) -> Result<()> {
    for r in &records {
        append_audit(db, r).await?;
    }
    Ok(())
}

/// Records the device as known (first heard of at `now`) unless it is.
pub(crate) async fn ensure_device(db: &mut dyn Db, device_id: &str, now: UnixTime) -> Result<()> {
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

/// A record decoded from consecutive columns of a row.
pub(crate) trait FromRow: Sized {
    /// Decodes the record from the row's columns `at`, `at + 1`… in the
    /// order of its `from_row!` list.
    fn from_row(r: &mut Row, at: usize) -> Result<Self>;

    /// Decodes a whole row.
    fn decode(mut r: Row) -> Result<Self> {
        Self::from_row(&mut r, 0)
    }
}

/// `from_row!(Type { field: getter, … })`: the record's columns in order,
/// each read with that [`Row`] getter. The `SELECT` lists the columns in the
/// same order (the `*_COLUMNS` constants below).
macro_rules! from_row {
    ($($ty:ident { $($field:ident: $get:ident),* $(,)? })*) => {
        $(
            impl FromRow for $ty {
                #[allow(unused_assignments)]
                fn from_row(r: &mut Row, at: usize) -> Result<Self> {
                    let mut i = at;
                    Ok($ty {
                        $($field: {
                            let v = r.$get(i)?;
                            i += 1;
                            v
                        },)*
                    })
                }
            }
        )*
    };
}

// The column lists as macros, so statements are `concat!`ed at compile
// time: the hot paths (issuance, the waiting queue) build no SQL per call.

/// The columns [`CertRecord`] decodes, in order.
macro_rules! cert_columns {
    () => {
        "serial, kind, subject, pem, key_fingerprint, key_type, not_before, not_after, issued_at, issue_kind, authorized_by, protocol, revoked_at, revocation_reason"
    };
}

/// The columns [`WaitingRequest`] decodes, in order.
macro_rules! waiting_columns {
    () => {
        "device_id, key_fingerprint, key_type, public_key_pem, claimed_ip, claimed_mac, source, first_seen, last_seen, attempts, protocol"
    };
}

/// The columns [`AuditEntry`] decodes, in order.
macro_rules! audit_columns {
    () => {
        "seq, at, actor, event, device_id, detail, prev_hash, hash"
    };
}
pub(crate) use {audit_columns, cert_columns, waiting_columns};

pub(crate) const AUDIT_COLUMNS: &str = audit_columns!();

from_row! {
    NewCertificate {
        serial: serial, kind: cert_kind, subject: text, pem: text,
        key_fingerprint: key_fingerprint, key_type: text, not_before: time, not_after: time,
        issued_at: time, issue_kind: issue_kind, authorized_by: text, protocol: opt_protocol,
    }
    WaitingRequest {
        device_id: text, key_fingerprint: key_fingerprint, key_type: text, public_key_pem: text,
        claimed_ip: text, claimed_mac: text, source: text, first_seen: time, last_seen: time,
        attempts: int, protocol: protocol,
    }
    AuditEntry {
        seq: int, at: time, actor: text, event: text, device_id: opt_text, detail: json,
        prev_hash: text, hash: text,
    }
    Approval {
        device_id: text, key_fingerprint: key_fingerprint, approved_by: text, created_at: time,
        expires_at: time,
    }
    Rejection {
        device_id: text, key_fingerprint: key_fingerprint, rejected_by: text, reason: text,
        created_at: time,
    }
    GuessBudget { secret_id: int, window_start: time, failures: u32 }
    Lockout { failures: u32, locked_until: time }
    SecretSummary { device_id: text, created_at: time, valid_until: time, created_by: text }
    SealedSecret { device_id: text, sealed: blob, key_id: text, valid_until: time }
    WebPassword { name: text, hash: text, updated_at: time }
    Checkpoint { seq: int, head_hash: text, at: time, signer: text, signature: blob }
    CrlRecord { number: int, this_update: time, next_update: time, der: blob }
    RevokedCert { serial: serial, revoked_at: time, reason: int, not_after: time }
}

/// Column names joined with ", ", each with the prefix `$p` (a table
/// alias and its dot, or nothing), at compile time.
macro_rules! prefixed {
    ($p:literal; $first:literal $(, $rest:literal)* $(,)?) => {
        concat!($p, $first $(, ", ", $p, $rest)*)
    };
}

/// The columns of a stored secret, in [`StoredSecret`]'s order.
macro_rules! secret_columns {
    ($p:literal) => {
        $crate::ops::prefixed!($p; "id", "device_id", "sealed", "key_id", "created_at", "valid_until",
            "pake_salt", "pake_iterations", "pake_verifier")
    };
}
pub(crate) use secret_columns;

/// The columns of a consumed secret, in [`ConsumedSecret`]'s order.
macro_rules! consumed_columns {
    ($p:literal) => {
        $crate::ops::prefixed!($p; "sealed", "key_id", "serial", "consumed_at", "secret_id",
            "pake_salt", "pake_iterations", "pake_verifier")
    };
}
pub(crate) use consumed_columns;
pub(crate) use prefixed;

/// The v2 verifier at columns `at`… (salt, iterations, sealed record),
/// NULL for a registration that is not v2-only.
fn pake_verifier(r: &mut Row, at: usize) -> Result<Option<PakeVerifier>> {
    let Some(salt) = r.opt_blob(at)? else {
        return Ok(None);
    };
    Ok(Some(PakeVerifier {
        salt,
        iterations: r.u32(at + 1)?,
        sealed_record: r.blob(at + 2)?,
    }))
}

impl FromRow for StoredSecret {
    fn from_row(r: &mut Row, at: usize) -> Result<Self> {
        Ok(StoredSecret {
            id: r.int(at)?,
            device_id: r.text(at + 1)?,
            sealed: r.blob(at + 2)?,
            key_id: r.text(at + 3)?,
            created_at: r.time(at + 4)?,
            valid_until: r.time(at + 5)?,
            pake: pake_verifier(r, at + 6)?,
        })
    }
}

impl FromRow for ConsumedSecret {
    fn from_row(r: &mut Row, at: usize) -> Result<Self> {
        Ok(ConsumedSecret {
            sealed: r.blob(at)?,
            key_id: r.text(at + 1)?,
            serial: r.serial(at + 2)?,
            consumed_at: r.time(at + 3)?,
            secret_id: r.opt_int(at + 4)?,
            pake: pake_verifier(r, at + 5)?,
        })
    }
}

/// The record at columns `at`… of a `LEFT JOIN`, when it matched: when
/// column `found` (one of its NOT NULL columns) is not NULL.
pub(crate) fn joined<T: FromRow>(r: &mut Row, found: usize, at: usize) -> Result<Option<T>> {
    if r.is_null(found) {
        Ok(None)
    } else {
        T::from_row(r, at).map(Some)
    }
}

impl FromRow for CertRecord {
    fn from_row(r: &mut Row, at: usize) -> Result<Self> {
        Ok(CertRecord {
            cert: NewCertificate::from_row(r, at)?,
            revoked_at: r.opt_time(at + 12)?,
            revocation_reason: r.opt_int(at + 13)?,
        })
    }
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

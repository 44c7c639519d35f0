//! [`Secrets`]: OOB secrets, their consumption, and the wrong-secret
//! counters, on any backend.

use async_trait::async_trait;
use idprov_proto::{KeyFingerprint, UnixTime};

use super::append_all;
use super::{
    FromRow, Store, all, append_audit, consumed_columns, ensure_device, first, in_read,
    in_read_point, in_write, joined, secret_columns,
};
use crate::audit::{AuditOf, AuditRecord};
use crate::error::Result;
use crate::model::*;
use crate::registry::Secrets;
use crate::sql::{Backend, Db, Dialect, Row, args};

pub(crate) const LIVE_SECRET: &str = concat!(
    "SELECT ",
    secret_columns!(""),
    " FROM oob_secrets WHERE device_id = $1 AND valid_until >= $2"
);

pub(crate) const CONSUMED_SECRET: &str = concat!(
    "SELECT ",
    consumed_columns!(""),
    " FROM consumed_secrets WHERE device_id = $1 AND key_fingerprint = $2 AND consumed_at >= $3"
);

/// The device's registration consumed last, at or after `$2`.
const LAST_CONSUMED: &str = concat!(
    "SELECT ",
    consumed_columns!(""),
    " FROM consumed_secrets WHERE device_id = $1 AND consumed_at >= $2
     ORDER BY consumed_at DESC, serial DESC LIMIT 1"
);

async fn guess_budget(db: &mut dyn Db, device_id: &str) -> Result<Option<GuessBudget>> {
    first(
        db,
        "SELECT secret_id, window_start, failures FROM guess_budgets WHERE device_id = $1",
        args![device_id],
        GuessBudget::decode,
    )
    .await
}

/// The seven reads of the OOB path (PROTOCOL.md §6 4.1–4.5) in one
/// statement: one round trip and one snapshot. Each join matches at most one
/// row (its key), so there is exactly one result row, NULL where nothing
/// matched.
pub(crate) const OOB_VIEW: &str = concat!(
    "SELECT l.failures, l.locked_until,
        j.device_id, j.key_fingerprint, j.rejected_by, j.reason, j.created_at,
        a.device_id, a.key_fingerprint, a.approved_by, a.created_at, a.expires_at,
        ",
    consumed_columns!("c."),
    ",
        ",
    secret_columns!("s."),
    ",
        (SELECT serial FROM certificates
         WHERE kind = 'device' AND subject = $1 AND key_fingerprint = $2
           AND issue_kind = 'approval' AND issued_at >= $5 AND revoked_at IS NULL
         ORDER BY id DESC LIMIT 1),
        g.secret_id, g.window_start, g.failures
     FROM (SELECT 1 AS one) AS one
     LEFT JOIN lockouts l ON l.device_id = $1 AND l.source = $3
     LEFT JOIN rejections j ON j.device_id = $1 AND j.key_fingerprint = $2
     LEFT JOIN approvals a ON a.device_id = $1 AND a.key_fingerprint = $2 AND a.expires_at >= $4
     LEFT JOIN consumed_secrets c ON c.device_id = $1 AND c.key_fingerprint = $2
        AND c.consumed_at >= $5
     LEFT JOIN oob_secrets s ON s.device_id = $1 AND s.valid_until >= $4
     LEFT JOIN guess_budgets g ON g.device_id = $1"
);

fn oob_view_from_row(mut r: Row) -> Result<OobView> {
    // A NOT NULL column of each joined table tells whether it matched.
    let r = &mut r;
    Ok(OobView {
        lockout: joined(r, 0, 0)?,
        rejection: joined(r, 2, 2)?,
        approval: joined(r, 7, 7)?,
        consumed: joined(r, 13, 12)?,
        live_secret: joined(r, 20, 20)?,
        approved_serial: r.opt_serial(29)?,
        guess_budget: joined(r, 30, 30)?,
    })
}

#[async_trait]
impl<B: Backend> Secrets for Store<B> {
    async fn put_secret(
        &self,
        s: NewSecret,
        audit: AuditOf<PutSecretOutcome>,
    ) -> Result<PutSecretOutcome> {
        in_write!(self, |db| {
            ensure_device(db, &s.device_id, s.created_at).await?;
            let replaced = db
                .exec(
                    "DELETE FROM oob_secrets WHERE device_id = $1",
                    args![&s.device_id],
                )
                .await?
                > 0;
            db.exec(
                "INSERT INTO oob_secrets (device_id, sealed, key_id, created_at, valid_until, created_by,
                    pake_salt, pake_iterations, pake_verifier)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                args![
                    &s.device_id,
                    &s.sealed,
                    &s.key_id,
                    s.created_at,
                    s.valid_until,
                    &s.created_by.to_string(),
                    s.pake.as_ref().map(|p| &p.salt),
                    s.pake.as_ref().map(|p| p.iterations),
                    s.pake.as_ref().map(|p| &p.sealed_record)
                ],
            )
            .await?;
            let outcome = if replaced {
                PutSecretOutcome::Replaced
            } else {
                PutSecretOutcome::Added
            };
            append_all(db, audit.records(&outcome)).await?;
            Ok(outcome)
        })
        .await
    }

    async fn remove_secret(&self, device_id: &str, audit: AuditRecord) -> Result<bool> {
        let device_id = device_id.to_owned();
        in_write!(self, |db| {
            let removed = db
                .exec(
                    "DELETE FROM oob_secrets WHERE device_id = $1",
                    args![&device_id],
                )
                .await?
                > 0;
            if removed {
                append_audit(db, &audit).await?;
            }
            Ok(removed)
        })
        .await
    }

    async fn live_secret(&self, device_id: &str, now: UnixTime) -> Result<Option<StoredSecret>> {
        let device_id = device_id.to_owned();
        in_read_point!(self, |db| {
            first(
                db,
                LIVE_SECRET,
                args![&device_id, now],
                StoredSecret::decode,
            )
            .await
        })
        .await
    }

    async fn consumed_secret(
        &self,
        device_id: &str,
        key_fingerprint: &KeyFingerprint,
        since: UnixTime,
    ) -> Result<Option<ConsumedSecret>> {
        let (device_id, fp) = (device_id.to_owned(), key_fingerprint.to_owned());
        in_read_point!(self, |db| {
            first(
                db,
                CONSUMED_SECRET,
                args![&device_id, &fp, since],
                ConsumedSecret::decode,
            )
            .await
        })
        .await
    }

    async fn last_consumed(
        &self,
        device_id: &str,
        since: UnixTime,
    ) -> Result<Option<ConsumedSecret>> {
        let device_id = device_id.to_owned();
        in_read_point!(self, |db| {
            first(
                db,
                LAST_CONSUMED,
                args![&device_id, since],
                ConsumedSecret::decode,
            )
            .await
        })
        .await
    }

    async fn list_secrets(&self, page: &Page) -> Result<Vec<SecretSummary>> {
        let after = page.after.clone().unwrap_or_default();
        let limit = page.sql_limit();
        in_read!(self, |db| {
            all(
                db,
                "SELECT device_id, created_at, valid_until, created_by FROM oob_secrets
                     WHERE device_id > $1 ORDER BY device_id LIMIT $2",
                args![&after, limit],
                SecretSummary::decode,
            )
            .await
        })
        .await
    }

    async fn purge_secrets(
        &self,
        current_key_id: &str,
        now: UnixTime,
        consumed_before: UnixTime,
        audit: AuditOf<(u64, u64)>,
    ) -> Result<(u64, u64)> {
        let key_id = current_key_id.to_owned();
        in_write!(self, |db| {
            // Only registered secrets count: consumed ones served re-delivery.
            let unreadable = db
                .exec("DELETE FROM oob_secrets WHERE key_id <> $1", args![&key_id])
                .await?;
            db.exec(
                "DELETE FROM consumed_secrets WHERE key_id <> $1",
                args![&key_id],
            )
            .await?;
            let expired = db
                .exec("DELETE FROM oob_secrets WHERE valid_until < $1", args![now])
                .await?;
            db.exec(
                "DELETE FROM consumed_secrets WHERE consumed_at < $1",
                args![consumed_before],
            )
            .await?;
            append_all(db, audit.records(&(unreadable, expired))).await?;
            Ok((unreadable, expired))
        })
        .await
    }

    async fn secret_key_ids(&self) -> Result<Vec<(String, u64)>> {
        in_read!(self, |db| {
            all(
                db,
                "SELECT key_id, COUNT(*) FROM oob_secrets GROUP BY key_id ORDER BY key_id",
                args![],
                |mut r| Ok((r.text(0)?, r.count(1)?)),
            )
            .await
        })
        .await
    }

    async fn put_secrets_bulk(
        &self,
        rows: tokio::sync::mpsc::Receiver<BulkMessage>,
        replace: bool,
        dry_run: bool,
        audit: AuditOf<BulkOutcome>,
    ) -> Result<BulkOutcome> {
        self.backend
            .put_secrets_bulk(rows, replace, dry_run, audit)
            .await
    }

    async fn existing_secrets(
        &self,
        device_ids: Vec<String>,
        now: UnixTime,
    ) -> Result<Vec<String>> {
        // In the order asked, duplicates kept: the IDs go in as one JSON
        // array, which each dialect unpacks in its own way.
        let ids = serde_json::to_string(&device_ids)
            .map_err(|e| crate::StoreError::Database(e.to_string()))?;
        in_read!(self, |db| {
            let sql = match db.dialect() {
                Dialect::Sqlite => {
                    "SELECT t.value FROM json_each($1) AS t
                     WHERE EXISTS(SELECT 1 FROM oob_secrets s WHERE s.device_id = t.value AND s.valid_until >= $2)
                     ORDER BY t.key"
                }
                Dialect::Postgres => {
                    "SELECT t.id FROM json_array_elements_text(CAST(CAST($1 AS TEXT) AS json)) WITH ORDINALITY AS t(id, ord)
                     WHERE EXISTS(SELECT 1 FROM oob_secrets s WHERE s.device_id = t.id AND s.valid_until >= $2)
                     ORDER BY t.ord"
                }
            };
            all(db, sql, args![&ids, now], |mut r| r.text(0)).await
        })
        .await
    }

    async fn sealed_secrets(&self, page: &Page, now: UnixTime) -> Result<Vec<SealedSecret>> {
        let after = page.after.clone().unwrap_or_default();
        let limit = page.sql_limit();
        in_read!(self, |db| {
            all(
                db,
                "SELECT device_id, sealed, key_id, valid_until FROM oob_secrets
                     WHERE device_id > $1 AND valid_until >= $3 AND length(sealed) > 0
                     ORDER BY device_id LIMIT $2",
                args![&after, limit, now],
                SealedSecret::decode,
            )
            .await
        })
        .await
    }

    async fn lockout(&self, device_id: &str, source: &str) -> Result<Option<Lockout>> {
        let (device_id, source) = (device_id.to_owned(), source.to_owned());
        in_read_point!(self, |db| {
            first(
                db,
                "SELECT failures, locked_until FROM lockouts WHERE device_id = $1 AND source = $2",
                args![&device_id, &source],
                Lockout::decode,
            )
            .await
        })
        .await
    }

    async fn record_failure(
        &self,
        device_id: &str,
        source: &str,
        secret_id: i64,
        now: UnixTime,
        policy: &LockoutPolicy,
    ) -> Result<Failure> {
        let (device_id, source, policy) = (device_id.to_owned(), source.to_owned(), *policy);
        in_write!(self, |db| {
            let previous = match db
                .opt(
                    "SELECT failures, last_failure FROM lockouts WHERE device_id = $1 AND source = $2",
                    args![&device_id, &source],
                )
                .await?
            {
                Some(r) => Some((r.u32(0)?, r.time(1)?)),
                None => None,
            };
            let (lockout, lock_started) = policy.after_failure(previous, now);
            db.exec(
                "INSERT INTO lockouts (device_id, source, failures, last_failure, locked_until)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (device_id, source) DO UPDATE SET
                    failures = excluded.failures, last_failure = excluded.last_failure,
                    locked_until = excluded.locked_until",
                args![&device_id, &source, lockout.failures, now, lockout.locked_until],
            )
            .await?;
            let previous_budget = guess_budget(db, &device_id).await?;
            let (budget, budget_spent) =
                policy.after_device_failure(secret_id, previous_budget, now);
            db.exec(
                "INSERT INTO guess_budgets (device_id, secret_id, window_start, failures)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (device_id) DO UPDATE SET secret_id = excluded.secret_id,
                    window_start = excluded.window_start, failures = excluded.failures",
                args![&device_id, budget.secret_id, budget.window_start, budget.failures],
            )
            .await?;
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
        in_read_point!(self, |db| guess_budget(db, &device_id).await).await
    }

    async fn clear_lockouts(&self, device_id: &str, audit: AuditRecord) -> Result<u64> {
        let device_id = device_id.to_owned();
        in_write!(self, |db| {
            let n = db
                .exec(
                    "DELETE FROM lockouts WHERE device_id = $1",
                    args![&device_id],
                )
                .await?;
            let budget = db
                .exec(
                    "DELETE FROM guess_budgets WHERE device_id = $1",
                    args![&device_id],
                )
                .await?;
            if n > 0 || budget > 0 {
                append_audit(db, &audit).await?;
            }
            Ok(n)
        })
        .await
    }

    async fn oob_view(
        &self,
        device_id: &str,
        key_fingerprint: &KeyFingerprint,
        source: &str,
        now: UnixTime,
        consumed_since: UnixTime,
    ) -> Result<OobView> {
        let (device_id, fp, source) = (
            device_id.to_owned(),
            key_fingerprint.to_owned(),
            source.to_owned(),
        );
        in_read_point!(self, |db| {
            let row = db
                .one(
                    OOB_VIEW,
                    args![&device_id, &fp, &source, now, consumed_since],
                )
                .await?;
            oob_view_from_row(row)
        })
        .await
    }
}

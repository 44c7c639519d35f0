//! [`Queue`]: the waiting queue, approvals and rejections, on any backend.

use async_trait::async_trait;
use idprov_proto::{KeyFingerprint, UnixTime};

use super::append_all;
use super::rules::waiting_page;
use super::{
    FromRow, Store, all, append_audit, ensure_device, first, in_read, in_write, joined,
    waiting_columns,
};
use crate::audit::{AuditOf, AuditRecord};
use crate::error::Result;
use crate::model::*;
use crate::registry::Queue;
use crate::sql::{Backend, Db, args};

/// Whether a request of (device, key) is waiting.
async fn is_waiting(
    db: &mut dyn Db,
    device_id: &str,
    key_fingerprint: &KeyFingerprint,
) -> Result<bool> {
    db.one(
        "SELECT EXISTS(SELECT 1 FROM waiting_requests WHERE device_id = $1 AND key_fingerprint = $2)",
        args![device_id, key_fingerprint],
    )
    .await?
    .bool(0)
}

#[async_trait]
impl<B: Backend> Queue for Store<B> {
    async fn record_waiting(
        &self,
        w: WaitingRequest,
        caps: WaitingCaps,
        audit: Option<AuditRecord>,
    ) -> Result<WaitingOutcome> {
        in_write!(self, |db| {
            let updated = db
                .exec(
                    "UPDATE waiting_requests SET claimed_ip = $3, claimed_mac = $4, source = $5,
                        last_seen = $6, attempts = attempts + 1, protocol = $7
                     WHERE device_id = $1 AND key_fingerprint = $2",
                    args![
                        &w.device_id,
                        &w.key_fingerprint,
                        &w.claimed_ip,
                        &w.claimed_mac,
                        &w.source,
                        w.last_seen,
                        w.protocol.as_str()
                    ],
                )
                .await?;
            if updated > 0 {
                return Ok(WaitingOutcome::Updated);
            }
            // The counts the schema's triggers keep (source '' is the total):
            // counting the queue itself would cost as much as it holds.
            let counts = db
                .one(
                    "SELECT COALESCE((SELECT n FROM waiting_counts WHERE source = $1), 0),
                            COALESCE((SELECT n FROM waiting_counts WHERE source = ''), 0)",
                    args![&w.source],
                )
                .await?;
            let (from_source, total) = (counts.count(0)?, counts.count(1)?);
            if from_source >= caps.per_source {
                return Ok(WaitingOutcome::SourceCapReached);
            }
            let mut outcome = WaitingOutcome::Queued;
            if total >= caps.total {
                // Full: the source holding the most gives up its least
                // recently seen entry, if it holds more than this one.
                let top = db
                    .opt(
                        "SELECT source, n FROM waiting_counts WHERE source <> ''
                         ORDER BY n DESC, source LIMIT 1",
                        args![],
                    )
                    .await?;
                match top {
                    Some(mut t) if t.count(1)? > from_source + 1 => {
                        let source = t.text(0)?;
                        db.exec(
                            "DELETE FROM waiting_requests WHERE (device_id, key_fingerprint) IN (
                                SELECT device_id, key_fingerprint FROM waiting_requests
                                WHERE source = $1
                                ORDER BY last_seen, device_id, key_fingerprint LIMIT 1)",
                            args![&source],
                        )
                        .await?;
                        outcome = WaitingOutcome::Evicted;
                    }
                    _ => return Ok(WaitingOutcome::TotalCapReached),
                }
            }
            ensure_device(db, &w.device_id, w.first_seen).await?;
            db.exec(
                concat!(
                    "INSERT INTO waiting_requests (",
                    waiting_columns!(),
                    ")
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10)"
                ),
                args![
                    &w.device_id,
                    &w.key_fingerprint,
                    &w.key_type,
                    &w.public_key_pem,
                    &w.claimed_ip,
                    &w.claimed_mac,
                    &w.source,
                    w.first_seen,
                    w.last_seen,
                    w.protocol.as_str()
                ],
            )
            .await?;
            if let Some(audit) = &audit {
                append_audit(db, audit).await?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn list_waiting(&self, page: &Page) -> Result<Vec<WaitingRequest>> {
        let (device, fp) = page.waiting_cursor();
        let limit = page.sql_limit();
        in_read!(self, |db| {
            all(
                db,
                concat!(
                    "SELECT ",
                    waiting_columns!(),
                    " FROM waiting_requests w
                         WHERE ",
                    waiting_page!(),
                    "
                         ORDER BY device_id, key_fingerprint LIMIT $3"
                ),
                args![&device, &fp, limit],
                WaitingRequest::decode,
            )
            .await
        })
        .await
    }

    async fn waiting_for(&self, device_id: &str) -> Result<Vec<WaitingRequest>> {
        let device_id = device_id.to_owned();
        in_read!(self, |db| {
            all(
                db,
                concat!(
                    "SELECT ",
                    waiting_columns!(),
                    " FROM waiting_requests
                         WHERE device_id = $1 ORDER BY key_fingerprint"
                ),
                args![&device_id],
                WaitingRequest::decode,
            )
            .await
        })
        .await
    }

    async fn list_queue(&self, page: &Page, now: UnixTime) -> Result<Vec<QueueEntry>> {
        let (device, fp) = page.waiting_cursor();
        let limit = page.sql_limit();
        in_read!(self, |db| {
            // The page of list_waiting with each entry's decisions, in one
            // statement (one snapshot).
            all(db, concat!("SELECT w.device_id, w.key_fingerprint, w.key_type, w.public_key_pem,
                                w.claimed_ip, w.claimed_mac, w.source, w.first_seen, w.last_seen,
                                w.attempts, w.protocol,
                                a.device_id, a.key_fingerprint, a.approved_by, a.created_at, a.expires_at,
                                r.device_id, r.key_fingerprint, r.rejected_by, r.reason, r.created_at
                         FROM waiting_requests w
                         LEFT JOIN approvals a ON a.device_id = w.device_id
                            AND a.key_fingerprint = w.key_fingerprint AND a.expires_at >= $4
                         LEFT JOIN rejections r ON r.device_id = w.device_id
                            AND r.key_fingerprint = w.key_fingerprint
                         WHERE ", waiting_page!(), "
                         ORDER BY w.device_id, w.key_fingerprint LIMIT $3"),
                    args![&device, &fp, limit, now], |mut r| {
                Ok(QueueEntry {
                    request: WaitingRequest::from_row(&mut r, 0)?,
                    approval: joined(&mut r, 11, 11)?,
                    rejection: joined(&mut r, 16, 16)?,
                })
            }).await
        })
        .await
    }

    async fn approve(
        &self,
        device_id: &str,
        key_fingerprint: &KeyFingerprint,
        expires_at: UnixTime,
        audit: AuditRecord,
    ) -> Result<bool> {
        let (device_id, fp) = (device_id.to_owned(), key_fingerprint.to_owned());
        in_write!(self, |db| {
            if !is_waiting(db, &device_id, &fp).await? {
                return Ok(false);
            }
            db.exec(
                "DELETE FROM rejections WHERE device_id = $1 AND key_fingerprint = $2",
                args![&device_id, &fp],
            )
            .await?;
            db.exec(
                "INSERT INTO approvals (device_id, key_fingerprint, approved_by, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (device_id, key_fingerprint) DO UPDATE SET
                    approved_by = excluded.approved_by, created_at = excluded.created_at,
                    expires_at = excluded.expires_at",
                args![&device_id, &fp, &audit.actor().to_string(), audit.at(), expires_at],
            )
            .await?;
            append_audit(db, &audit).await?;
            Ok(true)
        })
        .await
    }

    async fn reject(
        &self,
        device_id: &str,
        key_fingerprint: &KeyFingerprint,
        reason: &str,
        audit: AuditRecord,
    ) -> Result<bool> {
        let (device_id, fp, reason) = (
            device_id.to_owned(),
            key_fingerprint.to_owned(),
            reason.to_owned(),
        );
        in_write!(self, |db| {
            if !is_waiting(db, &device_id, &fp).await? {
                return Ok(false);
            }
            db.exec(
                "DELETE FROM approvals WHERE device_id = $1 AND key_fingerprint = $2",
                args![&device_id, &fp],
            )
            .await?;
            db.exec(
                "INSERT INTO rejections (device_id, key_fingerprint, rejected_by, reason, created_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (device_id, key_fingerprint) DO UPDATE SET
                    rejected_by = excluded.rejected_by, reason = excluded.reason,
                    created_at = excluded.created_at",
                args![&device_id, &fp, &audit.actor().to_string(), &reason, audit.at()],
            )
            .await?;
            append_audit(db, &audit).await?;
            Ok(true)
        })
        .await
    }

    async fn clear_requests(
        &self,
        device_id: &str,
        key_fingerprint: Option<&KeyFingerprint>,
        audit: AuditRecord,
    ) -> Result<u64> {
        let device_id = device_id.to_owned();
        let fp = key_fingerprint.cloned();
        in_write!(self, |db| {
            let mut n = 0;
            for table in ["waiting_requests", "approvals", "rejections"] {
                n += db
                    .exec(
                        &format!(
                            "DELETE FROM {table} WHERE device_id = $1
                               AND (CAST($2 AS TEXT) IS NULL OR key_fingerprint = CAST($2 AS TEXT))"
                        ),
                        args![&device_id, &fp],
                    )
                    .await?;
            }
            if n > 0 {
                append_audit(db, &audit).await?;
            }
            Ok(n)
        })
        .await
    }

    async fn approval(
        &self,
        device_id: &str,
        key_fingerprint: &KeyFingerprint,
        now: UnixTime,
    ) -> Result<Option<Approval>> {
        let (device_id, fp) = (device_id.to_owned(), key_fingerprint.to_owned());
        in_read!(self, |db| {
            first(db, "SELECT device_id, key_fingerprint, approved_by, created_at, expires_at FROM approvals
                 WHERE device_id = $1 AND key_fingerprint = $2 AND expires_at >= $3",
                args![&device_id, &fp, now], Approval::decode).await
        })
        .await
    }

    async fn rejection(
        &self,
        device_id: &str,
        key_fingerprint: &KeyFingerprint,
    ) -> Result<Option<Rejection>> {
        let (device_id, fp) = (device_id.to_owned(), key_fingerprint.to_owned());
        in_read!(self, |db| {
            first(
                db,
                "SELECT device_id, key_fingerprint, rejected_by, reason, created_at FROM rejections
                 WHERE device_id = $1 AND key_fingerprint = $2",
                args![&device_id, &fp],
                Rejection::decode,
            )
            .await
        })
        .await
    }

    async fn expire_queue(
        &self,
        waiting_before: UnixTime,
        now: UnixTime,
        audit: AuditOf<(u64, u64)>,
    ) -> Result<(u64, u64)> {
        in_write!(self, |db| {
            let waiting = db
                .exec(
                    "DELETE FROM waiting_requests WHERE last_seen < $1",
                    args![waiting_before],
                )
                .await?;
            let approvals = db
                .exec("DELETE FROM approvals WHERE expires_at < $1", args![now])
                .await?;
            append_all(db, audit.records(&(waiting, approvals))).await?;
            Ok((waiting, approvals))
        })
        .await
    }
}

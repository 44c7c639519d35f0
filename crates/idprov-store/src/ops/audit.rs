//! [`AuditLog`]: the append-only, hash-chained log and its signed
//! checkpoints, on any backend.

use async_trait::async_trait;

use super::{FromRow, Store, all, append_audit, audit_columns, first, in_read, in_write};
use crate::audit::{AuditEntry, AuditRecord};
use crate::error::Result;
use crate::model::*;
use crate::registry::AuditLog;
use crate::sql::{Backend, args};

#[async_trait]
impl<B: Backend> AuditLog for Store<B> {
    async fn append_audit(&self, record: AuditRecord) -> Result<i64> {
        in_write!(self, |db| append_audit(db, &record).await).await
    }

    async fn audit_entries(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        let limit = sql_limit(limit);
        in_read!(self, |db| {
            all(
                db,
                concat!(
                    "SELECT ",
                    audit_columns!(),
                    " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
                ),
                args![after, limit],
                AuditEntry::decode,
            )
            .await
        })
        .await
    }

    async fn audit_query(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let limit = sql_limit(f.limit);
        let f = f.clone();
        in_read!(self, |db| {
            all(
                db,
                concat!(
                    "SELECT ",
                    audit_columns!(),
                    " FROM audit_log
                         WHERE seq > $1
                           AND (CAST($3 AS TEXT) IS NULL OR device_id = CAST($3 AS TEXT))
                           AND (CAST($4 AS TEXT) IS NULL OR event = CAST($4 AS TEXT))
                           AND (CAST($5 AS TEXT) IS NULL OR actor = CAST($5 AS TEXT))
                           AND (CAST($6 AS BIGINT) IS NULL OR at >= CAST($6 AS BIGINT))
                           AND (CAST($7 AS BIGINT) IS NULL OR at <= CAST($7 AS BIGINT))
                         ORDER BY seq LIMIT $2"
                ),
                args![
                    f.after,
                    limit,
                    &f.device_id,
                    &f.event,
                    &f.actor,
                    &f.since,
                    &f.until
                ],
                AuditEntry::decode,
            )
            .await
        })
        .await
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        in_read!(self, |db| {
            first(
                db,
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                args![],
                |mut r| Ok((r.int(0)?, r.text(1)?)),
            )
            .await
        })
        .await
    }

    async fn add_checkpoint(&self, cp: Checkpoint) -> Result<()> {
        in_write!(self, |db| {
            db.exec(
                "INSERT INTO audit_checkpoints (seq, head_hash, at, signer, signature)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
                args![cp.seq, &cp.head_hash, cp.at, &cp.signer, &cp.signature],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        in_read!(self, |db| {
            all(
                db,
                "SELECT seq, head_hash, at, signer, signature FROM audit_checkpoints ORDER BY seq",
                args![],
                Checkpoint::decode,
            )
            .await
        })
        .await
    }
}

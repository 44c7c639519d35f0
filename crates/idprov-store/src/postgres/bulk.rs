//! Bulk registration of secrets: streamed in with `COPY`, applied with a few
//! set-based statements, all in one transaction.
//!
//! The rows go, as they arrive, through a binary `COPY` into a temporary
//! table of the transaction (nothing accumulates in this process). Only when
//! the stream ends with [`BulkMessage::End`] does the transaction take the
//! write lock and apply the rows; a stream that closes early aborts the
//! `COPY`, and the rollback leaves nothing behind. Holding the write lock
//! only for the final statements, rather than while a slow upload trickles
//! in, keeps other writers (provisioning on every replica) moving.
//!
//! The outcome is the SQLite backend's, which handles rows one by one: a row
//! "had" a secret when its device had one before the import, or — unless
//! this is a dry run, which writes nothing — when an earlier row of the same
//! device was stored. Rows that had one are refused without `replace`; with
//! it the last row of a device wins.

use deadpool_postgres::GenericClient;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::{WriteTx, append_audit_tx, col, db_error, execute, query, query_one};
use crate::audit::AuditOf;
use crate::error::{Result, StoreError};
use crate::model::{BulkMessage, BulkOutcome};

/// Why a row is refused without `replace` (the SQLite backend's words).
const ALREADY_REGISTERED: &str = "a secret is already registered for this device (--no-replace)";

pub(super) async fn put_secrets(
    client: &mut deadpool_postgres::Client,
    mut rows: tokio::sync::mpsc::Receiver<BulkMessage>,
    replace: bool,
    dry_run: bool,
    audit: AuditOf<BulkOutcome>,
) -> Result<BulkOutcome> {
    let tx = client.transaction().await.map_err(db_error)?;
    // Dropped at the end of the transaction, whichever way it ends; private
    // to this session, so concurrent imports do not see each other's rows.
    tx.batch_execute(
        r#"CREATE TEMPORARY TABLE idprov_bulk (
            ord         BIGINT NOT NULL,
            idx         BIGINT NOT NULL,
            device_id   TEXT COLLATE "C" NOT NULL,
            sealed      BYTEA NOT NULL,
            key_id      TEXT COLLATE "C" NOT NULL,
            created_at  BIGINT NOT NULL,
            valid_until BIGINT NOT NULL,
            created_by  TEXT COLLATE "C" NOT NULL,
            pake_salt       BYTEA,
            pake_iterations BIGINT,
            pake_verifier   BYTEA
        ) ON COMMIT DROP"#,
    )
    .await
    .map_err(db_error)?;

    let sink = tx
        .copy_in("COPY idprov_bulk FROM STDIN (FORMAT binary)")
        .await
        .map_err(db_error)?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT8,
            Type::INT8,
            Type::TEXT,
            Type::BYTEA,
            Type::TEXT,
            Type::INT8,
            Type::INT8,
            Type::TEXT,
            Type::BYTEA,
            Type::INT8,
            Type::BYTEA,
        ],
    );
    // Returning early drops the writer, which aborts the COPY (CopyFail);
    // dropping the transaction then rolls it back.
    let mut writer = std::pin::pin!(writer);
    let mut ord: i64 = 0;
    let digest = loop {
        let row = match rows.recv().await {
            Some(BulkMessage::Row(row)) => row,
            Some(BulkMessage::End { rows_sha256 }) => break rows_sha256,
            None => {
                return Err(StoreError::Conflict(
                    "the import was interrupted; nothing was stored".into(),
                ));
            }
        };
        let index = i64::try_from(row.index)
            .map_err(|_| StoreError::Conflict(format!("row index {} out of range", row.index)))?;
        let s = &row.secret;
        let pake = s.pake.as_ref();
        writer
            .as_mut()
            .write(&[
                &ord,
                &index,
                &s.device_id,
                &s.sealed,
                &s.key_id,
                &s.created_at.secs(),
                &s.valid_until.secs(),
                &s.created_by.to_string(),
                &pake.map(|p| &p.salt[..]),
                &pake.map(|p| i64::from(p.iterations)),
                &pake.map(|p| &p.sealed_record[..]),
            ])
            .await
            .map_err(db_error)?;
        ord += 1;
    };
    writer.as_mut().finish().await.map_err(db_error)?;

    // Classified and applied under the write lock, so "had a secret" is the
    // state the import replaces (a dry run takes its turn too, and so
    // answers what a real run would do at that moment).
    let w = WriteTx::lock(tx).await?;
    let tx = w.conn();
    // Planner statistics for the temporary table, which autovacuum never
    // analyses: without them a large import may get a poor join.
    tx.batch_execute("ANALYZE idprov_bulk")
        .await
        .map_err(db_error)?;
    // CREATE TABLE AS takes no parameters: the two flags are literals.
    tx.batch_execute(&format!(
        r#"CREATE TEMPORARY TABLE idprov_bulk_rows ON COMMIT DROP AS
           SELECT c.*, NOT (c.had AND NOT {replace}) AS accepted
           FROM (
             SELECT b.*,
               EXISTS(SELECT 1 FROM oob_secrets s WHERE s.device_id = b.device_id)
               OR ({stores} AND row_number() OVER (PARTITION BY b.device_id ORDER BY b.ord) > 1)
               AS had
             FROM idprov_bulk b
           ) c"#,
        stores = !dry_run,
    ))
    .await
    .map_err(db_error)?;

    let counts = query_one(
        tx,
        "SELECT COUNT(*) FILTER (WHERE accepted), COUNT(*) FILTER (WHERE accepted AND had)
         FROM idprov_bulk_rows",
        &[],
    )
    .await?;
    let accepted: i64 = col(&counts, 0)?;
    let replaced: i64 = col(&counts, 1)?;
    let refused = query(
        tx,
        "SELECT idx, device_id FROM idprov_bulk_rows WHERE NOT accepted ORDER BY ord",
        &[],
    )
    .await?;
    let mut outcome = BulkOutcome {
        accepted: u64::try_from(accepted).unwrap_or(0),
        replaced: u64::try_from(replaced).unwrap_or(0),
        rejected: Vec::with_capacity(refused.len()),
        rows_sha256: digest,
    };
    for r in &refused {
        let index: i64 = col(r, 0)?;
        outcome.rejected.push((
            u64::try_from(index).unwrap_or(0),
            col(r, 1)?,
            ALREADY_REGISTERED.into(),
        ));
    }
    if dry_run || outcome.accepted == 0 {
        w.rollback().await?;
        return Ok(outcome);
    }

    execute(
        tx,
        "DELETE FROM oob_secrets WHERE device_id IN
           (SELECT device_id FROM idprov_bulk_rows WHERE accepted)",
        &[],
    )
    .await?;
    // A new device is dated by its first stored row, a secret is its last.
    execute(
        tx,
        "INSERT INTO devices (device_id, created_at)
         SELECT DISTINCT ON (device_id) device_id, created_at FROM idprov_bulk_rows
         WHERE accepted ORDER BY device_id, ord
         ON CONFLICT (device_id) DO NOTHING",
        &[],
    )
    .await?;
    execute(
        tx,
        "INSERT INTO oob_secrets (device_id, sealed, key_id, created_at, valid_until, created_by,
            pake_salt, pake_iterations, pake_verifier)
         SELECT DISTINCT ON (device_id) device_id, sealed, key_id, created_at, valid_until,
            created_by, pake_salt, pake_iterations, pake_verifier
         FROM idprov_bulk_rows WHERE accepted ORDER BY device_id, ord DESC",
        &[],
    )
    .await?;
    for record in audit.records(&outcome) {
        append_audit_tx(&w, &record).await?;
    }
    w.commit().await?;
    Ok(outcome)
}

//! [`Devices`]: issuance, device facts and listings, revocation and the
//! CRL, on any backend.

use std::sync::LazyLock;

use async_trait::async_trait;
use idprov_proto::{ProvisionStatus, SerialNumber, UnixTime};

use super::append_all;
use super::rules::{STATUS_SQL, device_facts_sql, missed_sql};
use super::{
    FromRow, Store, all, append_audit, cert_columns, decode, ensure_device, first, in_read,
    in_read_point, in_write, joined,
};
use crate::audit::AuditOf;
use crate::error::Result;
use crate::model::*;
use crate::registry::Devices;
use crate::sql::{Backend, Db, args};

// The device statements, rendered once from the shared rules (the status
// table's `CASE`, the missed-renewal condition, the per-device facts).

/// One device's facts and its newest valid certificate: `$1` the device,
/// `$2` now. One statement, so one snapshot.
pub(crate) static DEVICE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH d AS ({} WHERE dv.device_id = $1)
                         SELECT d.created_at, d.certs, d.revoked, d.live, d.waiting, d.approved,
                                d.rejected, v.id, {}
                         FROM d LEFT JOIN certificates v ON v.id = d.valid_id",
        device_facts_sql("CAST($2 AS BIGINT)"),
        cert_columns!()
            .split(", ")
            .map(|c| format!("v.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
});

/// One certificate by its serial (every request over mutual TLS reads it:
/// is the caller's certificate revoked?).
pub(crate) const CERTIFICATE_BY_SERIAL: &str = concat!(
    "SELECT ",
    cert_columns!(),
    " FROM certificates WHERE serial = $1"
);

/// The device listing: `$1` after, `$2` limit, `$3` now, `$4` prefix, `$5`
/// status, `$6` expiring within, `$7` missed renewals only.
static LIST_DEVICES_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
                        "WITH d AS ({facts}
                            WHERE dv.device_id > $1
                              AND (CAST($4 AS TEXT) IS NULL
                                   OR substr(dv.device_id, 1, length(CAST($4 AS TEXT))) = CAST($4 AS TEXT))
                         ), s AS (
                            SELECT d.*, v.not_after AS valid_until, v.serial AS valid_serial,
                              l.issued_at AS last_issued, l.protocol AS last_protocol,
                              {status_sql} AS status,
                              {missed} AS missed
                            FROM d
                            LEFT JOIN certificates v ON v.id = d.valid_id
                            LEFT JOIN certificates l ON l.id = d.latest_id
                         )
                         SELECT device_id, created_at, certs, revoked, valid_until, valid_serial,
                                last_issued, live, waiting, approved, rejected, status, last_protocol
                         FROM s
                         WHERE (CAST($5 AS TEXT) IS NULL OR status = CAST($5 AS TEXT))
                           AND (CAST($6 AS BIGINT) IS NULL
                                OR (valid_until IS NOT NULL AND valid_until <= CAST($3 AS BIGINT) + CAST($6 AS BIGINT)))
                           AND (NOT CAST($7 AS BOOLEAN) OR missed)
                         ORDER BY device_id LIMIT $2",
                        facts = device_facts_sql("CAST($3 AS BIGINT)"),
                        status_sql = *STATUS_SQL,
                        missed = missed_sql("CAST($3 AS BIGINT)"),
                    )
});

/// The listing's classification, counted: `$1` now, `$2` "soon".
static OVERVIEW_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
                        "WITH d AS ({facts}), s AS (
                            SELECT {status_sql} AS status,
                              (d.certs > 0 AND d.revoked = d.certs) AS all_revoked,
                              (v.not_after IS NOT NULL AND v.not_after <= CAST($2 AS BIGINT)) AS expiring,
                              {missed} AS missed
                            FROM d
                            LEFT JOIN certificates v ON v.id = d.valid_id
                            LEFT JOIN certificates l ON l.id = d.latest_id
                         )
                         SELECT COUNT(*),
                           COUNT(*) FILTER (WHERE status = 'Approved'),
                           COUNT(*) FILTER (WHERE status = 'Waiting'),
                           COUNT(*) FILTER (WHERE status = 'Rejected'),
                           COUNT(*) FILTER (WHERE all_revoked),
                           COUNT(*) FILTER (WHERE expiring),
                           COUNT(*) FILTER (WHERE missed)
                         FROM s",
                        facts = device_facts_sql("CAST($1 AS BIGINT)"),
                        status_sql = *STATUS_SQL,
                        missed = missed_sql("CAST($1 AS BIGINT)"),
                    )
});

/// The issue transaction's steps. The secret is consumed by a conditional
/// `DELETE … RETURNING` of the exact row the request was verified against,
/// still unexpired, or nothing: two requests (or two replicas) racing for
/// one secret cannot both succeed, because writes take turns (the writer
/// thread, the advisory lock) and the second deletes nothing. Whoever
/// deletes nothing gets [`IssueOutcome::SecretGone`] and everything is
/// rolled back, so its certificate is never recorded (nor handed out). A
/// used approval is consumed the same way.
async fn record_issue(db: &mut dyn Db, rec: &IssueRecord) -> Result<IssueOutcome> {
    let cert = &rec.cert;
    if let Some(consume) = &rec.consume_secret {
        // (SQLite makes every change of a DELETE … RETURNING at its first
        // step, so reading one row is enough on both backends.)
        let row = db
            .opt(
                "DELETE FROM oob_secrets WHERE id = $1 AND device_id = $2 AND valid_until >= $3
                 RETURNING sealed, key_id, pake_salt, pake_iterations, pake_verifier",
                args![consume.secret_id, &cert.subject, cert.issued_at],
            )
            .await?;
        let Some(mut row) = row else {
            return Ok(IssueOutcome::SecretGone);
        };
        let (sealed, key_id) = (row.blob(0)?, row.text(1)?);
        let (pake_salt, pake_iterations, pake_verifier) =
            (row.opt_blob(2)?, row.opt_int(3)?, row.opt_blob(4)?);
        db.exec(
            "INSERT INTO consumed_secrets (device_id, key_fingerprint, sealed, key_id, serial,
                consumed_at, secret_id, pake_salt, pake_iterations, pake_verifier)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (device_id, key_fingerprint) DO UPDATE SET
                sealed = excluded.sealed, key_id = excluded.key_id,
                serial = excluded.serial, consumed_at = excluded.consumed_at,
                secret_id = excluded.secret_id, pake_salt = excluded.pake_salt,
                pake_iterations = excluded.pake_iterations, pake_verifier = excluded.pake_verifier",
            args![
                &cert.subject,
                &consume.key_fingerprint,
                &sealed,
                &key_id,
                &cert.serial,
                cert.issued_at,
                consume.secret_id,
                pake_salt.as_ref(),
                pake_iterations,
                pake_verifier.as_ref()
            ],
        )
        .await?;
    }
    if let Some(fp) = &rec.consume_approval {
        let used = db
            .exec(
                "DELETE FROM approvals WHERE device_id = $1 AND key_fingerprint = $2 AND expires_at >= $3",
                args![&cert.subject, fp, cert.issued_at],
            )
            .await?;
        if used == 0 {
            // Rolled back as a whole by the caller: a secret consumed
            // above stays.
            return Ok(IssueOutcome::SecretGone);
        }
    }
    if cert.kind == CertKind::Device {
        ensure_device(db, &cert.subject, cert.issued_at).await?;
        if let Some(due) = rec.supersede_older_at {
            // Before the new certificate is inserted: every certificate
            // of the device that is still in use is an older one.
            db.exec(
                "INSERT INTO supersessions (cert_id, device_id, by_serial, due_at)
                 SELECT id, subject, $2, $3 FROM certificates
                 WHERE kind = 'device' AND subject = $1 AND revoked_at IS NULL AND not_after >= $4
                 ON CONFLICT (cert_id) DO NOTHING",
                args![&cert.subject, &cert.serial, due, cert.issued_at],
            )
            .await?;
        }
    }
    db.exec(
        concat!(
            "INSERT INTO certificates (",
            cert_columns!(),
            ")
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, NULL)"
        ),
        args![
            &cert.serial,
            cert.kind.as_str(),
            &cert.subject,
            &cert.pem,
            &cert.key_fingerprint,
            &cert.key_type,
            cert.not_before,
            cert.not_after,
            cert.issued_at,
            cert.issue_kind.as_str(),
            &cert.authorized_by,
            cert.protocol.map(Protocol::as_str)
        ],
    )
    .await?;
    if let Some(source) = &rec.reset_lockout_for {
        db.exec(
            "DELETE FROM lockouts WHERE device_id = $1 AND source = $2",
            args![&cert.subject, source],
        )
        .await?;
    }
    if let Some(fp) = &rec.clear_waiting_key {
        db.exec(
            "DELETE FROM waiting_requests WHERE device_id = $1 AND key_fingerprint = $2",
            args![&cert.subject, fp],
        )
        .await?;
    }
    append_audit(db, &rec.audit).await?;
    Ok(IssueOutcome::Recorded)
}

/// Revokes what `filter` (a SQL condition on `certificates` with `$3`…)
/// selects that is not revoked yet; the serials newly revoked, in issuance
/// order.
async fn revoke_where(
    db: &mut dyn Db,
    at: UnixTime,
    reason: i64,
    filter: &str,
    filter_args: &[crate::sql::Arg<'_>],
) -> Result<Vec<SerialNumber>> {
    let mut all = vec![crate::sql::Arg::from(at), crate::sql::Arg::Int(reason)];
    all.extend_from_slice(filter_args);
    // RETURNING has no defined order: sorted by issuance here.
    let rows = db
        .rows(
            &format!(
                "UPDATE certificates SET revoked_at = $1, revocation_reason = $2
                 WHERE revoked_at IS NULL AND {filter}
                 RETURNING id, serial"
            ),
            &all,
        )
        .await?;
    let mut revoked = decode(rows, |mut r| Ok((r.int(0)?, r.serial(1)?)))?;
    revoked.sort_unstable();
    Ok(revoked.into_iter().map(|(_, serial)| serial).collect())
}

#[async_trait]
impl<B: Backend> Devices for Store<B> {
    async fn record_issue(&self, rec: IssueRecord) -> Result<IssueOutcome> {
        in_write!(self, |db| {
            let outcome = record_issue(db, &rec).await?;
            if outcome != IssueOutcome::Recorded {
                // A precondition failed after an earlier step consumed
                // something: nothing of it remains.
                db.abort();
            }
            Ok(outcome)
        })
        .await
    }

    async fn certificate(&self, serial: &SerialNumber) -> Result<Option<CertRecord>> {
        let serial = serial.to_owned();
        in_read_point!(self, |db| {
            first(
                db,
                CERTIFICATE_BY_SERIAL,
                args![&serial],
                CertRecord::decode,
            )
            .await
        })
        .await
    }

    async fn certificates_of(&self, kind: CertKind, subject: &str) -> Result<Vec<CertRecord>> {
        let subject = subject.to_owned();
        in_read!(self, |db| {
            all(
                db,
                concat!(
                    "SELECT ",
                    cert_columns!(),
                    " FROM certificates WHERE kind = $1 AND subject = $2
                         ORDER BY id DESC"
                ),
                args![kind.as_str(), &subject],
                CertRecord::decode,
            )
            .await
        })
        .await
    }

    async fn device(&self, device_id: &str, now: UnixTime) -> Result<Option<DeviceFacts>> {
        let device_id = device_id.to_owned();
        in_read_point!(self, |db| {
            // One statement, so one snapshot for all the facts.
            let Some(mut r) = db.opt(&DEVICE_SQL, args![&device_id, now]).await? else {
                return Ok(None);
            };
            let newest_valid = joined(&mut r, 7, 8)?;
            Ok(Some(DeviceFacts {
                device_id,
                created_at: r.time(0)?,
                newest_valid,
                certificates: r.count(1)?,
                revoked: r.count(2)?,
                live_secret: r.bool(3)?,
                waiting: r.count(4)?,
                approved: r.bool(5)?,
                rejected: r.bool(6)?,
            }))
        })
        .await
    }

    async fn list_devices(
        &self,
        page: &Page,
        now: UnixTime,
        filter: &DeviceFilter,
    ) -> Result<Vec<DeviceSummary>> {
        let after = page.after.clone().unwrap_or_default();
        let limit = page.sql_limit();
        let status = filter.status.map(ProvisionStatus::as_str);
        let filter = filter.clone();
        in_read!(self, |db| {
            all(
                db,
                &LIST_DEVICES_SQL,
                args![
                    &after,
                    limit,
                    now,
                    &filter.prefix,
                    status,
                    &filter.expiring_within,
                    filter.missed_renewal
                ],
                |mut r| {
                    let status = r.text(11)?;
                    Ok(DeviceSummary {
                        device_id: r.text(0)?,
                        created_at: r.time(1)?,
                        certificates: r.count(2)?,
                        revoked: r.count(3)?,
                        valid_until: r.opt_time(4)?,
                        serial: r.opt_serial(5)?,
                        last_issued_at: r.opt_time(6)?,
                        live_secret: r.bool(7)?,
                        waiting: r.count(8)?,
                        approved: r.bool(9)?,
                        rejected: r.bool(10)?,
                        status: ProvisionStatus::parse_any_case(&status)
                            .unwrap_or(ProvisionStatus::Waiting),
                        protocol: r.opt_protocol(12)?,
                    })
                },
            )
            .await
        })
        .await
    }

    async fn device_overview(&self, now: UnixTime, soon: UnixTime) -> Result<DeviceOverview> {
        in_read!(self, |db| {
            // The classification of list_devices, counted.
            let r = db.one(&OVERVIEW_SQL, args![now, soon]).await?;
            Ok(DeviceOverview {
                total: r.count(0)?,
                approved: r.count(1)?,
                waiting: r.count(2)?,
                rejected: r.count(3)?,
                revoked: r.count(4)?,
                expiring: r.count(5)?,
                missed_renewal: r.count(6)?,
            })
        })
        .await
    }

    async fn gauges(&self, now: UnixTime, soon: UnixTime) -> Result<Gauges> {
        in_read!(self, |db| {
            let r = db
                .one(
                    "SELECT COALESCE((SELECT n FROM waiting_counts WHERE source = ''), 0),
                            (SELECT COUNT(*) FROM devices),
                            (SELECT COUNT(*) FROM certificates WHERE kind = 'device' AND revoked_at IS NULL
                               AND not_after >= $1 AND not_after < $2)",
                    args![now, soon],
                )
                .await?;
            Ok(Gauges {
                waiting: r.count(0)?,
                devices: r.count(1)?,
                expiring: r.count(2)?,
            })
        })
        .await
    }

    async fn revoke(&self, r: Revocation) -> Result<Vec<SerialNumber>> {
        in_write!(self, |db| {
            let serials = revoke_where(
                db,
                r.at,
                r.reason,
                "kind = $3 AND subject = $4 AND (CAST($5 AS TEXT) IS NULL OR serial = CAST($5 AS TEXT))",
                args![r.kind.as_str(), &r.subject, &r.serial],
            )
            .await?;
            // A revocation that revoked nothing changed nothing: no entry.
            if !serials.is_empty() {
                append_all(db, r.audit.records(&serials)).await?;
            }
            Ok(serials)
        })
        .await
    }

    async fn remove_device(
        &self,
        device_id: &str,
        at: UnixTime,
        audit: AuditOf<[SerialNumber]>,
    ) -> Result<Option<Vec<SerialNumber>>> {
        let device_id = device_id.to_owned();
        in_write!(self, |db| {
            let known = db
                .exec(
                    "DELETE FROM devices WHERE device_id = $1",
                    args![&device_id],
                )
                .await?
                > 0;
            if !known {
                return Ok(None);
            }
            // Reason 5: cessationOfOperation (RFC 5280).
            let serials = revoke_where(
                db,
                at,
                5,
                "kind = 'device' AND subject = $3",
                args![&device_id],
            )
            .await?;
            for table in [
                "oob_secrets",
                "consumed_secrets",
                "waiting_requests",
                "approvals",
                "rejections",
                "lockouts",
                "guess_budgets",
                "supersessions",
            ] {
                db.exec(
                    &format!("DELETE FROM {table} WHERE device_id = $1"),
                    args![&device_id],
                )
                .await?;
            }
            append_all(db, audit.records(&serials)).await?;
            Ok(Some(serials))
        })
        .await
    }

    async fn revoke_superseded(
        &self,
        now: UnixTime,
        audit: AuditOf<[Superseded]>,
    ) -> Result<Vec<Superseded>> {
        in_write!(self, |db| {
            let rows = db
                .rows(
                    "SELECT s.device_id, c.serial, s.by_serial FROM supersessions s
                     JOIN certificates c ON c.id = s.cert_id
                     WHERE s.due_at <= $1 AND c.revoked_at IS NULL AND c.not_after >= $1
                     ORDER BY s.cert_id",
                    args![now],
                )
                .await?;
            let superseded = decode(rows, |mut r| {
                Ok(Superseded {
                    device_id: r.text(0)?,
                    serial: r.serial(1)?,
                    by: r.serial(2)?,
                })
            })?;
            if !superseded.is_empty() {
                // Reason 4: superseded (RFC 5280).
                db.exec(
                    "UPDATE certificates SET revoked_at = $1, revocation_reason = 4
                     WHERE revoked_at IS NULL AND not_after >= $1
                       AND id IN (SELECT cert_id FROM supersessions WHERE due_at <= $1)",
                    args![now],
                )
                .await?;
                append_all(db, audit.records(&superseded)).await?;
            }
            db.exec("DELETE FROM supersessions WHERE due_at <= $1", args![now])
                .await?;
            Ok(superseded)
        })
        .await
    }

    async fn revoked_certificates(&self, now: UnixTime) -> Result<Vec<RevokedCert>> {
        in_read!(self, |db| {
            all(db, "SELECT serial, revoked_at, COALESCE(revocation_reason, 0), not_after FROM certificates
                     WHERE revoked_at IS NOT NULL AND not_after >= $1 ORDER BY id",
                    args![now], RevokedCert::decode).await
        })
        .await
    }

    async fn next_crl_number(&self) -> Result<i64> {
        in_write!(self, |db| {
            // Reserve the number in the stored row, so it only grows even if
            // the CRL signed with it is never stored.
            let empty: &[u8] = &[];
            db.one(
                "INSERT INTO crl_state (id, number, this_update, next_update, der)
                 VALUES (1, 1, 0, 0, $1)
                 ON CONFLICT (id) DO UPDATE SET number = crl_state.number + 1
                 RETURNING number",
                args![empty],
            )
            .await?
            .int(0)
        })
        .await
    }

    async fn store_crl(&self, crl: CrlRecord) -> Result<()> {
        in_write!(self, |db| {
            db.exec(
                "UPDATE crl_state SET this_update = $2, next_update = $3, der = $4
                 WHERE id = 1 AND number = $1",
                args![crl.number, crl.this_update, crl.next_update, &crl.der],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn crl(&self) -> Result<Option<CrlRecord>> {
        in_read!(self, |db| {
            first(
                db,
                "SELECT number, this_update, next_update, der FROM crl_state
                 WHERE id = 1 AND length(der) > 0",
                args![],
                CrlRecord::decode,
            )
            .await
        })
        .await
    }
}

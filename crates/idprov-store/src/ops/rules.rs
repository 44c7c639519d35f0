//! The rules both backends share, each written once: PROTOCOL.md §4's
//! status table, the missed-renewal rule, and keyset paging of the queue.
//!
//! Where a rule must also run inside SQL (a listing filtered by status has
//! to filter before its `LIMIT`), the SQL is rendered from the same
//! definition as the Rust function, and a test evaluates both on every
//! input.

use std::sync::LazyLock;

use idprov_proto::{ProvisionStatus, UnixTime};

/// What the status table looks at, per device.
#[derive(Debug, Clone, Copy)]
enum Condition {
    /// A certificate valid now and not revoked.
    ValidCertificate,
    /// An administrator rejected one of its keys.
    Rejected,
    /// A live secret, a waiting request or a live approval.
    Pending,
    /// Certificates were issued, and every one is revoked.
    AllRevoked,
    /// Nothing else held.
    Otherwise,
}

/// PROTOCOL.md §4's table, in order: the first row whose condition holds
/// gives the status.
const STATUS_TABLE: [(Condition, ProvisionStatus); 5] = [
    (Condition::ValidCertificate, ProvisionStatus::Approved),
    (Condition::Rejected, ProvisionStatus::Rejected),
    (Condition::Pending, ProvisionStatus::Waiting),
    (Condition::AllRevoked, ProvisionStatus::Rejected),
    (Condition::Otherwise, ProvisionStatus::Waiting),
];

/// The status of a device with these facts (PROTOCOL.md §4).
pub fn device_status(
    valid_cert: bool,
    rejected: bool,
    pending: bool,
    certificates: u64,
    revoked: u64,
) -> ProvisionStatus {
    let holds = |c: Condition| match c {
        Condition::ValidCertificate => valid_cert,
        Condition::Rejected => rejected,
        Condition::Pending => pending,
        Condition::AllRevoked => certificates > 0 && revoked == certificates,
        Condition::Otherwise => true,
    };
    STATUS_TABLE
        .iter()
        .find(|(c, _)| holds(*c))
        .map_or(ProvisionStatus::Waiting, |(_, s)| *s)
}

/// The same table as a SQL `CASE` over the columns of [`DEVICE_FACTS`]
/// (`valid_id`, `rejected`, `live`, `waiting`, `approved`, `certs`,
/// `revoked`).
pub(crate) static STATUS_SQL: LazyLock<String> = LazyLock::new(|| {
    let mut sql = String::from("CASE");
    for (condition, status) in STATUS_TABLE {
        let when = match condition {
            Condition::ValidCertificate => "d.valid_id IS NOT NULL",
            Condition::Rejected => "d.rejected",
            Condition::Pending => "(d.live OR d.waiting > 0 OR d.approved)",
            Condition::AllRevoked => "(d.certs > 0 AND d.revoked = d.certs)",
            Condition::Otherwise => {
                sql.push_str(&format!(" ELSE '{}' END", status.as_str()));
                break;
            }
        };
        sql.push_str(&format!(" WHEN {when} THEN '{}'", status.as_str()));
    }
    sql
});

/// A device is due to renew at half its certificate's validity (PROTOCOL.md
/// §5, with the agent's jitter up to 55%); a day after that without a newer
/// certificate, it missed its renewal.
const RENEWAL_DUE_PERCENT: i64 = 55;
const RENEWAL_GRACE_SECS: i64 = 86_400;

/// Whether the device whose latest certificate is this one (not revoked)
/// missed its renewal at `now`.
pub fn missed_renewal(
    not_before: UnixTime,
    not_after: UnixTime,
    revoked: bool,
    now: UnixTime,
) -> bool {
    let validity = not_after.secs_since(not_before);
    !revoked
        && now
            > not_before
                .plus_secs(validity.saturating_mul(RENEWAL_DUE_PERCENT) / 100)
                .plus_secs(RENEWAL_GRACE_SECS)
}

/// [`missed_renewal`] in SQL, for the latest certificate `l` (joined, NULL
/// when the device has none) at `$now`.
pub(crate) fn missed_sql(now: &str) -> String {
    format!(
        "(l.id IS NOT NULL AND l.revoked_at IS NULL
          AND {now} > l.not_before + (l.not_after - l.not_before) * {RENEWAL_DUE_PERCENT} / 100 + {RENEWAL_GRACE_SECS})"
    )
}

/// Per device (`dv`, the devices table), the facts the status table needs,
/// at `$now` (the placeholder given). Used by the listing, the overview and
/// the single device, so all three classify alike.
pub(crate) fn device_facts_sql(now: &str) -> String {
    format!(
        "SELECT dv.device_id, dv.created_at,
           (SELECT COUNT(*) FROM certificates WHERE kind = 'device' AND subject = dv.device_id) AS certs,
           (SELECT COUNT(revoked_at) FROM certificates WHERE kind = 'device' AND subject = dv.device_id) AS revoked,
           (SELECT id FROM certificates WHERE kind = 'device' AND subject = dv.device_id
               AND revoked_at IS NULL AND not_before <= {now} AND not_after >= {now}
               ORDER BY id DESC LIMIT 1) AS valid_id,
           (SELECT MAX(id) FROM certificates WHERE kind = 'device' AND subject = dv.device_id) AS latest_id,
           EXISTS(SELECT 1 FROM oob_secrets WHERE device_id = dv.device_id AND valid_until >= {now}) AS live,
           (SELECT COUNT(*) FROM waiting_requests WHERE device_id = dv.device_id) AS waiting,
           EXISTS(SELECT 1 FROM approvals WHERE device_id = dv.device_id AND expires_at >= {now}) AS approved,
           EXISTS(SELECT 1 FROM rejections WHERE device_id = dv.device_id) AS rejected
         FROM devices dv"
    )
}

/// Keyset paging of the waiting queue (`w`) after the cursor of
/// [`crate::Page::waiting_cursor`]: `$1` the device ID, `$2` the key
/// fingerprint or NULL ("after every key of the device").
macro_rules! waiting_page {
    () => {
        "((CAST($2 AS TEXT) IS NULL AND w.device_id > $1)
    OR (CAST($2 AS TEXT) IS NOT NULL AND (w.device_id, w.key_fingerprint) > ($1, CAST($2 AS TEXT))))"
    };
}
pub(crate) use waiting_page;

#[cfg(test)]
mod tests {
    use super::*;

    /// The rendered `CASE` and the function agree on every input
    /// (evaluated by SQLite).
    #[test]
    fn status_sql_agrees_with_the_function() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        for bits in 0u32..32 {
            let b = |i: u32| bits & (1 << i) != 0;
            let (valid, rejected, live, waiting, approved) = (b(0), b(1), b(2), b(3), b(4));
            for (certs, revoked) in [(0u64, 0u64), (2, 1), (2, 2)] {
                let sql = format!(
                    "SELECT {} FROM (SELECT ?1 AS valid_id, ?2 AS rejected, ?3 AS live,
                       ?4 AS waiting, ?5 AS approved, ?6 AS certs, ?7 AS revoked) AS d",
                    *STATUS_SQL
                );
                let got: String = c
                    .query_row(
                        &sql,
                        rusqlite::params![
                            valid.then_some(1),
                            rejected,
                            live,
                            i64::from(waiting),
                            approved,
                            certs as i64,
                            revoked as i64
                        ],
                        |r| r.get(0),
                    )
                    .unwrap();
                let want =
                    device_status(valid, rejected, live || waiting || approved, certs, revoked);
                assert_eq!(
                    got,
                    want.as_str(),
                    "bits {bits:05b}, certs {certs}/{revoked}"
                );
            }
        }
    }

    #[test]
    fn missed_sql_agrees_with_the_function() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let sql = format!(
            "SELECT {} FROM (SELECT 1 AS id, ?1 AS not_before, ?2 AS not_after, ?3 AS revoked_at) AS l",
            missed_sql("?4")
        );
        let day = 86_400;
        for (nb, na) in [(0, 10 * day), (1000, 1000 + 30 * day)] {
            for revoked in [None, Some(5)] {
                for now in [
                    nb,
                    nb + 5 * day,
                    nb + 6 * day + 1,
                    nb + 6 * day + 30_000,
                    na + day,
                ] {
                    let got: bool = c
                        .query_row(&sql, rusqlite::params![nb, na, revoked, now], |r| r.get(0))
                        .unwrap();
                    assert_eq!(
                        got,
                        missed_renewal(
                            UnixTime::from_secs(nb),
                            UnixTime::from_secs(na),
                            revoked.is_some(),
                            UnixTime::from_secs(now)
                        ),
                        "{nb} {na} {now}"
                    );
                }
            }
        }
    }
}

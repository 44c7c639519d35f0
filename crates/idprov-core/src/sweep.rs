//! The audit entries of the periodic sweeps (expired and unreadable
//! secrets, the stale waiting queue): the server's housekeeping decides what
//! to delete through the store, and the entries come from here, made from
//! what was deleted.

use idprov_proto::UnixTime;
use idprov_store::{Actor, AuditEvent, AuditOf, AuditRecord};

/// The entries of a sweep of secrets at `now`, from its (unreadable,
/// expired) counts: one per kind that deleted anything.
pub fn secrets_swept(now: UnixTime) -> AuditOf<(u64, u64)> {
    AuditOf::new(move |&(unreadable, expired): &(u64, u64)| {
        let mut records = Vec::new();
        if unreadable > 0 {
            records.push(AuditRecord::new(
                now,
                Actor::system(),
                AuditEvent::SecretsPurged {
                    count: unreadable,
                    reason: "sealed under a key this server no longer has \
                             (restart without a persistent secret key)"
                        .into(),
                },
                None,
            ));
        }
        if expired > 0 {
            records.push(AuditRecord::new(
                now,
                Actor::system(),
                AuditEvent::SecretsExpired { count: expired },
                None,
            ));
        }
        records
    })
}

/// The entry of a sweep of the waiting queue at `now`, from its (waiting
/// requests, approvals) counts, when it deleted anything.
pub fn queue_swept(now: UnixTime) -> AuditOf<(u64, u64)> {
    AuditOf::new(move |&(waiting, approvals): &(u64, u64)| {
        if waiting + approvals == 0 {
            return Vec::new();
        }
        vec![AuditRecord::new(
            now,
            Actor::system(),
            AuditEvent::QueueExpired {
                waiting_requests: waiting,
                approvals,
            },
            None,
        )]
    })
}

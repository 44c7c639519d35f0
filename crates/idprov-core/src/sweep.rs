//! The audit entries of the periodic sweeps (expired and unreadable
//! secrets, the stale waiting queue, superseded certificates): the server's
//! housekeeping acts through the store, and the entries come from here,
//! made from what it deleted or revoked.

use idprov_proto::UnixTime;
use idprov_store::{Actor, AuditEvent, AuditOf, AuditRecord, Superseded};

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

/// The entries of the revocation of superseded certificates at `now`: one
/// `certificate_revoked` (reason 4, superseded) per device, naming the
/// certificate that superseded them.
pub fn superseded(now: UnixTime) -> AuditOf<[Superseded]> {
    AuditOf::new(move |superseded: &[Superseded]| {
        let mut by_device: Vec<(&str, Vec<&Superseded>)> = Vec::new();
        for s in superseded {
            match by_device.iter_mut().find(|(d, _)| *d == s.device_id) {
                Some((_, list)) => list.push(s),
                None => by_device.push((&s.device_id, vec![s])),
            }
        }
        by_device
            .into_iter()
            .map(|(device, list)| {
                let mut newer: Vec<String> = list.iter().map(|s| s.by.to_string()).collect();
                newer.dedup();
                AuditRecord::new(
                    now,
                    Actor::system(),
                    AuditEvent::CertificateRevoked {
                        reason: 4,
                        note: format!("superseded by {}", newer.join(", ")),
                        serials: list.iter().map(|s| s.serial.clone()).collect(),
                    },
                    Some(device),
                )
            })
            .collect()
    })
}

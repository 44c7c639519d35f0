//! The audit log's records and its hash chain.
//!
//! Each entry carries the hash of the previous one, so an edited or deleted
//! entry breaks the chain from that point on. The hash covers a canonical
//! serialization of the entry (serde_json with sorted object keys).

use idprov_proto::UnixTime;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::events::AuditEvent;

/// The hash the first entry links to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did something. Stored and shown as text: `admin:<name>`,
/// `plugin:<name>`, `service:<name>`, `device:<id>`, `client:<name>`,
/// `source:<address>` (an unauthenticated peer) or `system`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The server itself (start-up, sweeps).
    System,
    /// An unauthenticated peer, known only by its address.
    Source(String),
    /// An administrator (certificate OU `admin`, or a web session).
    Admin(String),
    /// A plugin (certificate OU `plugin`).
    Plugin(String),
    /// A hub service (certificate OU `service`).
    Service(String),
    /// A device (certificate OU `iotdevice`), by device ID.
    Device(String),
    /// A client certificate of any other OU.
    Client(String),
    /// Text of none of these forms, read back from a registry.
    Other(String),
}

impl Actor {
    /// The server itself (start-up, sweeps).
    pub fn system() -> Self {
        Actor::System
    }

    /// An unauthenticated peer, known only by its address.
    pub fn source(addr: &str) -> Self {
        Actor::Source(addr.to_owned())
    }

    /// A caller authenticated in the role `kind` (`admin`, `plugin`,
    /// `service`, `device`; anything else is a plain client).
    pub fn named(kind: &str, name: &str) -> Self {
        let name = name.to_owned();
        match kind {
            "admin" => Actor::Admin(name),
            "plugin" => Actor::Plugin(name),
            "service" => Actor::Service(name),
            "device" => Actor::Device(name),
            _ => Actor::Client(name),
        }
    }

    /// The actor a stored text names (the inverse of its `Display`).
    pub fn parse(text: &str) -> Self {
        if text == "system" {
            return Actor::System;
        }
        match text.split_once(':') {
            Some(("source", a)) => Actor::Source(a.to_owned()),
            Some(("client", n)) => Actor::Client(n.to_owned()),
            Some((kind @ ("admin" | "plugin" | "service" | "device"), n)) => Actor::named(kind, n),
            _ => Actor::Other(text.to_owned()),
        }
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::System => f.write_str("system"),
            Actor::Source(a) => write!(f, "source:{a}"),
            Actor::Admin(n) => write!(f, "admin:{n}"),
            Actor::Plugin(n) => write!(f, "plugin:{n}"),
            Actor::Service(n) => write!(f, "service:{n}"),
            Actor::Device(n) => write!(f, "device:{n}"),
            Actor::Client(n) => write!(f, "client:{n}"),
            Actor::Other(t) => f.write_str(t),
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Actor::parse(&String::deserialize(d)?))
    }
}

/// An event to append, before it has a sequence number. Made only from an
/// [`AuditEvent`]: the vocabulary is the enum's.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    at: UnixTime,
    actor: Actor,
    event: AuditEvent,
    device_id: Option<String>,
}

impl AuditRecord {
    /// `event`, by `actor` at `at`, about `device_id` if any.
    pub fn new(at: UnixTime, actor: Actor, event: AuditEvent, device_id: Option<&str>) -> Self {
        AuditRecord {
            at,
            actor,
            event,
            device_id: device_id.map(str::to_owned),
        }
    }

    /// When it happened.
    pub fn at(&self) -> UnixTime {
        self.at
    }

    /// Who did it.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// What happened.
    pub fn event(&self) -> &AuditEvent {
        &self.event
    }

    /// The device concerned, if any.
    pub fn device_id(&self) -> Option<&str> {
        self.device_id.as_deref()
    }

    /// This record as the entry after `head` (the chain's last sequence
    /// number and hash; `None` for the first entry): what both backends
    /// insert.
    pub(crate) fn link(&self, head: Option<(i64, String)>) -> crate::Result<Link> {
        let (seq, prev_hash) = match head {
            Some((seq, hash)) => (
                seq.checked_add(1)
                    .ok_or_else(|| crate::StoreError::Corrupt("audit sequence exhausted".into()))?,
                hash,
            ),
            None => (1, GENESIS_HASH.to_owned()),
        };
        let detail_value = self.event.detail();
        let hash = entry_hash(
            &prev_hash,
            seq,
            self.at,
            &self.actor.to_string(),
            self.event.name(),
            self.device_id.as_deref(),
            &detail_value,
        );
        let detail = serde_json::to_string(&detail_value)
            .map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
        Ok(Link {
            seq,
            prev_hash,
            hash,
            detail,
        })
    }
}

/// The audit entries of a change whose detail depends on what the change
/// did (whether a secret was replaced, which serials were revoked, how many
/// rows were stored): made by the caller from the change's outcome, inside
/// the change's transaction. The store only appends what it returns.
pub struct AuditOf<T: ?Sized>(Box<MakeRecords<T>>);

/// What an [`AuditOf`] holds.
type MakeRecords<T> = dyn FnOnce(&T) -> Vec<AuditRecord> + Send + Sync;

impl<T: ?Sized> AuditOf<T> {
    /// Entries made from the outcome (none, one or several).
    pub fn new(f: impl FnOnce(&T) -> Vec<AuditRecord> + Send + Sync + 'static) -> Self {
        AuditOf(Box::new(f))
    }

    /// One entry made from the outcome.
    pub fn one(f: impl FnOnce(&T) -> AuditRecord + Send + Sync + 'static) -> Self {
        AuditOf::new(move |outcome| vec![f(outcome)])
    }

    /// This entry, whatever the outcome.
    pub fn always(record: AuditRecord) -> Self {
        AuditOf::new(move |_| vec![record])
    }

    /// The entries for this outcome.
    pub(crate) fn records(self, outcome: &T) -> Vec<AuditRecord> {
        (self.0)(outcome)
    }
}

impl<T: ?Sized> std::fmt::Debug for AuditOf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditOf(..)")
    }
}

/// The chain fields of an entry about to be appended.
pub(crate) struct Link {
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
    /// The record's detail as stored (JSON text).
    pub detail: String,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 1, without gaps.
    pub seq: i64,
    /// When it happened.
    pub at: UnixTime,
    /// Who did it.
    pub actor: String,
    /// What happened.
    pub event: String,
    /// The device concerned, if any.
    #[serde(rename = "deviceID")]
    pub device_id: Option<String>,
    /// Event-specific facts.
    pub detail: serde_json::Value,
    /// Hash of the previous entry (hex SHA-256), or [`GENESIS_HASH`].
    pub prev_hash: String,
    /// Hash of this entry (hex SHA-256).
    pub hash: String,
}

/// The fields a hash covers, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: i64,
    at: UnixTime,
    actor: &'a str,
    event: &'a str,
    device_id: Option<&'a str>,
    detail: &'a serde_json::Value,
}

/// The hash of an entry linked to `prev_hash`.
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    at: UnixTime,
    actor: &str,
    event: &str,
    device_id: Option<&str>,
    detail: &serde_json::Value,
) -> String {
    let body = serde_json::to_vec(&Hashed {
        seq,
        at,
        actor,
        event,
        device_id,
        detail,
    })
    .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(&body);
    hex::encode(h.finalize())
}

impl AuditEntry {
    /// Recomputes this entry's hash from its fields.
    pub fn computed_hash(&self) -> String {
        entry_hash(
            &self.prev_hash,
            self.seq,
            self.at,
            &self.actor,
            &self.event,
            self.device_id.as_deref(),
            &self.detail,
        )
    }
}

/// Where a chain of entries stops being valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// An entry's stored hash does not match its fields.
    #[error("audit entry {0} was altered: its hash does not match its contents")]
    Altered(i64),
    /// An entry does not link to its predecessor.
    #[error("audit entry {0} does not link to the entry before it")]
    Broken(i64),
    /// A sequence number is missing.
    #[error("audit entry {0} is missing")]
    Gap(i64),
}

/// Checks a run of consecutive entries; `prev` is the entry before the first
/// (or `None` when the run starts the log).
pub fn verify_chain<'a>(
    prev: Option<&AuditEntry>,
    entries: impl IntoIterator<Item = &'a AuditEntry>,
) -> Result<(), ChainError> {
    let (mut expected_seq, mut prev_hash) = match prev {
        Some(p) => (p.seq + 1, p.hash.clone()),
        None => (1, GENESIS_HASH.to_owned()),
    };
    for e in entries {
        if e.seq != expected_seq {
            return Err(ChainError::Gap(expected_seq));
        }
        if e.prev_hash != prev_hash {
            return Err(ChainError::Broken(e.seq));
        }
        if e.computed_hash() != e.hash {
            return Err(ChainError::Altered(e.seq));
        }
        prev_hash = e.hash.clone();
        expected_seq += 1;
    }
    Ok(())
}

/// Checks a whole log — the chain from its first entry, and every signed
/// checkpoint against it (`signed` verifies a checkpoint's signature with the
/// CA) — and says what holds, or names the first problem: an altered or
/// missing entry, a checkpoint not signed by the CA, a truncated tail (a
/// checkpoint beyond the last entry), or a recomputed tail (an entry that no
/// longer matches its checkpoint).
pub fn verify_log(
    chain: &[AuditEntry],
    checkpoints: &[crate::model::Checkpoint],
    signed: impl Fn(&[u8], &[u8]) -> bool,
) -> Result<String, String> {
    verify_chain(None, chain).map_err(|e| e.to_string())?;
    let last = chain.last().map_or(0, |e| e.seq);
    let mut previous = 0;
    for cp in checkpoints {
        let message = crate::model::Checkpoint::message(cp.seq, &cp.head_hash, cp.at);
        if !signed(&message, &cp.signature) {
            return Err(format!(
                "the checkpoint at entry {} is not signed by this CA",
                cp.seq
            ));
        }
        if cp.seq > last {
            return Err(format!(
                "the log ends at entry {last}, but a signed checkpoint covers entry {}: entries {}–{} were removed (truncated)",
                cp.seq,
                last + 1,
                cp.seq
            ));
        }
        // Sequence numbers are gapless from 1 (verified above).
        let at = usize::try_from(cp.seq - 1)
            .ok()
            .and_then(|i| chain.get(i))
            .ok_or_else(|| format!("audit entry {} is missing", cp.seq))?;
        if at.hash != cp.head_hash {
            return Err(format!(
                "an entry between {} and {} was altered and the chain recomputed: entry {} no longer matches its signed checkpoint",
                previous + 1,
                cp.seq,
                cp.seq
            ));
        }
        previous = cp.seq;
    }
    Ok(format!(
        "audit log verified: {} entries, {} signed checkpoints, the last covering entry {previous}{}",
        chain.len(),
        checkpoints.len(),
        if previous < last {
            format!(" ({} newer entries not yet checkpointed)", last - previous)
        } else {
            String::new()
        }
    ))
}

#[cfg(test)]
mod actor_tests {
    use super::Actor;

    /// Every actor reads back as itself from its stored text.
    #[test]
    fn actors_round_trip_through_their_text() {
        for a in [
            Actor::System,
            Actor::source("10.0.0.1"),
            Actor::named("admin", "ops"),
            Actor::named("plugin", "p"),
            Actor::named("service", "s"),
            Actor::named("device", "d-1"),
            Actor::named("client", "c"),
            Actor::Other("legacy".into()),
        ] {
            assert_eq!(Actor::parse(&a.to_string()), a);
        }
        assert_eq!(Actor::named("admin", "ops").to_string(), "admin:ops");
        assert_eq!(
            serde_json::to_string(&Actor::source("::1")).unwrap(),
            "\"source:::1\""
        );
    }
}

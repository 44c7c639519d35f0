//! The records the registry keeps: times are [`UnixTime`], serials
//! [`SerialNumber`], key fingerprints [`KeyFingerprint`].

use idprov_proto::{KeyFingerprint, SerialNumber, UnixTime};
use serde::{Deserialize, Serialize};

use crate::audit::{Actor, AuditRecord};
use crate::ops::rules::device_status;

/// A page request for keyset paging: entries strictly after `after`, in
/// byte order of their key, at most `limit` of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Key of the last entry of the previous page.
    pub after: Option<String>,
    /// Most entries to return.
    pub limit: u32,
}

/// The most rows one page or query returns, whatever the caller asks.
const MAX_ROWS: u32 = 10_000;

/// `limit` as a SQL `LIMIT`, between 1 and [`MAX_ROWS`].
pub(crate) fn sql_limit(limit: u32) -> i64 {
    i64::from(limit.clamp(1, MAX_ROWS))
}

impl Page {
    /// This page's SQL `LIMIT`.
    pub(crate) fn sql_limit(&self) -> i64 {
        sql_limit(self.limit)
    }

    /// The waiting list's cursor: `"<deviceID> <keyFingerprint>"` (a space
    /// is in neither alphabet), or a bare device ID meaning "after every key
    /// of it".
    pub(crate) fn waiting_cursor(&self) -> (String, Option<String>) {
        let after = self.after.clone().unwrap_or_default();
        match after.split_once(' ') {
            Some((d, f)) => (d.to_owned(), Some(f.to_owned())),
            None => (after, None),
        }
    }
}

/// The idprov v2 verifier of a registration made for v2 only (PROTOCOL.md
/// §11): the device's PBKDF2 salt and iterations, and its SPAKE2+ record
/// (w0, L) sealed by the caller. A default registration has none: its
/// record is derived from the sealed secret when a v2 run needs it
/// (SECURITY.md, "idprov v2").
#[derive(Clone, PartialEq, Eq)]
pub struct PakeVerifier {
    /// PBKDF2 salt (random, per registration).
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// Nonce + ciphertext + tag of w0 ‖ L.
    pub sealed_record: Vec<u8>,
}

impl std::fmt::Debug for PakeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PakeVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// An OOB secret to store, already sealed (AEAD) by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecret {
    /// The device it belongs to.
    pub device_id: String,
    /// Nonce + ciphertext + tag; the plaintext never reaches the store.
    /// Empty for a registration made for idprov v2 only, which keeps no
    /// form of the secret (only `pake`).
    pub sealed: Vec<u8>,
    /// The v2 verifier of a v2-only registration.
    pub pake: Option<PakeVerifier>,
    /// Identifies the key that sealed it, so unreadable rows can be purged.
    pub key_id: String,
    /// Creation time.
    pub created_at: UnixTime,
    /// End of its life.
    pub valid_until: UnixTime,
    /// Who registered it.
    pub created_by: Actor,
}

/// A stored, unconsumed secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSecret {
    /// Row identity: a replaced secret gets a new one, so a request verified
    /// against the old secret cannot consume the new one.
    pub id: i64,
    /// The device.
    pub device_id: String,
    /// Sealed secret (empty for a v2-only registration).
    pub sealed: Vec<u8>,
    /// Sealing key identity.
    pub key_id: String,
    /// Creation time.
    pub created_at: UnixTime,
    /// End of its life.
    pub valid_until: UnixTime,
    /// The v2 verifier of a v2-only registration.
    pub pake: Option<PakeVerifier>,
}

impl StoredSecret {
    /// The sealed secret, unless the registration is for v2 only.
    pub fn sealed_secret(&self) -> Option<&[u8]> {
        (!self.sealed.is_empty()).then_some(&self.sealed[..])
    }
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSecret")
            .field("id", &self.id)
            .field("device_id", &self.device_id)
            .field("valid_until", &self.valid_until)
            .finish_non_exhaustive()
    }
}

/// A secret as administrators may see it: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSummary {
    /// The device.
    pub device_id: String,
    /// Creation time.
    pub created_at: UnixTime,
    /// End of its life.
    pub valid_until: UnixTime,
    /// Who registered it.
    pub created_by: String,
}

/// Whether storing a secret added one or replaced an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutSecretOutcome {
    /// The device had no live secret.
    Added,
    /// An existing secret was replaced.
    Replaced,
}

/// A secret consumed recently, kept (sealed) so that a device whose Approved
/// response was lost gets the same certificate again (PROTOCOL.md §6 4.4).
#[derive(Clone, PartialEq, Eq)]
pub struct ConsumedSecret {
    /// Sealed secret (empty for a v2-only registration).
    pub sealed: Vec<u8>,
    /// Sealing key identity.
    pub key_id: String,
    /// The certificate issued when it was consumed.
    pub serial: SerialNumber,
    /// When it was consumed.
    pub consumed_at: UnixTime,
    /// The id the registration had while it was live (what its wrong
    /// guesses count against); `None` for one consumed before schema 8.
    pub secret_id: Option<i64>,
    /// The v2 verifier of a v2-only registration.
    pub pake: Option<PakeVerifier>,
}

impl ConsumedSecret {
    /// The sealed secret, unless the registration was for v2 only.
    pub fn sealed_secret(&self) -> Option<&[u8]> {
        (!self.sealed.is_empty()).then_some(&self.sealed[..])
    }
}

impl std::fmt::Debug for ConsumedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumedSecret")
            .field("serial", &self.serial)
            .field("consumed_at", &self.consumed_at)
            .finish_non_exhaustive()
    }
}

pub use idprov_proto::ProvisionStatus;
pub use idprov_proto::kinds::{CertKind, IssueKind, Protocol};

/// A certificate to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCertificate {
    /// Serial, lower-case hex.
    pub serial: SerialNumber,
    /// What it was issued to.
    pub kind: CertKind,
    /// Subject CN: the device ID for devices.
    pub subject: String,
    /// Leaf PEM.
    pub pem: String,
    /// Fingerprint of the subject public key.
    pub key_fingerprint: KeyFingerprint,
    /// Key type, e.g. `ECDSA-P256`.
    pub key_type: String,
    /// notBefore.
    pub not_before: UnixTime,
    /// notAfter.
    pub not_after: UnixTime,
    /// Issuance time.
    pub issued_at: UnixTime,
    /// How it was authorized.
    pub issue_kind: IssueKind,
    /// Who authorized it (the actor text).
    pub authorized_by: String,
    /// The protocol the device asked by: none for the server's own and
    /// operators' credentials (and `v1` for device certificates recorded
    /// before EST, the only protocol then).
    pub protocol: Option<Protocol>,
}

/// A recorded certificate: what was recorded, and its revocation. Reads
/// of the recorded fields go through to [`NewCertificate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// The certificate as recorded.
    #[serde(flatten)]
    pub cert: NewCertificate,
    /// Revocation time, if revoked.
    pub revoked_at: Option<UnixTime>,
    /// RFC 5280 reason code, if revoked.
    pub revocation_reason: Option<i64>,
}

impl std::ops::Deref for CertRecord {
    type Target = NewCertificate;

    fn deref(&self) -> &NewCertificate {
        &self.cert
    }
}

/// Consume a secret as part of recording an issuance.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsumeSecret {
    /// The row read before verification; consumption fails if it changed.
    pub secret_id: i64,
    /// Fingerprint of the key the request carried (for re-delivery).
    pub key_fingerprint: KeyFingerprint,
}

impl std::fmt::Debug for ConsumeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumeSecret")
            .field("secret_id", &self.secret_id)
            .finish_non_exhaustive()
    }
}

/// Everything one issuance changes, applied in one transaction.
#[derive(Debug, Clone)]
pub struct IssueRecord {
    /// The certificate.
    pub cert: NewCertificate,
    /// The secret the request proved, consumed atomically with the record.
    pub consume_secret: Option<ConsumeSecret>,
    /// The approval (by key fingerprint) used, consumed atomically.
    pub consume_approval: Option<KeyFingerprint>,
    /// Source address whose failure counter is reset for this device.
    pub reset_lockout_for: Option<String>,
    /// Remove waiting requests of this device with this key fingerprint.
    pub clear_waiting_key: Option<KeyFingerprint>,
    /// For a device certificate: the device's older unrevoked, unexpired
    /// certificates are superseded by this one, and revoked (reason
    /// superseded) by [`crate::Devices::revoke_superseded`] from this time.
    pub supersede_older_at: Option<UnixTime>,
    /// The audit entry describing the issuance.
    pub audit: AuditRecord,
}

/// A certificate revoked because a newer one of its device superseded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superseded {
    /// The device.
    pub device_id: String,
    /// The revoked certificate.
    pub serial: SerialNumber,
    /// The certificate that superseded it.
    pub by: SerialNumber,
}

/// The result of recording an issuance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueOutcome {
    /// Recorded and durable.
    Recorded,
    /// The secret (or approval) was consumed or replaced by someone else in
    /// the meantime; nothing was recorded and the certificate must not be
    /// handed out.
    SecretGone,
}

/// A request waiting for a secret or an administrator (PROTOCOL.md §6 4.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingRequest {
    /// The device.
    pub device_id: String,
    /// Fingerprint of the submitted public key.
    pub key_fingerprint: KeyFingerprint,
    /// Key type.
    pub key_type: String,
    /// The submitted public key, PEM.
    pub public_key_pem: String,
    /// The address the device claimed (free text).
    pub claimed_ip: String,
    /// The MAC the device claimed (free text).
    pub claimed_mac: String,
    /// The address the request came from.
    pub source: String,
    /// First request.
    pub first_seen: UnixTime,
    /// Latest request.
    pub last_seen: UnixTime,
    /// Number of requests.
    pub attempts: i64,
    /// The protocol of its latest request.
    pub protocol: Protocol,
}

/// Limits that keep a flood of unknown devices from filling the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitingCaps {
    /// Most entries from one source address.
    pub per_source: u64,
    /// Most entries in total.
    pub total: u64,
}

/// What happened to a waiting request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitingOutcome {
    /// A new entry was recorded (and audited).
    Queued,
    /// The existing entry for this device and key was updated.
    Updated,
    /// The source already has its maximum of entries; nothing recorded.
    SourceCapReached,
    /// The queue was full: a new entry was recorded in place of the
    /// least recently seen entry of the source holding the most (which
    /// held more than this request's source).
    Evicted,
    /// The queue is full, and no source holds more than this one; nothing
    /// recorded.
    TotalCapReached,
}

/// Failed-secret counting for one device ID and source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Consecutive failures.
    pub failures: u32,
    /// Locked until this time (in the past when not locked).
    pub locked_until: UnixTime,
}

/// Wrong secrets for one device ID from every source together, against
/// one registered secret, within a window (PROTOCOL.md §6 4.6, ext).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuessBudget {
    /// The secret the guesses were against: a new secret starts afresh.
    pub secret_id: i64,
    /// When the window began.
    pub window_start: UnixTime,
    /// Wrong secrets in it.
    pub failures: u32,
}

/// What counting one failure left behind. The store audits neither the
/// lock nor the spent budget: anyone can cause them, so the server audits
/// them at a bounded rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The (device, source) counter.
    pub lockout: Lockout,
    /// The length of the lock this failure started, seconds (0: none).
    pub lock_started: i64,
    /// The device's budget across sources.
    pub budget: GuessBudget,
    /// Whether this failure spent the budget.
    pub budget_spent: bool,
}

/// How failures turn into locks (PROTOCOL.md §6 4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// The failure that starts the first lock.
    pub threshold: u32,
    /// First lock length, seconds; each further failure doubles it.
    pub base_secs: i64,
    /// Longest lock, seconds.
    pub max_secs: i64,
    /// A counter untouched this long starts again from zero.
    pub forget_after_secs: i64,
    /// Wrong secrets per device ID from all sources together within
    /// `device_window_secs` before every further guess is refused; 0 = no
    /// budget.
    pub device_budget: u32,
    /// The budget's window, seconds.
    pub device_window_secs: i64,
}

impl GuessBudget {
    /// Until when guesses against `secret_id` are refused, if the budget is
    /// spent at `now`.
    pub fn exhausted_until(
        budget: Option<&GuessBudget>,
        secret_id: i64,
        policy: &LockoutPolicy,
        now: UnixTime,
    ) -> Option<UnixTime> {
        let b = budget?;
        let until = b.window_start.plus_secs(policy.device_window_secs);
        (policy.device_budget > 0
            && b.secret_id == secret_id
            && now < until
            && b.failures >= policy.device_budget)
            .then_some(until)
    }
}

impl LockoutPolicy {
    /// The lock length after `failures` consecutive failures (0 = none).
    pub fn lock_secs(&self, failures: u32) -> i64 {
        if failures < self.threshold {
            return 0;
        }
        let doublings = (failures - self.threshold).min(32);
        self.base_secs
            .saturating_mul(1i64 << doublings)
            .min(self.max_secs)
    }

    /// One more wrong secret for the device at `now`, after `previous`: the
    /// new budget, and whether this failure spent it.
    pub(crate) fn after_device_failure(
        &self,
        secret_id: i64,
        previous: Option<GuessBudget>,
        now: UnixTime,
    ) -> (GuessBudget, bool) {
        let budget = match previous {
            Some(b)
                if b.secret_id == secret_id
                    && now < b.window_start.plus_secs(self.device_window_secs) =>
            {
                GuessBudget {
                    failures: b.failures.saturating_add(1),
                    ..b
                }
            }
            _ => GuessBudget {
                secret_id,
                window_start: now,
                failures: 1,
            },
        };
        let spent = self.device_budget > 0 && budget.failures == self.device_budget;
        (budget, spent)
    }

    /// One more failure of (device, source) at `now`, after `previous`
    /// (failures, last failure): the new counter, and the length of the lock
    /// it starts, if it starts one. Both backends store exactly this.
    pub(crate) fn after_failure(
        &self,
        previous: Option<(u32, UnixTime)>,
        now: UnixTime,
    ) -> (Lockout, i64) {
        let failures = match previous {
            Some((n, last)) if now.secs_since(last) < self.forget_after_secs => n.saturating_add(1),
            _ => 1,
        };
        let lock = self.lock_secs(failures);
        let locked_until = if lock == 0 {
            UnixTime::EPOCH
        } else {
            now.plus_secs(lock)
        };
        (
            Lockout {
                failures,
                locked_until,
            },
            lock,
        )
    }
}

/// What the registry knows of one device, for the status table of §4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    /// The device.
    pub device_id: String,
    /// First heard of.
    pub created_at: UnixTime,
    /// The newest certificate valid now and not revoked.
    pub newest_valid: Option<CertRecord>,
    /// Certificates ever issued.
    pub certificates: u64,
    /// Of which revoked.
    pub revoked: u64,
    /// A live (unconsumed, unexpired) secret is registered.
    pub live_secret: bool,
    /// Waiting requests recorded.
    pub waiting: u64,
    /// An unused, unexpired approval exists.
    pub approved: bool,
    /// An administrator rejected one of its keys.
    pub rejected: bool,
}

impl DeviceFacts {
    /// The status of PROTOCOL.md §4's table.
    pub fn status(&self) -> ProvisionStatus {
        device_status(
            self.newest_valid.is_some(),
            self.rejected,
            self.live_secret || self.waiting > 0 || self.approved,
            self.certificates,
            self.revoked,
        )
    }
}

/// One row of the device list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSummary {
    /// The device.
    pub device_id: String,
    /// Its status.
    pub status: ProvisionStatus,
    /// First heard of.
    pub created_at: UnixTime,
    /// Certificates ever issued.
    pub certificates: u64,
    /// Of which revoked.
    pub revoked: u64,
    /// notAfter of the newest valid, unrevoked certificate.
    pub valid_until: Option<UnixTime>,
    /// Serial of that certificate.
    pub serial: Option<SerialNumber>,
    /// When the newest certificate was issued.
    pub last_issued_at: Option<UnixTime>,
    /// A live secret is registered.
    pub live_secret: bool,
    /// Waiting requests recorded.
    pub waiting: u64,
    /// An unused, unexpired approval exists.
    pub approved: bool,
    /// An administrator rejected one of its keys.
    pub rejected: bool,
    /// The protocol its newest certificate was asked for by.
    pub protocol: Option<Protocol>,
}

/// An administrator's approval of a waiting request, bound to its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The device.
    pub device_id: String,
    /// The approved key.
    pub key_fingerprint: KeyFingerprint,
    /// Who approved it.
    pub approved_by: String,
    /// When.
    pub created_at: UnixTime,
    /// Unused approvals lapse at this time.
    pub expires_at: UnixTime,
}

/// An administrator's rejection of a device and key, until cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The device.
    pub device_id: String,
    /// The rejected key.
    pub key_fingerprint: KeyFingerprint,
    /// Who rejected it.
    pub rejected_by: String,
    /// Why (shown to administrators and in the audit log only).
    pub reason: String,
    /// When.
    pub created_at: UnixTime,
}

/// A waiting request together with any decision on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The request.
    pub request: WaitingRequest,
    /// Its approval, if approved and not yet used or expired.
    pub approval: Option<Approval>,
    /// Its rejection, if rejected.
    pub rejection: Option<Rejection>,
}

/// What to revoke.
#[derive(Debug)]
pub struct Revocation {
    /// The kind of subject.
    pub kind: CertKind,
    /// The subject (device ID or credential name).
    pub subject: String,
    /// One certificate only, or every unrevoked one of the subject.
    pub serial: Option<SerialNumber>,
    /// RFC 5280 reason code.
    pub reason: i64,
    /// When.
    pub at: UnixTime,
    /// The audit entries, made from the serials revoked.
    pub audit: crate::audit::AuditOf<[SerialNumber]>,
}

/// A revoked certificate, as a CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCert {
    /// Serial, lower-case hex.
    pub serial: SerialNumber,
    /// Revocation time.
    pub revoked_at: UnixTime,
    /// RFC 5280 reason code.
    pub reason: i64,
    /// notAfter (expired certificates may leave the CRL).
    pub not_after: UnixTime,
}

/// The current CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRecord {
    /// The CRL number; only grows.
    pub number: i64,
    /// thisUpdate.
    pub this_update: UnixTime,
    /// nextUpdate.
    pub next_update: UnixTime,
    /// The signed CRL, DER.
    pub der: Vec<u8>,
}

/// A signed audit checkpoint: the chain's head at a sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Sequence number of the last entry covered.
    pub seq: i64,
    /// That entry's hash.
    pub head_hash: String,
    /// When it was signed.
    pub at: UnixTime,
    /// Fingerprint of the signing certificate.
    pub signer: String,
    /// Signature over [`Checkpoint::message`], DER ECDSA (or Ed25519/RSA).
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// The bytes a checkpoint signature covers.
    pub fn message(seq: i64, head_hash: &str, at: UnixTime) -> Vec<u8> {
        format!("idprov audit checkpoint v1\nseq={seq}\nhead={head_hash}\nat={at}\n").into_bytes()
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if !s.len().is_multiple_of(2) {
            return Err(serde::de::Error::custom("odd-length hex"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Which entries an audit query returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Entries with `seq > after`.
    pub after: i64,
    /// At most this many.
    pub limit: u32,
    /// Only this device's.
    pub device_id: Option<String>,
    /// Only this event.
    pub event: Option<String>,
    /// Only this actor's.
    pub actor: Option<String>,
    /// Not before this time.
    pub since: Option<UnixTime>,
    /// Not after this time.
    pub until: Option<UnixTime>,
}

/// Which devices a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Only devices with this status.
    pub status: Option<ProvisionStatus>,
    /// Only devices whose current certificate expires within this many seconds.
    pub expiring_within: Option<i64>,
    /// Only devices that missed their renewal: no certificate issued after
    /// 55% of the latest one's validity plus a day.
    pub missed_renewal: bool,
    /// Only device IDs that start with this.
    pub prefix: Option<String>,
}

/// One row of a bulk registration, sealed already.
#[derive(Debug, Clone)]
pub struct BulkSecret {
    /// Position in the caller's input (reported back).
    pub index: u64,
    /// The secret to store.
    pub secret: NewSecret,
}

/// What a bulk registration streams into the store.
#[derive(Debug)]
pub enum BulkMessage {
    /// One more row.
    Row(BulkSecret),
    /// The input ended normally: commit, recording this digest of the rows
    /// (device IDs and expiry, never secrets) in the audit entry. A stream
    /// that closes without this is an interrupted import: nothing is stored.
    End {
        /// Hex SHA-256 over the rows as the caller defines it.
        rows_sha256: String,
    },
}

/// What a bulk registration did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    /// Rows stored (new or replacing).
    pub accepted: u64,
    /// Of which replaced an existing secret.
    pub replaced: u64,
    /// Rows refused by the store: (index, device ID, reason).
    pub rejected: Vec<(u64, String, String)>,
    /// The digest the stream ended with (device IDs and expiry, never
    /// secrets), for the audit entry.
    pub rows_sha256: String,
}

/// A sealed secret for an export with secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// The device.
    pub device_id: String,
    /// Sealed secret.
    pub sealed: Vec<u8>,
    /// Sealing key identity.
    pub key_id: String,
    /// End of its life.
    pub valid_until: UnixTime,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// Counts for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Waiting requests in the queue.
    pub waiting: u64,
    /// Valid, unrevoked device certificates expiring before the given time.
    pub expiring: u64,
    /// Devices known.
    pub devices: u64,
}

/// What the OOB path reads about one request ([`crate::Registry::oob_view`]).
#[derive(Debug, Clone, Default)]
pub struct OobView {
    /// The failure counter of (device, source).
    pub lockout: Option<Lockout>,
    /// An administrator's rejection of (device, key).
    pub rejection: Option<Rejection>,
    /// A live approval of (device, key).
    pub approval: Option<Approval>,
    /// A secret of the device consumed by this key within the window.
    pub consumed: Option<ConsumedSecret>,
    /// The device's live secret.
    pub live_secret: Option<StoredSecret>,
    /// The device's budget of wrong secrets across sources.
    pub guess_budget: Option<GuessBudget>,
    /// The serial of the newest unrevoked certificate issued on an
    /// administrator's approval of (device, key) at or after the window's
    /// start: the approval path's re-delivery (§6 4.4).
    pub approved_serial: Option<SerialNumber>,
}

/// Devices counted by status, for the dashboard
/// ([`crate::Registry::device_overview`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceOverview {
    /// Devices known.
    pub total: u64,
    /// With a valid, unrevoked certificate.
    pub approved: u64,
    /// Waiting (a secret, a request or an approval, no certificate yet).
    pub waiting: u64,
    /// Rejected (by an administrator, or every certificate revoked).
    pub rejected: u64,
    /// Of which every certificate is revoked.
    pub revoked: u64,
    /// With a valid certificate expiring before the given time.
    pub expiring: u64,
    /// That missed their renewal (no certificate after 55% of the latest
    /// one's validity plus a day).
    pub missed_renewal: u64,
}

/// An administrator's web password (argon2id, PHC string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPassword {
    /// The administrator's name.
    pub name: String,
    /// The argon2id hash in PHC format.
    pub hash: String,
    /// When it was set, Unix seconds.
    pub updated_at: UnixTime,
}

//! The storage trait every backend implements.

use async_trait::async_trait;

use crate::audit::{Actor, AuditEntry, AuditRecord};
use crate::error::Result;
use crate::model::*;

/// The device registry: secrets, waiting requests, lockouts, certificates and
/// the audit log. Every mutation writes its audit entry in the same
/// transaction, and returns only once that transaction is durable.
#[async_trait]
pub trait Registry: Send + Sync + std::fmt::Debug + 'static {
    /// Stores (or replaces) a device's secret. The store adds `"replaced"`
    /// (true or false) to the audit entry's detail object.
    async fn put_secret(&self, secret: NewSecret, audit: AuditRecord) -> Result<PutSecretOutcome>;

    /// Removes a device's secret; false when it had none.
    async fn remove_secret(&self, device_id: &str, audit: AuditRecord) -> Result<bool>;

    /// The device's unconsumed secret, if it has not expired at `now`.
    async fn live_secret(&self, device_id: &str, now: i64) -> Result<Option<StoredSecret>>;

    /// A secret of this device consumed at or after `since` by a request with
    /// this key fingerprint.
    async fn consumed_secret(
        &self,
        device_id: &str,
        key_fingerprint: &str,
        since: i64,
    ) -> Result<Option<ConsumedSecret>>;

    /// Secrets, without their values, in device-ID order.
    async fn list_secrets(&self, page: &Page) -> Result<Vec<SecretSummary>>;

    /// Deletes secrets sealed under any key but `current_key_id` (they can
    /// no longer be decrypted), expired secrets, and consumed secrets older
    /// than `consumed_before`; writes one audit entry per kind with the count
    /// when anything was deleted. Returns (unreadable, expired) counts.
    async fn purge_secrets(
        &self,
        current_key_id: &str,
        now: i64,
        consumed_before: i64,
    ) -> Result<(u64, u64)>;

    /// The failure counter of (device, source), if any.
    async fn lockout(&self, device_id: &str, source: &str) -> Result<Option<Lockout>>;

    /// Counts one failed signature; starts or extends a lock per `policy`
    /// and audits the lock when one starts.
    async fn record_failure(
        &self,
        device_id: &str,
        source: &str,
        now: i64,
        policy: &LockoutPolicy,
    ) -> Result<Lockout>;

    /// Records (or refreshes) a waiting request within `caps`; a new entry is
    /// audited as `request_queued` by `actor`.
    async fn record_waiting(
        &self,
        request: WaitingRequest,
        caps: WaitingCaps,
        actor: Actor,
    ) -> Result<WaitingOutcome>;

    /// Records an issuance: consumes the secret if asked (failing with
    /// [`IssueOutcome::SecretGone`] when it changed), inserts the certificate,
    /// creates the device, clears its failure counter and waiting entry, and
    /// appends the audit entry — all in one durable transaction.
    async fn record_issue(&self, record: IssueRecord) -> Result<IssueOutcome>;

    /// One certificate by serial.
    async fn certificate(&self, serial: &str) -> Result<Option<CertRecord>>;

    /// Every certificate of a subject and kind, newest first.
    async fn certificates_of(&self, kind: CertKind, subject: &str) -> Result<Vec<CertRecord>>;

    /// What the registry knows of a device; `None` if never heard of.
    async fn device(&self, device_id: &str, now: i64) -> Result<Option<DeviceFacts>>;

    /// Devices in device-ID order.
    async fn list_devices(&self, page: &Page, now: i64) -> Result<Vec<DeviceSummary>>;

    /// Waiting requests in (device ID, key fingerprint) order; `after` is
    /// `"<deviceID> <keyFingerprint>"` of the last entry seen, or a device ID.
    async fn list_waiting(&self, page: &Page) -> Result<Vec<WaitingRequest>>;

    /// Appends one audit entry on its own; returns its sequence number.
    async fn append_audit(&self, record: AuditRecord) -> Result<i64>;

    /// Audit entries with `seq > after`, oldest first.
    async fn audit_entries(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>>;
}

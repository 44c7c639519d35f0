//! The storage traits, one per capability, and [`Registry`], all of them.
//!
//! Implemented once, for [`crate::Store`] over any backend (`crate::ops`);
//! a caller that needs only part of the registry can say so in its types.

use async_trait::async_trait;
use idprov_proto::{KeyFingerprint, SerialNumber, UnixTime};

use crate::audit::{AuditEntry, AuditOf, AuditRecord};
use crate::error::Result;
use crate::model::*;

/// The whole registry: secrets, waiting requests, lockouts, certificates and
/// the audit log. Every mutation writes its audit entry in the same
/// transaction, and returns only once that transaction is durable.
pub trait Registry:
    Secrets + Queue + Devices + AuditLog + Accounts + Send + Sync + std::fmt::Debug + 'static
{
}

impl<T> Registry for T where
    T: Secrets + Queue + Devices + AuditLog + Accounts + Send + Sync + std::fmt::Debug + 'static
{
}

/// The OOB secrets (sealed by the caller), their consumption, and the counters of wrong secrets (PROTOCOL.md §6 4.1–4.6).
#[async_trait]
pub trait Secrets: Send + Sync {
    /// Stores (or replaces) a device's secret; `audit` makes the entries
    /// from the outcome (whether a secret was replaced).
    async fn put_secret(
        &self,
        secret: NewSecret,
        audit: AuditOf<PutSecretOutcome>,
    ) -> Result<PutSecretOutcome>;

    /// Removes a device's secret; false when it had none.
    async fn remove_secret(&self, device_id: &str, audit: AuditRecord) -> Result<bool>;

    /// The device's unconsumed secret, if it has not expired at `now`.
    async fn live_secret(&self, device_id: &str, now: UnixTime) -> Result<Option<StoredSecret>>;

    /// A secret of this device consumed at or after `since` by a request with
    /// this key fingerprint.
    async fn consumed_secret(
        &self,
        device_id: &str,
        key_fingerprint: &KeyFingerprint,
        since: UnixTime,
    ) -> Result<Option<ConsumedSecret>>;

    /// The registration of this device consumed last, at or after `since`,
    /// whatever key it was consumed by (an idprov v2 run, which learns the
    /// key only at its end, runs against it to re-deliver a lost answer).
    async fn last_consumed(
        &self,
        device_id: &str,
        since: UnixTime,
    ) -> Result<Option<ConsumedSecret>>;

    /// Secrets, without their values, in device-ID order.
    async fn list_secrets(&self, page: &Page) -> Result<Vec<SecretSummary>>;

    /// Deletes secrets sealed under any key but `current_key_id` (they can
    /// no longer be decrypted), expired secrets, and consumed secrets older
    /// than `consumed_before`; appends what `audit` makes of the
    /// (unreadable, expired) counts, which it returns.
    async fn purge_secrets(
        &self,
        current_key_id: &str,
        now: UnixTime,
        consumed_before: UnixTime,
        audit: AuditOf<(u64, u64)>,
    ) -> Result<(u64, u64)>;

    /// How many stored secrets each sealing key id holds (a replica with
    /// another key must not start: it would purge the others' secrets).
    async fn secret_key_ids(&self) -> Result<Vec<(String, u64)>>;

    /// Stores many secrets, streamed in, in one transaction. Rows whose
    /// device already has a secret replace it, or are refused when `replace`
    /// is false. With `dry_run` nothing is written; otherwise `audit` makes
    /// the entries from the outcome (its counts and the rows' digest).
    /// Nothing is stored unless the stream ends with [`BulkMessage::End`].
    async fn put_secrets_bulk(
        &self,
        rows: tokio::sync::mpsc::Receiver<BulkMessage>,
        replace: bool,
        dry_run: bool,
        audit: AuditOf<BulkOutcome>,
    ) -> Result<BulkOutcome>;

    /// Which of these device IDs already have a live secret.
    async fn existing_secrets(&self, device_ids: Vec<String>, now: UnixTime)
    -> Result<Vec<String>>;

    /// Sealed secrets for an export with secrets, in device-ID order
    /// (v2-only registrations, which keep none, are left out).
    async fn sealed_secrets(&self, page: &Page, now: UnixTime) -> Result<Vec<SealedSecret>>;

    /// The failure counter of (device, source), if any.
    async fn lockout(&self, device_id: &str, source: &str) -> Result<Option<Lockout>>;

    /// Counts one failed signature against the secret `secret_id`: for
    /// (device, source), starting or extending a lock per `policy`, and in
    /// the device's budget across sources. Nothing is audited here (the
    /// server audits locks and spent budgets at a bounded rate).
    async fn record_failure(
        &self,
        device_id: &str,
        source: &str,
        secret_id: i64,
        now: UnixTime,
        policy: &LockoutPolicy,
    ) -> Result<Failure>;

    /// The device's budget of wrong secrets across sources, if it has one.
    async fn guess_budget(&self, device_id: &str) -> Result<Option<GuessBudget>>;

    /// Removes the failure counters (and locks) of a device, every source,
    /// and its guess budget; returns how many sources' counters went.
    async fn clear_lockouts(&self, device_id: &str, audit: AuditRecord) -> Result<u64>;

    /// Everything the OOB path of PROTOCOL.md §6 (4.1–4.5) reads about a
    /// device, key and source, at once: the lockout of (device, source), a
    /// rejection and a live approval of (device, key), a secret consumed by
    /// this key since `consumed_since`, and the live secret, in one read
    /// and one snapshot: it runs on every provisioning request. It must
    /// agree with the single reads above (a suite test checks both
    /// backends).
    async fn oob_view(
        &self,
        device_id: &str,
        key_fingerprint: &KeyFingerprint,
        source: &str,
        now: UnixTime,
        consumed_since: UnixTime,
    ) -> Result<OobView>;
}

/// The waiting queue and the administrators' approvals and rejections.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Records (or refreshes) a waiting request within `caps`; `audit` is
    /// appended in the same transaction when (and only when) the request is
    /// new to the queue.
    async fn record_waiting(
        &self,
        request: WaitingRequest,
        caps: WaitingCaps,
        audit: Option<AuditRecord>,
    ) -> Result<WaitingOutcome>;

    /// Waiting requests in (device ID, key fingerprint) order; `after` is
    /// `"<deviceID> <keyFingerprint>"` of the last entry seen, or a device ID.
    async fn list_waiting(&self, page: &Page) -> Result<Vec<WaitingRequest>>;

    /// The waiting requests of one device.
    async fn waiting_for(&self, device_id: &str) -> Result<Vec<WaitingRequest>>;

    /// The waiting queue with each entry's approval or rejection.
    async fn list_queue(&self, page: &Page, now: UnixTime) -> Result<Vec<QueueEntry>>;

    /// Approves a waiting request's key until `expires_at` (replacing a
    /// rejection); false when no request with that key is waiting.
    async fn approve(
        &self,
        device_id: &str,
        key_fingerprint: &KeyFingerprint,
        expires_at: UnixTime,
        audit: AuditRecord,
    ) -> Result<bool>;

    /// Rejects a device's key until cleared (replacing an approval); false
    /// when no request with that key is waiting.
    async fn reject(
        &self,
        device_id: &str,
        key_fingerprint: &KeyFingerprint,
        reason: &str,
        audit: AuditRecord,
    ) -> Result<bool>;

    /// Removes waiting requests, approvals and rejections of a device (one
    /// key, or all); returns how many rows went.
    async fn clear_requests(
        &self,
        device_id: &str,
        key_fingerprint: Option<&KeyFingerprint>,
        audit: AuditRecord,
    ) -> Result<u64>;

    /// An unused approval valid at `now`.
    async fn approval(
        &self,
        device_id: &str,
        key_fingerprint: &KeyFingerprint,
        now: UnixTime,
    ) -> Result<Option<Approval>>;

    /// A rejection of this device and key.
    async fn rejection(
        &self,
        device_id: &str,
        key_fingerprint: &KeyFingerprint,
    ) -> Result<Option<Rejection>>;

    /// Removes waiting requests last seen before `waiting_before`, and
    /// approvals expired at `now`; appends what `audit` makes of the
    /// (waiting, approvals) counts, which it returns.
    async fn expire_queue(
        &self,
        waiting_before: UnixTime,
        now: UnixTime,
        audit: AuditOf<(u64, u64)>,
    ) -> Result<(u64, u64)>;
}

/// Devices and their certificates: issuance, status, revocation and the CRL.
#[async_trait]
pub trait Devices: Send + Sync {
    /// Records an issuance: consumes the secret if asked (failing with
    /// [`IssueOutcome::SecretGone`] when it changed), inserts the certificate,
    /// creates the device, clears its failure counter and waiting entry, and
    /// appends the audit entry — all in one durable transaction.
    async fn record_issue(&self, record: IssueRecord) -> Result<IssueOutcome>;

    /// One certificate by serial.
    async fn certificate(&self, serial: &SerialNumber) -> Result<Option<CertRecord>>;

    /// Every certificate of a subject and kind, newest first.
    async fn certificates_of(&self, kind: CertKind, subject: &str) -> Result<Vec<CertRecord>>;

    /// What the registry knows of a device; `None` if never heard of.
    async fn device(&self, device_id: &str, now: UnixTime) -> Result<Option<DeviceFacts>>;

    /// Devices in device-ID order, filtered.
    async fn list_devices(
        &self,
        page: &Page,
        now: UnixTime,
        filter: &DeviceFilter,
    ) -> Result<Vec<DeviceSummary>>;

    /// Devices counted by status, certificates expiring before `soon` and
    /// missed renewals, as `list_devices` would classify them.
    async fn device_overview(&self, now: UnixTime, soon: UnixTime) -> Result<DeviceOverview>;

    /// Gauges for metrics: waiting requests, and valid device certificates
    /// expiring before `soon`.
    async fn gauges(&self, now: UnixTime, soon: UnixTime) -> Result<Gauges>;

    /// Revokes certificates; returns the serials newly revoked. When there
    /// are some, the revocation's `audit` makes the entries from them.
    async fn revoke(&self, revocation: Revocation) -> Result<Vec<SerialNumber>>;

    /// Revokes every certificate of a device and forgets it: its secret,
    /// requests, approvals, rejections and counters go; the certificates stay
    /// (revoked) for the CRL. False when the device is unknown.
    async fn remove_device(
        &self,
        device_id: &str,
        at: UnixTime,
        audit: AuditOf<[SerialNumber]>,
    ) -> Result<Option<Vec<SerialNumber>>>;

    /// Revokes (reason superseded, at `now`) the certificates whose
    /// supersession is due at `now` and that are still unrevoked and
    /// unexpired, and forgets every due supersession; returns what it
    /// revoked, in issuance order. When there is something, `audit` makes
    /// the entries from it.
    async fn revoke_superseded(
        &self,
        now: UnixTime,
        audit: AuditOf<[Superseded]>,
    ) -> Result<Vec<Superseded>>;

    /// Revoked certificates not yet expired at `now`.
    async fn revoked_certificates(&self, now: UnixTime) -> Result<Vec<RevokedCert>>;

    /// The next CRL number (the stored one plus one; never reused).
    async fn next_crl_number(&self) -> Result<i64>;

    /// Stores a CRL unless a newer one is stored already.
    async fn store_crl(&self, crl: CrlRecord) -> Result<()>;

    /// The stored CRL.
    async fn crl(&self) -> Result<Option<CrlRecord>>;
}

/// The append-only, hash-chained audit log and its signed checkpoints.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends one audit entry on its own; returns its sequence number.
    async fn append_audit(&self, record: AuditRecord) -> Result<i64>;

    /// Audit entries with `seq > after`, oldest first.
    async fn audit_entries(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>>;

    /// Audit entries matching a filter, oldest first.
    async fn audit_query(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;

    /// The chain's head: (seq, hash), if any entry exists.
    async fn audit_head(&self) -> Result<Option<(i64, String)>>;

    /// Stores a signed checkpoint.
    async fn add_checkpoint(&self, checkpoint: Checkpoint) -> Result<()>;

    /// Every checkpoint, oldest first.
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>>;
}

/// Administrators' credentials: web passwords and the client certificates of admins and services.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Sets (or replaces) an administrator's web password hash.
    async fn set_web_password(&self, password: WebPassword, audit: AuditRecord) -> Result<()>;

    /// An administrator's web password hash.
    async fn web_password(&self, name: &str) -> Result<Option<WebPassword>>;

    /// Removes an administrator's web password; false when there was none
    /// (and then nothing is audited).
    async fn remove_web_password(&self, name: &str, audit: AuditRecord) -> Result<bool>;

    /// How many administrators have a web password.
    async fn web_password_count(&self) -> Result<u64>;

    /// Certificates of a kind, by subject (credentials: admins, services).
    async fn certificates_by_kind(&self, kind: CertKind) -> Result<Vec<CertRecord>>;
}

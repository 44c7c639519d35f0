//! The admin API's JSON documents (`/idprov/admin/…`), shared by the server
//! and the command-line tool. Times are RFC 3339 strings in UTC.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::kinds::{CertKind, DecisionKind, IssueKind, Protocol, QueueState};
use crate::{KeyFingerprint, ProvisionStatus, SerialNumber, UnixTime};

/// One page of a listing; `next` is the `after` value of the following page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// The entries.
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A device as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", schema(as = Device))]
pub struct DeviceView {
    /// The device ID.
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// Approved, Waiting or Rejected, as the status endpoint reports it.
    pub status: ProvisionStatus,
    /// First heard of.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub created_at: String,
    /// Certificates ever issued.
    pub certificates: u64,
    /// Of which revoked.
    pub revoked: u64,
    /// notAfter of the current certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub valid_until: Option<String>,
    /// Serial of the current certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub serial: Option<SerialNumber>,
    /// When the newest certificate was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub last_issued_at: Option<String>,
    /// A live OOB secret is registered.
    pub live_secret: bool,
    /// Waiting requests recorded.
    pub waiting: u64,
    /// The protocol its newest certificate was asked for by (`v1`, `est`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// A certificate as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", schema(as = Certificate))]
pub struct CertView {
    /// Serial, lower-case hex.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub serial: SerialNumber,
    /// device, admin, plugin, service or server.
    pub kind: CertKind,
    /// Subject CN.
    pub subject: String,
    /// SHA-256 of the subject public key (unpadded base64url).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub key_fingerprint: KeyFingerprint,
    /// e.g. ECDSA-P256.
    pub key_type: String,
    /// notBefore.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub not_before: String,
    /// notAfter.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub not_after: String,
    /// When it was issued.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub issued_at: String,
    /// oob, renewal, rekey, admin, approval or local.
    pub issue_kind: IssueKind,
    /// Who authorized it.
    pub authorized_by: String,
    /// The protocol the device asked by (`v1`, `est`); absent for
    /// credentials the server issued itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub revoked_at: Option<String>,
    /// RFC 5280 reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<i64>,
    /// The certificate, PEM.
    pub pem: String,
}

/// One device with its certificate history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeviceDetail {
    /// The summary.
    pub device: DeviceView,
    /// Every certificate issued to it, newest first.
    pub certificates: Vec<CertView>,
    /// Wrong secrets from all sources against its current secret, when any
    /// were counted in the current window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guesses: Option<GuessesView>,
}

/// A device's budget of wrong secrets across every source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct GuessesView {
    /// Wrong secrets counted in the window.
    pub failures: u32,
    /// Most allowed in one window.
    pub budget: u32,
    /// When the window ends (RFC 3339).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub window_ends: String,
    /// Whether every further guess is refused until then.
    pub spent: bool,
}

/// `GET /idprov/admin/requests/status`: whether the waiting queue is full.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// Whether a first-seen request found the queue full (and no source
    /// holding more than its own to make room) since it last had room.
    pub full: bool,
    /// Since when (RFC 3339), while full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub full_since: Option<String>,
    /// First-seen requests not recorded since then.
    pub not_recorded: u64,
    /// Entries evicted since then (from the source holding the most) to
    /// record other sources' requests.
    pub evicted: u64,
    /// The queue's cap.
    pub capacity: u64,
}

/// A registered OOB secret, without its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SecretView {
    /// The device ID.
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// When it was registered.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub created_at: String,
    /// When it expires.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub valid_until: String,
    /// Who registered it.
    pub created_by: String,
}

/// The answer to a secret registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SecretAdded {
    /// The device ID.
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// When the secret expires.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub valid_until: String,
    /// An existing secret was replaced.
    pub replaced: bool,
    /// Advice, e.g. that a short secret can be guessed offline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A waiting provisioning request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", schema(as = WaitingRequest))]
pub struct WaitingView {
    /// The device ID.
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// SHA-256 of the submitted public key (unpadded base64url).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub key_fingerprint: KeyFingerprint,
    /// e.g. ECDSA-P256.
    pub key_type: String,
    /// The address the device claimed (free text, unverified).
    #[serde(rename = "claimedIP")]
    pub claimed_ip: String,
    /// The MAC the device claimed (free text, unverified).
    #[serde(rename = "claimedMAC")]
    pub claimed_mac: String,
    /// The address the request came from.
    pub source: String,
    /// First request.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub first_seen: String,
    /// Latest request.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub last_seen: String,
    /// Number of requests.
    pub attempts: i64,
    /// The protocol of its latest request (`v1`, `est`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// `waiting`, `approved` (the next request with this key is Approved)
    /// or `rejected` (until cleared).
    #[serde(default)]
    pub state: QueueState,
    /// Who approved or rejected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When an approval lapses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub approval_expires_at: Option<String>,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
}

/// `POST /idprov/admin/requests/{deviceID}/approve|reject|clear`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decision {
    /// The key (fingerprint) decided on; may be left out when the device has
    /// exactly one waiting key (for clear: every key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// Why (reject only; kept for administrators and the audit log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub reason: Option<String>,
}

/// The answer to approve, reject and clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Decided {
    /// The device.
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// The keys decided on.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub key_fingerprints: Vec<KeyFingerprint>,
    /// approved, rejected or cleared.
    pub state: DecisionKind,
    /// When an approval lapses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub expires_at: Option<String>,
}

/// `POST /idprov/admin/devices/{deviceID}/revoke`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokeRequest {
    /// RFC 5280 reason: a name (`keyCompromise`) or its code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A note for the audit log only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub note: Option<String>,
    /// One certificate only (default: every unrevoked one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

/// The answer to a revocation or removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Revoked {
    /// The serials newly revoked.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub serials: Vec<SerialNumber>,
    /// The CRL number that lists them.
    pub crl_number: i64,
}

/// One row of a bulk registration as the CLI streams it (NDJSON): the
/// `/idprov/oobsecret` object plus where it came from in the file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ImportRow {
    /// The device ID.
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// The secret.
    pub oob_secret: String,
    /// RFC 3339 or empty.
    #[serde(default)]
    pub valid_until: String,
    /// (ext) Register for idprov v2 only (PROTOCOL.md §11.1).
    #[serde(default, skip_serializing_if = "core::ops::Not::not")]
    pub pake_only: bool,
    /// Physical line of the file where the row starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The row's index in the file (for a JSON array, the element index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
}

impl core::fmt::Debug for ImportRow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ImportRow")
            .field("device_id", &self.device_id)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// A row a bulk registration refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RejectedRow {
    /// 0-based position in the stream (for a JSON array: the element index).
    pub index: u64,
    /// Physical 1-based line of the file, when the client said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The device ID as given.
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// What is wrong, naming the field.
    pub error: String,
}

/// The answer to a bulk registration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkResult {
    /// Rows stored (or, in a dry run, that would be).
    pub accepted: u64,
    /// Of which replaced an existing secret.
    pub replaced: u64,
    /// Rows refused, in input order.
    pub rejected: Vec<RejectedRow>,
    /// True for a dry run: nothing was changed.
    #[serde(
        default,
        rename = "dryRun",
        skip_serializing_if = "core::ops::Not::not"
    )]
    pub dry_run: bool,
}

/// One row of an export (NDJSON from the server; the CLI writes CSV).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ExportRow {
    /// The device ID.
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// The secret, only in an export with secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oob_secret: Option<String>,
    /// When it expires.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub valid_until: String,
}

impl core::fmt::Debug for ExportRow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ExportRow")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// An audit entry as the admin API lists it (the stored fields, verbatim,
/// so that an export can be verified).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", schema(as = AuditEntry))]
pub struct AuditView {
    /// Position in the log.
    pub seq: i64,
    /// Unix seconds.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub at: UnixTime,
    /// RFC 3339 of `at`, for people.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub time: String,
    /// Who.
    pub actor: String,
    /// What.
    pub event: String,
    /// Which device.
    #[serde(rename = "deviceID", default)]
    pub device_id: Option<String>,
    /// Details.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: serde_json::Value,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// Hash of this entry.
    pub hash: String,
}

/// A signed checkpoint of the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", schema(as = Checkpoint))]
pub struct CheckpointView {
    /// The last entry covered.
    pub seq: i64,
    /// Its hash.
    pub head_hash: String,
    /// Unix seconds.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub at: UnixTime,
    /// Fingerprint of the CA certificate whose key signed it.
    pub signer: String,
    /// The signature, hex.
    pub signature: String,
}

/// `POST /idprov/admin/credentials`: a certificate for a person or service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialRequest {
    /// `admin`, `plugin` or `service`.
    #[cfg_attr(feature = "openapi", schema(value_type = CredentialOu))]
    pub ou: String,
    /// The name (CN); device-ID syntax.
    pub cn: String,
    /// The subject's public key, PKIX PEM (the key stays with the caller).
    #[serde(rename = "publicKeyPEM")]
    pub public_key_pem: String,
    /// DNS names and IP addresses (a service's server certificate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sans: Vec<String>,
    /// Validity in days (default: 365).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3650))]
    pub validity_days: Option<u32>,
}

/// An issued credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CredentialIssued {
    /// The certificate followed by intermediates, PEM.
    pub cert_pem: String,
    /// The CA chain, PEM.
    pub ca_pem: String,
    /// Serial.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub serial: SerialNumber,
    /// notAfter.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub not_after: String,
}

/// The organizational units a credential can be issued for (the `ou` of
/// a credential request and of the credential routes).
///
/// A schema only: the server parses the text.
#[cfg(feature = "openapi")]
#[derive(Debug, Clone, Copy, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum CredentialOu {
    /// An administrator.
    Admin,
    /// A plugin.
    Plugin,
    /// A hub service (may carry DNS names and addresses).
    Service,
}

/// The answer to removing something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Removed {
    /// Whether something was removed.
    pub removed: bool,
}

//! The admin API's JSON documents (`/idprov/admin/…`), shared by the server
//! and the command-line tool. Times are RFC 3339 strings in UTC.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// One page of a listing; `next` is the `after` value of the following page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The entries.
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A device as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    /// The device ID.
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// Approved, Waiting or Rejected, as the status endpoint reports it.
    pub status: String,
    /// First heard of.
    pub created_at: String,
    /// Certificates ever issued.
    pub certificates: u64,
    /// Of which revoked.
    pub revoked: u64,
    /// notAfter of the current certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    /// Serial of the current certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// When the newest certificate was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_issued_at: Option<String>,
    /// A live OOB secret is registered.
    pub live_secret: bool,
    /// Waiting requests recorded.
    pub waiting: u64,
}

/// A certificate as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertView {
    /// Serial, lower-case hex.
    pub serial: String,
    /// device, admin, plugin, service or server.
    pub kind: String,
    /// Subject CN.
    pub subject: String,
    /// SHA-256 of the subject public key (unpadded base64url).
    pub key_fingerprint: String,
    /// e.g. ECDSA-P256.
    pub key_type: String,
    /// notBefore.
    pub not_before: String,
    /// notAfter.
    pub not_after: String,
    /// When it was issued.
    pub issued_at: String,
    /// oob, renewal, rekey, admin, approval or local.
    pub issue_kind: String,
    /// Who authorized it.
    pub authorized_by: String,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// RFC 5280 reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<i64>,
    /// The certificate, PEM.
    pub pem: String,
}

/// One device with its certificate history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDetail {
    /// The summary.
    pub device: DeviceView,
    /// Every certificate issued to it, newest first.
    pub certificates: Vec<CertView>,
}

/// A registered OOB secret, without its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretView {
    /// The device ID.
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// When it was registered.
    pub created_at: String,
    /// When it expires.
    pub valid_until: String,
    /// Who registered it.
    pub created_by: String,
}

/// The answer to a secret registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretAdded {
    /// The device ID.
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// When the secret expires.
    pub valid_until: String,
    /// An existing secret was replaced.
    pub replaced: bool,
    /// Advice, e.g. that a short secret can be guessed offline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A waiting provisioning request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingView {
    /// The device ID.
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// SHA-256 of the submitted public key (unpadded base64url).
    pub key_fingerprint: String,
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
    pub first_seen: String,
    /// Latest request.
    pub last_seen: String,
    /// Number of requests.
    pub attempts: i64,
}

/// The answer to removing something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// Whether something was removed.
    pub removed: bool,
}

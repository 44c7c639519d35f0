//! The admin API under `/idprov/admin/`. The routes sit under one layer
//! ([`crate::auth::require_admin`]) that answers 401/403 before any handler
//! runs, and every handler takes the [`crate::auth::Admin`] it makes instead
//! of the server's state: an administrative operation is reached only
//! through a value got from a verified administrator.

pub(crate) mod audit;
pub(crate) mod check;
pub(crate) mod credentials;
pub(crate) mod devices;
pub(crate) mod import;
pub(crate) mod queue;
pub(crate) mod secrets;
pub(crate) mod web;

use axum::body::Body;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;

use idprov_proto::DeviceId;
use idprov_proto::admin::CertView;
use idprov_store::CertRecord;

use crate::error::ApiError;
use crate::routes::{read_body, rfc3339};

/// A device ID from a path segment.
pub(crate) fn device_id(raw: &str) -> Result<DeviceId, ApiError> {
    DeviceId::parse(raw).map_err(|e| ApiError::BadRequest(format!("deviceID in the path: {e}")))
}

/// An optional field of a request body, parsed strictly with `parse`: a
/// malformed value is a 400 naming the field, not a lookup that finds
/// nothing.
fn optional_field<T, E: std::fmt::Display>(
    field: &str,
    value: Option<&str>,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, ApiError> {
    value
        .map(|v| parse(v).map_err(|e| ApiError::BadRequest(format!("field \"{field}\": {e}"))))
        .transpose()
}

/// An optional `"serial"` ([`idprov_proto::SerialNumber`]).
pub(crate) fn serial_of(
    serial: Option<&str>,
) -> Result<Option<idprov_proto::SerialNumber>, ApiError> {
    optional_field("serial", serial, idprov_proto::SerialNumber::parse)
}

/// An optional `"keyFingerprint"` of a decision
/// ([`idprov_proto::KeyFingerprint`]).
pub(crate) fn key_fingerprint_of(
    fingerprint: Option<&str>,
) -> Result<Option<idprov_proto::KeyFingerprint>, ApiError> {
    optional_field(
        "keyFingerprint",
        fingerprint,
        idprov_proto::KeyFingerprint::parse,
    )
}

/// A free-text field of an admin request (a rejection reason, a revocation
/// note): at most 1024 bytes, no control characters, since it is shown in
/// listings and the audit log. Absent reads as empty.
pub(crate) fn free_text(field: &str, value: Option<String>) -> Result<String, ApiError> {
    let text = value.unwrap_or_default();
    if text.len() > 1024 || text.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "field \"{field}\": at most 1024 bytes of text without control characters"
        )));
    }
    Ok(text)
}

/// A JSON request body of a single object (an empty body reads as `{}`).
pub(crate) async fn json_body<T: DeserializeOwned + Default>(
    app: &crate::state::AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = read_body(app, headers, body, limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("request body: {e}")))
}

pub(crate) fn cert_view(c: &CertRecord) -> CertView {
    CertView {
        serial: c.serial.clone(),
        kind: c.kind,
        subject: c.subject.clone(),
        key_fingerprint: c.key_fingerprint.clone(),
        key_type: c.key_type.clone(),
        not_before: rfc3339(c.not_before),
        not_after: rfc3339(c.not_after),
        issued_at: rfc3339(c.issued_at),
        issue_kind: c.issue_kind,
        authorized_by: c.authorized_by.clone(),
        protocol: c.protocol,
        revoked_at: c.revoked_at.map(rfc3339),
        revocation_reason: c.revocation_reason,
        pem: c.pem.clone(),
    }
}

/// The `next` cursor of a full page.
pub(crate) fn next_of<T>(items: &[T], limit: u32, key: impl Fn(&T) -> String) -> Option<String> {
    if items.len() as u64 == u64::from(limit) {
        items.last().map(key)
    } else {
        None
    }
}

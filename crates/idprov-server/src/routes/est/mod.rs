//! EST, RFC 7030: the second front door onto the same registry, under
//! `/.well-known/est/` on the same TLS port (docs/EST.md). One file per
//! operation; this module holds what they share — the wire formats (a
//! base64 PKCS#10 in, a base64 certs-only PKCS#7 out), HTTP Basic
//! credentials, and the mapping of the core's [`Outcome`] onto EST's
//! answers:
//!
//! | outcome | answer |
//! |---|---|
//! | Approved | 200, the issued certificate as a certs-only PKCS#7 |
//! | Waiting | 202 with `Retry-After` (RFC 7030 §4.2.3) |
//! | Rejected: wrong secret, or none where one is registered | 401 with `WWW-Authenticate: Basic` |
//! | Rejected by an administrator | 403, until an administrator clears it |
//! | Refused (lockout, spent guess budget, too many waiting) | 429 with `Retry-After` |
//!
//! Nothing here decides: the CSR is parsed into the core's
//! [`idprov_core::Request`] (its key through the CA crate's `PublicKey`, so
//! the key rules of PROTOCOL.md §4 are the same), and the core decides as
//! for idprov v1.

pub(crate) mod cacerts;
pub(crate) mod csrattrs;
pub(crate) mod simpleenroll;
pub(crate) mod simplereenroll;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request as HttpRequest};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use idprov_ca::{CertRequest, pem};
use idprov_core::{Claimed, Outcome, Proof, RejectReason, Request};
use idprov_proto::kinds::Protocol;
use idprov_proto::{DeviceId, OobSecret};

use crate::auth::{Caller, ConnInfo};
use crate::error::ApiError;
use crate::state::AppState;

/// Where EST lives (RFC 7030 §3.2.2); no CA label segment.
pub const PREFIX: &str = "/.well-known/est";

/// The EST routes, each counted in [`crate::observe::EST_REQUESTS`].
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(&format!("{PREFIX}/cacerts"), get(cacerts::get))
        .route(&format!("{PREFIX}/csrattrs"), get(csrattrs::get))
        .route(&format!("{PREFIX}/simpleenroll"), post(simpleenroll::post))
        .route(
            &format!("{PREFIX}/simplereenroll"),
            post(simplereenroll::post),
        )
        .route_layer(axum::middleware::from_fn(count))
}

/// Counts every EST request by operation and outcome: `issued`, `served`
/// (cacerts, csrattrs), `waiting`, `unauthorized` (a wrong or missing
/// secret or certificate), `forbidden` (a rejected key, a certificate that
/// may not re-enroll), `refused` (429), `bad_request`, `error`.
async fn count(path: MatchedPath, req: HttpRequest, next: Next) -> Response {
    let operation = match path.as_str().rsplit('/').next() {
        Some("cacerts") => "cacerts",
        Some("csrattrs") => "csrattrs",
        Some("simpleenroll") => "simpleenroll",
        Some("simplereenroll") => "simplereenroll",
        _ => "other",
    };
    let response = next.run(req).await;
    let outcome = match response.status() {
        StatusCode::OK if operation.ends_with("enroll") => "issued",
        StatusCode::OK => "served",
        StatusCode::ACCEPTED => "waiting",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::TOO_MANY_REQUESTS => "refused",
        s if s.is_client_error() => "bad_request",
        _ => "error",
    };
    metrics::counter!(crate::observe::EST_REQUESTS, "operation" => operation, "outcome" => outcome)
        .increment(1);
    response
}

/// A base64 body (RFC 7030 §4.1.3: `Content-Transfer-Encoding: base64`,
/// lines of 64 characters) with its content type.
fn base64_answer(status: StatusCode, content_type: &'static str, der: &[u8]) -> Response {
    let text = STANDARD.encode(der);
    let mut body = String::with_capacity(text.len() + text.len() / 64 + 1);
    for line in text.as_bytes().chunks(64) {
        // Base64 is ASCII: every chunk is text.
        body.push_str(std::str::from_utf8(line).unwrap_or_default());
        body.push('\n');
    }
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::HeaderName::from_static("content-transfer-encoding"),
        HeaderValue::from_static("base64"),
    );
    r
}

/// A certs-only PKCS#7 of `certs` (DER), as EST answers.
fn pkcs7_answer(certs: &[&[u8]]) -> Result<Response, ApiError> {
    let der = idprov_ca::pkcs7::certs_only(certs)
        .map_err(|e| ApiError::Internal(format!("a certs-only PKCS#7: {e}")))?;
    Ok(base64_answer(
        StatusCode::OK,
        "application/pkcs7-mime; smime-type=certs-only",
        &der,
    ))
}

/// The CSR of an enrollment body: `Content-Type: application/pkcs10`, the
/// DER request in base64 (whitespace ignored, as RFC 8951 §3.2 asks), or
/// as PEM; its signature verified. Anything else is a 400 (415 for
/// another content type) naming the problem.
fn csr(headers: &HeaderMap, body: &[u8]) -> Result<(CertRequest, DeviceId), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/pkcs10") {
        return Err(ApiError::UnsupportedMediaType(
            "an enrollment is a base64 PKCS#10 request sent as Content-Type: application/pkcs10",
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the body is not base64 text".into()))?;
    let request = if text.trim_start().starts_with("-----BEGIN") {
        CertRequest::from_pem(text)
    } else {
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD.decode(compact.as_bytes()).map_err(|_| {
            ApiError::BadRequest(
                "the body is not base64 (a base64-encoded DER PKCS#10 request, RFC 7030 §4.2.1)"
                    .into(),
            )
        })?;
        CertRequest::from_der(&der)
    }
    .map_err(|e| ApiError::BadRequest(format!("the CSR: {e}")))?;
    let device_id = DeviceId::parse(request.common_name())
        .map_err(|e| ApiError::BadRequest(format!("the CSR's CN is not a device ID: {e}")))?;
    Ok((request, device_id))
}

/// The secret of HTTP Basic credentials (RFC 7617; RFC 7030 §3.2.3): the
/// user name must be the device ID; an empty password is no secret.
fn basic_secret(headers: &HeaderMap, device_id: &DeviceId) -> Result<Option<OobSecret>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || {
        ApiError::BadRequest(
            "the Authorization header is not HTTP Basic credentials (Basic, then base64 of \
             user:password)"
                .into(),
        )
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = STANDARD
        .decode(encoded.trim().as_bytes())
        .map_err(|_| malformed())?;
    let decoded = zeroize::Zeroizing::new(decoded);
    let text = std::str::from_utf8(&decoded).map_err(|_| malformed())?;
    let (user, password) = text.split_once(':').ok_or_else(malformed)?;
    if user != device_id.as_str() {
        return Err(ApiError::BadRequest(format!(
            "the Basic user name must be the device ID, the CSR's CN ({device_id})"
        )));
    }
    if password.is_empty() {
        return Ok(None);
    }
    OobSecret::parse(password)
        .map(Some)
        .map_err(|e| ApiError::BadRequest(format!("the Basic password is not a secret: {e}")))
}

/// An enrollment: the core's request made of the CSR, the caller and the
/// proof; the core decides; its outcome as EST's answer.
async fn enroll(
    app: &AppState,
    conn: &ConnInfo,
    caller: &Caller,
    csr: CertRequest,
    device_id: DeviceId,
    proof: Proof,
) -> Result<Response, ApiError> {
    let request = Request {
        device_id,
        key: csr.into_public_key(),
        // EST claims nothing about the device's address.
        claimed: Claimed::default(),
        source: conn.peer.ip(),
        caller: caller.verified().map(crate::auth::VerifiedCaller::identity),
        proof,
        protocol: Protocol::Est,
    };
    let outcome = app.core.provision(&request).await?;
    answer(app, conn, outcome)
}

/// The core's decision as EST's answer (the table of this module).
fn answer(app: &AppState, conn: &ConnInfo, outcome: Outcome) -> Result<Response, ApiError> {
    match outcome {
        Outcome::Approved(issued) => {
            // RFC 7030 §4.2.3: only the issued certificate; the chain is
            // what cacerts answers.
            let leaf = pem::parse_certificates(&issued.chain_pem)
                .map_err(|e| ApiError::Internal(format!("the issued certificate: {e}")))?;
            let leaf = leaf
                .first()
                .ok_or_else(|| ApiError::Internal("no issued certificate".into()))?;
            pkcs7_answer(&[leaf.as_ref()])
        }
        Outcome::Waiting { retry_secs } => {
            let retry = retry_secs.max(1);
            let mut r = (
                StatusCode::ACCEPTED,
                format!(
                    "waiting for an administrator to approve this key, or for a secret to be \
                     registered; retry after {retry} seconds\n"
                ),
            )
                .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry));
            Ok(r)
        }
        Outcome::Rejected { why, .. } => Err(match why {
            RejectReason::Administrator => ApiError::Forbidden(
                "an administrator rejected this device's key; it stays rejected until cleared",
            ),
            RejectReason::NoProof => ApiError::BasicAuth(
                "this device has a registered secret: authenticate with HTTP Basic, the device \
                 ID as user name and the secret as password",
            ),
            RejectReason::WrongSecret => ApiError::BasicAuth("wrong secret for this device"),
            RejectReason::V2Only => ApiError::Forbidden(
                "this device is registered for idprov v2 only: no form of its secret is kept, so \
                 a password cannot be checked",
            ),
        }),
        Outcome::Refused {
            reason,
            retry_after_secs,
        } => Err(crate::routes::refused(app, conn, reason, retry_after_secs)),
    }
}

/// Reads an enrollment's body within the route's limit.
async fn body(app: &AppState, headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, ApiError> {
    crate::routes::read_body(app, headers, body, app.config.body_limit).await
}

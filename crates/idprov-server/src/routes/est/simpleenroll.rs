//! `POST /.well-known/est/simpleenroll` (RFC 7030 §4.2.1): a device — or
//! an RA on its behalf — asks for its first certificate with a PKCS#10
//! request. Who it is decides the path, in the core, as for idprov v1:
//!
//! * a verified administrator or plugin certificate (an RA): issued for
//!   the CSR's CN, whatever it is (PROTOCOL.md §6 step 2);
//! * the device's own verified certificate: a renewal (step 3);
//! * HTTP Basic, user name the device ID and password its out-of-band
//!   secret: the secret is checked and consumed as on the v1 path, a wrong
//!   one counted toward the same lockout and guess budget (step 4);
//! * nothing: the request waits for an administrator, bound to the CSR's
//!   key (202 with `Retry-After`); once that key is approved, the next
//!   request with it is issued.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use idprov_core::Proof;

use crate::auth::{Caller, ConnInfo};
use crate::error::ApiError;
use crate::state::AppState;

#[utoipa::path(
    post,
    path = "/.well-known/est/simpleenroll",
    operation_id = "estSimpleEnroll",
    tag = "est",
    summary = "Enroll: a base64 PKCS#10 in, the certificate as a base64 certs-only PKCS#7 out (RFC 7030 §4.2)",
    description = "Authenticated by HTTP Basic (the device ID and its out-of-band secret), an administrator's or plugin's certificate (an RA), or the device's own certificate; with none, the request waits for an administrator's approval of its key. The certificate has the profile of PROTOCOL.md §7 whatever the CSR asks.",
    security((), ("httpBasic" = []), ("clientCertificate" = [])),
    request_body(content = String, content_type = "application/pkcs10",
        description = "The DER PKCS#10 request in base64 (or PEM)"),
    responses(
        (status = 200, response = crate::routes::api_doc::EstIssued),
        (status = 202, description = "Waiting for an administrator, or for a secret to be registered",
            headers(("Retry-After" = u64, description = "Seconds until the next attempt")),
            content((String = "text/plain"))),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 401, response = crate::routes::api_doc::BasicChallenge),
        (status = 403, response = crate::routes::api_doc::Forbidden),
        (status = 413, response = crate::routes::api_doc::PayloadTooLarge),
        (status = 415, response = crate::routes::api_doc::UnsupportedMediaType),
        (status = 429, response = crate::routes::api_doc::TooManyRequests),
    ),
)]
pub(crate) async fn post(
    State(app): State<AppState>,
    conn: ConnInfo,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // The body first (bounded, as every body): an HTTP/2 client that is
    // still sending it takes an answer given before as a broken stream.
    let bytes = super::body(&app, &headers, body).await?;
    crate::routes::provisioning_rate(&app, &conn, &caller)?;
    let (csr, device_id) = super::csr(&headers, &bytes)?;
    let proof = match super::basic_secret(&headers, &device_id)? {
        Some(secret) => Proof::Secret(secret),
        None => Proof::None,
    };
    super::enroll(&app, &conn, &caller, csr, device_id, proof).await
}

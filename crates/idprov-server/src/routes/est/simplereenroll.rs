//! `POST /.well-known/est/simplereenroll` (RFC 7030 §4.2.2): a device
//! renews its certificate, presenting it on the TLS connection. Only the
//! device's own verified certificate may (OU iotdevice, CN = the CSR's CN,
//! valid, not revoked: 401 without one, 403 otherwise, decided before the
//! request is parsed); the core then issues as a renewal, or a re-key when
//! the CSR carries a new key (PROTOCOL.md §6 step 3). An RA enrolls devices
//! with `simpleenroll`.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use idprov_core::{Proof, Role};

use crate::auth::{Caller, ConnInfo};
use crate::error::ApiError;
use crate::state::AppState;

#[utoipa::path(
    post,
    path = "/.well-known/est/simplereenroll",
    operation_id = "estSimpleReenroll",
    tag = "est",
    summary = "Re-enroll with the device's own certificate (RFC 7030 §4.2.2)",
    description = "The TLS connection must carry the device's own certificate (OU iotdevice, CN = the CSR's CN, not revoked). The same key renews, a new key is a re-key.",
    security(("clientCertificate" = [])),
    request_body(content = String, content_type = "application/pkcs10",
        description = "The DER PKCS#10 request in base64 (or PEM)"),
    responses(
        (status = 200, response = crate::routes::api_doc::EstIssued),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 401, response = crate::routes::api_doc::Unauthenticated),
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
    // still sending it takes an answer given before as a broken stream
    // (curl: "Stream error in the HTTP/2 framing layer").
    let bytes = super::body(&app, &headers, body).await?;
    let device = match &caller {
        Caller::Anonymous => return Err(ApiError::Unauthenticated),
        Caller::Refused(why) => return Err(ApiError::Forbidden(why)),
        Caller::Verified(v) if v.role == Role::Device => v,
        Caller::Verified(_) => {
            return Err(ApiError::Forbidden(
                "simplereenroll renews a device's own certificate; an RA enrolls devices with \
                 simpleenroll",
            ));
        }
    };
    crate::routes::provisioning_rate(&app, &conn, &caller)?;
    let (csr, device_id) = super::csr(&headers, &bytes)?;
    if device_id.as_str() != device.name {
        return Err(ApiError::Forbidden(
            "the CSR's CN must be the device ID of the certificate presented",
        ));
    }
    super::enroll(&app, &conn, &caller, csr, device_id, Proof::None).await
}

//! `GET /.well-known/est/cacerts` (RFC 7030 §4.1): the CA chain devices
//! trust — the issuing CA and its chain up to the root — as a certs-only
//! PKCS#7; during a CA rollover's transition also the previous CA and the
//! two cross-certificates (§4.1.3's "root CA key update" certificates).
//! Public, like the directory: a device fetches it before it trusts
//! anything (and should check it out of band, docs/EST.md).

use axum::extract::State;
use axum::response::Response;

use crate::error::ApiError;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/.well-known/est/cacerts",
    operation_id = "estCaCerts",
    tag = "est",
    summary = "The CA chain, a base64 certs-only PKCS#7 (RFC 7030 §4.1)",
    security(()),
    responses((status = 200, description = "The issuing CA and its chain up to the root (during a CA rollover, also the previous CA and the cross-certificates)",
        headers(("Content-Transfer-Encoding" = String, description = "base64")),
        content((String = "application/pkcs7-mime"))),
    ),
)]
pub(crate) async fn get(State(app): State<AppState>) -> Result<Response, ApiError> {
    let certs = app.ca.key_update_certs();
    let chain: Vec<&[u8]> = certs.iter().map(|c| c.as_ref()).collect();
    super::pkcs7_answer(&chain)
}

//! `GET /.well-known/est/cacerts` (RFC 7030 §4.1): the CA chain devices
//! trust — the issuing CA and its chain up to the root — as a certs-only
//! PKCS#7. Public, like the directory: a device fetches it before it
//! trusts anything (and should check it out of band, docs/EST.md).

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
    responses((status = 200, description = "The issuing CA and its chain up to the root",
        headers(("Content-Transfer-Encoding" = String, description = "base64")),
        content((String = "application/pkcs7-mime"))),
    ),
)]
pub(crate) async fn get(State(app): State<AppState>) -> Result<Response, ApiError> {
    let chain: Vec<&[u8]> = app.ca.chain_der().iter().map(|c| c.as_ref()).collect();
    super::pkcs7_answer(&chain)
}

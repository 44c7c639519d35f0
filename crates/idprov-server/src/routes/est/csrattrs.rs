//! `GET /.well-known/est/csrattrs` (RFC 7030 §4.5): what a request must
//! carry here — a CN (the device ID) and a key of a type PROTOCOL.md §4
//! accepts — as a base64 DER `CsrAttrs` (`idprov_ca::csr_attributes`).

use axum::http::StatusCode;
use axum::response::Response;

use crate::error::ApiError;

#[utoipa::path(
    get,
    path = "/.well-known/est/csrattrs",
    operation_id = "estCsrAttrs",
    tag = "est",
    summary = "What a CSR must carry, a base64 DER CsrAttrs (RFC 7030 §4.5)",
    description = "The CN (id-at-commonName: the device ID), the key types accepted (id-ecPublicKey with secp256r1 or secp384r1, id-Ed25519, rsaEncryption of 2048 to 4096 bits) and ecdsa-with-SHA256 as the signature suggested.",
    security(()),
    responses((status = 200, description = "The attributes",
        headers(("Content-Transfer-Encoding" = String, description = "base64")),
        content((String = "application/csrattrs"))),
    ),
)]
pub(crate) async fn get() -> Result<Response, ApiError> {
    let der = idprov_ca::csr_attributes()
        .map_err(|e| ApiError::Internal(format!("the CSR attributes: {e}")))?;
    Ok(super::base64_answer(
        StatusCode::OK,
        "application/csrattrs",
        &der,
    ))
}

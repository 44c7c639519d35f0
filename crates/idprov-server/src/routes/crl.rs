//! `GET /idprov/crl`: the CA's CRL, DER (`application/pkix-crl`) or PEM
//! (`Accept: application/x-pem-file`). Public: services read it.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/idprov/crl",
    operation_id = "crl",
    tag = "revocation",
    summary = "The CRL, DER, or PEM with Accept: application/x-pem-file",
    security(()),
    responses((status = 200, description = "The CRL", content(
        (inline(crate::routes::api_doc::Binary) = "application/pkix-crl"),
        (String = "application/x-pem-file"),
    ))),
)]
pub(crate) async fn get(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let crl = crate::crl::current(&app).await?;
    let wants_pem = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-pem-file") || v.contains("text/plain"));
    let (body, content_type) = if wants_pem {
        (
            idprov_ca::pem::encode("X509 CRL", &crl.der).into_bytes(),
            "application/x-pem-file",
        )
    } else {
        (crl.der, "application/pkix-crl")
    };
    let mut resp = axum::body::Body::from(body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}

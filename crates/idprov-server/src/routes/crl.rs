//! `GET /idprov/crl` and `GET /idprov/crl/{ca}`: a CA's CRL, DER
//! (`application/pkix-crl`) or PEM (`Accept: application/x-pem-file`).
//! Public: services read them.
//!
//! `/idprov/crl` is the distribution point certificates carry. During a CA
//! rollover's transition it serves the previous CA's CRL — the
//! certificates that name it were issued by that CA — and its PEM answer
//! carries both CAs' CRLs; the new CA's certificates name
//! `/idprov/crl/{fingerprint}`, which serves the CRL of the CA with that
//! fingerprint (the current one, or the previous one during a transition).

use axum::extract::{Path, State};
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
    description = "During a CA rollover's transition the DER answer is the previous CA's CRL \
        (the CA of the certificates that name this URL), and the PEM answer carries both CAs' CRLs.",
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
    let current = crate::crl::current(&app).await?.der;
    let previous = app.previous_crl.lock().ok().and_then(|p| p.clone());
    if wants_pem(&headers) {
        // During a rollover's transition, the previous CA's CRL follows.
        let mut text = idprov_ca::pem::encode("X509 CRL", &current);
        if let Some(der) = &previous {
            text.push_str(&idprov_ca::pem::encode("X509 CRL", der));
        }
        return Ok(answer(text.into_bytes(), "application/x-pem-file"));
    }
    Ok(answer(previous.unwrap_or(current), "application/pkix-crl"))
}

#[utoipa::path(
    get,
    path = "/idprov/crl/{ca}",
    operation_id = "crlOfCa",
    tag = "revocation",
    summary = "The CRL of one CA, by its fingerprint (DER, or PEM with Accept: application/x-pem-file)",
    description = "The distribution point of certificates the new CA issues during a CA rollover's \
        transition. Serves the current CA's CRL, or the previous CA's during a transition.",
    params(("ca" = String, Path, description = "The CA's SHA-256 fingerprint, unpadded base64url")),
    security(()),
    responses(
        (status = 200, description = "The CRL", content(
            (inline(crate::routes::api_doc::Binary) = "application/pkix-crl"),
            (String = "application/x-pem-file"),
        )),
        (status = 404, response = crate::routes::api_doc::NotFound),
    ),
)]
pub(crate) async fn get_of(
    State(app): State<AppState>,
    Path(ca): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let der = if ca == app.ca.fingerprint().to_string() {
        crate::crl::current(&app).await?.der
    } else if app
        .ca
        .previous()
        .is_some_and(|p| ca == p.fingerprint().to_string())
    {
        // Signed at start and at every publication of the transition.
        crate::crl::current(&app).await?;
        app.previous_crl
            .lock()
            .ok()
            .and_then(|p| p.clone())
            .ok_or_else(|| ApiError::Internal("the previous CA's CRL is missing".into()))?
    } else {
        return Err(ApiError::NotFound(
            "no CA with this fingerprint signs CRLs here",
        ));
    };
    Ok(if wants_pem(&headers) {
        answer(
            idprov_ca::pem::encode("X509 CRL", &der).into_bytes(),
            "application/x-pem-file",
        )
    } else {
        answer(der, "application/pkix-crl")
    })
}

fn wants_pem(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-pem-file") || v.contains("text/plain"))
}

fn answer(body: Vec<u8>, content_type: &'static str) -> Response {
    let mut resp = axum::body::Body::from(body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

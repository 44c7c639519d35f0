//! The OCSP responder over HTTP (RFC 6960 Appendix A, RFC 5019):
//! `POST /idprov/ocsp` with an `application/ocsp-request` body, and
//! `GET /idprov/ocsp/{request}` with the request's base64 in the path
//! (URL-encoded; the standard alphabet as RFC 6960 says, or base64url).
//! Public, on the TLS listener and on the plain-HTTP revocation listener:
//! the answers are signed.
//!
//! An answer that any identical request gets (no nonce) carries the HTTP
//! caching headers RFC 5019 §6 describes, agreeing with the answer's own
//! times: `Last-Modified` = thisUpdate, `Expires` = nextUpdate,
//! `Cache-Control: max-age` = what is left until nextUpdate, and an `ETag`;
//! a GET with a matching `If-None-Match` is answered 304.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use idprov_ca::ocsp::OcspFailure;

use crate::error::ApiError;
use crate::ocsp::Answer;
use crate::state::AppState;

/// The media type of a request.
pub const OCSP_REQUEST: &str = "application/ocsp-request";
/// The media type of an answer.
pub const OCSP_RESPONSE: &str = "application/ocsp-response";

#[utoipa::path(
    post,
    path = "/idprov/ocsp",
    operation_id = "ocsp",
    tag = "revocation",
    summary = "OCSP: a DER OCSPRequest in, a signed OCSPResponse out (RFC 6960, RFC 5019)",
    security(()),
    request_body(content((inline(crate::routes::api_doc::Binary) = "application/ocsp-request"))),
    responses(
        (status = 200, description = "A signed answer (good, revoked or unknown per certificate), or the unsigned `unauthorized` for certificates of another issuer", content(
            (inline(crate::routes::api_doc::Binary) = "application/ocsp-response"),
        )),
        (status = 400, description = "`malformedRequest` (DER), or a JSON error for a wrong Content-Type"),
        (status = 413, response = crate::routes::api_doc::PayloadTooLarge),
        (status = 429, response = crate::routes::api_doc::TooManyRequests),
    ),
)]
pub(crate) async fn post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !media_type.is_some_and(|m| m.eq_ignore_ascii_case(OCSP_REQUEST)) {
        return Err(ApiError::BadRequest(format!(
            "header \"Content-Type\" must be {OCSP_REQUEST}"
        )));
    }
    let request = crate::routes::read_body(&app, &headers, body, app.config.body_limit).await?;
    let answer = app.ocsp.answer(&app, &request).await?;
    Ok(respond(&app, &answer, false))
}

#[utoipa::path(
    get,
    path = "/idprov/ocsp/{request}",
    operation_id = "ocspGet",
    tag = "revocation",
    summary = "OCSP by GET: the DER OCSPRequest, base64, URL-encoded, as the last path segments",
    security(()),
    params(("request" = String, Path, description = "base64 (or base64url) of the DER OCSPRequest, URL-encoded")),
    responses(
        (status = 200, description = "A signed answer, with caching headers; or `unauthorized`", content(
            (inline(crate::routes::api_doc::Binary) = "application/ocsp-response"),
        )),
        (status = 304, description = "If-None-Match names the current answer"),
        (status = 400, description = "`malformedRequest` (DER)"),
        (status = 429, response = crate::routes::api_doc::TooManyRequests),
    ),
)]
pub(crate) async fn get(
    State(app): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let malformed = |detail: &str| crate::ocsp::failure(OcspFailure::MalformedRequest, detail);
    let Path(encoded) =
        path.map_err(|_| malformed("the request path is not valid URL encoding"))?;
    let request = decode(&encoded).ok_or_else(|| malformed("the request path is not base64"))?;
    let answer = app.ocsp.answer(&app, &request).await?;
    let revalidated = answer.shared
        && headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| tag.trim() == answer.etag);
    Ok(respond(&app, &answer, revalidated))
}

/// The request of a GET: base64 in the standard alphabet or base64url,
/// padded or not.
fn decode(text: &str) -> Option<Vec<u8>> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let alphabet = if text.contains(['-', '_']) {
        &base64::alphabet::URL_SAFE
    } else {
        &base64::alphabet::STANDARD
    };
    GeneralPurpose::new(alphabet, config).decode(text).ok()
}

fn http_date(t: idprov_proto::UnixTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::from(t)))
        .unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// The answer with its headers; 304 without a body when the client's copy
/// is current.
fn respond(app: &AppState, answer: &Answer, not_modified: bool) -> Response {
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Body::from(answer.der.clone()).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(OCSP_RESPONSE),
    );
    headers.insert(header::LAST_MODIFIED, http_date(answer.times.this_update));
    if answer.shared {
        let left = answer.times.next_update.secs_since(app.now_unix()).max(0);
        if let Ok(v) = HeaderValue::from_str(&format!(
            "max-age={left}, public, no-transform, must-revalidate"
        )) {
            headers.insert(header::CACHE_CONTROL, v);
        }
        headers.insert(header::EXPIRES, http_date(answer.times.next_update));
        if let Ok(v) = HeaderValue::from_str(&answer.etag) {
            headers.insert(header::ETAG, v);
        }
    } else {
        // Its nonce makes it this request's alone.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_paths_decode_in_either_alphabet_with_or_without_padding() {
        let bytes = [0xfbu8, 0xff, 0x3e, 0x01];
        for text in ["+/8+AQ==", "+/8+AQ", "-_8-AQ==", "-_8-AQ"] {
            assert_eq!(decode(text).as_deref(), Some(&bytes[..]), "{text}");
        }
        assert_eq!(decode("not base64!"), None);
        assert_eq!(decode("+_8"), None, "mixed alphabets");
    }
}

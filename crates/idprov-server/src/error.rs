//! Errors, and the one place where an error becomes an HTTP response.

use std::path::Path;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use idprov_store::StoreError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The data directory is unusable.
    #[error(transparent)]
    DataDir(#[from] crate::datadir::DataDirError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The CA or a certificate could not be loaded or issued.
    #[error("certificate authority: {0}")]
    Ca(String),
    /// The secret-sealing key could not be set up.
    #[error(transparent)]
    SecretKey(#[from] crate::secrets::KeyFileError),
    /// The in-memory sealing key could not be generated.
    #[error("generating the in-memory secret-sealing key: {0}")]
    EphemeralKey(String),
    /// The web page's first-start sign-in token could not be created or
    /// read.
    #[error("the web sign-in token: {0}")]
    SigninToken(String),
    /// The first CRL could not be issued.
    #[error("issuing the CRL: {0}")]
    Crl(String),
    /// The registry could not be opened.
    #[error("registry: {0}")]
    Store(#[from] StoreError),
    /// TLS could not be configured.
    #[error("TLS: {0}")]
    Tls(String),
    /// The DNS-SD advert could not be published.
    #[error("DNS-SD advert: {0}")]
    DnsSd(String),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

impl StartError {
    pub(crate) fn file(path: &Path, source: std::io::Error) -> Self {
        StartError::File {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The challenge of a 401 that asks for HTTP Basic credentials (EST: the
/// device ID and its out-of-band secret).
pub const BASIC_CHALLENGE: &str = r#"Basic realm="idprov EST", charset="UTF-8""#;

/// The body of every error answer: `{"error": message, "status": code}`,
/// and `"field"` when one input field is at fault.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorDocument {
    /// What went wrong, safe to show (details are logged, not returned).
    pub error: String,
    /// The HTTP status, repeated.
    pub status: u16,
    /// The input field at fault (`label`, `deviceID`, `oobSecret`,
    /// `validUntil`), when the error is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Every way a request can fail. Each variant maps to exactly one status;
/// the message is safe to show a client, internal details are logged only.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the input is malformed or invalid; the message names the field.
    BadRequest(String),
    /// 400: one field of the input is invalid. The message names it too; the
    /// answer also carries the field's name, so a form can point at it.
    Invalid {
        /// The field, as the request spells it (`deviceID`, `label`, …).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// 401: a client certificate is required and none authenticated.
    Unauthenticated,
    /// 401: a web sign-in or session that did not authenticate.
    SignIn(&'static str),
    /// 401 with an HTTP Basic challenge (EST, RFC 7030 §3.2.3): a wrong
    /// secret, or none where one is registered.
    BasicAuth(&'static str),
    /// 403: the verified caller may not do this.
    Forbidden(&'static str),
    /// 404: unknown path, or unknown device on the status endpoint.
    NotFound(&'static str),
    /// 405: the path exists, the method does not.
    MethodNotAllowed,
    /// 413: the body exceeds the route's limit.
    PayloadTooLarge(usize),
    /// 415: a body of another type than the route takes (the message says
    /// which).
    UnsupportedMediaType(&'static str),
    /// 429: locked out or rate limited; retry after this many seconds.
    TooManyRequests {
        /// Seconds until a retry can succeed.
        retry_after: u64,
        /// Why.
        reason: &'static str,
    },
    /// 500: something failed inside; the detail goes to the log only.
    Internal(String),
    /// 503: the server is shutting down or its registry is unavailable.
    Unavailable,
    /// 503: a bounded resource is fully in use; retry after this many seconds.
    Busy {
        /// Seconds.
        retry_after: u64,
        /// Why.
        reason: &'static str,
    },
    /// An OCSP request answered with an unsigned failure status (RFC 6960
    /// §4.2.1) in an `application/ocsp-response` body, which is what an
    /// OCSP client reads: `malformedRequest` 400, `unauthorized` 200 (a
    /// well-formed answer: "not my certificates"), `tryLater` 503,
    /// `internalError` 500. The detail is logged only.
    Ocsp {
        /// The status.
        failure: idprov_ca::ocsp::OcspFailure,
        /// What happened, for the log.
        detail: String,
    },
}

/// The answer of [`ApiError::Ocsp`].
fn ocsp_failure(failure: idprov_ca::ocsp::OcspFailure, detail: &str) -> Response {
    use idprov_ca::ocsp::OcspFailure;
    let (status, retry_after) = match failure {
        OcspFailure::MalformedRequest => {
            tracing::debug!(detail, "malformed OCSP request");
            (StatusCode::BAD_REQUEST, None)
        }
        OcspFailure::Unauthorized => {
            tracing::debug!(detail, "OCSP request for certificates not answered here");
            (StatusCode::OK, None)
        }
        OcspFailure::TryLater => {
            tracing::warn!(detail, "OCSP request answered tryLater");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some(HeaderValue::from_static("5")),
            )
        }
        OcspFailure::InternalError => {
            tracing::error!(error = detail, "OCSP request failed");
            (StatusCode::INTERNAL_SERVER_ERROR, None)
        }
    };
    let mut response = (status, failure.to_der()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::routes::ocsp::OCSP_RESPONSE),
    );
    // An error is about this moment, never to be reused.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(v) = retry_after {
        headers.insert(header::RETRY_AFTER, v);
    }
    response
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => ApiError::Unavailable,
            other => ApiError::Internal(format!("registry: {other}")),
        }
    }
}

impl From<idprov_core::CoreError> for ApiError {
    fn from(e: idprov_core::CoreError) -> Self {
        match e {
            idprov_core::CoreError::Invalid(m) => ApiError::BadRequest(m),
            idprov_core::CoreError::Store(s) => s.into(),
            e @ idprov_core::CoreError::Issue(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<idprov_proto::MessageError> for ApiError {
    fn from(e: idprov_proto::MessageError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut field = None;
        let mut challenge = None;
        let (status, message, retry_after) = match self {
            ApiError::Ocsp { failure, detail } => return ocsp_failure(failure, &detail),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m, None),
            ApiError::Invalid { field: f, message } => {
                field = Some(f);
                (StatusCode::BAD_REQUEST, message, None)
            }
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "a client certificate issued by this server's CA is required".to_owned(),
                None,
            ),
            ApiError::SignIn(m) => (StatusCode::UNAUTHORIZED, m.to_owned(), None),
            ApiError::BasicAuth(m) => {
                challenge = Some(BASIC_CHALLENGE);
                (StatusCode::UNAUTHORIZED, m.to_owned(), None)
            }
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m.to_owned(), None),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m.to_owned(), None),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this path".to_owned(),
                None,
            ),
            ApiError::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds the limit of {limit} bytes for this path"),
                None,
            ),
            ApiError::UnsupportedMediaType(m) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, m.to_owned(), None)
            }
            ApiError::TooManyRequests {
                retry_after,
                reason,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("{reason}; retry after {retry_after} seconds"),
                Some(retry_after.max(1)),
            ),
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the server log".to_owned(),
                    None,
                )
            }
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down or its registry is unavailable".to_owned(),
                Some(5),
            ),
            ApiError::Busy {
                retry_after,
                reason,
            } => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{reason}; retry after {retry_after} seconds"),
                Some(retry_after.max(1)),
            ),
        };
        let body = ErrorDocument {
            error: message,
            status: status.as_u16(),
            field: field.map(str::to_owned),
        };
        // Strings and a number: encoding cannot fail.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, crate::routes::json_bytes(bytes)).into_response();
        if let Some(secs) = retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

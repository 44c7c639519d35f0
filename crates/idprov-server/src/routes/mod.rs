//! The HTTP surface: one file per operation, assembled by [`router`].
//!
//! Each handler reads like a recipe: extract, parse into domain types,
//! authorize, act, respond. Errors become responses only in
//! [`crate::error::ApiError`].

mod admin;
pub mod api_doc;
mod crl;
mod directory;
pub mod est;
mod health;
pub(crate) mod ocsp;
pub(crate) mod oobsecret;
pub(crate) mod provreq;
mod status;
mod v2;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower_http::request_id::PropagateRequestIdLayer;
use tower_http::set_header::{SetRequestHeaderLayer, SetResponseHeaderLayer};

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

/// The OpenAPI document of these routes (`docs/openapi.json`, committed).
///
/// Served as committed rather than generated from [`api_doc::ApiDoc`] at
/// start: the bytes served are the reviewed file, built once at compile
/// time, and a test proves the file is exactly what the types generate.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.json");

/// Every (method, path) the router serves. A test checks that the OpenAPI
/// document describes exactly these, and that each is routed.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/idprov/directory"),
    ("post", "/idprov/oobsecret"),
    ("post", "/idprov/provreq"),
    ("get", "/idprov/status/{deviceID}"),
    ("post", "/idprov/v2/params"),
    ("post", "/idprov/v2/start"),
    ("post", "/idprov/v2/finish"),
    ("get", "/idprov/crl"),
    ("get", "/idprov/crl/{ca}"),
    ("post", "/idprov/ocsp"),
    ("get", "/idprov/ocsp/{request}"),
    ("get", "/idprov/openapi.json"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/.well-known/est/cacerts"),
    ("get", "/.well-known/est/csrattrs"),
    ("post", "/.well-known/est/simpleenroll"),
    ("post", "/.well-known/est/simplereenroll"),
    ("get", "/idprov/admin/devices"),
    ("get", "/idprov/admin/devices/{deviceID}"),
    ("delete", "/idprov/admin/devices/{deviceID}"),
    ("post", "/idprov/admin/devices/{deviceID}/revoke"),
    ("post", "/idprov/admin/devices/{deviceID}/unlock"),
    ("get", "/idprov/admin/oob"),
    ("get", "/idprov/admin/oob/export"),
    ("post", "/idprov/admin/oob/import"),
    ("delete", "/idprov/admin/oob/{deviceID}"),
    ("get", "/idprov/admin/requests"),
    ("get", "/idprov/admin/requests/status"),
    ("post", "/idprov/admin/requests/{deviceID}/approve"),
    ("post", "/idprov/admin/requests/{deviceID}/reject"),
    ("post", "/idprov/admin/requests/{deviceID}/clear"),
    ("get", "/idprov/admin/audit"),
    ("get", "/idprov/admin/audit/checkpoints"),
    ("post", "/idprov/admin/audit/checkpoints"),
    ("get", "/idprov/admin/credentials"),
    ("post", "/idprov/admin/credentials"),
    ("post", "/idprov/admin/credentials/{ou}/{cn}/revoke"),
    ("get", "/idprov/admin/summary"),
    ("get", "/idprov/admin/audit/status"),
    ("post", "/idprov/admin/labels"),
    ("post", "/idprov/admin/labels/check"),
    ("post", "/idprov/admin/labels/secret"),
    ("post", "/idprov/admin/web/passwords"),
    ("delete", "/idprov/admin/web/passwords/{name}"),
    ("get", "/admin/api/session"),
    ("post", "/admin/api/signin"),
    ("post", "/admin/api/signout"),
    ("post", "/admin/api/password"),
];

#[utoipa::path(
    get,
    path = "/idprov/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    summary = "This document",
    security(()),
    responses((status = 200, description = "OpenAPI document", body = api_doc::OpenApiDocument)),
)]
async fn openapi() -> Response {
    let mut r = json_bytes(OPENAPI);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

/// Where the CRL is served (both listeners).
pub const CRL_PATH: &str = "/idprov/crl";
/// Where the OCSP responder answers (both listeners); a GET appends the
/// request.
pub const OCSP_PATH: &str = "/idprov/ocsp";

/// The revocation routes (CRL, OCSP), limited per source.
fn revocation_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route(CRL_PATH, get(crl::get))
        .route(&format!("{CRL_PATH}/{{ca}}"), get(crl::get_of))
        .route(OCSP_PATH, post(ocsp::post))
        .route(&format!("{OCSP_PATH}/{{*request}}"), get(ocsp::get))
        .route_layer(from_fn_with_state(state, limit_revocation))
}

/// Requests to the revocation routes per source
/// (`revocation.rate`/`burst`): 429 with `Retry-After` beyond.
async fn limit_revocation(
    State(app): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    if let Some(conn) = req.extensions().get::<crate::auth::ConnInfo>()
        && let Err(wait) = app
            .revocation_limiter
            .check(conn.peer.ip(), std::time::Instant::now())
    {
        app.note_limited(conn.peer.ip(), "revocation_rate");
        return Err(ApiError::TooManyRequests {
            retry_after: wait.as_secs().max(1),
            reason: "too many revocation requests from this address",
        });
    }
    Ok(next.run(req).await)
}

/// The layers every answer passes on both listeners: the request ID (the
/// server's own, returned to the client), the request's span and metrics,
/// and the headers every answer carries.
fn observed(router: Router<AppState>) -> Router<AppState> {
    router
        .layer(axum::middleware::from_fn(crate::observe::observe))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestHeaderLayer::overriding(
            X_REQUEST_ID.clone(),
            crate::observe::new_request_id,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}

/// The plain-HTTP revocation listener's router: the CRL and OCSP and
/// nothing else — every other path is 404, no administrative or
/// provisioning route, no authentication, no cookies.
pub fn revocation_router(state: AppState) -> Router {
    observed(
        revocation_routes(state.clone())
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed),
    )
    .with_state(state)
}

/// The whole router; tests can drive it without a socket.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route(idprov_proto::messages::DIRECTORY_PATH, get(directory::get))
        .route(
            idprov_proto::messages::PROVISION_REQUEST_PATH,
            post(provreq::post),
        )
        .route(idprov_proto::v2::PARAMS_PATH, post(v2::params))
        .route(idprov_proto::v2::START_PATH, post(v2::start))
        .route(idprov_proto::v2::FINISH_PATH, post(v2::finish))
        .route("/idprov/status/{device_id}", get(status::get))
        .merge(revocation_routes(state.clone()))
        .route("/idprov/openapi.json", get(openapi))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(est::router())
        .merge(admin_router(state.clone()))
        // The web page: its files, and its session API.
        .route("/admin", get(crate::web::redirect))
        .route("/admin/", get(crate::web::index))
        .route("/admin/assets/{*file}", get(crate::web::asset))
        .route("/admin/api/session", get(crate::web::session))
        .route("/admin/api/signin", post(crate::web::signin))
        .route("/admin/api/signout", post(crate::web::signout))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Runs after authentication: it needs to know whether a certificate
        // or a session cookie authenticated the request.
        .layer(from_fn_with_state(state.clone(), crate::web::guard))
        .layer(from_fn_with_state(state.clone(), auth::authenticate));
    // (The page's CSP and caching, which depend on the path, are set by
    // `web::guard`.)
    observed(routes)
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        // The page is never served in plain HTTP: a browser that once
        // reached it never tries it unencrypted (nor lets a user click
        // through a certificate warning for it). (The revocation listener
        // is plain HTTP on another port; relying parties fetching a CRL or
        // an OCSP answer do not apply HSTS.)
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
        .with_state(state)
}

/// `X-Request-Id`.
static X_REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// Every administrative route, under one layer that lets only an
/// administrator or plugin through (401 / 403 otherwise, before any
/// handler or lookup runs); the handlers get an [`auth::Admin`].
fn admin_router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            idprov_proto::messages::OOB_SECRET_PATH,
            post(oobsecret::post),
        )
        .route("/idprov/admin/devices", get(admin::devices::list))
        .route(
            "/idprov/admin/devices/{device_id}",
            get(admin::devices::show).delete(admin::devices::remove),
        )
        .route(
            "/idprov/admin/devices/{device_id}/revoke",
            post(admin::devices::revoke),
        )
        .route(
            "/idprov/admin/devices/{device_id}/unlock",
            post(admin::devices::unlock),
        )
        .route("/idprov/admin/oob", get(admin::secrets::list))
        .route("/idprov/admin/oob/export", get(admin::secrets::export))
        .route("/idprov/admin/oob/import", post(admin::import::ndjson))
        .route(
            "/idprov/admin/oob/{device_id}",
            delete(admin::secrets::remove),
        )
        .route("/idprov/admin/requests", get(admin::queue::list))
        .route("/idprov/admin/requests/status", get(admin::queue::status))
        .route(
            "/idprov/admin/requests/{device_id}/approve",
            post(admin::queue::approve),
        )
        .route(
            "/idprov/admin/requests/{device_id}/reject",
            post(admin::queue::reject),
        )
        .route(
            "/idprov/admin/requests/{device_id}/clear",
            post(admin::queue::clear),
        )
        .route("/idprov/admin/audit", get(admin::audit::list))
        .route(
            "/idprov/admin/audit/checkpoints",
            get(admin::audit::checkpoints).post(admin::audit::checkpoint_now),
        )
        .route(
            "/idprov/admin/credentials",
            get(admin::credentials::list).post(admin::credentials::issue),
        )
        .route(
            "/idprov/admin/credentials/{ou}/{cn}/revoke",
            post(admin::credentials::revoke),
        )
        .route("/idprov/admin/summary", get(admin::web::summary))
        .route("/idprov/admin/audit/status", get(admin::web::audit_status))
        .route("/idprov/admin/labels", post(admin::web::labels))
        .route("/idprov/admin/labels/check", post(admin::check::check))
        .route("/idprov/admin/labels/secret", post(admin::check::generate))
        .route(
            "/idprov/admin/web/passwords",
            post(admin::web::set_password),
        )
        .route(
            "/idprov/admin/web/passwords/{name}",
            delete(admin::web::remove_password),
        )
        .route("/admin/api/password", post(crate::web::own_password))
        .route_layer(from_fn_with_state(state, auth::require_admin))
}

/// Whether `(method, path)` of [`ROUTES`] is administrative (behind
/// [`admin_router`]'s layer): the route-table test checks each answers 401
/// without credentials and 403 to a device or service.
pub fn is_admin_route(method: &str, path: &str) -> bool {
    path.starts_with("/idprov/admin/")
        || (method == "post" && path == idprov_proto::messages::OOB_SECRET_PATH)
        || (method == "post" && path == "/admin/api/password")
}

/// The per-source rate limit of provisioning requests (idprov v1 and EST
/// enrollments alike); administrators and plugins requesting for devices
/// are exempt.
pub(crate) fn provisioning_rate(
    app: &AppState,
    conn: &auth::ConnInfo,
    caller: &auth::Caller,
) -> Result<(), ApiError> {
    let privileged = caller
        .verified()
        .is_some_and(|v| matches!(v.role, auth::Role::Admin | auth::Role::Plugin));
    if !privileged
        && let Err(wait) = app
            .provisioning_limiter
            .check(conn.peer.ip(), std::time::Instant::now())
    {
        app.note_limited(conn.peer.ip(), "provisioning_rate");
        return Err(ApiError::TooManyRequests {
            retry_after: wait.as_secs().max(1),
            reason: "too many provisioning requests from this address",
        });
    }
    Ok(())
}

/// The core's refusal (a lockout, a spent guess budget, too many waiting
/// requests) as the 429 every front door answers; a source's full share of
/// the queue is noted like the other per-source limits.
pub(crate) fn refused(
    app: &AppState,
    conn: &auth::ConnInfo,
    reason: idprov_core::Refusal,
    retry_after_secs: u64,
) -> ApiError {
    if reason == idprov_core::Refusal::WaitingFromSource {
        app.note_limited(conn.peer.ip(), "waiting_per_source");
    }
    ApiError::TooManyRequests {
        retry_after: retry_after_secs,
        reason: reason.message(),
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("unknown path")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// A JSON response from already-encoded bytes.
pub(crate) fn json_bytes(body: impl Into<Bytes>) -> Response {
    let mut r = Body::from(body.into()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A JSON response from a serializable value.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> Result<Response, ApiError> {
    serde_json::to_vec(value)
        .map(json_bytes)
        .map_err(|e| ApiError::Internal(format!("encoding a response: {e}")))
}

/// Reads a request body of at most `limit` bytes, within the configured
/// body timeout (`limits.body_timeout`): a client that sends its body slowly
/// holds a connection for at most that long. A declared length over the
/// limit is refused before anything is read; a chunked body is cut off at
/// the limit.
pub(crate) async fn read_body(
    app: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if let Some(len) = headers.get(header::CONTENT_LENGTH) {
        let len = len
            .to_str()
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| ApiError::BadRequest("invalid Content-Length header".into()))?;
        if len > limit as u64 {
            return Err(ApiError::PayloadTooLarge(limit));
        }
    }
    let read = tokio::time::timeout(
        app.config.body_timeout,
        http_body_util::Limited::new(body, limit).collect(),
    );
    match read.await {
        Err(_) => Err(ApiError::BadRequest(
            "the request body was not sent in time".into(),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::PayloadTooLarge(limit))
        }
        Ok(Err(_)) => Err(ApiError::BadRequest(
            "the request body could not be read".into(),
        )),
    }
}

/// `?after=…&limit=…` of listings.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// The `next` value of the previous page.
    pub after: Option<String>,
    /// Entries per page.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<u32>,
}

/// Default and largest page sizes of admin listings.
pub(crate) const PAGE_DEFAULT: u32 = 100;
pub(crate) const PAGE_MAX: u32 = 1000;

impl PageQuery {
    pub(crate) fn page(&self) -> Result<idprov_store::Page, ApiError> {
        Ok(idprov_store::Page {
            after: self.after.clone(),
            limit: page_limit(self.limit, PAGE_MAX)?,
        })
    }
}

/// A listing's `limit` parameter: [`PAGE_DEFAULT`] when absent, else
/// between 1 and `max`.
pub(crate) fn page_limit(limit: Option<u32>, max: u32) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(PAGE_DEFAULT);
    if limit == 0 || limit > max {
        return Err(ApiError::BadRequest(format!(
            "query parameter \"limit\" must be between 1 and {max}"
        )));
    }
    Ok(limit)
}

/// The query string, parsed strictly: a bad one is a JSON 400.
pub(crate) fn query<T>(
    q: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|axum::extract::Query(q)| q)
        .map_err(|e| ApiError::BadRequest(format!("query: {}", e.body_text())))
}

/// Parses the query string strictly, answering bad ones with a JSON 400.
pub(crate) fn page_query(
    q: Result<axum::extract::Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<idprov_store::Page, ApiError> {
    query(q)?.page()
}

/// RFC 3339 in UTC.
pub(crate) fn rfc3339(unix: idprov_proto::UnixTime) -> String {
    OffsetDateTime::from_unix_timestamp(unix.secs())
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

//! `/healthz`, `/readyz` (unauthenticated, status only) and `/metrics`
//! (a certificate with OU admin or service, unless configured public).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::state::AppState;

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "meta",
    summary = "Liveness: the process answers",
    security(()),
    responses((status = 200, description = "ok", body = String, content_type = "text/plain")),
)]
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// The registry answers and the CA can sign.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "meta",
    summary = "Readiness: the registry answers and the CA can sign",
    security(()),
    responses(
        (status = 200, description = "ready", body = String, content_type = "text/plain"),
        (status = 503, description = "not ready", body = String, content_type = "text/plain"),
    ),
)]
pub(crate) async fn readyz(State(app): State<AppState>) -> Response {
    let db = app.registry.audit_head().await.is_ok();
    let ca = app.ca.sign(b"readiness").is_ok();
    if db && ca {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "meta",
    summary = "Prometheus metrics (a certificate with OU admin or service, unless admin.metrics_public)",
    security(("clientCertificate" = [])),
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "No client certificate", body = crate::error::ErrorDocument),
        (status = 403, description = "Not an admin or service certificate", body = crate::error::ErrorDocument),
    ),
)]
pub(crate) async fn metrics(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    if !app.config.metrics_public {
        match &caller {
            Caller::Verified(v) if matches!(v.role, Role::Admin | Role::Service) => {}
            Caller::Verified(_) => {
                return Err(ApiError::Forbidden(
                    "metrics need an admin or service certificate",
                ));
            }
            Caller::Refused(why) => return Err(ApiError::Forbidden(why)),
            Caller::Anonymous => return Err(ApiError::Unauthenticated),
        }
    }
    let now = app.now_unix();
    if let Ok(g) = app.registry.gauges(now, now.plus_secs(7 * 86_400)).await {
        metrics::gauge!(crate::observe::WAITING).set(g.waiting as f64);
        metrics::gauge!(crate::observe::EXPIRING_SOON).set(g.expiring as f64);
    }
    metrics::gauge!(crate::observe::CONNECTIONS).set(f64::from(app.connection_limits.open()));
    let mut r = crate::observe::prometheus().render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(r)
}

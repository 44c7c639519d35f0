//! `/healthz`, `/readyz` (unauthenticated, status only) and `/metrics`
//! (a certificate with OU admin or service, unless configured public).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::state::AppState;

/// The process is up.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// The registry answers and the CA can sign.
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
    if let Ok(g) = app.registry.gauges(now, now + 7 * 86_400).await {
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

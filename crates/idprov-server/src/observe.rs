//! Observability: Prometheus metrics, a request ID and span on every
//! request, and the names of what is measured.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

use crate::auth::ConnInfo;

/// Requests by endpoint and status.
pub const REQUESTS: &str = "idprov_requests_total";
/// Request durations by endpoint.
pub const REQUEST_SECONDS: &str = "idprov_request_duration_seconds";
/// The metrics the provisioning core counts.
pub use idprov_core::metrics::{
    CERTIFICATES_ISSUED, GUESS_BUDGET_REFUSALS, LOCKOUTS, QUEUE_EVICTED, QUEUE_FULL, QUEUE_IS_FULL,
};
/// Provisioning outcomes (approved, waiting, rejected, locked_out).
pub const PROVISIONING: &str = "idprov_provisioning_total";
/// idprov v2 provisioning outcomes (approved, waiting, rejected, locked_out).
pub const PROVISIONING_V2: &str = "idprov_provisioning_v2_total";
/// EST requests by operation and outcome (`routes::est`).
pub const EST_REQUESTS: &str = "idprov_est_requests_total";
/// Certificates revoked.
pub const CERTIFICATES_REVOKED: &str = "idprov_certificates_revoked_total";
/// Idle connections closed to make room near the connection total.
pub const CONNECTIONS_RECLAIMED: &str = "idprov_connections_reclaimed_total";
/// Requests and connections refused by a rate or connection limit, by limit.
pub const RATE_LIMITED: &str = "idprov_rate_limited_total";
/// TLS handshakes that failed, by reason.
pub const HANDSHAKE_FAILURES: &str = "idprov_tls_handshake_failures_total";
/// Registry commit latency.
pub const DB_COMMIT_SECONDS: &str = "idprov_db_commit_seconds";
/// Waiting requests in the queue.
pub const WAITING: &str = "idprov_waiting_requests";
/// Device certificates valid now that expire within 7 days.
pub const EXPIRING_SOON: &str = "idprov_certificates_expiring_soon";
/// Open connections of the TLS listener.
pub const CONNECTIONS: &str = "idprov_open_connections";
/// OCSP answers: per certificate asked about (good, revoked, unknown), or
/// per request for an unsigned failure (malformed, unauthorized,
/// try_later, internal_error).
pub const OCSP_ANSWERS: &str = "idprov_ocsp_answers_total";
/// OCSP answers served from the cache of signed answers (not signed again).
pub const OCSP_CACHE_HITS: &str = "idprov_ocsp_cache_hits_total";
/// Runs of the `crl.on_publish` command, by result (ok, failed, timeout).
pub const CRL_HOOK_RUNS: &str = "idprov_crl_hook_runs_total";

/// The process-wide Prometheus recorder (installed once).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed (an embedding program's): render
            // ours anyway, it just will not see our measurements.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// A fresh request ID: 8 random bytes in hex. The server always makes its
/// own (a client's `X-Request-Id` is replaced, never written into the logs).
pub fn new_request_id<B>(_: &axum::http::Request<B>) -> Option<HeaderValue> {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).ok()?;
    HeaderValue::from_str(&hex::encode(b)).ok()
}

/// Middleware: a span carrying the request ID (set by the layers of
/// [`crate::routes::router`], returned as `X-Request-Id`) on every line of
/// the request, and the request metrics.
pub async fn observe(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let peer = req
        .extensions()
        .get::<ConnInfo>()
        .map(|c| c.peer.ip().to_string())
        .unwrap_or_default();
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), endpoint = %endpoint, peer = %peer);
    let started = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    // The access log, at debug: one line per request, inside its span.
    tracing::debug!(
        parent: &span,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request handled"
    );
    let status = response.status().as_u16().to_string();
    metrics::counter!(REQUESTS, "endpoint" => endpoint.clone(), "status" => status).increment(1);
    metrics::histogram!(REQUEST_SECONDS, "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    response
}

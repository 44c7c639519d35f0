//! `POST /idprov/provreq`: a device asks for a certificate (PROTOCOL.md §6).
//! Approved, Waiting and Rejected are all HTTP 200; a lockout is a 429.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use idprov_proto::sign::KeyVariant;
use idprov_proto::{ProvisionRequest, ProvisionResponse, ProvisionStatus};

use crate::auth::{Caller, ConnInfo};
use crate::decision::{Outcome, ResponseKey, ValidRequest, decide};
use crate::error::ApiError;
use crate::routes::json_bytes;
use crate::state::AppState;

pub(crate) async fn post(
    State(app): State<AppState>,
    conn: ConnInfo,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Per-source rate limit; administrators requesting for devices are exempt.
    let privileged = caller
        .verified()
        .is_some_and(|v| matches!(v.role, crate::auth::Role::Admin | crate::auth::Role::Plugin));
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
    // The body is JSON whatever its Content-Type: Go clients may send none.
    let bytes = crate::routes::read_body(&app, &headers, body, app.config.body_limit).await?;
    let request = ValidRequest::parse(ProvisionRequest::from_json(&bytes)?, &app.config)?;
    let outcome = match decide(&app, &caller, conn.peer.ip(), &request).await {
        Ok(o) => o,
        Err(e) => {
            if let ApiError::TooManyRequests { .. } = e {
                metrics::counter!(crate::observe::PROVISIONING, "outcome" => "locked_out")
                    .increment(1);
            }
            return Err(e);
        }
    };
    let label = match &outcome {
        Outcome::Approved { .. } => "approved",
        Outcome::Waiting => "waiting",
        Outcome::Rejected { .. } => "rejected",
    };
    metrics::counter!(crate::observe::PROVISIONING, "outcome" => label).increment(1);
    let mut response = ProvisionResponse {
        retry_sec: 0,
        status: ProvisionStatus::Waiting,
        ca_cert: app.ca.chain_pem().to_owned(),
        client_cert: String::new(),
        signature: String::new(),
    };
    match outcome {
        Outcome::Approved {
            client_cert,
            retry_sec,
            key,
        } => {
            response.status = ProvisionStatus::Approved;
            response.retry_sec = retry_sec;
            response.client_cert = client_cert;
            match key {
                ResponseKey::Empty => response.sign(b"", KeyVariant::RawSecret),
                ResponseKey::Secret(secret, variant) => {
                    response.sign(secret.expose().as_bytes(), variant)
                }
            }
        }
        Outcome::Waiting => {
            response.retry_sec =
                i64::try_from(app.config.waiting_retry.as_secs()).unwrap_or(i64::MAX);
        }
        Outcome::Rejected { retry_sec } => {
            response.status = ProvisionStatus::Rejected;
            response.retry_sec = retry_sec;
        }
    }
    Ok(json_bytes(response.to_json()))
}

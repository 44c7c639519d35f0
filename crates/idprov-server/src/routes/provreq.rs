//! `POST /idprov/provreq`: idprov v1's front door (PROTOCOL.md §3–§6). The
//! only place that knows the v1 JSON: it parses the message into the
//! core's [`idprov_core::Request`], lets the core decide, and writes the
//! [`idprov_core::Outcome`] back as the v1 answer. Approved, Waiting and
//! Rejected are all HTTP 200; a refusal (lockout, spent guess budget, too
//! many waiting requests from a source) is a 429.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use idprov_ca::PublicKey;
use idprov_core::{AnswerKey, Claimed, Outcome, Proof, Request};
use idprov_proto::kinds::Protocol;
use idprov_proto::sign::KeyVariant;
use idprov_proto::{DeviceId, ProvisionRequest, ProvisionResponse, ProvisionStatus};

use crate::auth::{Caller, ConnInfo};
use crate::error::ApiError;
use crate::routes::json_bytes;
use crate::state::AppState;

/// The longest `ip` and `mac` free text accepted, in bytes.
pub const MAX_FREE_TEXT: usize = 255;

/// Parses a v1 message into the core's request: device-ID syntax,
/// free-text lengths, the public key (400 naming the field otherwise).
pub(crate) fn parse(
    message: ProvisionRequest,
    caller: &Caller,
    conn: &ConnInfo,
) -> Result<Request, ApiError> {
    let device_id = DeviceId::parse(&message.device_id)
        .map_err(|e| ApiError::BadRequest(format!("field \"deviceID\": {e}")))?;
    for (field, value) in [("ip", &message.ip), ("mac", &message.mac)] {
        if value.len() > MAX_FREE_TEXT {
            return Err(ApiError::BadRequest(format!(
                "field \"{field}\": longer than {MAX_FREE_TEXT} bytes"
            )));
        }
        // Free text, but never NUL: no database text type holds it
        // (PostgreSQL refuses it), and no address contains it.
        if value.contains('\0') {
            return Err(ApiError::BadRequest(format!(
                "field \"{field}\": contains a NUL character"
            )));
        }
    }
    let key = PublicKey::from_pem(&message.public_key_pem)
        .map_err(|e| ApiError::BadRequest(format!("field \"publicKeyPEM\": {e}")))?;
    Ok(Request {
        device_id,
        key,
        claimed: Claimed {
            ip: message.ip.clone(),
            mac: message.mac.clone(),
        },
        source: conn.peer.ip(),
        caller: caller.verified().map(crate::auth::VerifiedCaller::identity),
        proof: Proof::V1(message),
        protocol: Protocol::V1,
    })
}

#[utoipa::path(
    post,
    path = "/idprov/provreq",
    operation_id = "provisionRequest",
    tag = "protocol",
    summary = "A device asks for a certificate (PROTOCOL.md §6)",
    description = "The body is JSON whatever its Content-Type. Approved, Waiting and Rejected are all 200.",
    security((), ("clientCertificate" = [])),
    request_body = ProvisionRequest,
    responses(
        (status = 200, description = "Approved, Waiting or Rejected", body = ProvisionResponse),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 413, response = crate::routes::api_doc::PayloadTooLarge),
        (status = 429, response = crate::routes::api_doc::TooManyRequests),
    ),
)]
pub(crate) async fn post(
    State(app): State<AppState>,
    conn: ConnInfo,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    crate::routes::provisioning_rate(&app, &conn, &caller)?;
    // The body is JSON whatever its Content-Type: Go clients may send none.
    let bytes = crate::routes::read_body(&app, &headers, body, app.config.body_limit).await?;
    let request = parse(ProvisionRequest::from_json(&bytes)?, &caller, &conn)?;
    let outcome = app.core.provision(&request).await?;
    answer(&app, &conn, outcome, crate::observe::PROVISIONING)
}

/// The core's decision as a provisioning response (v1's form, which v2's
/// last answer shares), counted in `metric` by outcome: Approved, Waiting
/// and Rejected are 200, a refusal is a 429.
pub(crate) fn answer(
    app: &AppState,
    conn: &ConnInfo,
    outcome: Outcome,
    metric: &'static str,
) -> Result<Response, ApiError> {
    let label = match &outcome {
        Outcome::Approved(_) => "approved",
        Outcome::Waiting { .. } => "waiting",
        Outcome::Rejected { .. } => "rejected",
        Outcome::Refused { .. } => "locked_out",
    };
    metrics::counter!(metric, "outcome" => label).increment(1);
    let mut response = ProvisionResponse {
        retry_sec: 0,
        status: ProvisionStatus::Waiting,
        ca_cert: app.ca.chain_pem().to_owned(),
        client_cert: String::new(),
        signature: String::new(),
    };
    let secs = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
    match outcome {
        Outcome::Approved(issued) => {
            response.status = ProvisionStatus::Approved;
            response.retry_sec = issued.renew_after_secs;
            response.client_cert = issued.chain_pem;
            let signed = match issued.key {
                AnswerKey::Empty => response.signed_json(b"", KeyVariant::RawSecret),
                AnswerKey::Secret(secret, variant) => {
                    response.signed_json(secret.expose().as_bytes(), variant)
                }
                // v2: the run's answer key (`sign_v2`'s form), in one pass.
                AnswerKey::Session(key) => response.signed_json(key.bytes(), KeyVariant::RawSecret),
            };
            return Ok(json_bytes(signed));
        }
        Outcome::Waiting { retry_secs } => response.retry_sec = secs(retry_secs),
        // v1 answers every rejection alike.
        Outcome::Rejected { retry_secs, .. } => {
            response.status = ProvisionStatus::Rejected;
            response.retry_sec = secs(retry_secs);
        }
        Outcome::Refused {
            reason,
            retry_after_secs,
        } => {
            return Err(crate::routes::refused(app, conn, reason, retry_after_secs));
        }
    }
    Ok(json_bytes(response.to_json()))
}

//! idprov v2's front door (PROTOCOL.md §11): SPAKE2+ first contact in three
//! posts on one TLS 1.3 connection. `params` gives the device its KDF
//! parameters, `start` answers its `shareP`, `finish` takes its
//! confirmation and provisioning request. The only place that knows the v2
//! JSON: the core keeps the runs and decides ([`idprov_core::Provisioner`]'s
//! `pake_*` and `provision`); the last answer is v1's response, signed with
//! the run's key. A client certificate is never looked at here: v2 is first
//! contact, renewal stays v1 over mutual TLS.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use idprov_proto::kinds::Protocol;
use idprov_proto::v2::{FinishRequest, ParamsRequest, ParamsResponse, StartRequest, StartResponse};
use idprov_proto::{DeviceId, ProvisionResponse};

use crate::auth::{Caller, ConnInfo};
use crate::error::ApiError;
use crate::routes::json_bytes;
use crate::routes::provreq::{answer, parse};
use crate::state::AppState;

/// What every v2 post does first: refused when v2 is switched off (its
/// paths are then unknown), the provisioning rate limit (v2 is first
/// contact, never privileged), the body within the limit.
async fn admitted(
    app: &AppState,
    conn: &ConnInfo,
    headers: &HeaderMap,
    body: Body,
) -> Result<bytes::Bytes, ApiError> {
    if !app.config.v2 {
        return Err(ApiError::NotFound("not found"));
    }
    crate::routes::provisioning_rate(app, conn, &Caller::Anonymous)?;
    crate::routes::read_body(app, headers, body, app.config.body_limit).await
}

fn device_id(text: &str) -> Result<DeviceId, ApiError> {
    DeviceId::parse(text).map_err(|e| ApiError::BadRequest(format!("field \"deviceID\": {e}")))
}

/// The connection's exporter value: v2 runs only over TLS 1.3.
fn exporter(conn: &ConnInfo) -> Result<[u8; idprov_proto::v2::EXPORTER_LEN], ApiError> {
    conn.exporter.ok_or_else(|| {
        ApiError::BadRequest(
            "idprov v2 needs TLS 1.3 (its runs are bound to the connection's exporter)".into(),
        )
    })
}

#[utoipa::path(
    post,
    path = "/idprov/v2/params",
    operation_id = "pakeParams",
    tag = "protocol",
    summary = "idprov v2: a device's KDF parameters (PROTOCOL.md §11.2)",
    description = "Unknown device IDs get answers of the same form as known ones.",
    security(()),
    request_body = ParamsRequest,
    responses(
        (status = 200, description = "Salt and iterations", body = ParamsResponse),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 404, response = crate::routes::api_doc::NotFound),
        (status = 413, response = crate::routes::api_doc::PayloadTooLarge),
        (status = 429, response = crate::routes::api_doc::TooManyRequests),
    ),
)]
pub(crate) async fn params(
    State(app): State<AppState>,
    conn: ConnInfo,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = admitted(&app, &conn, &headers, body).await?;
    let msg = ParamsRequest::from_json(&bytes)?;
    let params = app.core.pake_params(&device_id(&msg.device_id)?).await?;
    Ok(json_bytes(ParamsResponse::new(&params).to_json()))
}

#[utoipa::path(
    post,
    path = "/idprov/v2/start",
    operation_id = "pakeStart",
    tag = "protocol",
    summary = "idprov v2: the server's share and confirmation (PROTOCOL.md §11.3)",
    description = "TLS 1.3 only; the run is kept for this connection until /idprov/v2/finish.",
    security(()),
    request_body = StartRequest,
    responses(
        (status = 200, description = "shareV and confirmV", body = StartResponse),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 404, response = crate::routes::api_doc::NotFound),
        (status = 413, response = crate::routes::api_doc::PayloadTooLarge),
        (status = 429, response = crate::routes::api_doc::TooManyRequests),
    ),
)]
pub(crate) async fn start(
    State(app): State<AppState>,
    conn: ConnInfo,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = admitted(&app, &conn, &headers, body).await?;
    let exporter = exporter(&conn)?;
    let (msg, share_p) = StartRequest::from_json(&bytes)?;
    let device = device_id(&msg.device_id)?;
    match app
        .core
        .pake_start(&device, &share_p, &exporter, conn.peer.ip())
        .await?
    {
        Ok((share_v, confirm_v)) => Ok(json_bytes(
            StartResponse::new(&share_v, &confirm_v).to_json(),
        )),
        Err((refusal, retry_after)) => {
            if refusal == idprov_core::Refusal::PakeSessions {
                app.note_limited(conn.peer.ip(), "pake_sessions");
            }
            Err(ApiError::TooManyRequests {
                retry_after,
                reason: refusal.message(),
            })
        }
    }
}

#[utoipa::path(
    post,
    path = "/idprov/v2/finish",
    operation_id = "pakeFinish",
    tag = "protocol",
    summary = "idprov v2: the device's confirmation and provisioning request (PROTOCOL.md §11.4)",
    description = "On the connection of its /idprov/v2/start. The answer is v1's, signed with the run's K_answer; a wrong confirmation is Rejected and counts as a wrong secret.",
    security(()),
    request_body = FinishRequest,
    responses(
        (status = 200, description = "Approved, Waiting or Rejected", body = ProvisionResponse),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 404, response = crate::routes::api_doc::NotFound),
        (status = 413, response = crate::routes::api_doc::PayloadTooLarge),
        (status = 429, response = crate::routes::api_doc::TooManyRequests),
    ),
)]
pub(crate) async fn finish(
    State(app): State<AppState>,
    conn: ConnInfo,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = admitted(&app, &conn, &headers, body).await?;
    let exporter = exporter(&conn)?;
    let (msg, confirm_p) = FinishRequest::from_json(&bytes)?;
    // v2 is first contact: whatever certificate the connection carries
    // authorizes nothing here.
    let mut request = parse(msg.request(), &Caller::Anonymous, &conn)?;
    request.proof = app.core.pake_finish(&msg, &confirm_p, &exporter)?;
    request.protocol = Protocol::V2;
    let outcome = app.core.provision(&request).await?;
    answer(&app, &conn, outcome, crate::observe::PROVISIONING_V2)
}

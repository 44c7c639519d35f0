//! `GET /idprov/status/{deviceID}`: an administrator, a plugin, or the device
//! itself reads a device's status (PROTOCOL.md §4 table).

use axum::extract::{Path, State};
use axum::response::Response;

use idprov_proto::{DeviceId, StatusMessage};

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::routes::json_bytes;
use crate::state::AppState;
use idprov_core::status_of;

#[utoipa::path(
    get,
    path = "/idprov/status/{deviceID}",
    operation_id = "status",
    tag = "protocol",
    summary = "A device's status",
    description = "Administrator, plugin, or the device itself (OU iotdevice, CN = deviceID). Authorization comes before the lookup.",
    params(("deviceID" = DeviceId, Path, description = "The device")),
    security(("clientCertificate" = [])),
    responses(
        (status = 200, description = "Status", body = StatusMessage),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 401, description = "No client certificate where one is needed", body = crate::error::ErrorDocument),
        (status = 403, response = crate::routes::api_doc::Forbidden),
        (status = 404, response = crate::routes::api_doc::NotFound),
    ),
)]
pub(crate) async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    // Authorization comes before any lookup, so a caller who may not read a
    // device learns nothing about whether it exists.
    let verified = match &caller {
        Caller::Anonymous => return Err(ApiError::Unauthenticated),
        Caller::Refused(why) => return Err(ApiError::Forbidden(why)),
        Caller::Verified(v) => v,
    };
    let device_id = DeviceId::parse(&raw_id)
        .map_err(|e| ApiError::BadRequest(format!("deviceID in the path: {e}")))?;
    let allowed = match verified.role {
        Role::Admin | Role::Plugin => true,
        Role::Device => verified.name == device_id.as_str(),
        Role::Service | Role::Client => false,
    };
    if !allowed {
        return Err(ApiError::Forbidden(
            "only an administrator, a plugin or the device itself may read this status",
        ));
    }
    let facts = app
        .registry
        .device(device_id.as_str(), app.now_unix())
        .await?
        .ok_or(ApiError::NotFound("unknown device"))?;
    let (status, cert) = status_of(&facts);
    let message = StatusMessage {
        device_id: device_id.into_string(),
        status,
        ca_cert: app.ca.chain_pem().to_owned(),
        client_cert: cert.map(|c| format!("{}{}", c.pem, app.ca.intermediates_pem())),
    };
    Ok(json_bytes(message.to_json()))
}

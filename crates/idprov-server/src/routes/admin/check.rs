//! What the web page asks before it registers a secret, so that it applies
//! the server's rules instead of copies of them: a label (scanned or
//! pasted) or a typed device ID and secret parsed and validated exactly as
//! a registration would be, and strong secrets from the server's
//! generator. Neither changes anything.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use idprov_proto::{Label, OobSecret, OobSecretMessage};

use super::json_body;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::routes::oobsecret::validate;
use crate::routes::{json, rfc3339};
use crate::state::AppState;

/// A strong secret from the server's generator ([`idprov_core::secrets::generate`]).
pub(crate) fn generate_secret() -> Result<OobSecret, ApiError> {
    idprov_core::secrets::generate().ok_or_else(|| ApiError::Internal("random generator".into()))
}

/// `{"label"}` or `{"deviceID", "oobSecret"}`, each with an optional
/// `validUntil`.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CheckRequest {
    label: Option<String>,
    #[serde(rename = "deviceID")]
    device_id: Option<String>,
    oob_secret: Option<String>,
    valid_until: Option<String>,
    /// For idprov v2 only (an `idprov:2` label implies it).
    #[serde(default)]
    pake_only: bool,
}

/// The registration the input stands for.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Checked {
    #[serde(rename = "deviceID")]
    device_id: String,
    /// The secret as registered (decoded, for a label).
    oob_secret: String,
    /// When it would expire (RFC 3339).
    valid_until: String,
    /// The label's CA fingerprint (canonical form), if it names one.
    ca_fingerprint: Option<String>,
    /// Whether that is this server's CA; `null` when the label names none.
    ca_matches: Option<bool>,
    /// The label URI for this device and secret, naming this server's CA
    /// (`idprov:2` for a v2-only registration).
    label: String,
    /// Whether it registers for idprov v2 only (asked, or an `idprov:2` label).
    pake_only: bool,
    warnings: Vec<String>,
}

/// `POST /idprov/admin/labels/check`: parses a label URI (PROTOCOL.md §9)
/// or a typed device ID and secret with the protocol crate's parsers and
/// the registration's own validation. A bad input is a 400 whose `field`
/// says which input is wrong (`label`, `deviceID`, `oobSecret`,
/// `validUntil`); errors never repeat the secret.
#[utoipa::path(
    post,
    path = "/idprov/admin/labels/check",
    operation_id = "checkLabel",
    tag = "secrets",
    summary = "Parse and validate a label or a typed device ID and secret as a registration would (changes nothing)",
    request_body = CheckRequest,
    responses(
        (status = 200, description = "The registration the input stands for", body = Checked),
        (status = 400, response = crate::routes::api_doc::BadRequest),
    ),
)]
pub(crate) async fn check(
    admin: Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let req: CheckRequest = json_body(app, &headers, body, app.config.body_limit).await?;
    let valid_until = req.valid_until.unwrap_or_default();
    let (message, ca, from_label) = match (req.label, req.device_id, req.oob_secret) {
        (Some(text), None, None) => {
            let label = Label::parse(&text).map_err(|e| ApiError::Invalid {
                field: "label",
                message: format!("field \"label\": {e}"),
            })?;
            let message = OobSecretMessage {
                device_id: label.device_id.into_string(),
                oob_secret: label.secret.expose().to_owned(),
                valid_until,
                pake_only: req.pake_only || label.version == 2,
            };
            (message, label.ca, true)
        }
        (None, Some(device_id), oob_secret) => {
            let message = OobSecretMessage {
                device_id,
                oob_secret: oob_secret.unwrap_or_default(),
                valid_until,
                pake_only: req.pake_only,
            };
            (message, None, false)
        }
        _ => {
            return Err(ApiError::BadRequest(
                "send {\"label\"} or {\"deviceID\", \"oobSecret\"} (each with an optional \"validUntil\")"
                    .into(),
            ));
        }
    };
    let now = app.now_unix();
    let reg = validate(&message, &app.config, now).map_err(|e| match e.field {
        // A label's device ID or secret is the label's fault.
        "deviceID" | "oobSecret" if from_label => ApiError::Invalid {
            field: "label",
            message: format!("the label's {}", e.message),
        },
        _ => e.into(),
    })?;
    let ours = app.ca.fingerprint();
    let checked = Checked {
        device_id: reg.device_id.to_string(),
        oob_secret: reg.secret.expose().to_owned(),
        valid_until: rfc3339(reg.valid_until),
        ca_fingerprint: ca.as_ref().map(ToString::to_string),
        ca_matches: ca.as_ref().map(|fp| fp.ct_eq(&ours)),
        label: Label {
            version: if message.pake_only { 2 } else { 1 },
            device_id: reg.device_id,
            secret: reg.secret,
            ca: Some(ours),
        }
        .to_uri(),
        pake_only: message.pake_only,
        warnings: reg.warnings,
    };
    json(&checked)
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Generated {
    oob_secret: String,
}

/// `POST /idprov/admin/labels/secret`: a new strong secret from the
/// server's generator, stored nowhere (the page registers it with
/// `/idprov/oobsecret` once it has shown it).
#[utoipa::path(
    post,
    path = "/idprov/admin/labels/secret",
    operation_id = "generateSecret",
    tag = "secrets",
    summary = "A new strong secret from the server's generator (stored nowhere)",
    responses(
        (status = 200, description = "26 Crockford base32 characters", body = Generated),
    ),
)]
pub(crate) async fn generate(_admin: Admin) -> Result<Response, ApiError> {
    let secret = generate_secret()?;
    json(&Generated {
        oob_secret: secret.expose().to_owned(),
    })
}

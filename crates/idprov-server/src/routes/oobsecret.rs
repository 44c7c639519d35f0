//! `POST /idprov/oobsecret`: an administrator or plugin registers a device's
//! out-of-band secret (replacing any previous one).

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use idprov_proto::admin::SecretAdded;
use idprov_proto::{DeviceId, OobSecret, OobSecretMessage};
use idprov_store::{AuditEvent, AuditOf};
use idprov_store::{NewSecret, PutSecretOutcome};

use crate::auth::Admin;
use crate::error::ApiError;
use crate::routes::{json, read_body, rfc3339};
use crate::state::AppState;

/// A secret registration that passed validation.
pub(crate) struct Registration {
    pub device_id: DeviceId,
    pub secret: OobSecret,
    pub valid_until: idprov_proto::UnixTime,
    pub warnings: Vec<String>,
}

/// Why a registration was refused: the field, and a message that names it.
#[derive(Debug)]
pub(crate) struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

/// Validates one `{"deviceID","oobSecret","validUntil"}`; the error names the field.
pub(crate) fn validate(
    msg: &OobSecretMessage,
    config: &crate::config::ServerConfig,
    now: idprov_proto::UnixTime,
) -> Result<Registration, FieldError> {
    let invalid = |field, message| FieldError { field, message };
    let device_id = DeviceId::parse(&msg.device_id)
        .map_err(|e| invalid("deviceID", format!("field \"deviceID\": {e}")))?;
    config
        .check_device_id("deviceID", device_id.as_str())
        .map_err(|m| invalid("deviceID", m))?;
    let secret = OobSecret::parse(&msg.oob_secret)
        .map_err(|e| invalid("oobSecret", format!("field \"oobSecret\": {e}")))?;
    let valid_until = if msg.valid_until.is_empty() {
        now.plus(config.secret_lifetime)
    } else {
        let t = OffsetDateTime::parse(&msg.valid_until, &Rfc3339).map_err(|_| {
            invalid(
                "validUntil",
                "field \"validUntil\": not an RFC 3339 time (e.g. 2026-12-01T12:00:00Z)".into(),
            )
        })?;
        let t = idprov_proto::UnixTime::from_secs(t.unix_timestamp());
        if t <= now {
            return Err(invalid(
                "validUntil",
                "field \"validUntil\": the time is in the past".into(),
            ));
        }
        t
    };
    let mut warnings = Vec::new();
    // A v2-only secret is never exposed to offline guessing from an exchange.
    if secret.is_short() && !msg.pake_only {
        warnings.push(format!(
            "the secret is shorter than {} characters: a captured exchange lets an attacker guess it offline",
            idprov_proto::secret::SHORT_SECRET_CHARS
        ));
    }
    Ok(Registration {
        device_id,
        secret,
        valid_until,
        warnings,
    })
}

/// Why a v2-only registration is refused when v2 is off.
pub(crate) const V2_OFF: &str =
    "field \"pakeOnly\": idprov v2 is switched off on this server (provisioning.v2)";

/// What a registration keeps (PROTOCOL.md §11.1): by default the sealed
/// secret (v1, and v2 derives its record from it); for v2 only the
/// verifier — a random salt, the KDF (on the blocking pool: milliseconds)
/// and the record sealed — and no form of the secret.
pub(crate) async fn sealed_forms(
    app: &AppState,
    device_id: &DeviceId,
    secret: &OobSecret,
    pake_only: bool,
) -> Result<(Vec<u8>, Option<idprov_store::PakeVerifier>), ApiError> {
    if !pake_only {
        let sealed = app
            .secrets()
            .seal(device_id.as_str(), secret)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        return Ok((sealed, None));
    }
    let (app, device, secret) = (app.clone(), device_id.to_string(), secret.clone());
    let verifier = tokio::task::spawn_blocking(move || {
        app.secrets()
            .pake_verifier(&device, &secret, app.config.v2_kdf_iterations)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((Vec::new(), Some(verifier)))
}

#[utoipa::path(
    post,
    path = "/idprov/oobsecret",
    operation_id = "registerSecret",
    tag = "protocol",
    summary = "Register (or replace) a device's OOB secret; a JSON array is a bulk post",
    description = "Administrator or plugin certificate (or an administrator's web session). One object: 64 KiB limit. An array: the bulk limits.",
    request_body = inline(crate::routes::api_doc::OobSecretBody),
    responses(
        (status = 200, description = "Registered", body = inline(crate::routes::api_doc::Registered)),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 413, response = crate::routes::api_doc::PayloadTooLarge),
    ),
)]
pub(crate) async fn post(
    admin: Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    // A JSON array is a bulk post (PROTOCOL.md §3 ext), with the bulk
    // limits; it is read only after the caller was authorized.
    if headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-ndjson"))
    {
        return Err(ApiError::BadRequest(
            "NDJSON goes to /idprov/admin/oob/import".into(),
        ));
    }
    // The caller is an administrator, so the bulk limit applies to what is
    // read; a single object must still fit the single-object limit.
    let bulk_limit = usize::try_from(app.config.bulk_bytes).unwrap_or(usize::MAX);
    let bytes = read_body(app, &headers, body, bulk_limit).await?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return crate::routes::admin::import::array(app, &admin.caller, bytes).await;
    }
    if bytes.len() > app.config.body_limit {
        return Err(ApiError::PayloadTooLarge(app.config.body_limit));
    }
    let msg = OobSecretMessage::from_json(&bytes)?;
    let now = app.now_unix();
    let reg = validate(&msg, &app.config, now)?;
    if msg.pake_only && !app.config.v2 {
        return Err(ApiError::Invalid {
            field: "pakeOnly",
            message: V2_OFF.into(),
        });
    }
    let (sealed, pake) = sealed_forms(app, &reg.device_id, &reg.secret, msg.pake_only).await?;
    let outcome = app
        .registry
        .put_secret(
            NewSecret {
                device_id: reg.device_id.to_string(),
                sealed,
                key_id: app.secrets().key_id().to_owned(),
                created_at: now,
                valid_until: reg.valid_until,
                created_by: admin.caller.actor.clone(),
                pake,
            },
            {
                let (caller, device) = (admin.caller.clone(), reg.device_id.to_string());
                let (valid_until, short) = (reg.valid_until, reg.secret.is_short());
                let v2_only = msg.pake_only.then_some(true);
                AuditOf::one(move |outcome: &PutSecretOutcome| {
                    caller.audit(
                        now,
                        AuditEvent::SecretAdded {
                            valid_until,
                            short: Some(short),
                            generated: None,
                            labels: None,
                            v2_only,
                            replaced: *outcome == PutSecretOutcome::Replaced,
                        },
                        Some(&device),
                    )
                })
            },
        )
        .await?;
    let replaced = outcome == PutSecretOutcome::Replaced;
    tracing::info!(
        device_id = %reg.device_id,
        actor = %admin.caller.actor,
        replaced,
        v2_only = msg.pake_only,
        "OOB secret registered"
    );
    json(&SecretAdded {
        device_id: reg.device_id.into_string(),
        valid_until: rfc3339(reg.valid_until),
        replaced,
        warnings: reg.warnings,
    })
}

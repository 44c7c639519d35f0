//! Admin endpoints the web page needs beyond the CLI's: the dashboard
//! summary, the audit chain's status, label sheets with new secrets, and
//! web passwords (set from the CLI over mutual TLS).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use idprov_proto::DeviceId;
use idprov_store::{
    AuditEvent, AuditFilter, AuditOf, BulkMessage, BulkOutcome, BulkSecret, NewSecret,
};
use sha2::{Digest, Sha256};

use super::json_body;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::routes::json;
use crate::state::AppState;

/// Most devices on one generated sheet.
const LABELS_MAX: usize = 1000;

/// `GET /idprov/admin/summary`: what the dashboard shows.
#[utoipa::path(
    get,
    path = "/idprov/admin/summary",
    operation_id = "summary",
    tag = "devices",
    summary = "The dashboard: devices by status, waiting requests, certificates expiring within 7 days, missed renewals, the newest audit entries",
    responses(
        (status = 200, description = "The summary", body = crate::routes::api_doc::Summary),
    ),
)]
pub(crate) async fn summary(admin: Admin) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let now = app.now_unix();
    let overview = app
        .registry
        .device_overview(now, now.plus_secs(7 * 86_400))
        .await?;
    let gauges = app.registry.gauges(now, now.plus_secs(7 * 86_400)).await?;
    // The newest entries: from ten before the head.
    let recent = match app.registry.audit_head().await? {
        Some((head, _)) => {
            let mut rows = app
                .registry
                .audit_query(&AuditFilter {
                    after: (head - 10).max(0),
                    limit: 10,
                    device_id: None,
                    event: None,
                    actor: None,
                    since: None,
                    until: None,
                })
                .await?;
            rows.reverse();
            rows.into_iter().map(super::audit::audit_view).collect()
        }
        None => Vec::new(),
    };
    json(&json!({
        "devices": {
            "total": overview.total,
            "approved": overview.approved,
            "waiting": overview.waiting,
            "rejected": overview.rejected,
            "revoked": overview.revoked,
        },
        "waitingRequests": gauges.waiting,
        "waitingQueue": super::queue::queue_status(app),
        "expiringWithin7Days": overview.expiring,
        "missedRenewal": overview.missed_renewal,
        "recentAudit": recent,
    }))
}

/// `GET /idprov/admin/audit/status`: the whole chain and every signed
/// checkpoint checked now, as `idprov audit verify` checks them.
#[utoipa::path(
    get,
    path = "/idprov/admin/audit/status",
    operation_id = "auditStatus",
    tag = "audit",
    summary = "The audit chain and every signed checkpoint, checked now",
    responses(
        (status = 200, description = "Whether the log verifies, and the first problem if not", body = crate::routes::api_doc::AuditStatus),
    ),
)]
pub(crate) async fn audit_status(admin: Admin) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let mut chain = Vec::new();
    loop {
        let after = chain.last().map_or(0, |e: &idprov_store::AuditEntry| e.seq);
        let batch = app.registry.audit_entries(after, 10_000).await?;
        if batch.is_empty() {
            break;
        }
        chain.extend(batch);
    }
    let checkpoints = app.registry.checkpoints().await?;
    // Checkpoints signed before a rollover verify with the CA of the time.
    let signers = app.ca.signing_history();
    let result = idprov_store::verify_log(&chain, &checkpoints, |message, signature| {
        idprov_ca::verify_signed_by_any(&signers, message, signature)
    });
    json(&json!({
        "entries": chain.len(),
        "verified": result.is_ok(),
        "message": result.as_ref().ok(),
        "error": result.as_ref().err(),
        "checkpoints": checkpoints.len(),
        "lastCheckpointSeq": checkpoints.last().map(|c| c.seq),
    }))
}

/// `POST /idprov/admin/labels`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LabelsRequest {
    /// The devices, each given a new secret (replacing theirs).
    #[serde(rename = "deviceIDs")]
    #[schema(min_items = 1, max_items = 1000)]
    device_ids: Vec<String>,
    /// The sheet's format.
    #[serde(default)]
    #[schema(value_type = Option<crate::routes::api_doc::LabelFormat>, default = "svg")]
    format: Option<String>,
    /// (ext) Register every device for idprov v2 only: the server keeps
    /// verifiers and no form of the secrets, and the labels say
    /// `idprov:2` (PROTOCOL.md §9, §11.1).
    #[serde(default)]
    pake_only: bool,
}

/// `POST /idprov/admin/labels`: new strong secrets for the given devices
/// (replacing theirs) and the printable sheet of their labels. The secrets
/// exist in clear only in the sheet returned; they are stored all at once,
/// in one transaction, after the sheet is made.
#[utoipa::path(
    post,
    path = "/idprov/admin/labels",
    operation_id = "labels",
    tag = "secrets",
    summary = "Generate new strong secrets for devices (replacing theirs) and return their printable label sheet",
    request_body = LabelsRequest,
    responses(
        (status = 200, description = "The sheet (the secrets exist in clear only there)", content(
            (String = "image/svg+xml"),
            (inline(crate::routes::api_doc::Binary) = "image/png"),
        )),
        (status = 400, response = crate::routes::api_doc::BadRequest),
    ),
)]
pub(crate) async fn labels(
    admin: Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let req: LabelsRequest = json_body(app, &headers, body, app.config.body_limit).await?;
    if req.device_ids.is_empty() || req.device_ids.len() > LABELS_MAX {
        return Err(ApiError::BadRequest(format!(
            "field \"deviceIDs\": between 1 and {LABELS_MAX} device IDs"
        )));
    }
    let png = match req.format.as_deref() {
        None | Some("svg") => false,
        Some("png") => true,
        Some(_) => return Err(ApiError::BadRequest("field \"format\": svg or png".into())),
    };
    if req.pake_only && !app.config.v2 {
        return Err(ApiError::Invalid {
            field: "pakeOnly",
            message: crate::routes::oobsecret::V2_OFF.into(),
        });
    }
    let mut ids = Vec::with_capacity(req.device_ids.len());
    for (i, raw) in req.device_ids.iter().enumerate() {
        let id = DeviceId::parse(raw)
            .map_err(|e| ApiError::BadRequest(format!("field \"deviceIDs\"[{i}]: {e}")))?;
        app.config
            .check_device_id(&format!("deviceIDs[{i}]"), id.as_str())
            .map_err(ApiError::BadRequest)?;
        if ids.contains(&id) {
            return Err(ApiError::BadRequest(format!(
                "field \"deviceIDs\"[{i}]: {raw} is repeated"
            )));
        }
        ids.push(id);
    }
    let now = app.now_unix();
    let valid_until = now.plus(app.config.secret_lifetime);
    let fingerprint = app.ca.fingerprint();
    // Every secret is made, sealed and printed before any is stored, and
    // all are stored in one transaction: the sheet is the only copy of
    // them in clear, so either every device gets its new secret and the
    // sheet is returned, or nothing changes (a failure part-way must not
    // leave secrets replaced whose sheet was never seen).
    let (tx, rx) = tokio::sync::mpsc::channel(ids.len() + 1);
    let mut digest = Sha256::new();
    let mut sheet = Vec::with_capacity(ids.len());
    for (index, id) in ids.iter().enumerate() {
        let secret = super::check::generate_secret()?;
        let (sealed, pake) =
            crate::routes::oobsecret::sealed_forms(app, id, &secret, req.pake_only).await?;
        // The same digest of the rows as a bulk import records.
        digest.update(id.as_str().as_bytes());
        digest.update(b"\n");
        digest.update(valid_until.to_string().as_bytes());
        digest.update(b"\n");
        if req.pake_only {
            digest.update(b"v2\n");
        }
        tx.try_send(BulkMessage::Row(BulkSecret {
            index: index as u64,
            secret: NewSecret {
                device_id: id.to_string(),
                sealed,
                key_id: app.secrets().key_id().to_owned(),
                created_at: now,
                valid_until,
                created_by: admin.caller.actor.clone(),
                pake,
            },
        }))
        .map_err(|_| ApiError::Internal("the label sheet's rows".into()))?;
        let uri = idprov_proto::Label {
            version: if req.pake_only { 2 } else { 1 },
            device_id: id.clone(),
            secret,
            ca: Some(fingerprint),
        }
        .to_uri();
        sheet.push(idprov_labels::Label {
            device_id: id.to_string(),
            uri,
        });
    }
    let count = sheet.len();
    let (bytes, mime, name) = if png {
        (
            idprov_labels::sheet_png(&sheet).map_err(|e| ApiError::Internal(e.to_string()))?,
            "image/png",
            "labels.png",
        )
    } else {
        (
            idprov_labels::sheet_svg(&sheet)
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .into_bytes(),
            "image/svg+xml",
            "labels.svg",
        )
    };
    tx.try_send(BulkMessage::End {
        rows_sha256: hex::encode(digest.finalize()),
    })
    .map_err(|_| ApiError::Internal("the label sheet's rows".into()))?;
    drop(tx);
    let device_ids: Vec<&str> = ids.iter().map(DeviceId::as_str).collect();
    let audit = {
        let caller = admin.caller.clone();
        let one = (ids.len() == 1).then(|| ids[0].to_string());
        let device_ids: Vec<String> = device_ids.iter().map(|d| (*d).to_owned()).collect();
        let v2_only = req.pake_only.then_some(true);
        AuditOf::one(move |outcome: &BulkOutcome| {
            caller.audit(
                now,
                AuditEvent::SecretsGenerated {
                    valid_until,
                    generated: true,
                    labels: true,
                    device_ids,
                    v2_only,
                    accepted: outcome.accepted,
                    replaced: outcome.replaced,
                    rejected: outcome.rejected.len() as u64,
                    rows_sha256: outcome.rows_sha256.clone(),
                },
                one.as_deref(),
            )
        })
    };
    let outcome = app
        .registry
        .put_secrets_bulk(rx, true, false, audit)
        .await?;
    if outcome.accepted != count as u64 || !outcome.rejected.is_empty() {
        // With `replace` the store refuses no row; if it ever did, the
        // sheet would not match the registry.
        return Err(ApiError::Internal(format!(
            "the registry stored {} of {count} label secrets",
            outcome.accepted
        )));
    }
    tracing::info!(actor = %admin.caller.actor, count, "generated secrets and a label sheet");
    let mut r = Body::from(bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
            .map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `POST /idprov/admin/web/passwords`.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordRequest {
    /// The administrator (1-64 of letters, digits, `. _ - @`).
    #[schema(pattern = "^[A-Za-z0-9._@-]{1,64}$")]
    name: String,
    /// The password: 12 characters or more (at most 1024 bytes).
    #[schema(min_length = 12)]
    password: String,
}

/// `POST /idprov/admin/web/passwords`: sets an administrator's web
/// password (`idprov admin password`).
#[utoipa::path(
    post,
    path = "/idprov/admin/web/passwords",
    operation_id = "setWebPassword",
    tag = "credentials",
    summary = "Set an administrator's web-page password (argon2id)",
    request_body = PasswordRequest,
    responses(
        (status = 204, description = "Set"),
        (status = 400, response = crate::routes::api_doc::BadRequest),
    ),
)]
pub(crate) async fn set_password(
    admin: Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    if admin.caller.role != crate::auth::Role::Admin {
        return Err(ApiError::Forbidden(
            "only an administrator sets web passwords",
        ));
    }
    let req: PasswordRequest = json_body(app, &headers, body, 4096).await?;
    crate::web::set_password(
        app,
        admin.caller.actor.clone(),
        &req.name,
        Zeroizing::new(req.password),
        None,
    )
    .await?;
    tracing::info!(actor = %admin.caller.actor, name = %req.name, "web password set");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /idprov/admin/web/passwords/{name}`: removes an administrator's
/// web password and ends their sessions (`idprov admin password NAME
/// --remove`).
#[utoipa::path(
    delete,
    path = "/idprov/admin/web/passwords/{name}",
    operation_id = "removeWebPassword",
    tag = "credentials",
    summary = "Remove an administrator's web-page password and end their sessions",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9._@-]{1,64}$", description = "The administrator")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 404, response = crate::routes::api_doc::NotFound),
    ),
)]
pub(crate) async fn remove_password(
    admin: Admin,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    if admin.caller.role != crate::auth::Role::Admin {
        return Err(ApiError::Forbidden(
            "only an administrator removes web passwords",
        ));
    }
    if !crate::web::valid_name(&name) {
        return Err(ApiError::BadRequest(
            "name: 1-64 characters of letters, digits, . _ - @".into(),
        ));
    }
    if !crate::web::remove_password(app, admin.caller.actor.clone(), &name, "removed").await? {
        return Err(ApiError::NotFound("no web password of that name"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

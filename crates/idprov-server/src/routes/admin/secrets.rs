//! OOB secrets: list (never the values), remove, export.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use idprov_proto::DeviceId;
use idprov_proto::admin::{ExportRow, Page, Removed, SecretView};
use idprov_store::AuditEvent;

use super::{device_id, next_of};
use crate::auth::{Admin, AdminVia, ConnInfo, Role};
use crate::error::ApiError;
use crate::routes::{PageQuery, json, page_query, rfc3339};
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/idprov/admin/oob",
    operation_id = "listSecrets",
    tag = "secrets",
    summary = "Registered secrets, never their values",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of secrets", body = Page<SecretView>),
        (status = 400, response = crate::routes::api_doc::BadRequest),
    ),
)]
pub(crate) async fn list(
    admin: Admin,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let page = page_query(q)?;
    let rows = app.registry.list_secrets(&page).await?;
    json(&Page {
        next: next_of(&rows, page.limit, |s| s.device_id.clone()),
        items: rows
            .iter()
            .map(|s| SecretView {
                device_id: s.device_id.clone(),
                created_at: rfc3339(s.created_at),
                valid_until: rfc3339(s.valid_until),
                created_by: s.created_by.clone(),
            })
            .collect(),
    })
}

#[utoipa::path(
    delete,
    path = "/idprov/admin/oob/{deviceID}",
    operation_id = "removeSecret",
    tag = "secrets",
    summary = "Remove a device's secret",
    params(("deviceID" = DeviceId, Path, description = "The device")),
    responses(
        (status = 200, description = "Removed", body = Removed),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 404, response = crate::routes::api_doc::NotFound),
    ),
)]
pub(crate) async fn remove(admin: Admin, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let id = device_id(&raw)?;
    let now = app.now_unix();
    let removed = app
        .registry
        .remove_secret(
            id.as_str(),
            admin
                .caller
                .audit(now, AuditEvent::SecretRemoved {}, Some(id.as_str())),
        )
        .await?;
    if !removed {
        return Err(ApiError::NotFound(
            "no secret is registered for this device",
        ));
    }
    tracing::info!(device_id = %id, actor = %admin.caller.actor, "OOB secret removed");
    json(&Removed { removed })
}

/// `?withSecrets=true`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportQuery {
    /// Include the secrets themselves: an administrator certificate, over
    /// loopback (unless `admin.export_secrets_loopback_only` is off);
    /// audited.
    with_secrets: Option<bool>,
}

/// `GET /idprov/admin/oob/export`: every live secret as NDJSON rows, the
/// secret itself only with `withSecrets=true`, which needs an administrator
/// certificate and (by default) a request over loopback, and is audited.
#[utoipa::path(
    get,
    path = "/idprov/admin/oob/export",
    operation_id = "exportSecrets",
    tag = "secrets",
    summary = "Live secrets as NDJSON rows; the secrets themselves only with withSecrets (administrator certificate, loopback, audited)",
    params(ExportQuery),
    responses(
        (status = 200, description = "Rows", body = ExportRow, content_type = "application/x-ndjson"),
        (status = 400, response = crate::routes::api_doc::BadRequest),
    ),
)]
pub(crate) async fn export(
    admin: Admin,
    conn: ConnInfo,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let q = crate::routes::query(q)?;
    let with_secrets = q.with_secrets.unwrap_or(false);
    if with_secrets {
        if admin.caller.role != Role::Admin || admin.caller.via != AdminVia::Certificate {
            return Err(ApiError::Forbidden(
                "an export with secrets needs an administrator certificate",
            ));
        }
        if app.config.export_secrets_loopback_only && !conn.peer.ip().is_loopback() {
            return Err(ApiError::Forbidden(
                "an export with secrets is answered only over loopback (admin.export_secrets_loopback_only)",
            ));
        }
    }
    let now = app.now_unix();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    let mut count: u64 = 0;
    loop {
        let page = idprov_store::Page {
            after: after.clone(),
            limit: 10_000,
        };
        let rows = app.registry.sealed_secrets(&page, now).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.device_id.clone());
        for r in &rows {
            let secret = if with_secrets {
                match app.secrets().open(&r.device_id, &r.sealed) {
                    Ok(s) => Some(s.expose().to_owned()),
                    Err(_) => continue,
                }
            } else {
                None
            };
            let row = ExportRow {
                device_id: r.device_id.clone(),
                oob_secret: secret,
                valid_until: rfc3339(r.valid_until),
            };
            serde_json::to_writer(&mut out, &row).map_err(|e| ApiError::Internal(e.to_string()))?;
            out.push(b'\n');
            count += 1;
        }
        if rows.len() < 10_000 {
            break;
        }
    }
    if with_secrets {
        app.registry
            .append_audit(admin.caller.audit(
                now,
                AuditEvent::SecretsExported {
                    count,
                    source: conn.peer.ip().to_string(),
                },
                None,
            ))
            .await?;
        tracing::warn!(actor = %admin.caller.actor, count, "secrets exported");
    }
    let mut resp = axum::body::Body::from(out).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

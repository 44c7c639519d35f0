//! The audit log: paged and filtered entries, and signed checkpoints.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::response::Response;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use idprov_proto::UnixTime;
use idprov_proto::admin::{AuditView, CheckpointView, Page};
use idprov_store::{AuditFilter, Checkpoint};

use crate::auth::Admin;
use crate::error::ApiError;
use crate::routes::{json, rfc3339};
use crate::state::AppState;

/// Largest page of audit entries.
const AUDIT_PAGE_MAX: u32 = 10_000;

/// `?after&limit&deviceID&event&actor&since&until` (times RFC 3339).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Entries after this sequence number (the `next` of the previous page).
    after: Option<i64>,
    /// Entries per page.
    #[param(minimum = 1, maximum = 10000, default = 100)]
    limit: Option<u32>,
    /// Only entries about this device.
    #[serde(rename = "deviceID")]
    device_id: Option<String>,
    /// Only entries of this event (e.g. `secret_added`).
    event: Option<String>,
    /// Only entries by this actor.
    actor: Option<String>,
    /// Only entries since this time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only entries until this time.
    #[param(format = DateTime)]
    until: Option<String>,
}

fn time_param(name: &str, v: Option<String>) -> Result<Option<UnixTime>, ApiError> {
    v.map(|t| {
        OffsetDateTime::parse(&t, &Rfc3339)
            .map(|t| UnixTime::from_secs(t.unix_timestamp()))
            .map_err(|_| {
                ApiError::BadRequest(format!(
                    "query parameter \"{name}\" is not an RFC 3339 time"
                ))
            })
    })
    .transpose()
}

#[utoipa::path(
    get,
    path = "/idprov/admin/audit",
    operation_id = "listAudit",
    tag = "audit",
    summary = "Audit entries, filtered and paged by sequence number",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries", body = Page<AuditView>),
        (status = 400, response = crate::routes::api_doc::BadRequest),
    ),
)]
pub(crate) async fn list(
    admin: Admin,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let q = crate::routes::query(q)?;
    let limit = crate::routes::page_limit(q.limit, AUDIT_PAGE_MAX)?;
    let filter = AuditFilter {
        after: q.after.unwrap_or(0),
        limit,
        device_id: q.device_id,
        event: q.event,
        actor: q.actor,
        since: time_param("since", q.since)?,
        until: time_param("until", q.until)?,
    };
    let rows = app.registry.audit_query(&filter).await?;
    json(&Page {
        next: super::next_of(&rows, limit, |e| e.seq.to_string()),
        items: rows.into_iter().map(audit_view).collect::<Vec<_>>(),
    })
}

/// An audit entry as the admin API shows it.
pub(crate) fn audit_view(e: idprov_store::AuditEntry) -> AuditView {
    AuditView {
        seq: e.seq,
        at: e.at,
        time: rfc3339(e.at),
        actor: e.actor,
        event: e.event,
        device_id: e.device_id,
        detail: e.detail,
        prev_hash: e.prev_hash,
        hash: e.hash,
    }
}

fn view(c: Checkpoint) -> CheckpointView {
    CheckpointView {
        seq: c.seq,
        head_hash: c.head_hash,
        at: c.at,
        signer: c.signer,
        signature: hex::encode(&c.signature),
    }
}

#[utoipa::path(
    get,
    path = "/idprov/admin/audit/checkpoints",
    operation_id = "listCheckpoints",
    tag = "audit",
    summary = "Signed checkpoints of the audit chain",
    responses(
        (status = 200, description = "Checkpoints", body = Vec<CheckpointView>),
    ),
)]
pub(crate) async fn checkpoints(admin: Admin) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let all: Vec<CheckpointView> = app
        .registry
        .checkpoints()
        .await?
        .into_iter()
        .map(view)
        .collect();
    json(&all)
}

/// Signs the current head now (an export ends with a fresh checkpoint).
#[utoipa::path(
    post,
    path = "/idprov/admin/audit/checkpoints",
    operation_id = "signCheckpoint",
    tag = "audit",
    summary = "Sign the chain's head now",
    responses(
        (status = 200, description = "The newest checkpoint (null while the log is empty)", body = Option<CheckpointView>),
    ),
)]
pub(crate) async fn checkpoint_now(admin: Admin) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let latest = crate::checkpoint::sign_head(app).await?;
    json(&latest.map(view))
}

//! The waiting queue: list, approve, reject, clear (PROTOCOL.md §6 4.2–4.3).

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::Response;

use idprov_proto::admin::{Decided, Decision, Page, WaitingView};
use idprov_proto::kinds::{DecisionKind, QueueState};
use idprov_proto::{DeviceId, KeyFingerprint};
use idprov_store::AuditEvent;

use super::{device_id, json_body, next_of};
use crate::auth::Admin;
use crate::error::ApiError;
use crate::routes::{PageQuery, json, page_query, rfc3339};
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/idprov/admin/requests",
    operation_id = "listRequests",
    tag = "requests",
    summary = "The waiting queue with each request's decision",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of requests", body = Page<WaitingView>),
        (status = 400, response = crate::routes::api_doc::BadRequest),
    ),
)]
pub(crate) async fn list(
    admin: Admin,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let page = page_query(q)?;
    let rows = app.registry.list_queue(&page, app.now_unix()).await?;
    json(&Page {
        next: next_of(&rows, page.limit, |e| {
            format!("{} {}", e.request.device_id, e.request.key_fingerprint)
        }),
        items: rows
            .iter()
            .map(|e| {
                let w = &e.request;
                let (state, decided_by) = match (&e.approval, &e.rejection) {
                    (_, Some(r)) => (QueueState::Rejected, Some(r.rejected_by.clone())),
                    (Some(a), None) => (QueueState::Approved, Some(a.approved_by.clone())),
                    (None, None) => (QueueState::Waiting, None),
                };
                WaitingView {
                    device_id: w.device_id.clone(),
                    key_fingerprint: w.key_fingerprint.clone(),
                    key_type: w.key_type.clone(),
                    claimed_ip: w.claimed_ip.clone(),
                    claimed_mac: w.claimed_mac.clone(),
                    source: w.source.clone(),
                    first_seen: rfc3339(w.first_seen),
                    last_seen: rfc3339(w.last_seen),
                    attempts: w.attempts,
                    protocol: Some(w.protocol),
                    state,
                    decided_by,
                    approval_expires_at: e.approval.as_ref().map(|a| rfc3339(a.expires_at)),
                    rejection_reason: e.rejection.as_ref().map(|r| r.reason.clone()),
                }
            })
            .collect(),
    })
}

/// The queue's fullness (as this replica saw it).
pub(crate) fn queue_status(app: &AppState) -> idprov_proto::admin::QueueStatus {
    let q = app.queue_state();
    idprov_proto::admin::QueueStatus {
        full: q.full_since.is_some(),
        full_since: q.full_since.map(rfc3339),
        not_recorded: q.not_recorded,
        evicted: q.evicted,
        capacity: app.config.waiting_caps.total,
    }
}

/// `GET /idprov/admin/requests/status`.
#[utoipa::path(
    get,
    path = "/idprov/admin/requests/status",
    operation_id = "requestQueueStatus",
    tag = "requests",
    summary = "Whether the waiting queue is full, since when, and how many requests were not recorded or evicted",
    responses(
        (status = 200, description = "The queue's state (as this replica saw it)", body = idprov_proto::admin::QueueStatus),
    ),
)]
pub(crate) async fn status(admin: Admin) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    json(&queue_status(app))
}

/// The keys a decision applies to: the one named, or the device's only
/// waiting key.
async fn keys_of(
    app: &AppState,
    device: &str,
    named: Option<String>,
) -> Result<Vec<KeyFingerprint>, ApiError> {
    let named = super::key_fingerprint_of(named.as_deref())?;
    let waiting: Vec<KeyFingerprint> = app
        .registry
        .waiting_for(device)
        .await?
        .into_iter()
        .map(|w| w.key_fingerprint)
        .collect();
    match named {
        Some(fp) if waiting.contains(&fp) => Ok(vec![fp]),
        Some(_) => Err(ApiError::NotFound(
            "no waiting request of this device has that key",
        )),
        None if waiting.is_empty() => Err(ApiError::NotFound("no waiting request for this device")),
        None if waiting.len() == 1 => Ok(waiting),
        None => Err(ApiError::BadRequest(format!(
            "this device has {} waiting keys; name one with \"keyFingerprint\": {}",
            waiting.len(),
            waiting
                .iter()
                .map(KeyFingerprint::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[utoipa::path(
    post,
    path = "/idprov/admin/requests/{deviceID}/approve",
    operation_id = "approveRequest",
    tag = "requests",
    summary = "Approve a waiting request's key: the next request with it is Approved",
    params(("deviceID" = DeviceId, Path, description = "The device")),
    request_body = Option<Decision>,
    responses(
        (status = 200, description = "Decided", body = Decided),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 404, response = crate::routes::api_doc::NotFound),
    ),
)]
pub(crate) async fn approve(
    admin: Admin,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let id = device_id(&raw)?;
    let req: Decision = json_body(app, &headers, body, app.config.body_limit).await?;
    let keys = keys_of(app, id.as_str(), req.key_fingerprint).await?;
    let now = app.now_unix();
    let expires = now.plus(app.config.approval_lifetime);
    for key in &keys {
        let approved = app
            .registry
            .approve(
                id.as_str(),
                key,
                expires,
                admin.caller.audit(
                    now,
                    AuditEvent::RequestApproved {
                        key_fingerprint: key.clone(),
                        expires_at: expires,
                    },
                    Some(id.as_str()),
                ),
            )
            .await?;
        if !approved {
            return Err(ApiError::NotFound(
                "no waiting request of this device has that key",
            ));
        }
    }
    tracing::info!(device_id = %id, actor = %admin.caller.actor, "request approved");
    json(&Decided {
        device_id: id.into_string(),
        key_fingerprints: keys,
        state: DecisionKind::Approved,
        expires_at: Some(rfc3339(expires)),
    })
}

#[utoipa::path(
    post,
    path = "/idprov/admin/requests/{deviceID}/reject",
    operation_id = "rejectRequest",
    tag = "requests",
    summary = "Reject a device and key until cleared",
    params(("deviceID" = DeviceId, Path, description = "The device")),
    request_body = Option<Decision>,
    responses(
        (status = 200, description = "Decided", body = Decided),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 404, response = crate::routes::api_doc::NotFound),
    ),
)]
pub(crate) async fn reject(
    admin: Admin,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let id = device_id(&raw)?;
    let req: Decision = json_body(app, &headers, body, app.config.body_limit).await?;
    let reason = super::free_text("reason", req.reason)?;
    let keys = keys_of(app, id.as_str(), req.key_fingerprint).await?;
    let now = app.now_unix();
    for key in &keys {
        app.registry
            .reject(
                id.as_str(),
                key,
                &reason,
                admin.caller.audit(
                    now,
                    AuditEvent::RequestRejected {
                        key_fingerprint: key.clone(),
                        reason: reason.clone(),
                    },
                    Some(id.as_str()),
                ),
            )
            .await?;
    }
    tracing::info!(device_id = %id, actor = %admin.caller.actor, "request rejected");
    json(&Decided {
        device_id: id.into_string(),
        key_fingerprints: keys,
        state: DecisionKind::Rejected,
        expires_at: None,
    })
}

#[utoipa::path(
    post,
    path = "/idprov/admin/requests/{deviceID}/clear",
    operation_id = "clearRequests",
    tag = "requests",
    summary = "Remove a device's waiting requests, approvals and rejections",
    params(("deviceID" = DeviceId, Path, description = "The device")),
    request_body = Option<Decision>,
    responses(
        (status = 200, description = "Decided", body = Decided),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 404, response = crate::routes::api_doc::NotFound),
    ),
)]
pub(crate) async fn clear(
    admin: Admin,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let id = device_id(&raw)?;
    let req: Decision = json_body(app, &headers, body, app.config.body_limit).await?;
    let key = super::key_fingerprint_of(req.key_fingerprint.as_deref())?;
    let now = app.now_unix();
    let removed = app
        .registry
        .clear_requests(
            id.as_str(),
            key.as_ref(),
            admin.caller.audit(
                now,
                AuditEvent::RequestsCleared {
                    key_fingerprint: key.clone(),
                },
                Some(id.as_str()),
            ),
        )
        .await?;
    if removed == 0 {
        return Err(ApiError::NotFound("nothing to clear for this device"));
    }
    json(&Decided {
        device_id: id.into_string(),
        key_fingerprints: key.into_iter().collect(),
        state: DecisionKind::Cleared,
        expires_at: None,
    })
}

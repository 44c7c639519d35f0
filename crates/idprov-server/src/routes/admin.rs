//! The admin API under `/idprov/admin/`: listings and removals. Every handler
//! takes an [`AdminCaller`], so none runs for anyone else.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::json;

use idprov_proto::DeviceId;
use idprov_proto::admin::{
    CertView, DeviceDetail, DeviceView, Page, Removed, SecretView, WaitingView,
};
use idprov_store::{AuditRecord, CertRecord, DeviceFacts, DeviceSummary};

use crate::auth::AdminCaller;
use crate::decision::status_of;
use crate::error::ApiError;
use crate::routes::{PageQuery, json, page_query, rfc3339};
use crate::state::AppState;

fn device_id(raw: &str) -> Result<DeviceId, ApiError> {
    DeviceId::parse(raw).map_err(|e| ApiError::BadRequest(format!("deviceID in the path: {e}")))
}

pub(crate) fn cert_view(c: &CertRecord) -> CertView {
    CertView {
        serial: c.serial.clone(),
        kind: c.kind.as_str().to_owned(),
        subject: c.subject.clone(),
        key_fingerprint: c.key_fingerprint.clone(),
        key_type: c.key_type.clone(),
        not_before: rfc3339(c.not_before),
        not_after: rfc3339(c.not_after),
        issued_at: rfc3339(c.issued_at),
        issue_kind: c.issue_kind.as_str().to_owned(),
        authorized_by: c.authorized_by.clone(),
        revoked_at: c.revoked_at.map(rfc3339),
        revocation_reason: c.revocation_reason,
        pem: c.pem.clone(),
    }
}

fn summary_view(d: &DeviceSummary) -> DeviceView {
    // The same table as the status endpoint, from the summary's counts.
    let status = if d.serial.is_some() {
        "Approved"
    } else if d.live_secret || d.waiting > 0 {
        "Waiting"
    } else if d.certificates > 0 && d.revoked == d.certificates {
        "Rejected"
    } else {
        "Waiting"
    };
    DeviceView {
        device_id: d.device_id.clone(),
        status: status.to_owned(),
        created_at: rfc3339(d.created_at),
        certificates: d.certificates,
        revoked: d.revoked,
        valid_until: d.valid_until.map(rfc3339),
        serial: d.serial.clone(),
        last_issued_at: d.last_issued_at.map(rfc3339),
        live_secret: d.live_secret,
        waiting: d.waiting,
    }
}

fn facts_view(f: &DeviceFacts, last_issued_at: Option<i64>) -> DeviceView {
    let (status, cert) = status_of(f);
    DeviceView {
        device_id: f.device_id.clone(),
        status: status.as_str().to_owned(),
        created_at: rfc3339(f.created_at),
        certificates: f.certificates,
        revoked: f.revoked,
        valid_until: cert.map(|c| rfc3339(c.not_after)),
        serial: cert.map(|c| c.serial.clone()),
        last_issued_at: last_issued_at.map(rfc3339),
        live_secret: f.live_secret,
        waiting: f.waiting,
    }
}

fn next_of<T>(items: &[T], limit: u32, key: impl Fn(&T) -> String) -> Option<String> {
    if items.len() as u64 == u64::from(limit) {
        items.last().map(key)
    } else {
        None
    }
}

pub(crate) async fn list_devices(
    State(app): State<AppState>,
    _admin: AdminCaller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let page = page_query(q)?;
    let rows = app.registry.list_devices(&page, app.now_unix()).await?;
    json(&Page {
        next: next_of(&rows, page.limit, |d| d.device_id.clone()),
        items: rows.iter().map(summary_view).collect(),
    })
}

pub(crate) async fn show_device(
    State(app): State<AppState>,
    _admin: AdminCaller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = device_id(&raw)?;
    let facts = app
        .registry
        .device(id.as_str(), app.now_unix())
        .await?
        .ok_or(ApiError::NotFound("unknown device"))?;
    let certs = app
        .registry
        .certificates_of(idprov_store::CertKind::Device, id.as_str())
        .await?;
    json(&DeviceDetail {
        device: facts_view(&facts, certs.first().map(|c| c.issued_at)),
        certificates: certs.iter().map(cert_view).collect(),
    })
}

pub(crate) async fn list_secrets(
    State(app): State<AppState>,
    _admin: AdminCaller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
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

pub(crate) async fn remove_secret(
    State(app): State<AppState>,
    admin: AdminCaller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = device_id(&raw)?;
    let now = app.now_unix();
    let removed = app
        .registry
        .remove_secret(
            id.as_str(),
            AuditRecord::new(
                now,
                admin.actor.clone(),
                "secret_removed",
                Some(id.as_str()),
                json!({}),
            ),
        )
        .await?;
    if !removed {
        return Err(ApiError::NotFound(
            "no secret is registered for this device",
        ));
    }
    tracing::info!(device_id = %id, actor = %admin.actor, "OOB secret removed");
    json(&Removed { removed })
}

pub(crate) async fn list_waiting(
    State(app): State<AppState>,
    _admin: AdminCaller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let page = page_query(q)?;
    let rows = app.registry.list_waiting(&page).await?;
    json(&Page {
        next: next_of(&rows, page.limit, |w| {
            format!("{} {}", w.device_id, w.key_fingerprint)
        }),
        items: rows
            .iter()
            .map(|w| WaitingView {
                device_id: w.device_id.clone(),
                key_fingerprint: w.key_fingerprint.clone(),
                key_type: w.key_type.clone(),
                claimed_ip: w.claimed_ip.clone(),
                claimed_mac: w.claimed_mac.clone(),
                source: w.source.clone(),
                first_seen: rfc3339(w.first_seen),
                last_seen: rfc3339(w.last_seen),
                attempts: w.attempts,
            })
            .collect(),
    })
}

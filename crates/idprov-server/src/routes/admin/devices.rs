//! Devices: list (with filters), show, revoke, remove.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use idprov_proto::admin::{DeviceDetail, DeviceView, Page, RevokeRequest, Revoked};
use idprov_proto::{DeviceId, SerialNumber};
use idprov_store::{AuditEvent, AuditOf};
use idprov_store::{
    CertKind, CertRecord, DeviceFacts, DeviceFilter, DeviceSummary, ProvisionStatus, Revocation,
};

use super::{cert_view, device_id, json_body, next_of};
use crate::auth::Admin;
use crate::error::ApiError;
use crate::routes::{PAGE_MAX, json, rfc3339};
use crate::state::AppState;

/// `?after&limit&status&expiringWithinDays&missedRenewal&prefix`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct DeviceQuery {
    /// The `next` value of the previous page.
    after: Option<String>,
    /// Devices per page.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<u32>,
    /// Only devices with this status (any case).
    #[param(value_type = Option<ProvisionStatus>)]
    status: Option<String>,
    /// Only devices whose certificate expires within this many days.
    expiring_within_days: Option<u32>,
    /// Only devices with no certificate issued after 55% of the latest
    /// one's validity plus a day.
    missed_renewal: Option<bool>,
    /// Only device IDs starting with this.
    prefix: Option<String>,
}

fn summary_view(d: &DeviceSummary) -> DeviceView {
    DeviceView {
        device_id: d.device_id.clone(),
        status: d.status,
        created_at: rfc3339(d.created_at),
        certificates: d.certificates,
        revoked: d.revoked,
        valid_until: d.valid_until.map(rfc3339),
        serial: d.serial.clone(),
        last_issued_at: d.last_issued_at.map(rfc3339),
        live_secret: d.live_secret,
        waiting: d.waiting,
        protocol: d.protocol,
    }
}

/// A device's facts, with its newest certificate (valid or not).
fn facts_view(f: &DeviceFacts, newest: Option<&CertRecord>) -> DeviceView {
    let valid = f.newest_valid.as_ref();
    DeviceView {
        device_id: f.device_id.clone(),
        status: f.status(),
        created_at: rfc3339(f.created_at),
        certificates: f.certificates,
        revoked: f.revoked,
        valid_until: valid.map(|c| rfc3339(c.not_after)),
        serial: valid.map(|c| c.serial.clone()),
        last_issued_at: newest.map(|c| rfc3339(c.issued_at)),
        live_secret: f.live_secret,
        waiting: f.waiting,
        protocol: newest.and_then(|c| c.protocol),
    }
}

#[utoipa::path(
    get,
    path = "/idprov/admin/devices",
    operation_id = "listDevices",
    tag = "devices",
    summary = "Devices, filtered and paged",
    params(DeviceQuery),
    responses(
        (status = 200, description = "A page of devices", body = Page<DeviceView>),
        (status = 400, response = crate::routes::api_doc::BadRequest),
    ),
)]
pub(crate) async fn list(
    admin: Admin,
    q: Result<Query<DeviceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let q = crate::routes::query(q)?;
    let limit = crate::routes::page_limit(q.limit, PAGE_MAX)?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            ProvisionStatus::parse_any_case(s).ok_or_else(|| {
                ApiError::BadRequest(
                    "query parameter \"status\" must be Approved, Waiting or Rejected".into(),
                )
            })
        })
        .transpose()?;
    let filter = DeviceFilter {
        status,
        expiring_within: q.expiring_within_days.map(|d| i64::from(d) * 86_400),
        missed_renewal: q.missed_renewal.unwrap_or(false),
        prefix: q.prefix.filter(|p| !p.is_empty()),
    };
    let page = idprov_store::Page {
        after: q.after,
        limit,
    };
    let rows = app
        .registry
        .list_devices(&page, app.now_unix(), &filter)
        .await?;
    json(&Page {
        next: next_of(&rows, limit, |d| d.device_id.clone()),
        items: rows.iter().map(summary_view).collect(),
    })
}

#[utoipa::path(
    get,
    path = "/idprov/admin/devices/{deviceID}",
    operation_id = "showDevice",
    tag = "devices",
    summary = "One device with its certificate history",
    params(("deviceID" = DeviceId, Path, description = "The device")),
    responses(
        (status = 200, description = "The device", body = DeviceDetail),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 404, response = crate::routes::api_doc::NotFound),
    ),
)]
pub(crate) async fn show(admin: Admin, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let id = device_id(&raw)?;
    let facts = app
        .registry
        .device(id.as_str(), app.now_unix())
        .await?
        .ok_or(ApiError::NotFound("unknown device"))?;
    let certs = app
        .registry
        .certificates_of(CertKind::Device, id.as_str())
        .await?;
    let now = app.now_unix();
    let policy = &app.config.lockout;
    let live = app.registry.live_secret(id.as_str(), now).await?;
    let guesses = match (app.registry.guess_budget(id.as_str()).await?, live) {
        (Some(b), Some(live))
            if b.secret_id == live.id
                && now < b.window_start.plus_secs(policy.device_window_secs) =>
        {
            Some(idprov_proto::admin::GuessesView {
                failures: b.failures,
                budget: policy.device_budget,
                window_ends: rfc3339(b.window_start.plus_secs(policy.device_window_secs)),
                spent: idprov_store::GuessBudget::exhausted_until(Some(&b), live.id, policy, now)
                    .is_some(),
            })
        }
        _ => None,
    };
    json(&DeviceDetail {
        device: facts_view(&facts, certs.first()),
        certificates: certs.iter().map(cert_view).collect(),
        guesses,
    })
}

/// Parses a revocation reason (name or code); default unspecified.
pub(crate) fn reason_of(reason: Option<&str>) -> Result<i64, ApiError> {
    match reason {
        None => Ok(0),
        Some(r) => idprov_ca::reason_code(r).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "field \"reason\": {r:?} is not an RFC 5280 reason ({})",
                idprov_ca::REASONS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }),
    }
}

#[utoipa::path(
    post,
    path = "/idprov/admin/devices/{deviceID}/revoke",
    operation_id = "revokeDevice",
    tag = "devices",
    summary = "Revoke a device's certificates (all, or one serial)",
    params(("deviceID" = DeviceId, Path, description = "The device")),
    request_body = Option<RevokeRequest>,
    responses(
        (status = 200, description = "Revoked", body = Revoked),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 404, response = crate::routes::api_doc::NotFound),
    ),
)]
pub(crate) async fn revoke(
    admin: Admin,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let id = device_id(&raw)?;
    let req: RevokeRequest = json_body(app, &headers, body, app.config.body_limit).await?;
    let reason = reason_of(req.reason.as_deref())?;
    let note = super::free_text("note", req.note)?;
    let now = app.now_unix();
    if app.registry.device(id.as_str(), now).await?.is_none() {
        return Err(ApiError::NotFound("unknown device"));
    }
    let serials = app
        .registry
        .revoke(Revocation {
            kind: CertKind::Device,
            subject: id.to_string(),
            serial: super::serial_of(req.serial.as_deref())?,
            reason,
            at: now,
            audit: {
                let (caller, device) = (admin.caller.clone(), id.to_string());
                AuditOf::one(move |serials: &[SerialNumber]| {
                    caller.audit(
                        now,
                        AuditEvent::CertificateRevoked {
                            reason,
                            note,
                            serials: serials.to_vec(),
                        },
                        Some(&device),
                    )
                })
            },
        })
        .await?;
    if serials.is_empty() && req.serial.is_some() {
        return Err(ApiError::NotFound(
            "no such unrevoked certificate of this device",
        ));
    }
    tracing::info!(device_id = %id, actor = %admin.caller.actor, revoked = serials.len(), "device certificates revoked");
    revoked(app, serials).await
}

/// After any revocation: count it, publish the new CRL, and answer with the
/// serials and the CRL's number.
pub(crate) async fn revoked(
    app: &AppState,
    serials: Vec<SerialNumber>,
) -> Result<Response, ApiError> {
    metrics::counter!(crate::observe::CERTIFICATES_REVOKED).increment(serials.len() as u64);
    let crl = crate::crl::regenerate(app).await?;
    json(&Revoked {
        serials,
        crl_number: crl.number,
    })
}

#[utoipa::path(
    delete,
    path = "/idprov/admin/devices/{deviceID}",
    operation_id = "removeDevice",
    tag = "devices",
    summary = "Revoke every certificate of a device and forget it",
    params(("deviceID" = DeviceId, Path, description = "The device")),
    responses(
        (status = 200, description = "Revoked", body = Revoked),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 404, response = crate::routes::api_doc::NotFound),
    ),
)]
pub(crate) async fn remove(admin: Admin, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let id = device_id(&raw)?;
    let now = app.now_unix();
    let serials = app
        .registry
        .remove_device(id.as_str(), now, {
            let (caller, device) = (admin.caller.clone(), id.to_string());
            AuditOf::one(move |serials: &[SerialNumber]| {
                caller.audit(
                    now,
                    AuditEvent::DeviceRemoved {
                        serials: serials.to_vec(),
                    },
                    Some(&device),
                )
            })
        })
        .await?
        .ok_or(ApiError::NotFound("unknown device"))?;
    tracing::info!(device_id = %id, actor = %admin.caller.actor, "device removed");
    revoked(app, serials).await
}

/// Clears a device's failed-secret counters and locks, from every source.
#[utoipa::path(
    post,
    path = "/idprov/admin/devices/{deviceID}/unlock",
    operation_id = "unlockDevice",
    tag = "devices",
    summary = "Clear a device's failed-secret counters and locks (every source)",
    params(("deviceID" = DeviceId, Path, description = "The device")),
    responses(
        (status = 200, description = "Cleared", body = crate::routes::api_doc::Unlocked),
        (status = 400, response = crate::routes::api_doc::BadRequest),
    ),
)]
pub(crate) async fn unlock(admin: Admin, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let id = device_id(&raw)?;
    let now = app.now_unix();
    let cleared = app
        .registry
        .clear_lockouts(
            id.as_str(),
            admin
                .caller
                .audit(now, AuditEvent::LockoutCleared {}, Some(id.as_str())),
        )
        .await?;
    json(&json!({ "deviceID": id.as_str(), "cleared": cleared }))
}

//! Credentials for people and services: administrator, plugin, service and
//! client certificates, issued for a public key the caller keeps the private
//! half of, listed and revoked.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use idprov_ca::{IssueParams, PublicKey, Usage};
use idprov_proto::admin::{
    CertView, CredentialIssued, CredentialOu, CredentialRequest, RevokeRequest, Revoked,
};
use idprov_proto::{DeviceId, SerialNumber};
use idprov_store::{AuditEvent, AuditOf};
use idprov_store::{CertKind, IssueKind, IssueOutcome, IssueRecord, NewCertificate, Revocation};

use super::{cert_view, json_body};

use crate::auth::{Admin, Role};
use crate::error::ApiError;
use crate::routes::{json, rfc3339};
use crate::state::AppState;

/// Longest credential validity an administrator may ask for.
const MAX_VALIDITY_DAYS: u32 = 3650;

fn kind_of(ou: &str) -> Result<CertKind, ApiError> {
    match ou {
        "admin" => Ok(CertKind::Admin),
        "plugin" => Ok(CertKind::Plugin),
        "service" => Ok(CertKind::Service),
        _ => Err(ApiError::BadRequest(format!(
            "field \"ou\": {ou:?} is not admin, plugin or service"
        ))),
    }
}

#[utoipa::path(
    post,
    path = "/idprov/admin/credentials",
    operation_id = "issueCredential",
    tag = "credentials",
    summary = "Issue a credential for a public key (administrators only)",
    request_body = CredentialRequest,
    responses(
        (status = 200, description = "Issued", body = CredentialIssued),
        (status = 400, response = crate::routes::api_doc::BadRequest),
    ),
)]
pub(crate) async fn issue(
    admin: Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    // Minting administrators is for administrators, not plugins.
    if admin.caller.role != Role::Admin {
        return Err(ApiError::Forbidden(
            "issuing credentials needs an administrator",
        ));
    }
    let bytes = crate::routes::read_body(app, &headers, body, app.config.body_limit).await?;
    let req: CredentialRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("request body: {e}")))?;
    let kind = kind_of(&req.ou)?;
    DeviceId::parse(&req.cn).map_err(|e| ApiError::BadRequest(format!("field \"cn\": {e}")))?;
    let key = PublicKey::from_pem(&req.public_key_pem)
        .map_err(|e| ApiError::BadRequest(format!("field \"publicKeyPEM\": {e}")))?;
    let days = req.validity_days.unwrap_or(365);
    if days == 0 || days > MAX_VALIDITY_DAYS {
        return Err(ApiError::BadRequest(format!(
            "field \"validityDays\": must be between 1 and {MAX_VALIDITY_DAYS}"
        )));
    }
    let (mut dns_names, mut ip_addresses) = (Vec::new(), Vec::new());
    for san in &req.sans {
        match san.parse::<IpAddr>() {
            Ok(ip) => ip_addresses.push(ip),
            Err(_)
                if !san.is_empty()
                    && san.len() <= 253
                    && san
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*')) =>
            {
                dns_names.push(san.to_ascii_lowercase())
            }
            Err(_) => {
                return Err(ApiError::BadRequest(format!(
                    "field \"sans\": {san:?} is neither a DNS name nor an IP address"
                )));
            }
        }
    }
    let usage = match kind {
        CertKind::Service if !(dns_names.is_empty() && ip_addresses.is_empty()) => {
            Usage::ClientAndServer {
                dns_names,
                ip_addresses,
            }
        }
        _ if !(dns_names.is_empty() && ip_addresses.is_empty()) => {
            return Err(ApiError::BadRequest(
                "field \"sans\": only service certificates carry names".into(),
            ));
        }
        _ => Usage::Client,
    };
    let now = app.clock.now();
    let issued = app
        .ca
        .issue(
            &key,
            &IssueParams {
                common_name: &req.cn,
                organizational_unit: &req.ou,
                organization: &app.config.organization,
                usage,
                now,
                validity: Duration::from_secs(u64::from(days) * 86_400),
                crl_url: Some(&app.crl_url),
                ocsp_url: app.ocsp_url.as_deref(),
            },
        )
        .map_err(|e| ApiError::Internal(format!("issuing a credential: {e}")))?;
    let at = idprov_proto::UnixTime::from(now);
    let outcome = app
        .registry
        .record_issue(IssueRecord {
            cert: NewCertificate {
                serial: issued.serial.clone(),
                kind,
                subject: req.cn.clone(),
                pem: issued.pem.clone(),
                key_fingerprint: key.fingerprint(),
                key_type: key.key_type().to_string(),
                not_before: issued.not_before,
                not_after: issued.not_after,
                issued_at: at,
                issue_kind: IssueKind::Local,
                authorized_by: admin.caller.actor.to_string(),
                protocol: None,
            },
            consume_secret: None,
            consume_approval: None,
            reset_lockout_for: None,
            clear_waiting_key: None,
            supersede_older_at: None,
            audit: admin.caller.audit(
                at,
                AuditEvent::CredentialIssued {
                    ou: req.ou.clone(),
                    cn: req.cn.clone(),
                    serial: issued.serial.clone(),
                    not_after: issued.not_after,
                },
                None,
            ),
        })
        .await?;
    if outcome != IssueOutcome::Recorded {
        return Err(ApiError::Internal("the credential was not recorded".into()));
    }
    tracing::info!(ou = %req.ou, cn = %req.cn, actor = %admin.caller.actor, "credential issued");
    json(&CredentialIssued {
        cert_pem: format!("{}{}", issued.pem, app.ca.intermediates_pem()),
        ca_pem: app.ca.chain_pem().to_owned(),
        serial: issued.serial,
        not_after: rfc3339(issued.not_after),
    })
}

/// `?ou=admin`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CredentialQuery {
    /// Only this kind (default: all three).
    #[param(value_type = Option<CredentialOu>)]
    ou: Option<String>,
}

#[utoipa::path(
    get,
    path = "/idprov/admin/credentials",
    operation_id = "listCredentials",
    tag = "credentials",
    summary = "Certificates of administrators, plugins and services",
    params(CredentialQuery),
    responses(
        (status = 200, description = "Certificates", body = Vec<CertView>),
        (status = 400, response = crate::routes::api_doc::BadRequest),
    ),
)]
pub(crate) async fn list(
    admin: Admin,
    q: Result<Query<CredentialQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    let q = crate::routes::query(q)?;
    let kinds = match q.ou.as_deref() {
        Some(ou) => vec![kind_of(ou)?],
        None => vec![CertKind::Admin, CertKind::Plugin, CertKind::Service],
    };
    let mut all: Vec<CertView> = Vec::new();
    for k in kinds {
        all.extend(
            app.registry
                .certificates_by_kind(k)
                .await?
                .iter()
                .map(cert_view),
        );
    }
    json(&all)
}

#[utoipa::path(
    post,
    path = "/idprov/admin/credentials/{ou}/{cn}/revoke",
    operation_id = "revokeCredential",
    tag = "credentials",
    summary = "Revoke a credential's certificates (administrators only)",
    params(
        ("ou" = CredentialOu, Path, description = "The kind"),
        ("cn" = String, Path, description = "The name (CN)"),
    ),
    request_body = Option<RevokeRequest>,
    responses(
        (status = 200, description = "Revoked", body = Revoked),
        (status = 400, response = crate::routes::api_doc::BadRequest),
        (status = 404, response = crate::routes::api_doc::NotFound),
    ),
)]
pub(crate) async fn revoke(
    admin: Admin,
    Path((ou, cn)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let app: &AppState = &admin;
    if admin.caller.role != Role::Admin {
        return Err(ApiError::Forbidden(
            "revoking credentials needs an administrator",
        ));
    }
    let kind = kind_of(&ou)?;
    let req: RevokeRequest = json_body(app, &headers, body, app.config.body_limit).await?;
    let reason = super::devices::reason_of(req.reason.as_deref())?;
    let note = super::free_text("note", req.note)?;
    let now = app.now_unix();
    let serials = app
        .registry
        .revoke(Revocation {
            kind,
            subject: cn.clone(),
            serial: super::serial_of(req.serial.as_deref())?,
            reason,
            at: now,
            audit: {
                let (caller, ou, cn) = (admin.caller.clone(), ou.clone(), cn.clone());
                AuditOf::one(move |serials: &[SerialNumber]| {
                    caller.audit(
                        now,
                        AuditEvent::CredentialRevoked {
                            ou,
                            cn,
                            reason,
                            note,
                            serials: serials.to_vec(),
                        },
                        None,
                    )
                })
            },
        })
        .await?;
    if serials.is_empty() {
        return Err(ApiError::NotFound("no unrevoked certificate of that name"));
    }
    if kind == CertKind::Admin {
        // A revoked administrator keeps no way in: no password, no session.
        crate::web::remove_password(
            app,
            admin.caller.actor.clone(),
            &cn,
            "administrator revoked",
        )
        .await?;
    }
    super::devices::revoked(app, serials).await
}

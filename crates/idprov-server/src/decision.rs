//! The server's decision on a provisioning request, in the order of
//! PROTOCOL.md §6, and the status table of §4.
//!
//! 1. parse and validate (done by the caller: [`ValidRequest::parse`]);
//! 2. a verified admin/plugin leaf → Approved for any device;
//! 3. a verified iotdevice leaf whose CN is the device ID → Approved (renewal,
//!    a new key is a re-key);
//! 4. otherwise the OOB path for (device ID, key):
//!    1. locked out → 429;
//!    2. rejected by an administrator for this key → Rejected (not counted);
//!    3. an administrator's unused approval for this key → Approved, consumed;
//!    4. re-delivery of the certificate issued when a secret was consumed in
//!       the last minutes by this key, if the signature verifies under it;
//!       or, for a request that proves no secret, of the certificate an
//!       approval of this key issued in the last minutes;
//!    5. no live secret → Waiting, recorded once per (device, key);
//!    6. signature verifies under neither variant → Rejected, failure counted;
//!    7. signature verifies → Approved, secret consumed.
//! 5. on Approved, the certificate, the consumed secret and the audit entry
//!    are recorded in one durable transaction before the response is sent.

use std::net::IpAddr;

use idprov_ca::{IssueParams, PublicKey, Usage};
use idprov_proto::sign::KeyVariant;
use idprov_proto::{DeviceId, OobSecret, ProvisionRequest, ProvisionStatus};
use idprov_store::{
    Actor, AuditRecord, CertKind, CertRecord, ConsumeSecret, ConsumedSecret, DeviceFacts,
    DeviceStatus, IssueKind, IssueOutcome, IssueRecord, NewCertificate, WaitingOutcome,
    WaitingRequest,
};
use serde_json::json;

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::state::AppState;

/// The longest `ip` and `mac` free text accepted, in bytes.
pub const MAX_FREE_TEXT: usize = 255;

/// A provisioning request whose fields parsed into domain types.
#[derive(Debug)]
pub struct ValidRequest {
    /// The device.
    pub device_id: DeviceId,
    /// Its public key.
    pub key: PublicKey,
    /// The key's fingerprint (unpadded base64url).
    pub key_fingerprint: String,
    /// The message as received, for signature verification over its strings.
    pub message: ProvisionRequest,
}

impl ValidRequest {
    /// Checks device-ID syntax (and that it names no role or this server),
    /// free-text lengths and the public key.
    pub fn parse(
        message: ProvisionRequest,
        config: &crate::config::ServerConfig,
    ) -> Result<ValidRequest, ApiError> {
        let device_id = DeviceId::parse(&message.device_id)
            .map_err(|e| ApiError::BadRequest(format!("field \"deviceID\": {e}")))?;
        config
            .check_device_id("deviceID", device_id.as_str())
            .map_err(ApiError::BadRequest)?;
        for (field, value) in [("ip", &message.ip), ("mac", &message.mac)] {
            if value.len() > MAX_FREE_TEXT {
                return Err(ApiError::BadRequest(format!(
                    "field \"{field}\": longer than {MAX_FREE_TEXT} bytes"
                )));
            }
            // Free text, but never NUL: no database text type holds it
            // (PostgreSQL refuses it), and no address contains it.
            if value.contains('\0') {
                return Err(ApiError::BadRequest(format!(
                    "field \"{field}\": contains a NUL character"
                )));
            }
        }
        let key = PublicKey::from_pem(&message.public_key_pem)
            .map_err(|e| ApiError::BadRequest(format!("field \"publicKeyPEM\": {e}")))?;
        Ok(ValidRequest {
            device_id,
            key_fingerprint: key.fingerprint().to_string(),
            key,
            message,
        })
    }
}

/// The key an Approved response is signed with (PROTOCOL.md §5).
#[derive(Debug)]
pub enum ResponseKey {
    /// The empty key: a verified client certificate was presented, or an
    /// administrator approved.
    Empty,
    /// The secret the request proved, in the variant it used.
    Secret(OobSecret, KeyVariant),
}

/// What the server answers.
#[derive(Debug)]
pub enum Outcome {
    /// A certificate was issued or re-delivered.
    Approved {
        /// Leaf PEM followed by intermediates.
        client_cert: String,
        /// Recommended renewal interval, seconds.
        retry_sec: i64,
        /// How the response is signed.
        key: ResponseKey,
    },
    /// Ask again later.
    Waiting,
    /// Refused; `retry_sec` > 0 when a lock started.
    Rejected {
        /// Seconds until another attempt counts (0 = none).
        retry_sec: i64,
    },
}

/// What happened to an issuance attempt.
enum Issued {
    Done(Outcome),
    SecretGone,
}

fn half_validity(not_before: i64, not_after: i64) -> i64 {
    let backdate = i64::try_from(idprov_ca::BACKDATE.as_secs()).unwrap_or(0);
    ((not_after - not_before - backdate) / 2).max(1)
}

/// Decides on a provisioning request.
pub async fn decide(
    app: &AppState,
    caller: &Caller,
    source: IpAddr,
    req: &ValidRequest,
) -> Result<Outcome, ApiError> {
    if let Caller::Verified(v) = caller {
        let kind = match v.role {
            // §6 step 2: an administrator or plugin may request for any device.
            Role::Admin | Role::Plugin => Some(IssueKind::Admin),
            // §6 step 3: a device renews its own certificate.
            Role::Device if v.name == req.device_id.as_str() => {
                Some(if v.leaf.spki_der == req.key.spki_der() {
                    IssueKind::Renewal
                } else {
                    IssueKind::Rekey
                })
            }
            _ => None,
        };
        if let Some(kind) = kind {
            return issue(
                app,
                req,
                kind,
                caller.actor(source),
                ResponseKey::Empty,
                Consume::Nothing,
                None,
            )
            .await
            .map(|i| match i {
                Issued::Done(o) => o,
                Issued::SecretGone => Outcome::Waiting,
            });
        }
    }
    oob(app, caller, source, req).await
}

/// What failures are counted under: the address, or an IPv6 source's /64
/// (one host usually holds a whole /64; counting per address would let it
/// rotate through them).
pub fn lockout_source(source: IpAddr) -> String {
    match crate::limits::source_key(source) {
        IpAddr::V6(net) => format!("{net}/64"),
        v4 => v4.to_string(),
    }
}

/// §5 rule 1: any verified certificate on the connection means the empty key.
fn response_key(caller: &Caller, secret: OobSecret, variant: KeyVariant) -> ResponseKey {
    match caller {
        Caller::Verified(_) => ResponseKey::Empty,
        _ => ResponseKey::Secret(secret, variant),
    }
}

async fn oob(
    app: &AppState,
    caller: &Caller,
    source: IpAddr,
    req: &ValidRequest,
) -> Result<Outcome, ApiError> {
    let now = app.now_unix();
    let device = req.device_id.as_str();
    let src = lockout_source(source);
    let actor = caller.actor(source);

    let window = i64::try_from(app.config.redelivery_window.as_secs()).unwrap_or(i64::MAX);
    let consumed_since = now.saturating_sub(window);
    // Everything 4.1–4.5 read, in one registry round trip.
    let mut view = app
        .registry
        .oob_view(device, &req.key_fingerprint, &src, now, consumed_since)
        .await?;

    // 4.1: a locked (device, source) pair is refused even with a correct signature.
    if let Some(lock) = &view.lockout
        && lock.locked_until > now
    {
        return Err(ApiError::TooManyRequests {
            retry_after: u64::try_from(lock.locked_until - now).unwrap_or(1),
            reason: "too many wrong secrets for this device from this address",
        });
    }

    // 4.2: an administrator rejected this device and key.
    if let Some(r) = &view.rejection {
        tracing::info!(device_id = device, rejected_by = %r.rejected_by, "request of a rejected key");
        return Ok(Outcome::Rejected { retry_sec: 0 });
    }

    // 4.3: an administrator approved this key; the approval is used up.
    if view.approval.is_some() {
        match issue(
            app,
            req,
            IssueKind::Approval,
            actor.clone(),
            ResponseKey::Empty,
            Consume::Approval,
            Some(src.clone()),
        )
        .await?
        {
            Issued::Done(outcome) => return Ok(outcome),
            // Used by a concurrent request: go on with the other branches.
            Issued::SecretGone => {}
        }
    }

    // 4.4 first, and again if a concurrent request consumed the secret.
    for attempt in 0..2 {
        let (consumed, live) = if attempt == 0 {
            (view.consumed.take(), view.live_secret.take())
        } else {
            (
                app.registry
                    .consumed_secret(device, &req.key_fingerprint, consumed_since)
                    .await?,
                app.registry.live_secret(device, now).await?,
            )
        };
        if let Some(outcome) = redeliver(app, caller, req, now, &actor, consumed).await? {
            return Ok(outcome);
        }
        // 4.4 for the approval path: a request that proves no secret gets
        // the certificate an approval of this key issued within the window,
        // so a device that could not accept that answer is not stranded
        // with the approval used up. A request that proves a live secret
        // goes on to 4.7 instead.
        if (live.is_none() || req.message.signature.is_empty())
            && let Some(serial) = view.approved_serial.take()
            && let Some(outcome) = redeliver_certificate(
                app,
                req,
                now,
                &actor,
                &serial,
                ResponseKey::Empty,
                "approval",
            )
            .await?
        {
            return Ok(outcome);
        }
        // 4.5: no live secret → Waiting.
        let Some(stored) = live else {
            return waiting(app, req, source, actor, now).await;
        };
        let secret = match app.secrets.open(device, &stored.sealed) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(device_id = device, error = %e, "a stored secret does not open; treating it as absent");
                return waiting(app, req, source, actor, now).await;
            }
        };
        if req.message.signature.is_empty() {
            // No signature is no guess: nothing to count, nothing to verify.
            return Ok(Outcome::Rejected { retry_sec: 0 });
        }
        // 4.6 (ext): the device's budget of wrong secrets across every
        // source is spent: no guess is evaluated until its window ends. The
        // request is queued, so an administrator can approve its key (4.3
        // comes first), and a fresh secret starts a new budget.
        if let Some(until) = idprov_store::GuessBudget::exhausted_until(
            view.guess_budget.as_ref(),
            stored.id,
            &app.config.lockout,
            now,
        ) {
            metrics::counter!(crate::observe::GUESS_BUDGET_REFUSALS).increment(1);
            tracing::info!(device_id = device, source = %src, until, "guess budget spent; request refused unevaluated");
            let _ = waiting(app, req, source, actor.clone(), now).await;
            return Err(ApiError::TooManyRequests {
                retry_after: u64::try_from(until - now).unwrap_or(1),
                reason: "too many wrong secrets for this device from all addresses; \
                         an administrator can approve this request or register a new secret",
            });
        }
        // 4.6: a wrong signature is Rejected and counted; the secret stays.
        let Some(verified) = req.message.verify(secret.expose().as_bytes()) else {
            let failure = app
                .registry
                .record_failure(device, &src, stored.id, now, &app.config.lockout)
                .await?;
            let lock = failure.lockout;
            tracing::info!(device_id = device, source = %src, failures = lock.failures,
                device_failures = failure.budget.failures, "wrong secret");
            if lock.locked_until > now {
                metrics::counter!(crate::observe::LOCKOUTS).increment(1);
            }
            if failure.lock_started > 0 {
                app.audit_unauthenticated(
                    "lockout_started",
                    &src,
                    AuditRecord::new(
                        now,
                        actor.clone(),
                        "lockout_started",
                        Some(device),
                        json!({ "source": src, "failures": lock.failures, "seconds": failure.lock_started }),
                    ),
                )
                .await;
            }
            if failure.budget_spent {
                app.audit_unauthenticated(
                    "guess_budget_spent",
                    device,
                    AuditRecord::new(
                        now,
                        actor.clone(),
                        "guess_budget_spent",
                        Some(device),
                        json!({
                            "failures": failure.budget.failures,
                            "windowSeconds": app.config.lockout.device_window_secs,
                            "until": failure.budget.window_start
                                .saturating_add(app.config.lockout.device_window_secs),
                        }),
                    ),
                )
                .await;
            }
            return Ok(Outcome::Rejected {
                retry_sec: (lock.locked_until - now).max(0),
            });
        };
        // 4.7: verified → issue and consume in one transaction.
        let key = response_key(caller, secret, verified.variant);
        let consume = Consume::Secret(ConsumeSecret {
            secret_id: stored.id,
            key_fingerprint: req.key_fingerprint.clone(),
        });
        match issue(
            app,
            req,
            IssueKind::Oob,
            actor.clone(),
            key,
            consume,
            Some(src.clone()),
        )
        .await?
        {
            Issued::Done(outcome) => return Ok(outcome),
            Issued::SecretGone if attempt == 0 => continue,
            Issued::SecretGone => break,
        }
    }
    Ok(Outcome::Waiting)
}

/// §6 4.4: the same certificate again for a device whose Approved response
/// was lost, if its request verifies under the secret consumed for it.
async fn redeliver(
    app: &AppState,
    caller: &Caller,
    req: &ValidRequest,
    now: i64,
    actor: &Actor,
    consumed: Option<ConsumedSecret>,
) -> Result<Option<Outcome>, ApiError> {
    let device = req.device_id.as_str();
    let Some(consumed) = consumed else {
        return Ok(None);
    };
    let Ok(secret) = app.secrets.open(device, &consumed.sealed) else {
        return Ok(None);
    };
    let Some(verified) = req.message.verify(secret.expose().as_bytes()) else {
        return Ok(None);
    };
    let key = response_key(caller, secret, verified.variant);
    redeliver_certificate(app, req, now, actor, &consumed.serial, key, "secret").await
}

/// Answers Approved with the certificate `serial` again, if it is still
/// valid and unrevoked, and audits the re-delivery; `how` says which path
/// issued it (`secret` or `approval`).
async fn redeliver_certificate(
    app: &AppState,
    req: &ValidRequest,
    now: i64,
    actor: &Actor,
    serial: &str,
    key: ResponseKey,
    how: &'static str,
) -> Result<Option<Outcome>, ApiError> {
    let device = req.device_id.as_str();
    let Some(cert) = app.registry.certificate(serial).await? else {
        return Ok(None);
    };
    if cert.revoked_at.is_some() || cert.not_after < now {
        return Ok(None);
    }
    app.registry
        .append_audit(AuditRecord::new(
            now,
            actor.clone(),
            "certificate_redelivered",
            Some(device),
            json!({ "serial": cert.serial, "keyFingerprint": req.key_fingerprint, "how": how }),
        ))
        .await?;
    tracing::info!(device_id = device, serial = %cert.serial, how, "certificate re-delivered");
    Ok(Some(Outcome::Approved {
        client_cert: format!("{}{}", cert.pem, app.ca.intermediates_pem()),
        retry_sec: half_validity(cert.not_before, cert.not_after),
        key,
    }))
}

async fn waiting(
    app: &AppState,
    req: &ValidRequest,
    source: IpAddr,
    actor: Actor,
    now: i64,
) -> Result<Outcome, ApiError> {
    let src = lockout_source(source);
    // First-seen requests are audited at a bounded rate per source; the
    // entry is prepared in case this one is new and written with it.
    let audit = app
        .aggregate
        .would_write("request_queued", &src, now)
        .then(|| {
            AuditRecord::new(
                now,
                actor,
                "request_queued",
                Some(req.device_id.as_str()),
                json!({
                    "keyFingerprint": req.key_fingerprint,
                    "keyType": req.key.key_type().to_string(),
                    "source": source.to_string(),
                    "claimedIP": req.message.ip,
                    "claimedMAC": req.message.mac,
                }),
            )
        });
    let outcome = app
        .registry
        .record_waiting(
            WaitingRequest {
                device_id: req.device_id.to_string(),
                key_fingerprint: req.key_fingerprint.clone(),
                key_type: req.key.key_type().to_string(),
                public_key_pem: req.key.to_pem(),
                claimed_ip: req.message.ip.clone(),
                claimed_mac: req.message.mac.clone(),
                source: source.to_string(),
                first_seen: now,
                last_seen: now,
                attempts: 1,
            },
            app.config.waiting_caps,
            audit,
        )
        .await?;
    match outcome {
        WaitingOutcome::Queued => {
            app.aggregate.first("request_queued", &src, now);
            app.queue_has_room();
            tracing::info!(device_id = %req.device_id, %source, "request queued for approval");
            Ok(Outcome::Waiting)
        }
        WaitingOutcome::Evicted => {
            app.aggregate.first("request_queued", &src, now);
            app.queue_full(now, true);
            tracing::info!(device_id = %req.device_id, %source,
                "request queued in place of an entry of the source holding the most");
            Ok(Outcome::Waiting)
        }
        WaitingOutcome::Updated => Ok(Outcome::Waiting),
        WaitingOutcome::SourceCapReached => {
            app.note_limited(source, "waiting_per_source");
            Err(ApiError::TooManyRequests {
                retry_after: app.config.waiting_retry.as_secs(),
                reason: "too many waiting requests from this address",
            })
        }
        WaitingOutcome::TotalCapReached => {
            app.queue_full(now, false);
            tracing::warn!(device_id = %req.device_id, %source, "waiting queue full; request not recorded");
            Ok(Outcome::Waiting)
        }
    }
}

/// What an issuance uses up.
enum Consume {
    Nothing,
    Secret(ConsumeSecret),
    Approval,
}

/// Issues a device certificate and records it (with the secret or approval
/// consumption, lockout reset and audit entry) in one durable transaction.
async fn issue(
    app: &AppState,
    req: &ValidRequest,
    kind: IssueKind,
    actor: Actor,
    key: ResponseKey,
    consume: Consume,
    source: Option<String>,
) -> Result<Issued, ApiError> {
    let now = app.clock.now();
    let issued = app
        .ca
        .issue(
            &req.key,
            &IssueParams {
                common_name: req.device_id.as_str(),
                organizational_unit: "iotdevice",
                organization: &app.config.organization,
                usage: Usage::Client,
                now,
                validity: app.config.device_validity,
                crl_url: Some(&app.crl_url),
            },
        )
        .map_err(|e| ApiError::Internal(format!("issuing a certificate: {e}")))?;
    let issued_at = idprov_proto::clock::unix_seconds(now);
    let record = IssueRecord {
        cert: NewCertificate {
            serial: issued.serial.clone(),
            kind: CertKind::Device,
            subject: req.device_id.to_string(),
            pem: issued.pem.clone(),
            key_fingerprint: req.key_fingerprint.clone(),
            key_type: req.key.key_type().to_string(),
            not_before: issued.not_before,
            not_after: issued.not_after,
            issued_at,
            issue_kind: kind,
            authorized_by: actor.0.clone(),
        },
        consume_secret: match &consume {
            Consume::Secret(s) => Some(s.clone()),
            _ => None,
        },
        consume_approval: match consume {
            Consume::Approval => Some(req.key_fingerprint.clone()),
            _ => None,
        },
        reset_lockout_for: source,
        clear_waiting_key: Some(req.key_fingerprint.clone()),
        audit: AuditRecord::new(
            issued_at,
            actor,
            "certificate_issued",
            Some(req.device_id.as_str()),
            json!({
                "serial": issued.serial,
                "how": kind.as_str(),
                "secretUsed": matches!(consume, Consume::Secret(_)),
                "keyFingerprint": req.key_fingerprint,
                "keyType": req.key.key_type().to_string(),
                "notAfter": issued.not_after,
            }),
        ),
    };
    match app.registry.record_issue(record).await? {
        IssueOutcome::SecretGone => Ok(Issued::SecretGone),
        IssueOutcome::Recorded => {
            metrics::counter!(crate::observe::CERTIFICATES_ISSUED, "how" => kind.as_str())
                .increment(1);
            tracing::info!(
                device_id = %req.device_id,
                serial = %issued.serial,
                how = kind.as_str(),
                "certificate issued"
            );
            Ok(Issued::Done(Outcome::Approved {
                client_cert: format!("{}{}", issued.pem, app.ca.intermediates_pem()),
                retry_sec: half_validity(issued.not_before, issued.not_after),
                key,
            }))
        }
    }
}

/// The status of PROTOCOL.md §4's table, and the certificate to report.
pub fn status_of(facts: &DeviceFacts) -> (ProvisionStatus, Option<&CertRecord>) {
    let status = match facts.status() {
        DeviceStatus::Approved => ProvisionStatus::Approved,
        DeviceStatus::Waiting => ProvisionStatus::Waiting,
        DeviceStatus::Rejected => ProvisionStatus::Rejected,
    };
    (
        status,
        facts
            .newest_valid
            .as_ref()
            .filter(|_| status == ProvisionStatus::Approved),
    )
}

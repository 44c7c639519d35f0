//! The decision on a provisioning request, in the order of PROTOCOL.md §6:
//!
//! 1. parse and validate (the front door; the core refuses reserved IDs);
//! 2. a verified admin/plugin caller → Approved for any device;
//! 3. a verified device whose CN is the device ID → Approved (renewal, a
//!    new key is a re-key);
//! 4. otherwise the out-of-band path for (device ID, key):
//!    1. locked out → refused (429);
//!    2. rejected by an administrator for this key → Rejected (not counted);
//!    3. an administrator's unused approval for this key → Approved, consumed;
//!    4. re-delivery of the certificate issued when a secret was consumed in
//!       the last minutes by this key, if the proof verifies under it; or,
//!       for a request that proves no secret, of the certificate an
//!       approval of this key issued in the last minutes;
//!    5. no live secret → Waiting, recorded once per (device, key);
//!    6. the device's guess budget spent → refused unevaluated (ext); a
//!       proof that verifies under neither variant → Rejected, counted;
//!    7. the proof verifies → Approved, secret consumed;
//! 5. on Approved, the certificate, what it consumed and the audit entry
//!    are recorded in one durable transaction before the answer is given.

use std::net::IpAddr;
use std::sync::Arc;

use idprov_ca::{Ca, IssueParams, Usage};
use idprov_proto::clock::Clock;
use idprov_proto::{OobSecret, ProvisionStatus, SerialNumber, UnixTime};
use idprov_store::{
    Actor, AuditEvent, AuditRecord, CertKind, CertRecord, ConsumeSecret, ConsumedSecret,
    DeviceFacts, GuessBudget, IssueKind, IssueOutcome, IssueRecord, NewCertificate, Registry,
    WaitingOutcome, WaitingRequest,
};

use crate::aggregate::Aggregator;

/// The queue's audit event name: aggregated per source (anyone can cause it).
const REQUEST_QUEUED: &str = "request_queued";
use crate::error::CoreError;
use crate::outcome::{AnswerKey, Issued, Outcome, Refusal, RejectReason};
use crate::policy::{Policy, secs};
use crate::queue::{Queue, QueueState};
use crate::request::{Request, Role};
use crate::secrets::SecretBox;

/// How often the aggregated audit entries are summarised (defaults to one
/// minute; see [`crate::aggregate`]).
pub const AUDIT_AGGREGATE_SECS: i64 = 60;

/// The provisioning service every front door calls.
#[derive(Debug)]
pub struct Provisioner {
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) ca: Arc<Ca>,
    pub(crate) secrets: SecretBox,
    clock: Arc<dyn Clock>,
    pub(crate) policy: Policy,
    aggregate: Aggregator,
    queue: Queue,
    pub(crate) pake_sessions: crate::pake::PakeSessions,
}

/// What an issuance uses up.
enum Consume {
    Nothing,
    Secret(ConsumeSecret),
    Approval,
}

/// What happened to an issuance attempt.
enum Attempt {
    Done(Outcome),
    /// The secret or approval it would consume was used by a concurrent
    /// request; nothing was recorded.
    Gone,
}

fn half_validity(not_before: UnixTime, not_after: UnixTime) -> i64 {
    let backdate = secs(idprov_ca::BACKDATE);
    (not_after.secs_since(not_before).saturating_sub(backdate) / 2).max(1)
}

fn u64_secs(s: i64) -> u64 {
    u64::try_from(s.max(0)).unwrap_or(0)
}

/// What failures are counted under: the address, or an IPv6 source's /64
/// (one host usually holds a whole /64; counting per address would let it
/// rotate through them).
pub fn lockout_source(source: IpAddr) -> String {
    match source_key(source) {
        IpAddr::V6(net) => format!("{net}/64"),
        v4 => v4.to_string(),
    }
}

/// The key per-source limits count under: the address, an IPv6 source's
/// /64, and an IPv4-mapped IPv6 address as its IPv4 form.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        v4 => v4,
    }
}

/// The status of PROTOCOL.md §4's table, and the certificate to report.
pub fn status_of(facts: &DeviceFacts) -> (ProvisionStatus, Option<&CertRecord>) {
    let status = facts.status();
    (
        status,
        facts
            .newest_valid
            .as_ref()
            .filter(|_| status == ProvisionStatus::Approved),
    )
}

impl Provisioner {
    /// The service over a registry, a CA, the secrets' sealing key and a
    /// clock, with the operator's policy.
    pub fn new(
        registry: Arc<dyn Registry>,
        ca: Arc<Ca>,
        secrets: SecretBox,
        clock: Arc<dyn Clock>,
        policy: Policy,
    ) -> Provisioner {
        Provisioner {
            registry,
            ca,
            secrets,
            clock,
            policy,
            aggregate: Aggregator::new(AUDIT_AGGREGATE_SECS),
            queue: Queue::default(),
            pake_sessions: Default::default(),
        }
    }

    /// The sealing key of OOB secrets.
    pub fn secrets(&self) -> &SecretBox {
        &self.secrets
    }

    /// The policy it decides by.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The aggregation of audit entries anyone can cause.
    pub fn aggregate(&self) -> &Aggregator {
        &self.aggregate
    }

    /// The waiting queue's fullness.
    pub fn queue_state(&self) -> QueueState {
        self.queue.state()
    }

    /// The unfinished idprov v2 runs.
    pub fn pake_sessions(&self) -> &crate::pake::PakeSessions {
        &self.pake_sessions
    }

    pub(crate) fn now(&self) -> UnixTime {
        UnixTime::from(self.clock.now())
    }

    /// Appends an audit entry on its own; a failure is logged as an error,
    /// never dropped silently.
    pub async fn append_audit_logged(&self, record: AuditRecord) {
        let event = record.event().name();
        if let Err(e) = self.registry.append_audit(record).await {
            tracing::error!(event = %event, error = %e, "an audit entry could not be written");
        }
    }

    /// Audits an event anyone on the network can cause, keyed by `key` (its
    /// source): the first of an interval now, the rest in one summary
    /// entry when the interval ends ([`crate::aggregate`]).
    pub async fn audit_unauthenticated(&self, key: &str, record: AuditRecord) {
        if self
            .aggregate
            .first(record.event().name(), key, record.at())
        {
            self.append_audit_logged(record).await;
        }
    }

    /// Writes the summaries of aggregation intervals that ended (all of
    /// them with `flush_all`, at shutdown).
    pub async fn flush_aggregated(&self, flush_all: bool) {
        for record in self.aggregate.due(self.now(), flush_all) {
            self.append_audit_logged(record).await;
        }
    }

    /// Decides on a provisioning request (§6) and records what it decided.
    pub async fn provision(&self, req: &Request) -> Result<Outcome, CoreError> {
        self.policy
            .check_device_id("deviceID", req.device_id.as_str())
            .map_err(CoreError::Invalid)?;
        if let Some(caller) = &req.caller {
            let kind = match caller.role {
                // §6 step 2: an administrator or plugin may request for any device.
                Role::Admin | Role::Plugin => Some(IssueKind::Admin),
                // §6 step 3: a device renews its own certificate.
                Role::Device if caller.name == req.device_id.as_str() => {
                    Some(if caller.spki_der == req.key.spki_der() {
                        IssueKind::Renewal
                    } else {
                        IssueKind::Rekey
                    })
                }
                _ => None,
            };
            if let Some(kind) = kind {
                return Ok(
                    match self
                        .issue(req, kind, AnswerKey::Empty, Consume::Nothing, None)
                        .await?
                    {
                        Attempt::Done(o) => o,
                        Attempt::Gone => self.waiting_outcome(),
                    },
                );
            }
        }
        self.oob(req).await
    }

    /// A v2 answer is signed with its run's key whichever branch approved
    /// it (an administrator's approval of the key included): a v2 device
    /// accepts an answer under nothing else (PROTOCOL.md §11.4).
    fn v2_answer_key(req: &Request, key: AnswerKey) -> AnswerKey {
        match req.proof.run_key() {
            Some(k) => AnswerKey::Session(crate::outcome::SessionKey(k)),
            None => key,
        }
    }

    /// §5 rule 1: any verified certificate on the connection means the
    /// empty key, else the secret the request proved. (A v2 answer is
    /// always signed with its run's key: [`Self::v2_answer_key`].)
    fn answer_key(
        req: &Request,
        secret: OobSecret,
        variant: idprov_proto::sign::KeyVariant,
    ) -> AnswerKey {
        match req.caller {
            Some(_) => AnswerKey::Empty,
            None => AnswerKey::Secret(secret, variant),
        }
    }

    /// How the request's proof verifies against the live registration
    /// `stored` (its secret opened, unless it is for v2 only): the answer's
    /// key, or `None` for a wrong proof.
    fn verify(
        req: &Request,
        stored: &idprov_store::StoredSecret,
        secret: Option<OobSecret>,
    ) -> Option<AnswerKey> {
        if let Some(key) = req.proof.verify_run(stored.id) {
            return Some(AnswerKey::Session(crate::outcome::SessionKey(key)));
        }
        let secret = secret?;
        let variant = req.proof.verify_secret(&secret)?;
        Some(Self::answer_key(req, secret, variant))
    }

    fn waiting_outcome(&self) -> Outcome {
        Outcome::Waiting {
            retry_secs: self.policy.waiting_retry.as_secs(),
        }
    }

    async fn oob(&self, req: &Request) -> Result<Outcome, CoreError> {
        let now = self.now();
        let device = req.device_id.as_str();
        let fingerprint = req.key_fingerprint();
        let src = lockout_source(req.source);
        let consumed_since = now.plus_secs(-self.policy.redelivery_window_secs());
        // Everything 4.1–4.6 read, in one registry round trip.
        let mut view = self
            .registry
            .oob_view(device, &fingerprint, &src, now, consumed_since)
            .await?;

        // A v2 run was admitted, and counted, when it started (pake.rs).
        let v2 = matches!(req.proof, crate::Proof::V2(_));
        // 4.1: a locked (device, source) pair is refused even with a correct proof.
        if !v2
            && let Some(lock) = &view.lockout
            && lock.locked_until > now
        {
            return Ok(Outcome::Refused {
                reason: Refusal::LockedOut,
                retry_after_secs: u64_secs(lock.locked_until.secs_since(now)).max(1),
            });
        }

        // 4.2: an administrator rejected this device and key.
        if let Some(r) = &view.rejection {
            tracing::info!(device_id = device, rejected_by = %r.rejected_by, "request of a rejected key");
            return Ok(Outcome::Rejected {
                retry_secs: 0,
                why: RejectReason::Administrator,
            });
        }

        // 4.3: an administrator approved this key; the approval is used up.
        if view.approval.is_some()
            && let Attempt::Done(outcome) = self
                .issue(
                    req,
                    IssueKind::Approval,
                    AnswerKey::Empty,
                    Consume::Approval,
                    Some(src.clone()),
                )
                .await?
        {
            return Ok(outcome);
        }
        // (Used by a concurrent request: go on with the other branches.)

        // 4.4 first, and again if a concurrent request consumed the secret.
        for attempt in 0..2 {
            let (consumed, live) = if attempt == 0 {
                (view.consumed.take(), view.live_secret.take())
            } else {
                (
                    self.registry
                        .consumed_secret(device, &fingerprint, consumed_since)
                        .await?,
                    self.registry.live_secret(device, now).await?,
                )
            };
            if let Some(outcome) = self.redeliver_consumed(req, now, consumed).await? {
                return Ok(outcome);
            }
            // 4.4 for the approval path: a request that proves no secret gets
            // the certificate an approval of this key issued within the
            // window, so a device that could not accept that answer is not
            // stranded with the approval used up. A request that proves a
            // live secret goes on to 4.7 instead.
            if (live.is_none() || !req.proof.is_guess())
                && let Some(serial) = view.approved_serial.take()
                && let Some(outcome) = self
                    .redeliver(req, now, &serial, AnswerKey::Empty, "approval")
                    .await?
            {
                return Ok(outcome);
            }
            // 4.5: no live secret → Waiting.
            let Some(stored) = live else {
                return self.waiting(req, now).await;
            };
            // A v2-only registration keeps no secret (PROTOCOL.md §11.1).
            let secret = match stored.sealed_secret().map(|s| self.secrets.open(device, s)) {
                None => None,
                Some(Ok(s)) => Some(s),
                Some(Err(e)) => {
                    tracing::warn!(device_id = device, error = %e, "a stored secret does not open; treating it as absent");
                    return self.waiting(req, now).await;
                }
            };
            if secret.is_none() && !v2 {
                // v1 or EST for a device registered for v2 only: there is
                // no secret to check their proof against, so it never
                // succeeds; nothing was guessed, so nothing is counted.
                tracing::info!(
                    device_id = device,
                    protocol = req.protocol.as_str(),
                    "a request for a device registered for idprov v2 only; refused"
                );
                return Ok(Outcome::Rejected {
                    retry_secs: 0,
                    why: RejectReason::V2Only,
                });
            }
            if !req.proof.is_guess() {
                // No proof is no guess: nothing to count, nothing to verify.
                return Ok(Outcome::Rejected {
                    retry_secs: 0,
                    why: RejectReason::NoProof,
                });
            }
            // 4.6 (ext): the device's budget of wrong secrets across every
            // source is spent: no guess is evaluated until its window ends.
            // The request is queued, so an administrator can approve its key
            // (4.3 comes first), and a fresh secret starts a new budget.
            if !v2
                && let Some(until) = GuessBudget::exhausted_until(
                    view.guess_budget.as_ref(),
                    stored.id,
                    &self.policy.lockout,
                    now,
                )
            {
                metrics::counter!(crate::metrics::GUESS_BUDGET_REFUSALS).increment(1);
                tracing::info!(device_id = device, source = %src, until = %until, "guess budget spent; request refused unevaluated");
                let _ = self.waiting(req, now).await;
                return Ok(Outcome::Refused {
                    reason: Refusal::GuessBudgetSpent,
                    retry_after_secs: u64_secs(until.secs_since(now)).max(1),
                });
            }
            // 4.6: a wrong proof is Rejected and counted; the secret stays.
            let Some(key) = Self::verify(req, &stored, secret) else {
                if v2 {
                    // Counted when the run started.
                    return Ok(Outcome::Rejected {
                        retry_secs: 0,
                        why: RejectReason::WrongSecret,
                    });
                }
                return self.wrong_secret(req, now, &src, stored.id).await;
            };
            // 4.7: verified → issue and consume in one transaction.
            let consume = Consume::Secret(ConsumeSecret {
                secret_id: stored.id,
                key_fingerprint: fingerprint.clone(),
            });
            match self
                .issue(req, IssueKind::Oob, key, consume, Some(src.clone()))
                .await?
            {
                Attempt::Done(outcome) => return Ok(outcome),
                Attempt::Gone if attempt == 0 => continue,
                Attempt::Gone => break,
            }
        }
        Ok(self.waiting_outcome())
    }

    /// §6 4.6: counts a wrong secret for (device, source) and the device's
    /// budget, and audits a lock or a spent budget (at a bounded rate).
    async fn wrong_secret(
        &self,
        req: &Request,
        now: UnixTime,
        src: &str,
        secret_id: i64,
    ) -> Result<Outcome, CoreError> {
        let lock = self
            .count_wrong_guess(&req.device_id, req.actor(), now, src, secret_id)
            .await?;
        Ok(Outcome::Rejected {
            retry_secs: u64_secs(lock.locked_until.secs_since(now)),
            why: RejectReason::WrongSecret,
        })
    }

    /// Counts one wrong guess at the secret `secret_id` (a v1 signature
    /// that does not verify, or a v2 run): for (device, source) and in the
    /// device's budget; audits a lock or a spent budget at a bounded rate.
    pub(crate) async fn count_wrong_guess(
        &self,
        device_id: &idprov_proto::DeviceId,
        actor: Actor,
        now: UnixTime,
        src: &str,
        secret_id: i64,
    ) -> Result<idprov_store::Lockout, CoreError> {
        let device = device_id.as_str();
        let failure = self
            .registry
            .record_failure(device, src, secret_id, now, &self.policy.lockout)
            .await?;
        let lock = failure.lockout;
        tracing::info!(device_id = device, source = %src, failures = lock.failures,
            device_failures = failure.budget.failures, "wrong secret");
        if lock.locked_until > now {
            metrics::counter!(crate::metrics::LOCKOUTS).increment(1);
        }
        if failure.lock_started > 0 {
            self.audit_unauthenticated(
                src,
                AuditRecord::new(
                    now,
                    actor.clone(),
                    AuditEvent::LockoutStarted {
                        source: src.to_owned(),
                        failures: lock.failures,
                        seconds: failure.lock_started,
                    },
                    Some(device),
                ),
            )
            .await;
        }
        if failure.budget_spent {
            let window = self.policy.lockout.device_window_secs;
            self.audit_unauthenticated(
                device,
                AuditRecord::new(
                    now,
                    actor.clone(),
                    AuditEvent::GuessBudgetSpent {
                        failures: failure.budget.failures,
                        window_seconds: window,
                        until: failure.budget.window_start.plus_secs(window),
                    },
                    Some(device),
                ),
            )
            .await;
        }
        Ok(lock)
    }

    /// §6 4.4: the same certificate again for a device whose Approved answer
    /// was lost, if its request verifies under the secret consumed for it —
    /// or, for idprov v2, if its run was against that registration and
    /// confirmed (PROTOCOL.md §11.5).
    async fn redeliver_consumed(
        &self,
        req: &Request,
        now: UnixTime,
        consumed: Option<ConsumedSecret>,
    ) -> Result<Option<Outcome>, CoreError> {
        let Some(consumed) = consumed else {
            return Ok(None);
        };
        if let Some(key) = consumed.secret_id.and_then(|id| req.proof.verify_run(id)) {
            let key = AnswerKey::Session(crate::outcome::SessionKey(key));
            return self
                .redeliver(req, now, &consumed.serial, key, "secret")
                .await;
        }
        let Some(sealed) = consumed.sealed_secret() else {
            return Ok(None);
        };
        let Ok(secret) = self.secrets.open(req.device_id.as_str(), sealed) else {
            return Ok(None);
        };
        let Some(variant) = req.proof.verify_secret(&secret) else {
            return Ok(None);
        };
        let key = Self::answer_key(req, secret, variant);
        self.redeliver(req, now, &consumed.serial, key, "secret")
            .await
    }

    /// Answers Approved with the certificate `serial` again, if it is still
    /// valid and unrevoked, and audits the re-delivery; `how` says which path
    /// issued it (`secret` or `approval`).
    async fn redeliver(
        &self,
        req: &Request,
        now: UnixTime,
        serial: &SerialNumber,
        key: AnswerKey,
        how: &'static str,
    ) -> Result<Option<Outcome>, CoreError> {
        let device = req.device_id.as_str();
        let Some(cert) = self.registry.certificate(serial).await? else {
            return Ok(None);
        };
        if cert.revoked_at.is_some() || cert.not_after < now {
            return Ok(None);
        }
        self.registry
            .append_audit(AuditRecord::new(
                now,
                req.actor(),
                AuditEvent::CertificateRedelivered {
                    serial: cert.serial.clone(),
                    key_fingerprint: req.key_fingerprint(),
                    how: how.to_owned(),
                    protocol: Some(req.protocol),
                },
                Some(device),
            ))
            .await?;
        tracing::info!(device_id = device, serial = %cert.serial, how, "certificate re-delivered");
        Ok(Some(Outcome::Approved(Issued {
            chain_pem: format!("{}{}", cert.pem, self.ca.intermediates_pem()),
            serial: cert.serial.clone(),
            not_before: cert.not_before,
            not_after: cert.not_after,
            renew_after_secs: half_validity(cert.not_before, cert.not_after),
            key: Self::v2_answer_key(req, key),
            redelivered: true,
        })))
    }

    /// §6 4.5: records the request for administrators (once per device and
    /// key, within the caps) and answers Waiting.
    async fn waiting(&self, req: &Request, now: UnixTime) -> Result<Outcome, CoreError> {
        let src = lockout_source(req.source);
        let source = req.source.to_string();
        let fingerprint = req.key_fingerprint();
        // First-seen requests are audited at a bounded rate per source; the
        // entry is prepared in case this one is new and written with it.
        let audit = self
            .aggregate
            .would_write(REQUEST_QUEUED, &src, now)
            .then(|| {
                AuditRecord::new(
                    now,
                    req.actor(),
                    AuditEvent::RequestQueued {
                        key_fingerprint: fingerprint.clone(),
                        key_type: req.key.key_type().to_string(),
                        source: source.to_string(),
                        claimed_ip: req.claimed.ip.clone(),
                        claimed_mac: req.claimed.mac.clone(),
                        protocol: Some(req.protocol),
                    },
                    Some(req.device_id.as_str()),
                )
            });
        let outcome = self
            .registry
            .record_waiting(
                WaitingRequest {
                    device_id: req.device_id.to_string(),
                    key_fingerprint: fingerprint,
                    key_type: req.key.key_type().to_string(),
                    public_key_pem: req.key.to_pem(),
                    claimed_ip: req.claimed.ip.clone(),
                    claimed_mac: req.claimed.mac.clone(),
                    source: source.clone(),
                    first_seen: now,
                    last_seen: now,
                    attempts: 1,
                    protocol: req.protocol,
                },
                self.policy.waiting_caps,
                audit,
            )
            .await?;
        let device_id = req.device_id.as_str();
        match outcome {
            WaitingOutcome::Queued => {
                self.aggregate.first(REQUEST_QUEUED, &src, now);
                self.queue.has_room();
                tracing::info!(device_id, %source, "request queued for approval");
            }
            WaitingOutcome::Evicted => {
                self.aggregate.first(REQUEST_QUEUED, &src, now);
                self.queue.full(now, true);
                tracing::info!(device_id, %source,
                    "request queued in place of an entry of the source holding the most");
            }
            WaitingOutcome::Updated => {}
            WaitingOutcome::SourceCapReached => {
                return Ok(Outcome::Refused {
                    reason: Refusal::WaitingFromSource,
                    retry_after_secs: self.policy.waiting_retry.as_secs().max(1),
                });
            }
            WaitingOutcome::TotalCapReached => {
                self.queue.full(now, false);
                tracing::warn!(device_id, %source, "waiting queue full; request not recorded");
            }
        }
        Ok(self.waiting_outcome())
    }

    /// Issues a device certificate and records it (with the secret or
    /// approval consumption, lockout reset and audit entry) in one durable
    /// transaction.
    async fn issue(
        &self,
        req: &Request,
        kind: IssueKind,
        key: AnswerKey,
        consume: Consume,
        reset_lockout_for: Option<String>,
    ) -> Result<Attempt, CoreError> {
        let now = self.clock.now();
        let issued = self
            .ca
            .issue(
                &req.key,
                &IssueParams {
                    common_name: req.device_id.as_str(),
                    organizational_unit: "iotdevice",
                    organization: &self.policy.organization,
                    usage: Usage::Client,
                    now,
                    validity: self.policy.device_validity,
                    crl_url: Some(&self.policy.crl_url),
                    ocsp_url: self.policy.ocsp_url.as_deref(),
                },
            )
            .map_err(|e| CoreError::Issue(e.to_string()))?;
        let issued_at = UnixTime::from(now);
        let fingerprint = req.key_fingerprint();
        let actor: Actor = req.actor();
        let record = IssueRecord {
            cert: NewCertificate {
                serial: issued.serial.clone(),
                kind: CertKind::Device,
                subject: req.device_id.to_string(),
                pem: issued.pem.clone(),
                key_fingerprint: fingerprint.clone(),
                key_type: req.key.key_type().to_string(),
                not_before: issued.not_before,
                not_after: issued.not_after,
                issued_at,
                issue_kind: kind,
                authorized_by: actor.to_string(),
                protocol: Some(req.protocol),
            },
            consume_secret: match &consume {
                Consume::Secret(s) => Some(s.clone()),
                _ => None,
            },
            consume_approval: match consume {
                Consume::Approval => Some(fingerprint.clone()),
                _ => None,
            },
            reset_lockout_for,
            clear_waiting_key: Some(fingerprint.clone()),
            // Any new certificate of a device supersedes its older ones
            // (renewal, re-key, or a new provisioning): once the grace
            // period is over, one device ID holds one valid certificate.
            supersede_older_at: self.policy.supersede_after.map(|d| issued_at.plus(d)),
            audit: AuditRecord::new(
                issued_at,
                actor,
                AuditEvent::CertificateIssued {
                    serial: issued.serial.clone(),
                    how: kind.as_str().to_owned(),
                    secret_used: matches!(consume, Consume::Secret(_)),
                    key_fingerprint: fingerprint.clone(),
                    key_type: req.key.key_type().to_string(),
                    not_after: issued.not_after,
                    protocol: Some(req.protocol),
                },
                Some(req.device_id.as_str()),
            ),
        };
        match self.registry.record_issue(record).await? {
            IssueOutcome::SecretGone => Ok(Attempt::Gone),
            IssueOutcome::Recorded => {
                metrics::counter!(crate::metrics::CERTIFICATES_ISSUED, "how" => kind.as_str())
                    .increment(1);
                tracing::info!(
                    device_id = %req.device_id,
                    serial = %issued.serial,
                    how = kind.as_str(),
                    protocol = req.protocol.as_str(),
                    "certificate issued"
                );
                Ok(Attempt::Done(Outcome::Approved(Issued {
                    chain_pem: format!("{}{}", issued.pem, self.ca.intermediates_pem()),
                    renew_after_secs: half_validity(issued.not_before, issued.not_after),
                    serial: issued.serial,
                    not_before: issued.not_before,
                    not_after: issued.not_after,
                    key: Self::v2_answer_key(req, key),
                    redelivered: false,
                })))
            }
        }
    }
}

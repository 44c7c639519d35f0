//! idprov v2 first contact (PROTOCOL.md §11): the server's side of a
//! SPAKE2+ run, and the unfinished runs it keeps between the device's two
//! messages.
//!
//! A run belongs to one TLS connection: it is bound to the connection's
//! exporter value, and kept under it, so only that connection can finish
//! it. What an unauthenticated client can make the server hold is bounded
//! (ARCHITECTURE.md, invariants): one run per connection, at most
//! [`SessionLimits::per_source`] per source and [`SessionLimits::total`] in
//! all, each for [`SessionLimits::lifetime`]; a run is taken out when it is
//! finished, whatever the outcome.
//!
//! Guesses are counted when a run starts, not when it ends: whoever sends
//! `shareP` learns from `confirmV` whether its guess was right without ever
//! sending `confirmP`, so every run against a registration is one guess,
//! under the same per-source lockout and per-device budget as v1's wrong
//! secrets, checked and counted before the server answers. A run the device
//! confirms issues its certificate, which clears the source's count as a
//! right v1 secret does ([`Proof::V2`] in [`crate::Provisioner::provision`]).
//!
//! A run is against the device's live registration, or, when it has none,
//! the one consumed last within the re-delivery window, so a device whose
//! Approved answer was lost runs again and is given the same certificate
//! (§6 4.4 for v2). A default registration's record is derived from its
//! sealed secret only once the run is admitted: a locked-out source costs
//! the server no KDF work.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use idprov_proto::v2::{self, Binding, KdfParams, SeededRng};
use idprov_proto::{DeviceId, UnixTime};
use zeroize::Zeroizing;

use crate::error::CoreError;
use crate::outcome::Refusal;
use crate::request::{PakeProof, Proof};
use crate::service::{Provisioner, lockout_source, source_key};

/// How many unfinished runs are kept, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// An unfinished run is forgotten after this long.
    pub lifetime: Duration,
    /// Runs kept per source (an IPv6 source counts as its /64).
    pub per_source: usize,
    /// Runs kept in all.
    pub total: usize,
}

struct Session {
    device_id: DeviceId,
    registration: Option<i64>,
    verifier: v2::Verifier,
    source: IpAddr,
    expires: UnixTime,
}

/// The unfinished runs, by the exporter value of their connection.
#[derive(Default)]
pub struct PakeSessions {
    runs: Mutex<HashMap<[u8; v2::EXPORTER_LEN], Session>>,
}

impl std::fmt::Debug for PakeSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PakeSessions")
            .field("open", &self.len())
            .finish()
    }
}

impl PakeSessions {
    /// How many runs are kept now.
    pub fn len(&self) -> usize {
        self.runs.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(
        &self,
        exporter: [u8; v2::EXPORTER_LEN],
        session: Session,
        now: UnixTime,
        limits: &SessionLimits,
    ) -> Result<(), Refusal> {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        // A new run on a connection replaces its unfinished one.
        runs.remove(&exporter);
        let key = source_key(session.source);
        let from_source = |runs: &HashMap<_, Session>| {
            runs.values()
                .filter(|s| source_key(s.source) == key)
                .count()
        };
        if runs.len() >= limits.total || from_source(&runs) >= limits.per_source {
            runs.retain(|_, s| s.expires > now);
        }
        if runs.len() >= limits.total || from_source(&runs) >= limits.per_source {
            return Err(Refusal::PakeSessions);
        }
        runs.insert(exporter, session);
        Ok(())
    }

    /// Whether a run from `source` would be kept now (checked before a
    /// guess is counted, so a refused run costs the device nothing).
    /// (A run on the same connection, which the new one replaces, does not
    /// count.)
    fn has_room(
        &self,
        exporter: &[u8; v2::EXPORTER_LEN],
        source: IpAddr,
        now: UnixTime,
        limits: &SessionLimits,
    ) -> bool {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        let key = source_key(source);
        let count = |runs: &HashMap<[u8; v2::EXPORTER_LEN], Session>| {
            let others = runs.iter().filter(|(e, _)| *e != exporter);
            (
                others.clone().count(),
                others.filter(|(_, s)| source_key(s.source) == key).count(),
            )
        };
        let (total, mine) = count(&runs);
        if total < limits.total && mine < limits.per_source {
            return true;
        }
        runs.retain(|_, s| s.expires > now);
        let (total, mine) = count(&runs);
        total < limits.total && mine < limits.per_source
    }

    fn take(&self, exporter: &[u8; v2::EXPORTER_LEN], now: UnixTime) -> Option<Session> {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.remove(exporter).filter(|s| s.expires > now)
    }
}

fn rng() -> Result<SeededRng, CoreError> {
    let mut seed = Zeroizing::new([0u8; 64]);
    aws_lc_rs::rand::fill(&mut seed[..])
        .map_err(|_| CoreError::Issue("the system's random generator failed".into()))?;
    Ok(SeededRng::new(*seed))
}

/// The registration a v2 run is against, as stored.
enum Registration {
    /// A v2-only registration: its KDF parameters and sealed record.
    Verifier(i64, KdfParams, Vec<u8>),
    /// A default registration: its sealed secret, from which the record is
    /// derived with the derived parameters (SECURITY.md, "idprov v2").
    Secret(i64, Vec<u8>),
    /// None that can run v2: a decoy run.
    None,
}

impl Registration {
    fn of(id: i64, pake: Option<idprov_store::PakeVerifier>, sealed: Vec<u8>) -> Registration {
        match pake {
            Some(p) => Registration::Verifier(
                id,
                KdfParams {
                    salt: p.salt,
                    iterations: p.iterations,
                },
                p.sealed_record,
            ),
            None if sealed.is_empty() => Registration::None,
            None => Registration::Secret(id, sealed),
        }
    }
}

/// A registration's secret side, opened: the record itself, or the secret
/// it is derived from once the run is admitted (the KDF is the costly part).
enum Opened {
    Record(Zeroizing<[u8; v2::RECORD_LEN]>),
    Secret(idprov_proto::OobSecret),
}

impl Provisioner {
    /// The KDF parameters of a device (PROTOCOL.md §11.2): a v2-only
    /// registration's own; for every other device ID, registered or not,
    /// the salt derived from the ID and the configured iterations, so the
    /// answer says nothing about which IDs exist.
    pub async fn pake_params(&self, device_id: &DeviceId) -> Result<KdfParams, CoreError> {
        self.policy
            .check_device_id("deviceID", device_id.as_str())
            .map_err(CoreError::Invalid)?;
        Ok(match self.registration(device_id).await? {
            Registration::Verifier(_, params, _) => params,
            Registration::Secret(..) | Registration::None => self.derived_params(device_id),
        })
    }

    fn derived_params(&self, device_id: &DeviceId) -> KdfParams {
        KdfParams {
            salt: self.secrets.derived_salt(device_id.as_str()),
            iterations: self.policy.v2_iterations,
        }
    }

    /// The registration a v2 run of `device_id` is against now: the live
    /// one, else the one consumed last within the re-delivery window (a
    /// device whose answer was lost runs against it again and is given the
    /// same certificate: PROTOCOL.md §11.5). Both are read whatever the
    /// first finds, so the time taken does not tell them apart.
    async fn registration(&self, device_id: &DeviceId) -> Result<Registration, CoreError> {
        let (device, now) = (device_id.as_str(), self.now());
        let live = self.registry.live_secret(device, now).await?;
        let since = now.plus_secs(-self.policy.redelivery_window_secs());
        let consumed = self.registry.last_consumed(device, since).await?;
        Ok(match (live, consumed) {
            (Some(live), _) => Registration::of(live.id, live.pake, live.sealed),
            (None, Some(c)) => match c.secret_id {
                Some(id) => Registration::of(id, c.pake, c.sealed),
                // Consumed before schema 8: no id to count guesses against.
                None => Registration::None,
            },
            (None, None) => Registration::None,
        })
    }

    /// Opens a registration's sealed record or secret (cheap: no KDF).
    fn open(&self, device_id: &DeviceId, registration: Registration) -> Option<(i64, Opened)> {
        let device = device_id.as_str();
        let opened = match registration {
            Registration::None => return None,
            Registration::Verifier(id, _, sealed) => self
                .secrets
                .open_record(device, &sealed)
                .map(|r| (id, Opened::Record(r))),
            Registration::Secret(id, sealed) => self
                .secrets
                .open(device, &sealed)
                .map(|s| (id, Opened::Secret(s))),
        };
        match opened {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::warn!(device_id = device, error = %e, "a stored secret or v2 record does not open; treating it as absent");
                None
            }
        }
    }

    /// A default registration's record, derived from its secret with the
    /// parameters [`Provisioner::pake_params`] announced, off the async
    /// runtime's threads (PBKDF2 takes milliseconds).
    async fn derive(
        &self,
        device_id: &DeviceId,
        secret: idprov_proto::OobSecret,
    ) -> Result<Zeroizing<[u8; v2::RECORD_LEN]>, CoreError> {
        let params = self.derived_params(device_id);
        let device = device_id.clone();
        tokio::task::spawn_blocking(move || {
            v2::derive(secret.expose().as_bytes(), device.as_str(), &params)
                .map(|s| s.record())
                .map_err(|e| CoreError::Issue(format!("idprov v2 record: {e}")))
        })
        .await
        .map_err(|e| CoreError::Issue(format!("idprov v2 record: {e}")))?
    }

    /// The server's answer to a device's `shareP` (PROTOCOL.md §11.3):
    /// `shareV` and `confirmV`, bound to the connection whose exporter
    /// value is `exporter`; the run is kept under it until
    /// [`Provisioner::pake_finish`]. A device without a registration that
    /// can run v2 gets a decoy run, indistinguishable until its check of
    /// `confirmV` fails.
    pub async fn pake_start(
        &self,
        device_id: &DeviceId,
        share_p: &[u8; v2::SHARE_LEN],
        exporter: &[u8; v2::EXPORTER_LEN],
        source: IpAddr,
    ) -> Result<Result<([u8; v2::SHARE_LEN], [u8; v2::CONFIRMATION_LEN]), (Refusal, u64)>, CoreError>
    {
        self.policy
            .check_device_id("deviceID", device_id.as_str())
            .map_err(CoreError::Invalid)?;
        let limits = &self.policy.v2_sessions;
        if !self
            .pake_sessions
            .has_room(exporter, source, self.now(), limits)
        {
            return Ok(Err((
                Refusal::PakeSessions,
                limits.lifetime.as_secs().max(1),
            )));
        }
        let mut rng = rng()?;
        let registration = self.registration(device_id).await?;
        let (registration, record) = match self.open(device_id, registration) {
            Some((id, opened)) => {
                // One run is one guess: refused while the source is locked
                // out or the device's budget is spent, counted otherwise —
                // before any KDF work, so a locked-out source costs none.
                if let Some(refusal) = self.admit_guess(device_id, source, id).await? {
                    return Ok(Err(refusal));
                }
                let record = match opened {
                    Opened::Record(record) => record,
                    Opened::Secret(secret) => self.derive(device_id, secret).await?,
                };
                (Some(id), record)
            }
            None => (
                None,
                v2::decoy_record(&mut rng).map_err(|e| CoreError::Issue(e.to_string()))?,
            ),
        };
        let binding = Binding::new(device_id.as_str(), &self.ca.fingerprint(), exporter);
        let (verifier, share_v, confirm_v) =
            v2::verifier_respond(&record, &binding, share_p, &mut rng)
                .map_err(|e| CoreError::Invalid(format!("field \"shareP\": {e}")))?;
        let now = self.now();
        let session = Session {
            device_id: device_id.clone(),
            registration,
            verifier,
            source,
            expires: now.plus(self.policy.v2_sessions.lifetime),
        };
        Ok(self
            .pake_sessions
            .insert(*exporter, session, now, limits)
            .map(|()| (share_v, confirm_v))
            .map_err(|r| (r, limits.lifetime.as_secs().max(1))))
    }

    /// Checks the lockout of (device, source) and the device's guess
    /// budget against registration `id`, and counts the run as a wrong
    /// guess (undone for the source when the run is confirmed and issues).
    async fn admit_guess(
        &self,
        device_id: &DeviceId,
        source: IpAddr,
        id: i64,
    ) -> Result<Option<(Refusal, u64)>, CoreError> {
        let device = device_id.as_str();
        let now = self.now();
        let src = lockout_source(source);
        if let Some(lock) = self.registry.lockout(device, &src).await?
            && lock.locked_until > now
        {
            return Ok(Some((
                Refusal::LockedOut,
                u64::try_from(lock.locked_until.secs_since(now))
                    .unwrap_or(0)
                    .max(1),
            )));
        }
        let budget = self.registry.guess_budget(device).await?;
        if let Some(until) = idprov_store::GuessBudget::exhausted_until(
            budget.as_ref(),
            id,
            &self.policy.lockout,
            now,
        ) {
            metrics::counter!(crate::metrics::GUESS_BUDGET_REFUSALS).increment(1);
            return Ok(Some((
                Refusal::GuessBudgetSpent,
                u64::try_from(until.secs_since(now)).unwrap_or(0).max(1),
            )));
        }
        let actor = idprov_store::Actor::source(&source.to_string());
        self.count_wrong_guess(device_id, actor, now, &src, id)
            .await?;
        Ok(None)
    }

    /// The proof of the device's second message (PROTOCOL.md §11.4): its
    /// `confirmP`, and its provisioning request signed with the run's
    /// `K_request`, checked against the run of this connection (taken out:
    /// a run is finished once). The proof goes into a [`crate::Request`]
    /// for [`Provisioner::provision`], which counts a wrong one.
    pub fn pake_finish(
        &self,
        request: &v2::FinishRequest,
        confirm_p: &[u8; v2::CONFIRMATION_LEN],
        exporter: &[u8; v2::EXPORTER_LEN],
    ) -> Result<Proof, CoreError> {
        let session = self.pake_sessions.take(exporter, self.now()).ok_or_else(|| {
            CoreError::Invalid(
                "no unfinished idprov v2 run on this TLS connection: send shareP to /idprov/v2/start \
                 on the same connection first (a run lasts a minute)"
                    .into(),
            )
        })?;
        if session.device_id.as_str() != request.device_id {
            return Err(CoreError::Invalid(
                "field \"deviceID\": not the device of this connection's idprov v2 run".into(),
            ));
        }
        let answer_key = session
            .verifier
            .finish(confirm_p)
            .ok()
            .filter(|keys| request.verify(keys))
            .map(|keys| keys.answer_key());
        Ok(Proof::V2(PakeProof {
            registration: session.registration,
            answer_key,
        }))
    }
}

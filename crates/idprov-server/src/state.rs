//! What every request handler shares.

use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use idprov_ca::Ca;
use idprov_proto::clock::Clock;
use idprov_proto::{Directory, SerialNumber, UnixTime};
use idprov_store::Registry;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::routes::{CRL_PATH, OCSP_PATH};
use crate::secrets::SecretBox;

/// The shared state, cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of the shared state.
#[derive(Debug)]
pub struct Inner {
    /// The validated configuration.
    pub config: ServerConfig,
    /// The certificate authority.
    pub ca: Arc<Ca>,
    /// The registry.
    pub registry: Arc<dyn Registry>,
    /// The provisioning core: the decision every front door calls, with the
    /// sealing key, the audit aggregation and the queue's state.
    pub core: Arc<idprov_core::Provisioner>,
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
    /// The directory document, encoded once.
    pub directory_json: Bytes,
    /// The CRL distribution point written into device certificates.
    pub crl_url: String,
    /// The OCSP responder written into device certificates, when the
    /// revocation listener is configured.
    pub ocsp_url: Option<String>,
    /// The OCSP responder and its cache of signed answers.
    pub ocsp: crate::ocsp::OcspService,
    /// Revocation requests per source (both listeners).
    pub revocation_limiter: crate::limits::RateLimiter,
    /// Connections and new connections per source on the revocation
    /// listener (its own counts, apart from the TLS listener's).
    pub revocation_limits: std::sync::Arc<crate::limits::ConnectionLimits>,
    /// The `crl.on_publish` command, run after each CRL publication.
    pub crl_hook: crate::crl::PublishHook,
    /// Serializes CRL regeneration.
    pub crl_lock: tokio::sync::Mutex<()>,
    /// During a rollover's transition, the previous CA's CRL (DER), signed
    /// with each publication of the current one.
    pub previous_crl: std::sync::Mutex<Option<Vec<u8>>>,
    /// Provisioning requests per source.
    pub provisioning_limiter: crate::limits::RateLimiter,
    /// Connections and handshakes per source.
    pub connection_limits: std::sync::Arc<crate::limits::ConnectionLimits>,
    /// The web page's sessions, sign-in token and sign-in limiter.
    pub web: crate::web::WebState,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Assembles the state.
    pub fn new(
        config: ServerConfig,
        ca: Arc<Ca>,
        registry: Arc<dyn Registry>,
        secrets: SecretBox,
        clock: Arc<dyn Clock>,
        responders: Vec<idprov_ca::ocsp::Responder>,
    ) -> AppState {
        let directory = Directory::new(ca.chain_pem(), config.services.clone());
        let directory = if config.v2 {
            directory.with_v2()
        } else {
            directory
        };
        let directory_json = Bytes::from(directory.to_json());
        // Certificates name the plain-HTTP revocation listener when there
        // is one (CRL and OCSP), else the TLS listener's CRL as before.
        let (crl_url, ocsp_url) = match &config.revocation {
            Some(r) => {
                let base = r.base_url(&config.public_name);
                (
                    format!("{base}{CRL_PATH}"),
                    Some(format!("{base}{OCSP_PATH}")),
                )
            }
            None => (
                format!(
                    "https://{}:{}{CRL_PATH}",
                    crate::config::url_host(&config.public_name),
                    config.port()
                ),
                None,
            ),
        };
        // During a rollover's transition the distribution point above
        // serves the previous CA's CRL (its certificates name it); what the
        // new CA issues names a CRL of its own (routes::crl).
        let crl_url = match ca.previous() {
            Some(_) => format!("{crl_url}/{}", ca.fingerprint()),
            None => crl_url,
        };
        let provisioning_limiter =
            crate::limits::RateLimiter::new(config.provisioning_rate, config.provisioning_burst);
        let connection_limits = crate::limits::ConnectionLimits::new(
            config.source_connections,
            config.total_connections,
            config.handshake_rate,
            config.handshake_burst,
        );
        let core = Arc::new(idprov_core::Provisioner::new(
            registry.clone(),
            ca.clone(),
            secrets,
            clock.clone(),
            idprov_core::Policy {
                organization: config.organization.clone(),
                device_validity: config.device_validity,
                crl_url: crl_url.clone(),
                ocsp_url: ocsp_url.clone(),
                supersede_after: config.supersede_after,
                redelivery_window: config.redelivery_window,
                lockout: config.lockout,
                waiting_caps: config.waiting_caps,
                waiting_retry: config.waiting_retry,
                reserved_device_ids: config.reserved_device_ids.clone(),
                v2_iterations: config.v2_kdf_iterations,
                v2_sessions: idprov_core::SessionLimits {
                    lifetime: config.v2_session_lifetime,
                    per_source: crate::defaults::V2_SESSIONS_PER_SOURCE,
                    total: crate::defaults::V2_SESSIONS_TOTAL,
                },
            },
        ));
        let revocation_limiter =
            crate::limits::RateLimiter::new(config.revocation_rate, config.revocation_burst);
        let revocation_limits = crate::limits::ConnectionLimits::new(
            config.source_connections,
            config.total_connections,
            config.revocation_rate,
            config.revocation_burst,
        );
        let crl_hook = crate::crl::PublishHook::new(config.crl_on_publish.clone());
        AppState(Arc::new(Inner {
            config,
            ca,
            registry,
            core,
            clock,
            directory_json,
            crl_url,
            ocsp_url,
            ocsp: crate::ocsp::OcspService::new(responders),
            revocation_limiter,
            revocation_limits,
            crl_hook,
            crl_lock: tokio::sync::Mutex::new(()),
            previous_crl: std::sync::Mutex::new(None),
            provisioning_limiter,
            connection_limits,
            web: crate::web::WebState::default(),
        }))
    }

    /// The sealing key of OOB secrets.
    pub fn secrets(&self) -> &SecretBox {
        self.core.secrets()
    }

    /// Whether a certificate serial has been revoked.
    pub async fn is_revoked(&self, serial: &SerialNumber) -> Result<bool, ApiError> {
        Ok(self
            .registry
            .certificate(serial)
            .await?
            .is_some_and(|c| c.revoked_at.is_some()))
    }

    /// Counts a refusal by a limit, and audits it (at a bounded rate).
    pub fn note_limited(&self, source: std::net::IpAddr, limit: &'static str) {
        metrics::counter!(crate::observe::RATE_LIMITED, "limit" => limit).increment(1);
        let key = crate::limits::source_key(source).to_string();
        let now = self.now_unix();
        if !self.core.aggregate().first("rate_limited", &key, now) {
            return;
        }
        tracing::warn!(source = %source, limit, "source rate limited");
        let core = self.core.clone();
        tokio::spawn(async move {
            core.append_audit_logged(idprov_store::AuditRecord::new(
                now,
                idprov_store::Actor::source(&source.to_string()),
                idprov_store::AuditEvent::RateLimited {
                    source: source.to_string(),
                    limit: limit.to_owned(),
                },
                None,
            ))
            .await;
        });
    }

    /// Audits an event anyone on the network can cause (see
    /// [`idprov_core::Provisioner::audit_unauthenticated`]).
    pub async fn audit_unauthenticated(&self, key: &str, record: idprov_store::AuditRecord) {
        self.core.audit_unauthenticated(key, record).await;
    }

    /// Writes the summaries of aggregation intervals that ended (all of
    /// them with `flush_all`, at shutdown).
    pub async fn flush_aggregated(&self, flush_all: bool) {
        self.core.flush_aggregated(flush_all).await;
    }

    /// The waiting queue's fullness.
    pub fn queue_state(&self) -> idprov_core::QueueState {
        self.core.queue_state()
    }

    /// Now, as a Unix time.
    pub fn now_unix(&self) -> UnixTime {
        UnixTime::from(self.clock.now())
    }
}

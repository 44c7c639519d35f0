//! What every request handler shares.

use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use idprov_ca::Ca;
use idprov_proto::Directory;
use idprov_proto::clock::Clock;
use idprov_store::Registry;

use crate::config::ServerConfig;
use crate::error::ApiError;
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
    /// Seals and opens OOB secrets.
    pub secrets: SecretBox,
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
    /// The directory document, encoded once.
    pub directory_json: Bytes,
    /// The CRL distribution point written into device certificates.
    pub crl_url: String,
    /// Serializes CRL regeneration.
    pub crl_lock: tokio::sync::Mutex<()>,
    /// Provisioning requests per source.
    pub provisioning_limiter: crate::limits::RateLimiter,
    /// Connections and handshakes per source.
    pub connection_limits: std::sync::Arc<crate::limits::ConnectionLimits>,
    /// The web page's sessions, sign-in token and sign-in limiter.
    pub web: crate::web::WebState,
    /// When each source was last audited as rate limited (once a minute).
    pub limit_audited:
        std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, std::time::Instant>>,
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
    ) -> AppState {
        let directory_json =
            Bytes::from(Directory::new(ca.chain_pem(), config.services.clone()).to_json());
        let host = if config.public_name.contains(':') && !config.public_name.starts_with('[') {
            format!("[{}]", config.public_name)
        } else {
            config.public_name.clone()
        };
        let crl_url = format!("https://{host}:{}/idprov/crl", config.port());
        let provisioning_limiter =
            crate::limits::RateLimiter::new(config.provisioning_rate, config.provisioning_burst);
        let connection_limits = crate::limits::ConnectionLimits::new(
            config.source_connections,
            config.total_connections,
            config.handshake_rate,
            config.handshake_burst,
        );
        AppState(Arc::new(Inner {
            config,
            ca,
            registry,
            secrets,
            clock,
            directory_json,
            crl_url,
            crl_lock: tokio::sync::Mutex::new(()),
            provisioning_limiter,
            connection_limits,
            limit_audited: std::sync::Mutex::new(std::collections::HashMap::new()),
            web: crate::web::WebState::default(),
        }))
    }

    /// Whether a certificate serial has been revoked.
    pub async fn is_revoked(&self, serial: &str) -> Result<bool, ApiError> {
        Ok(self
            .registry
            .certificate(serial)
            .await?
            .is_some_and(|c| c.revoked_at.is_some()))
    }

    /// Counts a refusal by a limit, and audits it once a minute per source.
    pub fn note_limited(&self, source: std::net::IpAddr, limit: &'static str) {
        metrics::counter!(crate::observe::RATE_LIMITED, "limit" => limit).increment(1);
        let key = crate::limits::source_key(source);
        let now = std::time::Instant::now();
        {
            let mut seen = self.limit_audited.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() > 10_000 {
                seen.retain(|_, t| now.duration_since(*t) < std::time::Duration::from_secs(60));
            }
            match seen.get(&key) {
                Some(t) if now.duration_since(*t) < std::time::Duration::from_secs(60) => return,
                _ => {
                    seen.insert(key, now);
                }
            }
        }
        tracing::warn!(source = %source, limit, "source rate limited");
        let registry = self.registry.clone();
        let at = self.now_unix();
        tokio::spawn(async move {
            let _ = registry
                .append_audit(idprov_store::AuditRecord::new(
                    at,
                    idprov_store::Actor::source(&source.to_string()),
                    "rate_limited",
                    None,
                    serde_json::json!({ "source": source.to_string(), "limit": limit }),
                ))
                .await;
        });
    }

    /// Now, in Unix seconds.
    pub fn now_unix(&self) -> i64 {
        idprov_proto::clock::unix_seconds(self.clock.now())
    }
}

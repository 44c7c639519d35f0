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
        AppState(Arc::new(Inner {
            config,
            ca,
            registry,
            secrets,
            clock,
            directory_json,
            crl_url,
            crl_lock: tokio::sync::Mutex::new(()),
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

    /// Now, in Unix seconds.
    pub fn now_unix(&self) -> i64 {
        idprov_proto::clock::unix_seconds(self.clock.now())
    }
}

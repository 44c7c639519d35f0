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
    /// Audit entries anyone can cause, at a bounded rate.
    pub aggregate: crate::aggregate::Aggregator,
    /// Whether the waiting queue is full, since when, and what that cost.
    pub queue: std::sync::Mutex<QueueState>,
}

/// The waiting queue's fullness, as this replica saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueState {
    /// Full since (Unix seconds), while it is.
    pub full_since: Option<i64>,
    /// First-seen requests not recorded since then.
    pub not_recorded: u64,
    /// Entries of sources holding the most evicted for others since then.
    pub evicted: u64,
}

impl AppState {
    /// The queue made room for a request again: it is no longer full.
    pub fn queue_has_room(&self) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(since) = q.full_since {
            tracing::info!(
                since,
                not_recorded = q.not_recorded,
                evicted = q.evicted,
                "the waiting queue has room again"
            );
            *q = QueueState::default();
            metrics::gauge!(crate::observe::QUEUE_IS_FULL).set(0.0);
        }
    }

    /// The queue was full at `now`; `recorded` when an entry was evicted
    /// to record this request.
    pub fn queue_full(&self, now: i64, recorded: bool) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.full_since.is_none() {
            q.full_since = Some(now);
            metrics::gauge!(crate::observe::QUEUE_IS_FULL).set(1.0);
        }
        if recorded {
            q.evicted += 1;
            metrics::counter!(crate::observe::QUEUE_EVICTED).increment(1);
        } else {
            q.not_recorded += 1;
            metrics::counter!(crate::observe::QUEUE_FULL).increment(1);
        }
    }

    /// The queue's state now.
    pub fn queue_state(&self) -> QueueState {
        *self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
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
            queue: std::sync::Mutex::new(QueueState::default()),
            aggregate: crate::aggregate::Aggregator::new(
                i64::try_from(crate::defaults::AUDIT_AGGREGATE_INTERVAL.as_secs()).unwrap_or(60),
            ),
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

    /// Counts a refusal by a limit, and audits it (at a bounded rate).
    pub fn note_limited(&self, source: std::net::IpAddr, limit: &'static str) {
        metrics::counter!(crate::observe::RATE_LIMITED, "limit" => limit).increment(1);
        let key = crate::limits::source_key(source).to_string();
        let now = self.now_unix();
        if !self.aggregate.first("rate_limited", &key, now) {
            return;
        }
        tracing::warn!(source = %source, limit, "source rate limited");
        let state = self.clone();
        tokio::spawn(async move {
            state
                .append_audit_logged(idprov_store::AuditRecord::new(
                    now,
                    idprov_store::Actor::source(&source.to_string()),
                    "rate_limited",
                    None,
                    serde_json::json!({ "source": source.to_string(), "limit": limit }),
                ))
                .await;
        });
    }

    /// Audits an event anyone on the network can cause, keyed by `key` (its
    /// source): the first of an interval now, the rest in one summary
    /// entry when the interval ends ([`crate::aggregate`]).
    pub async fn audit_unauthenticated(
        &self,
        event: &'static str,
        key: &str,
        record: idprov_store::AuditRecord,
    ) {
        if self.aggregate.first(event, key, record.at) {
            self.append_audit_logged(record).await;
        }
    }

    /// Appends an audit entry on its own; a failure is logged as an error,
    /// never dropped silently.
    pub async fn append_audit_logged(&self, record: idprov_store::AuditRecord) {
        let event = record.event.clone();
        if let Err(e) = self.registry.append_audit(record).await {
            tracing::error!(event = %event, error = %e, "an audit entry could not be written");
        }
    }

    /// Writes the summaries of aggregation intervals that ended (all of
    /// them with `flush_all`, at shutdown).
    pub async fn flush_aggregated(&self, flush_all: bool) {
        for record in self.aggregate.due(self.now_unix(), flush_all) {
            self.append_audit_logged(record).await;
        }
    }

    /// Now, in Unix seconds.
    pub fn now_unix(&self) -> i64 {
        idprov_proto::clock::unix_seconds(self.clock.now())
    }
}

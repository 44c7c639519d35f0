//! Starting and stopping the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use idprov_proto::clock::{Clock, SystemClock};
use idprov_store::{PostgresRegistry, Registry, SqliteRegistry};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::bootstrap;
use crate::config::{Database, SecretKeySource, ServerConfig};
use crate::datadir::{DataDir, files};
use crate::defaults;
use crate::error::StartError;
use crate::listener::{self, Timeouts, Transport};
use crate::routes;
use crate::secrets::SecretBox;
use crate::state::AppState;

/// How often expired secrets and stale re-delivery records are swept, and
/// the server certificate checked.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Choices that are not configuration: injected time, and TLS resumption
/// (on by default; the benchmark turns it off to measure full handshakes).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Wall-clock time for validity, expiry and lockouts.
    pub clock: Arc<dyn Clock>,
    /// Whether TLS sessions may be resumed.
    pub tls_resumption: bool,
    /// How often the sweeper runs (tests shorten it).
    pub sweep_interval: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            clock: Arc::new(SystemClock),
            tls_resumption: true,
            sweep_interval: SWEEP_INTERVAL,
        }
    }
}

/// The registry behind the server, for closing it on shutdown.
#[derive(Debug)]
enum Backend {
    Sqlite(Arc<SqliteRegistry>),
    Postgres(Arc<PostgresRegistry>),
}

impl Backend {
    fn registry(&self) -> Arc<dyn Registry> {
        match self {
            Backend::Sqlite(r) => r.clone(),
            Backend::Postgres(r) => r.clone(),
        }
    }

    /// Finishes queued writes and closes connections.
    async fn close(&self) {
        match self {
            Backend::Sqlite(r) => {
                let r = r.clone();
                let _ = tokio::task::spawn_blocking(move || r.close()).await;
            }
            Backend::Postgres(r) => r.close(),
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct RunningServer {
    addrs: Vec<SocketAddr>,
    revocation_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    backend: Backend,
    state: AppState,
    signin_token: Option<zeroize::Zeroizing<String>>,
    advert: Option<crate::dnssd::Advert>,
    _dir: DataDir,
}

fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |source| StartError::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // Dual-stack: `[::]` accepts IPv4 too, whatever the system default.
        socket.set_only_v6(false).map_err(err)?;
    }
    socket.set_reuse_address(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(1024).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    TcpListener::from_std(socket.into()).map_err(err)
}

/// Starts the server: data directory, registry, CA, credentials, listeners.
pub async fn start(
    config: ServerConfig,
    options: ServerOptions,
) -> Result<RunningServer, StartError> {
    // Install the metrics recorder before anything is measured.
    crate::observe::prometheus();
    let clock = options.clock.clone();
    let now = clock.now();
    // SQLite: the directory is this server's alone while it runs. PostgreSQL:
    // replicas may share it, and take turns only while settling its files.
    let mut dir = match &config.database {
        Database::Sqlite => DataDir::open(&config.data_dir, true)?,
        Database::Postgres(_) => DataDir::open_shared(&config.data_dir, Duration::from_secs(120))?,
    };
    let backend = match &config.database {
        Database::Sqlite => {
            Backend::Sqlite(Arc::new(SqliteRegistry::open(&dir.path(files::DATABASE))?))
        }
        Database::Postgres(url) => {
            Backend::Postgres(Arc::new(PostgresRegistry::connect(url).await?))
        }
    };
    let registry = backend.registry();
    let secrets = match &config.secret_key {
        // PostgreSQL mode keeps secrets (PRODUCT.md): without a configured
        // key, one in the data directory, shared by replicas sharing it.
        SecretKeySource::Ephemeral if config.database.is_postgres() => {
            crate::secrets::from_file(&dir.path(files::SECRETS_KEY), true)?
        }
        SecretKeySource::Ephemeral => {
            SecretBox::ephemeral().map_err(|e| StartError::EphemeralKey(e.to_string()))?
        }
        SecretKeySource::File(path) => crate::secrets::from_file(path, false)?,
        SecretKeySource::Inline(text) => crate::secrets::from_text(text)?,
    };
    if config.database.is_postgres() {
        // Every replica must seal with the same key; one with another key
        // would purge the others' secrets below.
        for (key_id, count) in registry.secret_key_ids().await? {
            if key_id != secrets.key_id() && count > 0 {
                return Err(StartError::Store(idprov_store::StoreError::Conflict(
                    format!(
                        "the database holds {count} OOB secrets sealed with another key (key id {key_id}): \
                     every replica must use the same secrets key (share the data directory's {}, \
                     or configure the same secrets.key_file)",
                        files::SECRETS_KEY
                    ),
                )));
            }
        }
    }
    let unix_now = idprov_proto::UnixTime::from(now);
    let (unreadable, expired) = registry
        .purge_secrets(
            secrets.key_id(),
            unix_now,
            unix_now.minus(config.redelivery_window),
            idprov_core::sweep::secrets_swept(unix_now),
        )
        .await?;
    if unreadable > 0 {
        tracing::info!(
            count = unreadable,
            "removed OOB secrets sealed before this start (secrets are not persistent; configure secrets.key_file to keep them)"
        );
    }
    if expired > 0 {
        tracing::info!(count = expired, "removed expired OOB secrets");
    }
    let ca = Arc::new(bootstrap::load_or_generate_ca(&config, &dir, now)?);
    let credential = bootstrap::server_credential(&config, &ca, &*registry, now).await?;
    bootstrap::local_admin_credential(&config, &dir, &ca, &*registry, now).await?;
    let responder = bootstrap::ocsp_responder(&config, &ca, &*registry, now).await?;
    let certs = crate::tls::CertSwap::new(&credential)?;
    let resumption = options.tls_resumption && config.tls_session_resumption;
    let tls = crate::tls::server_config(&ca, certs.clone(), clock.clone(), resumption)?;
    let acceptor = TlsAcceptor::from(tls);
    if config.database.is_postgres() {
        dir.release_lock();
    }

    let listeners = config
        .listen
        .iter()
        .map(|a| bind(*a))
        .collect::<Result<Vec<_>, _>>()?;
    let addrs = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect::<Vec<_>>();
    // The plain-HTTP revocation listener, when configured.
    let revocation_listener = config
        .revocation
        .as_ref()
        .map(|r| bind(r.listen))
        .transpose()?;
    let revocation_addr = revocation_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok());
    let mut config = config;
    if let (Some(r), Some(bound)) = (config.revocation.as_mut(), revocation_addr)
        && r.listen.port() == 0
        && r.public_url.is_none()
    {
        // Port 0 picks a free port: the URL names the one bound.
        r.listen = bound;
    }
    let timeouts = Timeouts {
        handshake: config.handshake_timeout,
        header: config.header_timeout,
        idle: config.idle_timeout,
        shutdown_grace: defaults::SHUTDOWN_GRACE,
    };
    tracing::info!(
        listen = ?addrs,
        revocation_listen = ?revocation_addr,
        data_dir = %config.data_dir.display(),
        ca_fingerprint = %ca.fingerprint(),
        secrets_persistent = secrets.is_persistent(),
        "idprov server ready"
    );
    let advert = match (&config.dns_sd_instance, addrs.first()) {
        (Some(instance), Some(addr)) => Some(crate::dnssd::Advert::publish(instance, addr.port())?),
        _ => None,
    };
    let state = AppState::new(config, ca, registry, secrets, clock, responder);
    // An empty CRL exists from the first start; later starts refresh a stale one.
    crate::crl::current(&state)
        .await
        .map_err(|e| StartError::Crl(format!("{e:?}")))?;
    // The web page's first sign-in, for a directory without web passwords.
    let signin_token = crate::web::bootstrap_token(&state, dir.root()).await?;
    let router = routes::router(state.clone());
    let (shutdown, rx) = watch::channel(false);
    let mut tasks: Vec<JoinHandle<()>> = listeners
        .into_iter()
        .map(|l| {
            tokio::spawn(listener::serve(
                l,
                Transport::Tls(acceptor.clone()),
                router.clone(),
                state.clone(),
                state.connection_limits.clone(),
                timeouts,
                rx.clone(),
            ))
        })
        .collect();
    if let Some(l) = revocation_listener {
        tasks.push(tokio::spawn(listener::serve(
            l,
            Transport::Plain,
            routes::revocation_router(state.clone()),
            state.clone(),
            state.revocation_limits.clone(),
            timeouts,
            rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(sweep(
        state.clone(),
        certs,
        options.sweep_interval,
        rx,
    )));
    Ok(RunningServer {
        addrs,
        revocation_addr,
        shutdown,
        tasks,
        backend,
        state,
        advert,
        signin_token,
        _dir: dir,
    })
}

/// Once a minute: removes expired secrets, stale re-delivery records, stale
/// waiting requests and lapsed approvals; revokes superseded certificates
/// whose grace period is over (when configured); re-issues the CRL daily
/// (and after such revocations); renews the server's TLS certificate and
/// the OCSP responder's; signs the audit head at the checkpoint interval.
/// Signs a last checkpoint on shutdown.
async fn sweep(
    state: AppState,
    certs: Arc<crate::tls::CertSwap>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_checkpoint = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {
                state.flush_aggregated(true).await;
                if let Err(e) = crate::checkpoint::sign_head(&state).await {
                    tracing::warn!(error = ?e, "signing the final audit checkpoint failed");
                }
                return;
            }
        }
        state.flush_aggregated(false).await;
        let now = state.now_unix();
        if let Err(e) = state
            .registry
            .purge_secrets(
                state.secrets().key_id(),
                now,
                now.minus(state.config.redelivery_window),
                idprov_core::sweep::secrets_swept(now),
            )
            .await
        {
            tracing::warn!(error = %e, "sweeping expired secrets failed");
        }
        if let Err(e) = state
            .registry
            .expire_queue(
                now.minus(state.config.waiting_lifetime),
                now,
                idprov_core::sweep::queue_swept(now),
            )
            .await
        {
            tracing::warn!(error = %e, "expiring the waiting queue failed");
        }
        revoke_superseded(&state, now).await;
        if let Err(e) = crate::crl::current(&state).await {
            tracing::warn!(error = ?e, "refreshing the CRL failed");
        }
        renew_ocsp_responder(&state).await;
        // The server certificate: re-issued when a third of its validity is
        // left or the machine's names or addresses changed, then swapped in.
        match bootstrap::server_credential(
            &state.config,
            &state.ca,
            &*state.registry,
            state.clock.now(),
        )
        .await
        {
            Ok(credential) if credential.chain.first() != Some(&certs.current_leaf()) => {
                match certs.swap(&credential) {
                    Ok(()) => tracing::info!("now serving the re-issued server certificate"),
                    Err(e) => {
                        tracing::warn!(error = %e, "the re-issued server certificate could not be loaded")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "checking the server certificate failed"),
        }
        if last_checkpoint.elapsed() >= state.config.checkpoint_interval {
            last_checkpoint = std::time::Instant::now();
            if let Err(e) = crate::checkpoint::sign_head(&state).await {
                tracing::warn!(error = ?e, "signing an audit checkpoint failed");
            }
        }
    }
}

/// Revokes the certificates a newer one of their device superseded once
/// their grace period is over (`certificates.revoke_superseded_after`), and
/// publishes the CRL when it did.
async fn revoke_superseded(state: &AppState, now: idprov_proto::UnixTime) {
    if state.config.supersede_after.is_none() {
        return;
    }
    match state
        .registry
        .revoke_superseded(now, idprov_core::sweep::superseded(now))
        .await
    {
        Ok(revoked) if revoked.is_empty() => {}
        Ok(revoked) => {
            metrics::counter!(crate::observe::CERTIFICATES_REVOKED).increment(revoked.len() as u64);
            tracing::info!(count = revoked.len(), "superseded certificates revoked");
            if let Err(e) = crate::crl::regenerate(state).await {
                tracing::warn!(error = ?e, "publishing the CRL after revoking superseded certificates failed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "revoking superseded certificates failed"),
    }
}

/// Re-issues the OCSP responder's certificate when a third of it is left
/// (audited), and answers with whichever responder the data directory now
/// holds (a replica sharing it may have renewed it).
async fn renew_ocsp_responder(state: &AppState) {
    match bootstrap::ocsp_responder(
        &state.config,
        &state.ca,
        &*state.registry,
        state.clock.now(),
    )
    .await
    {
        Ok(responder) if responder.cert_der() != state.ocsp.responder().cert_der() => {
            state.ocsp.replace(responder);
            tracing::info!("now answering OCSP with the re-issued responder certificate");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "checking the OCSP responder certificate failed"),
    }
}

impl RunningServer {
    /// The bound addresses (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The plain-HTTP revocation listener's address, when it is configured.
    pub fn revocation_addr(&self) -> Option<SocketAddr> {
        self.revocation_addr
    }

    /// The one-time web sign-in token created by this start, if any: for
    /// `idprov serve` to show on a terminal (it is also in the data
    /// directory's `signin-token`, 0600; never in the logs).
    pub fn signin_token(&self) -> Option<&str> {
        self.signin_token.as_deref().map(String::as_str)
    }

    /// The shared state (tests inspect the registry through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting, lets requests in flight finish, flushes the registry.
    pub async fn shutdown(self) {
        if let Some(advert) = self.advert {
            advert.withdraw().await;
        }
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.backend.close().await;
        tracing::info!("idprov server stopped");
    }
}

//! The test kit: starts the **real** idprov server on `127.0.0.1:0` in a
//! temporary data directory (DNS-SD off, an injected clock), and hands back
//! clients configured for it — anonymous, administrator, or a device's own
//! certificate — so tests go through real TLS and HTTP.

pub mod postgres;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use idprov_ca::{Ca, KeyAlgorithm, KeyPair};
use idprov_client::{AdminClient, Credentials};
use idprov_proto::clock::ManualClock;
use idprov_proto::{ProvisionRequest, ProvisionResponse};
use idprov_server::datadir::files;
use idprov_server::{RunningServer, ServerConfig, ServerOptions};
use idprov_store::Registry;
use tempfile::TempDir;
use zeroize::Zeroizing;

/// True when the suite runs against PostgreSQL (`IDPROV_TEST_BACKEND=postgres`,
/// the second pass of `./test.sh`): every [`TestServer`] then gets a fresh
/// database of a throw-away cluster instead of its SQLite file.
pub fn postgres_backend() -> bool {
    std::env::var("IDPROV_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// For tests of SQLite specifics (the file, its journal): true, after
/// printing why, when the suite runs on PostgreSQL and the test should stop.
pub fn skip_unless_sqlite(what: &str) -> bool {
    if postgres_backend() {
        eprintln!("skipping on PostgreSQL: {what} is SQLite-specific");
        return true;
    }
    false
}

/// A running server in a temporary directory.
#[derive(Debug)]
pub struct TestServer {
    dir: TempDir,
    server: Option<RunningServer>,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its clock; advance it to expire things.
    pub clock: Arc<ManualClock>,
    /// The configuration it runs with.
    pub config: ServerConfig,
    resumption: bool,
    sweep_interval: Duration,
}

/// Options for [`TestServer::start_with`].
pub struct Setup {
    /// Adjust the configuration before start.
    pub configure: Box<dyn FnOnce(&mut ServerConfig) + Send>,
    /// Whether TLS sessions may be resumed.
    pub resumption: bool,
    /// How often the server's sweeper runs (the server's default unless a
    /// test needs to watch it act).
    pub sweep_interval: Duration,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("resumption", &self.resumption)
            .field("sweep_interval", &self.sweep_interval)
            .finish_non_exhaustive()
    }
}

impl Setup {
    /// With the plain-HTTP revocation listener on a free loopback port
    /// (certificates then name it, as `http://127.0.0.1:PORT`: relying
    /// parties such as nginx need no resolver for it), and `configure`
    /// applied after.
    pub fn with_revocation_listener(
        configure: impl FnOnce(&mut ServerConfig) + Send + 'static,
    ) -> Setup {
        Setup {
            configure: Box::new(move |c| {
                c.public_name = "127.0.0.1".into();
                c.revocation = Some(idprov_server::config::RevocationListener {
                    listen: "127.0.0.1:0".parse().expect("address"),
                    public_url: None,
                });
                configure(c);
            }),
            ..Setup::default()
        }
    }
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            configure: Box::new(|_| {}),
            resumption: true,
            sweep_interval: idprov_server::SWEEP_INTERVAL,
        }
    }
}

impl TestServer {
    /// Starts a server with the default configuration.
    pub async fn start() -> TestServer {
        Self::start_with(Setup::default()).await
    }

    /// Starts a server after adjusting its configuration.
    pub async fn start_with(setup: Setup) -> TestServer {
        let dir = tempfile::tempdir().expect("temporary data directory");
        let mut config = ServerConfig::with_data_dir(&dir.path().join("data")).expect("defaults");
        config.listen = vec!["127.0.0.1:0".parse().expect("address")];
        config.dns_sd_instance = None;
        config.public_name = "localhost".into();
        if postgres_backend() {
            let url = postgres::fresh_database("server")
                .await
                .expect("IDPROV_TEST_BACKEND=postgres needs PostgreSQL installed");
            config.database = idprov_server::config::Database::Postgres(url);
        }
        (setup.configure)(&mut config);
        let clock = Arc::new(ManualClock::starting_now());
        let server = idprov_server::start(
            config.clone(),
            ServerOptions {
                clock: clock.clone(),
                tls_resumption: setup.resumption,
                sweep_interval: setup.sweep_interval,
            },
        )
        .await
        .expect("server starts");
        let addr = server.local_addrs()[0];
        TestServer {
            dir,
            server: Some(server),
            addr,
            clock,
            config,
            resumption: setup.resumption,
            sweep_interval: setup.sweep_interval,
        }
    }

    /// Stops the server and starts it again on the same data directory (and
    /// the same port), keeping the clock.
    pub async fn restart(&mut self) {
        let revocation_addr = self.revocation_addr();
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        let mut config = self.config.clone();
        config.listen = vec![self.addr];
        // The revocation listener comes back where certificates point.
        if let (Some(r), Some(addr)) = (config.revocation.as_mut(), revocation_addr) {
            r.listen = addr;
        }
        let server = idprov_server::start(
            config,
            ServerOptions {
                clock: self.clock.clone(),
                tls_resumption: self.resumption,
                sweep_interval: self.sweep_interval,
            },
        )
        .await
        .expect("server restarts");
        self.addr = server.local_addrs()[0];
        self.server = Some(server);
    }

    /// Stops the server; the data directory stays until the value is dropped.
    /// A later [`TestServer::restart`] listens where it listened (the
    /// revocation listener too: certificates name it).
    pub async fn stop(&mut self) {
        let revocation_addr = self.revocation_addr();
        if let (Some(r), Some(addr)) = (self.config.revocation.as_mut(), revocation_addr) {
            r.listen = addr;
        }
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// The running server.
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("server is running")
    }

    /// The plain-HTTP revocation listener's address, when configured.
    pub fn revocation_addr(&self) -> Option<SocketAddr> {
        self.server
            .as_ref()
            .and_then(RunningServer::revocation_addr)
    }

    /// A URL on the plain-HTTP revocation listener (which must be
    /// configured: [`Setup::with_revocation_listener`]).
    pub fn revocation_url(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.revocation_addr()
                .expect("the revocation listener is configured")
        )
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A URL on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// `HOST:PORT` for the command-line tool.
    pub fn server_arg(&self) -> String {
        self.addr.to_string()
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// The whole temporary directory (data directory and anything a test adds).
    pub fn temp_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA chain clients trust.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.data_dir().join(files::CA_CHAIN)).expect("CA chain file")
    }

    /// The CA, as the server uses it.
    pub fn ca(&self) -> Arc<Ca> {
        self.server().state().ca.clone()
    }

    /// The registry, as the server uses it.
    pub fn registry(&self) -> Arc<dyn Registry> {
        self.server().state().registry.clone()
    }

    /// The local administrator's credentials.
    pub fn admin_credentials(&self) -> Credentials {
        Credentials::from_files(
            &self.data_dir().join(files::ADMIN_CERT),
            &self.data_dir().join(files::ADMIN_KEY),
            &self.data_dir().join(files::CA_CHAIN),
        )
        .expect("admin credentials")
    }

    /// An admin API client with the local administrator certificate.
    pub fn admin(&self) -> AdminClient {
        AdminClient::new(&self.server_arg(), &self.admin_credentials()).expect("admin client")
    }

    /// A rustls client configuration trusting the CA, with an optional
    /// client certificate (PEM chain and key).
    pub fn tls_config(&self, client: Option<(&str, &str)>) -> rustls::ClientConfig {
        Credentials {
            ca_pem: self.ca_pem(),
            cert_pem: client.map(|(c, _)| c.to_owned()),
            key_pem: client.map(|(_, k)| Zeroizing::new(k.to_owned())),
        }
        .client_config()
        .expect("client TLS configuration")
    }

    /// An HTTP client trusting the CA, without a client certificate.
    pub fn http(&self) -> reqwest::Client {
        http_client(self.tls_config(None))
    }

    /// An HTTP client presenting a certificate.
    pub fn http_with(&self, cert_pem: &str, key_pem: &str) -> reqwest::Client {
        http_client(self.tls_config(Some((cert_pem, key_pem))))
    }

    /// An HTTP client whose connections come from `source` (a loopback
    /// address such as 127.0.3.7: another source for the server's limits),
    /// one connection per request.
    pub fn http_from(&self, source: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .use_preconfigured_tls(self.tls_config(None))
            .local_address(
                source
                    .parse::<std::net::IpAddr>()
                    .expect("a source address"),
            )
            .pool_max_idle_per_host(0)
            .build()
            .expect("client")
    }

    /// Registers `secret` for `device_id` (default lifetime) as the local
    /// administrator.
    pub async fn add_secret(&self, device_id: &str, secret: &str) {
        self.register(device_id, secret, false).await;
    }

    /// Registers `secret` for `device_id` for idprov v2 only (the server
    /// keeps its verifier, no form of the secret), as the local
    /// administrator.
    pub async fn add_v2_only(&self, device_id: &str, secret: &str) {
        self.register(device_id, secret, true).await;
    }

    async fn register(&self, device_id: &str, secret: &str, pake_only: bool) {
        self.admin()
            .add_secret(&idprov_proto::OobSecretMessage {
                device_id: device_id.into(),
                oob_secret: secret.into(),
                valid_until: String::new(),
                pake_only,
            })
            .await
            .expect("secret registered");
    }

    /// A TLS server certificate for a service the test runs on loopback
    /// (a broker, a proxy), issued directly with the server's CA for
    /// `localhost` and 127.0.0.1, valid a day: its PEM and key.
    pub fn issue_loopback_server_cert(&self, cn: &str) -> (String, Zeroizing<String>) {
        let usage = idprov_ca::Usage::Server {
            dns_names: vec!["localhost".into()],
            ip_addresses: vec![std::net::IpAddr::from([127, 0, 0, 1])],
        };
        self.issue("service", cn, usage, Duration::from_secs(86_400))
    }

    /// Issues a certificate directly with the server's CA (a test PKI made
    /// by code): any OU, CN and validity, recorded in the registry only if
    /// the caller records it.
    pub fn issue_client_cert(
        &self,
        ou: &str,
        cn: &str,
        validity: Duration,
    ) -> (String, Zeroizing<String>) {
        self.issue(ou, cn, idprov_ca::Usage::Client, validity)
    }

    /// A certificate and key from the server's CA, from the server clock's now.
    fn issue(
        &self,
        ou: &str,
        cn: &str,
        usage: idprov_ca::Usage,
        validity: Duration,
    ) -> (String, Zeroizing<String>) {
        let (issued, key) = self
            .ca()
            .issue_with_new_key(
                KeyAlgorithm::EcdsaP256,
                idprov_ca::IssueParams {
                    common_name: cn,
                    organizational_unit: ou,
                    organization: "idprov",
                    usage,
                    now: idprov_proto::clock::Clock::now(&*self.clock),
                    validity,
                    crl_url: None,
                    ocsp_url: None,
                },
            )
            .expect("issue");
        (issued.pem, Zeroizing::new(key))
    }

    /// The Prometheus text of `/metrics`, read as a monitoring service
    /// reads it (with a `service` certificate).
    pub async fn metrics(&self) -> String {
        let (cert, key) = self.issue_client_cert("service", "prometheus", Duration::from_secs(600));
        self.http_with(&cert, &key)
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

/// A reqwest client with a rustls configuration; one connection per request
/// is not forced (callers that need new connections build new clients).
pub fn http_client(config: rustls::ClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// A simulated device: its ID and a key it generated.
pub struct TestDevice {
    /// The device ID.
    pub id: String,
    /// Its key pair.
    pub key: KeyPair,
}

impl std::fmt::Debug for TestDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDevice").field("id", &self.id).finish()
    }
}

impl TestDevice {
    /// A device with a fresh ECDSA P-256 key.
    pub fn new(id: &str) -> TestDevice {
        Self::with_key(id, KeyAlgorithm::EcdsaP256)
    }

    /// A device with a fresh key of the given algorithm.
    pub fn with_key(id: &str, alg: KeyAlgorithm) -> TestDevice {
        TestDevice {
            id: id.to_owned(),
            key: alg.generate().expect("device key"),
        }
    }

    /// Its private key, PEM.
    pub fn key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.key.serialize_pem())
    }

    /// A provisioning request, signed with `secret` when given.
    pub fn request(&self, secret: Option<&str>) -> ProvisionRequest {
        let mut req = ProvisionRequest {
            device_id: self.id.clone(),
            ip: "192.0.2.10".into(),
            mac: "02:00:00:00:00:01".into(),
            public_key_pem: self.key.public_key_pem(),
            signature: String::new(),
        };
        if let Some(s) = secret {
            req.sign(s.as_bytes());
        }
        req
    }
}

/// Posts a provisioning request; returns the HTTP status and, on 200, the
/// parsed response.
pub async fn provision(
    client: &reqwest::Client,
    server: &TestServer,
    req: &ProvisionRequest,
) -> (u16, Option<ProvisionResponse>, String) {
    let resp = client
        .post(server.url("/idprov/provreq"))
        .body(req.to_json())
        .send()
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let body = resp.bytes().await.expect("body");
    let parsed = if status == 200 {
        Some(ProvisionResponse::from_json(&body).expect("a valid provisioning response"))
    } else {
        None
    };
    (status, parsed, String::from_utf8_lossy(&body).into_owned())
}

/// Posts a provisioning request to `addr` (`HOST:PORT`) without panicking
/// when the server goes away: for tests that kill it.
pub async fn provision_at(
    client: &reqwest::Client,
    addr: &str,
    req: &ProvisionRequest,
) -> Result<(u16, Option<ProvisionResponse>), reqwest::Error> {
    let resp = client
        .post(format!("https://{addr}/idprov/provreq"))
        .body(req.to_json())
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await?;
    let parsed = if status == 200 {
        Some(ProvisionResponse::from_json(&body).expect("a valid provisioning response"))
    } else {
        None
    };
    Ok((status, parsed))
}

/// Everything logged in this process since [`capture_logs`] was first called,
/// at the most verbose level.
pub fn captured_logs() -> String {
    let buf = LOGS.get_or_init(|| Mutex::new(Vec::new()));
    String::from_utf8_lossy(&buf.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let buf = LOGS.get_or_init(|| Mutex::new(Vec::new()));
        buf.lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Routes every log line of this process, at TRACE level, into a buffer
/// that [`captured_logs`] returns. Idempotent.
pub fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Builds a Go program of this repository (`tests/go/<name>/main.go`) with
/// the system's `go`; `None` (with a message) when Go is not installed,
/// except under `CI=true`, where that is a failure.
pub fn build_go_program(name: &str) -> Option<PathBuf> {
    static BUILT: OnceLock<Mutex<std::collections::HashMap<String, PathBuf>>> = OnceLock::new();
    let go_ok = std::process::Command::new("go")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !go_ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "`go` is required in CI (apt-get install golang-go)"
        );
        eprintln!("skipping: `go` is not installed");
        return None;
    }
    let mut built = BUILT
        .get_or_init(|| Mutex::new(Default::default()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(name) {
        return Some(p.clone());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out_dir = std::env::temp_dir().join(format!("idprov-go-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).expect("Go output directory");
    let binary = out_dir.join(name);
    let status = std::process::Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&binary)
        .arg(root.join(format!("tests/go/{name}/main.go")))
        .env("GOCACHE", std::env::temp_dir().join("idprov-gocache"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .status()
        .expect("go build runs");
    assert!(status.success(), "go build of tests/go/{name} failed");
    built.insert(name.to_owned(), binary.clone());
    Some(binary)
}

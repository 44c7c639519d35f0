//! Configuration: one typed struct, built from defaults < TOML file <
//! `IDPROV_*` environment variables < command-line flags, and validated at
//! start-up with the offending key named.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use idprov_ca::KeyAlgorithm;
use idprov_store::{LockoutPolicy, WaitingCaps};

use crate::defaults as d;

/// Device IDs a device may not take unless `provisioning.allow_device_ids`
/// lists them: the roles of certificate OUs (a service that authorizes by
/// CN could mistake a device called `admin` for its administrator) and the
/// names this server answers to.
fn reserved_device_ids(
    public_name: &str,
    server_names: &[String],
    allowed: &[String],
) -> Vec<String> {
    let mut names: Vec<String> = [
        "admin",
        "plugin",
        "service",
        "client",
        "iotdevice",
        "localhost",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let host = host_name();
    for n in [public_name, host.as_str()]
        .into_iter()
        .chain(server_names.iter().map(String::as_str))
    {
        if n.parse::<IpAddr>().is_ok() || n.contains('*') {
            continue;
        }
        names.push(n.to_ascii_lowercase());
        if let Some(short) = n.to_ascii_lowercase().strip_suffix(".local") {
            names.push(short.to_owned());
        }
    }
    names.sort();
    names.dedup();
    names.retain(|n| !allowed.iter().any(|a| a.eq_ignore_ascii_case(n)));
    names
}

impl ServerConfig {
    /// The error for a reserved device ID in `field`, if it is one (the
    /// core's rule).
    pub fn check_device_id(&self, field: &str, device_id: &str) -> Result<(), String> {
        idprov_core::reserved_device_id(&self.reserved_device_ids, field, device_id)
    }
}

/// Why the configuration was refused. The message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file named on the command line does not exist.
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    /// The file or an environment variable could not be read or parsed.
    #[error("configuration: {0}")]
    Parse(String),
    /// A value was read but is not acceptable.
    #[error("configuration key `{key}`: {message}")]
    Invalid {
        /// The dotted key, e.g. `certificates.device_validity`.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// A duration written as seconds (`60`) or in words (`"30d"`, `"1h 30m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(ConfigDuration(Duration::from_secs(s))),
            Raw::Text(t) => humantime::parse_duration(t.trim())
                .map(ConfigDuration)
                .map_err(|e| {
                    serde::de::Error::custom(format!(
                        "{t:?} is not a duration ({e}); write e.g. 60, \"90s\", \"30d\""
                    ))
                }),
        }
    }
}

/// One listen address or several.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `listen = "[::]:43776"`
    One(String),
    /// `listen = ["0.0.0.0:43776", "[::1]:43776"]`
    Many(Vec<String>),
}

/// The configuration as written in the file and environment: every key
/// optional, unknown keys refused.
#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub listen: Option<OneOrMany>,
    pub organization: Option<String>,
    pub public_name: Option<String>,
    pub server_names: Option<Vec<String>>,
    pub services: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub ca: RawCa,
    #[serde(default)]
    pub certificates: RawCertificates,
    #[serde(default)]
    pub secrets: RawSecrets,
    #[serde(default)]
    pub provisioning: RawProvisioning,
    #[serde(default)]
    pub lockout: RawLockout,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub dns_sd: RawDnsSd,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub tls: RawTls,
    #[serde(default)]
    pub revocation: RawRevocation,
    #[serde(default)]
    pub crl: RawCrl,
}

#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRevocation {
    pub http_listen: Option<String>,
    pub public_url: Option<String>,
    pub rate: Option<f64>,
    pub burst: Option<f64>,
}

#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCrl {
    pub on_publish: Option<String>,
}

#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub session_resumption: Option<bool>,
}

#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub metrics_public: Option<bool>,
    pub export_secrets_loopback_only: Option<bool>,
    pub checkpoint_interval: Option<ConfigDuration>,
}

#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCa {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub chain_file: Option<PathBuf>,
    pub validity: Option<ConfigDuration>,
    pub key_type: Option<String>,
    pub key_passphrase_file: Option<PathBuf>,
    pub key_passphrase_env: Option<String>,
    pub key_passphrase_credential: Option<String>,
    pub pkcs11: Option<RawPkcs11>,
}

#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPkcs11 {
    pub module: Option<PathBuf>,
    pub token_label: Option<String>,
    pub key_label: Option<String>,
    pub pin_file: Option<PathBuf>,
    pub pin_env: Option<String>,
    pub pin_credential: Option<String>,
}

/// Where a secret the server needs at start (the CA key's passphrase, a
/// token's PIN) comes from: never a prompt, so the service starts unattended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file (0600; its first line, without the line ending).
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A systemd credential (`LoadCredential=`/`LoadCredentialEncrypted=`):
    /// the file of that name in `$CREDENTIALS_DIRECTORY`.
    Credential(String),
}

impl SecretSource {
    /// The one source set among `file`, `env` and `credential` (named by
    /// `keys`), if any.
    fn choose(
        keys: [&'static str; 3],
        file: Option<PathBuf>,
        env: Option<String>,
        credential: Option<String>,
    ) -> Result<Option<SecretSource>, ConfigError> {
        let mut set: Vec<SecretSource> = Vec::new();
        set.extend(file.map(SecretSource::File));
        set.extend(env.map(SecretSource::Env));
        set.extend(credential.map(SecretSource::Credential));
        if set.len() > 1 {
            return Err(invalid(
                keys[0],
                format!("set only one of {}, {} and {}", keys[0], keys[1], keys[2]),
            ));
        }
        for s in &set {
            match s {
                SecretSource::Env(n) | SecretSource::Credential(n)
                    if n.is_empty() || n.contains('/') || n.chars().any(char::is_control) =>
                {
                    return Err(invalid(
                        if matches!(s, SecretSource::Env(_)) {
                            keys[1]
                        } else {
                            keys[2]
                        },
                        "must be a plain name",
                    ));
                }
                _ => {}
            }
        }
        Ok(set.pop())
    }

    /// Reads the secret: the first line of the file, variable or
    /// credential, which must not be empty.
    pub fn read(&self) -> Result<zeroize::Zeroizing<String>, String> {
        let (what, text) = match self {
            SecretSource::File(path) => {
                crate::datadir::check_private_permissions(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                (
                    path.display().to_string(),
                    zeroize::Zeroizing::new(
                        std::fs::read_to_string(path)
                            .map_err(|e| format!("{}: {e}", path.display()))?,
                    ),
                )
            }
            SecretSource::Env(name) => (
                format!("environment variable {name}"),
                zeroize::Zeroizing::new(std::env::var(name).map_err(|_| {
                    format!("environment variable {name} is not set (or not UTF-8)")
                })?),
            ),
            SecretSource::Credential(name) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                    format!(
                        "systemd credential {name}: $CREDENTIALS_DIRECTORY is not set \
                         (give the unit LoadCredential={name}:FILE or LoadCredentialEncrypted=)"
                    )
                })?;
                let path = Path::new(&dir).join(name);
                (
                    format!("systemd credential {name}"),
                    zeroize::Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
                        format!("systemd credential {name} ({}): {e}", path.display())
                    })?),
                )
            }
        };
        let line = text.split(['\n', '\r']).next().unwrap_or_default();
        if line.is_empty() {
            return Err(format!("{what} is empty"));
        }
        Ok(zeroize::Zeroizing::new(line.to_owned()))
    }
}

/// A CA key in a PKCS#11 token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Config {
    /// The module (shared library).
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The key's label in the token.
    pub key_label: String,
    /// Where the user PIN comes from.
    pub pin: SecretSource,
}

/// Where a data-directory CA keeps its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaKeyStore {
    /// `ca.key` in the data directory, encrypted when a passphrase source
    /// is configured.
    File {
        /// The passphrase's source, for an encrypted key.
        passphrase: Option<SecretSource>,
    },
    /// Inside a PKCS#11 token; no key file exists.
    Token(Pkcs11Config),
}

#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificates {
    pub device_validity: Option<ConfigDuration>,
    pub server_validity: Option<ConfigDuration>,
    pub admin_validity: Option<ConfigDuration>,
    pub revoke_superseded_after: Option<ConfigDuration>,
}

#[allow(missing_docs)]
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecrets {
    pub lifetime: Option<ConfigDuration>,
    pub redelivery_window: Option<ConfigDuration>,
    pub key_file: Option<PathBuf>,
    pub key: Option<String>,
}

impl fmt::Debug for RawSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSecrets")
            .field("lifetime", &self.lifetime)
            .field("redelivery_window", &self.redelivery_window)
            .field("key_file", &self.key_file)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvisioning {
    pub approval_lifetime: Option<ConfigDuration>,
    pub waiting_lifetime: Option<ConfigDuration>,
    pub waiting_retry: Option<ConfigDuration>,
    pub waiting_per_source: Option<u64>,
    pub waiting_total: Option<u64>,
    pub allow_device_ids: Option<Vec<String>>,
    pub v2: Option<bool>,
    pub v2_kdf_iterations: Option<u32>,
    pub v2_session_lifetime: Option<ConfigDuration>,
}

#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLockout {
    pub threshold: Option<u32>,
    pub base: Option<ConfigDuration>,
    pub max: Option<ConfigDuration>,
    pub device_budget: Option<u32>,
    pub device_window: Option<ConfigDuration>,
}

#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub source_connections: Option<u32>,
    pub total_connections: Option<u32>,
    pub handshake_rate: Option<f64>,
    pub handshake_burst: Option<f64>,
    pub provisioning_rate: Option<f64>,
    pub provisioning_burst: Option<f64>,
    pub body_timeout: Option<ConfigDuration>,
    pub body: Option<usize>,
    pub bulk_rows: Option<u64>,
    pub bulk_bytes: Option<u64>,
    pub handshake_timeout: Option<ConfigDuration>,
    pub header_timeout: Option<ConfigDuration>,
    pub idle_timeout: Option<ConfigDuration>,
}

#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDnsSd {
    pub enabled: Option<bool>,
    pub instance: Option<String>,
}

#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
}

/// Where the CA comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// Generated in the data directory on first start (or an intermediate
    /// made there and imported), reused afterwards.
    Generated {
        /// Validity of a newly generated CA.
        validity: Duration,
        /// Key algorithm of a newly generated CA.
        key_type: KeyAlgorithm,
        /// Where its key lives.
        key: CaKeyStore,
    },
    /// An operator's CA or intermediate.
    Files {
        /// The issuing certificate (optionally followed by its chain).
        cert: PathBuf,
        /// Its private key (PEM, mode 0600).
        key: PathBuf,
        /// The chain up to the root, if not in `cert`.
        chain: Option<PathBuf>,
        /// The key's passphrase, when the key file is encrypted.
        passphrase: Option<SecretSource>,
    },
}

/// Where the key that seals OOB secrets comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretKeySource {
    /// Generated in memory at start and never written: a restart makes every
    /// stored secret unreadable (the standard's behaviour).
    Ephemeral,
    /// 32 bytes, base64, in a 0600 file.
    File(PathBuf),
    /// 32 bytes, base64, given in the configuration or environment.
    Inline(String),
}

impl fmt::Debug for SecretKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretKeySource::Ephemeral => f.write_str("Ephemeral"),
            SecretKeySource::File(p) => f.debug_tuple("File").field(p).finish(),
            SecretKeySource::Inline(_) => f.write_str("Inline(<redacted>)"),
        }
    }
}

/// Where the registry lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// `idprov.db` in the data directory (the default; one server).
    Sqlite,
    /// A PostgreSQL database shared by any number of replicas.
    Postgres(String),
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite => f.write_str("Sqlite"),
            // The URL may carry a password.
            Database::Postgres(_) => f.write_str("Postgres(<redacted>)"),
        }
    }
}

impl Database {
    fn parse(url: Option<String>) -> Result<Database, ConfigError> {
        match url {
            None => Ok(Database::Sqlite),
            Some(u) if u.is_empty() || u == "sqlite:" || u == "sqlite://" => Ok(Database::Sqlite),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Ok(Database::Postgres(u))
            }
            Some(_) => Err(invalid(
                "database_url",
                "must be a postgres:// or postgresql:// URL (or empty for the SQLite file in the data directory)",
            )),
        }
    }

    /// True in PostgreSQL mode.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }
}

/// The plain-HTTP revocation listener (`[revocation]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationListener {
    /// Where it listens (`revocation.http_listen`).
    pub listen: SocketAddr,
    /// The base URL written into certificates (`revocation.public_url`),
    /// without a trailing `/`; by default `http://<public_name>:<port>`
    /// (see [`RevocationListener::base_url`]).
    pub public_url: Option<String>,
}

impl RevocationListener {
    /// The base URL written into certificates: the configured one, or
    /// `http://<public_name>:<port>` (the port it is bound to: the server
    /// fills in the URL when the configured port is 0).
    pub fn base_url(&self, public_name: &str) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}:{}", url_host(public_name), self.listen.port()))
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Holds keys, certificates and the database; created 0700.
    pub data_dir: PathBuf,
    /// The registry: SQLite in the data directory, or PostgreSQL.
    pub database: Database,
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// O= of every subject.
    pub organization: String,
    /// The name devices and services use for this server (CRL URL, TLS name).
    pub public_name: String,
    /// Extra DNS names and addresses for the server certificate.
    pub server_names: Vec<String>,
    /// Services listed in the directory.
    pub services: BTreeMap<String, String>,
    /// The CA.
    pub ca: CaSource,
    /// Device certificate validity.
    pub device_validity: Duration,
    /// Server certificate validity.
    pub server_validity: Duration,
    /// Administrator certificate validity.
    pub admin_validity: Duration,
    /// When set, a device's new certificate supersedes its older ones,
    /// which are revoked (reason superseded) this long after it was issued.
    pub supersede_after: Option<Duration>,
    /// The plain-HTTP listener serving the CRL and OCSP, off by default.
    pub revocation: Option<RevocationListener>,
    /// Requests (and new connections) per second per source on the
    /// revocation listener, and on the OCSP routes of the TLS listener.
    pub revocation_rate: f64,
    /// Burst of those per source.
    pub revocation_burst: f64,
    /// A command run (`sh -c`) after every CRL publication.
    pub crl_on_publish: Option<String>,
    /// Default OOB secret lifetime.
    pub secret_lifetime: Duration,
    /// Re-delivery window after a secret is consumed.
    pub redelivery_window: Duration,
    /// The secret-sealing key.
    pub secret_key: SecretKeySource,
    /// `retrySec` of Waiting responses.
    pub waiting_retry: Duration,
    /// Waiting-queue caps.
    pub waiting_caps: WaitingCaps,
    /// Whether idprov v2 (SPAKE2+) is offered.
    pub v2: bool,
    /// PBKDF2 iterations of v2 registrations.
    pub v2_kdf_iterations: u32,
    /// How long an unfinished v2 run is kept.
    pub v2_session_lifetime: Duration,
    /// Device IDs refused because they name a role or this server
    /// (lower-case: host names compare without case).
    pub reserved_device_ids: Vec<String>,
    /// How long an approval waits for its device.
    pub approval_lifetime: Duration,
    /// How long a waiting request stays without a new attempt.
    pub waiting_lifetime: Duration,
    /// Rows of one bulk registration.
    pub bulk_rows: u64,
    /// Bytes of one bulk registration body.
    pub bulk_bytes: u64,
    /// Exports with secrets only over loopback.
    pub export_secrets_loopback_only: bool,
    /// `/metrics` without a client certificate.
    pub metrics_public: bool,
    /// Whether TLS sessions may be resumed (tickets and a session cache).
    pub tls_session_resumption: bool,
    /// Open connections per source.
    pub source_connections: u32,
    /// Open connections in total.
    pub total_connections: u32,
    /// New connections per second per source.
    pub handshake_rate: f64,
    /// Burst of new connections per source.
    pub handshake_burst: f64,
    /// Provisioning requests per second per source.
    pub provisioning_rate: f64,
    /// Burst of provisioning requests per source.
    pub provisioning_burst: f64,
    /// Time allowed to send a request body.
    pub body_timeout: Duration,
    /// How often the audit head is signed.
    pub checkpoint_interval: Duration,
    /// Failed-secret lockout.
    pub lockout: LockoutPolicy,
    /// Body limit of unauthenticated and single-object routes.
    pub body_limit: usize,
    /// TLS handshake timeout.
    pub handshake_timeout: Duration,
    /// Request header timeout.
    pub header_timeout: Duration,
    /// A connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// DNS-SD instance name, or `None` when the advert is off.
    pub dns_sd_instance: Option<String>,
    /// Log level filter (tracing `EnvFilter` syntax).
    pub log_level: String,
    /// Log format.
    pub log_format: LogFormat,
}

/// The host name of this machine, or `localhost` when it has none.
pub fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn is_root() -> bool {
    // The effective user is root when /proc/self is owned by uid 0.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// The default data directory: `/var/lib/idprov` for root, else
/// `$XDG_STATE_HOME/idprov` (default `~/.local/state/idprov`).
pub fn default_data_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from(d::DATA_DIR_ROOT);
    }
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| home_dir().map(|h| h.join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("idprov")
}

/// The default configuration file: `/etc/idprov/idprov.toml` for root, else
/// `$XDG_CONFIG_HOME/idprov/idprov.toml` (default `~/.config/idprov/idprov.toml`).
/// A missing default file is not an error.
pub fn default_config_file() -> PathBuf {
    if is_root() {
        return PathBuf::from(d::CONFIG_FILE_ROOT);
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home_dir().map(|h| h.join(".config")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("idprov/idprov.toml")
}

/// Top-level keys that `IDPROV_*` variables may set. Other `IDPROV_*`
/// variables belong to the command-line tool (`IDPROV_CONFIG`, …).
const ENV_KEYS: &[&str] = &[
    "data_dir",
    "database_url",
    "listen",
    "organization",
    "public_name",
    "server_names",
    "services",
    "ca",
    "certificates",
    "secrets",
    "provisioning",
    "lockout",
    "limits",
    "dns_sd",
    "log",
    "admin",
    "tls",
    "revocation",
    "crl",
];

/// Reads the configuration file (the named one, which must exist, or the
/// default one, which may not) and the environment.
pub fn read(file: Option<&Path>) -> Result<RawConfig, ConfigError> {
    let path = match file {
        Some(p) if !p.exists() => return Err(ConfigError::MissingFile(p.to_owned())),
        Some(p) => Some(p.to_owned()),
        None => Some(default_config_file()).filter(|p| p.exists()),
    };
    let mut figment = Figment::new();
    if let Some(p) = &path {
        figment = figment.merge(Toml::file_exact(p));
    }
    figment = figment.merge(Env::prefixed(d::ENV_PREFIX).split("__").filter(|k| {
        let top = k.as_str().split('.').next().unwrap_or_default();
        ENV_KEYS.iter().any(|known| top.eq_ignore_ascii_case(known))
    }));
    figment
        .extract::<RawConfig>()
        .map_err(|e| ConfigError::Parse(figment_message(&e)))
}

fn figment_message(e: &figment::Error) -> String {
    let mut parts = Vec::new();
    for err in e.clone() {
        let key = err.path.join(".");
        let origin = err
            .metadata
            .as_ref()
            .map(|m| m.name.to_string())
            .unwrap_or_default();
        let what = err.kind.to_string();
        parts.push(match (key.is_empty(), origin.is_empty()) {
            (false, false) => format!("key `{key}` ({origin}): {what}"),
            (false, true) => format!("key `{key}`: {what}"),
            _ => what,
        });
    }
    parts.join("; ")
}

fn positive(
    key: &'static str,
    v: Option<ConfigDuration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let v = v.map(|c| c.0).unwrap_or(default);
    if v.is_zero() {
        return Err(invalid(key, "must be longer than zero"));
    }
    Ok(v)
}

fn parse_listen(items: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut out = Vec::new();
    for item in items {
        let addrs: Vec<SocketAddr> = item
            .to_socket_addrs()
            .map_err(|e| invalid("listen", format!("{item:?} is not HOST:PORT ({e})")))?
            .collect();
        if addrs.is_empty() {
            return Err(invalid(
                "listen",
                format!("{item:?} resolves to no address"),
            ));
        }
        out.extend(addrs);
    }
    if out.is_empty() {
        return Err(invalid("listen", "at least one address is required"));
    }
    Ok(out)
}

impl RawConfig {
    /// Validates into the configuration the server runs with.
    pub fn validate(self) -> Result<ServerConfig, ConfigError> {
        let listen = match &self.listen {
            None => parse_listen(&[d::LISTEN.to_owned()])?,
            Some(OneOrMany::One(s)) => parse_listen(std::slice::from_ref(s))?,
            Some(OneOrMany::Many(v)) => parse_listen(v)?,
        };
        let organization = self.organization.unwrap_or_else(|| d::ORGANIZATION.into());
        if organization.trim().is_empty() || organization.chars().any(char::is_control) {
            return Err(invalid(
                "organization",
                "must be non-empty text without control characters",
            ));
        }
        let public_name = self
            .public_name
            .unwrap_or_else(|| format!("{}.local", host_name()));
        if public_name.is_empty()
            || !public_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            return Err(invalid(
                "public_name",
                "must be a DNS name or an IP address",
            ));
        }
        let server_names = self.server_names.unwrap_or_default();
        for n in &server_names {
            if n.parse::<IpAddr>().is_err()
                && (n.is_empty()
                    || !n
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*')))
            {
                return Err(invalid(
                    "server_names",
                    format!("{n:?} is neither a DNS name nor an IP address"),
                ));
            }
        }
        let reserved_device_ids = reserved_device_ids(
            &public_name,
            &server_names,
            self.provisioning
                .allow_device_ids
                .as_deref()
                .unwrap_or_default(),
        );
        let services = self.services.unwrap_or_default();
        for (name, url) in &services {
            if name.is_empty() || url.is_empty() || url.chars().any(char::is_control) {
                return Err(invalid(
                    "services",
                    format!("service {name:?} needs a non-empty name and URL"),
                ));
            }
        }
        let passphrase = SecretSource::choose(
            [
                "ca.key_passphrase_file",
                "ca.key_passphrase_env",
                "ca.key_passphrase_credential",
            ],
            self.ca.key_passphrase_file,
            self.ca.key_passphrase_env,
            self.ca.key_passphrase_credential,
        )?;
        let token = match self.ca.pkcs11 {
            None => None,
            Some(p) => {
                let module = p.module.ok_or_else(|| {
                    invalid(
                        "ca.pkcs11.module",
                        "is required (the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so)",
                    )
                })?;
                let token_label = p
                    .token_label
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| invalid("ca.pkcs11.token_label", "is required"))?;
                let key_label = p.key_label.unwrap_or_else(|| d::CA_TOKEN_KEY_LABEL.into());
                if key_label.is_empty() || key_label.chars().any(char::is_control) {
                    return Err(invalid("ca.pkcs11.key_label", "must be non-empty text"));
                }
                let pin = SecretSource::choose(
                    [
                        "ca.pkcs11.pin_file",
                        "ca.pkcs11.pin_env",
                        "ca.pkcs11.pin_credential",
                    ],
                    p.pin_file,
                    p.pin_env,
                    p.pin_credential,
                )?
                .ok_or_else(|| {
                    invalid(
                        "ca.pkcs11.pin_file",
                        "a PIN source is required: pin_file, pin_env or pin_credential",
                    )
                })?;
                Some(Pkcs11Config {
                    module,
                    token_label,
                    key_label,
                    pin,
                })
            }
        };
        if token.is_some() && passphrase.is_some() {
            return Err(invalid(
                "ca.key_passphrase_file",
                "a key in a PKCS#11 token has no passphrase (its PIN is ca.pkcs11.pin_*)",
            ));
        }
        let ca = match (self.ca.cert_file, self.ca.key_file) {
            (None, None) => {
                if self.ca.chain_file.is_some() {
                    return Err(invalid(
                        "ca.chain_file",
                        "needs ca.cert_file and ca.key_file",
                    ));
                }
                let key_type = match self.ca.key_type.as_deref() {
                    None => KeyAlgorithm::EcdsaP256,
                    Some(t) => match KeyAlgorithm::parse(t) {
                        Some(k @ (KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384)) => k,
                        _ => {
                            return Err(invalid(
                                "ca.key_type",
                                format!("{t:?} is not p256 or p384 (the CA key is ECDSA)"),
                            ));
                        }
                    },
                };
                CaSource::Generated {
                    validity: positive("ca.validity", self.ca.validity, d::CA_VALIDITY)?,
                    key_type,
                    key: match token {
                        Some(t) => CaKeyStore::Token(t),
                        None => CaKeyStore::File { passphrase },
                    },
                }
            }
            _ if token.is_some() => {
                return Err(invalid(
                    "ca.pkcs11",
                    "a token-held CA lives in the data directory: remove ca.cert_file and ca.key_file \
                     (an intermediate signed by an offline root: idprov ca init --intermediate, then idprov ca import)",
                ));
            }
            (Some(cert), Some(key)) => CaSource::Files {
                cert,
                key,
                chain: self.ca.chain_file,
                passphrase,
            },
            (Some(_), None) => return Err(invalid("ca.key_file", "is required with ca.cert_file")),
            (None, Some(_)) => return Err(invalid("ca.cert_file", "is required with ca.key_file")),
        };
        let secret_key = match (self.secrets.key_file, self.secrets.key) {
            (None, None) => SecretKeySource::Ephemeral,
            (Some(p), None) => SecretKeySource::File(p),
            (None, Some(k)) => {
                crate::secrets::decode_key(&k).map_err(|m| invalid("secrets.key", m))?;
                SecretKeySource::Inline(k)
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "secrets.key",
                    "set either secrets.key or secrets.key_file",
                ));
            }
        };
        let lockout = LockoutPolicy {
            threshold: self.lockout.threshold.unwrap_or(d::LOCKOUT_THRESHOLD),
            base_secs: secs(positive(
                "lockout.base",
                self.lockout.base,
                d::LOCKOUT_BASE,
            )?),
            max_secs: secs(positive("lockout.max", self.lockout.max, d::LOCKOUT_MAX)?),
            forget_after_secs: secs(d::LOCKOUT_FORGET),
            device_budget: self.lockout.device_budget.unwrap_or(d::DEVICE_GUESS_BUDGET),
            device_window_secs: secs(positive(
                "lockout.device_window",
                self.lockout.device_window,
                d::DEVICE_GUESS_WINDOW,
            )?),
        };
        if lockout.threshold == 0 {
            return Err(invalid("lockout.threshold", "must be at least 1"));
        }
        if lockout.max_secs < lockout.base_secs {
            return Err(invalid(
                "lockout.max",
                "must not be shorter than lockout.base",
            ));
        }
        let body_limit = self.limits.body.unwrap_or(d::BODY_LIMIT);
        if !(1024..=16 * 1024 * 1024).contains(&body_limit) {
            return Err(invalid(
                "limits.body",
                "must be between 1024 and 16777216 bytes",
            ));
        }
        let log_format = match self.log.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "log.format",
                    format!("{other:?} is not \"text\" or \"json\""),
                ));
            }
        };
        let revocation = revocation_listener(&self.revocation)?;
        let crl_on_publish = match self.crl.on_publish {
            Some(c) if c.trim().is_empty() || c.chars().any(|ch| ch == '\0') => {
                return Err(invalid(
                    "crl.on_publish",
                    "must be a non-empty command line (run with sh -c)",
                ));
            }
            c => c,
        };
        let database = Database::parse(self.database_url.clone())?;
        let dns_sd_instance = match self.dns_sd.enabled {
            Some(false) => None,
            _ => {
                // Replicas on one database must not advertise one name
                // (PROTOCOL.md §8): without a configured name each takes
                // its host and port.
                let name = match self.dns_sd.instance {
                    Some(n) => n,
                    None if database.is_postgres() => {
                        let port = listen.first().map_or(d::PORT, |a| a.port());
                        let room = 63 - format!("idprov--{port}").len();
                        let host: String = host_name().chars().take(room).collect();
                        format!("idprov-{host}-{port}")
                    }
                    None => "idprov".into(),
                };
                if name.is_empty() || name.len() > 63 || name.chars().any(char::is_control) {
                    return Err(invalid(
                        "dns_sd.instance",
                        "must be 1-63 characters of text",
                    ));
                }
                Some(name)
            }
        };
        Ok(ServerConfig {
            data_dir: self.data_dir.unwrap_or_else(default_data_dir),
            database,
            listen,
            organization,
            public_name,
            server_names,
            services,
            ca,
            device_validity: positive(
                "certificates.device_validity",
                self.certificates.device_validity,
                d::DEVICE_VALIDITY,
            )?,
            server_validity: positive(
                "certificates.server_validity",
                self.certificates.server_validity,
                d::SERVER_VALIDITY,
            )?,
            admin_validity: positive(
                "certificates.admin_validity",
                self.certificates.admin_validity,
                d::ADMIN_VALIDITY,
            )?,
            supersede_after: match self.certificates.revoke_superseded_after {
                None => None,
                Some(ConfigDuration(d)) if d.is_zero() => {
                    return Err(invalid(
                        "certificates.revoke_superseded_after",
                        "must be longer than zero (leave it out to keep superseded certificates valid)",
                    ));
                }
                Some(ConfigDuration(d)) => Some(d),
            },
            revocation,
            revocation_rate: rate("revocation.rate", self.revocation.rate, d::REVOCATION_RATE)?,
            revocation_burst: rate(
                "revocation.burst",
                self.revocation.burst,
                d::REVOCATION_BURST,
            )?,
            crl_on_publish,
            secret_lifetime: positive(
                "secrets.lifetime",
                self.secrets.lifetime,
                d::SECRET_LIFETIME,
            )?,
            redelivery_window: positive(
                "secrets.redelivery_window",
                self.secrets.redelivery_window,
                d::REDELIVERY_WINDOW,
            )?,
            secret_key,
            waiting_retry: positive(
                "provisioning.waiting_retry",
                self.provisioning.waiting_retry,
                d::WAITING_RETRY,
            )?,
            reserved_device_ids,
            v2: self.provisioning.v2.unwrap_or(d::V2_ENABLED),
            v2_kdf_iterations: match self.provisioning.v2_kdf_iterations {
                None => d::V2_KDF_ITERATIONS,
                Some(n)
                    if (idprov_proto::v2::MIN_ITERATIONS..=idprov_proto::v2::MAX_ITERATIONS)
                        .contains(&n) =>
                {
                    n
                }
                Some(n) => {
                    return Err(invalid(
                        "provisioning.v2_kdf_iterations",
                        format!(
                            "{n} is outside {}-{} (what devices accept)",
                            idprov_proto::v2::MIN_ITERATIONS,
                            idprov_proto::v2::MAX_ITERATIONS
                        ),
                    ));
                }
            },
            v2_session_lifetime: positive(
                "provisioning.v2_session_lifetime",
                self.provisioning.v2_session_lifetime,
                d::V2_SESSION_LIFETIME,
            )?,
            waiting_caps: WaitingCaps {
                per_source: self
                    .provisioning
                    .waiting_per_source
                    .unwrap_or(d::WAITING_PER_SOURCE),
                total: self.provisioning.waiting_total.unwrap_or(d::WAITING_TOTAL),
            },
            approval_lifetime: positive(
                "provisioning.approval_lifetime",
                self.provisioning.approval_lifetime,
                d::APPROVAL_LIFETIME,
            )?,
            waiting_lifetime: positive(
                "provisioning.waiting_lifetime",
                self.provisioning.waiting_lifetime,
                d::WAITING_LIFETIME,
            )?,
            bulk_rows: match self.limits.bulk_rows {
                Some(0) => return Err(invalid("limits.bulk_rows", "must be at least 1")),
                v => v.unwrap_or(d::BULK_ROWS),
            },
            bulk_bytes: match self.limits.bulk_bytes {
                Some(v) if v < 1024 => {
                    return Err(invalid("limits.bulk_bytes", "must be at least 1024"));
                }
                v => v.unwrap_or(d::BULK_BYTES),
            },
            export_secrets_loopback_only: self
                .admin
                .export_secrets_loopback_only
                .unwrap_or(d::EXPORT_SECRETS_LOOPBACK_ONLY),
            metrics_public: self.admin.metrics_public.unwrap_or(false),
            tls_session_resumption: self.tls.session_resumption.unwrap_or(true),
            source_connections: nonzero(
                "limits.source_connections",
                self.limits.source_connections,
                d::SOURCE_CONNECTIONS,
            )?,
            total_connections: nonzero(
                "limits.total_connections",
                self.limits.total_connections,
                d::TOTAL_CONNECTIONS,
            )?,
            handshake_rate: rate(
                "limits.handshake_rate",
                self.limits.handshake_rate,
                d::HANDSHAKE_RATE,
            )?,
            handshake_burst: rate(
                "limits.handshake_burst",
                self.limits.handshake_burst,
                d::HANDSHAKE_BURST,
            )?,
            provisioning_rate: rate(
                "limits.provisioning_rate",
                self.limits.provisioning_rate,
                d::PROVISIONING_RATE,
            )?,
            provisioning_burst: rate(
                "limits.provisioning_burst",
                self.limits.provisioning_burst,
                d::PROVISIONING_BURST,
            )?,
            body_timeout: positive(
                "limits.body_timeout",
                self.limits.body_timeout,
                d::BODY_TIMEOUT,
            )?,
            checkpoint_interval: positive(
                "admin.checkpoint_interval",
                self.admin.checkpoint_interval,
                d::CHECKPOINT_INTERVAL,
            )?,
            lockout,
            body_limit,
            handshake_timeout: positive(
                "limits.handshake_timeout",
                self.limits.handshake_timeout,
                d::HANDSHAKE_TIMEOUT,
            )?,
            header_timeout: positive(
                "limits.header_timeout",
                self.limits.header_timeout,
                d::HEADER_TIMEOUT,
            )?,
            idle_timeout: positive(
                "limits.idle_timeout",
                self.limits.idle_timeout,
                d::IDLE_TIMEOUT,
            )?,
            dns_sd_instance,
            log_level: self.log.level.unwrap_or_else(|| "info".into()),
            log_format,
        })
    }
}

/// A host name or address as a URL writes it (an IPv6 address in brackets).
pub fn url_host(name: &str) -> String {
    if name.contains(':') && !name.starts_with('[') {
        format!("[{name}]")
    } else {
        name.to_owned()
    }
}

/// `[revocation]`: off without `http_listen`; the public URL defaults to
/// `http://<public_name>:<port>`, and must be plain `http://` (what relying
/// parties fetch revocation data over).
fn revocation_listener(raw: &RawRevocation) -> Result<Option<RevocationListener>, ConfigError> {
    let Some(listen) = &raw.http_listen else {
        if raw.public_url.is_some() {
            return Err(invalid(
                "revocation.public_url",
                "needs revocation.http_listen (the listener the URL reaches)",
            ));
        }
        return Ok(None);
    };
    let listen = match listen.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            return Err(invalid(
                "revocation.http_listen",
                format!("{listen:?} resolves to no address"),
            ));
        }
        Err(e) => {
            return Err(invalid(
                "revocation.http_listen",
                format!("{listen:?} is not HOST:PORT ({e})"),
            ));
        }
    };
    let public_url = match &raw.public_url {
        Some(url) => {
            let url = url.trim_end_matches('/');
            let Some(rest) = url.strip_prefix("http://") else {
                return Err(invalid(
                    "revocation.public_url",
                    "must start with http:// (revocation data is fetched over plain HTTP: \
                     a TLS client cannot check revocation over a connection that needs the check)",
                ));
            };
            if rest.is_empty()
                || !url.is_ascii()
                || url.chars().any(|c| {
                    c.is_ascii_control() || c.is_ascii_whitespace() || "?#\"<>\\".contains(c)
                })
            {
                return Err(invalid(
                    "revocation.public_url",
                    "must be http://HOST[:PORT][/PATH], ASCII, without query or fragment",
                ));
            }
            Some(url.to_owned())
        }
        None => None,
    };
    Ok(Some(RevocationListener { listen, public_url }))
}

fn nonzero(key: &'static str, v: Option<u32>, default: u32) -> Result<u32, ConfigError> {
    match v.unwrap_or(default) {
        0 => Err(invalid(key, "must be at least 1")),
        n => Ok(n),
    }
}

fn rate(key: &'static str, v: Option<f64>, default: f64) -> Result<f64, ConfigError> {
    let v = v.unwrap_or(default);
    if !(v.is_finite() && v > 0.0) {
        return Err(invalid(key, "must be a positive number"));
    }
    Ok(v)
}

use idprov_proto::clock::secs;

impl ServerConfig {
    /// The defaults, with `data_dir` set (used by the test kit).
    pub fn with_data_dir(data_dir: &Path) -> Result<ServerConfig, ConfigError> {
        RawConfig {
            data_dir: Some(data_dir.to_owned()),
            ..RawConfig::default()
        }
        .validate()
    }

    /// The port devices reach the server on (the first listen address's).
    pub fn port(&self) -> u16 {
        self.listen.first().map(SocketAddr::port).unwrap_or(d::PORT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml: &str) -> Result<RawConfig, Box<figment::Error>> {
        Figment::new()
            .merge(Toml::string(toml))
            .extract()
            .map_err(Box::new)
    }

    #[test]
    fn reserved_device_ids_name_roles_and_this_server_unless_allowed() {
        let names = reserved_device_ids(
            "hub.local",
            &[
                "hub.example.net".into(),
                "10.0.0.1".into(),
                "*.example.net".into(),
            ],
            &["Service".into()],
        );
        for n in [
            "admin",
            "plugin",
            "client",
            "iotdevice",
            "localhost",
            "hub.local",
            "hub",
            "hub.example.net",
        ] {
            assert!(names.contains(&n.to_owned()), "{n}: {names:?}");
        }
        assert!(names.contains(&host_name().to_ascii_lowercase()));
        assert!(
            !names.contains(&"service".to_owned()),
            "allowed by configuration"
        );
        assert!(!names.iter().any(|n| n == "10.0.0.1" || n.contains('*')));
    }

    #[test]
    fn defaults_validate() {
        let c = RawConfig::default().validate().expect("defaults");
        assert_eq!(
            c.listen,
            vec!["[::]:43776".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(c.device_validity, d::DEVICE_VALIDITY);
        assert_eq!(c.secret_key, SecretKeySource::Ephemeral);
        assert_eq!(c.dns_sd_instance.as_deref(), Some("idprov"));
    }

    #[test]
    fn postgres_mode_names_each_replica_by_host_and_port() {
        let c = raw(
            "database_url = \"postgresql://idprov@127.0.0.1/idprov\"\nlisten = \"127.0.0.1:5000\"",
        )
        .expect("parse")
        .validate()
        .expect("valid");
        assert!(c.database.is_postgres());
        assert_eq!(
            c.dns_sd_instance,
            Some(
                format!("idprov-{}-5000", host_name())
                    .chars()
                    .take(63)
                    .collect()
            )
        );
        assert!(
            !format!("{:?}", c.database).contains("idprov@"),
            "the URL is redacted"
        );
        // A configured name wins; a non-PostgreSQL URL is refused by key.
        let c = raw("database_url = \"postgres://x@localhost/y\"\n[dns_sd]\ninstance = \"hub-a\"")
            .expect("parse")
            .validate()
            .expect("valid");
        assert_eq!(c.dns_sd_instance.as_deref(), Some("hub-a"));
        let err = raw("database_url = \"mysql://x/y\"")
            .expect("parse")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("database_url"), "{err}");
    }

    #[test]
    fn the_revocation_listener_is_off_by_default_and_names_its_url() {
        let c = RawConfig::default().validate().expect("defaults");
        assert_eq!(c.revocation, None);
        assert_eq!(c.supersede_after, None);
        assert_eq!(c.crl_on_publish, None);
        let c = raw("public_name = \"hub.local\"\n[revocation]\nhttp_listen = \"127.0.0.1:8080\"")
            .expect("parse")
            .validate()
            .expect("valid");
        let r = c.revocation.expect("on");
        assert_eq!(r.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(r.base_url(&c.public_name), "http://hub.local:8080");
        let c = raw(
            "[revocation]\nhttp_listen = \"[::]:80\"\npublic_url = \"http://hub.example.net/pki/\"\n\
             [certificates]\nrevoke_superseded_after = \"2h\"\n[crl]\non_publish = \"systemctl reload mosquitto\"",
        )
        .expect("parse")
        .validate()
        .expect("valid");
        assert_eq!(
            c.revocation.expect("on").base_url("ignored"),
            "http://hub.example.net/pki",
            "without the trailing slash"
        );
        assert_eq!(c.supersede_after, Some(Duration::from_secs(7200)));
        assert_eq!(
            c.crl_on_publish.as_deref(),
            Some("systemctl reload mosquitto")
        );
    }

    #[test]
    fn durations_in_words_or_seconds() {
        let c = raw("[certificates]\ndevice_validity = \"7d\"\n[provisioning]\nwaiting_retry = 5")
            .expect("parse")
            .validate()
            .expect("valid");
        assert_eq!(c.device_validity, Duration::from_secs(7 * 86_400));
        assert_eq!(c.waiting_retry, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                "[certificates]\ndevice_validity = \"0s\"",
                "certificates.device_validity",
            ),
            ("listen = \"nonsense\"", "listen"),
            ("[ca]\ncert_file = \"/x\"", "ca.key_file"),
            ("[log]\nformat = \"xml\"", "log.format"),
            ("[ca]\nkey_type = \"rsa2048\"", "ca.key_type"),
            ("[lockout]\nthreshold = 0", "lockout.threshold"),
            ("[secrets]\nkey = \"short\"", "secrets.key"),
            (
                "[ca]\nkey_passphrase_file = \"/p\"\nkey_passphrase_env = \"P\"",
                "ca.key_passphrase_file",
            ),
            (
                "[ca.pkcs11]\ntoken_label = \"t\"\npin_env = \"P\"",
                "ca.pkcs11.module",
            ),
            (
                "[ca.pkcs11]\nmodule = \"/m.so\"\npin_env = \"P\"",
                "ca.pkcs11.token_label",
            ),
            (
                "[ca.pkcs11]\nmodule = \"/m.so\"\ntoken_label = \"t\"",
                "ca.pkcs11.pin_file",
            ),
            (
                "[ca]\nkey_passphrase_env = \"P\"\n[ca.pkcs11]\nmodule = \"/m.so\"\ntoken_label = \"t\"\npin_env = \"Q\"",
                "ca.key_passphrase_file",
            ),
            (
                "[ca]\ncert_file = \"/c\"\nkey_file = \"/k\"\n[ca.pkcs11]\nmodule = \"/m.so\"\ntoken_label = \"t\"\npin_env = \"Q\"",
                "ca.pkcs11",
            ),
            (
                "[ca]\nkey_passphrase_credential = \"a/b\"",
                "ca.key_passphrase_credential",
            ),
            (
                "[provisioning]\nv2_kdf_iterations = 999",
                "provisioning.v2_kdf_iterations",
            ),
            (
                "[provisioning]\nv2_session_lifetime = \"0s\"",
                "provisioning.v2_session_lifetime",
            ),
            (
                "[revocation]\npublic_url = \"http://hub.local:8080\"",
                "revocation.public_url",
            ),
            (
                "[revocation]\nhttp_listen = \"nonsense\"",
                "revocation.http_listen",
            ),
            (
                "[revocation]\nhttp_listen = \"127.0.0.1:8080\"\npublic_url = \"https://hub.local\"",
                "revocation.public_url",
            ),
            (
                "[revocation]\nhttp_listen = \"127.0.0.1:8080\"\npublic_url = \"http://hub.local/?x\"",
                "revocation.public_url",
            ),
            ("[revocation]\nrate = 0", "revocation.rate"),
            ("[crl]\non_publish = \"  \"", "crl.on_publish"),
            (
                "[certificates]\nrevoke_superseded_after = 0",
                "certificates.revoke_superseded_after",
            ),
        ];
        for (toml, key) in cases {
            let err = raw(toml)
                .expect("parse")
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{toml:?} -> {err}");
        }
        let err = raw("nonsense_key = 1").unwrap_err().to_string();
        assert!(err.contains("nonsense_key"), "{err}");
        let err = raw("[certificates]\ndevice_validity = \"soon\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("soon"), "{err}");
    }

    #[test]
    fn debug_output_redacts_the_secret_key() {
        let c = raw("[secrets]\nkey = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"")
            .expect("parse");
        assert!(!format!("{c:?}").contains("AAAA"));
        let v = c.validate().expect("valid");
        assert!(!format!("{v:?}").contains("AAAA"));
    }
}

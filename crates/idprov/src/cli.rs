//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// idprov: IoT device provisioning over the idprov v1 protocol.
///
/// `idprov serve` runs the server. The other commands talk to a running
/// server over mutual TLS with an administrator certificate, so they work
/// from another machine too.
#[derive(Debug, Parser)]
#[command(name = "idprov", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the provisioning server.
    Serve(ServeArgs),
    /// Register, list and remove out-of-band secrets.
    #[command(subcommand)]
    Oob(OobCommand),
    /// List and inspect devices.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Waiting provisioning requests: list, approve, reject, clear.
    #[command(subcommand)]
    Requests(RequestsCommand),
    /// Administrator credentials: create, list, revoke.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Certificates for plugins and hub services: issue, list, revoke.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// The audit log: list, export, verify.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Fetch the CRL.
    Crl {
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// PEM instead of DER.
        #[arg(long)]
        pem: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Print the CA fingerprint devices check (from the data directory).
    CaFingerprint {
        /// Data directory. Default: as for `serve`.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Configuration file to read the defaults from.
        #[arg(long, env = "IDPROV_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The registry database: copy a SQLite registry into PostgreSQL.
    #[command(subcommand)]
    Db(DbCommand),
    /// The CA of the data directory: encrypt its key file, roll it over to
    /// a new CA, or make an intermediate for an offline root. These work on
    /// the data directory itself: stop the server first.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Take an online, consistent backup of the data directory and its
    /// database into a new directory (safe while the server runs).
    Backup {
        /// Where to write it: a new or empty directory. It holds the CA's
        /// private key: keep it as safe as the server.
        dest: PathBuf,
        /// Data directory to back up. Default: as for `serve`.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Configuration file to read the defaults from.
        #[arg(long, env = "IDPROV_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a backup and restore it as a data directory (new or empty; the
    /// server must not be using it).
    Restore {
        /// The backup directory (from `idprov backup`).
        backup: PathBuf,
        /// The data directory to create. Default: as for `serve`.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Configuration file to read the defaults from.
        #[arg(long, env = "IDPROV_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Only check the backup (every file's hash, the database, the audit
        /// chain); write nothing.
        #[arg(long)]
        check: bool,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find idprov servers on the local network (DNS-SD).
    Discover {
        /// How long to listen.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Be a device: get a certificate, and keep it renewed.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Show a device's protocol status (Approved, Waiting or Rejected).
    Status {
        /// The device ID.
        device_id: String,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Default: /etc/idprov/idprov.toml for root,
    /// else ~/.config/idprov/idprov.toml, if it exists.
    #[arg(long, env = "IDPROV_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (CA, keys, database). Default: /var/lib/idprov for
    /// root, else ~/.local/state/idprov.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on; repeat for several. Default: [::]:43776 (dual-stack).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Vec<String>,
    /// Do not advertise the server over DNS-SD (multicast DNS).
    #[arg(long)]
    pub no_dns_sd: bool,
    /// Log format: text or json (one object per line).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

/// How admin commands reach the server and authenticate.
#[derive(Debug, Args, Clone)]
pub struct Connection {
    /// The server, HOST:PORT. Default: the server of this machine's
    /// configuration (its listen port on 127.0.0.1).
    #[arg(long, env = "IDPROV_SERVER", value_name = "HOST:PORT", global = true)]
    pub server: Option<String>,
    /// Data directory holding the administrator credential (admin.pem,
    /// admin.key, ca-chain.pem). Default: as for `serve`.
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Configuration file to read the defaults from.
    #[arg(long, env = "IDPROV_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Client certificate (PEM) instead of the data directory's admin.pem.
    #[arg(long, value_name = "FILE", requires_all = ["key", "ca"], global = true)]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM). Also `--key-file`.
    #[arg(long, visible_alias = "key-file", value_name = "FILE", requires_all = ["cert", "ca"], global = true)]
    pub key: Option<PathBuf>,
    /// The CA certificate(s) to trust (PEM).
    #[arg(long, value_name = "FILE", global = true)]
    pub ca: Option<PathBuf>,
    /// Print JSON: one array for listings, one object otherwise.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The connection options of the queue commands, whose `--key` names a key
/// fingerprint: the client key file is `--key-file` there.
#[derive(Debug, Args, Clone)]
pub struct RequestConnection {
    /// The server, HOST:PORT.
    #[arg(long, env = "IDPROV_SERVER", value_name = "HOST:PORT")]
    pub server: Option<String>,
    /// Data directory holding the administrator credential.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file to read the defaults from.
    #[arg(long, env = "IDPROV_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["key_file", "ca"])]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["cert", "ca"])]
    pub key_file: Option<PathBuf>,
    /// The CA certificate(s) to trust (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

impl From<RequestConnection> for Connection {
    fn from(c: RequestConnection) -> Connection {
        Connection {
            server: c.server,
            data_dir: c.data_dir,
            config: c.config,
            cert: c.cert,
            key: c.key_file,
            ca: c.ca,
            json: c.json,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum OobCommand {
    /// Register (or replace) a device's secret. Without SECRET, a strong one
    /// is generated and printed.
    Add {
        /// The device ID.
        device_id: String,
        /// The secret, or `-` to read it from standard input. A secret given
        /// here is visible in the process list: prefer --secret-file or `-`.
        secret: Option<String>,
        /// Read the secret from this file (first line).
        #[arg(long, value_name = "FILE", conflicts_with = "secret")]
        secret_file: Option<PathBuf>,
        /// Expiry (RFC 3339). Default: 3 days from now.
        #[arg(long, value_name = "TIME")]
        valid_until: Option<String>,
        /// With a generated secret: write a printable label sheet (.svg or .png, 0600).
        #[arg(long, value_name = "FILE")]
        labels: Option<PathBuf>,
        /// For idprov v2 (SPAKE2+) only: the server keeps the verifier and no
        /// form of the secret; v1 can never use it. Prints the idprov:2 label.
        #[arg(long)]
        pake_only: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Register many secrets from a file: CSV (deviceID,secret[,validUntil[,pakeOnly]]),
    /// a JSON array or NDJSON (deviceID, oobSecret, validUntil, pakeOnly). Valid rows
    /// are committed in one transaction; problems are reported by line.
    Import {
        /// The file.
        file: PathBuf,
        /// csv, json or ndjson (default: from the file name).
        #[arg(long)]
        format: Option<String>,
        /// Run the server's validation only; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Refuse rows whose device already has a secret (default: replace it).
        #[arg(long)]
        no_replace: bool,
        /// Generate strong secrets for rows without one (needs --out).
        #[arg(long, requires = "out")]
        generate: bool,
        /// Register every row for idprov v2 (SPAKE2+) only, as a file's
        /// pakeOnly column does for some: the server keeps verifiers and no
        /// form of the secrets; labels say idprov:2.
        #[arg(long)]
        pake_only: bool,
        /// Where --generate writes every row with its secret (a new 0600 CSV file).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// With --generate: write a printable label sheet (.svg or .png, 0600).
        #[arg(long, value_name = "FILE", requires = "generate")]
        labels: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Write the registered secrets as CSV (deviceID,secret,validUntil),
    /// without the secrets unless --with-secrets.
    Export {
        /// Write here (a new 0600 file) instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Include the secrets (administrator certificate, over loopback; audited).
        #[arg(long)]
        with_secrets: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// List registered secrets (never their values).
    List {
        /// Stop after this many entries.
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a device's secret.
    Remove {
        /// The device ID.
        device_id: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// An RFC 3339 time, checked here so a typo is a usage error (exit 2).
fn rfc3339(s: &str) -> Result<String, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|_| s.to_owned())
        .map_err(|e| format!("not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z): {e}"))
}

/// The statuses of PROTOCOL.md §4's table, as `devices list --status` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFilter {
    /// A valid, unrevoked certificate.
    #[value(name = "Approved")]
    Approved,
    /// A secret, a queued request or an approval, and no valid certificate.
    #[value(name = "Waiting")]
    Waiting,
    /// Rejected by an administrator, or every certificate revoked.
    #[value(name = "Rejected")]
    Rejected,
}

impl StatusFilter {
    /// The name the admin API takes.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Approved => "Approved",
            StatusFilter::Waiting => "Waiting",
            StatusFilter::Rejected => "Rejected",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List devices.
    List {
        /// Stop after this many entries.
        #[arg(long)]
        limit: Option<usize>,
        /// Only devices with this status.
        #[arg(long, value_enum, ignore_case = true)]
        status: Option<StatusFilter>,
        /// Only devices whose certificate expires within this time (e.g. 7d).
        #[arg(long, value_parser = humantime::parse_duration)]
        expiring_within: Option<std::time::Duration>,
        /// Only devices that missed their renewal.
        #[arg(long)]
        missed_renewal: bool,
        /// Only device IDs starting with this.
        #[arg(long)]
        prefix: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Revoke a device's certificates; its renewals then fall to the OOB path.
    Revoke {
        /// The device ID.
        device_id: String,
        /// RFC 5280 reason (keyCompromise, cessationOfOperation, … or a code).
        #[arg(long)]
        reason: Option<String>,
        /// A note for the audit log only.
        #[arg(long)]
        note: Option<String>,
        /// One certificate only.
        #[arg(long)]
        serial: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Clear a device's failed-secret counters and locks, from every source.
    Unlock {
        /// The device ID.
        device_id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Revoke a device's certificates and forget the device.
    Remove {
        /// The device ID.
        device_id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one device and its certificate history.
    Show {
        /// The device ID.
        device_id: String,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// List waiting requests.
    List {
        /// Stop after this many entries.
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Approve a waiting request: the device's next request with that key
    /// is Approved.
    Approve {
        /// The device ID.
        device_id: String,
        /// The key fingerprint (needed when the device has several).
        #[arg(long = "key", value_name = "FINGERPRINT", allow_hyphen_values = true)]
        key: Option<String>,
        #[command(flatten)]
        conn: RequestConnection,
    },
    /// Reject a device and key until cleared.
    Reject {
        /// The device ID.
        device_id: String,
        /// The key fingerprint (needed when the device has several).
        #[arg(long = "key", value_name = "FINGERPRINT", allow_hyphen_values = true)]
        key: Option<String>,
        /// Why (for administrators and the audit log).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        conn: RequestConnection,
    },
    /// Remove a device's waiting requests, approvals and rejections.
    Clear {
        /// The device ID.
        device_id: String,
        /// One key only.
        #[arg(long = "key", value_name = "FINGERPRINT", allow_hyphen_values = true)]
        key: Option<String>,
        #[command(flatten)]
        conn: RequestConnection,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a personal administrator certificate (OU admin, CN NAME).
    Create {
        /// The person's name (device-ID syntax).
        name: String,
        /// Write NAME.pem and NAME.key here.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Also write a PKCS#12 bundle for a browser (its password is asked
        /// for, or read from IDPROV_P12_PASSWORD).
        #[arg(long, value_name = "FILE")]
        p12: Option<PathBuf>,
        /// Validity.
        #[arg(long, default_value = "365d", value_parser = humantime::parse_duration)]
        validity: std::time::Duration,
        #[command(flatten)]
        conn: Connection,
    },
    /// List administrator certificates.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Revoke an administrator's certificates; their web password is removed
    /// and their web sessions end.
    Revoke {
        /// The name.
        name: String,
        /// RFC 5280 reason.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Set an administrator's password for the web page (argon2id on the
    /// server). Asked for twice on a terminal; otherwise the first line of
    /// standard input.
    Password {
        /// The name to sign in with.
        #[arg(default_value = "admin")]
        name: String,
        /// Remove the password instead (the account's web sessions end).
        #[arg(long)]
        remove: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Issue a certificate for a plugin or a hub service (an MQTT broker's
    /// server certificate, a plugin's client certificate).
    Issue {
        /// plugin or service.
        #[arg(long)]
        ou: String,
        /// The name (CN).
        #[arg(long)]
        cn: String,
        /// DNS names and IP addresses (services); repeat.
        #[arg(long = "san", value_name = "NAME")]
        sans: Vec<String>,
        /// Write CN.pem, CN.key and ca.pem here.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Validity.
        #[arg(long, default_value = "365d", value_parser = humantime::parse_duration)]
        validity: std::time::Duration,
        #[command(flatten)]
        conn: Connection,
    },
    /// List plugin and service certificates.
    List {
        /// plugin or service.
        #[arg(long)]
        ou: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Revoke a plugin's or service's certificates.
    Revoke {
        /// plugin or service.
        #[arg(long)]
        ou: String,
        /// The name (CN).
        #[arg(long)]
        cn: String,
        /// RFC 5280 reason.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries.
    List {
        /// Only this device's.
        #[arg(long = "device")]
        device_id: Option<String>,
        /// Only this event (secret_added, certificate_issued, …).
        #[arg(long)]
        event: Option<String>,
        /// Only this actor's (admin:NAME, source:ADDRESS, system).
        #[arg(long)]
        actor: Option<String>,
        /// Not before (RFC 3339, e.g. 2026-12-01T00:00:00Z).
        #[arg(long, value_parser = rfc3339)]
        since: Option<String>,
        /// Not after (RFC 3339).
        #[arg(long, value_parser = rfc3339)]
        until: Option<String>,
        /// Stop after this many entries.
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Export the whole log with its signed checkpoints as JSON lines.
    Export {
        /// Write here (a new file) instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Check the hash chain and the signed checkpoints; name the first bad entry.
    Verify {
        /// Verify this export instead of the server's log.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Provision once: exit 0 with a certificate installed, 1 when the
    /// server answers Waiting or Rejected (with --wait: keep asking).
    Provision {
        #[command(flatten)]
        device: DeviceArgs,
        /// Keep asking while the answer is Waiting.
        #[arg(long)]
        wait: bool,
        /// With --wait, give up after this long.
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
    },
    /// Provision, wait, and keep renewing until stopped.
    Run {
        #[command(flatten)]
        device: DeviceArgs,
        /// How often to look at the clock while waiting.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        poll: std::time::Duration,
    },
}

/// Who the device is and how it finds and trusts the server.
#[derive(Debug, Args, Clone)]
pub struct DeviceArgs {
    /// The device ID (or take it from --label).
    #[arg(long = "id", value_name = "ID")]
    pub device_id: Option<String>,
    /// The OOB secret. Visible in the process list: prefer --secret-file or --label.
    #[arg(long, conflicts_with_all = ["secret_file", "label"])]
    pub secret: Option<String>,
    /// Read the OOB secret from this file (first line).
    #[arg(long, value_name = "FILE", conflicts_with = "label")]
    pub secret_file: Option<PathBuf>,
    /// A label URI (idprov:1?id=…&s=…&ca=…): ID, secret and CA fingerprint;
    /// idprov:2?… means idprov v2 only (as --v2).
    #[arg(long, value_name = "URI")]
    pub label: Option<String>,
    /// The expected CA fingerprint (SHA-256, base64url or colon hex).
    // A base64url fingerprint may start with '-'.
    #[arg(long, value_name = "FP", allow_hyphen_values = true)]
    pub ca_fingerprint: Option<String>,
    /// A CA certificate file to trust instead of the one the server offers.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// The server, HOST:PORT; without it the server is discovered (DNS-SD).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "discover")]
    pub server: Option<String>,
    /// Discover the server over DNS-SD (the default without --server).
    #[arg(long)]
    pub discover: bool,
    /// How long discovery listens. A server that has just started answers
    /// after its probing and announcement, a few seconds.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub discovery_timeout: std::time::Duration,
    /// The credential directory (DIR/current/{key,cert,ca}.pem).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Key type generated on first run: p256, p384, ed25519, rsa2048, rsa3072, rsa4096.
    #[arg(long, default_value = "p256")]
    pub key_type: String,
    /// The address the device claims (free text).
    #[arg(long, default_value = "<nil>")]
    pub claimed_ip: String,
    /// The MAC the device claims (free text).
    #[arg(long, default_value = "")]
    pub claimed_mac: String,
    /// Accept an answer signed with the empty key after an unpinned first
    /// contact. Dangerous: a rogue server could hand out its own CA.
    #[arg(long)]
    pub danger_accept_empty_key: bool,
    /// First contact with idprov v2 (SPAKE2+) only, never v1, whatever the
    /// server says (a label idprov:2?… implies it). Renewal stays mutual TLS.
    #[arg(long)]
    pub v2: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy a SQLite registry (devices, certificates, the audit chain, the
    /// queue, decisions, the CRL state) into an empty PostgreSQL database,
    /// then verify the copy. Secrets travel only with --secrets-key-file.
    Migrate {
        /// The source: `sqlite://PATH` to an idprov.db, or a data directory.
        #[arg(long, value_name = "SOURCE")]
        from: String,
        /// The destination: a `postgres://` URL (an empty database).
        #[arg(long, value_name = "URL", env = "IDPROV_DATABASE_URL")]
        to: String,
        /// The source's persistent secrets key (its `secrets.key_file`):
        /// secrets sealed with it are carried, the others cannot be.
        #[arg(long, value_name = "FILE")]
        secrets_key_file: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where `idprov ca` commands find the configuration and data directory.
#[derive(Debug, Args, Clone)]
pub struct CaTarget {
    /// Data directory. Default: as for `serve`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (its `[ca]` section says where the key is kept).
    #[arg(long, env = "IDPROV_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Encrypt the CA key file in place with the passphrase the
    /// configuration names (ca.key_passphrase_file, _env or _credential);
    /// atomic and audited.
    EncryptKey {
        #[command(flatten)]
        target: CaTarget,
    },
    /// Start a CA rollover: a new CA (its key kept as the current one's),
    /// cross-certified in both directions. From the next start the new CA
    /// issues and both are trusted, until `idprov ca finish-rollover`.
    Rollover {
        #[command(flatten)]
        target: CaTarget,
    },
    /// End a rollover's transition: the previous CA is no longer trusted
    /// and its key is destroyed.
    FinishRollover {
        #[command(flatten)]
        target: CaTarget,
    },
    /// Create the CA of a new data directory as an intermediate of an
    /// offline root: makes its key and prints a certificate signing request
    /// (also written to DATA/ca.csr) for the root to sign.
    Init {
        /// Make an intermediate for an offline root (the only kind this
        /// command makes; a root CA is generated by `idprov serve`).
        #[arg(long, required = true)]
        intermediate: bool,
        #[command(flatten)]
        target: CaTarget,
    },
    /// Import the intermediate certificate the offline root signed, with the
    /// chain up to the root.
    Import {
        /// The signed intermediate certificate (PEM).
        cert: PathBuf,
        /// The root (and any certificates between it and the intermediate), PEM.
        #[arg(long, value_name = "FILE")]
        chain: PathBuf,
        #[command(flatten)]
        target: CaTarget,
    },
}

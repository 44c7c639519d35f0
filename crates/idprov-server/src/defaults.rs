//! Every default, named, with the reason for its value. The README's table of
//! defaults is generated from the same values (see `idprov defaults`).

use std::time::Duration;

const DAY: u64 = 86_400;

/// The standard's port (the Go reference used 8880; always configurable).
pub const PORT: u16 = 43776;
/// Dual-stack: `[::]` also accepts IPv4 on Linux unless `bindv6only` is set.
pub const LISTEN: &str = "[::]:43776";
/// Organisation written into every certificate subject (O=).
pub const ORGANIZATION: &str = "idprov";
/// Data directory when running as root (systemd's StateDirectory).
pub const DATA_DIR_ROOT: &str = "/var/lib/idprov";
/// Configuration file when running as root.
pub const CONFIG_FILE_ROOT: &str = "/etc/idprov/idprov.toml";
/// Environment variables with this prefix override configuration keys
/// (`IDPROV_CA__VALIDITY` sets `ca.validity`).
pub const ENV_PREFIX: &str = "IDPROV_";

/// CA validity: long enough that devices never see it roll over in service.
pub const CA_VALIDITY: Duration = Duration::from_secs(3650 * DAY);
/// The CA key's label in a PKCS#11 token (`ca.pkcs11.key_label`): one
/// name, so a rollover's second key is found beside the first.
pub const CA_TOKEN_KEY_LABEL: &str = "idprov-ca";
/// Device certificates: short enough that revocation matters less, long
/// enough that a device offline for two weeks still renews with its own key.
pub const DEVICE_VALIDITY: Duration = Duration::from_secs(30 * DAY);
/// The server's TLS certificate; re-issued automatically before it expires.
pub const SERVER_VALIDITY: Duration = Duration::from_secs(90 * DAY);
/// Administrator certificates (one year, as personal credentials usually are).
pub const ADMIN_VALIDITY: Duration = Duration::from_secs(365 * DAY);
/// Local credentials are re-issued at start when less than this fraction of
/// their validity is left.
pub const REISSUE_REMAINING_FRACTION: f64 = 1.0 / 3.0;

/// OOB secret lifetime when `validUntil` is empty (the standard's 3 days).
pub const SECRET_LIFETIME: Duration = Duration::from_secs(3 * DAY);
/// How long a consumed secret still lets the same key fetch the same
/// certificate again, for a device whose Approved response was lost.
pub const REDELIVERY_WINDOW: Duration = Duration::from_secs(600);
/// `retrySec` of a Waiting response: a device polls about once a minute.
pub const WAITING_RETRY: Duration = Duration::from_secs(60);

/// The failure that starts a lock (PROTOCOL.md §6 4.6).
pub const LOCKOUT_THRESHOLD: u32 = 5;
/// First lock length; each further failure doubles it.
pub const LOCKOUT_BASE: Duration = Duration::from_secs(60);
/// Longest lock.
pub const LOCKOUT_MAX: Duration = Duration::from_secs(3600);
/// A failure counter untouched for a day starts from zero again.
pub const LOCKOUT_FORGET: Duration = Duration::from_secs(DAY);
/// Wrong secrets per device ID from all sources together in one window
/// before every further guess is refused (`lockout.device_budget`, 0 =
/// none): the per-source lock alone lets a guesser rotating addresses (an
/// IPv6 /64 holds billions) try about 27 secrets a second; this holds a
/// 6-digit PIN for years (README, "Guessing").
pub const DEVICE_GUESS_BUDGET: u32 = 30;
/// The budget's window (`lockout.device_window`).
pub const DEVICE_GUESS_WINDOW: Duration = Duration::from_secs(3600);

/// An administrator's approval lapses if the device does not come back
/// within this time (the standard's 3 days).
pub const APPROVAL_LIFETIME: Duration = Duration::from_secs(3 * DAY);
/// A waiting request not seen again for this long leaves the queue.
pub const WAITING_LIFETIME: Duration = Duration::from_secs(7 * DAY);

/// Rows of one bulk registration.
pub const BULK_ROWS: u64 = 1_000_000;
/// Bytes of one bulk registration body.
pub const BULK_BYTES: u64 = 256 * 1024 * 1024;
/// Exports with secrets are answered only over loopback (an extra
/// restriction on top of the administrator certificate, defeated by a local
/// proxy, so never a grant on its own).
pub const EXPORT_SECRETS_LOOPBACK_ONLY: bool = true;
/// Audit entries anyone can cause (failed sign-ins, first-seen waiting
/// requests, lockouts, rate limits) are written at most once per event and
/// source in this interval, the rest counted into one summary entry: a
/// flood cannot grow the audit log at its request rate.
pub const AUDIT_AGGREGATE_INTERVAL: Duration = Duration::from_secs(60);
/// How often the audit chain's head is signed.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(600);

/// Waiting requests recorded from one source address.
pub const WAITING_PER_SOURCE: u64 = 1_000;
/// Waiting requests recorded in total.
pub const WAITING_TOTAL: u64 = 100_000;

/// idprov v2 (SPAKE2+) answered beside v1: a device configured for v2
/// never falls back, so the server offers it unless told not to.
pub const V2_ENABLED: bool = true;
/// PBKDF2-HMAC-SHA256 iterations that stretch a v2 secret: ten times
/// Matter's minimum, about 10 ms on this server's cores and a second or
/// two on a small microcontroller, once per provisioning (PROTOCOL.md §11.1).
pub const V2_KDF_ITERATIONS: u32 = 10_000;
/// How long an unfinished v2 run is kept: a device answers within seconds.
pub const V2_SESSION_LIFETIME: Duration = Duration::from_secs(60);
/// Unfinished v2 runs kept per source: one per allowed connection.
pub const V2_SESSIONS_PER_SOURCE: usize = SOURCE_CONNECTIONS as usize;
/// Unfinished v2 runs kept in all: one per allowed connection, twice over.
pub const V2_SESSIONS_TOTAL: usize = 2 * TOTAL_CONNECTIONS as usize;

/// Open connections from one source address (IPv6: one /64): a device
/// needs one, an administrator's tools a few; 32 sources at this cap hold
/// half the total, and near the total idle connections are closed first.
pub const SOURCE_CONNECTIONS: u32 = 32;
/// Open connections in total: what bounds the memory of connections held
/// open by clients (each may buffer up to a 16 KiB request head and a TLS
/// record), about 70 MB at this many.
pub const TOTAL_CONNECTIONS: u32 = 2048;
/// New connections (TLS handshakes) per second from one source.
pub const HANDSHAKE_RATE: f64 = 50.0;
/// Burst of new connections from one source.
pub const HANDSHAKE_BURST: f64 = 200.0;
/// Provisioning requests per second from one source (admins exempt).
pub const PROVISIONING_RATE: f64 = 20.0;
/// Burst of provisioning requests from one source.
pub const PROVISIONING_BURST: f64 = 200.0;
/// Time allowed to send a (non-bulk) request body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Body limit of unauthenticated routes and single-object posts (PROTOCOL.md §3).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Time allowed for the TLS handshake before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to send the request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request in flight is closed after this long
/// (`limits.idle_timeout`): devices connect, ask and go; a client keeping a
/// connection for more asks again within it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// SQLite file name inside the data directory.
pub const DATABASE_FILE: &str = "idprov.db";

/// A web session ends after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// And after this long in all, whatever its use.
pub const SESSION_MAX: Duration = Duration::from_secs(12 * 3600);
/// The first-start sign-in token is valid this long (and for one use).
pub const SIGNIN_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Sign-in attempts per second from one source (one every 6 s)…
pub const SIGNIN_RATE: f64 = 1.0 / 6.0;
/// …after a burst of this many.
pub const SIGNIN_BURST: f64 = 10.0;
/// Web sign-in attempts per second from all sources together, and the
/// burst: what a few people signing in need, not what an online guesser
/// rotating addresses wants.
pub const SIGNIN_GLOBAL_RATE: f64 = 1.0;
/// (See [`SIGNIN_GLOBAL_RATE`].)
pub const SIGNIN_GLOBAL_BURST: f64 = 20.0;
/// Shortest web password: a person types it, an attacker guesses it offline
/// only from a stolen database, where argon2id makes each guess expensive.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Requests and new connections per second from one source on the
/// revocation listener (and requests on the TLS listener's OCSP routes): a
/// relying party that checks every client's handshake asks once per
/// handshake (nginx without `ssl_ocsp_cache`), so one busy proxy is one
/// source asking often.
pub const REVOCATION_RATE: f64 = 100.0;
/// Burst of those per source.
pub const REVOCATION_BURST: f64 = 1000.0;
/// How long an OCSP answer is valid (nextUpdate − thisUpdate): a relying
/// party that caches answers learns of a revocation within this time; the
/// responder itself answers from the registry on every request.
pub const OCSP_VALIDITY: Duration = Duration::from_secs(3600);
/// A cached OCSP answer is signed again once it is this old, so what a
/// relying party receives is always valid for at least three quarters of
/// [`OCSP_VALIDITY`].
pub const OCSP_REFRESH: Duration = Duration::from_secs(15 * 60);
/// Signed OCSP answers kept for reuse (about a kilobyte each); the cache is
/// emptied when it holds this many.
pub const OCSP_CACHE_ENTRIES: usize = 16_384;
/// The delegated OCSP responder's certificate: short-lived (a leaked
/// responder key cannot be revoked in any useful way: relying parties do
/// not check the responder, by its `ocsp-nocheck`), re-issued by the
/// server's housekeeping when a third of it is left.
pub const OCSP_RESPONDER_VALIDITY: Duration = Duration::from_secs(7 * DAY);
/// How long a `crl.on_publish` command may run before it is stopped.
pub const CRL_HOOK_TIMEOUT: Duration = Duration::from_secs(60);

//! The PostgreSQL backend: the same registry as the SQLite one, shared by
//! several server replicas through one database.
//!
//! # How it keeps SQLite's guarantees with many writers
//!
//! * **One writer at a time.** Every write transaction starts with
//!   `SELECT pg_advisory_xact_lock(WRITE_LOCK)` (see [`begin_write`]), held
//!   until its commit or rollback. Writes from every connection of every
//!   replica therefore run one after another, exactly like the SQLite
//!   backend's single writer thread, and the checks that read before they
//!   write (lockout counters, waiting-queue caps, "had a secret") see every
//!   earlier commit: in `READ COMMITTED` each statement takes a new snapshot,
//!   and the lock is released only after the previous holder's commit is
//!   visible.
//! * **One audit chain.** [`append_audit_tx`] reads the head and appends the
//!   next entry inside that locked transaction, so `seq` has no gaps and each
//!   `prev_hash` is the hash committed before it. It can only be called with a
//!   [`WriteTx`], so an append without the lock does not compile; were the
//!   lock ever bypassed, the `seq` primary key would make the second append
//!   fail rather than fork the chain. Triggers refuse `UPDATE`, `DELETE` and
//!   `TRUNCATE` on the log.
//! * **A secret is consumed once.** See [`Registry::record_issue`] below: a
//!   conditional `DELETE … RETURNING` of the exact row the request was
//!   verified against.
//! * **Durability.** A call returns only after `COMMIT` returned, and every
//!   connection runs with `synchronous_commit` at least `on`, so a commit is
//!   flushed to the WAL first (the server's `fsync` must be on; a warning is
//!   logged otherwise).
//!
//! No group commit: each call is its own transaction. PostgreSQL 15 manages
//! about 3 500 single-client commits a second here, the order of SQLite's
//! `synchronous=FULL` rate.
//!
//! # Connections and TLS
//!
//! The client speaks without TLS, so [`PostgresRegistry::connect`] accepts
//! only a unix socket or a loopback address, and refuses `sslmode=require`.
//! TLS to a remote database (a rustls connector over the aws-lc-rs provider
//! the rest of idprov uses) is future work.

mod bulk;
mod migrate;
mod schema;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Hook, HookError, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod,
    Runtime, Transaction,
};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{IsolationLevel, NoTls, Row};

use crate::audit::{Actor, AuditEntry, AuditRecord};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::registry::Registry;

pub use migrate::MigrationReport;
pub use schema::SCHEMA_VERSION;

/// The advisory lock every write transaction holds (ASCII "idprov", then 1).
/// Advisory locks are per database, so registries in different databases of
/// one server do not wait for each other.
const WRITE_LOCK: i64 = 0x6964_7072_6f76_0001;
/// The session lock that keeps two replicas from migrating at once.
const MIGRATION_LOCK: i64 = 0x6964_7072_6f76_0002;

/// Pool size unless told otherwise: writes take turns on one advisory lock, so
/// more connections only help concurrent reads, and a few replicas of 16
/// stay well under PostgreSQL's default `max_connections` of 100.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// How long opening a connection may take before the call fails, rather
/// than hanging on an unreachable database.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Run on every new connection: raise `synchronous_commit` to `on` when the
/// database or role set it `off` (which acknowledges commits before they are
/// flushed), and leave stronger settings (`remote_apply`…) alone.
const DURABLE_SESSION: &str = "SELECT set_config('synchronous_commit', 'on', false) \
     WHERE current_setting('synchronous_commit') = 'off'";

/// The registry in a PostgreSQL database.
pub struct PostgresRegistry {
    pool: Pool,
}

impl std::fmt::Debug for PostgresRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the connection string: it may hold a password.
        f.debug_struct("PostgresRegistry")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PostgresRegistry {
    /// Connects with [`DEFAULT_MAX_CONNECTIONS`]; see
    /// [`PostgresRegistry::connect_with`].
    pub async fn connect(url: &str) -> Result<PostgresRegistry> {
        Self::connect_with(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Connects to the database named by `url` (a `postgresql://` URL or a
    /// `key=value` string), checks it, and migrates its schema, refusing one
    /// newer than this binary ([`StoreError::SchemaTooNew`]). Must be called
    /// inside a tokio runtime, which then runs the connections.
    pub async fn connect_with(url: &str, max_connections: usize) -> Result<PostgresRegistry> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Database(format!("invalid PostgreSQL connection string: {e}"))
        })?;
        refuse_remote_plaintext(&config)?;
        config.ssl_mode(SslMode::Disable);
        if config.get_application_name().is_none() {
            config.application_name("idprov");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }

        // Checks and migrations on a connection of their own, closed
        // afterwards: that also releases the migration lock on any failure.
        {
            let (mut client, connection) = config.connect(NoTls).await.map_err(db_error)?;
            let session = tokio::spawn(connection);
            let result = async {
                check_server(&client).await?;
                schema::migrate(&mut client).await
            }
            .await;
            drop(client);
            let _ = session.await;
            result?;
        }

        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A broken connection is noticed by `is_closed`; a query per
                // checkout would cost a round trip on every call.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .post_create(Hook::async_fn(|client, _| {
                Box::pin(async move {
                    client
                        .batch_execute(DURABLE_SESSION)
                        .await
                        .map_err(HookError::Backend)
                })
            }))
            .build()
            .map_err(|e| StoreError::Database(format!("PostgreSQL pool: {e}")))?;
        Ok(PostgresRegistry { pool })
    }

    /// A server setting as this registry's connections see it (tests read
    /// back `fsync` and `synchronous_commit`).
    pub async fn setting(&self, name: &str) -> Result<String> {
        let client = self.client().await?;
        let row = query_one(&client, "SELECT current_setting($1)", &[&name]).await?;
        col(&row, 0)
    }

    /// Stops handing out connections: later calls fail with
    /// [`StoreError::Closed`]. Calls under way finish.
    pub fn close(&self) {
        self.pool.close();
    }

    async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// Without TLS, only a unix socket or a loopback address: anything else
/// would carry sealed secrets, certificates and the audit log in clear.
fn refuse_remote_plaintext(config: &tokio_postgres::Config) -> Result<()> {
    if !matches!(config.get_ssl_mode(), SslMode::Disable | SslMode::Prefer) {
        return Err(StoreError::Database(
            "sslmode=require: TLS to PostgreSQL is not supported yet; \
             connect over a unix socket or a loopback address"
                .into(),
        ));
    }
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    for i in 0..hosts.len().max(addrs.len()) {
        // As tokio-postgres connects: `hostaddr` wins over `host`.
        let local = match (addrs.get(i), hosts.get(i)) {
            (Some(addr), _) => addr.is_loopback(),
            (None, Some(Host::Tcp(name))) => {
                name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
            (None, Some(Host::Unix(_))) => true,
            _ => false,
        };
        if !local {
            let named = addrs
                .get(i)
                .map(ToString::to_string)
                .or_else(|| match hosts.get(i) {
                    Some(Host::Tcp(name)) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            return Err(StoreError::Database(format!(
                "PostgreSQL host {named:?} is not local: TLS to PostgreSQL is not supported yet; \
                 connect over a unix socket or a loopback address"
            )));
        }
    }
    Ok(())
}

/// Refuses a database whose text is not UTF-8 (the registry's text would
/// fail to convert, some of it much later), and warns when the server does
/// not fsync.
async fn check_server(client: &tokio_postgres::Client) -> Result<()> {
    let row = client
        .query_one(
            "SELECT current_setting('server_encoding'), current_setting('fsync')",
            &[],
        )
        .await
        .map_err(db_error)?;
    let encoding: String = col(&row, 0)?;
    let fsync: String = col(&row, 1)?;
    if encoding != "UTF8" {
        return Err(StoreError::Database(format!(
            "the PostgreSQL database uses encoding {encoding}; idprov needs UTF8 \
             (CREATE DATABASE … ENCODING 'UTF8' TEMPLATE template0)"
        )));
    }
    if fsync != "on" {
        tracing::warn!(
            "PostgreSQL runs with fsync={fsync}: committed registry changes can be lost on power failure"
        );
    }
    Ok(())
}

/// Maps a client error; a unique-constraint violation is a
/// [`StoreError::Conflict`], as the variant documents.
pub(super) fn db_error(e: tokio_postgres::Error) -> StoreError {
    let text = match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} ({})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(": ");
                text.push_str(detail);
            }
            text
        }
        None => error_chain(&e),
    };
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        StoreError::Conflict(text)
    } else {
        StoreError::Database(text)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Closed => StoreError::Closed,
        PoolError::Backend(e) => db_error(e),
        other => StoreError::Database(format!("PostgreSQL connection: {}", error_chain(&other))),
    }
}

/// A column, or [`StoreError::Corrupt`] when it does not decode (a NULL or a
/// value of another type): bad data fails the call, never panics.
fn col<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T> {
    row.try_get(idx).map_err(|e| {
        let name = row.columns().get(idx).map_or("?", |c| c.name());
        StoreError::Corrupt(format!("column {name}: {}", error_chain(&e)))
    })
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

// Statements go through each connection's statement cache: after the first
// use, a call costs one round trip instead of two.

async fn execute(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<u64> {
    let st = c.prepare_cached(sql).await.map_err(db_error)?;
    c.execute(&st, params).await.map_err(db_error)
}

async fn query(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
    let st = c.prepare_cached(sql).await.map_err(db_error)?;
    c.query(&st, params).await.map_err(db_error)
}

async fn query_opt(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
    let st = c.prepare_cached(sql).await.map_err(db_error)?;
    c.query_opt(&st, params).await.map_err(db_error)
}

async fn query_one(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Result<Row> {
    let st = c.prepare_cached(sql).await.map_err(db_error)?;
    c.query_one(&st, params).await.map_err(db_error)
}

/// A write transaction holding [`WRITE_LOCK`]. Only [`WriteTx::lock`]
/// makes one, and appending to the audit log needs one.
struct WriteTx<'a> {
    tx: Transaction<'a>,
}

/// Begins a write transaction and waits for its turn.
async fn begin_write(client: &mut deadpool_postgres::Client) -> Result<WriteTx<'_>> {
    let tx = client.transaction().await.map_err(db_error)?;
    WriteTx::lock(tx).await
}

impl<'a> WriteTx<'a> {
    /// Waits for the write lock. Taken before the transaction reads
    /// anything it decides on, so every read sees the writes before it.
    async fn lock(tx: Transaction<'a>) -> Result<WriteTx<'a>> {
        execute(&tx, "SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK]).await?;
        Ok(WriteTx { tx })
    }

    fn conn(&self) -> &Transaction<'a> {
        &self.tx
    }

    /// Commits; returns once PostgreSQL reports the commit durable.
    async fn commit(self) -> Result<()> {
        let started = Instant::now();
        let result = self.tx.commit().await.map_err(db_error);
        // Named as the server's metrics list them (idprov_server::observe);
        // without group commit every commit holds one change.
        metrics::histogram!("idprov_db_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("idprov_db_commit_group_size").record(1.0);
        result
    }

    /// Undoes everything (and releases the lock) when a precondition failed.
    async fn rollback(self) -> Result<()> {
        self.tx.rollback().await.map_err(db_error)
    }
}

/// Appends an audit entry inside the locked transaction, linking it to the
/// chain's head.
async fn append_audit_tx(w: &WriteTx<'_>, r: &AuditRecord) -> Result<i64> {
    let head = query_opt(
        w.conn(),
        "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
        &[],
    )
    .await?;
    let head = head
        .map(|row| Ok::<_, StoreError>((col::<i64>(&row, 0)?, col::<String>(&row, 1)?)))
        .transpose()?;
    let link = r.link(head)?;
    execute(
        w.conn(),
        "INSERT INTO audit_log (seq, at, actor, event, device_id, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &link.seq,
            &r.at,
            &r.actor.as_str(),
            &r.event,
            &r.device_id,
            &link.detail,
            &link.prev_hash,
            &link.hash,
        ],
    )
    .await?;
    Ok(link.seq)
}

async fn ensure_device(w: &WriteTx<'_>, device_id: &str, now: i64) -> Result<()> {
    execute(
        w.conn(),
        "INSERT INTO devices (device_id, created_at) VALUES ($1, $2)
         ON CONFLICT (device_id) DO NOTHING",
        &[&device_id, &now],
    )
    .await?;
    Ok(())
}

const CERT_COLUMNS: &str = "serial, kind, subject, pem, key_fingerprint, key_type, not_before, \
     not_after, issued_at, issue_kind, authorized_by, revoked_at, revocation_reason";

fn cert_from_row(r: &Row) -> Result<CertRecord> {
    let kind: String = col(r, 1)?;
    let issue_kind: String = col(r, 9)?;
    Ok(CertRecord {
        serial: col(r, 0)?,
        kind: CertKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown certificate kind {kind:?}")))?,
        subject: col(r, 2)?,
        pem: col(r, 3)?,
        key_fingerprint: col(r, 4)?,
        key_type: col(r, 5)?,
        not_before: col(r, 6)?,
        not_after: col(r, 7)?,
        issued_at: col(r, 8)?,
        issue_kind: IssueKind::parse(&issue_kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown issue kind {issue_kind:?}")))?,
        authorized_by: col(r, 10)?,
        revoked_at: col(r, 11)?,
        revocation_reason: col(r, 12)?,
    })
}

const WAITING_COLUMNS: &str = "device_id, key_fingerprint, key_type, public_key_pem, claimed_ip, \
     claimed_mac, source, first_seen, last_seen, attempts";

fn waiting_from_row(r: &Row) -> Result<WaitingRequest> {
    Ok(WaitingRequest {
        device_id: col(r, 0)?,
        key_fingerprint: col(r, 1)?,
        key_type: col(r, 2)?,
        public_key_pem: col(r, 3)?,
        claimed_ip: col(r, 4)?,
        claimed_mac: col(r, 5)?,
        source: col(r, 6)?,
        first_seen: col(r, 7)?,
        last_seen: col(r, 8)?,
        attempts: col(r, 9)?,
    })
}

fn audit_from_row(r: &Row) -> Result<AuditEntry> {
    let detail: String = col(r, 5)?;
    Ok(AuditEntry {
        seq: col(r, 0)?,
        at: col(r, 1)?,
        actor: col(r, 2)?,
        event: col(r, 3)?,
        device_id: col(r, 4)?,
        // A detail that no longer parses still fails the hash check.
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
        prev_hash: col(r, 6)?,
        hash: col(r, 7)?,
    })
}

async fn read_guess_budget(c: &impl GenericClient, device_id: &str) -> Result<Option<GuessBudget>> {
    query_opt(
        c,
        "SELECT secret_id, window_start, failures FROM guess_budgets WHERE device_id = $1",
        &[&device_id],
    )
    .await?
    .map(|r| guess_budget_from_row(&r, 0))
    .transpose()
}

fn guess_budget_from_row(r: &Row, at: usize) -> Result<GuessBudget> {
    Ok(GuessBudget {
        secret_id: col(r, at)?,
        window_start: col(r, at + 1)?,
        failures: failures_of(r, at + 2)?,
    })
}

fn approval_from_row(r: &Row, at: usize) -> Result<Approval> {
    Ok(Approval {
        device_id: col(r, at)?,
        key_fingerprint: col(r, at + 1)?,
        approved_by: col(r, at + 2)?,
        created_at: col(r, at + 3)?,
        expires_at: col(r, at + 4)?,
    })
}

fn rejection_from_row(r: &Row, at: usize) -> Result<Rejection> {
    Ok(Rejection {
        device_id: col(r, at)?,
        key_fingerprint: col(r, at + 1)?,
        rejected_by: col(r, at + 2)?,
        reason: col(r, at + 3)?,
        created_at: col(r, at + 4)?,
    })
}

fn rows_to<T>(rows: &[Row], f: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
}

const WAITING_PAGE: &str = "($2::text IS NULL AND w.device_id > $1::text)
    OR ($2::text IS NOT NULL AND (w.device_id, w.key_fingerprint) > ($1::text, $2::text))";

#[async_trait]
impl Registry for PostgresRegistry {
    async fn put_secret(&self, s: NewSecret, mut audit: AuditRecord) -> Result<PutSecretOutcome> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        ensure_device(&w, &s.device_id, s.created_at).await?;
        let replaced = execute(
            w.conn(),
            "DELETE FROM oob_secrets WHERE device_id = $1",
            &[&s.device_id],
        )
        .await?
            > 0;
        execute(
            w.conn(),
            "INSERT INTO oob_secrets (device_id, sealed, key_id, created_at, valid_until, created_by)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &s.device_id,
                &s.sealed,
                &s.key_id,
                &s.created_at,
                &s.valid_until,
                &s.created_by.as_str(),
            ],
        )
        .await?;
        if let Some(detail) = audit.detail.as_object_mut() {
            detail.insert("replaced".into(), replaced.into());
        }
        append_audit_tx(&w, &audit).await?;
        w.commit().await?;
        Ok(if replaced {
            PutSecretOutcome::Replaced
        } else {
            PutSecretOutcome::Added
        })
    }

    async fn remove_secret(&self, device_id: &str, audit: AuditRecord) -> Result<bool> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        let removed = execute(
            w.conn(),
            "DELETE FROM oob_secrets WHERE device_id = $1",
            &[&device_id],
        )
        .await?
            > 0;
        if removed {
            append_audit_tx(&w, &audit).await?;
        }
        w.commit().await?;
        Ok(removed)
    }

    async fn device_overview(&self, now: i64, soon: i64) -> Result<DeviceOverview> {
        let client = self.client().await?;
        // The classification of list_devices, counted.
        let row = query_one(
            &client,
            "WITH d AS (
                SELECT dv.device_id,
                  (SELECT COUNT(*) FROM certificates WHERE kind = 'device' AND subject = dv.device_id) AS certs,
                  (SELECT COUNT(revoked_at) FROM certificates WHERE kind = 'device' AND subject = dv.device_id) AS revoked,
                  (SELECT id FROM certificates WHERE kind = 'device' AND subject = dv.device_id
                      AND revoked_at IS NULL AND not_before <= $1::bigint AND not_after >= $1::bigint
                      ORDER BY id DESC LIMIT 1) AS valid_id,
                  (SELECT MAX(id) FROM certificates WHERE kind = 'device' AND subject = dv.device_id) AS latest_id,
                  EXISTS(SELECT 1 FROM oob_secrets WHERE device_id = dv.device_id AND valid_until >= $1::bigint) AS live,
                  (SELECT COUNT(*) FROM waiting_requests WHERE device_id = dv.device_id) AS waiting,
                  EXISTS(SELECT 1 FROM approvals WHERE device_id = dv.device_id AND expires_at >= $1::bigint) AS approved,
                  EXISTS(SELECT 1 FROM rejections WHERE device_id = dv.device_id) AS rejected
                FROM devices dv
            ), s AS (
                SELECT
                  CASE WHEN d.valid_id IS NOT NULL THEN 'Approved'
                       WHEN d.rejected THEN 'Rejected'
                       WHEN d.live OR d.waiting > 0 OR d.approved THEN 'Waiting'
                       WHEN d.certs > 0 AND d.revoked = d.certs THEN 'Rejected'
                       ELSE 'Waiting' END AS status,
                  (d.certs > 0 AND d.revoked = d.certs) AS all_revoked,
                  (v.not_after IS NOT NULL AND v.not_after <= $2::bigint) AS expiring,
                  (l.id IS NOT NULL AND l.revoked_at IS NULL
                    AND $1::bigint > l.not_before + (l.not_after - l.not_before) * 55 / 100 + 86400) AS missed
                FROM d
                LEFT JOIN certificates v ON v.id = d.valid_id
                LEFT JOIN certificates l ON l.id = d.latest_id
            )
            SELECT COUNT(*)::bigint,
              COUNT(*) FILTER (WHERE status = 'Approved')::bigint,
              COUNT(*) FILTER (WHERE status = 'Waiting')::bigint,
              COUNT(*) FILTER (WHERE status = 'Rejected')::bigint,
              COUNT(*) FILTER (WHERE all_revoked)::bigint,
              COUNT(*) FILTER (WHERE expiring)::bigint,
              COUNT(*) FILTER (WHERE missed)::bigint
            FROM s",
            &[&now, &soon],
        )
        .await?;
        let n = |i: usize| -> Result<u64> {
            let v: i64 = col(&row, i)?;
            Ok(u64::try_from(v).unwrap_or(0))
        };
        Ok(DeviceOverview {
            total: n(0)?,
            approved: n(1)?,
            waiting: n(2)?,
            rejected: n(3)?,
            revoked: n(4)?,
            expiring: n(5)?,
            missed_renewal: n(6)?,
        })
    }

    async fn set_web_password(&self, password: WebPassword, audit: AuditRecord) -> Result<()> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        execute(
            w.conn(),
            "INSERT INTO web_passwords (name, hash, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at",
            &[&password.name, &password.hash, &password.updated_at],
        )
        .await?;
        append_audit_tx(&w, &audit).await?;
        w.commit().await
    }

    async fn web_password(&self, name: &str) -> Result<Option<WebPassword>> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            "SELECT name, hash, updated_at FROM web_passwords WHERE name = $1",
            &[&name],
        )
        .await?;
        row.map(|r| {
            Ok(WebPassword {
                name: col(&r, 0)?,
                hash: col(&r, 1)?,
                updated_at: col(&r, 2)?,
            })
        })
        .transpose()
    }

    async fn remove_web_password(&self, name: &str, audit: AuditRecord) -> Result<bool> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        let removed = execute(
            w.conn(),
            "DELETE FROM web_passwords WHERE name = $1",
            &[&name],
        )
        .await?
            > 0;
        if removed {
            append_audit_tx(&w, &audit).await?;
        }
        w.commit().await?;
        Ok(removed)
    }

    async fn web_password_count(&self) -> Result<u64> {
        let client = self.client().await?;
        let n: i64 = col(
            &query_one(&client, "SELECT COUNT(*) FROM web_passwords", &[]).await?,
            0,
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn secret_key_ids(&self) -> Result<Vec<(String, u64)>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT key_id, count(*) FROM oob_secrets GROUP BY key_id ORDER BY key_id",
            &[],
        )
        .await?;
        rows.iter()
            .map(|r| {
                let n: i64 = col(r, 1)?;
                Ok((col(r, 0)?, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    async fn live_secret(&self, device_id: &str, now: i64) -> Result<Option<StoredSecret>> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            "SELECT id, device_id, sealed, key_id, created_at, valid_until
             FROM oob_secrets WHERE device_id = $1 AND valid_until >= $2",
            &[&device_id, &now],
        )
        .await?;
        row.map(|r| {
            Ok(StoredSecret {
                id: col(&r, 0)?,
                device_id: col(&r, 1)?,
                sealed: col(&r, 2)?,
                key_id: col(&r, 3)?,
                created_at: col(&r, 4)?,
                valid_until: col(&r, 5)?,
            })
        })
        .transpose()
    }

    async fn consumed_secret(
        &self,
        device_id: &str,
        key_fingerprint: &str,
        since: i64,
    ) -> Result<Option<ConsumedSecret>> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            "SELECT sealed, key_id, serial, consumed_at FROM consumed_secrets
             WHERE device_id = $1 AND key_fingerprint = $2 AND consumed_at >= $3",
            &[&device_id, &key_fingerprint, &since],
        )
        .await?;
        row.map(|r| {
            Ok(ConsumedSecret {
                sealed: col(&r, 0)?,
                key_id: col(&r, 1)?,
                serial: col(&r, 2)?,
                consumed_at: col(&r, 3)?,
            })
        })
        .transpose()
    }

    async fn list_secrets(&self, page: &Page) -> Result<Vec<SecretSummary>> {
        let after = page.after.clone().unwrap_or_default();
        let limit = page.sql_limit();
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT device_id, created_at, valid_until, created_by FROM oob_secrets
             WHERE device_id > $1 ORDER BY device_id LIMIT $2",
            &[&after, &limit],
        )
        .await?;
        rows_to(&rows, |r| {
            Ok(SecretSummary {
                device_id: col(r, 0)?,
                created_at: col(r, 1)?,
                valid_until: col(r, 2)?,
                created_by: col(r, 3)?,
            })
        })
    }

    async fn purge_secrets(
        &self,
        current_key_id: &str,
        now: i64,
        consumed_before: i64,
    ) -> Result<(u64, u64)> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        // Only registered secrets count: consumed ones served re-delivery.
        let unreadable = execute(
            w.conn(),
            "DELETE FROM oob_secrets WHERE key_id <> $1",
            &[&current_key_id],
        )
        .await?;
        execute(
            w.conn(),
            "DELETE FROM consumed_secrets WHERE key_id <> $1",
            &[&current_key_id],
        )
        .await?;
        let expired = execute(
            w.conn(),
            "DELETE FROM oob_secrets WHERE valid_until < $1",
            &[&now],
        )
        .await?;
        execute(
            w.conn(),
            "DELETE FROM consumed_secrets WHERE consumed_at < $1",
            &[&consumed_before],
        )
        .await?;
        if unreadable > 0 {
            append_audit_tx(
                &w,
                &AuditRecord::new(
                    now,
                    Actor::system(),
                    "secrets_purged",
                    None,
                    serde_json::json!({
                        "count": unreadable,
                        "reason": "sealed under a key this server no longer has (restart without a persistent secret key)"
                    }),
                ),
            )
            .await?;
        }
        if expired > 0 {
            append_audit_tx(
                &w,
                &AuditRecord::new(
                    now,
                    Actor::system(),
                    "secrets_expired",
                    None,
                    serde_json::json!({ "count": expired }),
                ),
            )
            .await?;
        }
        w.commit().await?;
        Ok((unreadable, expired))
    }

    async fn lockout(&self, device_id: &str, source: &str) -> Result<Option<Lockout>> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            "SELECT failures, locked_until FROM lockouts WHERE device_id = $1 AND source = $2",
            &[&device_id, &source],
        )
        .await?;
        row.map(|r| {
            Ok(Lockout {
                failures: failures_of(&r, 0)?,
                locked_until: col(&r, 1)?,
            })
        })
        .transpose()
    }

    async fn record_failure(
        &self,
        device_id: &str,
        source: &str,
        secret_id: i64,
        now: i64,
        policy: &LockoutPolicy,
    ) -> Result<Failure> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        let previous = query_opt(
            w.conn(),
            "SELECT failures, last_failure FROM lockouts WHERE device_id = $1 AND source = $2",
            &[&device_id, &source],
        )
        .await?
        .map(|r| Ok::<_, StoreError>((failures_of(&r, 0)?, col::<i64>(&r, 1)?)))
        .transpose()?;
        let (lockout, lock_started) = policy.after_failure(previous, now);
        execute(
            w.conn(),
            "INSERT INTO lockouts (device_id, source, failures, last_failure, locked_until)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (device_id, source) DO UPDATE SET
                failures = excluded.failures, last_failure = excluded.last_failure,
                locked_until = excluded.locked_until",
            &[
                &device_id,
                &source,
                &i64::from(lockout.failures),
                &now,
                &lockout.locked_until,
            ],
        )
        .await?;
        let previous_budget = read_guess_budget(w.conn(), device_id).await?;
        let (budget, budget_spent) = policy.after_device_failure(secret_id, previous_budget, now);
        execute(
            w.conn(),
            "INSERT INTO guess_budgets (device_id, secret_id, window_start, failures)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (device_id) DO UPDATE SET secret_id = excluded.secret_id,
                window_start = excluded.window_start, failures = excluded.failures",
            &[
                &device_id,
                &budget.secret_id,
                &budget.window_start,
                &i64::from(budget.failures),
            ],
        )
        .await?;
        w.commit().await?;
        Ok(Failure {
            lockout,
            lock_started,
            budget,
            budget_spent,
        })
    }

    async fn guess_budget(&self, device_id: &str) -> Result<Option<GuessBudget>> {
        let client = self.client().await?;
        read_guess_budget(&client, device_id).await
    }

    async fn clear_lockouts(&self, device_id: &str, audit: AuditRecord) -> Result<u64> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        let n = execute(
            w.conn(),
            "DELETE FROM lockouts WHERE device_id = $1",
            &[&device_id],
        )
        .await?;
        let budget = execute(
            w.conn(),
            "DELETE FROM guess_budgets WHERE device_id = $1",
            &[&device_id],
        )
        .await?;
        if n > 0 || budget > 0 {
            append_audit_tx(&w, &audit).await?;
        }
        w.commit().await?;
        Ok(n)
    }

    async fn gauges(&self, now: i64, soon: i64) -> Result<Gauges> {
        let client = self.client().await?;
        let row = query_one(
            &client,
            "SELECT (SELECT COUNT(*) FROM waiting_requests),
                    (SELECT COUNT(*) FROM devices),
                    (SELECT COUNT(*) FROM certificates WHERE kind = 'device' AND revoked_at IS NULL
                       AND not_after >= $1 AND not_after < $2)",
            &[&now, &soon],
        )
        .await?;
        Ok(Gauges {
            waiting: count(col(&row, 0)?),
            devices: count(col(&row, 1)?),
            expiring: count(col(&row, 2)?),
        })
    }

    async fn record_waiting(
        &self,
        w: WaitingRequest,
        caps: WaitingCaps,
        audit: Option<AuditRecord>,
    ) -> Result<WaitingOutcome> {
        let mut client = self.client().await?;
        let tx = begin_write(&mut client).await?;
        let updated = execute(
            tx.conn(),
            "UPDATE waiting_requests SET claimed_ip = $3, claimed_mac = $4, source = $5,
                last_seen = $6, attempts = attempts + 1
             WHERE device_id = $1 AND key_fingerprint = $2",
            &[
                &w.device_id,
                &w.key_fingerprint,
                &w.claimed_ip,
                &w.claimed_mac,
                &w.source,
                &w.last_seen,
            ],
        )
        .await?;
        if updated > 0 {
            tx.commit().await?;
            return Ok(WaitingOutcome::Updated);
        }
        let row = query_one(
            tx.conn(),
            "SELECT (SELECT COUNT(*) FROM waiting_requests WHERE source = $1),
                    (SELECT COUNT(*) FROM waiting_requests)",
            &[&w.source],
        )
        .await?;
        if count(col(&row, 0)?) >= caps.per_source {
            tx.rollback().await?;
            return Ok(WaitingOutcome::SourceCapReached);
        }
        let mut outcome = WaitingOutcome::Queued;
        if count(col(&row, 1)?) >= caps.total {
            // Full: the source holding the most gives up its least recently
            // seen entry, if it holds more than this one.
            let from_source: i64 = col(&row, 0)?;
            let top = query_opt(
                tx.conn(),
                "SELECT source, COUNT(*) AS n FROM waiting_requests
                 GROUP BY source ORDER BY n DESC, source LIMIT 1",
                &[],
            )
            .await?;
            match top {
                Some(t) if col::<i64>(&t, 1)? > from_source + 1 => {
                    let source: String = col(&t, 0)?;
                    execute(
                        tx.conn(),
                        "DELETE FROM waiting_requests WHERE (device_id, key_fingerprint) IN (
                            SELECT device_id, key_fingerprint FROM waiting_requests
                            WHERE source = $1
                            ORDER BY last_seen, device_id, key_fingerprint LIMIT 1)",
                        &[&source],
                    )
                    .await?;
                    outcome = WaitingOutcome::Evicted;
                }
                _ => {
                    tx.rollback().await?;
                    return Ok(WaitingOutcome::TotalCapReached);
                }
            }
        }
        ensure_device(&tx, &w.device_id, w.first_seen).await?;
        execute(
            tx.conn(),
            &format!(
                "INSERT INTO waiting_requests ({WAITING_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1)"
            ),
            &[
                &w.device_id,
                &w.key_fingerprint,
                &w.key_type,
                &w.public_key_pem,
                &w.claimed_ip,
                &w.claimed_mac,
                &w.source,
                &w.first_seen,
                &w.last_seen,
            ],
        )
        .await?;
        if let Some(audit) = &audit {
            append_audit_tx(&tx, audit).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// The secret is consumed by `DELETE FROM oob_secrets WHERE id = $id AND
    /// device_id = $device AND valid_until >= $issued_at RETURNING …` inside
    /// the issuance's transaction: the exact row the request was verified
    /// against, still unexpired, or nothing. Two replicas racing for one
    /// secret cannot both succeed, for two independent reasons: their
    /// transactions take turns on the write lock, so the second deletes
    /// after the first committed and finds no row; and even without the
    /// lock, PostgreSQL's `DELETE` waits on the first's row lock and then
    /// re-checks the row, which is gone. Whoever deletes nothing gets
    /// [`IssueOutcome::SecretGone`] and the transaction is rolled back, so
    /// its certificate is never recorded (nor handed out). A used approval
    /// is consumed the same way.
    async fn record_issue(&self, rec: IssueRecord) -> Result<IssueOutcome> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        let cert = &rec.cert;
        if let Some(consume) = &rec.consume_secret {
            let row = query_opt(
                w.conn(),
                "DELETE FROM oob_secrets WHERE id = $1 AND device_id = $2 AND valid_until >= $3
                 RETURNING sealed, key_id",
                &[&consume.secret_id, &cert.subject, &cert.issued_at],
            )
            .await?;
            let Some(row) = row else {
                w.rollback().await?;
                return Ok(IssueOutcome::SecretGone);
            };
            let sealed: Vec<u8> = col(&row, 0)?;
            let key_id: String = col(&row, 1)?;
            execute(
                w.conn(),
                "INSERT INTO consumed_secrets (device_id, key_fingerprint, sealed, key_id, serial, consumed_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (device_id, key_fingerprint) DO UPDATE SET
                    sealed = excluded.sealed, key_id = excluded.key_id,
                    serial = excluded.serial, consumed_at = excluded.consumed_at",
                &[
                    &cert.subject,
                    &consume.key_fingerprint,
                    &sealed,
                    &key_id,
                    &cert.serial,
                    &cert.issued_at,
                ],
            )
            .await?;
        }
        if let Some(fp) = &rec.consume_approval {
            let used = execute(
                w.conn(),
                "DELETE FROM approvals WHERE device_id = $1 AND key_fingerprint = $2 AND expires_at >= $3",
                &[&cert.subject, fp, &cert.issued_at],
            )
            .await?;
            if used == 0 {
                // Rolled back as a whole: a secret consumed above stays.
                w.rollback().await?;
                return Ok(IssueOutcome::SecretGone);
            }
        }
        if cert.kind == CertKind::Device {
            ensure_device(&w, &cert.subject, cert.issued_at).await?;
        }
        execute(
            w.conn(),
            &format!(
                "INSERT INTO certificates ({CERT_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL)"
            ),
            &[
                &cert.serial,
                &cert.kind.as_str(),
                &cert.subject,
                &cert.pem,
                &cert.key_fingerprint,
                &cert.key_type,
                &cert.not_before,
                &cert.not_after,
                &cert.issued_at,
                &cert.issue_kind.as_str(),
                &cert.authorized_by,
            ],
        )
        .await?;
        if let Some(source) = &rec.reset_lockout_for {
            execute(
                w.conn(),
                "DELETE FROM lockouts WHERE device_id = $1 AND source = $2",
                &[&cert.subject, source],
            )
            .await?;
        }
        if let Some(fp) = &rec.clear_waiting_key {
            execute(
                w.conn(),
                "DELETE FROM waiting_requests WHERE device_id = $1 AND key_fingerprint = $2",
                &[&cert.subject, fp],
            )
            .await?;
        }
        append_audit_tx(&w, &rec.audit).await?;
        w.commit().await?;
        Ok(IssueOutcome::Recorded)
    }

    async fn certificate(&self, serial: &str) -> Result<Option<CertRecord>> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            &format!("SELECT {CERT_COLUMNS} FROM certificates WHERE serial = $1"),
            &[&serial],
        )
        .await?;
        row.as_ref().map(cert_from_row).transpose()
    }

    async fn certificates_of(&self, kind: CertKind, subject: &str) -> Result<Vec<CertRecord>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {CERT_COLUMNS} FROM certificates WHERE kind = $1 AND subject = $2
                 ORDER BY id DESC"
            ),
            &[&kind.as_str(), &subject],
        )
        .await?;
        rows_to(&rows, cert_from_row)
    }

    async fn device(&self, device_id: &str, now: i64) -> Result<Option<DeviceFacts>> {
        let mut client = self.client().await?;
        // One snapshot for all the facts (the SQLite backend reads them
        // statement by statement; this is at least as consistent).
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db_error)?;
        let Some(row) = query_opt(
            &tx,
            "SELECT created_at FROM devices WHERE device_id = $1",
            &[&device_id],
        )
        .await?
        else {
            return Ok(None);
        };
        let created_at: i64 = col(&row, 0)?;
        let newest_valid = query_opt(
            &tx,
            &format!(
                "SELECT {CERT_COLUMNS} FROM certificates
                 WHERE kind = 'device' AND subject = $1 AND revoked_at IS NULL
                   AND not_before <= $2 AND not_after >= $2
                 ORDER BY id DESC LIMIT 1"
            ),
            &[&device_id, &now],
        )
        .await?
        .as_ref()
        .map(cert_from_row)
        .transpose()?;
        let row = query_one(
            &tx,
            "SELECT
               (SELECT COUNT(*) FROM certificates WHERE kind = 'device' AND subject = $1),
               (SELECT COUNT(revoked_at) FROM certificates WHERE kind = 'device' AND subject = $1),
               EXISTS(SELECT 1 FROM oob_secrets WHERE device_id = $1 AND valid_until >= $2),
               (SELECT COUNT(*) FROM waiting_requests WHERE device_id = $1),
               EXISTS(SELECT 1 FROM approvals WHERE device_id = $1 AND expires_at >= $2),
               EXISTS(SELECT 1 FROM rejections WHERE device_id = $1)",
            &[&device_id, &now],
        )
        .await?;
        let facts = DeviceFacts {
            device_id: device_id.to_owned(),
            created_at,
            newest_valid,
            certificates: count(col(&row, 0)?),
            revoked: count(col(&row, 1)?),
            live_secret: col(&row, 2)?,
            waiting: count(col(&row, 3)?),
            approved: col(&row, 4)?,
            rejected: col(&row, 5)?,
        };
        tx.commit().await.map_err(db_error)?;
        Ok(Some(facts))
    }

    async fn list_devices(
        &self,
        page: &Page,
        now: i64,
        filter: &DeviceFilter,
    ) -> Result<Vec<DeviceSummary>> {
        let after = page.after.clone().unwrap_or_default();
        let limit = page.sql_limit();
        let status = filter.status.map(ProvisionStatus::as_str);
        let client = self.client().await?;
        // The CASE mirrors ProvisionStatus::derive (and the SQLite listing).
        let rows = query(
            &client,
            "WITH d AS (
                SELECT dv.device_id, dv.created_at,
                  (SELECT COUNT(*) FROM certificates WHERE kind = 'device' AND subject = dv.device_id) AS certs,
                  (SELECT COUNT(revoked_at) FROM certificates WHERE kind = 'device' AND subject = dv.device_id) AS revoked,
                  (SELECT id FROM certificates WHERE kind = 'device' AND subject = dv.device_id
                      AND revoked_at IS NULL AND not_before <= $3::bigint AND not_after >= $3::bigint
                      ORDER BY id DESC LIMIT 1) AS valid_id,
                  (SELECT MAX(id) FROM certificates WHERE kind = 'device' AND subject = dv.device_id) AS latest_id,
                  EXISTS(SELECT 1 FROM oob_secrets WHERE device_id = dv.device_id AND valid_until >= $3::bigint) AS live,
                  (SELECT COUNT(*) FROM waiting_requests WHERE device_id = dv.device_id) AS waiting,
                  EXISTS(SELECT 1 FROM approvals WHERE device_id = dv.device_id AND expires_at >= $3::bigint) AS approved,
                  EXISTS(SELECT 1 FROM rejections WHERE device_id = dv.device_id) AS rejected
                FROM devices dv
                WHERE dv.device_id > $1::text
                  AND ($4::text IS NULL OR left(dv.device_id, length($4::text)) = $4::text)
            ), s AS (
                SELECT d.*, v.not_after AS valid_until, v.serial AS valid_serial,
                  l.issued_at AS last_issued,
                  CASE WHEN d.valid_id IS NOT NULL THEN 'Approved'
                       WHEN d.rejected THEN 'Rejected'
                       WHEN d.live OR d.waiting > 0 OR d.approved THEN 'Waiting'
                       WHEN d.certs > 0 AND d.revoked = d.certs THEN 'Rejected'
                       ELSE 'Waiting' END AS status,
                  (l.id IS NOT NULL AND l.revoked_at IS NULL
                    AND $3::bigint > l.not_before + (l.not_after - l.not_before) * 55 / 100 + 86400) AS missed
                FROM d
                LEFT JOIN certificates v ON v.id = d.valid_id
                LEFT JOIN certificates l ON l.id = d.latest_id
            )
            SELECT device_id, created_at, certs, revoked, valid_until, valid_serial,
                   last_issued, live, waiting, approved, rejected, status
            FROM s
            WHERE ($5::text IS NULL OR status = $5::text)
              AND ($6::bigint IS NULL OR (valid_until IS NOT NULL AND valid_until <= $3::bigint + $6::bigint))
              AND (NOT $7::bool OR missed)
            ORDER BY device_id LIMIT $2::bigint",
            &[
                &after,
                &limit,
                &now,
                &filter.prefix,
                &status,
                &filter.expiring_within,
                &filter.missed_renewal,
            ],
        )
        .await?;
        rows_to(&rows, |r| {
            let status: String = col(r, 11)?;
            Ok(DeviceSummary {
                device_id: col(r, 0)?,
                created_at: col(r, 1)?,
                certificates: count(col(r, 2)?),
                revoked: count(col(r, 3)?),
                valid_until: col(r, 4)?,
                serial: col(r, 5)?,
                last_issued_at: col(r, 6)?,
                live_secret: col(r, 7)?,
                waiting: count(col(r, 8)?),
                approved: col(r, 9)?,
                rejected: col(r, 10)?,
                status: ProvisionStatus::parse_any_case(&status)
                    .unwrap_or(ProvisionStatus::Waiting),
            })
        })
    }

    async fn list_waiting(&self, page: &Page) -> Result<Vec<WaitingRequest>> {
        let (device, fp) = page.waiting_cursor();
        let limit = page.sql_limit();
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {WAITING_COLUMNS} FROM waiting_requests w
                 WHERE {WAITING_PAGE}
                 ORDER BY device_id, key_fingerprint LIMIT $3"
            ),
            &[&device, &fp, &limit],
        )
        .await?;
        rows_to(&rows, waiting_from_row)
    }

    async fn waiting_for(&self, device_id: &str) -> Result<Vec<WaitingRequest>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {WAITING_COLUMNS} FROM waiting_requests
                 WHERE device_id = $1 ORDER BY key_fingerprint"
            ),
            &[&device_id],
        )
        .await?;
        rows_to(&rows, waiting_from_row)
    }

    async fn list_queue(&self, page: &Page, now: i64) -> Result<Vec<QueueEntry>> {
        let (device, fp) = page.waiting_cursor();
        let limit = page.sql_limit();
        let client = self.client().await?;
        // The page of list_waiting with each entry's decisions, in one
        // statement (one snapshot).
        let rows = query(
            &client,
            &format!(
                "SELECT w.device_id, w.key_fingerprint, w.key_type, w.public_key_pem, w.claimed_ip,
                        w.claimed_mac, w.source, w.first_seen, w.last_seen, w.attempts,
                        a.device_id IS NOT NULL,
                        a.device_id, a.key_fingerprint, a.approved_by, a.created_at, a.expires_at,
                        r.device_id IS NOT NULL,
                        r.device_id, r.key_fingerprint, r.rejected_by, r.reason, r.created_at
                 FROM waiting_requests w
                 LEFT JOIN approvals a ON a.device_id = w.device_id
                    AND a.key_fingerprint = w.key_fingerprint AND a.expires_at >= $4
                 LEFT JOIN rejections r ON r.device_id = w.device_id
                    AND r.key_fingerprint = w.key_fingerprint
                 WHERE {WAITING_PAGE}
                 ORDER BY w.device_id, w.key_fingerprint LIMIT $3"
            ),
            &[&device, &fp, &limit, &now],
        )
        .await?;
        rows_to(&rows, |r| {
            let approved: bool = col(r, 10)?;
            let rejected: bool = col(r, 16)?;
            Ok(QueueEntry {
                request: waiting_from_row(r)?,
                approval: approved.then(|| approval_from_row(r, 11)).transpose()?,
                rejection: rejected.then(|| rejection_from_row(r, 17)).transpose()?,
            })
        })
    }

    async fn approve(
        &self,
        device_id: &str,
        key_fingerprint: &str,
        expires_at: i64,
        audit: AuditRecord,
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        let waiting: bool = col(
            &query_one(
                w.conn(),
                "SELECT EXISTS(SELECT 1 FROM waiting_requests WHERE device_id = $1 AND key_fingerprint = $2)",
                &[&device_id, &key_fingerprint],
            )
            .await?,
            0,
        )?;
        if !waiting {
            w.rollback().await?;
            return Ok(false);
        }
        execute(
            w.conn(),
            "DELETE FROM rejections WHERE device_id = $1 AND key_fingerprint = $2",
            &[&device_id, &key_fingerprint],
        )
        .await?;
        execute(
            w.conn(),
            "INSERT INTO approvals (device_id, key_fingerprint, approved_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (device_id, key_fingerprint) DO UPDATE SET
                approved_by = excluded.approved_by, created_at = excluded.created_at,
                expires_at = excluded.expires_at",
            &[
                &device_id,
                &key_fingerprint,
                &audit.actor.as_str(),
                &audit.at,
                &expires_at,
            ],
        )
        .await?;
        append_audit_tx(&w, &audit).await?;
        w.commit().await?;
        Ok(true)
    }

    async fn reject(
        &self,
        device_id: &str,
        key_fingerprint: &str,
        reason: &str,
        audit: AuditRecord,
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        let waiting: bool = col(
            &query_one(
                w.conn(),
                "SELECT EXISTS(SELECT 1 FROM waiting_requests WHERE device_id = $1 AND key_fingerprint = $2)",
                &[&device_id, &key_fingerprint],
            )
            .await?,
            0,
        )?;
        if !waiting {
            w.rollback().await?;
            return Ok(false);
        }
        execute(
            w.conn(),
            "DELETE FROM approvals WHERE device_id = $1 AND key_fingerprint = $2",
            &[&device_id, &key_fingerprint],
        )
        .await?;
        execute(
            w.conn(),
            "INSERT INTO rejections (device_id, key_fingerprint, rejected_by, reason, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (device_id, key_fingerprint) DO UPDATE SET
                rejected_by = excluded.rejected_by, reason = excluded.reason,
                created_at = excluded.created_at",
            &[
                &device_id,
                &key_fingerprint,
                &audit.actor.as_str(),
                &reason,
                &audit.at,
            ],
        )
        .await?;
        append_audit_tx(&w, &audit).await?;
        w.commit().await?;
        Ok(true)
    }

    async fn clear_requests(
        &self,
        device_id: &str,
        key_fingerprint: Option<&str>,
        audit: AuditRecord,
    ) -> Result<u64> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        let mut n = 0;
        for table in ["waiting_requests", "approvals", "rejections"] {
            n += execute(
                w.conn(),
                &format!(
                    "DELETE FROM {table} WHERE device_id = $1::text
                       AND ($2::text IS NULL OR key_fingerprint = $2::text)"
                ),
                &[&device_id, &key_fingerprint],
            )
            .await?;
        }
        if n > 0 {
            append_audit_tx(&w, &audit).await?;
        }
        w.commit().await?;
        Ok(n)
    }

    async fn approval(
        &self,
        device_id: &str,
        key_fingerprint: &str,
        now: i64,
    ) -> Result<Option<Approval>> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            "SELECT device_id, key_fingerprint, approved_by, created_at, expires_at FROM approvals
             WHERE device_id = $1 AND key_fingerprint = $2 AND expires_at >= $3",
            &[&device_id, &key_fingerprint, &now],
        )
        .await?;
        row.map(|r| approval_from_row(&r, 0)).transpose()
    }

    async fn rejection(&self, device_id: &str, key_fingerprint: &str) -> Result<Option<Rejection>> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            "SELECT device_id, key_fingerprint, rejected_by, reason, created_at FROM rejections
             WHERE device_id = $1 AND key_fingerprint = $2",
            &[&device_id, &key_fingerprint],
        )
        .await?;
        row.map(|r| rejection_from_row(&r, 0)).transpose()
    }

    async fn oob_view(
        &self,
        device_id: &str,
        key_fingerprint: &str,
        source: &str,
        now: i64,
        consumed_since: i64,
    ) -> Result<OobView> {
        let client = self.client().await?;
        // The seven reads of the OOB path in one statement: one round trip
        // and one snapshot. Each join matches at most one row (its key), so
        // there is exactly one result row, NULL where nothing matched.
        let r = query_one(
            &client,
            "SELECT l.failures, l.locked_until,
                    j.device_id, j.key_fingerprint, j.rejected_by, j.reason, j.created_at,
                    a.device_id, a.key_fingerprint, a.approved_by, a.created_at, a.expires_at,
                    c.sealed, c.key_id, c.serial, c.consumed_at,
                    s.id, s.device_id, s.sealed, s.key_id, s.created_at, s.valid_until,
                    ac.serial,
                    g.secret_id, g.window_start, g.failures
             FROM (SELECT 1) AS one
             LEFT JOIN lockouts l ON l.device_id = $1::text AND l.source = $3::text
             LEFT JOIN rejections j ON j.device_id = $1::text AND j.key_fingerprint = $2::text
             LEFT JOIN approvals a ON a.device_id = $1::text AND a.key_fingerprint = $2::text
                AND a.expires_at >= $4::bigint
             LEFT JOIN consumed_secrets c ON c.device_id = $1::text AND c.key_fingerprint = $2::text
                AND c.consumed_at >= $5::bigint
             LEFT JOIN oob_secrets s ON s.device_id = $1::text AND s.valid_until >= $4::bigint
             LEFT JOIN LATERAL (
                 SELECT serial FROM certificates
                 WHERE kind = 'device' AND subject = $1::text AND key_fingerprint = $2::text
                   AND issue_kind = 'approval' AND issued_at >= $5::bigint AND revoked_at IS NULL
                 ORDER BY id DESC LIMIT 1
             ) ac ON true
             LEFT JOIN guess_budgets g ON g.device_id = $1::text",
            &[&device_id, &key_fingerprint, &source, &now, &consumed_since],
        )
        .await?;
        // A NOT NULL column of each table tells whether its row was found.
        let found = |idx: usize| Ok::<_, StoreError>(col::<Option<&str>>(&r, idx)?.is_some());
        Ok(OobView {
            lockout: match col::<Option<i64>>(&r, 0)? {
                Some(_) => Some(Lockout {
                    failures: failures_of(&r, 0)?,
                    locked_until: col(&r, 1)?,
                }),
                None => None,
            },
            rejection: found(2)?.then(|| rejection_from_row(&r, 2)).transpose()?,
            approval: found(7)?.then(|| approval_from_row(&r, 7)).transpose()?,
            consumed: found(13)?
                .then(|| {
                    Ok::<_, StoreError>(ConsumedSecret {
                        sealed: col(&r, 12)?,
                        key_id: col(&r, 13)?,
                        serial: col(&r, 14)?,
                        consumed_at: col(&r, 15)?,
                    })
                })
                .transpose()?,
            live_secret: match col::<Option<i64>>(&r, 16)? {
                Some(id) => Some(StoredSecret {
                    id,
                    device_id: col(&r, 17)?,
                    sealed: col(&r, 18)?,
                    key_id: col(&r, 19)?,
                    created_at: col(&r, 20)?,
                    valid_until: col(&r, 21)?,
                }),
                None => None,
            },
            approved_serial: col(&r, 22)?,
            guess_budget: match col::<Option<i64>>(&r, 23)? {
                Some(_) => Some(guess_budget_from_row(&r, 23)?),
                None => None,
            },
        })
    }

    async fn expire_queue(&self, waiting_before: i64, now: i64) -> Result<(u64, u64)> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        let waiting = execute(
            w.conn(),
            "DELETE FROM waiting_requests WHERE last_seen < $1",
            &[&waiting_before],
        )
        .await?;
        let approvals = execute(
            w.conn(),
            "DELETE FROM approvals WHERE expires_at < $1",
            &[&now],
        )
        .await?;
        if waiting + approvals > 0 {
            append_audit_tx(
                &w,
                &AuditRecord::new(
                    now,
                    Actor::system(),
                    "queue_expired",
                    None,
                    serde_json::json!({ "waitingRequests": waiting, "approvals": approvals }),
                ),
            )
            .await?;
        }
        w.commit().await?;
        Ok((waiting, approvals))
    }

    async fn revoke(&self, r: Revocation) -> Result<Vec<String>> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        // RETURNING has no defined order; the CTE sorts by issuance, as the
        // SQLite backend returns them.
        let rows = query(
            w.conn(),
            "WITH revoked AS (
                UPDATE certificates SET revoked_at = $1, revocation_reason = $2
                WHERE kind = $3::text AND subject = $4::text AND revoked_at IS NULL
                  AND ($5::text IS NULL OR serial = $5::text)
                RETURNING id, serial)
             SELECT serial FROM revoked ORDER BY id",
            &[&r.at, &r.reason, &r.kind.as_str(), &r.subject, &r.serial],
        )
        .await?;
        let serials = rows_to(&rows, |row| col::<String>(row, 0))?;
        if !serials.is_empty() {
            let mut audit = r.audit.clone();
            if let Some(d) = audit.detail.as_object_mut() {
                d.insert("serials".into(), serde_json::json!(serials));
            }
            append_audit_tx(&w, &audit).await?;
        }
        w.commit().await?;
        Ok(serials)
    }

    async fn remove_device(
        &self,
        device_id: &str,
        at: i64,
        audit: AuditRecord,
    ) -> Result<Option<Vec<String>>> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        let known = execute(
            w.conn(),
            "DELETE FROM devices WHERE device_id = $1",
            &[&device_id],
        )
        .await?
            > 0;
        if !known {
            w.rollback().await?;
            return Ok(None);
        }
        let rows = query(
            w.conn(),
            "WITH revoked AS (
                UPDATE certificates SET revoked_at = $1, revocation_reason = 5
                WHERE kind = 'device' AND subject = $2 AND revoked_at IS NULL
                RETURNING id, serial)
             SELECT serial FROM revoked ORDER BY id",
            &[&at, &device_id],
        )
        .await?;
        let serials = rows_to(&rows, |row| col::<String>(row, 0))?;
        for table in [
            "oob_secrets",
            "consumed_secrets",
            "waiting_requests",
            "approvals",
            "rejections",
            "lockouts",
            "guess_budgets",
        ] {
            execute(
                w.conn(),
                &format!("DELETE FROM {table} WHERE device_id = $1"),
                &[&device_id],
            )
            .await?;
        }
        let mut audit = audit;
        if let Some(d) = audit.detail.as_object_mut() {
            d.insert("serials".into(), serde_json::json!(serials));
        }
        append_audit_tx(&w, &audit).await?;
        w.commit().await?;
        Ok(Some(serials))
    }

    async fn revoked_certificates(&self, now: i64) -> Result<Vec<RevokedCert>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT serial, revoked_at, COALESCE(revocation_reason, 0), not_after FROM certificates
             WHERE revoked_at IS NOT NULL AND not_after >= $1 ORDER BY id",
            &[&now],
        )
        .await?;
        rows_to(&rows, |r| {
            Ok(RevokedCert {
                serial: col(r, 0)?,
                revoked_at: col(r, 1)?,
                reason: col(r, 2)?,
                not_after: col(r, 3)?,
            })
        })
    }

    async fn certificates_by_kind(&self, kind: CertKind) -> Result<Vec<CertRecord>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {CERT_COLUMNS} FROM certificates WHERE kind = $1 ORDER BY subject, id DESC"
            ),
            &[&kind.as_str()],
        )
        .await?;
        rows_to(&rows, cert_from_row)
    }

    async fn next_crl_number(&self) -> Result<i64> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        // Reserve the number in the stored row, so it only grows even if the
        // CRL signed with it is never stored. The upsert is atomic on its own
        // (it locks the row it increments); the write lock makes it one more
        // turn in the writers' queue, like every other write.
        let row = query_one(
            w.conn(),
            "INSERT INTO crl_state (id, number, this_update, next_update, der)
             VALUES (1, 1, 0, 0, ''::bytea)
             ON CONFLICT (id) DO UPDATE SET number = crl_state.number + 1
             RETURNING number",
            &[],
        )
        .await?;
        let next: i64 = col(&row, 0)?;
        w.commit().await?;
        Ok(next)
    }

    async fn store_crl(&self, crl: CrlRecord) -> Result<()> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        execute(
            w.conn(),
            "UPDATE crl_state SET this_update = $2, next_update = $3, der = $4
             WHERE id = 1 AND number = $1",
            &[&crl.number, &crl.this_update, &crl.next_update, &crl.der],
        )
        .await?;
        w.commit().await
    }

    async fn crl(&self) -> Result<Option<CrlRecord>> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            "SELECT number, this_update, next_update, der FROM crl_state
             WHERE id = 1 AND octet_length(der) > 0",
            &[],
        )
        .await?;
        row.map(|r| {
            Ok(CrlRecord {
                number: col(&r, 0)?,
                this_update: col(&r, 1)?,
                next_update: col(&r, 2)?,
                der: col(&r, 3)?,
            })
        })
        .transpose()
    }

    async fn audit_query(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let limit = crate::model::sql_limit(f.limit);
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT seq, at, actor, event, device_id, detail, prev_hash, hash
             FROM audit_log
             WHERE seq > $1::bigint
               AND ($3::text IS NULL OR device_id = $3::text)
               AND ($4::text IS NULL OR event = $4::text)
               AND ($5::text IS NULL OR actor = $5::text)
               AND ($6::bigint IS NULL OR at >= $6::bigint)
               AND ($7::bigint IS NULL OR at <= $7::bigint)
             ORDER BY seq LIMIT $2::bigint",
            &[
                &f.after,
                &limit,
                &f.device_id,
                &f.event,
                &f.actor,
                &f.since,
                &f.until,
            ],
        )
        .await?;
        rows_to(&rows, audit_from_row)
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await?;
        row.map(|r| Ok((col(&r, 0)?, col(&r, 1)?))).transpose()
    }

    async fn add_checkpoint(&self, cp: Checkpoint) -> Result<()> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        execute(
            w.conn(),
            "INSERT INTO audit_checkpoints (seq, head_hash, at, signer, signature)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
            &[&cp.seq, &cp.head_hash, &cp.at, &cp.signer, &cp.signature],
        )
        .await?;
        w.commit().await
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT seq, head_hash, at, signer, signature FROM audit_checkpoints ORDER BY seq",
            &[],
        )
        .await?;
        rows_to(&rows, |r| {
            Ok(Checkpoint {
                seq: col(r, 0)?,
                head_hash: col(r, 1)?,
                at: col(r, 2)?,
                signer: col(r, 3)?,
                signature: col(r, 4)?,
            })
        })
    }

    async fn put_secrets_bulk(
        &self,
        rows: tokio::sync::mpsc::Receiver<BulkMessage>,
        replace: bool,
        dry_run: bool,
        audit: AuditRecord,
    ) -> Result<BulkOutcome> {
        let mut client = self.client().await?;
        bulk::put_secrets(&mut client, rows, replace, dry_run, audit).await
    }

    async fn existing_secrets(&self, device_ids: Vec<String>, now: i64) -> Result<Vec<String>> {
        let client = self.client().await?;
        // In the order asked, duplicates kept, as the SQLite backend answers.
        let rows = query(
            &client,
            "SELECT t.id FROM unnest($1::text[]) WITH ORDINALITY AS t(id, ord)
             WHERE EXISTS(SELECT 1 FROM oob_secrets s WHERE s.device_id = t.id AND s.valid_until >= $2)
             ORDER BY t.ord",
            &[&device_ids, &now],
        )
        .await?;
        rows_to(&rows, |r| col::<String>(r, 0))
    }

    async fn sealed_secrets(&self, page: &Page, now: i64) -> Result<Vec<SealedSecret>> {
        let after = page.after.clone().unwrap_or_default();
        let limit = page.sql_limit();
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT device_id, sealed, key_id, valid_until FROM oob_secrets
             WHERE device_id > $1 AND valid_until >= $3 ORDER BY device_id LIMIT $2",
            &[&after, &limit, &now],
        )
        .await?;
        rows_to(&rows, |r| {
            Ok(SealedSecret {
                device_id: col(r, 0)?,
                sealed: col(r, 1)?,
                key_id: col(r, 2)?,
                valid_until: col(r, 3)?,
            })
        })
    }

    async fn append_audit(&self, record: AuditRecord) -> Result<i64> {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        let seq = append_audit_tx(&w, &record).await?;
        w.commit().await?;
        Ok(seq)
    }

    async fn audit_entries(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        let limit = crate::model::sql_limit(limit);
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT seq, at, actor, event, device_id, detail, prev_hash, hash
             FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&after, &limit],
        )
        .await?;
        rows_to(&rows, audit_from_row)
    }
}

/// A failure counter, which the model holds as `u32`.
fn failures_of(r: &Row, idx: usize) -> Result<u32> {
    let n: i64 = col(r, idx)?;
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("lockout failure count {n}")))
}

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
//! * **A secret is consumed once.** See `record_issue` in `ops/devices.rs`:
//!   a conditional `DELETE … RETURNING` of the exact row the request was
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
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{NoTls, Row};

use crate::audit::{AuditEntry, AuditRecord};
use crate::error::{Result, StoreError};
use crate::model::{BulkMessage, BulkOutcome};
use crate::ops::Store;
use crate::sql::{self, Arg, Backend, BoxFuture, Cell, Db, Dialect};

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
pub type PostgresRegistry = Store<Postgres>;

/// The PostgreSQL backend of [`PostgresRegistry`].
pub struct Postgres {
    pool: Pool,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the connection string: it may hold a password.
        f.debug_struct("Postgres")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl Store<Postgres> {
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
        Ok(Store::new(Postgres { pool }))
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
        self.backend.pool.close();
    }

    async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.backend.client().await
    }
}

impl Postgres {
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

/// Appends an audit entry inside the locked transaction (the shared
/// [`crate::ops::append_audit`]; only a [`WriteTx`] can call it here).
async fn append_audit_tx(w: &WriteTx<'_>, r: &AuditRecord) -> Result<i64> {
    crate::ops::append_audit(&mut PgDb::new(w.conn()), r).await
}

/// A copied audit entry, for the migration's check.
fn audit_from_row(r: &Row) -> Result<AuditEntry> {
    <AuditEntry as crate::ops::FromRow>::decode(pg_row(r)?)
}

impl Backend for Postgres {
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Db) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let mut client = self.client().await?;
        let w = begin_write(&mut client).await?;
        let (result, aborted) = {
            let mut db = PgDb::new(w.conn());
            let result = f(&mut db).await;
            (result, db.aborted)
        };
        match result {
            Ok(v) if !aborted => {
                w.commit().await?;
                Ok(v)
            }
            Ok(v) => {
                w.rollback().await?;
                Ok(v)
            }
            Err(e) => {
                // The transaction is dropped (rolled back) either way.
                let _ = w.rollback().await;
                Err(e)
            }
        }
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Db) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let client = self.client().await?;
        let mut db = PgDb::new(&client);
        f(&mut db).await
    }

    async fn put_secrets_bulk(
        &self,
        rows: tokio::sync::mpsc::Receiver<BulkMessage>,
        replace: bool,
        dry_run: bool,
        audit: crate::audit::AuditOf<BulkOutcome>,
    ) -> Result<BulkOutcome> {
        let mut client = self.client().await?;
        bulk::put_secrets(&mut client, rows, replace, dry_run, audit).await
    }
}

/// A PostgreSQL client or transaction as the shared code sees it.
struct PgDb<'a, C> {
    client: &'a C,
    aborted: bool,
}

impl<'a, C> PgDb<'a, C> {
    fn new(client: &'a C) -> Self {
        PgDb {
            client,
            aborted: false,
        }
    }
}

/// Parameters are typed by PostgreSQL from the statement; an integer goes
/// to whichever integer width the column has, when it fits.
impl ToSql for Arg<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Int(v) => match *ty {
                Type::INT4 => i32::try_from(v)?.to_sql_checked(ty, out),
                Type::INT2 => i16::try_from(v)?.to_sql_checked(ty, out),
                _ => v.to_sql_checked(ty, out),
            },
            Arg::Bool(v) => v.to_sql_checked(ty, out),
            Arg::Text(s) => s.to_sql_checked(ty, out),
            Arg::Blob(b) => b.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, by the inner type.
        true
    }

    to_sql_checked!();
}

/// A result row as owned cells.
fn pg_row(r: &Row) -> Result<sql::Row> {
    let mut cells = Vec::with_capacity(r.len());
    for (i, c) in r.columns().iter().enumerate() {
        let cell = match *c.type_() {
            Type::INT8 => col::<Option<i64>>(r, i)?.map(Cell::Int),
            Type::INT4 => col::<Option<i32>>(r, i)?.map(|v| Cell::Int(i64::from(v))),
            Type::INT2 => col::<Option<i16>>(r, i)?.map(|v| Cell::Int(i64::from(v))),
            Type::BOOL => col::<Option<bool>>(r, i)?.map(Cell::Bool),
            Type::BYTEA => col::<Option<Vec<u8>>>(r, i)?.map(Cell::Blob),
            Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
                col::<Option<String>>(r, i)?.map(Cell::Text)
            }
            ref other => {
                return Err(StoreError::Corrupt(format!(
                    "column {}: type {other} is not one the registry uses",
                    c.name()
                )));
            }
        };
        cells.push(cell.unwrap_or(Cell::Null));
    }
    Ok(sql::Row(cells))
}

#[async_trait]
impl<C: GenericClient + Sync> Db for PgDb<'_, C> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        execute(self.client, sql, &params).await
    }

    async fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<sql::Row>> {
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        query(self.client, sql, &params)
            .await?
            .iter()
            .map(pg_row)
            .collect()
    }

    fn abort(&mut self) {
        self.aborted = true;
    }
}

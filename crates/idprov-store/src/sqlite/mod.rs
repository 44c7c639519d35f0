//! The SQLite backend: one file in the data directory, WAL journal,
//! `synchronous=FULL`, one writer thread with group commit, pooled readers.
//! The registry's statements and rules are shared with PostgreSQL
//! (`crate::ops`); this module only runs them.

pub mod backup;
mod bulk;
mod schema;
mod worker;

use std::future::Future;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::audit::AuditOf;
use crate::error::{Result, StoreError};
use crate::model::{BulkMessage, BulkOutcome};
use crate::ops::Store;
use crate::sql::{Arg, Backend, BoxFuture, Cell, Db, Dialect, Row, run_now, sqlite_placeholders};

pub use schema::SCHEMA_VERSION;
use worker::{Readers, Writer};

/// The registry in a SQLite file.
pub type SqliteRegistry = Store<Sqlite>;

/// The SQLite backend of [`SqliteRegistry`].
#[derive(Debug)]
pub struct Sqlite {
    path: PathBuf,
    writer: Writer,
    readers: Readers,
}

impl Store<Sqlite> {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteRegistry> {
        // Created 0600 before SQLite opens it: its -wal and -shm files take
        // the same mode. The rows hold sealed secrets and the audit log.
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| StoreError::Database(format!("creating {}: {e}", path.display())))?;
        }
        let mut conn = worker::open(path, false)?;
        schema::migrate(&mut conn)?;
        Ok(Store::new(Sqlite {
            path: path.to_owned(),
            writer: Writer::start(conn),
            readers: Readers::new(path.to_owned()),
        }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.backend.path
    }

    /// A PRAGMA value as the writer's settings apply it (tests read back
    /// `synchronous` and `journal_mode`).
    pub async fn pragma(&self, name: &'static str) -> Result<String> {
        self.backend
            .writer
            .write(move |c| {
                Ok(c.query_row(&format!("PRAGMA {name}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| match v {
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    other => format!("{other:?}"),
                })?)
            })
            .await
    }

    /// Finishes queued writes and stops the writer thread.
    pub fn close(&self) {
        self.backend.writer.close();
    }
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        self.writer.close();
    }
}

impl Backend for Sqlite {
    fn write<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Db) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        self.writer.write_or_abort(move |c| {
            let mut db = SqliteDb::new(c);
            let result = run_now(f(&mut db));
            let commit = result.is_ok() && !db.aborted;
            (result, commit)
        })
    }

    fn read<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Db) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        self.readers
            .read(move |c| run_now(f(&mut SqliteDb::new(c))))
    }

    fn read_point<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Db) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        std::future::ready(
            self.readers
                .read_here(move |c| run_now(f(&mut SqliteDb::new(c)))),
        )
    }

    fn put_secrets_bulk(
        &self,
        rows: tokio::sync::mpsc::Receiver<BulkMessage>,
        replace: bool,
        dry_run: bool,
        audit: AuditOf<BulkOutcome>,
    ) -> impl Future<Output = Result<BulkOutcome>> + Send {
        bulk::put_secrets(self, rows, replace, dry_run, audit)
    }
}

/// A SQLite connection as the shared code sees it. Statements go through
/// the connection's statement cache: they run on every request.
pub(crate) struct SqliteDb<'a> {
    conn: &'a mut Connection,
    aborted: bool,
}

impl<'a> SqliteDb<'a> {
    pub(crate) fn new(conn: &'a mut Connection) -> Self {
        SqliteDb {
            conn,
            aborted: false,
        }
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Arg::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Arg::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(v)),
            Arg::Bool(v) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(v))),
            Arg::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Arg::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// A unique or primary-key violation is a [`StoreError::Conflict`] (as on
/// PostgreSQL); anything else a database error.
fn sqlite_error(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::ConstraintViolation
        && matches!(
            f.extended_code,
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        )
    {
        return StoreError::Conflict(e.to_string());
    }
    StoreError::from(e)
}

fn cell(v: ValueRef<'_>) -> Result<Cell> {
    Ok(match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        ValueRef::Text(t) => Cell::Text(
            std::str::from_utf8(t)
                .map_err(|_| StoreError::Corrupt("text that is not UTF-8".into()))?
                .to_owned(),
        ),
        ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
        ValueRef::Real(_) => return Err(StoreError::Corrupt("a floating-point value".into())),
    })
}

#[async_trait]
impl Db for SqliteDb<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let mut st = self
            .conn
            .prepare_cached(&sqlite_placeholders(sql))
            .map_err(sqlite_error)?;
        let n = st
            .execute(rusqlite::params_from_iter(args.iter()))
            .map_err(sqlite_error)?;
        Ok(n as u64)
    }

    async fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        let mut st = self
            .conn
            .prepare_cached(&sqlite_placeholders(sql))
            .map_err(sqlite_error)?;
        let width = st.column_count();
        let mut rows = st
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(sqlite_error)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(sqlite_error)? {
            let mut cells = Vec::with_capacity(width);
            for i in 0..width {
                cells.push(cell(r.get_ref(i).map_err(sqlite_error)?)?);
            }
            out.push(Row(cells));
        }
        Ok(out)
    }

    fn abort(&mut self) {
        self.aborted = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    /// Regression: the reads every provisioning request makes are compiled
    /// once per connection, not again whenever their parameters change.
    /// Without the query planner stability guarantee ([`worker::open`]),
    /// SQLite planned the OOB view and a device's facts by their bound
    /// values and re-prepared them on every request (a fifth of the
    /// server's CPU on the first-contact path).
    #[test]
    fn hot_reads_are_not_compiled_again_when_their_parameters_change() {
        use crate::ops::{devices, secrets};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("registry.db");
        SqliteRegistry::open(&path).expect("open").close();
        let conn = worker::open(&path, true).expect("reader");
        // Each statement with its parameters for the i-th call: text for a
        // device, a key fingerprint, a source or a serial, integers for times.
        type Params = fn(&str, i64) -> Vec<Arg<'_>>;
        let statements: [(&str, &str, Params); 5] = [
            ("the OOB view", secrets::OOB_VIEW, |t, n| {
                vec![
                    Arg::Text(t),
                    Arg::Text(t),
                    Arg::Text(t),
                    Arg::Int(n),
                    Arg::Int(n),
                ]
            }),
            ("a live secret", secrets::LIVE_SECRET, |t, n| {
                vec![Arg::Text(t), Arg::Int(n)]
            }),
            ("a consumed secret", secrets::CONSUMED_SECRET, |t, n| {
                vec![Arg::Text(t), Arg::Text(t), Arg::Int(n)]
            }),
            (
                "a certificate by serial",
                devices::CERTIFICATE_BY_SERIAL,
                |t, _| vec![Arg::Text(t)],
            ),
            ("a device's facts", &devices::DEVICE_SQL, |t, n| {
                vec![Arg::Text(t), Arg::Int(n)]
            }),
        ];
        for (name, sql, params) in statements {
            let sql = sqlite_placeholders(sql);
            for i in 0..4_i64 {
                let text = format!("value-{i}");
                let mut st = conn.prepare_cached(&sql).expect("prepare");
                let mut rows = st
                    .query(rusqlite::params_from_iter(params(&text, 1_000 + i)))
                    .expect("query");
                while rows.next().expect("step").is_some() {}
            }
            let st = conn.prepare_cached(&sql).expect("cached");
            assert_eq!(
                st.get_status(StatementStatus::RePrepare),
                0,
                "{name} was compiled again when its parameters changed"
            );
        }
    }
}

//! The one interface both backends run SQL through, so that every statement
//! and every rule the SQLite and PostgreSQL registries share is written once
//! (in `crate::ops`), and only what truly differs stays per backend: how a
//! write transaction is serialised (SQLite's writer thread with group
//! commit, PostgreSQL's advisory lock), bulk loading (a spool file vs
//! `COPY`), snapshots and migrations.
//!
//! Statements are written in PostgreSQL's placeholder style (`$1`, `$2`…);
//! the SQLite side rewrites them to `?1`, `?2`… before preparing. Where the
//! two dialects differ, a statement is a [`Dialect`]-keyed pair (see
//! [`Db::dialect`]); keep those few and say why at the pair.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;

use idprov_proto::{KeyFingerprint, SerialNumber, UnixTime};

use crate::error::{Result, StoreError};

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A statement parameter. Integers are 64-bit on both backends (SQLite's
/// `INTEGER`, PostgreSQL's `BIGINT`: the schemas translate one to the other).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
    Bool(bool),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<u32> for Arg<'_> {
    fn from(v: u32) -> Self {
        Arg::Int(i64::from(v))
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Blob(v)
    }
}

impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Arg::Blob(v)
    }
}

impl<'a, T> From<Option<T>> for Arg<'a>
where
    T: Into<Arg<'a>>,
{
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        v.as_deref().map_or(Arg::Null, Arg::Text)
    }
}

/// `&Option<T>` as NULL or what `&T` is, for each `T` listed.
macro_rules! optional_args {
    ($($t:ty),*) => {$(
        impl<'a> From<&'a Option<$t>> for Arg<'a> {
            fn from(v: &'a Option<$t>) -> Self {
                v.as_ref().map_or(Arg::Null, Arg::from)
            }
        }
    )*};
}
optional_args!(UnixTime, SerialNumber, KeyFingerprint);

impl<'a> From<&'a UnixTime> for Arg<'a> {
    fn from(v: &'a UnixTime) -> Self {
        Arg::Int(v.secs())
    }
}

impl<'a> From<&'a Option<i64>> for Arg<'a> {
    fn from(v: &'a Option<i64>) -> Self {
        v.map_or(Arg::Null, Arg::Int)
    }
}

// The protocol's newtypes go into SQL as what they are written as: a time
// as its seconds, a serial and a key fingerprint as their text.

impl From<UnixTime> for Arg<'_> {
    fn from(v: UnixTime) -> Self {
        Arg::Int(v.secs())
    }
}

impl<'a> From<&'a SerialNumber> for Arg<'a> {
    fn from(v: &'a SerialNumber) -> Self {
        Arg::Text(v.as_str())
    }
}

impl<'a> From<&'a KeyFingerprint> for Arg<'a> {
    fn from(v: &'a KeyFingerprint) -> Self {
        Arg::Text(v.as_str())
    }
}

/// Statement parameters: `args![a, b, c]`.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$($crate::sql::Arg::from($a)),*][..]
    };
}
pub(crate) use args;

/// One value of a result row.
#[derive(Debug, Clone)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    Bool(bool),
}

/// A result row, decoded from either backend into owned cells. Accessors
/// fail with [`StoreError::Corrupt`] on a NULL or a value of another type:
/// bad data fails the call, it never panics.
#[derive(Debug)]
pub(crate) struct Row(pub(crate) Vec<Cell>);

impl Row {
    fn cell(&self, i: usize) -> Result<&Cell> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} missing")))
    }

    fn bad(i: usize, want: &str, got: &Cell) -> StoreError {
        let got = match got {
            Cell::Null => "NULL",
            Cell::Int(_) => "an integer",
            Cell::Text(_) => "text",
            Cell::Blob(_) => "a blob",
            Cell::Bool(_) => "a boolean",
        };
        StoreError::Corrupt(format!("column {i}: {want} expected, {got} found"))
    }

    /// Whether column `i` is NULL (or missing).
    pub(crate) fn is_null(&self, i: usize) -> bool {
        matches!(self.0.get(i), None | Some(Cell::Null))
    }

    pub(crate) fn int(&self, i: usize) -> Result<i64> {
        match self.cell(i)? {
            Cell::Int(v) => Ok(*v),
            other => Err(Self::bad(i, "an integer", other)),
        }
    }

    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            _ => self.int(i).map(Some),
        }
    }

    /// A Unix time.
    pub(crate) fn time(&self, i: usize) -> Result<UnixTime> {
        self.int(i).map(UnixTime::from_secs)
    }

    pub(crate) fn opt_time(&self, i: usize) -> Result<Option<UnixTime>> {
        self.opt_int(i).map(|v| v.map(UnixTime::from_secs))
    }

    /// A serial number stored as its hex text.
    pub(crate) fn serial(&mut self, i: usize) -> Result<SerialNumber> {
        let v = self.text(i)?;
        SerialNumber::parse(&v)
            .map_err(|e| StoreError::Corrupt(format!("column {i}: serial {v:?}: {e}")))
    }

    pub(crate) fn opt_serial(&mut self, i: usize) -> Result<Option<SerialNumber>> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            _ => self.serial(i).map(Some),
        }
    }

    /// A key fingerprint stored as its text.
    pub(crate) fn key_fingerprint(&mut self, i: usize) -> Result<KeyFingerprint> {
        let v = self.text(i)?;
        KeyFingerprint::parse(&v)
            .map_err(|e| StoreError::Corrupt(format!("column {i}: {v:?}: {e}")))
    }

    /// A count or a non-negative integer.
    pub(crate) fn count(&self, i: usize) -> Result<u64> {
        let v = self.int(i)?;
        u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("column {i}: negative ({v})")))
    }

    /// A small counter (failures, attempts).
    pub(crate) fn u32(&self, i: usize) -> Result<u32> {
        let v = self.int(i)?;
        u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("column {i}: out of range ({v})")))
    }

    /// A boolean: PostgreSQL's `boolean`, or SQLite's 0/1.
    pub(crate) fn bool(&self, i: usize) -> Result<bool> {
        match self.cell(i)? {
            Cell::Bool(v) => Ok(*v),
            Cell::Int(v) => Ok(*v != 0),
            other => Err(Self::bad(i, "a boolean", other)),
        }
    }

    /// Text, moved out of the row (each column is read once).
    pub(crate) fn text(&mut self, i: usize) -> Result<String> {
        match self.0.get_mut(i) {
            Some(Cell::Text(s)) => Ok(std::mem::take(s)),
            Some(other) => Err(Self::bad(i, "text", other)),
            None => Err(StoreError::Corrupt(format!("column {i} missing"))),
        }
    }

    pub(crate) fn opt_text(&mut self, i: usize) -> Result<Option<String>> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }

    /// A certificate kind stored as its name.
    pub(crate) fn cert_kind(&mut self, i: usize) -> Result<crate::model::CertKind> {
        let v = self.text(i)?;
        crate::model::CertKind::parse(&v)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown certificate kind {v:?}")))
    }

    /// An issue kind stored as its name.
    pub(crate) fn issue_kind(&mut self, i: usize) -> Result<crate::model::IssueKind> {
        let v = self.text(i)?;
        crate::model::IssueKind::parse(&v)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown issue kind {v:?}")))
    }

    /// A protocol stored as its name.
    pub(crate) fn protocol(&mut self, i: usize) -> Result<crate::model::Protocol> {
        let v = self.text(i)?;
        crate::model::Protocol::parse(&v)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown protocol {v:?}")))
    }

    /// A protocol, or NULL.
    pub(crate) fn opt_protocol(&mut self, i: usize) -> Result<Option<crate::model::Protocol>> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            _ => self.protocol(i).map(Some),
        }
    }

    /// JSON text; a value that no longer parses is `null` (an audit detail:
    /// it then fails the hash check, it does not fail the read).
    pub(crate) fn json(&mut self, i: usize) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.text(i)?).unwrap_or(serde_json::Value::Null))
    }

    /// Bytes or NULL, moved out of the row.
    pub(crate) fn opt_blob(&mut self, i: usize) -> Result<Option<Vec<u8>>> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            _ => self.blob(i).map(Some),
        }
    }

    /// Bytes, moved out of the row.
    pub(crate) fn blob(&mut self, i: usize) -> Result<Vec<u8>> {
        match self.0.get_mut(i) {
            Some(Cell::Blob(b)) => Ok(std::mem::take(b)),
            Some(other) => Err(Self::bad(i, "a blob", other)),
            None => Err(StoreError::Corrupt(format!("column {i} missing"))),
        }
    }
}

/// A connection (inside a transaction for writes) as the shared code sees
/// it.
#[async_trait]
pub(crate) trait Db: Send {
    /// The dialect, for the few statements written twice.
    fn dialect(&self) -> Dialect;

    /// Runs a statement; returns the number of rows it changed.
    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64>;

    /// Runs a query; returns every row.
    async fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>>;

    /// Marks this write to be rolled back when it returns, whatever it
    /// returns: a precondition failed after something was changed, and the
    /// caller still gets its answer ("the secret is gone").
    fn abort(&mut self);

    /// At most one row.
    async fn opt(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<Row>> {
        Ok(self.rows(sql, args).await?.into_iter().next())
    }

    /// Exactly one row (an aggregate).
    async fn one(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Row> {
        self.opt(sql, args)
            .await?
            .ok_or_else(|| StoreError::Database("a query returned no row".into()))
    }
}

/// What the shared code hands a backend to run: a function of the
/// connection, boxed so a backend can run it on its own thread or task.
pub(crate) type BoxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// How a backend runs shared code: writes one at a time in a durable
/// transaction, reads on a connection of their own.
pub(crate) trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// Runs `f` in a write transaction: serialised with every other write
    /// (of every replica), committed (durably) before the result is
    /// returned, rolled back when `f` fails or calls [`Db::abort`].
    fn write<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Db) -> BoxFuture<'c, Result<T>> + Send + 'static;

    /// Runs `f` on a connection for reads. Statements in one read may see
    /// different snapshots on PostgreSQL; a read that must agree with itself
    /// is one statement.
    fn read<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Db) -> BoxFuture<'c, Result<T>> + Send + 'static;

    /// Runs `f`, a point read (a few lookups by key, microseconds), on a
    /// connection for reads. SQLite runs it where it is called: handing
    /// it to another thread and back cost more than the read (the
    /// provisioning hot path reads once per request). Reads that may scan
    /// (listings, exports, the audit chain) use [`Backend::read`].
    fn read_point<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Db) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        self.read(f)
    }

    /// Stores many secrets, streamed in, in one transaction (see
    /// [`crate::Secrets::put_secrets_bulk`]): SQLite spools them to a file
    /// first, PostgreSQL streams them through `COPY`.
    fn put_secrets_bulk(
        &self,
        rows: tokio::sync::mpsc::Receiver<crate::model::BulkMessage>,
        replace: bool,
        dry_run: bool,
        audit: crate::audit::AuditOf<crate::model::BulkOutcome>,
    ) -> impl Future<Output = Result<crate::model::BulkOutcome>> + Send;
}

/// Rewrites PostgreSQL's `$N` placeholders to SQLite's `?N` (outside quoted
/// text; the statements hold no `$` otherwise). Runs on every statement a
/// SQLite registry executes, so it copies the text between placeholders
/// and quotes in runs rather than character by character: `$` and `'` are
/// ASCII, so every run ends on a character boundary.
pub(crate) fn sqlite_placeholders(sql: &str) -> std::borrow::Cow<'_, str> {
    let special = |b: &u8| *b == b'$' || *b == b'\'';
    let bytes = sql.as_bytes();
    let Some(mut i) = bytes.iter().position(special) else {
        return std::borrow::Cow::Borrowed(sql);
    };
    let mut out = String::with_capacity(sql.len());
    let (mut start, mut quoted) = (0, false);
    loop {
        if bytes[i] == b'\'' {
            quoted = !quoted;
        } else if !quoted && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            out.push_str(&sql[start..i]);
            out.push('?');
            start = i + 1;
        }
        match bytes[i + 1..].iter().position(special) {
            Some(n) => i += 1 + n,
            None => break,
        }
    }
    out.push_str(&sql[start..]);
    std::borrow::Cow::Owned(out)
}

/// Runs a future that never waits (the SQLite side: every call is
/// synchronous inside) to completion on the calling thread.
pub(crate) fn run_now<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => Err(StoreError::Database(
            "a SQLite registry call waited on something (a bug)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_quotes() {
        assert_eq!(
            sqlite_placeholders("SELECT a FROM t WHERE b = $1 AND c = '$2' AND d = $10"),
            "SELECT a FROM t WHERE b = ?1 AND c = '$2' AND d = ?10"
        );
        assert_eq!(sqlite_placeholders("SELECT 1"), "SELECT 1");
        assert_eq!(sqlite_placeholders("$1"), "?1");
        assert_eq!(sqlite_placeholders("'é$1' || $2 || $"), "'é$1' || ?2 || $");
        assert_eq!(
            sqlite_placeholders("x = $1, 'a''b', y = $22"),
            "x = ?1, 'a''b', y = ?22"
        );
    }

    #[test]
    fn rows_refuse_the_wrong_type() {
        let mut r = Row(vec![Cell::Int(1), Cell::Null, Cell::Text("x".into())]);
        assert_eq!(r.int(0).unwrap(), 1);
        assert!(r.int(1).is_err());
        assert_eq!(r.opt_int(1).unwrap(), None);
        assert!(r.blob(2).is_err());
        assert_eq!(r.text(2).unwrap(), "x");
        assert!(r.int(5).is_err());
        assert!(r.bool(0).unwrap());
    }
}

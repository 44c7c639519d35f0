//! The single writer thread with group commit, and the reader pool.
//!
//! SQLite allows one writer at a time. Rather than contending for a lock, all
//! writes go to one thread, which takes every job waiting in its queue, runs
//! each under its own savepoint inside one transaction, commits once, and only
//! then answers each job. With `synchronous=FULL` the commit is the expensive
//! part, so a burst of requests shares one fsync without giving up durability:
//! no caller hears "done" before its change is on disk.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::error::{Result, StoreError};

/// Most jobs in one group commit.
const MAX_GROUP: usize = 256;

/// Called after the commit with its result.
type Completion = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// Runs inside the transaction (or learns that none could be started);
/// returns whether it succeeded and its completion.
type Job =
    Box<dyn FnOnce(std::result::Result<&mut Connection, &StoreError>) -> (bool, Completion) + Send>;

/// Opens a connection with the registry's settings.
pub(crate) fn open(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Room for every statement of the hot paths (the default 16 would evict).
    conn.set_prepared_statement_cache_capacity(128);
    // One plan per statement, whatever its parameters: without the query
    // planner stability guarantee SQLite plans some statements (a LEFT
    // JOIN off a one-row table, a CTE joined to a table) by their bound
    // values and compiles them again whenever a value changes — the OOB
    // view and a device's facts on every request, a fifth of the server's
    // CPU. Every statement here looks rows up by key: the plan does not
    // depend on the values.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    // WAL lets readers run beside the writer; FULL makes every commit durable
    // across power loss, not only across a crash of the process.
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// The handle to the writer thread.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Writer {
    pub(crate) fn start(conn: Connection) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("idprov-sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .ok();
        Writer {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(thread),
        }
    }

    /// Runs `f` in a write transaction and returns its result once committed
    /// (rolled back when it fails).
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.write_or_abort(move |c| {
            let result = f(c);
            let commit = result.is_ok();
            (result, commit)
        })
        .await
    }

    /// Runs `f` in a write transaction: its changes are kept when it says
    /// so (and then its result is returned once committed), rolled back
    /// otherwise (and its result returned all the same).
    pub(crate) async fn write_or_abort<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Connection) -> (Result<T>, bool) + Send + 'static,
        T: Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn| {
            let (result, keep) = match conn {
                Ok(conn) => catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|_| {
                    (
                        Err(StoreError::Database("a registry write panicked".into())),
                        false,
                    )
                }),
                Err(e) => (Err(e.clone()), false),
            };
            let completion: Completion = Box::new(move |commit_error| {
                let outcome = match (result, commit_error) {
                    (Ok(v), None) => Ok(v),
                    // Rolled back on purpose: the commit's fate is not its own.
                    (Ok(v), Some(_)) if !keep => Ok(v),
                    (Ok(_), Some(e)) => Err(e.clone()),
                    (Err(e), _) => Err(e),
                };
                let _ = done_tx.send(outcome);
            });
            (keep, completion)
        });
        {
            let guard = self.tx.lock().map_err(|_| StoreError::Closed)?;
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            sender.send(job).map_err(|_| StoreError::Closed)?;
        }
        done_rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Stops accepting jobs and waits for the queue to drain.
    pub(crate) fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Ok(mut thread) = self.thread.lock()
            && let Some(handle) = thread.take()
        {
            let _ = handle.join();
        }
    }
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut completions = Vec::with_capacity(batch.len());
        if let Err(e) = exec_cached(&conn, "BEGIN IMMEDIATE") {
            let err = e;
            tracing::error!(error = %err, "could not begin a registry transaction");
            for job in batch {
                let (_, completion) = job(Err(&err));
                completion(Some(&err));
            }
            continue;
        }
        for job in batch {
            let (ok, completion) = match exec_cached(&conn, "SAVEPOINT job") {
                Ok(()) => {
                    let (ok, completion) = job(Ok(&mut conn));
                    let end = if ok {
                        exec_cached(&conn, "RELEASE job")
                    } else {
                        exec_cached(&conn, "ROLLBACK TO job")
                            .and_then(|()| exec_cached(&conn, "RELEASE job"))
                    };
                    if let Err(e) = end {
                        tracing::error!(error = %e, "savepoint handling failed");
                    }
                    (ok, completion)
                }
                Err(e) => job(Err(&e)),
            };
            let _ = ok;
            completions.push(completion);
        }
        let started = std::time::Instant::now();
        let commit_error = exec_cached(&conn, "COMMIT").err();
        // Named as the server's metrics list them (idprov_server::observe).
        metrics::histogram!("idprov_db_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("idprov_db_commit_group_size").record(completions.len() as f64);
        if commit_error.is_some() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for completion in completions {
            completion(commit_error.as_ref());
        }
    }
}

/// Runs a statement without parameters from the statement cache: these run
/// several times per group commit, and parsing them each time showed in the
/// profile.
fn exec_cached(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// A small pool of read-only connections.
#[derive(Debug)]
pub(crate) struct Readers {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl Readers {
    pub(crate) fn new(path: PathBuf) -> Readers {
        Readers {
            path,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs `f` on a read-only connection off the async threads.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (idle, path) = (self.idle.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || with_reader(&idle, &path, f))
            .await
            .map_err(|_| StoreError::Database("a registry read panicked".into()))?
    }

    /// Runs `f`, a point read, on a read-only connection on the calling
    /// thread (see [`crate::sql::Backend::read_point`]).
    pub(crate) fn read_here<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Connection) -> Result<T>,
    {
        catch_unwind(AssertUnwindSafe(|| with_reader(&self.idle, &self.path, f)))
            .unwrap_or_else(|_| Err(StoreError::Database("a registry read panicked".into())))
    }
}

/// Idle read connections kept (more are opened under load and closed after).
const IDLE_READERS: usize = 8;

/// Runs `f` on an idle read connection (or a new one), then keeps it.
fn with_reader<T>(
    idle: &Mutex<Vec<Connection>>,
    path: &Path,
    f: impl FnOnce(&mut Connection) -> Result<T>,
) -> Result<T> {
    let mut conn = match idle.lock().ok().and_then(|mut v| v.pop()) {
        Some(c) => c,
        None => open(path, true)?,
    };
    let result = f(&mut conn);
    if let Ok(mut v) = idle.lock()
        && v.len() < IDLE_READERS
    {
        v.push(conn);
    }
    result
}

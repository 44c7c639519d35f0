//! A bulk import on SQLite: the rows are spooled to a private file beside
//! the database at the pace of the upload, then applied by the writer in one
//! transaction.

use std::path::{Path, PathBuf};

use idprov_proto::UnixTime;
use rusqlite::{Connection, params};

use super::{Sqlite, SqliteDb};
use crate::audit::{Actor, AuditOf};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::ops::append_all;
use crate::sql::run_now;

/// A bulk import's rows on disk while they arrive: a private SQLite file
/// beside the registry (0600: the rows hold sealed secrets), written without
/// journal or fsync (it is only a buffer; the registry's commit is what is
/// durable), removed when dropped.
struct Spool {
    path: PathBuf,
    conn: Option<Connection>,
    digest: String,
}

impl Spool {
    fn create(db: &Path) -> Result<Spool> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = db.parent().unwrap_or_else(|| Path::new("."));
        // Unique, not secret: std's per-process random hasher keys suffice.
        let unique = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            h.finish()
        };
        let path = dir.join(format!(".import-{unique:016x}.spool"));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StoreError::Database(format!("creating {}: {e}", path.display())))?;
        let mut spool = Spool {
            path,
            conn: None,
            digest: String::new(),
        };
        let conn = Connection::open(&spool.path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
             CREATE TABLE rows (seq INTEGER PRIMARY KEY, idx INTEGER NOT NULL, device_id TEXT NOT NULL,
               sealed BLOB NOT NULL, key_id TEXT NOT NULL, created_at INTEGER NOT NULL,
               valid_until INTEGER NOT NULL, created_by TEXT NOT NULL,
               pake_salt BLOB, pake_iterations INTEGER, pake_verifier BLOB);",
        )?;
        spool.conn = Some(conn);
        Ok(spool)
    }

    /// Receives the rows until `End`; an interrupted stream is an error
    /// (and nothing is stored).
    fn fill(mut self, rows: &mut tokio::sync::mpsc::Receiver<BulkMessage>) -> Result<Spool> {
        let conn = self
            .conn
            .take()
            .ok_or_else(|| StoreError::Database("spool already filled".into()))?;
        conn.execute_batch("BEGIN")?;
        {
            let mut insert = conn.prepare(
                "INSERT INTO rows (idx, device_id, sealed, key_id, created_at, valid_until, created_by,
                    pake_salt, pake_iterations, pake_verifier)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            loop {
                match rows.blocking_recv() {
                    Some(BulkMessage::Row(row)) => {
                        let s = &row.secret;
                        let pake = s.pake.as_ref();
                        insert.execute(params![
                            i64::try_from(row.index).unwrap_or(i64::MAX),
                            s.device_id,
                            s.sealed,
                            s.key_id,
                            s.created_at.secs(),
                            s.valid_until.secs(),
                            s.created_by.to_string(),
                            pake.map(|p| &p.salt),
                            pake.map(|p| p.iterations),
                            pake.map(|p| &p.sealed_record)
                        ])?;
                    }
                    Some(BulkMessage::End { rows_sha256 }) => {
                        self.digest = rows_sha256;
                        break;
                    }
                    None => {
                        return Err(StoreError::Conflict(
                            "the import was interrupted; nothing was stored".into(),
                        ));
                    }
                }
            }
        }
        conn.execute_batch("COMMIT")?;
        Ok(self)
    }

    /// A connection that reads the spooled rows.
    fn reader(&self) -> Result<Connection> {
        Ok(Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.conn = None;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Stores the streamed rows in one transaction (see
/// [`crate::Secrets::put_secrets_bulk`]).
pub(super) async fn put_secrets(
    backend: &Sqlite,
    mut rows: tokio::sync::mpsc::Receiver<BulkMessage>,
    replace: bool,
    dry_run: bool,
    audit: AuditOf<BulkOutcome>,
) -> Result<BulkOutcome> {
    // The rows are spooled to a private file beside the database first,
    // at the pace of the upload, without holding the writer: a slow
    // uploader must not stall provisioning. Only then does the writer
    // apply them, in one transaction, reading the spool — so the rows
    // never sit in memory all at once either.
    let spool = Spool::create(&backend.path)?;
    let spool = tokio::task::spawn_blocking(move || spool.fill(&mut rows))
        .await
        .map_err(|_| StoreError::Database("spooling the import panicked".into()))??;
    backend.writer
            .write(move |c| {
                let mut outcome = BulkOutcome::default();
                let digest = {
                let mut exists = c.prepare_cached("SELECT EXISTS(SELECT 1 FROM oob_secrets WHERE device_id = ?1)")?;
                let mut delete = c.prepare_cached("DELETE FROM oob_secrets WHERE device_id = ?1")?;
                let mut device = c.prepare_cached(
                    "INSERT INTO devices (device_id, created_at) VALUES (?1, ?2) ON CONFLICT(device_id) DO NOTHING",
                )?;
                let mut insert = c.prepare_cached(
                    "INSERT INTO oob_secrets (device_id, sealed, key_id, created_at, valid_until, created_by,
                        pake_salt, pake_iterations, pake_verifier)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                let digest = spool.digest.clone();
                let reader = spool.reader()?;
                let mut spooled = reader.prepare(
                    "SELECT idx, device_id, sealed, key_id, created_at, valid_until, created_by,
                        pake_salt, pake_iterations, pake_verifier
                     FROM rows ORDER BY seq",
                )?;
                let mut spooled = spooled.query([])?;
                loop {
                    let Some(r) = spooled.next()? else {
                        break;
                    };
                    let row = BulkSecret {
                        index: r.get::<_, i64>(0).map(|i| u64::try_from(i).unwrap_or(0))?,
                        secret: NewSecret {
                            device_id: r.get(1)?,
                            sealed: r.get(2)?,
                            key_id: r.get(3)?,
                            created_at: UnixTime::from_secs(r.get(4)?),
                            valid_until: UnixTime::from_secs(r.get(5)?),
                            created_by: Actor::parse(&r.get::<_, String>(6)?),
                            pake: match r.get::<_, Option<Vec<u8>>>(7)? {
                                None => None,
                                Some(salt) => Some(PakeVerifier {
                                    salt,
                                    iterations: r.get(8)?,
                                    sealed_record: r.get(9)?,
                                }),
                            },
                        },
                    };
                    let s = &row.secret;
                    let had: bool = exists.query_row([&s.device_id], |r| r.get(0))?;
                    if had && !replace {
                        outcome.rejected.push((
                            row.index,
                            s.device_id.clone(),
                            "a secret is already registered for this device (--no-replace)".into(),
                        ));
                        continue;
                    }
                    outcome.accepted += 1;
                    if had {
                        outcome.replaced += 1;
                    }
                    if dry_run {
                        continue;
                    }
                    if had {
                        delete.execute([&s.device_id])?;
                    }
                    device.execute(params![s.device_id, s.created_at.secs()])?;
                    let pake = s.pake.as_ref();
                    insert.execute(params![
                        s.device_id,
                        s.sealed,
                        s.key_id,
                        s.created_at.secs(),
                        s.valid_until.secs(),
                        s.created_by.to_string(),
                        pake.map(|p| &p.salt),
                        pake.map(|p| p.iterations),
                        pake.map(|p| &p.sealed_record)
                    ])?;
                }
                    digest
                };
                outcome.rows_sha256 = digest;
                if !dry_run && outcome.accepted > 0 {
                    run_now(append_all(&mut SqliteDb::new(c), audit.records(&outcome)))?;
                }
                Ok(outcome)
            })
            .await
}

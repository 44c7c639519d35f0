//! `idprov backup` and `idprov restore`: an online, consistent copy of the
//! data directory and its database, and bringing one back.
//!
//! The database is snapshotted with `VACUUM INTO` (one read transaction, so
//! the server keeps serving); the other files of the directory are copied
//! with their modes. A `manifest.json` lists every file with its SHA-256, so
//! a restore refuses a backup that was altered or is incomplete. A restore
//! writes into a temporary directory beside the target and renames it into
//! place: it is all or nothing.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use idprov_store::{DatabaseSummary, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{CaSource, SecretKeySource, ServerConfig};
use crate::datadir::files;

/// The manifest's name inside a backup.
pub const MANIFEST: &str = "manifest.json";
const FORMAT: &str = "idprov-backup";
const FORMAT_VERSION: u32 = 1;

/// What a backup holds; written as `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always `idprov-backup`.
    pub format: String,
    /// The manifest's format version.
    pub version: u32,
    /// The idprov version that wrote it.
    pub idprov_version: String,
    /// When it was taken (RFC 3339, UTC).
    pub created: String,
    /// The data directory it was taken from.
    pub source: PathBuf,
    /// What the database holds.
    pub database: DatabaseFacts,
    /// Every file, the database included.
    pub files: Vec<FileEntry>,
    /// Files the configuration names outside the data directory, which the
    /// backup does not hold (an operator's CA, the secrets key).
    pub not_included: Vec<PathBuf>,
    /// Keys and secrets the backup cannot hold, said plainly: a CA key in a
    /// PKCS#11 token, the passphrase of an encrypted CA key, a token's PIN.
    #[serde(default)]
    pub keys_not_copied: Vec<String>,
}

/// The database part of the manifest.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseFacts {
    /// Schema version.
    pub schema_version: i64,
    /// Devices.
    pub devices: u64,
    /// Certificates issued.
    pub certificates: u64,
    /// Audit entries (the chain verified).
    pub audit_entries: u64,
}

impl From<DatabaseSummary> for DatabaseFacts {
    fn from(s: DatabaseSummary) -> Self {
        DatabaseFacts {
            schema_version: s.schema_version,
            devices: s.devices,
            certificates: s.certificates,
            audit_entries: s.audit_entries,
        }
    }
}

/// One file of a backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Its name in the data directory (no directories).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its content, hex.
    pub sha256: String,
    /// Its permission bits (0600 for keys).
    pub mode: u32,
}

/// Why a backup or restore failed; nothing was changed at the target.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The database could not be copied or does not check out.
    #[error("database: {0}")]
    Database(#[from] StoreError),
    /// The target is in the way.
    #[error("{0}")]
    Target(String),
    /// The backup is not one, or was altered.
    #[error("{0}")]
    Invalid(String),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Files of the data directory that are not copied as they are: the
/// database (snapshotted), its journal files, the lock, the sign-in token.
fn skipped(name: &str) -> bool {
    // The one-time web sign-in token is not carried: it is a credential
    // for the first sign-in of this installation only.
    name == files::LOCK
        || name == crate::web::TOKEN_FILE
        || name.starts_with(files::DATABASE)
        || name.starts_with('.')
        || name == MANIFEST
}

/// Takes a backup of `config`'s data directory into `dest`, which must not
/// exist or be empty. Safe while the server runs.
pub fn backup(
    config: &ServerConfig,
    dest: &Path,
    now: time::OffsetDateTime,
) -> Result<Manifest, BackupError> {
    let source = &config.data_dir;
    if config.database.is_postgres() {
        return Err(BackupError::Target(
            "the registry is in PostgreSQL: back it up with pg_dump (or your database's own backups); \
             idprov backup snapshots the SQLite registry"
                .into(),
        ));
    }
    if !source.join(files::DATABASE).is_file() {
        return Err(BackupError::Target(format!(
            "{} holds no idprov database: is it the data directory?",
            source.display()
        )));
    }
    prepare_empty_dir(dest)?;
    let result = (|| {
        let mut entries = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for entry in fs::read_dir(source).map_err(io_at(source))? {
            let entry = entry.map_err(io_at(source))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if skipped(&name) || !entry.file_type().map_err(io_at(&entry.path()))?.is_file() {
                continue;
            }
            names.push(name);
        }
        names.sort();
        for name in &names {
            let from = source.join(name);
            let mode = fs::metadata(&from)
                .map_err(io_at(&from))?
                .permissions()
                .mode()
                & 0o777;
            let bytes = fs::read(&from).map_err(io_at(&from))?;
            let to = dest.join(name);
            write_new(&to, &bytes, mode)?;
            entries.push(FileEntry {
                name: name.clone(),
                size: bytes.len() as u64,
                sha256: hex(&Sha256::digest(&bytes)),
                mode,
            });
        }
        // Last, so the database is at least as new as the certificates the
        // files hold (a server certificate re-issued meanwhile is recorded).
        let db = dest.join(files::DATABASE);
        let summary = idprov_store::snapshot_database(&source.join(files::DATABASE), &db)?;
        entries.push(FileEntry {
            name: files::DATABASE.to_owned(),
            size: fs::metadata(&db).map_err(io_at(&db))?.len(),
            sha256: hash_file(&db)?,
            mode: 0o600,
        });
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            version: FORMAT_VERSION,
            idprov_version: env!("CARGO_PKG_VERSION").to_owned(),
            created: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            source: source.clone(),
            database: summary.into(),
            files: entries,
            not_included: external_files(config),
            keys_not_copied: crate::cakeys::keys_not_copied(config),
        };
        let text = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| BackupError::Invalid(format!("manifest: {e}")))?;
        write_new(&dest.join(MANIFEST), &text, 0o600)?;
        File::open(dest)
            .and_then(|d| d.sync_all())
            .map_err(io_at(dest))?;
        Ok(manifest)
    })();
    if result.is_err() {
        // Leave no half backup that could be mistaken for a whole one.
        let _ = fs::remove_dir_all(dest);
    }
    result
}

/// Files outside the data directory that the configuration depends on.
fn external_files(config: &ServerConfig) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let CaSource::Files {
        cert, key, chain, ..
    } = &config.ca
    {
        out.push(cert.clone());
        out.push(key.clone());
        out.extend(chain.iter().cloned());
    }
    if let SecretKeySource::File(p) = &config.secret_key {
        out.push(p.clone());
    }
    out.retain(|p| !p.starts_with(&config.data_dir));
    out
}

/// Reads and checks the backup in `backup`: its manifest, every file's hash,
/// and the database. Changes nothing.
pub fn verify(backup: &Path) -> Result<Manifest, BackupError> {
    let path = backup.join(MANIFEST);
    let text = fs::read(&path).map_err(io_at(&path))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| {
        BackupError::Invalid(format!(
            "{}: not an idprov backup manifest: {e}",
            path.display()
        ))
    })?;
    if manifest.format != FORMAT || manifest.version != FORMAT_VERSION {
        return Err(BackupError::Invalid(format!(
            "{}: format {} version {}; this idprov reads {FORMAT} version {FORMAT_VERSION}",
            path.display(),
            manifest.format,
            manifest.version
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in &manifest.files {
        // Names come from a file someone may have edited: plain names only.
        if f.name.is_empty()
            || f.name.contains('/')
            || f.name == "."
            || f.name == ".."
            || f.name.starts_with('.')
            || f.name == MANIFEST
            || f.name == files::LOCK
            || !seen.insert(f.name.as_str())
        {
            return Err(BackupError::Invalid(format!(
                "{}: invalid or repeated file name {:?}",
                path.display(),
                f.name
            )));
        }
        if f.mode & !0o777 != 0 {
            return Err(BackupError::Invalid(format!(
                "{}: invalid mode for {}",
                path.display(),
                f.name
            )));
        }
        let file = backup.join(&f.name);
        let actual = hash_file(&file)?;
        if actual != f.sha256 {
            return Err(BackupError::Invalid(format!(
                "{}: its content does not match the manifest (altered or damaged)",
                file.display()
            )));
        }
    }
    if !seen.contains(files::DATABASE) {
        return Err(BackupError::Invalid(format!(
            "{}: the backup has no database",
            path.display()
        )));
    }
    let facts: DatabaseFacts = idprov_store::check_database(&backup.join(files::DATABASE))?.into();
    if facts != manifest.database {
        return Err(BackupError::Invalid(format!(
            "{}: the database does not hold what the manifest says",
            path.display()
        )));
    }
    Ok(manifest)
}

/// Restores the backup in `backup` as the data directory `target`, which
/// must not exist or be empty.
pub fn restore(backup: &Path, target: &Path) -> Result<Manifest, BackupError> {
    let manifest = verify(backup)?;
    if target.exists() {
        let mut entries = fs::read_dir(target).map_err(io_at(target))?;
        if entries.next().is_some() {
            return Err(BackupError::Target(format!(
                "{} is not empty; restore into a new directory (stop the server, move the old one away)",
                target.display()
            )));
        }
    }
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .create(parent)
        .map_err(io_at(parent))?;
    let name = target.file_name().ok_or_else(|| {
        BackupError::Target(format!("{}: not a directory name", target.display()))
    })?;
    let mut staging_name = std::ffi::OsString::from(".");
    staging_name.push(name);
    staging_name.push(format!(".restore{}", std::process::id()));
    let staging = parent.join(staging_name);
    let _ = fs::remove_dir_all(&staging);
    let result = (|| {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(io_at(&staging))?;
        for f in &manifest.files {
            let bytes = fs::read(backup.join(&f.name)).map_err(io_at(&backup.join(&f.name)))?;
            // Checked again: the file may have changed since `verify`.
            if hex(&Sha256::digest(&bytes)) != f.sha256 {
                return Err(BackupError::Invalid(format!(
                    "{}: changed while being restored",
                    f.name
                )));
            }
            write_new(&staging.join(&f.name), &bytes, f.mode)?;
        }
        File::open(&staging)
            .and_then(|d| d.sync_all())
            .map_err(io_at(&staging))?;
        if target.exists() {
            fs::remove_dir(target).map_err(io_at(target))?;
        }
        fs::rename(&staging, target).map_err(io_at(target))?;
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_at(parent))?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    Ok(manifest)
}

/// Creates `dir` (0700), or accepts it when it exists and is empty.
fn prepare_empty_dir(dir: &Path) -> Result<(), BackupError> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(BackupError::Target(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        if fs::read_dir(dir).map_err(io_at(dir))?.next().is_some() {
            return Err(BackupError::Target(format!(
                "{} is not empty; back up into a new directory",
                dir.display()
            )));
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_at(dir))?;
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_at(dir))
}

/// Writes a new file with exactly `mode`, fsynced.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), BackupError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_at(path))?;
    f.write_all(bytes).map_err(io_at(path))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_at(path))?;
    f.sync_all().map_err(io_at(path))
}

fn hash_file(path: &Path) -> Result<String, BackupError> {
    let mut f = File::open(path).map_err(io_at(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io_at(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

//! The data directory: created 0700, private files written 0600 atomically,
//! and a lock so that two servers never share one SQLite registry.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The files of the data directory, by name.
pub mod files {
    /// The CA certificate (PEM), when the CA is generated.
    pub const CA_CERT: &str = "ca.pem";
    /// The CA private key (PKCS#8 PEM, 0600), when the CA is generated.
    pub const CA_KEY: &str = "ca.key";
    /// The server's TLS certificate followed by any intermediates (PEM).
    pub const SERVER_CERT: &str = "server.pem";
    /// The server's TLS private key (PKCS#8 PEM, 0600).
    pub const SERVER_KEY: &str = "server.key";
    /// The delegated OCSP responder's certificate (PEM).
    pub const OCSP_CERT: &str = "ocsp.pem";
    /// Its private key (PKCS#8 PEM, 0600).
    pub const OCSP_KEY: &str = "ocsp.key";
    /// The administrator client certificate the CLI uses (PEM).
    pub const ADMIN_CERT: &str = "admin.pem";
    /// Its private key (PKCS#8 PEM, 0600).
    pub const ADMIN_KEY: &str = "admin.key";
    /// The CA chain clients trust (PEM): the issuing CA and its chain.
    pub const CA_CHAIN: &str = "ca-chain.pem";
    /// The SQLite registry (with `-wal` and `-shm` beside it).
    pub const DATABASE: &str = "idprov.db";
    /// Held locked while a server uses the directory (SQLite mode), or while
    /// a replica creates or checks its files (PostgreSQL mode).
    pub const LOCK: &str = "idprov.lock";
    /// The key that seals OOB secrets in PostgreSQL mode when none is
    /// configured (0600; replicas sharing the directory share it).
    pub const SECRETS_KEY: &str = "secrets.key";
}

/// A data directory in use.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    _lock: Option<File>,
}

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Creating, reading or writing failed.
    #[error("data directory {path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Group or others may access it.
    #[error(
        "data directory {0} is accessible by group or others; it holds private keys: run `chmod 700 {0}`"
    )]
    Permissions(PathBuf),
    /// Another server holds the lock.
    #[error("data directory {0} is in use by another idprov server")]
    Locked(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_owned(),
        source,
    }
}

impl DataDir {
    /// Opens the directory, creating it (0700) if needed, and takes its lock.
    pub fn open(root: &Path, lock: bool) -> Result<DataDir, DataDirError> {
        if !root.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .map_err(io_err(root))?;
        }
        let meta = fs::metadata(root).map_err(io_err(root))?;
        if !meta.is_dir() {
            return Err(DataDirError::Io {
                path: root.to_owned(),
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(DataDirError::Permissions(root.to_owned()));
        }
        let lock = if lock {
            let path = root.join(files::LOCK);
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&path)
                .map_err(io_err(&path))?;
            match file.try_lock() {
                Ok(()) => Some(file),
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(DataDirError::Locked(root.to_owned()));
                }
                Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
            }
        } else {
            None
        };
        Ok(DataDir {
            root: root.to_owned(),
            _lock: lock,
        })
    }

    /// Opens the directory and waits (up to `wait`) for its lock: replicas
    /// sharing a directory take turns creating or checking its files, so
    /// two first starts cannot make two CAs. Release it with
    /// [`DataDir::release_lock`] once the files are settled.
    pub fn open_shared(root: &Path, wait: std::time::Duration) -> Result<DataDir, DataDirError> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match DataDir::open(root, true) {
                Err(DataDirError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// Gives up the lock (PostgreSQL mode, after start-up).
    pub fn release_lock(&mut self) {
        self._lock = None;
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A file in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// Writes a file that holds a secret: created 0600 under a temporary name,
/// fsynced, renamed over the target, and the directory fsynced, so a crash
/// leaves either the old or the new content, never a torn or wider file.
pub fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomically(path, contents, 0o600)
}

/// Writes a file that holds nothing secret (certificates): 0644, atomically.
pub fn write_public_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomically(path, contents, 0o644)
}

fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode; never widened it. Set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Refuses (with `PermissionDenied`) a private file that group or others may access.
pub fn check_private_permissions(path: &Path) -> io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} has mode {:o}; private keys must be 0600",
                path.display(),
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_private_directory_and_private_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("data");
        let dir = DataDir::open(&root, true).expect("open");
        let mode = fs::metadata(&root).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let key = dir.path("x.key");
        write_private_file(&key, b"secret").expect("write");
        assert_eq!(
            fs::metadata(&key).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        check_private_permissions(&key).expect("private");
        write_public_file(&dir.path("x.pem"), b"cert").expect("write");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(
            check_private_permissions(&key).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        // A second server cannot take the lock.
        assert!(matches!(
            DataDir::open(&root, true),
            Err(DataDirError::Locked(_))
        ));
        drop(dir);
        DataDir::open(&root, true).expect("lock released");
    }

    #[test]
    fn refuses_a_directory_others_can_read() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(matches!(
            DataDir::open(tmp.path(), false),
            Err(DataDirError::Permissions(_))
        ));
    }
}

//! The device's credential directory.
//!
//! ```text
//! DIR/current            -> sets/<time>-<serial>   the newest complete set
//! DIR/current/key.pem    the device's private key (0600)
//! DIR/current/cert.pem   its certificate, then any intermediates
//! DIR/current/ca.pem     the CA chain it trusts
//! DIR/pending/key.pem    the key, before the first certificate (0600)
//! DIR/pending/ca.pem     the CA received on first contact, before it is confirmed
//! ```
//!
//! Key, certificate and CA are replaced as one set: a new directory is
//! written and fsynced, then `current` is swapped to it by an atomic rename
//! of a symbolic link, and the parent directory is fsynced. A crash at any
//! point leaves either the old set or the new one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Sets kept besides the current one (for rollback by hand).
const KEEP_OLD_SETS: usize = 1;

/// One complete set of credentials.
#[derive(Clone)]
pub struct CredentialSet {
    /// Where it is.
    pub path: PathBuf,
    /// The private key, PEM.
    pub key_pem: Zeroizing<String>,
    /// The certificate followed by intermediates, PEM.
    pub cert_pem: String,
    /// The CA chain, PEM.
    pub ca_pem: String,
}

impl std::fmt::Debug for CredentialSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialSet")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The credential directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

fn mkdir_private(path: &Path) -> io::Result<()> {
    if !path.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)?;
    }
    Ok(())
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(contents)?;
    f.sync_all()
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Writes a file atomically (temporary name, fsync, rename, fsync directory).
fn replace_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = path.with_extension("tmp");
    write_file(&tmp, contents, mode)?;
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Store {
    /// Opens (creating, mode 0700) the credential directory.
    pub fn open(dir: &Path) -> io::Result<Store> {
        mkdir_private(dir)?;
        Ok(Store {
            dir: dir.to_owned(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current set, if a certificate was ever installed.
    pub fn current(&self) -> io::Result<Option<CredentialSet>> {
        let link = self.dir.join("current");
        if fs::symlink_metadata(&link).is_err() {
            return Ok(None);
        }
        let path = fs::canonicalize(&link)?;
        let (Some(key), Some(cert), Some(ca)) = (
            read_optional(&path.join("key.pem"))?,
            read_optional(&path.join("cert.pem"))?,
            read_optional(&path.join("ca.pem"))?,
        ) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is an incomplete credential set", path.display()),
            ));
        };
        Ok(Some(CredentialSet {
            path,
            key_pem: Zeroizing::new(key),
            cert_pem: cert,
            ca_pem: ca,
        }))
    }

    /// The key generated before the first certificate.
    pub fn pending_key(&self) -> io::Result<Option<Zeroizing<String>>> {
        Ok(read_optional(&self.dir.join("pending/key.pem"))?.map(Zeroizing::new))
    }

    /// Keeps a newly generated key until it has a certificate.
    pub fn save_pending_key(&self, key_pem: &str) -> io::Result<()> {
        mkdir_private(&self.dir.join("pending"))?;
        replace_file(&self.dir.join("pending/key.pem"), key_pem.as_bytes(), 0o600)
    }

    /// The CA received on first contact and not yet confirmed.
    pub fn pending_ca(&self) -> io::Result<Option<String>> {
        read_optional(&self.dir.join("pending/ca.pem"))
    }

    /// Remembers the CA received on first contact.
    pub fn save_pending_ca(&self, ca_pem: &str) -> io::Result<()> {
        mkdir_private(&self.dir.join("pending"))?;
        replace_file(&self.dir.join("pending/ca.pem"), ca_pem.as_bytes(), 0o644)
    }

    /// Installs a new set and makes it current, atomically.
    pub fn install(
        &self,
        name: &str,
        key_pem: &str,
        cert_pem: &str,
        ca_pem: &str,
    ) -> io::Result<PathBuf> {
        let sets = self.dir.join("sets");
        mkdir_private(&sets)?;
        let final_dir = sets.join(name);
        let tmp_dir = sets.join(format!(".{name}.tmp"));
        if tmp_dir.exists() {
            fs::remove_dir_all(&tmp_dir)?;
        }
        fs::DirBuilder::new().mode(0o700).create(&tmp_dir)?;
        write_file(&tmp_dir.join("key.pem"), key_pem.as_bytes(), 0o600)?;
        write_file(&tmp_dir.join("cert.pem"), cert_pem.as_bytes(), 0o644)?;
        write_file(&tmp_dir.join("ca.pem"), ca_pem.as_bytes(), 0o644)?;
        sync_dir(&tmp_dir)?;
        if final_dir.exists() {
            fs::remove_dir_all(&final_dir)?;
        }
        fs::rename(&tmp_dir, &final_dir)?;
        sync_dir(&sets)?;
        // Swap `current` with one rename: readers see the old or the new set.
        let new_link = self.dir.join("current.new");
        let _ = fs::remove_file(&new_link);
        std::os::unix::fs::symlink(Path::new("sets").join(name), &new_link)?;
        fs::rename(&new_link, self.dir.join("current"))?;
        sync_dir(&self.dir)?;
        let _ = fs::remove_file(self.dir.join("pending/key.pem"));
        let _ = fs::remove_file(self.dir.join("pending/ca.pem"));
        self.prune(name);
        Ok(final_dir)
    }

    /// Removes old sets, keeping the current one and [`KEEP_OLD_SETS`] more.
    fn prune(&self, current: &str) {
        let Ok(entries) = fs::read_dir(self.dir.join("sets")) else {
            return;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.') && n != current)
            .collect();
        names.sort();
        let excess = names.len().saturating_sub(KEEP_OLD_SETS);
        for old in names.into_iter().take(excess) {
            let _ = fs::remove_dir_all(self.dir.join("sets").join(old));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_sets_atomically_and_keeps_one_old_set() {
        let tmp = std::env::temp_dir().join(format!("idprov-store-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let store = Store::open(&tmp).expect("open");
        assert!(store.current().expect("read").is_none());
        store.save_pending_key("KEY").expect("pending");
        assert_eq!(
            store
                .pending_key()
                .expect("read")
                .as_deref()
                .map(String::as_str),
            Some("KEY")
        );
        for i in 1..=3 {
            store
                .install(&format!("set-{i}"), "KEY", &format!("CERT{i}"), "CA")
                .expect("install");
        }
        let cur = store.current().expect("read").expect("current");
        assert_eq!(cur.cert_pem, "CERT3");
        assert_eq!(
            fs::metadata(cur.path.join("key.pem"))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&tmp).expect("meta").permissions().mode() & 0o777,
            0o700
        );
        let sets: Vec<_> = fs::read_dir(tmp.join("sets")).expect("sets").collect();
        assert_eq!(sets.len(), 2, "the current set and one older");
        assert!(
            store.pending_key().expect("read").is_none(),
            "the pending key moved into the set"
        );
        let _ = fs::remove_dir_all(&tmp);
    }
}

//! The CA in the data directory: its key where the operator chose to keep
//! it (a key file, an encrypted key file, a PKCS#11 token), created on first
//! start, and its lifecycle — encrypting the key file in place, a rollover
//! to a new CA with its transition, an intermediate signed by an offline
//! root.
//!
//! Files: `ca.pem` (the issuing CA), `ca.key` (its key, unless a token
//! holds it), `ca-issuers.pem` (the chain above an imported intermediate),
//! during a rollover `ca-previous.pem`/`ca-previous.key` and the two
//! cross-certificates, and `ca-retired.pem` (retired CAs, to verify old
//! audit checkpoints).

use std::path::Path;
use std::time::{Duration, SystemTime};

use idprov_ca::pkcs11::{TokenKey, TokenSettings};
use idprov_ca::{Ca, CaKey, KeyAlgorithm, KeyStorage, keyfile, pem};
use zeroize::Zeroizing;

use crate::config::{CaKeyStore, CaSource, Pkcs11Config, SecretSource, ServerConfig};
use crate::datadir::{
    DataDir, check_private_permissions, files, write_private_file, write_public_file,
};
use crate::error::StartError;

/// Why a CA operation failed; nothing was changed unless it says so.
#[derive(Debug, thiserror::Error)]
pub enum CaKeyError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The CA crate refused (a wrong passphrase, an absent token…).
    #[error("{0}")]
    Ca(#[from] idprov_ca::CaError),
    /// A passphrase or PIN could not be read.
    #[error("{0}")]
    Secret(String),
    /// The operation does not apply to this CA's state or configuration.
    #[error("{0}")]
    State(String),
}

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> CaKeyError + '_ {
    move |source| CaKeyError::File {
        path: path.display().to_string(),
        source,
    }
}

fn read(path: &Path) -> Result<String, CaKeyError> {
    std::fs::read_to_string(path).map_err(file_err(path))
}

fn read_secret(source: &SecretSource) -> Result<Zeroizing<String>, CaKeyError> {
    source.read().map_err(CaKeyError::Secret)
}

fn token_settings(t: &Pkcs11Config) -> Result<TokenSettings, CaKeyError> {
    Ok(TokenSettings {
        module: t.module.clone(),
        token_label: t.token_label.clone(),
        key_label: t.key_label.clone(),
        pin: read_secret(&t.pin)?,
    })
}

/// Reads a key file (clear or encrypted) with the configured passphrase.
fn read_key_file(path: &Path, passphrase: Option<&SecretSource>) -> Result<CaKey, CaKeyError> {
    check_private_permissions(path).map_err(file_err(path))?;
    let text = Zeroizing::new(read(path)?);
    let pass = passphrase.map(read_secret).transpose()?;
    let key = keyfile::read_key(&text, pass.as_ref().map(|p| p.as_bytes()))
        .map_err(|e| CaKeyError::State(format!("{}: {e}", path.display())))?;
    if pass.is_some() && key.storage() == KeyStorage::File {
        tracing::warn!(path = %path.display(), "a passphrase is configured but the CA key file is not encrypted: run `idprov ca encrypt-key`");
    }
    Ok(key)
}

/// The key of the CA certificate `cert_pem` in the data directory's store:
/// `key_file` (key-file mode) or the token key with that public key.
fn stored_key(store: &CaKeyStore, key_file: &Path, cert_pem: &str) -> Result<CaKey, CaKeyError> {
    match store {
        CaKeyStore::File { passphrase } => read_key_file(key_file, passphrase.as_ref()),
        CaKeyStore::Token(t) => {
            let certs = pem::parse_certificates(cert_pem)?;
            let info = idprov_ca::CertInfo::from_der(&certs[0])?;
            Ok(TokenKey::find(&token_settings(t)?, &info.spki_der)?)
        }
    }
}

/// A new key in the configured store; in key-file mode also its file's
/// text (encrypted when a passphrase is configured), for the caller to
/// write.
fn new_key(
    store: &CaKeyStore,
    algorithm: KeyAlgorithm,
) -> Result<(CaKey, Option<Zeroizing<String>>), CaKeyError> {
    match store {
        CaKeyStore::File { passphrase } => {
            let pair = algorithm.generate()?;
            let pass = passphrase.as_ref().map(read_secret).transpose()?;
            let pem = keyfile::key_pem(&pair, pass.as_ref().map(|p| p.as_bytes()))?;
            let storage = if pass.is_some() {
                KeyStorage::EncryptedFile
            } else {
                KeyStorage::File
            };
            Ok((CaKey::in_memory(pair, storage), Some(pem)))
        }
        CaKeyStore::Token(t) => Ok((TokenKey::generate(&token_settings(t)?, algorithm)?, None)),
    }
}

/// The CA the configuration names, generating it on first start: its key
/// where the configuration keeps it, and during a rollover the previous CA
/// beside it. Returns the CA and, on first start, the new key's
/// description for the audit log.
pub fn load_or_generate(
    config: &ServerConfig,
    dir: &DataDir,
    now: SystemTime,
) -> Result<(Ca, Option<KeyStorage>), StartError> {
    load_inner(config, dir, now).map_err(|e| StartError::Ca(e.to_string()))
}

fn load_inner(
    config: &ServerConfig,
    dir: &DataDir,
    now: SystemTime,
) -> Result<(Ca, Option<KeyStorage>), CaKeyError> {
    let (validity, key_type, store) = match &config.ca {
        CaSource::Files {
            cert,
            key,
            chain,
            passphrase,
        } => {
            let cert_pem = read(cert)?;
            let chain_pem = chain.as_deref().map(read).transpose()?;
            let key = read_key_file(key, passphrase.as_ref())?;
            let ca = Ca::load_with_key(&cert_pem, key, chain_pem.as_deref(), now)
                .map_err(|e| CaKeyError::State(format!("{}: {e}", cert.display())))?;
            return Ok((ca, None));
        }
        CaSource::Generated {
            validity,
            key_type,
            key,
        } => (*validity, *key_type, key),
    };
    recover(store, dir)?;
    let cert_path = dir.path(files::CA_CERT);
    let key_path = dir.path(files::CA_KEY);
    if cert_path.exists() {
        return Ok((load_current(store, dir, now)?, None));
    }
    if dir.path(files::CA_CSR).exists() {
        return Err(CaKeyError::State(format!(
            "{} waits for its signed certificate: have the offline root sign it, then run \
             `idprov ca import SIGNED.pem --chain ROOT.pem`",
            dir.path(files::CA_CSR).display()
        )));
    }
    if key_path.exists() {
        return Err(CaKeyError::State(format!(
            "{} exists without {}: restore the CA certificate, or move the key away to start a new CA",
            key_path.display(),
            cert_path.display()
        )));
    }
    let (key, key_pem) = new_key(store, key_type)?;
    let storage = key.storage();
    // The key first: a CA certificate without its key would be unusable.
    if let Some(pem) = &key_pem {
        write_private_file(&key_path, pem.as_bytes()).map_err(file_err(&key_path))?;
    }
    let (ca, cert_pem) = Ca::self_signed(&config.organization, key, now, validity)?;
    write_public_file(&cert_path, cert_pem.as_bytes()).map_err(file_err(&cert_path))?;
    tracing::info!(fingerprint = %ca.fingerprint(), key = %storage, "generated a new CA");
    Ok((ca, Some(storage)))
}

/// The data directory's CA as it is now (with its transition, if any),
/// after completing or discarding a rollover or finish that was
/// interrupted ([`recover`]).
fn load_current(store: &CaKeyStore, dir: &DataDir, now: SystemTime) -> Result<Ca, CaKeyError> {
    recover(store, dir)?;
    let cert_path = dir.path(files::CA_CERT);
    let cert_pem = read(&cert_path)?;
    let issuers = dir.path(files::CA_ISSUERS);
    let chain = issuers.exists().then(|| read(&issuers)).transpose()?;
    let key = stored_key(store, &dir.path(files::CA_KEY), &cert_pem)?;
    let mut ca = Ca::load_with_key(&cert_pem, key, chain.as_deref(), now)
        .map_err(|e| CaKeyError::State(format!("{}: {e}", cert_path.display())))?;
    let previous_path = dir.path(files::CA_PREVIOUS_CERT);
    if previous_path.exists() {
        let previous_pem = read(&previous_path)?;
        let key = stored_key(store, &dir.path(files::CA_PREVIOUS_KEY), &previous_pem)?;
        let previous = Ca::load_with_key(&previous_pem, key, None, now)
            .map_err(|e| CaKeyError::State(format!("{}: {e}", previous_path.display())))?;
        let new_by_old = read(&dir.path(files::CA_CROSS_NEW_BY_OLD))?;
        let old_by_new = read(&dir.path(files::CA_CROSS_OLD_BY_NEW))?;
        ca = ca.with_previous(previous, &new_by_old, &old_by_new)?;
    }
    let retired = dir.path(files::CA_RETIRED);
    if retired.exists() {
        ca.add_retired(&read(&retired)?)?;
    }
    Ok(ca)
}

fn generated_store(config: &ServerConfig) -> Result<(&CaKeyStore, Duration), CaKeyError> {
    match &config.ca {
        CaSource::Generated { key, validity, .. } => Ok((key, *validity)),
        CaSource::Files { .. } => Err(CaKeyError::State(
            "the CA is the operator's (ca.cert_file, ca.key_file): manage its key with your own tools; \
             these commands manage the data directory's CA"
                .into(),
        )),
    }
}

/// `idprov ca encrypt-key`: encrypts the key file in place (atomically:
/// written beside it, then renamed over it) with the configured passphrase.
/// Returns the CA's fingerprint.
pub fn encrypt_key(config: &ServerConfig, dir: &DataDir) -> Result<String, CaKeyError> {
    let (path, source) = match &config.ca {
        CaSource::Files {
            key,
            passphrase: Some(p),
            ..
        } => (key.clone(), p),
        CaSource::Generated {
            key: CaKeyStore::File {
                passphrase: Some(p),
            },
            ..
        } => (dir.path(files::CA_KEY), p),
        CaSource::Generated {
            key: CaKeyStore::Token(_),
            ..
        } => {
            return Err(CaKeyError::State(
                "the CA key is in a PKCS#11 token: there is no key file to encrypt".into(),
            ));
        }
        _ => {
            return Err(CaKeyError::State(
                "no passphrase is configured: set ca.key_passphrase_file, ca.key_passphrase_env or \
                 ca.key_passphrase_credential first (the server needs it at every start)"
                    .into(),
            ));
        }
    };
    check_private_permissions(&path).map_err(file_err(&path))?;
    let text = Zeroizing::new(read(&path)?);
    if keyfile::is_encrypted(&text) {
        return Err(CaKeyError::State(format!(
            "{} is already encrypted",
            path.display()
        )));
    }
    let pass = read_secret(source)?;
    let encrypted = keyfile::encrypt_key(&text, pass.as_bytes())?;
    // Read back before replacing: the file must open with this passphrase.
    let key = keyfile::read_key(&encrypted, Some(pass.as_bytes()))?;
    write_private_file(&path, encrypted.as_bytes()).map_err(file_err(&path))?;
    Ok(idprov_proto::Fingerprint::of_der(&key.spki_der()).to_string())
}

/// What a rollover made.
#[derive(Debug, Clone)]
pub struct Rollover {
    /// The previous CA's fingerprint.
    pub previous: String,
    /// The new CA's fingerprint.
    pub new: String,
    /// Where the new key lives.
    pub storage: KeyStorage,
}

/// `idprov ca rollover`: a new self-signed CA in the same kind of key
/// storage, cross-certificates in both directions, and the files that
/// start the transition. The server (stopped meanwhile) issues with the new
/// CA from its next start and trusts both.
///
/// Crash-safe: everything new is written under names nothing loads
/// (`ca-next.pem`, `ca-next.key`, the cross-certificates); writing
/// `ca-previous.pem` commits the rollover; the renames that follow are
/// idempotent. An interrupted rollover is completed (committed) or
/// discarded (not committed) by the next start or the next command
/// ([`recover`]); `idprov ca rollover` may simply be run again.
pub fn rollover(
    config: &ServerConfig,
    dir: &DataDir,
    now: SystemTime,
) -> Result<Rollover, CaKeyError> {
    let (store, validity) = generated_store(config)?;
    recover(store, dir)?;
    if dir.path(files::CA_PREVIOUS_CERT).exists() {
        return Err(CaKeyError::State(
            "a rollover is already in its transition: finish it first (idprov ca finish-rollover)"
                .into(),
        ));
    }
    if dir.path(files::CA_ISSUERS).exists() {
        return Err(CaKeyError::State(
            "this CA is an intermediate of an offline root: replace it with a new intermediate \
             (idprov ca init --intermediate in a new data directory, signed by the root) instead"
                .into(),
        ));
    }
    if dir.path(files::CA_PREVIOUS_KEY).exists() {
        return Err(CaKeyError::State(format!(
            "{} exists without {}: it is not idprov's; move it away before a rollover",
            dir.path(files::CA_PREVIOUS_KEY).display(),
            files::CA_PREVIOUS_CERT
        )));
    }
    let old = load_current(store, dir, now)?;
    let algorithm = match idprov_ca::PublicKey::from_spki_der(&old.info().spki_der)
        .map_err(idprov_ca::CaError::from)?
        .key_type()
    {
        idprov_ca::KeyType::EcdsaP384 => KeyAlgorithm::EcdsaP384,
        _ => KeyAlgorithm::EcdsaP256,
    };
    let (key, key_pem) = new_key(store, algorithm)?;
    let storage = key.storage();
    let organization = old
        .info()
        .organizations
        .first()
        .cloned()
        .unwrap_or_else(|| config.organization.clone());
    let suffix = format!(
        " {}",
        time::OffsetDateTime::from(now)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    );
    let (new, new_pem) = Ca::self_signed_named(&organization, &suffix, key, now, validity)?;
    let new_by_old = old.cross_certify(new.cert_der(), now)?;
    let old_by_new = new.cross_certify(old.cert_der(), now)?;
    // Staged under names nothing loads: until the commit below, the data
    // directory loads as before the rollover.
    let write_pub = |name: &str, text: &str| {
        let p = dir.path(name);
        write_public_file(&p, text.as_bytes()).map_err(file_err(&p))
    };
    write_pub(files::CA_CROSS_NEW_BY_OLD, &new_by_old.pem)?;
    write_pub(files::CA_CROSS_OLD_BY_NEW, &old_by_new.pem)?;
    if let Some(pem) = &key_pem {
        let next = dir.path(files::CA_NEXT_KEY);
        write_private_file(&next, pem.as_bytes()).map_err(file_err(&next))?;
    }
    write_pub(files::CA_NEXT_CERT, &new_pem)?;
    // The commit: the previous CA named beside the current one.
    write_pub(files::CA_PREVIOUS_CERT, &read(&dir.path(files::CA_CERT))?)?;
    complete_rollover(dir)?;
    Ok(Rollover {
        previous: old.fingerprint().to_string(),
        new: new.fingerprint().to_string(),
        storage,
    })
}

/// The renames of a committed rollover, each done only if not yet done:
/// the current key file becomes the previous one, the staged key and
/// certificate become the current ones (the certificate last).
fn complete_rollover(dir: &DataDir) -> Result<(), CaKeyError> {
    let next_key = dir.path(files::CA_NEXT_KEY);
    if next_key.exists() {
        let (key, previous_key) = (dir.path(files::CA_KEY), dir.path(files::CA_PREVIOUS_KEY));
        if !previous_key.exists() {
            rename(&key, &previous_key)?;
        }
        rename(&next_key, &key)?;
    }
    let next = dir.path(files::CA_NEXT_CERT);
    if next.exists() {
        rename(&next, &dir.path(files::CA_CERT))?;
    }
    sync_dir(dir.root())
}

/// Completes or discards what an interrupted `rollover` or
/// `finish-rollover` left, so the data directory loads as one of the two
/// states around it:
///
/// * a rollover staged but not committed (`ca-next.pem` or `ca-next.key`
///   without `ca-previous.pem`) is discarded — its files removed, its token
///   key destroyed: nothing ever used that CA;
/// * a committed rollover (`ca-previous.pem` written) is completed;
/// * a finish that had already recorded the previous CA as retired is
///   completed (its key destroyed, the transition's files removed).
pub fn recover(store: &CaKeyStore, dir: &DataDir) -> Result<(), CaKeyError> {
    let (next, next_key, previous) = (
        dir.path(files::CA_NEXT_CERT),
        dir.path(files::CA_NEXT_KEY),
        dir.path(files::CA_PREVIOUS_CERT),
    );
    if !previous.exists() && (next.exists() || next_key.exists()) {
        tracing::warn!("discarding a CA rollover that was interrupted before it was committed");
        if next.exists() {
            destroy_token_key(store, &read(&next)?)?;
        }
        remove_if_present(
            dir,
            &[
                files::CA_NEXT_KEY,
                files::CA_NEXT_CERT,
                files::CA_CROSS_NEW_BY_OLD,
                files::CA_CROSS_OLD_BY_NEW,
            ],
        )?;
        return sync_dir(dir.root());
    }
    if !previous.exists() {
        return Ok(());
    }
    if next.exists() || next_key.exists() {
        tracing::warn!("completing a CA rollover that was interrupted after it was committed");
        complete_rollover(dir)?;
    }
    let previous_pem = read(&previous)?;
    if is_retired(dir, &previous_pem)? {
        tracing::warn!("completing a finish-rollover that was interrupted");
        destroy_previous(store, dir, &previous_pem)?;
    }
    Ok(())
}

/// `idprov ca finish-rollover`: ends the transition. The previous CA's key
/// is destroyed (its file deleted, or its token objects destroyed); its
/// certificate moves to `ca-retired.pem`, kept only to verify the audit
/// checkpoints it signed. Returns (retired, current) fingerprints.
///
/// Crash-safe: appending the previous CA to `ca-retired.pem` commits the
/// finish; what follows (destroying the key, removing the transition's
/// files, `ca-previous.pem` last) is completed by [`recover`] if
/// interrupted.
pub fn finish_rollover(
    config: &ServerConfig,
    dir: &DataDir,
    now: SystemTime,
) -> Result<(String, String), CaKeyError> {
    let (store, _) = generated_store(config)?;
    let previous_path = dir.path(files::CA_PREVIOUS_CERT);
    if previous_path.exists() {
        let previous_pem = read(&previous_path)?;
        if is_retired(dir, &previous_pem)? {
            // An earlier finish was interrupted after its commit: complete it.
            recover(store, dir)?;
            let ca = load_current(store, dir, now)?;
            let previous = pem::parse_certificates(&previous_pem)?.remove(0);
            return Ok((
                idprov_proto::Fingerprint::of_der(&previous).to_string(),
                ca.fingerprint().to_string(),
            ));
        }
    }
    recover(store, dir)?;
    if !previous_path.exists() {
        return Err(CaKeyError::State(
            "no rollover is in its transition (start one with idprov ca rollover)".into(),
        ));
    }
    let ca = load_current(store, dir, now)?;
    let previous = ca
        .previous()
        .ok_or_else(|| CaKeyError::State("the transition's previous CA did not load".into()))?;
    let previous_pem = read(&previous_path)?;
    let retired_path = dir.path(files::CA_RETIRED);
    let mut retired = if retired_path.exists() {
        read(&retired_path)?
    } else {
        String::new()
    };
    retired.push_str(&previous_pem);
    write_public_file(&retired_path, retired.as_bytes()).map_err(file_err(&retired_path))?;
    destroy_previous(store, dir, &previous_pem)?;
    Ok((
        previous.fingerprint().to_string(),
        ca.fingerprint().to_string(),
    ))
}

/// True when the CA certificate `pem` is among the retired CAs.
fn is_retired(dir: &DataDir, pem: &str) -> Result<bool, CaKeyError> {
    let path = dir.path(files::CA_RETIRED);
    if !path.exists() {
        return Ok(false);
    }
    let cert = pem::parse_certificates(pem)?.remove(0);
    Ok(pem::parse_certificates(&read(&path)?)?.contains(&cert))
}

/// The end of a finish: the previous CA's key destroyed where it lives,
/// then the transition's files removed, `ca-previous.pem` last. Each step
/// is skipped when already done.
fn destroy_previous(
    store: &CaKeyStore,
    dir: &DataDir,
    previous_pem: &str,
) -> Result<(), CaKeyError> {
    destroy_token_key(store, previous_pem)?;
    remove_if_present(
        dir,
        &[
            files::CA_PREVIOUS_KEY,
            files::OCSP_PREVIOUS_KEY,
            files::OCSP_PREVIOUS_CERT,
            files::CA_CROSS_NEW_BY_OLD,
            files::CA_CROSS_OLD_BY_NEW,
            files::CA_PREVIOUS_CERT,
        ],
    )?;
    sync_dir(dir.root())
}

/// In token mode, destroys the token key of the CA certificate `cert_pem`
/// if the token still holds it.
fn destroy_token_key(store: &CaKeyStore, cert_pem: &str) -> Result<(), CaKeyError> {
    let CaKeyStore::Token(t) = store else {
        return Ok(());
    };
    let spki = idprov_ca::CertInfo::from_der(&pem::parse_certificates(cert_pem)?[0])?.spki_der;
    for key in TokenKey::find_all(&token_settings(t)?)? {
        if key.spki_der() == spki {
            key.destroy()?;
        }
    }
    Ok(())
}

fn remove_if_present(dir: &DataDir, names: &[&str]) -> Result<(), CaKeyError> {
    for name in names {
        let p = dir.path(name);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_err(&p)(e)),
            _ => {}
        }
    }
    Ok(())
}

fn rename(from: &Path, to: &Path) -> Result<(), CaKeyError> {
    std::fs::rename(from, to).map_err(file_err(from))
}

fn sync_dir(dir: &Path) -> Result<(), CaKeyError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(file_err(dir))
}

/// `idprov ca init --intermediate`: a key in the configured store and a
/// certificate signing request for an offline root, written to `ca.csr`
/// and returned. The server does not start until `idprov ca import`.
pub fn init_intermediate(config: &ServerConfig, dir: &DataDir) -> Result<String, CaKeyError> {
    let (store, _) = generated_store(config)?;
    if dir.path(files::CA_CERT).exists() {
        return Err(CaKeyError::State(format!(
            "{} already holds a CA ({}): make the intermediate in a new data directory",
            dir.root().display(),
            files::CA_CERT
        )));
    }
    if dir.path(files::CA_CSR).exists() || dir.path(files::CA_KEY).exists() {
        return Err(CaKeyError::State(format!(
            "{} already waits for its intermediate certificate ({}): import it with idprov ca import",
            dir.root().display(),
            files::CA_CSR
        )));
    }
    let algorithm = match &config.ca {
        CaSource::Generated { key_type, .. } => *key_type,
        CaSource::Files { .. } => KeyAlgorithm::EcdsaP256,
    };
    let (key, key_pem) = new_key(store, algorithm)?;
    if let Some(pem) = &key_pem {
        let p = dir.path(files::CA_KEY);
        write_private_file(&p, pem.as_bytes()).map_err(file_err(&p))?;
    }
    let csr = Ca::intermediate_request(&config.organization, &key)?;
    let p = dir.path(files::CA_CSR);
    write_public_file(&p, csr.as_bytes()).map_err(file_err(&p))?;
    Ok(csr)
}

/// `idprov ca import`: the offline root's signed intermediate (and the
/// chain up to the root) for the key `init_intermediate` made. Checks that
/// it is a CA for that key, signed by the chain's first certificate, and
/// loads; then writes `ca.pem` and `ca-issuers.pem`. Returns (intermediate,
/// root) fingerprints.
pub fn import_intermediate(
    config: &ServerConfig,
    dir: &DataDir,
    cert_pem: &str,
    chain_pem: &str,
    now: SystemTime,
) -> Result<(String, String), CaKeyError> {
    let (store, _) = generated_store(config)?;
    if !dir.path(files::CA_CSR).exists() {
        return Err(CaKeyError::State(format!(
            "{} has no request waiting ({}): run idprov ca init --intermediate first",
            dir.root().display(),
            files::CA_CSR
        )));
    }
    let certs = pem::parse_certificates(cert_pem)?;
    let chain = pem::parse_certificates(chain_pem)?;
    let leaf = pem::certificate_pem(&certs[0]);
    let key = stored_key(store, &dir.path(files::CA_KEY), &leaf)?;
    let issuer = idprov_ca::CertInfo::from_der(&chain[0])?;
    if !issuer.is_ca {
        return Err(CaKeyError::State(
            "the chain's first certificate is not a CA".into(),
        ));
    }
    if !idprov_ca::is_signed_by(&certs[0], &chain[0]) {
        return Err(CaKeyError::State(
            "the intermediate is not signed by the chain's first certificate".into(),
        ));
    }
    let chain_text: String = chain.iter().map(|c| pem::certificate_pem(c)).collect();
    let ca = Ca::load_with_key(&leaf, key, Some(&chain_text), now)
        .map_err(|e| CaKeyError::State(format!("the signed certificate: {e}")))?;
    let root = idprov_proto::Fingerprint::of_der(chain.last().unwrap_or(&chain[0])).to_string();
    for (name, text) in [(files::CA_ISSUERS, &chain_text), (files::CA_CERT, &leaf)] {
        let p = dir.path(name);
        write_public_file(&p, text.as_bytes()).map_err(file_err(&p))?;
    }
    let csr = dir.path(files::CA_CSR);
    std::fs::remove_file(&csr).map_err(file_err(&csr))?;
    Ok((ca.fingerprint().to_string(), root))
}

/// What a backup of the data directory cannot hold, said plainly.
pub fn keys_not_copied(config: &ServerConfig) -> Vec<String> {
    match &config.ca {
        CaSource::Generated {
            key: CaKeyStore::Token(t),
            ..
        } => vec![
            format!(
                "the CA key: it is in PKCS#11 token {:?} (key {:?}) and cannot leave it; \
                 a restore needs that token (or a token restored by its own backup procedure)",
                t.token_label, t.key_label
            ),
            format!("the token's PIN ({})", describe(&t.pin)),
        ],
        CaSource::Generated {
            key: CaKeyStore::File {
                passphrase: Some(p),
            },
            ..
        }
        | CaSource::Files {
            passphrase: Some(p),
            ..
        } => vec![format!(
            "the passphrase of the encrypted CA key ({}): a restore needs it",
            describe(p)
        )],
        _ => Vec::new(),
    }
}

fn describe(s: &SecretSource) -> String {
    match s {
        SecretSource::File(p) => format!("file {}", p.display()),
        SecretSource::Env(n) => format!("environment variable {n}"),
        SecretSource::Credential(n) => format!("systemd credential {n}"),
    }
}

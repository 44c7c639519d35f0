//! The CA's signing key. Every signature the CA makes — certificates, CRLs,
//! audit checkpoints, CSRs — goes through [`CaKey`], whatever holds the
//! key: memory (read from a PKCS#8 file, plain or encrypted with a
//! passphrase) or a PKCS#11 token that never lets it out.

use std::fmt;
use std::sync::Arc;

use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm};

use crate::error::CaError;

/// Where a CA key lives: what the operator chose, what a backup cannot
/// copy, what the logs say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStorage {
    /// An unencrypted PKCS#8 PEM file (0600).
    File,
    /// A PKCS#8 PEM file encrypted with a passphrase (PBES2).
    EncryptedFile,
    /// Inside a PKCS#11 token; the key never leaves it.
    Token {
        /// The token's label.
        token_label: String,
        /// The key's label.
        key_label: String,
    },
}

impl fmt::Display for KeyStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyStorage::File => f.write_str("a key file"),
            KeyStorage::EncryptedFile => f.write_str("an encrypted key file"),
            KeyStorage::Token {
                token_label,
                key_label,
            } => write!(
                f,
                "PKCS#11 token {token_label:?}, key {key_label:?} (not extractable)"
            ),
        }
    }
}

/// A token key's protection attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protection {
    /// CKA_SENSITIVE: the key's value is never revealed.
    pub sensitive: bool,
    /// CKA_EXTRACTABLE: the key may be wrapped out of the token.
    pub extractable: bool,
}

/// What holds a CA key and signs with it.
pub trait KeyBackend: Send + Sync + fmt::Debug {
    /// Signs `message` with the key's algorithm (ECDSA signatures DER
    /// encoded, as X.509 wants them).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError>;
    /// The public key's bits (the SubjectPublicKeyInfo's BIT STRING).
    fn public_key_raw(&self) -> &[u8];
    /// The signature algorithm.
    fn algorithm(&self) -> &'static SignatureAlgorithm;
    /// Where the key lives.
    fn storage(&self) -> KeyStorage;
    /// A token key's PKCS#11 protection attributes (`None` for keys in
    /// memory, which have none).
    fn protection(&self) -> Result<Option<Protection>, CaError> {
        Ok(None)
    }
    /// Destroys the key where it lives (a token object); keys held in
    /// memory are destroyed by deleting their file, which the caller does.
    fn destroy(&self) -> Result<(), CaError> {
        Ok(())
    }
}

/// The CA's key, cheap to clone: what rcgen signs with.
#[derive(Clone)]
pub struct CaKey(Arc<dyn KeyBackend>);

impl fmt::Debug for CaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CaKey").field(&self.0.storage()).finish()
    }
}

impl CaKey {
    /// A key of any backend.
    pub fn new(backend: impl KeyBackend + 'static) -> CaKey {
        CaKey(Arc::new(backend))
    }

    /// A key held in memory, with where it came from.
    pub fn in_memory(key: KeyPair, storage: KeyStorage) -> CaKey {
        CaKey::new(MemoryKey { key, storage })
    }

    /// Signs `message`.
    pub fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        self.0.sign(message)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        PublicKeyData::subject_public_key_info(self)
    }

    /// Where the key lives.
    pub fn storage(&self) -> KeyStorage {
        self.0.storage()
    }

    /// A token key's protection attributes (see [`KeyBackend::protection`]).
    pub fn protection(&self) -> Result<Option<Protection>, CaError> {
        self.0.protection()
    }

    /// Destroys a token-held key (see [`KeyBackend::destroy`]).
    pub fn destroy(&self) -> Result<(), CaError> {
        self.0.destroy()
    }
}

impl PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key_raw()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.0.algorithm()
    }
}

impl rcgen::SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg).map_err(|e| {
            // rcgen's error has no room for the cause: log it here, where it
            // is still known (a token that went away, a PIN that expired).
            remember_error(&e);
            rcgen::Error::RemoteKeyError
        })
    }
}

/// rcgen reports a signing failure only as "remote key error"; the cause is
/// kept for the next [`last_signing_error`] call on this thread.
fn remember_error(e: &CaError) {
    LAST_ERROR.with(|l| *l.borrow_mut() = Some(e.to_string()));
}

thread_local! {
    static LAST_ERROR: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The cause of the last signing failure on this thread (rcgen passes on
/// only "remote key error").
pub(crate) fn last_signing_error() -> Option<String> {
    LAST_ERROR.with(|l| l.borrow_mut().take())
}

/// A key in memory: generated, or read from a (possibly encrypted) file.
struct MemoryKey {
    key: KeyPair,
    storage: KeyStorage,
}

impl fmt::Debug for MemoryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryKey")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl KeyBackend for MemoryKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        Ok(rcgen::SigningKey::sign(&self.key, message)?)
    }
    fn public_key_raw(&self) -> &[u8] {
        self.key.der_bytes()
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.key.algorithm()
    }
    fn storage(&self) -> KeyStorage {
        self.storage.clone()
    }
}

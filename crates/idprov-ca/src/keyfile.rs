//! CA key files: PKCS#8 PEM, in clear (`PRIVATE KEY`) or encrypted with a
//! passphrase (`ENCRYPTED PRIVATE KEY`, PKCS#5 v2 PBES2 with scrypt and
//! AES-256-CBC: the scheme `openssl pkcs8 -topk8 -scrypt` writes, so
//! OpenSSL reads these files with the same passphrase).
//!
//! Text in, text out: the caller reads and writes the files.

use pkcs8::pkcs5::{pbes2, scrypt};
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use rcgen::KeyPair;
use zeroize::Zeroizing;

use crate::error::CaError;
use crate::signer::{CaKey, KeyStorage};

/// The PEM label of an encrypted PKCS#8 key.
pub const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// scrypt cost: N = 2^14, r = 8, p = 1 (16 MiB, about 50 ms here): what
/// OpenSSL 3 writes and the most it reads by default (its 32 MiB limit).
const SCRYPT_LOG_N: u8 = 14;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;

/// True when `pem` holds an encrypted PKCS#8 key.
pub fn is_encrypted(pem: &str) -> bool {
    ::pem::parse(pem).is_ok_and(|p| p.tag() == ENCRYPTED_LABEL)
}

/// Reads a CA key file: a clear PKCS#8 key needs no passphrase; an
/// encrypted one needs the right one.
pub fn read_key(pem: &str, passphrase: Option<&[u8]>) -> Result<CaKey, CaError> {
    let block = ::pem::parse(pem).map_err(|e| CaError::BadKey(format!("not PEM: {e}")))?;
    match (block.tag(), passphrase) {
        (ENCRYPTED_LABEL, Some(pass)) => {
            let info = EncryptedPrivateKeyInfoRef::try_from(block.contents())
                .map_err(|e| CaError::BadKey(format!("not an encrypted PKCS#8 key: {e}")))?;
            let clear = info.decrypt(pass).map_err(|_| CaError::WrongPassphrase)?;
            let key =
                KeyPair::try_from(clear.as_bytes()).map_err(|e| CaError::BadKey(e.to_string()))?;
            Ok(CaKey::in_memory(key, KeyStorage::EncryptedFile))
        }
        (ENCRYPTED_LABEL, None) => Err(CaError::PassphraseNeeded),
        (_, _) => {
            // A passphrase configured for a clear key is not an error: the
            // key is read, and `idprov ca encrypt-key` is the way to
            // encrypt it (the server says so in its log).
            let key = KeyPair::from_pem(pem).map_err(|e| CaError::BadKey(e.to_string()))?;
            Ok(CaKey::in_memory(key, KeyStorage::File))
        }
    }
}

/// Encrypts a clear PKCS#8 PEM key with `passphrase` (fresh salt and IV).
pub fn encrypt_key(pem: &str, passphrase: &[u8]) -> Result<Zeroizing<String>, CaError> {
    if passphrase.is_empty() {
        return Err(CaError::BadKey("the passphrase is empty".into()));
    }
    let block = ::pem::parse(pem).map_err(|e| CaError::BadKey(format!("not PEM: {e}")))?;
    if block.tag() == ENCRYPTED_LABEL {
        return Err(CaError::BadKey("the key is already encrypted".into()));
    }
    if block.tag() != "PRIVATE KEY" {
        return Err(CaError::BadKey(format!(
            "a {} block, expected a PKCS#8 PRIVATE KEY",
            block.tag()
        )));
    }
    let contents = Zeroizing::new(block.into_contents());
    // Refuse what would not load back.
    KeyPair::try_from(contents.as_slice()).map_err(|e| CaError::BadKey(e.to_string()))?;
    let info = PrivateKeyInfoRef::try_from(contents.as_slice())
        .map_err(|e| CaError::BadKey(format!("not PKCS#8: {e}")))?;
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| CaError::Random)?;
    aws_lc_rs::rand::fill(&mut iv).map_err(|_| CaError::Random)?;
    let cost = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)
        .map_err(|e| CaError::BadKey(format!("scrypt parameters: {e}")))?;
    let params = pbes2::Parameters::generate_scrypt_aes256cbc(cost, &salt, iv)
        .map_err(|e| CaError::BadKey(format!("PBES2 parameters: {e}")))?;
    let encrypted = info
        .encrypt_with_params(params, passphrase)
        .map_err(|e| CaError::BadKey(format!("encrypting: {e}")))?;
    Ok(Zeroizing::new(crate::pem::encode(
        ENCRYPTED_LABEL,
        encrypted.as_bytes(),
    )))
}

/// A new key's PKCS#8 PEM, encrypted when a passphrase is given.
pub fn key_pem(key: &KeyPair, passphrase: Option<&[u8]>) -> Result<Zeroizing<String>, CaError> {
    let clear = Zeroizing::new(key.serialize_pem());
    match passphrase {
        Some(p) => encrypt_key(&clear, p),
        None => Ok(clear),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encrypted_key_reads_back_only_with_its_passphrase() {
        let key = KeyPair::generate().expect("key");
        let clear = key.serialize_pem();
        let enc = encrypt_key(&clear, b"correct horse").expect("encrypt");
        assert!(enc.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        assert!(is_encrypted(&enc) && !is_encrypted(&clear));
        let back = read_key(&enc, Some(b"correct horse")).expect("decrypt");
        assert_eq!(
            back.spki_der(),
            rcgen::PublicKeyData::subject_public_key_info(&key)
        );
        assert_eq!(back.storage(), KeyStorage::EncryptedFile);
        assert!(matches!(
            read_key(&enc, Some(b"wrong")),
            Err(CaError::WrongPassphrase)
        ));
        assert!(matches!(
            read_key(&enc, None),
            Err(CaError::PassphraseNeeded)
        ));
        assert!(encrypt_key(&enc, b"x").is_err(), "already encrypted");
        assert!(encrypt_key(&clear, b"").is_err(), "empty passphrase");
        // A fresh salt each time.
        assert_ne!(
            *encrypt_key(&clear, b"p").expect("a"),
            *encrypt_key(&clear, b"p").expect("b")
        );
    }
}

//! The sealing key's sources on disk and in the configuration (the
//! sealing itself is `idprov_core::secrets`).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
pub use idprov_core::secrets::{SealError, SecretBox, decode_key};
use zeroize::Zeroizing;

/// Why a configured key was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The key file could not be read or created.
    #[error("secret key file {0}: {1}")]
    Io(String, std::io::Error),
    /// The key file is readable by others.
    #[error("secret key file {0} is accessible by group or others; run: chmod 600 {0}")]
    Permissions(String),
    /// The content is not 32 bytes of base64.
    #[error("secret key {0}: {1}")]
    Format(String, String),
}

/// A key given as base64 text (configuration or environment).
pub fn from_text(text: &str) -> Result<SecretBox, KeyFileError> {
    let bytes = decode_key(text).map_err(|m| KeyFileError::Format("secrets.key".into(), m))?;
    SecretBox::from_bytes(&bytes, true)
        .map_err(|e| KeyFileError::Format("secrets.key".into(), e.to_string()))
}

/// A key read from a 0600 file, created (with a fresh random key) when
/// `create` is set and the file does not exist.
pub fn from_file(path: &Path, create: bool) -> Result<SecretBox, KeyFileError> {
    let name = path.display().to_string();
    if !path.exists() && create {
        let mut key = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut key[..])
            .map_err(|_| KeyFileError::Format(name.clone(), "random generator failed".into()))?;
        let text = Zeroizing::new(BASE64.encode(&key[..]) + "\n");
        crate::datadir::write_private_file(path, text.as_bytes())
            .map_err(|e| KeyFileError::Io(name.clone(), e))?;
    }
    crate::datadir::check_private_permissions(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => KeyFileError::Permissions(name.clone()),
        _ => KeyFileError::Io(name.clone(), e),
    })?;
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| KeyFileError::Io(name.clone(), e))?,
    );
    let bytes = decode_key(&text).map_err(|m| KeyFileError::Format(name.clone(), m))?;
    SecretBox::from_bytes(&bytes, true).map_err(|e| KeyFileError::Format(name, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_keys_must_be_32_bytes() {
        assert!(from_text("AAAA").is_err());
        let k = BASE64.encode([7u8; 32]);
        let a = from_text(&k).expect("key");
        let b = from_text(&k).expect("key");
        assert_eq!(a.key_id(), b.key_id(), "the same key has the same identity");
        assert!(a.is_persistent());
    }
}

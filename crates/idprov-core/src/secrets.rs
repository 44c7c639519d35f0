//! Sealing OOB secrets at rest: AES-256-GCM with a random nonce, the device
//! ID as associated data (a sealed secret moved to another device's row does
//! not open), never hashed, because the server needs the raw secret to
//! compute the HMAC (PRODUCT.md, "How secrets and keys are kept").

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use idprov_proto::OobSecret;
use zeroize::Zeroizing;

/// Why a sealed secret could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Sealed under another key, tampered with, or moved to another device.
    #[error("the sealed secret does not open with this server's key")]
    WrongKey,
    /// The plaintext is not a valid secret (cannot happen with our own writes).
    #[error("the sealed secret is not valid text")]
    Corrupt,
    /// The random generator or the cipher failed.
    #[error("sealing failed")]
    Crypto,
}

/// A strong secret from the system's random generator: 26 Crockford base32
/// characters (130 bits, PROTOCOL.md §9). The one generator of the command
/// line, the label sheets and the web page; `None` only when the system's
/// random generator fails.
pub fn generate() -> Option<OobSecret> {
    let mut random = Zeroizing::new([0u8; idprov_proto::secret::GENERATED_SECRET_CHARS]);
    aws_lc_rs::rand::fill(&mut random[..]).ok()?;
    Some(OobSecret::generate(&random))
}

/// Checks that `text` is base64 of exactly 32 bytes.
pub fn decode_key(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let bytes = Zeroizing::new(
        BASE64
            .decode(text.trim().as_bytes())
            .map_err(|_| "is not base64 (expected 32 random bytes, base64-encoded)".to_string())?,
    );
    if bytes.len() != 32 {
        return Err(format!("decodes to {} bytes; 32 are required", bytes.len()));
    }
    Ok(bytes)
}

/// The key that seals secrets, and its public identity.
pub struct SecretBox {
    key: RandomizedNonceKey,
    key_id: String,
    persistent: bool,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("key_id", &self.key_id)
            .field("persistent", &self.persistent)
            .finish_non_exhaustive()
    }
}

const AAD_PREFIX: &[u8] = b"idprov oob secret v1\0";

/// The key identity: a keyed hash of a fixed label, so it reveals nothing
/// about the key but tells two keys apart.
fn key_id_of(key: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        b"idprov secret key id",
    );
    hex::encode(&tag.as_ref()[..12])
}

impl SecretBox {
    /// A key generated in memory and never written: a restart makes every
    /// stored secret unreadable.
    pub fn ephemeral() -> Result<SecretBox, SealError> {
        let mut key = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut key[..]).map_err(|_| SealError::Crypto)?;
        Self::from_bytes(&key[..], false)
    }

    /// A key of 32 bytes (from a key file or the configuration; see
    /// [`decode_key`]); `persistent` when it outlives this process.
    pub fn from_bytes(key: &[u8], persistent: bool) -> Result<SecretBox, SealError> {
        Ok(SecretBox {
            key: RandomizedNonceKey::new(&AES_256_GCM, key).map_err(|_| SealError::Crypto)?,
            key_id: key_id_of(key),
            persistent,
        })
    }

    /// Identifies the key; stored beside each sealed secret.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Whether secrets survive a restart.
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    fn aad(device_id: &str) -> Vec<u8> {
        let mut aad = AAD_PREFIX.to_vec();
        aad.extend_from_slice(device_id.as_bytes());
        aad
    }

    /// Seals a secret for a device: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, device_id: &str, secret: &OobSecret) -> Result<Vec<u8>, SealError> {
        let mut buf = secret.expose().as_bytes().to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(Self::aad(device_id)), &mut buf)
            .map_err(|_| SealError::Crypto)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens a sealed secret of a device.
    pub fn open(&self, device_id: &str, sealed: &[u8]) -> Result<OobSecret, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::WrongKey);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::WrongKey)?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(Self::aad(device_id)), &mut buf)
            .map_err(|_| SealError::WrongKey)?;
        let text = std::str::from_utf8(plain).map_err(|_| SealError::Corrupt)?;
        OobSecret::parse(text).map_err(|_| SealError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_binding_to_the_device() {
        let b = SecretBox::ephemeral().expect("key");
        let s = OobSecret::parse("correct horse").expect("secret");
        let sealed = b.seal("dev-1", &s).expect("seal");
        assert!(!sealed.windows(7).any(|w| w == b"correct"), "no plaintext");
        assert_eq!(b.open("dev-1", &sealed).expect("open"), s);
        assert!(matches!(b.open("dev-2", &sealed), Err(SealError::WrongKey)));
        let other = SecretBox::ephemeral().expect("key");
        assert!(matches!(
            other.open("dev-1", &sealed),
            Err(SealError::WrongKey)
        ));
        assert_ne!(b.key_id(), other.key_id());
        // Two seals of the same secret differ (random nonce).
        assert_ne!(sealed, b.seal("dev-1", &s).expect("seal"));
    }

    #[test]
    fn keys_must_be_32_bytes_and_are_told_apart() {
        assert!(decode_key("AAAA").is_err());
        let k = BASE64.encode([7u8; 32]);
        let bytes = decode_key(&k).expect("32 bytes");
        let a = SecretBox::from_bytes(&bytes, true).expect("key");
        let b = SecretBox::from_bytes(&bytes, true).expect("key");
        assert_eq!(a.key_id(), b.key_id(), "the same key has the same identity");
        assert!(a.is_persistent());
    }
}

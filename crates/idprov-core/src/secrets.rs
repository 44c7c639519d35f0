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
    /// Keys the idprov v2 salts of devices without a v2-only registration
    /// (a keyed hash of the device ID): derived from the sealing key, so
    /// replicas sharing it answer alike, and a restart of an ephemeral key,
    /// which forgets every registration, changes them too.
    decoy: aws_lc_rs::hmac::Key,
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
/// Associated data of a sealed idprov v2 record (w0 ‖ L), before the
/// device ID: a record never opens as a secret, nor the other way round.
const RECORD_AAD_PREFIX: &[u8] = b"idprov v2 record v1\0";

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
        use aws_lc_rs::hmac;
        let decoy = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key),
            b"idprov v2 salt key",
        );
        Ok(SecretBox {
            key: RandomizedNonceKey::new(&AES_256_GCM, key).map_err(|_| SealError::Crypto)?,
            key_id: key_id_of(key),
            persistent,
            decoy: hmac::Key::new(hmac::HMAC_SHA256, decoy.as_ref()),
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

    fn aad(prefix: &[u8], device_id: &str) -> Vec<u8> {
        let mut aad = prefix.to_vec();
        aad.extend_from_slice(device_id.as_bytes());
        aad
    }

    fn seal_bytes(&self, aad: Vec<u8>, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut buf = Zeroizing::new(plain.to_vec());
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(aad), &mut *buf)
            .map_err(|_| SealError::Crypto)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&buf);
        Ok(out)
    }

    fn open_bytes(&self, aad: Vec<u8>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::WrongKey);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::WrongKey)?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| SealError::WrongKey)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// Seals a secret for a device: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, device_id: &str, secret: &OobSecret) -> Result<Vec<u8>, SealError> {
        self.seal_bytes(Self::aad(AAD_PREFIX, device_id), secret.expose().as_bytes())
    }

    /// Opens a sealed secret of a device.
    pub fn open(&self, device_id: &str, sealed: &[u8]) -> Result<OobSecret, SealError> {
        let plain = self.open_bytes(Self::aad(AAD_PREFIX, device_id), sealed)?;
        let text = std::str::from_utf8(&plain).map_err(|_| SealError::Corrupt)?;
        OobSecret::parse(text).map_err(|_| SealError::Corrupt)
    }

    /// Seals a device's idprov v2 record (w0 ‖ L).
    pub fn seal_record(
        &self,
        device_id: &str,
        record: &[u8; idprov_proto::v2::RECORD_LEN],
    ) -> Result<Vec<u8>, SealError> {
        self.seal_bytes(Self::aad(RECORD_AAD_PREFIX, device_id), record)
    }

    /// Opens a device's sealed idprov v2 record.
    pub fn open_record(
        &self,
        device_id: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<[u8; idprov_proto::v2::RECORD_LEN]>, SealError> {
        let plain = self.open_bytes(Self::aad(RECORD_AAD_PREFIX, device_id), sealed)?;
        let mut record = Zeroizing::new([0u8; idprov_proto::v2::RECORD_LEN]);
        if plain.len() != record.len() {
            return Err(SealError::Corrupt);
        }
        record.copy_from_slice(&plain);
        Ok(record)
    }

    /// The idprov v2 verifier of a v2-only registration of `secret`: a
    /// random salt, PBKDF2 with `iterations`, the record sealed. The secret
    /// itself is kept in no form. (PBKDF2 runs here: call it off the async
    /// runtime's threads for large counts.)
    pub fn pake_verifier(
        &self,
        device_id: &str,
        secret: &OobSecret,
        iterations: u32,
    ) -> Result<idprov_store::PakeVerifier, SealError> {
        let mut salt = vec![0u8; idprov_proto::v2::SALT_LEN];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| SealError::Crypto)?;
        let params = idprov_proto::v2::KdfParams { salt, iterations };
        let record = idprov_proto::v2::derive(secret.expose().as_bytes(), device_id, &params)
            .map_err(|_| SealError::Crypto)?
            .record();
        Ok(idprov_store::PakeVerifier {
            sealed_record: self.seal_record(device_id, &record)?,
            salt: params.salt,
            iterations,
        })
    }

    /// The idprov v2 salt of a device that has no v2-only registration
    /// (an unknown device, or a default registration, whose record is
    /// derived from its sealed secret): a keyed hash of its ID, so a device
    /// ID's salt says nothing about whether it is registered.
    pub fn derived_salt(&self, device_id: &str) -> Vec<u8> {
        let tag = aws_lc_rs::hmac::sign(&self.decoy, device_id.as_bytes());
        tag.as_ref()[..idprov_proto::v2::SALT_LEN].to_vec()
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
    fn records_are_sealed_apart_from_secrets() {
        let b = SecretBox::ephemeral().expect("key");
        let record = [5u8; idprov_proto::v2::RECORD_LEN];
        let sealed = b.seal_record("dev-1", &record).expect("seal");
        assert_eq!(*b.open_record("dev-1", &sealed).expect("open"), record);
        assert!(b.open_record("dev-2", &sealed).is_err());
        assert!(b.open("dev-1", &sealed).is_err(), "a record is no secret");
        assert_eq!(b.derived_salt("dev-1"), b.derived_salt("dev-1"));
        assert_ne!(b.derived_salt("dev-1"), b.derived_salt("dev-2"));
        assert_eq!(b.derived_salt("dev-1").len(), 16);
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

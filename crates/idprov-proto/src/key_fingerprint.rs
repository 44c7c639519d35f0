//! Key fingerprints: how the waiting queue, approvals, rejections and
//! re-delivery name a device's key (SHA-256 of its DER
//! SubjectPublicKeyInfo, unpadded base64url).

use alloc::string::String;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The fingerprint of a public key: 43 characters of unpadded base64url of
/// the SHA-256 of its SubjectPublicKeyInfo. Kept as its text, the form
/// every table, URL and document carries.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct KeyFingerprint(String);

/// Why a text is not a key fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a key fingerprint: expected 43 characters of unpadded base64url (a SHA-256)")]
pub struct KeyFingerprintError;

impl KeyFingerprint {
    /// The fingerprint of a DER SubjectPublicKeyInfo.
    pub fn of_spki(spki_der: &[u8]) -> KeyFingerprint {
        KeyFingerprint(URL_SAFE_NO_PAD.encode(Sha256::digest(spki_der)))
    }

    /// Parses the canonical text strictly: exactly what
    /// [`KeyFingerprint::of_spki`] writes, nothing else.
    pub fn parse(text: &str) -> Result<KeyFingerprint, KeyFingerprintError> {
        let mut digest = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(text.as_bytes(), &mut digest) {
            // The decoder accepts non-canonical trailing bits; re-encoding
            // and comparing keeps one text per key.
            Ok(32) if URL_SAFE_NO_PAD.encode(digest) == text => {
                Ok(KeyFingerprint(String::from(text)))
            }
            _ => Err(KeyFingerprintError),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

checked_text!(KeyFingerprint, KeyFingerprintError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_text_parses() {
        let fp = KeyFingerprint::of_spki(b"spki");
        assert_eq!(fp.as_str().len(), 43);
        assert_eq!(KeyFingerprint::parse(fp.as_str()), Ok(fp.clone()));
        assert!(KeyFingerprint::parse("fp-1").is_err());
        assert!(KeyFingerprint::parse("").is_err());
        let padded = alloc::format!("{fp}=");
        assert!(KeyFingerprint::parse(&padded).is_err());
        // The same digest with the last character's unused bits set.
        let mut odd = String::from(&fp.as_str()[..42]);
        let last = fp.as_str().as_bytes()[42];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let v = alphabet.iter().position(|&c| c == last).unwrap();
        odd.push(char::from(alphabet[v ^ 1]));
        assert!(KeyFingerprint::parse(&odd).is_err());
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(serde_json::from_str::<KeyFingerprint>(&json).unwrap(), fp);
        assert!(serde_json::from_str::<KeyFingerprint>("\"fp-1\"").is_err());
    }
}

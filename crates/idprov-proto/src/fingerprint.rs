//! CA fingerprints (PROTOCOL.md §9): SHA-256 of the CA certificate's DER,
//! written as unpadded base64url; colon-separated hex is accepted on input.

use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A SHA-256 fingerprint of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

/// Why a string is not a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a SHA-256 fingerprint: expected 43 characters of unpadded base64url or 32 colon-separated hex bytes"
)]
pub struct FingerprintError;

impl Fingerprint {
    /// The fingerprint of `der`.
    pub fn of_der(der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Fingerprint(bytes)
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses unpadded base64url (the canonical form) or colon-separated hex.
    pub fn parse(s: &str) -> Result<Self, FingerprintError> {
        let s = s.trim();
        let bytes: Vec<u8> = if s.contains(':') {
            s.split(':')
                .map(|h| {
                    if h.len() == 2 {
                        u8::from_str_radix(h, 16).map_err(|_| FingerprintError)
                    } else {
                        Err(FingerprintError)
                    }
                })
                .collect::<Result<_, _>>()?
        } else {
            URL_SAFE_NO_PAD
                .decode(s.as_bytes())
                .map_err(|_| FingerprintError)?
        };
        let arr: [u8; 32] = bytes.try_into().map_err(|_| FingerprintError)?;
        Ok(Fingerprint(arr))
    }

    /// Colon-separated upper-case hex, as `openssl x509 -fingerprint` prints it.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(95);
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            out.push_str(&alloc::format!("{b:02X}"));
        }
        out
    }

    /// Constant-time equality (fingerprints gate trust decisions).
    pub fn ct_eq(&self, other: &Fingerprint) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl core::fmt::Display for Fingerprint {
    /// The canonical form: unpadded base64url.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl core::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn both_spellings_parse_to_the_same_value() {
        let fp = Fingerprint::of_der(b"certificate");
        let text = fp.to_string();
        assert_eq!(text.len(), 43);
        assert_eq!(Fingerprint::parse(&text), Ok(fp));
        assert_eq!(Fingerprint::parse(&fp.to_hex()), Ok(fp));
        assert_eq!(Fingerprint::parse(&fp.to_hex().to_lowercase()), Ok(fp));
        for bad in ["", "abc", "AA:BB", &text[1..], "zz:..."] {
            assert_eq!(Fingerprint::parse(bad), Err(FingerprintError), "{bad}");
        }
    }
}

//! HMAC-SHA256 signatures over canonical JSON (PROTOCOL.md §5).
//!
//! `signature = base64std(HMAC-SHA256(key, canonical JSON with "signature":""))`.
//! The key is the raw secret; a verifier also accepts SHA-256 of the secret
//! (the standard's prose), and the Go ≥ 1.22 escaping of `\b` and `\f`.
//! Comparison is constant-time (`Mac::verify_slice`).

use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::canonical::EscapeStyle;
use crate::messages::{ProvisionRequest, ProvisionResponse};

type HmacSha256 = Hmac<Sha256>;

/// How the HMAC key is derived from the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyVariant {
    /// The UTF-8 bytes of the secret (Go reference and the standard's appendix).
    RawSecret,
    /// SHA-256 of the secret (the standard's prose). Identical to
    /// `RawSecret` for secrets over 64 bytes, where HMAC hashes the key itself.
    Sha256OfSecret,
}

impl KeyVariant {
    /// Both variants, the preferred one first.
    pub const ALL: [KeyVariant; 2] = [KeyVariant::RawSecret, KeyVariant::Sha256OfSecret];

    /// A short name for logs and audit entries.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyVariant::RawSecret => "raw",
            KeyVariant::Sha256OfSecret => "sha256",
        }
    }
}

/// Which key variant and which escaping verified a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The key variant the peer used.
    pub variant: KeyVariant,
    /// The escaping the peer's JSON encoder used.
    pub style: EscapeStyle,
}

fn mac_for(secret: &[u8], variant: KeyVariant) -> HmacSha256 {
    let mac = match variant {
        KeyVariant::RawSecret => HmacSha256::new_from_slice(secret),
        KeyVariant::Sha256OfSecret => HmacSha256::new_from_slice(&Sha256::digest(secret)),
    };
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    mac.unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
}

/// The base64 (standard, padded) HMAC-SHA256 of `message` under `secret`.
pub fn sign_bytes(secret: &[u8], variant: KeyVariant, message: &[u8]) -> String {
    let mut mac = mac_for(secret, variant);
    mac.update(message);
    BASE64.encode(mac.finalize().into_bytes())
}

/// Checks `signature` (base64) over `message` in constant time.
pub fn verify_bytes(secret: &[u8], variant: KeyVariant, message: &[u8], signature: &str) -> bool {
    let Ok(tag) = BASE64.decode(signature.as_bytes()) else {
        return false;
    };
    let mut mac = mac_for(secret, variant);
    mac.update(message);
    mac.verify_slice(&tag).is_ok()
}

/// Tries every accepted (variant, escaping) pair; the Go ≥ 1.22 form is only
/// tried when it differs from the Go 1.19 form.
fn verify_any(
    secret: &[u8],
    signature: &str,
    short_escapes: bool,
    message: impl Fn(EscapeStyle) -> Vec<u8>,
) -> Option<Verified> {
    if signature.is_empty() {
        return None;
    }
    let styles: &[EscapeStyle] = if short_escapes {
        &[EscapeStyle::Go119, EscapeStyle::Go122]
    } else {
        &[EscapeStyle::Go119]
    };
    for &style in styles {
        let bytes = message(style);
        for variant in KeyVariant::ALL {
            if verify_bytes(secret, variant, &bytes, signature) {
                return Some(Verified { variant, style });
            }
        }
    }
    None
}

impl ProvisionRequest {
    /// Signs the request with `secret` (raw-secret key, Go 1.19 form, as the
    /// Go reference does) and stores the signature in it.
    pub fn sign(&mut self, secret: &[u8]) {
        self.signature = sign_bytes(
            secret,
            KeyVariant::RawSecret,
            &self.signing_bytes(EscapeStyle::Go119),
        );
    }

    /// Verifies the request's signature under `secret` in any accepted form.
    pub fn verify(&self, secret: &[u8]) -> Option<Verified> {
        verify_any(secret, &self.signature, self.has_short_escapes(), |s| {
            self.signing_bytes(s)
        })
    }
}

impl ProvisionResponse {
    /// Signs the response with `key` in the given variant (Go 1.19 form).
    /// The server uses the variant the request used, or the raw empty key.
    pub fn sign(&mut self, key: &[u8], variant: KeyVariant) {
        self.signature = sign_bytes(key, variant, &self.signing_bytes(EscapeStyle::Go119));
    }

    /// Signs the response like [`sign`](Self::sign) and returns its wire
    /// form, encoding the certificates once instead of twice: the signature
    /// is the last field, so the signed form is the signing bytes
    /// (`…,"signature":""}`) with the signature spliced in before the
    /// closing quote (base64 needs no escaping).
    pub fn signed_json(&mut self, key: &[u8], variant: KeyVariant) -> Vec<u8> {
        let mut bytes = self.signing_bytes(EscapeStyle::Go119);
        let signature = sign_bytes(key, variant, &bytes);
        debug_assert!(bytes.ends_with(b"\"signature\":\"\"}"));
        bytes.truncate(bytes.len() - 2);
        bytes.extend_from_slice(signature.as_bytes());
        bytes.extend_from_slice(b"\"}");
        self.signature = signature;
        bytes
    }

    /// Verifies the response's signature under `key` in any accepted form.
    pub fn verify(&self, key: &[u8]) -> Option<Verified> {
        verify_any(key, &self.signature, self.has_short_escapes(), |s| {
            self.signing_bytes(s)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_vector() {
        assert_eq!(
            sign_bytes(b"bob's secret", KeyVariant::RawSecret, b"hello world"),
            "2nsAxlqtiVlcO5O05ci2ZOxgkXa/EIS+NwvLuILO+mk="
        );
    }

    #[test]
    fn a_response_signed_in_one_pass_is_the_one_signed_then_encoded() {
        use crate::messages::{ProvisionResponse, ProvisionStatus};
        let response = ProvisionResponse {
            retry_sec: 43_200,
            status: ProvisionStatus::Approved,
            ca_cert: "-----BEGIN CERTIFICATE-----\nMIIB<&>\n-----END CERTIFICATE-----\n".into(),
            client_cert: "-----BEGIN CERTIFICATE-----\nMIIC\u{2028}\n-----END CERTIFICATE-----\n"
                .into(),
            signature: String::new(),
        };
        for variant in KeyVariant::ALL {
            let mut two_passes = response.clone();
            two_passes.sign(b"secret", variant);
            let mut one_pass = response.clone();
            let bytes = one_pass.signed_json(b"secret", variant);
            assert_eq!(bytes, two_passes.to_json());
            assert_eq!(one_pass, two_passes);
            assert!(one_pass.verify(b"secret").is_some());
        }
    }

    #[test]
    fn malformed_signatures_never_verify() {
        let msg = b"m";
        let good = sign_bytes(b"k", KeyVariant::RawSecret, msg);
        assert!(verify_bytes(b"k", KeyVariant::RawSecret, msg, &good));
        for bad in ["", "!!!", &good[..good.len() - 1], "AAAA"] {
            assert!(
                !verify_bytes(b"k", KeyVariant::RawSecret, msg, bad),
                "{bad}"
            );
        }
    }
}

//! Out-of-band secrets (PROTOCOL.md §4, §9).

use alloc::string::String;
use core::fmt;
use zeroize::Zeroize;

/// Longest accepted OOB secret, in bytes of UTF-8.
pub const MAX_SECRET_BYTES: usize = 256;

/// Below this many characters a secret is accepted with a warning: a captured
/// exchange lets an attacker guess a short secret offline (PROTOCOL.md §9).
pub const SHORT_SECRET_CHARS: usize = 10;

/// An OOB secret: 1–256 bytes of UTF-8 without control characters, never
/// trimmed. Its `Debug` output is redacted and its memory is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct OobSecret(String);

/// Why a string is not an OOB secret. The messages never repeat the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// `""` is not a secret.
    #[error("secret is empty")]
    Empty,
    /// More than [`MAX_SECRET_BYTES`] bytes.
    #[error("secret is longer than {MAX_SECRET_BYTES} bytes")]
    TooLong,
    /// A control character (U+0000–U+001F or U+007F) at this character position.
    #[error("secret contains a control character at position {0}")]
    ControlCharacter(usize),
}

impl OobSecret {
    /// Validates a secret.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        if s.is_empty() {
            return Err(SecretError::Empty);
        }
        if s.len() > MAX_SECRET_BYTES {
            return Err(SecretError::TooLong);
        }
        if let Some(pos) = s.chars().position(|c| c <= '\u{1f}' || c == '\u{7f}') {
            return Err(SecretError::ControlCharacter(pos));
        }
        Ok(OobSecret(String::from(s)))
    }

    /// True when the secret is short enough to be guessed offline.
    pub fn is_short(&self) -> bool {
        self.0.chars().count() < SHORT_SECRET_CHARS
    }

    /// The secret's bytes: the HMAC key of PROTOCOL.md §5.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Crockford's base32 alphabet: no I, L, O or U, so a secret read off a
/// label cannot be mistyped into another valid one.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Characters of a generated secret: 26 × 5 bits = 130 bits (PROTOCOL.md §9).
pub const GENERATED_SECRET_CHARS: usize = 26;

impl OobSecret {
    /// A strong secret from 26 random bytes (the caller's CSPRNG): 26
    /// Crockford base32 characters. Each byte contributes its low 5 bits, an
    /// unbiased choice because 256 is a multiple of 32.
    pub fn generate(random: &[u8; GENERATED_SECRET_CHARS]) -> OobSecret {
        let text: String = random
            .iter()
            .map(|b| char::from(CROCKFORD[usize::from(b & 0x1f)]))
            .collect();
        OobSecret(text)
    }
}

impl fmt::Debug for OobSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OobSecret(<redacted>)")
    }
}

impl Drop for OobSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn validation() {
        assert_eq!(OobSecret::parse(""), Err(SecretError::Empty));
        assert_eq!(
            OobSecret::parse(&"x".repeat(257)),
            Err(SecretError::TooLong)
        );
        assert!(OobSecret::parse(&"x".repeat(256)).is_ok());
        assert_eq!(
            OobSecret::parse("ab\ncd"),
            Err(SecretError::ControlCharacter(2))
        );
        assert_eq!(
            OobSecret::parse("\u{7f}"),
            Err(SecretError::ControlCharacter(0))
        );
        // Spaces are kept, never trimmed.
        assert_eq!(OobSecret::parse(" a ").expect("valid").expose(), " a ");
        assert!(OobSecret::parse("short").expect("valid").is_short());
        assert!(!OobSecret::parse("0123456789").expect("valid").is_short());
    }

    #[test]
    fn generated_secrets_use_crockford_base32() {
        let s = OobSecret::generate(&[0xff; GENERATED_SECRET_CHARS]);
        assert_eq!(s.expose(), "Z".repeat(26));
        let mut bytes = [0u8; GENERATED_SECRET_CHARS];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        let s = OobSecret::generate(&bytes);
        assert_eq!(s.expose(), "0123456789ABCDEFGHJKMNPQRS");
        assert!(!s.is_short());
    }

    #[test]
    fn debug_is_redacted() {
        let s = OobSecret::parse("hunter2-hunter2").expect("valid");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}

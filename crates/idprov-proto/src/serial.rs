//! Certificate serial numbers as the registry, the CRL and the admin API
//! write them: the serial's DER content octets in lower-case hex.

use alloc::string::String;
use core::fmt;

/// Most content octets a serial has: RFC 5280 §4.1.2.2 allows 20, and a
/// positive serial whose top bit is set carries one more leading zero.
const MAX_OCTETS: usize = 21;

/// A certificate serial number: 1 to 21 octets in lower-case hex (an even
/// number of digits). Input in upper case is accepted and lowered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "std", derive(serde::Serialize))]
#[cfg_attr(feature = "std", serde(transparent))]
pub struct SerialNumber(String);

/// Why a text is not a serial number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialError {
    /// No digits.
    Empty,
    /// A character that is not a hex digit.
    NotHex,
    /// An odd number of digits (a serial is whole octets).
    OddLength,
    /// More than 21 octets.
    TooLong,
}

impl fmt::Display for SerialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SerialError::Empty => "empty; a serial number is hex digits",
            SerialError::NotHex => "not a serial number: hex digits only (0-9, a-f)",
            SerialError::OddLength => "not a serial number: an even number of hex digits",
            SerialError::TooLong => "not a serial number: at most 42 hex digits (21 octets)",
        })
    }
}

impl SerialNumber {
    /// Parses a serial in hex, strictly.
    pub fn parse(text: &str) -> Result<SerialNumber, SerialError> {
        if text.is_empty() {
            return Err(SerialError::Empty);
        }
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SerialError::NotHex);
        }
        if !text.len().is_multiple_of(2) {
            return Err(SerialError::OddLength);
        }
        if text.len() > 2 * MAX_OCTETS {
            return Err(SerialError::TooLong);
        }
        Ok(SerialNumber(text.to_ascii_lowercase()))
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<SerialNumber> for String {
    fn from(s: SerialNumber) -> String {
        s.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_parse_strictly() {
        assert_eq!(SerialNumber::parse("00AB12").unwrap().as_str(), "00ab12");
        assert_eq!(SerialNumber::parse(""), Err(SerialError::Empty));
        assert_eq!(SerialNumber::parse("ab 1"), Err(SerialError::NotHex));
        assert_eq!(SerialNumber::parse("0xab"), Err(SerialError::NotHex));
        assert_eq!(SerialNumber::parse("abc"), Err(SerialError::OddLength));
        assert!(SerialNumber::parse(&"ab".repeat(21)).is_ok());
        assert_eq!(
            SerialNumber::parse(&"ab".repeat(22)),
            Err(SerialError::TooLong)
        );
    }
}

//! Certificate serial numbers as the registry, the CRL and the admin API
//! write them: the serial's DER content octets in lower-case hex.

use alloc::string::String;
use core::fmt;

/// Most content octets a serial has: RFC 5280 §4.1.2.2 allows 20, and a
/// positive serial whose top bit is set carries one more leading zero.
const MAX_OCTETS: usize = 21;

/// A certificate serial number: 1 to 21 octets in lower-case hex (an even
/// number of digits). Input in upper case is accepted and lowered.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
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

    /// The serial whose DER content octets are `octets`, written the one
    /// way a serial is always written: leading zero octets dropped (a
    /// serial of only zeros keeps one), so a serial read back from a
    /// certificate equals the one recorded when it was issued.
    pub fn from_octets(octets: &[u8]) -> Result<SerialNumber, SerialError> {
        let trimmed = match octets.iter().position(|&b| b != 0) {
            Some(i) => &octets[i..],
            None => &octets[octets.len().saturating_sub(1)..],
        };
        if trimmed.is_empty() {
            return Err(SerialError::Empty);
        }
        if trimmed.len() > MAX_OCTETS {
            return Err(SerialError::TooLong);
        }
        Ok(SerialNumber(hex::encode(trimmed)))
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The content octets.
    pub fn octets(&self) -> alloc::vec::Vec<u8> {
        // The text was checked on parsing: even length, hex digits only.
        hex::decode(&self.0).unwrap_or_default()
    }
}

checked_text!(SerialNumber, SerialError);

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

    #[test]
    fn octets_print_one_way_and_read_back() {
        let s = SerialNumber::from_octets(&[0, 0x8f, 0x01]).unwrap();
        assert_eq!(s, "8f01");
        assert_eq!(s.octets(), [0x8f, 0x01]);
        assert_eq!(SerialNumber::from_octets(&[0, 0]).unwrap(), "00");
        assert_eq!(SerialNumber::from_octets(&[]), Err(SerialError::Empty));
    }

    #[test]
    fn json_is_checked_text() {
        let s: SerialNumber = serde_json::from_str("\"AB01\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"ab01\"");
        assert!(serde_json::from_str::<SerialNumber>("\"xyz\"").is_err());
    }
}

//! Device identifiers (PROTOCOL.md §7).

use alloc::string::String;
use core::fmt;

/// Longest accepted device ID, in characters (all of them ASCII).
pub const MAX_DEVICE_ID_LEN: usize = 128;

/// The syntax [`DeviceId::parse`] accepts, as an ECMA-262 regular
/// expression (for schemas; the parser does not use it).
pub const DEVICE_ID_PATTERN: &str = "^[A-Za-z0-9_:][A-Za-z0-9._:-]{0,127}$";

/// A device ID that passed the strict syntax of PROTOCOL.md §7: 1–128
/// characters of `A–Z a–z 0–9 . _ : -`, not starting with `.` or `-`.
///
/// The syntax keeps device IDs safe to use in URL paths, file names, log lines
/// and certificate subjects (the Go reference allowed path traversal through
/// them). IDs are case-sensitive and compared as bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(String);

/// Why a string is not a device ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdError {
    /// The ID is the empty string.
    #[error("device ID is empty")]
    Empty,
    /// The ID is longer than [`MAX_DEVICE_ID_LEN`] characters.
    #[error("device ID is longer than {MAX_DEVICE_ID_LEN} characters")]
    TooLong,
    /// The ID starts with `.` or `-`.
    #[error("device ID must not start with '.' or '-'")]
    BadStart,
    /// The ID holds a character outside `A–Z a–z 0–9 . _ : -`.
    #[error("device ID contains {0:?} at position {1}; allowed are A-Z a-z 0-9 . _ : -")]
    BadCharacter(char, usize),
}

impl DeviceId {
    /// Parses a device ID, refusing anything outside the §7 syntax.
    pub fn parse(s: &str) -> Result<Self, DeviceIdError> {
        if s.is_empty() {
            return Err(DeviceIdError::Empty);
        }
        if let Some((pos, c)) = s
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(DeviceIdError::BadCharacter(c, pos));
        }
        // Every character is ASCII from here on, so bytes = characters.
        if s.len() > MAX_DEVICE_ID_LEN {
            return Err(DeviceIdError::TooLong);
        }
        if s.starts_with(['.', '-']) {
            return Err(DeviceIdError::BadStart);
        }
        Ok(DeviceId(String::from(s)))
    }

    /// The ID as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the ID into its string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({:?})", self.0)
    }
}

impl AsRef<str> for DeviceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl core::str::FromStr for DeviceId {
    type Err = DeviceIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeviceId::parse(s)
    }
}

impl serde::Serialize for DeviceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        DeviceId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A string with [`DEVICE_ID_PATTERN`] (the OpenAPI document's path
/// parameters).
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for DeviceId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(DEVICE_ID_PATTERN))
            .description(Some(
                "1-128 characters of A-Z a-z 0-9 . _ : -, not starting with . or - (PROTOCOL.md §7)",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for DeviceId {
    fn name() -> alloc::borrow::Cow<'static, str> {
        alloc::borrow::Cow::Borrowed("DeviceId")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["a", "device1", "AA:BB:CC:DD:EE:FF", "x.y_z-1", "0", "_lead"] {
            assert_eq!(DeviceId::parse(ok).expect(ok).as_str(), ok);
        }
        let longest = "a".repeat(MAX_DEVICE_ID_LEN);
        assert!(DeviceId::parse(&longest).is_ok());
    }

    #[test]
    fn refuses_everything_else() {
        let too_long = "a".repeat(MAX_DEVICE_ID_LEN + 1);
        let cases: &[(&str, DeviceIdError)] = &[
            ("", DeviceIdError::Empty),
            ("../x", DeviceIdError::BadCharacter('/', 2)),
            (".hidden", DeviceIdError::BadStart),
            ("-flag", DeviceIdError::BadStart),
            ("a b", DeviceIdError::BadCharacter(' ', 1)),
            ("nul\0", DeviceIdError::BadCharacter('\0', 3)),
            ("é", DeviceIdError::BadCharacter('é', 0)),
            ("a/b", DeviceIdError::BadCharacter('/', 1)),
            (&too_long, DeviceIdError::TooLong),
        ];
        for (input, want) in cases {
            assert_eq!(DeviceId::parse(input).unwrap_err(), *want, "{input:?}");
        }
        // The message never carries the raw control character.
        let msg = DeviceId::parse("x\u{1b}[31m").unwrap_err().to_string();
        assert!(!msg.contains('\u{1b}'), "{msg}");
    }
}

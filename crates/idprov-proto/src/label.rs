//! Label URIs (PROTOCOL.md §9): what a QR code on a device holds.
//!
//! `idprov:1?id=<percent-encoded device ID>&s=<percent-encoded secret>&ca=<fingerprint>`,
//! `ca` optional; `idprov:2?…` (same parameters) says the device speaks
//! idprov v2 (PROTOCOL.md §11) and must never fall back to v1.

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::device_id::{DeviceId, DeviceIdError};
use crate::fingerprint::Fingerprint;
use crate::secret::{OobSecret, SecretError};

/// Characters left as they are in label values: unreserved URI characters.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A parsed label.
#[derive(Clone, PartialEq, Eq)]
pub struct Label {
    /// The protocol the device speaks: 1, or 2 (v2 only, no fallback).
    pub version: u8,
    /// The device ID.
    pub device_id: DeviceId,
    /// The OOB secret.
    pub secret: OobSecret,
    /// The CA fingerprint, when the label carries one.
    pub ca: Option<Fingerprint>,
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Label")
            .field("version", &self.version)
            .field("device_id", &self.device_id)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

/// Why a label URI was refused. Never repeats the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// Not `idprov:1?…` or `idprov:2?…`.
    #[error("a label starts with \"idprov:1?\" or \"idprov:2?\"")]
    Scheme,
    /// A parameter appears twice, or is not `key=value`.
    #[error("label parameter {0:?} is malformed or repeated")]
    Parameter(String),
    /// A required parameter is missing.
    #[error("label has no {0:?} parameter")]
    Missing(&'static str),
    /// A value is not valid percent-encoded UTF-8.
    #[error("label parameter {0:?} is not valid percent-encoded UTF-8")]
    Encoding(&'static str),
    /// The device ID is invalid.
    #[error("label device ID: {0}")]
    DeviceId(DeviceIdError),
    /// The secret is invalid.
    #[error("label secret: {0}")]
    Secret(SecretError),
    /// The fingerprint is invalid.
    #[error("label CA fingerprint is not a SHA-256 fingerprint")]
    Fingerprint,
}

impl Label {
    /// Parses a label URI strictly; unknown parameters are ignored (later
    /// label versions may add some).
    pub fn parse(uri: &str) -> Result<Label, LabelError> {
        let uri = uri.trim();
        let (version, query) = if let Some(q) = uri.strip_prefix("idprov:1?") {
            (1, q)
        } else if let Some(q) = uri.strip_prefix("idprov:2?") {
            (2, q)
        } else {
            return Err(LabelError::Scheme);
        };
        let (mut id, mut secret, mut ca) = (None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| LabelError::Parameter(safe_name(pair)))?;
            let slot = match key {
                "id" => &mut id,
                "s" => &mut secret,
                "ca" => &mut ca,
                _ => continue,
            };
            if slot.is_some() {
                return Err(LabelError::Parameter(key.to_string()));
            }
            *slot = Some(value);
        }
        let decode = |name: &'static str, v: &str| -> Result<String, LabelError> {
            percent_decode_str(v)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| LabelError::Encoding(name))
        };
        let id = decode("id", id.ok_or(LabelError::Missing("id"))?)?;
        let secret = decode("s", secret.ok_or(LabelError::Missing("s"))?)?;
        Ok(Label {
            version,
            device_id: DeviceId::parse(&id).map_err(LabelError::DeviceId)?,
            secret: OobSecret::parse(&secret).map_err(LabelError::Secret)?,
            ca: match ca {
                None | Some("") => None,
                Some(fp) => Some(
                    Fingerprint::parse(&decode("ca", fp)?).map_err(|_| LabelError::Fingerprint)?,
                ),
            },
        })
    }

    /// The URI for a QR code.
    pub fn to_uri(&self) -> String {
        let mut uri = format!(
            "idprov:{}?id={}&s={}",
            self.version,
            utf8_percent_encode(self.device_id.as_str(), VALUE),
            utf8_percent_encode(self.secret.expose(), VALUE)
        );
        if let Some(fp) = &self.ca {
            uri.push_str(&format!("&ca={fp}"));
        }
        uri
    }
}

/// A parameter name for an error message, cut short and without controls.
fn safe_name(s: &str) -> String {
    s.split('=')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_awkward_characters() {
        let label = Label {
            version: 1,
            device_id: DeviceId::parse("AA:BB:CC:dd.1").expect("id"),
            secret: OobSecret::parse("p&ss=w ord/ü%").expect("secret"),
            ca: Some(Fingerprint::of_der(b"ca")),
        };
        let uri = label.to_uri();
        assert!(
            uri.starts_with("idprov:1?id=AA%3ABB%3ACC%3Add.1&s=p%26ss%3Dw%20ord%2F%C3%BC%25&ca=")
        );
        assert_eq!(Label::parse(&uri).expect("parse"), label);
        let no_ca = Label::parse("idprov:1?id=d1&s=secret-1&x=ignored").expect("parse");
        assert_eq!(no_ca.ca, None);
        let v2 = Label::parse("idprov:2?id=d1&s=123456").expect("parse");
        assert_eq!(v2.version, 2);
        assert_eq!(v2.to_uri(), "idprov:2?id=d1&s=123456");
    }

    #[test]
    fn refusals() {
        let cases: &[(&str, LabelError)] = &[
            ("https://x", LabelError::Scheme),
            ("idprov:3?id=a&s=b", LabelError::Scheme),
            ("idprov:1?s=secret", LabelError::Missing("id")),
            ("idprov:1?id=a", LabelError::Missing("s")),
            ("idprov:1?id=a&id=b&s=c", LabelError::Parameter("id".into())),
            ("idprov:1?id=a&s=%FF", LabelError::Encoding("s")),
            (
                "idprov:1?id=..%2F&s=x",
                LabelError::DeviceId(DeviceIdError::BadCharacter('/', 2)),
            ),
            ("idprov:1?id=a&s=", LabelError::Secret(SecretError::Empty)),
            ("idprov:1?id=a&s=b&ca=nope", LabelError::Fingerprint),
            ("idprov:1?id=a&s", LabelError::Parameter("s".into())),
        ];
        for (uri, want) in cases {
            assert_eq!(Label::parse(uri).unwrap_err(), *want, "{uri}");
        }
        let err = Label::parse("idprov:1?id=a&s=%0Asecret")
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("secret") || err.contains("label secret"),
            "{err}"
        );
    }
}

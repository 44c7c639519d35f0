//! The idprov v1 messages (PROTOCOL.md §4), with their exact key names and
//! order, and their strict parsers.
//!
//! The structs hold the wire strings as they are: validating device IDs, keys
//! and addresses is the server's job, and signatures are computed over the
//! strings exactly as parsed (§5).

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::canonical::{EscapeStyle, ObjectWriter};
use crate::json::{MessageError, Object};

/// The protocol version this crate speaks, as the directory states it.
pub const PROTOCOL_VERSION: &str = "1";

/// Relative path of the directory endpoint.
pub const DIRECTORY_PATH: &str = "/idprov/directory";
/// Relative path of the OOB secret endpoint.
pub const OOB_SECRET_PATH: &str = "/idprov/oobsecret";
/// Relative path of the provisioning request endpoint.
pub const PROVISION_REQUEST_PATH: &str = "/idprov/provreq";
/// Relative path template of the status endpoint.
pub const STATUS_PATH_TEMPLATE: &str = "/idprov/status/{deviceID}";
/// Prefix of the status endpoint, followed by the device ID.
pub const STATUS_PATH_PREFIX: &str = "/idprov/status/";

/// The outcome of a provisioning request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ProvisionStatus {
    /// A certificate was issued (or re-delivered).
    Approved,
    /// Ask again after `retrySec`.
    Waiting,
    /// Refused: wrong secret, or an administrator rejected the request.
    Rejected,
}

impl ProvisionStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ProvisionStatus::Approved => "Approved",
            ProvisionStatus::Waiting => "Waiting",
            ProvisionStatus::Rejected => "Rejected",
        }
    }

    /// Parses the spelling without regard to case (query strings, command
    /// lines; the wire is case-sensitive: [`ProvisionStatus::parse`]).
    pub fn parse_any_case(s: &str) -> Option<Self> {
        [
            ProvisionStatus::Approved,
            ProvisionStatus::Waiting,
            ProvisionStatus::Rejected,
        ]
        .into_iter()
        .find(|v| v.as_str().eq_ignore_ascii_case(s))
    }

    /// Parses the wire spelling (case-sensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Approved" => Some(ProvisionStatus::Approved),
            "Waiting" => Some(ProvisionStatus::Waiting),
            "Rejected" => Some(ProvisionStatus::Rejected),
            _ => None,
        }
    }
}

impl serde::Serialize for ProvisionStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ProvisionStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <alloc::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        ProvisionStatus::parse(&s)
            .ok_or_else(|| serde::de::Error::custom("expected Approved, Waiting or Rejected"))
    }
}

impl core::fmt::Display for ProvisionStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /idprov/provreq` body:
/// `{"deviceID","ip","mac","publicKeyPEM","signature"}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvisionRequest {
    /// The device ID as sent (the server checks its syntax).
    #[cfg_attr(feature = "openapi", schema(rename = "deviceID"))]
    pub device_id: String,
    /// Free text the device claims as its address; never used to authorize.
    #[cfg_attr(feature = "openapi", schema(max_length = 255))]
    pub ip: String,
    /// Free text the device claims as its MAC address (may be absent or
    /// `null`).
    #[cfg_attr(
        feature = "openapi",
        schema(required = false, nullable, max_length = 255)
    )]
    pub mac: String,
    /// The device's public key, PKIX PEM: ECDSA P-256/P-384, Ed25519, RSA
    /// 2048-4096.
    #[cfg_attr(feature = "openapi", schema(rename = "publicKeyPEM"))]
    pub public_key_pem: String,
    /// Base64 HMAC-SHA256 over the canonical form with `"signature":""`
    /// (may be absent or `null`).
    #[cfg_attr(feature = "openapi", schema(required = false, nullable))]
    pub signature: String,
}

impl ProvisionRequest {
    /// Parses a request body strictly: `deviceID`, `ip` and `publicKeyPEM`
    /// are required strings; `mac` and `signature` may be absent or `null`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, MessageError> {
        let mut o = Object::parse(bytes)?;
        Ok(ProvisionRequest {
            device_id: o.required_string("deviceID")?,
            ip: o.required_string("ip")?,
            mac: o.optional_string("mac")?,
            public_key_pem: o.required_string("publicKeyPEM")?,
            signature: o.optional_string("signature")?,
        })
    }

    /// Encodes the request in Go's form with the signature it carries.
    pub fn to_json(&self) -> Vec<u8> {
        self.encode(self.signature.as_bytes(), EscapeStyle::Go119)
    }

    /// The bytes the signature covers: the canonical form with `"signature":""`.
    pub fn signing_bytes(&self, style: EscapeStyle) -> Vec<u8> {
        self.encode(b"", style)
    }

    /// True when the Go ≥ 1.22 form differs from the Go 1.19 form.
    pub fn has_short_escapes(&self) -> bool {
        [&self.device_id, &self.ip, &self.mac, &self.public_key_pem]
            .iter()
            .any(|s| has_short_escape(s.as_bytes()))
    }

    fn encode(&self, signature: &[u8], style: EscapeStyle) -> Vec<u8> {
        encode_request(
            RequestFields {
                device_id: self.device_id.as_bytes(),
                ip: self.ip.as_bytes(),
                mac: self.mac.as_bytes(),
                public_key_pem: self.public_key_pem.as_bytes(),
            },
            signature,
            style,
        )
    }
}

/// The fields of a provisioning request as raw byte strings, for encoding
/// inputs a Rust `String` cannot hold (invalid UTF-8), as Go can.
#[derive(Debug, Clone, Copy)]
pub struct RequestFields<'a> {
    /// `deviceID`
    pub device_id: &'a [u8],
    /// `ip`
    pub ip: &'a [u8],
    /// `mac`
    pub mac: &'a [u8],
    /// `publicKeyPEM`
    pub public_key_pem: &'a [u8],
}

/// Encodes a provisioning request exactly as Go 1.19 (or 1.22) marshals it.
pub fn encode_request(fields: RequestFields<'_>, signature: &[u8], style: EscapeStyle) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        96 + fields.device_id.len() + fields.public_key_pem.len() + signature.len(),
    );
    let mut w = ObjectWriter::new(&mut out, style);
    w.string("deviceID", fields.device_id)
        .string("ip", fields.ip)
        .string("mac", fields.mac)
        .string("publicKeyPEM", fields.public_key_pem)
        .string("signature", signature);
    w.finish();
    out
}

/// The fields of a provisioning response as raw byte strings.
#[derive(Debug, Clone, Copy)]
pub struct ResponseFields<'a> {
    /// `retrySec`, left out when 0.
    pub retry_sec: i64,
    /// `status`
    pub status: &'a [u8],
    /// `caCert`
    pub ca_cert: &'a [u8],
    /// `clientCert`
    pub client_cert: &'a [u8],
}

/// Encodes a provisioning response exactly as Go 1.19 (or 1.22) marshals it.
pub fn encode_response(
    fields: ResponseFields<'_>,
    signature: &[u8],
    style: EscapeStyle,
) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(96 + fields.ca_cert.len() + fields.client_cert.len() + signature.len());
    let mut w = ObjectWriter::new(&mut out, style);
    if fields.retry_sec != 0 {
        w.int("retrySec", fields.retry_sec);
    }
    w.string("status", fields.status)
        .string("caCert", fields.ca_cert)
        .string("clientCert", fields.client_cert)
        .string("signature", signature);
    w.finish();
    out
}

/// The provisioning response:
/// `{"retrySec","status","caCert","clientCert","signature"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(rename_all = "camelCase"))]
pub struct ProvisionResponse {
    /// Approved: the recommended renewal interval; Waiting: when to ask
    /// again; Rejected: when another attempt counts. Omitted when 0.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub retry_sec: i64,
    /// The outcome.
    pub status: ProvisionStatus,
    /// The issuing CA and its chain, plain PEM.
    pub ca_cert: String,
    /// The issued leaf and any intermediates, plain PEM; `""` unless Approved.
    pub client_cert: String,
    /// Base64 HMAC (Approved only), `""` otherwise.
    pub signature: String,
}

impl ProvisionResponse {
    /// Parses a response strictly (the client side).
    pub fn from_json(bytes: &[u8]) -> Result<Self, MessageError> {
        let mut o = Object::parse(bytes)?;
        let retry_sec = o.optional_int("retrySec")?;
        let status_text = o.required_string("status")?;
        let status = ProvisionStatus::parse(&status_text).ok_or_else(|| {
            MessageError::Invalid(
                "status",
                "must be \"Approved\", \"Waiting\" or \"Rejected\"".to_string(),
            )
        })?;
        Ok(ProvisionResponse {
            retry_sec,
            status,
            ca_cert: o.optional_string("caCert")?,
            client_cert: o.optional_string("clientCert")?,
            signature: o.optional_string("signature")?,
        })
    }

    /// Encodes the response in Go's form with the signature it carries.
    pub fn to_json(&self) -> Vec<u8> {
        self.encode(self.signature.as_bytes(), EscapeStyle::Go119)
    }

    /// The bytes the signature covers: the canonical form with `"signature":""`.
    pub fn signing_bytes(&self, style: EscapeStyle) -> Vec<u8> {
        self.encode(b"", style)
    }

    /// True when the Go ≥ 1.22 form differs from the Go 1.19 form.
    pub fn has_short_escapes(&self) -> bool {
        [&self.ca_cert, &self.client_cert]
            .iter()
            .any(|s| has_short_escape(s.as_bytes()))
    }

    fn encode(&self, signature: &[u8], style: EscapeStyle) -> Vec<u8> {
        encode_response(
            ResponseFields {
                retry_sec: self.retry_sec,
                status: self.status.as_str().as_bytes(),
                ca_cert: self.ca_cert.as_bytes(),
                client_cert: self.client_cert.as_bytes(),
            },
            signature,
            style,
        )
    }
}

fn has_short_escape(s: &[u8]) -> bool {
    s.iter().any(|&b| b == 0x08 || b == 0x0c)
}

/// `POST /idprov/oobsecret` body: `{"deviceID","oobSecret","validUntil"}`.
#[derive(Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(as = OobSecret, rename_all = "camelCase")
)]
pub struct OobSecretMessage {
    /// The device ID as sent.
    #[cfg_attr(feature = "openapi", schema(rename = "deviceID"))]
    pub device_id: String,
    /// The secret as sent: 1-256 bytes of UTF-8 without control
    /// characters, never trimmed (validated by the server, never logged).
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub oob_secret: String,
    /// RFC 3339, or `""` (or absent) for the default lifespan (3 days).
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub valid_until: String,
    /// (ext) Register for idprov v2 only: the server keeps the SPAKE2+
    /// verifier and no form of the secret, so v1 can never use it
    /// (PROTOCOL.md §11.1). Written only when true.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub pake_only: bool,
}

impl core::fmt::Debug for OobSecretMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OobSecretMessage")
            .field("device_id", &self.device_id)
            .field("oob_secret", &"<redacted>")
            .field("valid_until", &self.valid_until)
            .field("pake_only", &self.pake_only)
            .finish()
    }
}

impl OobSecretMessage {
    /// Parses one secret object strictly.
    pub fn from_json(bytes: &[u8]) -> Result<Self, MessageError> {
        Self::from_object(Object::parse(bytes)?)
    }

    /// Reads a secret from an already-parsed JSON value (an array element).
    pub fn from_value(value: serde_json::Value) -> Result<Self, MessageError> {
        Self::from_object(Object::from_value(value)?)
    }

    fn from_object(mut o: Object) -> Result<Self, MessageError> {
        Ok(OobSecretMessage {
            device_id: o.required_string("deviceID")?,
            oob_secret: o.required_string("oobSecret")?,
            valid_until: o.optional_string("validUntil")?,
            pake_only: o.optional_bool("pakeOnly")?,
        })
    }

    /// Encodes the message in Go's form.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = ObjectWriter::new(&mut out, EscapeStyle::Go119);
        w.string("deviceID", self.device_id.as_bytes())
            .string("oobSecret", self.oob_secret.as_bytes())
            .string("validUntil", self.valid_until.as_bytes());
        if self.pake_only {
            w.bool("pakeOnly", true);
        }
        w.finish();
        out
    }
}

/// The endpoint table of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(rename_all = "camelCase"))]
pub struct Endpoints {
    /// The directory's own path.
    pub directory: String,
    /// The status endpoint, with the `{deviceID}` placeholder.
    pub status: String,
    /// Where OOB secrets are registered.
    pub post_oob_secret: String,
    /// Where devices send provisioning requests.
    pub post_provision_request: String,
    /// (ext) idprov v2: where a device asks for its KDF parameters; `""`
    /// (and left out of the JSON) when v2 is not offered.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub pake_params: String,
    /// (ext) idprov v2: where a device sends `shareP`.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub pake_start: String,
    /// (ext) idprov v2: where a device sends `confirmP` and its request.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub pake_finish: String,
}

impl Default for Endpoints {
    /// The standard relative paths (the Go client appends them to the base URL).
    fn default() -> Self {
        Endpoints {
            directory: DIRECTORY_PATH.to_string(),
            status: STATUS_PATH_TEMPLATE.to_string(),
            post_oob_secret: OOB_SECRET_PATH.to_string(),
            post_provision_request: PROVISION_REQUEST_PATH.to_string(),
            pake_params: String::new(),
            pake_start: String::new(),
            pake_finish: String::new(),
        }
    }
}

/// `GET /idprov/directory`:
/// `{"endpoints":{…},"caCert":"<base64 of PEM>","version":"1","services":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(rename_all = "camelCase"))]
pub struct Directory {
    /// Where the other endpoints are.
    pub endpoints: Endpoints,
    /// The CA as it appears on the wire: standard padded base64 of the CA
    /// chain's PEM text (what we send), or plain PEM, or `""` (what peers
    /// may send).
    pub ca_cert: String,
    /// The protocol version, `"1"`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^1$"))]
    pub version: String,
    /// Services that accept the issued certificates, name → URL.
    pub services: BTreeMap<String, String>,
    /// (ext) idprov v2: the SPAKE2+ suite offered (PROTOCOL.md §11), `""`
    /// (and left out of the JSON) when v2 is not offered.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub pake: String,
}

/// Why the CA in a directory could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryCaError {
    /// Neither PEM nor base64 of PEM.
    #[error("caCert is neither PEM nor base64-encoded PEM")]
    Unreadable,
}

impl Directory {
    /// The directory a server sends: standard endpoints and the CA chain PEM
    /// encoded as standard padded base64 (compat: Go's `[]byte`).
    pub fn new(ca_chain_pem: &str, services: BTreeMap<String, String>) -> Self {
        Directory {
            endpoints: Endpoints::default(),
            ca_cert: BASE64.encode(ca_chain_pem.as_bytes()),
            version: PROTOCOL_VERSION.to_string(),
            services,
            pake: String::new(),
        }
    }

    /// The same directory offering idprov v2 (PROTOCOL.md §11).
    pub fn with_v2(mut self) -> Self {
        self.endpoints.pake_params = crate::v2::PARAMS_PATH.to_string();
        self.endpoints.pake_start = crate::v2::START_PATH.to_string();
        self.endpoints.pake_finish = crate::v2::FINISH_PATH.to_string();
        self.pake = crate::v2::SUITE.to_string();
        self
    }

    /// Parses a directory leniently in encodings (relative or absolute
    /// endpoints, `caCert` as base64, PEM, `""` or `null`) but strictly in
    /// structure (types, duplicate top-level keys).
    pub fn from_json(bytes: &[u8]) -> Result<Self, MessageError> {
        let mut o = Object::parse(bytes)?;
        let mut e = o.required_object("endpoints")?;
        let endpoints = Endpoints {
            directory: e.optional_string("directory")?,
            status: e.optional_string("status")?,
            post_oob_secret: e.optional_string("postOobSecret")?,
            post_provision_request: e.required_string("postProvisionRequest")?,
            pake_params: e.optional_string("pakeParams")?,
            pake_start: e.optional_string("pakeStart")?,
            pake_finish: e.optional_string("pakeFinish")?,
        };
        Ok(Directory {
            endpoints,
            ca_cert: o.optional_string("caCert")?,
            version: o.optional_string("version")?,
            services: o.optional_string_map("services")?,
            pake: o.optional_string("pake")?,
        })
    }

    /// The CA chain PEM, whichever way the server encoded it; `None` when the
    /// server sent none.
    pub fn ca_pem(&self) -> Result<Option<String>, DirectoryCaError> {
        let text = self.ca_cert.trim();
        if text.is_empty() {
            return Ok(None);
        }
        if text.starts_with("-----BEGIN") {
            return Ok(Some(self.ca_cert.clone()));
        }
        let bytes = BASE64
            .decode(text)
            .map_err(|_| DirectoryCaError::Unreadable)?;
        let pem = String::from_utf8(bytes).map_err(|_| DirectoryCaError::Unreadable)?;
        if pem.trim_start().starts_with("-----BEGIN") {
            Ok(Some(pem))
        } else {
            Err(DirectoryCaError::Unreadable)
        }
    }

    /// Encodes the directory in Go's form (map keys sorted, as Go sorts them).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = ObjectWriter::new(&mut out, EscapeStyle::Go119);
        w.object("endpoints", |e| {
            e.string("directory", self.endpoints.directory.as_bytes())
                .string("status", self.endpoints.status.as_bytes())
                .string("postOobSecret", self.endpoints.post_oob_secret.as_bytes())
                .string(
                    "postProvisionRequest",
                    self.endpoints.post_provision_request.as_bytes(),
                );
            for (key, value) in [
                ("pakeParams", &self.endpoints.pake_params),
                ("pakeStart", &self.endpoints.pake_start),
                ("pakeFinish", &self.endpoints.pake_finish),
            ] {
                if !value.is_empty() {
                    e.string(key, value.as_bytes());
                }
            }
        })
        .string("caCert", self.ca_cert.as_bytes())
        .string("version", self.version.as_bytes())
        .object("services", |s| {
            for (name, url) in &self.services {
                s.string(name, url.as_bytes());
            }
        });
        if !self.pake.is_empty() {
            w.string("pake", self.pake.as_bytes());
        }
        w.finish();
        out
    }
}

/// `GET /idprov/status/{deviceID}`:
/// `{"deviceID","status","caCert":"<PEM>","clientCert":<base64 of PEM, or null>}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(as = Status, rename_all = "camelCase")
)]
pub struct StatusMessage {
    /// The device ID.
    #[cfg_attr(feature = "openapi", schema(rename = "deviceID"))]
    pub device_id: String,
    /// Approved, Waiting or Rejected (PROTOCOL.md §4 table).
    pub status: ProvisionStatus,
    /// The issuing CA and its chain, plain PEM.
    pub ca_cert: String,
    /// The newest valid certificate, PEM (sent base64-encoded), if
    /// Approved; `null` otherwise.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub client_cert: Option<String>,
}

impl StatusMessage {
    /// Encodes the status in Go's form; `clientCert` is base64 of the PEM
    /// text (compat: Go `[]byte`), or `null`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = ObjectWriter::new(&mut out, EscapeStyle::Go119);
        w.string("deviceID", self.device_id.as_bytes())
            .string("status", self.status.as_str().as_bytes())
            .string("caCert", self.ca_cert.as_bytes());
        match &self.client_cert {
            Some(pem) => w.string("clientCert", BASE64.encode(pem.as_bytes()).as_bytes()),
            None => w.null("clientCert"),
        };
        w.finish();
        out
    }

    /// Parses a status message; `clientCert` may be base64 of PEM, PEM or null.
    pub fn from_json(bytes: &[u8]) -> Result<Self, MessageError> {
        let mut o = Object::parse(bytes)?;
        let device_id = o.required_string("deviceID")?;
        let status_text = o.required_string("status")?;
        let status = ProvisionStatus::parse(&status_text).ok_or_else(|| {
            MessageError::Invalid(
                "status",
                "must be \"Approved\", \"Waiting\" or \"Rejected\"".to_string(),
            )
        })?;
        let ca_cert = o.optional_string("caCert")?;
        let client_cert = match o.nullable_string("clientCert")? {
            None => None,
            Some(s) if s.is_empty() => None,
            Some(s) if s.starts_with("-----BEGIN") => Some(s),
            Some(s) => {
                let bytes = BASE64.decode(s.trim()).map_err(|_| {
                    MessageError::Invalid("clientCert", "is not base64".to_string())
                })?;
                Some(String::from_utf8(bytes).map_err(|_| {
                    MessageError::Invalid("clientCert", "is not base64 of PEM text".to_string())
                })?)
            }
        };
        Ok(StatusMessage {
            device_id,
            status,
            ca_cert,
            client_cert,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_parsing_is_strict() {
        let ok = br#"{"deviceID":"d","ip":"<nil>","mac":null,"publicKeyPEM":"k","signature":null,"extra":1}"#;
        let r = ProvisionRequest::from_json(ok).expect("valid");
        assert_eq!(r.mac, "");
        assert_eq!(r.signature, "");
        assert_eq!(r.ip, "<nil>");

        let cases: &[(&[u8], MessageError)] = &[
            (
                br#"{"deviceID":"d","deviceID":"e","ip":"","publicKeyPEM":"k"}"#,
                MessageError::DuplicateKey("deviceID".into()),
            ),
            (
                br#"{"ip":"","publicKeyPEM":"k"}"#,
                MessageError::Missing("deviceID"),
            ),
            (
                br#"{"deviceID":5,"ip":"","publicKeyPEM":"k"}"#,
                MessageError::WrongType("deviceID", "a string"),
            ),
            (
                br#"{"deviceID":"d","ip":"","publicKeyPEM":"k","mac":[]}"#,
                MessageError::WrongType("mac", "a string"),
            ),
            (
                br#"{"DeviceID":"d","ip":"","publicKeyPEM":"k"}"#,
                MessageError::Missing("deviceID"),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                ProvisionRequest::from_json(body).unwrap_err(),
                *want,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        for bad in [&b"[]"[..], b"", b"{", b"{} x", b"null", b"\"s\""] {
            assert!(matches!(
                ProvisionRequest::from_json(bad),
                Err(MessageError::Syntax(_))
            ));
        }
    }

    #[test]
    fn response_omits_zero_retry() {
        let r = ProvisionResponse {
            retry_sec: 0,
            status: ProvisionStatus::Waiting,
            ca_cert: String::new(),
            client_cert: String::new(),
            signature: String::new(),
        };
        assert_eq!(
            r.to_json(),
            br#"{"status":"Waiting","caCert":"","clientCert":"","signature":""}"#.to_vec()
        );
        let back = ProvisionResponse::from_json(&r.to_json()).expect("round trip");
        assert_eq!(back, r);
    }

    #[test]
    fn directory_round_trip_and_ca_encodings() {
        let pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
        let mut services = BTreeMap::new();
        services.insert("mqtts".to_string(), "mqtts://hub.local:8883".to_string());
        let d = Directory::new(pem, services);
        let json = d.to_json();
        let text = String::from_utf8(json.clone()).expect("utf8");
        assert!(text.starts_with(
            r#"{"endpoints":{"directory":"/idprov/directory","status":"/idprov/status/{deviceID}","postOobSecret":"/idprov/oobsecret","postProvisionRequest":"/idprov/provreq"},"caCert":""#
        ));
        assert!(text.ends_with(r#","version":"1","services":{"mqtts":"mqtts://hub.local:8883"}}"#));
        let back = Directory::from_json(&json).expect("parse");
        assert_eq!(back.ca_pem().expect("ca").as_deref(), Some(pem));

        let plain = br#"{"endpoints":{"postProvisionRequest":"https://h:1/p"},"caCert":null}"#;
        let d = Directory::from_json(plain).expect("parse");
        assert_eq!(d.ca_pem(), Ok(None));
        assert_eq!(d.endpoints.post_provision_request, "https://h:1/p");
    }

    #[test]
    fn status_client_cert_is_base64_or_null() {
        let s = StatusMessage {
            device_id: "d".into(),
            status: ProvisionStatus::Waiting,
            ca_cert: "CA".into(),
            client_cert: None,
        };
        assert_eq!(
            s.to_json(),
            br#"{"deviceID":"d","status":"Waiting","caCert":"CA","clientCert":null}"#.to_vec()
        );
        let s = StatusMessage {
            client_cert: Some("PEM".into()),
            status: ProvisionStatus::Approved,
            ..s
        };
        let json = s.to_json();
        assert!(json.ends_with(br#""clientCert":"UEVN"}"#));
        assert_eq!(StatusMessage::from_json(&json).expect("parse"), s);
    }
}

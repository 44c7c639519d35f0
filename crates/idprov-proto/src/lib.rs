//! The idprov v1 protocol, as data: message types with their exact key names
//! and order, the Go-compatible canonical JSON encoder, HMAC-SHA256 signing
//! and verification, device-ID and secret syntax, and CA fingerprints.
//!
//! This crate does no I/O and knows nothing of HTTP, TLS, certificates or
//! storage. With `default-features = false` it builds as `no_std` + `alloc`,
//! so device firmware can use it; the `std` feature adds the [`clock`]
//! module. See `PROTOCOL.md` for the contract it implements.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod admin;
pub mod canonical;
#[cfg(feature = "std")]
pub mod clock;
pub mod device_id;
pub mod fingerprint;
mod json;
pub mod key_fingerprint;
pub mod kinds;
pub mod label;
pub mod messages;
pub mod secret;
pub mod serial;
pub mod sign;
pub mod spreadsheet;
pub mod unix_time;

pub use canonical::EscapeStyle;
pub use device_id::{DeviceId, DeviceIdError};
pub use fingerprint::Fingerprint;
pub use json::MessageError;
pub use key_fingerprint::{KeyFingerprint, KeyFingerprintError};
pub use label::{Label, LabelError};
pub use messages::{
    Directory, Endpoints, OobSecretMessage, ProvisionRequest, ProvisionResponse, ProvisionStatus,
    StatusMessage,
};
pub use secret::{OobSecret, SecretError};
pub use serial::{SerialError, SerialNumber};
pub use sign::{KeyVariant, Verified};
pub use unix_time::UnixTime;

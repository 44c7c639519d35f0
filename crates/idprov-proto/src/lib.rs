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

/// The conversions of a newtype over checked text (`$ty(String)`, made only
/// by `$ty::parse`, which fails with `$err`): display and comparison as the
/// text, parsing from `&str` and `String` (so serde's `try_from` checks it
/// too), and back into the `String`.
macro_rules! checked_text {
    ($ty:ident, $err:ty) => {
        impl core::fmt::Display for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl core::str::FromStr for $ty {
            type Err = $err;

            fn from_str(text: &str) -> Result<$ty, $err> {
                $ty::parse(text)
            }
        }

        impl TryFrom<alloc::string::String> for $ty {
            type Error = $err;

            fn try_from(text: alloc::string::String) -> Result<$ty, $err> {
                $ty::parse(&text)
            }
        }

        impl From<$ty> for alloc::string::String {
            fn from(v: $ty) -> alloc::string::String {
                v.0
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

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
pub mod v2;

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

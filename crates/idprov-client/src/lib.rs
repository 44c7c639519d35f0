//! The idprov client library: the device side of the protocol (discover,
//! provision, verify, renew, store credentials atomically) and the admin API
//! client the command-line tool uses.
//!
//! It depends on the protocol crate only among idprov's crates — never on
//! server code — so firmware or a tool can use it alone.

pub mod admin;
pub mod device;
pub mod discovery;
mod error;
pub mod import;
mod tls;

pub use admin::AdminClient;
pub use error::ClientError;
pub use tls::Credentials;

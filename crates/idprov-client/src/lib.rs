//! The idprov client library: the admin API client the command-line tool
//! uses, over mutual TLS with an administrator certificate. (The device side
//! of the protocol joins it in a later change.)
//!
//! It depends on the protocol crate only — never on server code — so a
//! device or tool can use it alone.

pub mod admin;
mod error;
mod tls;

pub use admin::AdminClient;
pub use error::ClientError;
pub use tls::Credentials;

//! The idprov server: the protocol endpoints of PROTOCOL.md over rustls, the
//! admin API, the data directory (CA, server and administrator credentials),
//! the accept loop, and the revocation data relying parties fetch (the CRL
//! and an OCSP responder, also on an optional plain-HTTP listener).
//!
//! This is the only crate that knows HTTP. It owns no storage format (that is
//! `idprov-store`) and no certificate encoding (that is `idprov-ca`); it wires
//! them to the network, decides on requests (PROTOCOL.md §6), and turns every
//! error into a response in one place ([`error::ApiError`]).

pub mod auth;
pub mod backup;
pub mod bootstrap;
pub mod checkpoint;
pub mod config;
pub mod crl;
pub mod datadir;
pub mod defaults;
pub mod dnssd;
pub mod error;
pub mod limits;
mod listener;
pub mod observe;
pub mod ocsp;
pub mod password;
pub mod routes;
pub mod secrets;
mod server;
pub mod state;
mod tls;
pub mod web;

pub use config::{RawConfig, ServerConfig};
pub use error::{ApiError, StartError};
pub use server::{RunningServer, SWEEP_INTERVAL, ServerOptions, start};
pub use tls::crypto_provider;

//! The core's errors: what prevented a decision.

use idprov_store::StoreError;

/// Why a request could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The request is not acceptable (the message names the field).
    #[error("{0}")]
    Invalid(String),
    /// The registry failed (or is closed).
    #[error("registry: {0}")]
    Store(#[from] StoreError),
    /// The certificate could not be issued.
    #[error("issuing a certificate: {0}")]
    Issue(String),
}

//! The idprov certificate authority: generate a CA or load an existing CA or
//! intermediate, issue device, server and client certificates with random
//! serials, parse and check the public keys devices submit, and read the
//! fields of certificates that authorization needs.
//!
//! This crate does no network or file I/O: callers pass PEM text in and
//! write the PEM it returns. It knows nothing of HTTP or the registry.

mod authority;
mod crl;
mod csr;
mod error;
mod ext;
mod inspect;
mod key;
pub mod ocsp;
pub mod pem;
pub mod pkcs7;

pub use authority::{
    BACKDATE, Ca, GeneratedCa, IssueParams, IssuedCert, KeyAlgorithm, Purpose, Usage, key_type_of,
};
pub use crl::{CrlEntry, REASONS, reason_code, verify_signed_by};
pub use csr::{CertRequest, csr_attributes};
pub use error::{CaError, CsrError, KeyError};
pub use inspect::CertInfo;
pub use key::{KeyType, PublicKey};
pub use rcgen::KeyPair;

//! The idprov certificate authority: generate a CA or load an existing CA or
//! intermediate, issue device, server and client certificates with random
//! serials, parse and check the public keys devices submit, and read the
//! fields of certificates that authorization needs.
//!
//! Every signature with the CA key goes through one abstraction,
//! [`CaKey`]: a key in memory (from a PKCS#8 file, clear or encrypted with a
//! passphrase: [`keyfile`]) or a key inside a PKCS#11 token ([`pkcs11`]).
//!
//! This crate does no network or file I/O of its own: callers pass PEM text
//! in and write the PEM it returns. (A PKCS#11 module is a library loaded
//! into the process; what it stores is its own.) It knows nothing of HTTP
//! or the registry.

mod authority;
mod crl;
mod csr;
mod error;
mod ext;
mod inspect;
mod key;
pub mod keyfile;
pub mod ocsp;
pub mod pem;
pub mod pkcs11;
pub mod pkcs7;
mod rollover;
mod signer;

pub use authority::{
    BACKDATE, Ca, GeneratedCa, IssueParams, IssuedCert, KeyAlgorithm, Purpose, Usage, key_type_of,
};
pub use crl::{CrlEntry, REASONS, reason_code, verify_signed_by};
pub use csr::{CertRequest, csr_attributes};
pub use error::{CaError, CsrError, KeyError};
pub use inspect::CertInfo;
pub use key::{KeyType, PublicKey};
pub use rcgen::KeyPair;
pub use rollover::{is_signed_by, verify_signed_by_any};
pub use signer::{CaKey, KeyBackend, KeyStorage, Protection};

//! Integration tests of the certificate authority.

mod issue;
mod ocsp;

//! Integration tests of the protocol crate: the shared signature vectors,
//! byte for byte.

mod go_differential;
mod vectors;

//! End-to-end tests of the server through real TLS and HTTP, against the
//! real server started by the test kit.

mod authz;
mod bad_input;
mod common;
mod datadir;
mod directory;
mod go_client;
mod hardening;
mod openapi;
mod page_rules;
mod provision;
mod registry;
mod renewal;
mod replicas;
mod revocation;
mod tls;
mod web;

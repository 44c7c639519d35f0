//! The provisioning core: what the server decides when a device asks for a
//! certificate (PROTOCOL.md §6, in order), once, for every front door.
//!
//! A front door (idprov v1's `POST /idprov/provreq`, EST's
//! `/.well-known/est/`; a PAKE first contact next) parses its wire format into a [`Request`] — the
//! device ID, its public key, what it claims, who the transport verified
//! it to be, and its [`Proof`] of a secret — calls
//! [`Provisioner::provision`], and maps the [`Outcome`] back onto its wire.
//! Here live the rules: the verified-caller branches, lockouts and the
//! per-device guess budget, administrators' rejections and approvals,
//! re-delivery, the waiting queue with its caps, issuance recorded in one
//! durable transaction, and which key signs an answer (§5).
//!
//! It deliberately knows nothing of HTTP (no axum, hyper, tower or http in
//! its dependency tree), of JSON on the wire, or of TLS: those are the
//! front doors'. It sees the registry only through `idprov-store`'s trait,
//! certificates only through `idprov-ca`, and time only through the
//! injected [`idprov_proto::clock::Clock`].

pub mod aggregate;
mod error;
pub mod metrics;
mod outcome;
mod pake;
mod policy;
mod queue;
mod request;
pub mod secrets;
mod service;
pub mod sweep;

pub use error::CoreError;
pub use outcome::{AnswerKey, Issued, Outcome, Refusal, RejectReason, SessionKey};
pub use pake::{PakeSessions, SessionLimits};
pub use policy::{Policy, reserved_device_id};
pub use queue::QueueState;
pub use request::{Claimed, Identity, PakeProof, Proof, Request, Role};
pub use service::{AUDIT_AGGREGATE_SECS, Provisioner, lockout_source, source_key, status_of};

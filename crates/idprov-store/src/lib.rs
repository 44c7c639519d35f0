//! The idprov registry: OOB secrets (sealed by the caller, never in clear),
//! waiting requests, failed-secret counters, issued certificates and the
//! append-only, hash-chained audit log.
//!
//! [`Registry`] is the storage trait, the sum of one trait per capability
//! ([`Secrets`], [`Queue`], [`Devices`], [`AuditLog`], [`Accounts`]);
//! [`Store`] implements them once for both backends, [`SqliteRegistry`] (the
//! embedded default) and [`PostgresRegistry`]. Every mutation writes its audit entry in the same
//! transaction and returns only once that transaction is durable. The store
//! knows nothing of HTTP, TLS or certificates beyond the text it is given,
//! and never sees a secret in clear.

pub mod audit;
mod error;
mod events;
pub mod model;
mod ops;
mod postgres;
mod registry;
mod sql;
mod sqlite;

pub use audit::{
    Actor, AuditEntry, AuditEvent, AuditOf, AuditRecord, ChainError, verify_chain, verify_log,
};
pub use error::{Result, StoreError};
pub use model::*;
pub use ops::Store;
pub use ops::rules::{device_status, missed_renewal};
pub use postgres::{
    DEFAULT_MAX_CONNECTIONS as POSTGRES_DEFAULT_MAX_CONNECTIONS, MigrationReport, Postgres,
    PostgresRegistry, SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION,
};
pub use registry::{Accounts, AuditLog, Devices, Queue, Registry, Secrets};
pub use sqlite::backup::{DatabaseSummary, check as check_database, snapshot as snapshot_database};
pub use sqlite::{SCHEMA_VERSION, Sqlite, SqliteRegistry};

/// The capability traits, for callers that call registry methods:
/// `use idprov_store::prelude::*;`.
pub mod prelude {
    pub use crate::registry::{Accounts, AuditLog, Devices, Queue, Registry, Secrets};
}

//! Integration tests of the registry. `suite` holds backend-independent
//! tests; each backend module runs all of them against a real database.

// The cluster code lives in the test kit (the end-to-end suites use it too);
// included by path so this crate needs no dependency on the kit.
#[path = "../../../idprov-testkit/src/postgres.rs"]
mod pg_cluster;
mod postgres;
mod sqlite;
mod suite;

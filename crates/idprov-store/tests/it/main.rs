//! Integration tests of the registry. `suite` holds backend-independent
//! tests; each backend module runs all of them against a real database.

mod pg_cluster;
mod postgres;
mod sqlite;
mod suite;

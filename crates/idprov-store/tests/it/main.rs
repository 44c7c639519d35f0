//! Integration tests of the registry. `suite` holds backend-independent
//! tests; each backend module runs all of them against a real database.

mod sqlite;
mod suite;

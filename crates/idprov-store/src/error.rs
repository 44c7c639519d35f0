//! Storage errors.

/// Why a storage operation failed. Cloneable because one failed group commit
/// answers every request in the group.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed an operation.
    #[error("database error: {0}")]
    Database(String),
    /// A stored value does not decode (a corrupt or foreign database).
    #[error("corrupt registry data: {0}")]
    Corrupt(String),
    /// The database schema is newer than this binary understands.
    #[error(
        "the registry schema is version {found}, newer than this idprov understands ({supported}); upgrade idprov"
    )]
    SchemaTooNew {
        /// Version found in the database.
        found: i64,
        /// Newest version this binary knows.
        supported: i64,
    },
    /// The storage worker stopped (the server is shutting down).
    #[error("the registry is shut down")]
    Closed,
    /// A unique constraint or a precondition failed.
    #[error("conflict: {0}")]
    Conflict(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

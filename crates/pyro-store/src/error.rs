//! The store's error type; messages are written for end users of every
//! surface (CLI, Python SDK, MCP), so they never contain CLI syntax: hints
//! such as which command to run are added per surface by the caller.

/// What the store refuses or fails with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Nothing has that id or name.
    #[error("workspace '{what}' does not exist")]
    NotFound {
        /// The id or name asked for.
        what: String,
    },
    /// The workspace has no snapshot of that name.
    #[error("snapshot '{name}' does not exist in workspace '{workspace}'")]
    SnapshotNotFound {
        /// The workspace id.
        workspace: String,
        /// The snapshot asked for.
        name: String,
    },
    /// The name is taken.
    #[error("a workspace named '{name}' already exists; choose another name or delete it first")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// The change clashes with what is stored (e.g. an id already in use).
    #[error("{message}")]
    Conflict {
        /// Why.
        message: String,
    },
    /// A field is invalid.
    #[error("{message}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// An update would change nothing.
    #[error("workspace update requested no effective metadata change")]
    NoChange,
    /// The database is newer than this pyro.
    #[error("the workspace database has schema version {found} but this pyro knows up to {known}; upgrade pyro")]
    SchemaTooNew {
        /// Version on disk.
        found: i64,
        /// Newest version known.
        known: i64,
    },
    /// The database file cannot be used the way the store needs (e.g. a
    /// filesystem without WAL support).
    #[error("the workspace database cannot be used: {0}")]
    Unusable(String),
    /// SQLite failed.
    #[error("workspace database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value could not be decoded.
    #[error("workspace record is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> StoreError {
        StoreError::Invalid {
            field,
            message: message.into(),
        }
    }
}

//! pyro's workspace store: SQLite, shared by every `pyro` process.
//!
//! # Schema (version 1, `PRAGMA user_version`)
//!
//! ```text
//! workspaces(workspace_id PK, name UNIQUE NULL, environment, environment_version,
//!            state, vcpu_count, mem_mib, ttl_seconds, network_policy,
//!            created_at, last_activity_at, command_count, last_command JSON,
//!            last_error, runtime JSON, seed JSON)
//! labels(workspace_id → workspaces ON DELETE CASCADE, key, value, PK(workspace_id, key))
//! commands(workspace_id → workspaces ON DELETE CASCADE, sequence, command, cwd,
//!          exit_code, duration_ms, stdout, stderr, recorded_at, PK(workspace_id, sequence))
//! ```
//!
//! # Concurrency
//!
//! Several `pyro` processes and an MCP server may change the store at once.
//! The database runs in WAL mode (readers never block the writer), every
//! change is one `BEGIN IMMEDIATE` transaction (writers queue on the
//! database lock instead of failing half-way), and a busy timeout makes them
//! wait rather than error. Read operations never write. Timestamps are
//! passed in by the caller, never read here.
#![deny(missing_docs)]

mod error;
mod query;
mod record;
mod schema;
mod store;
mod validate;

pub use error::StoreError;
pub use query::{LabelFilter, ListQuery};
pub use record::{
    CommandEntry, LastCommand, NameChange, NewWorkspace, WorkspaceRecord, WorkspaceState,
    WorkspaceSummary,
};
pub use store::Store;
pub use validate::{parse_label_arg, validate_label_key, validate_label_value, validate_name};

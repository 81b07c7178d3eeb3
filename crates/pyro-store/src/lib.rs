//! pyro's workspace store: one SQLite file, `<state_dir>/pyro.db`, shared by
//! every `pyro` process and the MCP server.
//!
//! The store keeps what pyro knows about workspaces (names, labels, state,
//! resources, activity, command history). It knows nothing about guests: the
//! Manager in `pyro-core` hands it opaque JSON (`runtime`: pids, socket
//! paths; `seed`) and gets it back unchanged.
//!
//! # Schema (version 1, in `PRAGMA user_version`)
//!
//! ```text
//! workspaces(workspace_id TEXT PK,            -- 12 lowercase hex
//!            name TEXT UNIQUE NULL,             -- never 12 hex, any case
//!            environment, environment_version,
//!            state CHECK IN (creating, started, stopped, failed),
//!            vcpu_count, mem_mib, ttl_seconds NULL, network_policy,
//!            created_at REAL, last_activity_at REAL, -- float Unix seconds
//!            command_count, last_command JSON NULL, last_error NULL,
//!            runtime JSON, seed JSON)
//!   index workspaces_by_activity (last_activity_at DESC, created_at DESC, workspace_id)
//! labels(workspace_id → workspaces ON DELETE CASCADE, key, value,
//!        PK (workspace_id, key))            -- at most 64 per workspace
//!   index labels_by_key_value (key, value)
//! commands(workspace_id → workspaces ON DELETE CASCADE, sequence, command,
//!          cwd, exit_code, duration_ms, stdout, stderr, recorded_at,
//!          PK (workspace_id, sequence))
//! ```
//!
//! `expires_at` is not stored: it is `last_activity_at + ttl_seconds` while a
//! workspace is started and `None` otherwise. Schema changes are new entries
//! at the end of `schema::MIGRATIONS`, never edits of old ones: `open`
//! applies the missing ones in one transaction and bumps `user_version`, and
//! refuses ([`StoreError::SchemaTooNew`]) a file written by a newer pyro.
//!
//! # Transactions and locking
//!
//! Several `pyro` processes and an MCP server may change the store at the
//! same moment (two terminals relabelling, an exec finishing while `gc`
//! runs). So:
//!
//! - The file is in WAL mode: readers never block the writer and the writer
//!   never blocks readers; `list` works while an exec is being recorded.
//! - Every mutation is one transaction opened with `BEGIN IMMEDIATE`, which
//!   takes the write lock *before* reading. A read-modify-write (the next
//!   command sequence, the label set an update compares against) therefore
//!   cannot interleave with another process's: writers queue instead of
//!   losing updates or failing with a stale snapshot (`SQLITE_BUSY_SNAPSHOT`,
//!   which a deferred transaction upgrading to a write would get).
//! - A busy timeout ([`BUSY_TIMEOUT`]) makes a writer wait for the lock
//!   rather than fail; transactions here last milliseconds. Switching a new
//!   file to WAL, which SQLite does not cover with the busy handler, is
//!   retried for the same time, so many processes may create the file at once.
//! - `foreign_keys=ON` on every connection, so deleting a workspace deletes
//!   its labels and history in the same transaction. `synchronous=NORMAL`:
//!   a power cut can lose the last commits, never corrupt the file.
//! - Reads (`resolve`, `list`, `commands`, the id helpers) never write, and
//!   each answer comes from one statement, so from one consistent snapshot
//!   (a record and its labels cannot disagree). `list` filters, orders and
//!   limits in SQL through the indexes; with label filters it first counts
//!   (capped) how common each is, to pick which index drives the query.
//! - Validation happens before the transaction; an error (invalid input,
//!   duplicate name, nothing to change) rolls back, so a refused call writes
//!   nothing.
//!
//! A [`Store`] holds one connection behind a mutex: one per process,
//! shareable between threads.
//!
//! The database and its `-wal` and `-shm` files are mode 0600 (created so,
//! and tightened at open if they are not): they hold command lines and
//! output.
//!
//! # Time
//!
//! Timestamps are float Unix epoch seconds passed in by the caller (`now`);
//! the store never reads the clock. `last_activity_at` never moves backwards:
//! a writer that commits late with an older `now` leaves the newer value.
#![deny(missing_docs)]

mod error;
mod query;
mod record;
mod schema;
mod services;
mod snapshots;
mod store;
mod validate;

pub use error::StoreError;
pub use query::{LabelFilter, ListQuery};
pub use record::{
    CommandEntry, LastCommand, NameChange, NewWorkspace, WorkspaceRecord, WorkspaceState,
    WorkspaceSummary,
};
pub use snapshots::{validate_snapshot_name, SnapshotKind, SnapshotRow, BASELINE};
pub use store::Store;
pub use store::BUSY_TIMEOUT;
pub use validate::{
    is_workspace_id, looks_like_workspace_id, parse_label_arg, parse_label_args,
    validate_label_key, validate_label_value, validate_name, MAX_KEY_CHARS, MAX_LABELS,
    MAX_VALUE_CHARS,
};

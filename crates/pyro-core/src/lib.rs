//! pyro-core: the [`Manager`], the one place where pyro's behaviour lives.
//!
//! The CLI, the MCP server and the Python SDK are thin adapters: they parse
//! input, call one `Manager` method and render its typed result. Every
//! result type here serializes to the JSON all three surfaces share.
//!
//! - [`config`]: state and cache directories, agent location, overrides.
//! - [`error`]: the error type, its stable codes and hints.
//! - [`envs`]: environment list / inspect / pull / prune.
//! - [`run`]: one-shot runs (boot, exec, tear down).
//! - [`doctor`]: host diagnostics.
//! - [`accel`]: choosing KVM or TCG from a cached boot probe.
//! - [`workspace`]: persistent workspaces (create, find, exec, stop/start).
#![deny(missing_docs)]

pub mod accel;
pub mod config;
pub mod doctor;
pub mod envs;
pub mod error;
mod ids;
mod manager;
mod output;
pub mod run;
mod runtime_dirs;
pub mod workspace;

pub use config::Config;
pub use error::{Error, ErrorCode};
pub use manager::Manager;
pub use pyro_env::{InstalledEnv, PullPhase, PullReporter};
pub use pyro_store::{LabelFilter, ListQuery, NameChange, WorkspaceState};
pub use pyro_vmm::OutputSink;

/// Seconds since the Unix epoch, as JSON timestamps carry them.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

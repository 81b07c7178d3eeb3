//! pyro-core: the [`Manager`], the one place where pyro's behaviour lives.
//!
//! The CLI, the MCP server and the Python SDK are thin adapters: they turn
//! their input into an operation's params, call one `Manager` method and
//! render its typed result. Every operation has the same shape,
//! `fn op(&self, params, &mut dyn Progress) -> Result<Output, Error>`, and
//! is listed in [`api::OPERATIONS`] with its JSON Schemas.
//!
//! - [`api`]: params and result types of every operation (the contract).
//! - [`error`]: the error type, stable codes, hints as data.
//! - [`progress`]: how operations report phases and stream output.
//! - [`config`]: state and cache directories, agent location, overrides.
//! - `envs`, `doctor`, `accel`: environments, host diagnostics, KVM or TCG.
//! - `guest`: the one boot / ready / exec path for runs and workspaces.
//! - `run`: one-shot runs.
//! - `workspace`: persistent workspaces, split by concern.
//! - [`interrupt`]: what an interrupted operation cleans up.
#![deny(missing_docs)]

pub mod accel;
pub mod api;
pub mod config;
mod doctor;
mod envs;
pub mod error;
mod guest;
mod ids;
pub mod interrupt;
mod manager;
pub mod progress;
mod run;
mod runtime_dirs;
pub mod secrets;
mod templates;
mod vms;
mod workspace;

pub use api::defaults;
pub use config::Config;
pub use error::{Error, ErrorBody, ErrorCode, ErrorEnvelope, Hint, Surface};
pub use manager::Manager;
pub use progress::{Event, Phase, Progress, Quiet};
pub use pyro_env::{InstalledEnv, PullPhase};
pub use run::{MEM_RANGE, VCPU_RANGE};
pub use workspace::TTL_RANGE;

/// Parses repeated `KEY=VALUE` label arguments (the CLI's `--label`); a
/// key given twice is an error rather than a silent last-wins.
pub fn parse_label_args(
    args: &[String],
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    Ok(pyro_store::parse_label_args(args)?)
}

/// Seconds since the Unix epoch, as JSON timestamps carry them.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

//! Persistent workspaces: guests that keep running between commands and
//! are found again by id, name or labels.
//!
//! No daemon: `create` and `start` boot a detached guest and record how to
//! reach it (pids with start times, socket paths) in the store; every later
//! command reconnects to the agent.
//!
//! # Lifecycle truth
//!
//! Every state change of a workspace (create, start, stop, delete, idle
//! stop, reconciliation) happens under its flock (`workspaces/<id>/lock`)
//! and re-reads the record inside the lock, so two `pyro` processes never
//! boot, stop or kill the same guest on the strength of a stale read. The
//! record says who is working on it:
//!
//! | state | runtime | meaning |
//! |---|---|---|
//! | creating | owner (+ vm) | a create in flight; owner dead → failed |
//! | started | vm | running; a vm process gone → stopped |
//! | stopped | owner (+ vm) | a start in flight; owner dead → its guest is killed |
//! | stopped / failed | empty | nothing runs |
//!
//! Reading code observes the real state without writing; whoever can take
//! the lock without waiting persists what it observed ([`reconcile`]).
//! `gc` also kills guest processes under the state dir that no record
//! owns.
//!
//! - [`lifecycle`]: create, start, stop, delete.
//! - [`exec`]: commands and their history.
//! - [`query`]: list, status, update, logs.
//! - [`reconcile`]: observed state, idle stop, gc.
//! - [`files`]: sync push, file list/read/write, patch, export.
//! - [`diff`]: /workspace against the create-time baseline.
//! - [`snapshots`]: snapshots of /workspace, and reset.
//! - [`disk`]: a stopped workspace's disk, read on the host.

mod diff;
mod disk;
mod exec;
mod files;
mod fork;
mod inflight;
mod lifecycle;
mod ports;
mod query;
mod reconcile;
mod services;
mod shells;
mod snapshots;

use std::path::PathBuf;

use pyro_env::FileLock;
use pyro_store::WorkspaceRecord;
use pyro_vmm::process::ProcRef;
use pyro_vmm::{Accel, VmHandle};
use serde::{Deserialize, Serialize};

use crate::api::{defaults, NetworkPolicy, WorkspaceInfo, WorkspaceSeed};
use crate::{Error, Manager};

/// Accepted idle TTLs.
pub const TTL_RANGE: std::ops::RangeInclusive<u64> = 60..=7 * 24 * 3600;
/// Output kept per stream in the command history.
const HISTORY_CAP: usize = 1024 * 1024;

/// What the store keeps about a workspace's guest (internal, never shown).
/// Nothing recorded serializes as `{}`, which the store can find cheaply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Runtime {
    /// The pyro process creating or starting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<ProcRef>,
    /// The guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<VmHandle>,
    /// Accelerator it was booted with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<Accel>,
    /// How the guest started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<crate::api::BootInfo>,
}

impl Runtime {
    pub(crate) fn of(r: &WorkspaceRecord) -> Runtime {
        serde_json::from_value(r.runtime.clone()).unwrap_or_default()
    }

    pub(crate) fn value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Nothing recorded.
    pub(crate) fn empty() -> serde_json::Value {
        Runtime::default().value()
    }

    /// This process, as an owner.
    pub(crate) fn owned_by_me() -> Runtime {
        Runtime {
            owner: ProcRef::of(std::process::id()),
            ..Default::default()
        }
    }
}

/// Checks a name and labels a new workspace (create, fork) is to get.
fn validate_name_and_labels(
    name: Option<&str>,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<(), Error> {
    if let Some(name) = name {
        pyro_store::validate_name(name)?;
    }
    for (k, v) in labels {
        pyro_store::validate_label_key(k)?;
        pyro_store::validate_label_value(k, v)?;
    }
    Ok(())
}

fn seed_of(r: &WorkspaceRecord) -> WorkspaceSeed {
    serde_json::from_value(r.seed.clone()).unwrap_or_else(|_| WorkspaceSeed::empty())
}

/// The public payload of a record.
pub(crate) fn info(r: &WorkspaceRecord) -> WorkspaceInfo {
    WorkspaceInfo {
        workspace_id: r.workspace_id.clone(),
        name: r.name.clone(),
        labels: r.labels.clone(),
        environment: r.environment.clone(),
        environment_version: r.environment_version.clone(),
        state: r.state.into(),
        vcpu_count: r.vcpu_count,
        mem_mib: r.mem_mib,
        ttl_seconds: r.ttl_seconds,
        created_at: r.created_at,
        last_activity_at: r.last_activity_at,
        expires_at: r.expires_at,
        network_policy: r.network_policy.parse().unwrap_or(NetworkPolicy::Off),
        execution_mode: "guest_vsock".into(),
        workspace_path: defaults::WORKSPACE_PATH.into(),
        command_count: r.command_count,
        last_command: r.last_command.clone().map(Into::into),
        service_count: r.service_count,
        running_service_count: r.running_service_count,
        last_error: r.last_error.clone(),
        workspace_seed: seed_of(r),
        reset_count: r.reset_count,
        last_reset_at: r.last_reset_at,
        boot: Runtime::of(r).boot,
        secrets: crate::secrets::infos_of(r),
    }
}

impl Manager {
    pub(crate) fn workspace_dir(&self, id: &str) -> PathBuf {
        self.config().state_dir.join("workspaces").join(id)
    }

    fn ensure_workspace_dir(&self, id: &str) -> Result<PathBuf, Error> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = self.workspace_dir(id);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(Error::io(format!("creating {}", dir.display())))?;
        Ok(dir)
    }

    /// Waits for the workspace's lock.
    pub(crate) fn lock_workspace(&self, id: &str) -> Result<FileLock, Error> {
        let dir = self.ensure_workspace_dir(id)?;
        FileLock::acquire(&dir.join("lock")).map_err(Error::io("locking the workspace"))
    }

    /// Takes the workspace's lock if nobody holds it; `None` means an
    /// operation is in flight. Never creates the directory.
    pub(crate) fn try_lock_workspace(&self, id: &str) -> Option<FileLock> {
        let dir = self.workspace_dir(id);
        if !dir.is_dir() {
            return None;
        }
        FileLock::try_acquire(&dir.join("lock")).ok().flatten()
    }
}

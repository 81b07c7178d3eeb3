//! Records as the store hands them out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Where a workspace is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceState {
    /// Being created (its creator is booting the guest).
    Creating,
    /// The guest is running.
    Started,
    /// The guest is off; the disk is kept.
    Stopped,
    /// Creation failed or was interrupted; only delete helps.
    Failed,
}

impl WorkspaceState {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceState::Creating => "creating",
            WorkspaceState::Started => "started",
            WorkspaceState::Stopped => "stopped",
            WorkspaceState::Failed => "failed",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "creating" => WorkspaceState::Creating,
            "started" => WorkspaceState::Started,
            "stopped" => WorkspaceState::Stopped,
            "failed" => WorkspaceState::Failed,
            other => {
                return Err(StoreError::invalid(
                    "state",
                    format!(
                    "unknown state '{other}'; expected one of: creating, started, stopped, failed"
                ),
                ))
            }
        })
    }
}

impl std::fmt::Display for WorkspaceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for WorkspaceState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        WorkspaceState::parse(s)
    }
}

/// When a workspace in `state` last active at `last_activity_at` runs out of
/// idle time: only started workspaces expire.
pub(crate) fn expires_at(
    state: WorkspaceState,
    last_activity_at: f64,
    ttl_seconds: Option<u64>,
) -> Option<f64> {
    match (state, ttl_seconds) {
        (WorkspaceState::Started, Some(ttl)) => Some(last_activity_at + ttl as f64),
        _ => None,
    }
}

/// The last command run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCommand {
    /// Sequence number.
    pub sequence: u64,
    /// The command, shell-quoted.
    pub command: String,
    /// Working directory.
    pub cwd: String,
    /// Exit code.
    pub exit_code: i32,
    /// Duration.
    pub duration_ms: u64,
}

/// A full workspace record.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceRecord {
    /// 12 lowercase hex characters.
    pub workspace_id: String,
    /// Unique name.
    pub name: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Environment name.
    pub environment: String,
    /// Environment version.
    pub environment_version: String,
    /// State as last recorded.
    pub state: WorkspaceState,
    /// vCPUs.
    pub vcpu_count: u32,
    /// Memory.
    pub mem_mib: u32,
    /// Idle TTL.
    pub ttl_seconds: Option<u64>,
    /// Network policy.
    pub network_policy: String,
    /// Creation time.
    pub created_at: f64,
    /// Last mutating activity.
    pub last_activity_at: f64,
    /// When the idle TTL runs out: `last_activity_at + ttl_seconds` while
    /// started, `None` otherwise (computed, not stored).
    pub expires_at: Option<f64>,
    /// Commands run.
    pub command_count: u64,
    /// The last one.
    pub last_command: Option<LastCommand>,
    /// Why it failed or stopped unexpectedly.
    pub last_error: Option<String>,
    /// Opaque runtime data of the Manager (pids, sockets).
    pub runtime: serde_json::Value,
    /// What /workspace was seeded from.
    pub seed: serde_json::Value,
    /// Resets so far.
    pub reset_count: u64,
    /// When the last reset happened.
    pub last_reset_at: Option<f64>,
    /// Opaque descriptions of the workspace's secrets (names and where they
    /// came from; never values).
    pub secrets: serde_json::Value,
    /// Services recorded.
    pub service_count: u64,
    /// Of which running.
    pub running_service_count: u64,
}

/// Inputs of an insert.
#[derive(Debug, Clone)]
pub struct NewWorkspace {
    /// Id chosen by the caller.
    pub workspace_id: String,
    /// Name (validated here).
    pub name: Option<String>,
    /// Labels (validated here).
    pub labels: BTreeMap<String, String>,
    /// Environment.
    pub environment: String,
    /// Environment version.
    pub environment_version: String,
    /// vCPUs.
    pub vcpu_count: u32,
    /// Memory.
    pub mem_mib: u32,
    /// Idle TTL.
    pub ttl_seconds: Option<u64>,
    /// Network policy.
    pub network_policy: String,
    /// Opaque runtime data.
    pub runtime: serde_json::Value,
    /// Seed description.
    pub seed: serde_json::Value,
    /// Secret descriptions (never values).
    pub secrets: serde_json::Value,
}

/// One row of `list`: the columns a listing needs (internal; pyro-core
/// turns it into the public summary).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceSummary {
    /// Id.
    pub workspace_id: String,
    /// Name.
    pub name: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Environment.
    pub environment: String,
    /// State.
    pub state: WorkspaceState,
    /// Creation time.
    pub created_at: f64,
    /// Last mutating activity.
    pub last_activity_at: f64,
    /// When the idle TTL stops it, if started.
    pub expires_at: Option<f64>,
    /// Commands run.
    pub command_count: u64,
    /// Services recorded.
    pub service_count: u64,
    /// Of which running.
    pub running_service_count: u64,
}

/// One history entry (internal; pyro-core turns it into the public one).
#[derive(Debug, Clone, PartialEq)]
pub struct CommandEntry {
    /// Sequence number.
    pub sequence: u64,
    /// The command.
    pub command: String,
    /// Working directory.
    pub cwd: String,
    /// Exit code.
    pub exit_code: i32,
    /// Duration.
    pub duration_ms: u64,
    /// When it finished.
    pub recorded_at: f64,
    /// Captured stdout (capped by the caller).
    pub stdout: String,
    /// Captured stderr (capped by the caller).
    pub stderr: String,
}

/// A name change in an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameChange {
    /// Leave it.
    Keep,
    /// Set it.
    Set(String),
    /// Remove it.
    Clear,
}

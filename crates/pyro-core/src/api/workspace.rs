//! Params and results of the workspace operations.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{defaults, CommandOutput, CommandSpec};

/// Where a workspace is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
        self.to_store().as_str()
    }

    pub(crate) fn to_store(self) -> pyro_store::WorkspaceState {
        match self {
            WorkspaceState::Creating => pyro_store::WorkspaceState::Creating,
            WorkspaceState::Started => pyro_store::WorkspaceState::Started,
            WorkspaceState::Stopped => pyro_store::WorkspaceState::Stopped,
            WorkspaceState::Failed => pyro_store::WorkspaceState::Failed,
        }
    }
}

impl From<pyro_store::WorkspaceState> for WorkspaceState {
    fn from(s: pyro_store::WorkspaceState) -> Self {
        match s {
            pyro_store::WorkspaceState::Creating => WorkspaceState::Creating,
            pyro_store::WorkspaceState::Started => WorkspaceState::Started,
            pyro_store::WorkspaceState::Stopped => WorkspaceState::Stopped,
            pyro_store::WorkspaceState::Failed => WorkspaceState::Failed,
        }
    }
}

impl std::str::FromStr for WorkspaceState {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, crate::Error> {
        Ok(pyro_store::WorkspaceState::parse(s)?.into())
    }
}

/// Network policy of a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetworkPolicy {
    /// No network interface at all.
    #[default]
    Off,
    /// Outbound connections only (never to the host's loopback).
    Egress,
    /// Outbound, plus service ports published on the host's 127.0.0.1.
    #[serde(rename = "egress+published-ports")]
    EgressPublishedPorts,
}

impl NetworkPolicy {
    /// The policy's name.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkPolicy::Off => "off",
            NetworkPolicy::Egress => "egress",
            NetworkPolicy::EgressPublishedPorts => "egress+published-ports",
        }
    }

    /// Every policy, for help texts and parsers.
    pub const ALL: [NetworkPolicy; 3] = [
        NetworkPolicy::Off,
        NetworkPolicy::Egress,
        NetworkPolicy::EgressPublishedPorts,
    ];

    /// Whether the guest gets a network interface.
    pub fn has_network(self) -> bool {
        self != NetworkPolicy::Off
    }
}

impl std::str::FromStr for NetworkPolicy {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, crate::Error> {
        NetworkPolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                crate::Error::InvalidArgument(format!(
                    "unknown network policy '{s}'; use off, egress or egress+published-ports"
                ))
            })
    }
}

/// Params naming one workspace.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceRef {
    /// The workspace's id (12 hex characters) or its name.
    pub workspace_id: String,
}

impl WorkspaceRef {
    /// Names a workspace.
    pub fn new(workspace_id: impl Into<String>) -> Self {
        WorkspaceRef {
            workspace_id: workspace_id.into(),
        }
    }
}

/// One secret given at create: a literal value or a host file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// `^[A-Za-z_][A-Za-z0-9_]{0,63}$`.
    pub name: String,
    /// The value (non-empty UTF-8, at most 64 KiB). Exactly one of
    /// `value` and `file_path`.
    #[serde(default)]
    pub value: Option<String>,
    /// A host file holding the value.
    #[serde(default)]
    pub file_path: Option<PathBuf>,
}

/// Where a secret's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// Given as a value.
    Literal,
    /// Read from a host file at create.
    File,
}

/// A secret as shown: its name and source, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretInfo {
    /// Name (also the file under /run/pyro-secrets in the guest).
    pub name: String,
    /// `literal` or `file`.
    pub source_kind: SecretSource,
}

/// `workspace_create` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceCreateParams {
    /// Catalog name of the environment, e.g. `debian:12`.
    pub environment: String,
    /// Unique name to find it by: 1-120 printable characters, not 12 hex
    /// characters.
    #[serde(default)]
    pub name: Option<String>,
    /// Labels, key to value. Keys match `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`;
    /// values are 1-120 characters without newlines; at most 64 labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Guest vCPUs (1-8).
    #[serde(default = "defaults::vcpu_count")]
    pub vcpu_count: u32,
    /// Guest memory in MiB (256-32768).
    #[serde(default = "defaults::mem_mib")]
    pub mem_mib: u32,
    /// Stop the workspace after this many seconds without activity (it is
    /// never deleted): 60-604800.
    #[serde(default = "defaults::ttl_seconds")]
    pub ttl_seconds: u64,
    /// Network policy: off (no NIC), egress, or egress+published-ports.
    #[serde(default)]
    pub network_policy: NetworkPolicy,
    /// Must be false: pyro never runs commands on the host.
    #[serde(default)]
    pub allow_host_compat: bool,
    /// Host directory, or .tar/.tar.gz/.tgz archive, unpacked into
    /// /workspace. Relative paths resolve against the caller's working
    /// directory.
    #[serde(default)]
    pub seed_path: Option<PathBuf>,
    /// Secrets, stored on the host readable only by its owner and
    /// installed in the guest at /run/pyro-secrets/NAME (0600, tmpfs) on
    /// every boot; their values are redacted from everything pyro prints
    /// or stores.
    #[serde(default)]
    pub secrets: Vec<SecretSpec>,
}

impl WorkspaceCreateParams {
    /// Params with the documented defaults.
    pub fn new(environment: impl Into<String>) -> Self {
        WorkspaceCreateParams {
            environment: environment.into(),
            name: None,
            labels: BTreeMap::new(),
            vcpu_count: defaults::VCPU_COUNT,
            mem_mib: defaults::MEM_MIB,
            ttl_seconds: defaults::TTL_SECONDS,
            network_policy: NetworkPolicy::Off,
            allow_host_compat: false,
            seed_path: None,
            secrets: Vec::new(),
        }
    }
}

/// `workspace_list` params.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceListParams {
    /// Label filters, all of which must match: `KEY=VALUE` (the label has
    /// this value) or `KEY` (the label is set).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Only the workspace with this name.
    #[serde(default)]
    pub name: Option<String>,
    /// Only workspaces in this state (as observed: a guest that died is
    /// stopped).
    #[serde(default)]
    pub state: Option<WorkspaceState>,
    /// At most this many.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `workspace_update` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceUpdateParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// Remove the name.
    #[serde(default)]
    pub clear_name: bool,
    /// Labels to set, key to value.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Label keys to remove.
    #[serde(default)]
    pub clear_labels: Vec<String>,
}

/// `workspace_fork` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceForkParams {
    /// The running workspace to copy (id or name).
    pub workspace_id: String,
    /// The fork's name (names are unique; the source's is not copied).
    #[serde(default)]
    pub name: Option<String>,
    /// Labels set on the fork, over the ones it copies from the source.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `workspace_exec` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceExecParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// The command: a string run with `sh -lc`, or a list (program and
    /// arguments) run without a shell.
    pub command: CommandSpec,
    /// Absolute working directory in the guest.
    #[serde(default = "defaults::workspace_path")]
    pub cwd: String,
    /// Kill the command after this many seconds (exit code 124).
    #[serde(default = "defaults::timeout_seconds")]
    pub timeout_seconds: u64,
    /// Workspace secrets to put in this command's environment: secret
    /// name to environment variable name (the same name when empty).
    #[serde(default)]
    pub secret_env: BTreeMap<String, String>,
}

/// What /workspace was seeded from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceSeed {
    /// `empty`, `directory` or `archive`.
    pub mode: String,
    /// The host path it came from.
    pub seed_path: Option<PathBuf>,
    /// Where it was unpacked (`/workspace`).
    pub destination: String,
    /// Entries unpacked.
    pub entry_count: u64,
    /// File bytes unpacked.
    pub bytes_written: u64,
}

impl WorkspaceSeed {
    /// No seed.
    pub fn empty() -> Self {
        WorkspaceSeed {
            mode: "empty".into(),
            seed_path: None,
            destination: defaults::WORKSPACE_PATH.into(),
            entry_count: 0,
            bytes_written: 0,
        }
    }
}

/// The last command run.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct LastCommand {
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
}

impl From<pyro_store::LastCommand> for LastCommand {
    fn from(c: pyro_store::LastCommand) -> Self {
        LastCommand {
            sequence: c.sequence,
            command: c.command,
            cwd: c.cwd,
            exit_code: c.exit_code,
            duration_ms: c.duration_ms,
        }
    }
}

/// The workspace payload (create, status, update, stop, start).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceInfo {
    /// 12 hex characters.
    pub workspace_id: String,
    /// Unique name, if set.
    pub name: Option<String>,
    /// Labels, sorted by key.
    pub labels: BTreeMap<String, String>,
    /// Environment name.
    pub environment: String,
    /// Environment version.
    pub environment_version: String,
    /// creating, started, stopped or failed (as observed).
    pub state: WorkspaceState,
    /// vCPUs.
    pub vcpu_count: u32,
    /// Memory.
    pub mem_mib: u32,
    /// Idle TTL.
    pub ttl_seconds: Option<u64>,
    /// Creation time (Unix seconds).
    pub created_at: f64,
    /// Last mutating activity (Unix seconds).
    pub last_activity_at: f64,
    /// When the idle TTL stops it, while started.
    pub expires_at: Option<f64>,
    /// Network policy.
    pub network_policy: NetworkPolicy,
    /// Always `guest_vsock`.
    pub execution_mode: String,
    /// `/workspace`.
    pub workspace_path: String,
    /// Commands run so far.
    pub command_count: u64,
    /// The last one.
    pub last_command: Option<LastCommand>,
    /// Services (none yet).
    pub service_count: u64,
    /// Running services.
    pub running_service_count: u64,
    /// Why it is failed or stopped unexpectedly.
    pub last_error: Option<String>,
    /// What /workspace was seeded from.
    pub workspace_seed: WorkspaceSeed,
    /// Resets so far.
    pub reset_count: u64,
    /// When the last reset happened (Unix seconds).
    pub last_reset_at: Option<f64>,
    /// Its secrets: names and sources, never values.
    pub secrets: Vec<SecretInfo>,
    /// How its guest started (null while it is not running).
    pub boot: Option<BootInfo>,
}

/// How a guest started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BootMode {
    /// Resumed from a copy of a booted template.
    Template,
    /// Resumed from a copy of another workspace's running guest (fork).
    Fork,
    /// Booted its kernel.
    Cold,
}

impl BootMode {
    /// The name used in JSON and text.
    pub fn as_str(self) -> &'static str {
        match self {
            BootMode::Template => "template",
            BootMode::Fork => "fork",
            BootMode::Cold => "cold",
        }
    }
}

/// How a guest started, and why not from a template when it did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BootInfo {
    /// template, fork or cold.
    pub mode: BootMode,
    /// Why it booted cold (templates off, a stopped workspace's own disk,
    /// a template that could not be built or resumed).
    pub reason: Option<String>,
}

/// One row of `workspace_list`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct WorkspaceSummary {
    /// Id.
    pub workspace_id: String,
    /// Name.
    pub name: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Environment.
    pub environment: String,
    /// State (as observed).
    pub state: WorkspaceState,
    /// Creation time.
    pub created_at: f64,
    /// Last mutating activity.
    pub last_activity_at: f64,
    /// When the idle TTL stops it, while started.
    pub expires_at: Option<f64>,
    /// Commands run.
    pub command_count: u64,
    /// Services.
    pub service_count: u64,
    /// Running services.
    pub running_service_count: u64,
}

impl From<pyro_store::WorkspaceSummary> for WorkspaceSummary {
    fn from(s: pyro_store::WorkspaceSummary) -> Self {
        WorkspaceSummary {
            workspace_id: s.workspace_id,
            name: s.name,
            labels: s.labels,
            environment: s.environment,
            state: s.state.into(),
            created_at: s.created_at,
            last_activity_at: s.last_activity_at,
            expires_at: s.expires_at,
            command_count: s.command_count,
            service_count: s.service_count,
            running_service_count: s.running_service_count,
        }
    }
}

/// `workspace_list` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceList {
    /// How many.
    pub count: usize,
    /// The workspaces, most recently active first.
    pub workspaces: Vec<WorkspaceSummary>,
}

/// `workspace_exec` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceExecResult {
    /// Workspace.
    pub workspace_id: String,
    /// Environment.
    pub environment: String,
    /// Environment version.
    pub environment_version: String,
    /// Sequence number in the history.
    pub sequence: u64,
    /// The command as run.
    pub command: String,
    /// Working directory.
    pub cwd: String,
    /// What the command printed and how it ended.
    #[serde(flatten)]
    pub output: CommandOutput,
    /// Duration.
    pub duration_ms: u64,
    /// Always `guest_vsock`.
    pub execution_mode: String,
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
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
    /// When it finished (Unix seconds).
    pub recorded_at: f64,
    /// Captured stdout (at most 1 MiB).
    pub stdout: String,
    /// Captured stderr (at most 1 MiB).
    pub stderr: String,
}

impl From<pyro_store::CommandEntry> for CommandEntry {
    fn from(c: pyro_store::CommandEntry) -> Self {
        CommandEntry {
            sequence: c.sequence,
            command: c.command,
            cwd: c.cwd,
            exit_code: c.exit_code,
            duration_ms: c.duration_ms,
            recorded_at: c.recorded_at,
            stdout: c.stdout,
            stderr: c.stderr,
        }
    }
}

/// `workspace_logs` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceLogs {
    /// Workspace.
    pub workspace_id: String,
    /// How many entries.
    pub count: usize,
    /// History entries, oldest first.
    pub entries: Vec<CommandEntry>,
}

/// `workspace_delete` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DeleteResult {
    /// Workspace.
    pub workspace_id: String,
    /// Deleted.
    pub deleted: bool,
    /// Why (`explicit_delete`).
    pub reason: String,
}

/// `workspace_gc` result.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct GcResult {
    /// Started workspaces whose guest had died, now marked stopped.
    pub marked_stopped: Vec<String>,
    /// Creating workspaces whose creator died, now marked failed.
    pub marked_failed: Vec<String>,
    /// Started workspaces idle past their TTL, now stopped.
    pub idle_stopped: Vec<String>,
    /// Guest processes under the state dir that no record owned, killed
    /// (by pid).
    pub killed_orphans: Vec<u32>,
    /// Runtime directories with no workspace record, removed.
    pub removed_dirs: Vec<String>,
}

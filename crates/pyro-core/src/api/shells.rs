//! Params and results of the shell operations.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults;

fn cols() -> u16 {
    120
}
fn rows() -> u16 {
    30
}
fn max_chars() -> u64 {
    65536
}
fn yes() -> bool {
    true
}
fn int() -> String {
    "INT".into()
}

/// `shell_open` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellOpenParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// Starting directory (absolute).
    #[serde(default = "defaults::workspace_path")]
    pub cwd: String,
    /// Terminal columns (1-1000).
    #[serde(default = "cols")]
    pub cols: u16,
    /// Terminal rows (1-1000).
    #[serde(default = "rows")]
    pub rows: u16,
    /// Workspace secrets in the shell's environment: secret name to
    /// variable name (the same name when empty).
    #[serde(default)]
    pub secret_env: BTreeMap<String, String>,
}

/// Params naming one shell.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellRef {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// The shell (from `shell_open`).
    pub shell_id: String,
}

/// `shell_read` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellReadParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// The shell.
    pub shell_id: String,
    /// Offset into everything the shell printed; pass the previous
    /// `next_cursor` to read on.
    #[serde(default)]
    pub cursor: u64,
    /// At most this many bytes of output (1-131072).
    #[serde(default = "max_chars")]
    pub max_chars: u64,
    /// Render terminal control sequences away (colours, cursor moves;
    /// carriage returns and backspaces applied).
    #[serde(default)]
    pub plain: bool,
    /// First wait until the shell printed nothing for this many ms
    /// (1-10000), or ended; at most 10 s in all.
    #[serde(default)]
    pub wait_for_idle_ms: Option<u64>,
}

/// `shell_write` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellWriteParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// The shell.
    pub shell_id: String,
    /// What to type.
    pub input: String,
    /// Press Enter after it.
    #[serde(default = "yes")]
    pub append_newline: bool,
}

/// `shell_signal` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellSignalParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// The shell.
    pub shell_id: String,
    /// HUP, INT, TERM or KILL (any case), sent to the terminal's
    /// foreground process group.
    #[serde(default = "int")]
    pub signal_name: String,
}

/// A shell's record.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ShellInfo {
    /// Workspace.
    pub workspace_id: String,
    /// Id.
    pub shell_id: String,
    /// Starting directory.
    pub cwd: String,
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
    /// `running` or `stopped`.
    pub state: String,
    /// Start (Unix seconds, guest clock).
    pub started_at: f64,
    /// End.
    pub ended_at: Option<f64>,
    /// Exit code of the shell.
    pub exit_code: Option<i32>,
    /// Always `guest_vsock`.
    pub execution_mode: String,
}

/// `shell_read` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ShellRead {
    /// The shell.
    #[serde(flatten)]
    pub shell: ShellInfo,
    /// Where this output starts (later than asked when older output was
    /// dropped).
    pub cursor: u64,
    /// Where to read on.
    pub next_cursor: u64,
    /// The output (secret values redacted).
    pub output: String,
    /// Whether output before `cursor` was dropped (the shell keeps its
    /// last 1 MiB).
    pub truncated: bool,
    /// Whether control sequences were rendered away.
    pub plain: bool,
    /// The wait asked for.
    pub wait_for_idle_ms: Option<u64>,
}

/// `shell_write` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ShellWrite {
    /// The shell.
    #[serde(flatten)]
    pub shell: ShellInfo,
    /// Characters typed (without the newline).
    pub input_length: usize,
    /// Whether Enter was pressed after it.
    pub append_newline: bool,
}

/// `shell_signal` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ShellSignal {
    /// The shell.
    #[serde(flatten)]
    pub shell: ShellInfo,
    /// The signal sent.
    pub signal: String,
}

/// `shell_close` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ShellClosed {
    /// The shell, as it ended.
    #[serde(flatten)]
    pub shell: ShellInfo,
    /// Always true.
    pub closed: bool,
}

//! Params and results of the service operations.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{defaults, CommandSpec};

fn ready_timeout_seconds() -> u64 {
    30
}
fn ready_interval_ms() -> u64 {
    500
}
fn tail_lines() -> u64 {
    200
}

/// `service_start` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceStartParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`; a running service of that name
    /// is refused, an ended one replaced.
    pub service_name: String,
    /// The command: a string run with `sh -lc`, or program and arguments.
    pub command: CommandSpec,
    /// Absolute working directory in the guest.
    #[serde(default = "defaults::workspace_path")]
    pub cwd: String,
    /// Ready when this file exists (relative to /workspace or absolute
    /// under it). At most one `ready_*`.
    #[serde(default)]
    pub ready_file: Option<String>,
    /// Ready when a TCP connection to `HOST:PORT` in the guest succeeds.
    #[serde(default)]
    pub ready_tcp: Option<String>,
    /// Ready when an HTTP GET of this `http://` URL in the guest answers
    /// 2xx or 3xx.
    #[serde(default)]
    pub ready_http: Option<String>,
    /// Ready when this command (`sh -lc`, in `cwd`) exits 0.
    #[serde(default)]
    pub ready_command: Option<String>,
    /// Give up after this many seconds: the service is killed and failed.
    #[serde(default = "ready_timeout_seconds")]
    pub ready_timeout_seconds: u64,
    /// Time between readiness probes.
    #[serde(default = "ready_interval_ms")]
    pub ready_interval_ms: u64,
    /// Workspace secrets in the service's environment: secret name to
    /// variable name (the same name when empty).
    #[serde(default)]
    pub secret_env: BTreeMap<String, String>,
    /// Ports to publish on the host's 127.0.0.1 (each connection is carried
    /// to the guest's 127.0.0.1:guest_port): needs the
    /// egress+published-ports network policy.
    #[serde(default)]
    pub published_ports: Vec<PublishedPortSpec>,
}

/// A port to publish.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishedPortSpec {
    /// Port in the guest.
    pub guest_port: u16,
    /// Port on the host's 127.0.0.1 (picked when absent).
    #[serde(default)]
    pub host_port: Option<u16>,
}

/// Params naming one service.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRef {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// The service.
    pub service_name: String,
}

/// `service_logs` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceLogsParams {
    /// The workspace's id or name.
    pub workspace_id: String,
    /// The service.
    pub service_name: String,
    /// Last lines of each stream.
    #[serde(default = "tail_lines")]
    pub tail_lines: u64,
    /// Everything kept instead (logs are bounded: about 2 MiB a stream in
    /// the guest, the last 80 KiB of each in one answer).
    #[serde(default)]
    pub all: bool,
}

/// Where a service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Running.
    Running,
    /// Its process ended by itself.
    Exited,
    /// Stopped (by `service_stop`, or with its workspace).
    Stopped,
    /// Never became ready.
    Failed,
}

/// A service's readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Readiness {
    /// A file exists.
    File {
        /// The path.
        path: String,
    },
    /// A TCP port accepts connections.
    Tcp {
        /// `HOST:PORT`.
        address: String,
    },
    /// An HTTP URL answers 2xx/3xx.
    Http {
        /// The URL.
        url: String,
    },
    /// A command exits 0.
    Command {
        /// The command line.
        command: String,
    },
}

/// A published port.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PublishedPort {
    /// Host address (always 127.0.0.1).
    pub host: String,
    /// Host port.
    pub host_port: u16,
    /// Guest port.
    pub guest_port: u16,
    /// `tcp`.
    pub protocol: String,
}

/// A service's record.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ServiceInfo {
    /// Workspace.
    pub workspace_id: String,
    /// Name.
    pub service_name: String,
    /// running, exited, stopped or failed.
    pub state: ServiceState,
    /// The command.
    pub command: String,
    /// Working directory.
    pub cwd: String,
    /// Start time (Unix seconds, guest clock).
    pub started_at: f64,
    /// When it became ready.
    pub ready_at: Option<f64>,
    /// When it ended.
    pub ended_at: Option<f64>,
    /// Exit code (128+N after signal N).
    pub exit_code: Option<i32>,
    /// Process id in the guest while running.
    pub pid: Option<i32>,
    /// Why it ended: process_exited_before_ready, readiness_timeout,
    /// sigterm, sigkill, workspace_stopped, workspace_reset.
    pub stop_reason: Option<String>,
    /// Its readiness check.
    pub readiness: Option<Readiness>,
    /// Published ports.
    pub published_ports: Vec<PublishedPort>,
    /// Always `guest_vsock`.
    pub execution_mode: String,
}

/// `service_list` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServiceList {
    /// Workspace.
    pub workspace_id: String,
    /// How many.
    pub count: usize,
    /// How many run.
    pub running_count: usize,
    /// By name.
    pub services: Vec<ServiceInfo>,
}

/// `service_logs` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServiceLogs {
    /// The service's record.
    #[serde(flatten)]
    pub service: ServiceInfo,
    /// stdout (its end).
    pub stdout: String,
    /// stderr (its end).
    pub stderr: String,
    /// Lines asked for per stream (null with `all`).
    pub tail_lines: Option<u64>,
    /// Whether output was left out.
    pub truncated: bool,
}

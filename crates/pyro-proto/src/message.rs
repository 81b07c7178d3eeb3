//! Typed messages carried in frames, and a connection that speaks them.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::frame::{read_frame, write_frame, Frame, FrameKind};
use crate::{features, ProtoError, PROTOCOL_VERSION};

/// First message in each direction on every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's major protocol version ([`PROTOCOL_VERSION`]); peers
    /// talk when the majors are equal ([`check_peer_hello`]).
    pub protocol_version: u32,
    /// Free-form name and version of the sender, for diagnostics.
    pub peer: String,
    /// Names from [`crate::features`] the sender supports. Agents that
    /// predate feature lists send none; an empty list means
    /// [`features::BASE`] (see [`Hello::supports`]). Names a peer does not
    /// know are kept and ignored.
    #[serde(default)]
    pub features: Vec<String>,
}

impl Hello {
    /// A `Hello` of this build's major version listing `features`.
    pub fn new(peer: impl Into<String>, features: &[&str]) -> Self {
        Hello {
            protocol_version: PROTOCOL_VERSION,
            peer: peer.into(),
            features: features.iter().map(|f| f.to_string()).collect(),
        }
    }

    /// Whether the sender supports `feature` (a name from
    /// [`crate::features`]). An empty list stands for [`features::BASE`].
    pub fn supports(&self, feature: &str) -> bool {
        if self.features.is_empty() {
            features::BASE.contains(&feature)
        } else {
            self.features.iter().any(|f| f == feature)
        }
    }
}

/// The compatibility rule, the same on both sides: a peer whose major
/// version equals ours is accepted whatever its feature list (either side
/// may know more or fewer features; each checks [`Hello::supports`] before
/// relying on one). Another major is [`ProtoError::VersionMismatch`].
pub fn check_peer_hello(h: &Hello) -> Result<(), ProtoError> {
    if h.protocol_version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(ProtoError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: h.protocol_version,
        })
    }
}

/// Run a program in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// Program and arguments. Never passed through a shell.
    pub argv: Vec<String>,
    /// Variables added to (or replacing) the agent's base environment.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Working directory; the agent's default when absent.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Kill the whole process group after this many milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Give the command two vsock connections as its stdout and stderr
    /// instead of pipes through the agent (the host sets `output_token`).
    #[serde(default)]
    pub direct_output: bool,
    /// For direct output: the token the host's two `AttachOutput`
    /// connections carry. They may arrive before or after this request.
    #[serde(default)]
    pub output_token: Option<u64>,
}

/// How a service says it is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Readiness {
    /// A file exists (a guest path under /workspace).
    File {
        /// The path.
        path: String,
    },
    /// A TCP connection to `HOST:PORT` succeeds (1 s per try).
    Tcp {
        /// `HOST:PORT`.
        address: String,
    },
    /// An HTTP GET answers 2xx or 3xx (2 s per try; plain http only).
    Http {
        /// The URL.
        url: String,
    },
    /// `sh -lc COMMAND` in the service's directory exits 0 (10 s per try).
    Command {
        /// The command line.
        command: String,
    },
}

/// Start a long-running process in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStartRequest {
    /// Service name (unique in the guest while it runs).
    pub name: String,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// How the command is shown.
    pub command: String,
    /// Working directory.
    pub cwd: String,
    /// Variables added to the base environment.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// How it says it is ready; none means ready once started.
    #[serde(default)]
    pub readiness: Option<Readiness>,
    /// Give up (and kill it) after this long without readiness.
    pub ready_timeout_ms: u64,
    /// Time between readiness probes.
    pub ready_interval_ms: u64,
}

/// Where a service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Its process runs.
    Running,
    /// Its process ended by itself.
    Exited,
    /// It was stopped.
    Stopped,
    /// It never became ready (and was killed, or exited first).
    Failed,
}

/// A service as the agent knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Name.
    pub name: String,
    /// The command as shown.
    pub command: String,
    /// Working directory.
    pub cwd: String,
    /// State.
    pub state: ServiceState,
    /// Process (and group) id while known.
    pub pid: Option<i32>,
    /// Guest wall clock, Unix milliseconds.
    pub started_at_ms: u64,
    /// When it became ready.
    pub ready_at_ms: Option<u64>,
    /// When it ended.
    pub ended_at_ms: Option<u64>,
    /// Exit code (128+N after signal N).
    pub exit_code: Option<i32>,
    /// Why it ended: process_exited_before_ready, readiness_timeout,
    /// sigterm, sigkill.
    pub stop_reason: Option<String>,
    /// Its readiness check.
    pub readiness: Option<Readiness>,
}

/// A shell as the agent knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellStatus {
    /// Id (given by the host).
    pub shell_id: String,
    /// Starting directory.
    pub cwd: String,
    /// Terminal size.
    pub cols: u16,
    /// Terminal size.
    pub rows: u16,
    /// Whether its process still runs.
    pub running: bool,
    /// Guest wall clock, Unix milliseconds.
    pub started_at_ms: u64,
    /// When it ended.
    pub ended_at_ms: Option<u64>,
    /// Exit code (128+N after signal N).
    pub exit_code: Option<i32>,
}

/// Which output stream a connection carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// The command's stdout.
    Stdout,
    /// The command's stderr.
    Stderr,
}

/// What the host can ask of the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Liveness check.
    Ping,
    /// Run a command; answered with output frames and one `Exit`.
    Exec(ExecRequest),
    /// Flush file systems and power the guest off.
    Shutdown,
    /// Offer this connection as one output stream of the direct-output exec
    /// with this token (before or after its `Exec` arrives). After `Done`
    /// it carries only the command's raw bytes, then EOF.
    AttachOutput {
        /// The `output_token` of the exec it belongs to.
        token: u64,
        /// Which stream.
        stream: OutputStream,
    },
    /// On a direct-output exec's connection, after `Exit`: output streams
    /// are still held open (by background processes); kill the group.
    KillGroup,
    /// Unpack a tar stream into `dest`: the host then sends `Data` frames
    /// and an empty `Data` frame; the agent answers `Extracted`. Entries
    /// that are absolute, climb with `..`, are devices, FIFOs or hard links,
    /// or are symlinks pointing outside are refused.
    Extract {
        /// Directory to unpack into (created if missing).
        dest: String,
        /// Accept any symlink target (absolute, `..`): the guest restoring
        /// a snapshot of its own /workspace. Never set for host content.
        /// Agents that predate it ignore it (and refuse such links).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        any_link_targets: bool,
    },
    /// Transport benchmark: after `Done` the agent echoes raw bytes (no
    /// framing) until the host closes.
    RawEcho,
    /// Transport benchmark: after `Done` the agent writes `bytes` raw bytes
    /// (no framing) and closes.
    RawSource {
        /// How many bytes to send.
        bytes: u64,
    },
    /// List `path` (a directory's children, or all descendants when
    /// `recursive`; a file or symlink lists itself), never following a
    /// symlink. Answered with `Entries` frames, the last with `more: false`.
    ListFiles {
        /// Absolute guest path under the workspace root.
        path: String,
        /// Descend into subdirectories.
        recursive: bool,
    },
    /// Read up to `max_bytes` of a regular file: answered `FileHead`, then
    /// `Data` frames and an empty `Data` frame.
    ReadFile {
        /// Absolute guest path under the workspace root.
        path: String,
        /// Send at most this many bytes.
        max_bytes: u64,
    },
    /// Replace (or create) a regular file atomically with the `Data` frames
    /// that follow (ended by an empty one): written beside it, then renamed
    /// over it. An existing file keeps its mode and owner; a new one gets
    /// `new_file_mode`. Missing parents are created. Answered `Written`.
    WriteFile {
        /// Absolute guest path under the workspace root.
        path: String,
        /// Mode of a file that did not exist.
        new_file_mode: u32,
    },
    /// Apply the unified diff in the `Data` frames that follow to files
    /// under `root`, all or nothing. Answered `Patched`.
    ApplyPatch {
        /// Directory the patch's paths are relative to.
        root: String,
    },
    /// Write a secret to `/run/pyro-secrets/<name>` (0600, in a 0700
    /// directory on the guest's tmpfs), replacing it. Answered `Done`.
    InstallSecret {
        /// `^[A-Za-z_][A-Za-z0-9_]{0,63}$`.
        name: String,
        /// The value.
        value: String,
    },
    /// Start a service and wait for its readiness: answered `Service`.
    ServiceStart(ServiceStartRequest),
    /// Every service the agent knows: answered `Services`.
    ServiceList,
    /// Stop a service (TERM to its group, KILL after 5 s): answered
    /// `Service`.
    ServiceStop {
        /// Name.
        name: String,
    },
    /// The end of a service's output: answered `ServiceLogs`.
    ServiceLogs {
        /// Name.
        name: String,
        /// Last lines per stream; all kept output when absent.
        tail_lines: Option<u64>,
    },
    /// Start an interactive shell on a new pseudo-terminal: answered
    /// `Shell`.
    ShellOpen {
        /// Id for later requests.
        shell_id: String,
        /// Starting directory.
        cwd: String,
        /// Terminal columns.
        cols: u16,
        /// Terminal rows.
        rows: u16,
        /// Variables added to the base environment.
        #[serde(default)]
        env: Vec<(String, String)>,
    },
    /// Output from `cursor` (an offset into everything the shell printed):
    /// answered `ShellOutput`.
    ShellRead {
        /// Which shell.
        shell_id: String,
        /// Where to start.
        cursor: u64,
        /// At most this many bytes.
        max_bytes: u64,
        /// First wait until no output came for this long (or the shell
        /// ended, or `max_bytes` are there); at most 10 s of waiting.
        idle_ms: Option<u64>,
    },
    /// Type into the shell: answered `Shell`.
    ShellWrite {
        /// Which shell.
        shell_id: String,
        /// The bytes.
        input: String,
    },
    /// Signal the shell's foreground process group: answered `Shell`.
    ShellSignal {
        /// Which shell.
        shell_id: String,
        /// Signal number.
        signal: i32,
    },
    /// End the shell (HUP, then KILL) and forget it: answered `Shell`.
    ShellClose {
        /// Which shell.
        shell_id: String,
    },
    /// Send `path` as a tar stream: answered `ArchiveHead`, then `Data`
    /// frames, an empty `Data` frame and `Archived`. A directory's
    /// contents are archived relative to it; a file or symlink is one
    /// entry named after it. Symlinks are archived, never followed.
    Archive {
        /// Absolute guest path under the workspace root.
        path: String,
    },
    /// Connect to `port` on the guest's 127.0.0.1: answered `Done`, after
    /// which the connection carries that TCP stream's bytes both ways
    /// (published ports).
    TcpConnect {
        /// Guest TCP port.
        port: u16,
    },
    /// Make this guest its own machine (after a resume from a template,
    /// and on every boot): mix `entropy` into the kernel's random pool and
    /// reseed it, set the wall clock, write /etc/machine-id and set the
    /// hostname. Answered `Done`.
    SetIdentity {
        /// Host time, milliseconds since the Unix epoch.
        unix_time_ms: u64,
        /// Fresh random bytes from the host, hex.
        entropy_hex: String,
        /// 32 lowercase hex digits.
        machine_id: String,
        /// The hostname.
        hostname: String,
    },
}

/// The `op` of every [`Request`] this build knows. A request frame with any
/// other `op` decodes as [`ProtoError::UnsupportedOp`].
const KNOWN_OPS: &[&str] = &[
    "ping",
    "exec",
    "shutdown",
    "attach_output",
    "kill_group",
    "extract",
    "raw_echo",
    "raw_source",
    "list_files",
    "read_file",
    "write_file",
    "apply_patch",
    "archive",
    "install_secret",
    "service_start",
    "service_list",
    "service_stop",
    "service_logs",
    "shell_open",
    "shell_read",
    "shell_write",
    "shell_signal",
    "shell_close",
    "tcp_connect",
    "set_identity",
];

impl Request {
    /// The `op` this request has on the wire.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::Exec(_) => "exec",
            Request::Shutdown => "shutdown",
            Request::AttachOutput { .. } => "attach_output",
            Request::KillGroup => "kill_group",
            Request::Extract { .. } => "extract",
            Request::RawEcho => "raw_echo",
            Request::RawSource { .. } => "raw_source",
            Request::ListFiles { .. } => "list_files",
            Request::ReadFile { .. } => "read_file",
            Request::WriteFile { .. } => "write_file",
            Request::ApplyPatch { .. } => "apply_patch",
            Request::Archive { .. } => "archive",
            Request::InstallSecret { .. } => "install_secret",
            Request::ServiceStart(_) => "service_start",
            Request::ServiceList => "service_list",
            Request::ServiceStop { .. } => "service_stop",
            Request::ServiceLogs { .. } => "service_logs",
            Request::ShellOpen { .. } => "shell_open",
            Request::ShellRead { .. } => "shell_read",
            Request::ShellWrite { .. } => "shell_write",
            Request::ShellSignal { .. } => "shell_signal",
            Request::ShellClose { .. } => "shell_close",
            Request::TcpConnect { .. } => "tcp_connect",
            Request::SetIdentity { .. } => "set_identity",
        }
    }

    /// The feature (from [`crate::features`]) this operation belongs to.
    pub fn feature(&self) -> &'static str {
        match self {
            Request::Ping => features::PING,
            Request::Exec(_) => features::EXEC,
            Request::Shutdown => features::SHUTDOWN,
            Request::AttachOutput { .. } => features::DIRECT_OUTPUT,
            Request::KillGroup => features::KILL_GROUP,
            Request::Extract { .. } => features::EXTRACT,
            Request::RawEcho | Request::RawSource { .. } => features::RAW_BENCH,
            Request::ListFiles { .. } | Request::ReadFile { .. } | Request::WriteFile { .. } => {
                features::FILES
            }
            Request::ApplyPatch { .. } => features::PATCH,
            Request::Archive { .. } => features::ARCHIVE,
            Request::InstallSecret { .. } => features::SECRETS,
            Request::ServiceStart(_)
            | Request::ServiceList
            | Request::ServiceStop { .. }
            | Request::ServiceLogs { .. } => features::SERVICES,
            Request::ShellOpen { .. }
            | Request::ShellRead { .. }
            | Request::ShellWrite { .. }
            | Request::ShellSignal { .. }
            | Request::ShellClose { .. } => features::SHELLS,
            Request::TcpConnect { .. } => features::TCP_CONNECT,
            Request::SetIdentity { .. } => features::IDENTITY,
        }
    }

    /// Every feature the agent needs to carry this request out: its
    /// [`Request::feature`], plus [`features::DIRECT_OUTPUT`] for an `Exec`
    /// with an `output_token` (its stdout arrives by `AttachOutput`).
    pub fn required_features(&self) -> &'static [&'static str] {
        match self {
            Request::Exec(r) if r.output_token.is_some() => {
                &[features::EXEC, features::DIRECT_OUTPUT]
            }
            Request::Ping => &[features::PING],
            Request::Exec(_) => &[features::EXEC],
            Request::Shutdown => &[features::SHUTDOWN],
            Request::AttachOutput { .. } => &[features::DIRECT_OUTPUT],
            Request::KillGroup => &[features::KILL_GROUP],
            Request::Extract { .. } => &[features::EXTRACT],
            Request::RawEcho | Request::RawSource { .. } => &[features::RAW_BENCH],
            Request::ListFiles { .. } | Request::ReadFile { .. } | Request::WriteFile { .. } => {
                &[features::FILES]
            }
            Request::ApplyPatch { .. } => &[features::PATCH],
            Request::Archive { .. } => &[features::ARCHIVE],
            Request::InstallSecret { .. } => &[features::SECRETS],
            Request::ServiceStart(_)
            | Request::ServiceList
            | Request::ServiceStop { .. }
            | Request::ServiceLogs { .. } => &[features::SERVICES],
            Request::ShellOpen { .. }
            | Request::ShellRead { .. }
            | Request::ShellWrite { .. }
            | Request::ShellSignal { .. }
            | Request::ShellClose { .. } => &[features::SHELLS],
            Request::TcpConnect { .. } => &[features::TCP_CONNECT],
            Request::SetIdentity { .. } => &[features::IDENTITY],
        }
    }

    /// Decodes a request payload, telling a structurally broken one
    /// ([`ProtoError::Malformed`]: not JSON, no string `op`, a known `op`
    /// with bad fields) from a well-formed one whose `op` this build does
    /// not know ([`ProtoError::UnsupportedOp`], from a newer host).
    fn decode_payload(payload: &[u8]) -> Result<Self, ProtoError> {
        let malformed = |reason: String| ProtoError::Malformed {
            kind: FrameKind::Request,
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(payload).map_err(|e| malformed(e.to_string()))?;
        let op = match value.get("op") {
            Some(serde_json::Value::String(op)) => op.clone(),
            Some(_) => return Err(malformed("`op` is not a string".into())),
            None => return Err(malformed("missing field `op`".into())),
        };
        if !KNOWN_OPS.contains(&op.as_str()) {
            return Err(ProtoError::UnsupportedOp(op));
        }
        serde_json::from_value(value).map_err(|e| malformed(e.to_string()))
    }
}

/// Answers to requests other than `Exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// Answer to `Ping`.
    Pong {
        /// Milliseconds since the agent started.
        uptime_ms: u64,
    },
    /// The request was carried out.
    Done,
    /// Answer to `Extract`.
    Extracted {
        /// Entries unpacked.
        entry_count: u64,
        /// File bytes written.
        bytes_written: u64,
    },
    /// A batch of a `ListFiles` answer.
    Entries {
        /// Entries, sorted by path within the whole answer.
        entries: Vec<FileEntry>,
        /// Whether more batches follow.
        more: bool,
    },
    /// Start of a `ReadFile` answer: the file's full size (what follows
    /// may be less).
    FileHead {
        /// Size of the file.
        size_bytes: u64,
    },
    /// Answer to `WriteFile`.
    Written {
        /// Bytes in the file now.
        bytes_written: u64,
        /// Its mode (permission bits).
        mode: u32,
    },
    /// Answer to `ApplyPatch`: what changed, sorted by path.
    Patched {
        /// One per file of the patch.
        files: Vec<PatchedFile>,
    },
    /// A service's status.
    Service {
        /// It.
        service: ServiceStatus,
    },
    /// Every service.
    Services {
        /// Sorted by name.
        services: Vec<ServiceStatus>,
    },
    /// A shell's status.
    Shell {
        /// It.
        shell: ShellStatus,
    },
    /// A shell's output from a cursor.
    ShellOutput {
        /// It.
        shell: ShellStatus,
        /// Where the output starts (later than asked when older output was
        /// dropped from the buffer).
        cursor: u64,
        /// Where the next read should start.
        next_cursor: u64,
        /// The bytes, as text (invalid UTF-8 replaced).
        output: String,
        /// Whether output before `cursor` was dropped.
        truncated: bool,
    },
    /// A service's output.
    ServiceLogs {
        /// stdout (the kept end).
        stdout: String,
        /// stderr (the kept end).
        stderr: String,
        /// Whether either was cut.
        truncated: bool,
    },
    /// Start of an `Archive` answer: what `path` is.
    ArchiveHead {
        /// Its kind.
        kind: FileKind,
    },
    /// End of an `Archive` answer.
    Archived {
        /// Entries archived.
        entry_count: u64,
        /// File bytes archived.
        bytes: u64,
    },
}

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link (never followed).
    Symlink,
    /// Anything else (device, FIFO, socket).
    #[serde(other)]
    Other,
}

/// One entry of a `ListFiles` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Absolute guest path.
    pub path: String,
    /// What it is.
    pub kind: FileKind,
    /// Size in bytes (a symlink's is its target's length).
    pub size_bytes: u64,
    /// Permission bits.
    pub mode: u32,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}

/// How `ApplyPatch` changed one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchStatus {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

/// One file changed by `ApplyPatch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchedFile {
    /// Absolute guest path.
    pub path: String,
    /// What happened to it.
    pub status: PatchStatus,
}

/// How an executed command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit status: the code, `128 + signal` when killed, 124 on timeout.
    pub exit_code: i32,
    /// Signal that ended the process, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Whether the timeout killed the process group.
    #[serde(default)]
    pub timed_out: bool,
    /// Wall time inside the guest, from spawn to exit.
    pub duration_ms: u64,
}

/// Kinds of failure the agent reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The peers speak different major protocol versions.
    VersionMismatch,
    /// The agent does not support (or has disabled) the requested
    /// operation; [`RemoteError::feature`] names it.
    Unsupported,
    /// The request was malformed or invalid.
    BadRequest,
    /// A path the request names does not exist.
    NotFound,
    /// The program could not be started.
    SpawnFailed,
    /// Anything else that went wrong inside the agent.
    Internal,
    /// A code this build does not know (from a newer peer). Never sent.
    #[serde(other)]
    Unknown,
}

/// An error reported by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// Machine-readable kind.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
    /// For [`ErrorCode::Unsupported`]: the feature (or unknown `op`) that
    /// was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
}

impl RemoteError {
    /// An error of `code` without a feature.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RemoteError {
            code,
            message: message.into(),
            feature: None,
        }
    }

    /// The agent's answer to a request it does not support: `feature` is
    /// the refused feature name, or the `op` of an unknown request.
    pub fn unsupported(feature: &str) -> Self {
        RemoteError {
            code: ErrorCode::Unsupported,
            message: format!(
                "this guest agent does not support '{feature}'; its workspace was started \
                 by an older pyro, or the feature is disabled in it"
            ),
            feature: Some(feature.to_string()),
        }
    }
}

/// Any message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Version handshake.
    Hello(Hello),
    /// A request from the host.
    Request(Request),
    /// A non-exec answer from the agent.
    Response(Response),
    /// A chunk of stdout.
    Stdout(Vec<u8>),
    /// A chunk of stderr.
    Stderr(Vec<u8>),
    /// A chunk of an upload; empty ends it.
    Data(Vec<u8>),
    /// The command finished.
    Exit(ExitInfo),
    /// The agent could not do what was asked.
    Error(RemoteError),
}

impl Message {
    /// Short name for diagnostics.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Request(_) => "request",
            Message::Response(_) => "response",
            Message::Stdout(_) => "stdout",
            Message::Stderr(_) => "stderr",
            Message::Data(_) => "data",
            Message::Exit(_) => "exit",
            Message::Error(_) => "error",
        }
    }

    /// Decodes a frame's payload according to its kind. A `Request` whose
    /// `op` this build does not know is [`ProtoError::UnsupportedOp`]; any
    /// other undecodable control payload is [`ProtoError::Malformed`].
    pub fn decode(frame: Frame) -> Result<Self, ProtoError> {
        fn json<T: for<'de> Deserialize<'de>>(frame: &Frame) -> Result<T, ProtoError> {
            serde_json::from_slice(&frame.payload).map_err(|e| ProtoError::Malformed {
                kind: frame.kind,
                reason: e.to_string(),
            })
        }
        Ok(match frame.kind {
            FrameKind::Hello => Message::Hello(json(&frame)?),
            FrameKind::Request => Message::Request(Request::decode_payload(&frame.payload)?),
            FrameKind::Response => Message::Response(json(&frame)?),
            FrameKind::Exit => Message::Exit(json(&frame)?),
            FrameKind::Error => Message::Error(json(&frame)?),
            FrameKind::Stdout => Message::Stdout(frame.payload),
            FrameKind::Stderr => Message::Stderr(frame.payload),
            FrameKind::Data => Message::Data(frame.payload),
        })
    }

    /// Writes the message as one frame.
    pub fn encode<W: Write + ?Sized>(&self, w: &mut W) -> std::io::Result<()> {
        let (kind, payload): (FrameKind, std::borrow::Cow<'_, [u8]>) = match self {
            Message::Hello(m) => (FrameKind::Hello, to_json(m).into()),
            Message::Request(m) => (FrameKind::Request, to_json(m).into()),
            Message::Response(m) => (FrameKind::Response, to_json(m).into()),
            Message::Exit(m) => (FrameKind::Exit, to_json(m).into()),
            Message::Error(m) => (FrameKind::Error, to_json(m).into()),
            Message::Stdout(b) => (FrameKind::Stdout, b.as_slice().into()),
            Message::Stderr(b) => (FrameKind::Stderr, b.as_slice().into()),
            Message::Data(b) => (FrameKind::Data, b.as_slice().into()),
        };
        write_frame(w, kind, &payload)
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// A stream that exchanges [`Message`]s.
pub struct Connection<S> {
    stream: S,
}

impl<S: Read + Write> Connection<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> Self {
        Self { stream }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Gives the stream back (for raw, unframed use after a request).
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Sends one message.
    pub fn send(&mut self, message: &Message) -> Result<(), ProtoError> {
        message.encode(&mut self.stream)?;
        Ok(())
    }

    /// Receives one message; `Ok(None)` when the peer closed between frames.
    pub fn recv(&mut self) -> Result<Option<Message>, ProtoError> {
        match read_frame(&mut self.stream)? {
            Some(frame) => Ok(Some(Message::decode(frame)?)),
            None => Ok(None),
        }
    }

    /// Receives one message; EOF is an error.
    pub fn expect(&mut self) -> Result<Message, ProtoError> {
        self.recv()?.ok_or(ProtoError::UnexpectedEof)
    }

    /// Host side of the handshake: send our `Hello` (listing
    /// [`features::ALL`]), check the agent's with [`check_peer_hello`] and
    /// return it, so the caller can ask [`Hello::supports`].
    pub fn client_handshake(&mut self, peer: &str) -> Result<Hello, ProtoError> {
        self.send_hello(peer)?;
        self.expect_hello()
    }

    /// Sends our `Hello` and the first request back to back, then checks
    /// the agent's `Hello`: one round trip fewer than handshake-then-send.
    /// A mismatched agent answers `Error` and never acts on the request.
    pub fn client_handshake_with(
        &mut self,
        peer: &str,
        first: &Message,
    ) -> Result<Hello, ProtoError> {
        self.send_hello(peer)?;
        self.send(first)?;
        self.expect_hello()
    }

    fn send_hello(&mut self, peer: &str) -> Result<(), ProtoError> {
        self.send(&Message::Hello(Hello::new(peer, features::ALL)))
    }

    fn expect_hello(&mut self) -> Result<Hello, ProtoError> {
        match self.expect()? {
            Message::Hello(h) => {
                check_peer_hello(&h)?;
                Ok(h)
            }
            Message::Error(e) => Err(ProtoError::Refused(e)),
            other => Err(ProtoError::Unexpected(other.name())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(m: &Message) -> Message {
        let mut buf = Vec::new();
        m.encode(&mut buf).unwrap();
        let frame = read_frame(&mut buf.as_slice()).unwrap().unwrap();
        Message::decode(frame).unwrap()
    }

    #[test]
    fn request_json_shape_is_stable() {
        let req = Request::Exec(ExecRequest {
            argv: vec!["true".into()],
            env: vec![],
            cwd: None,
            timeout_ms: Some(5),
            direct_output: false,
            output_token: None,
        });
        let v: serde_json::Value = serde_json::to_value(&req).unwrap();
        assert_eq!(v["op"], "exec");
        assert_eq!(v["timeout_ms"], 5);
    }

    fn decode_request(payload: &str) -> Result<Message, ProtoError> {
        Message::decode(Frame {
            kind: FrameKind::Request,
            payload: payload.as_bytes().to_vec(),
        })
    }

    #[test]
    fn malformed_requests_are_malformed() {
        for payload in [
            "not json",
            "[1, 2]",
            "{}",
            r#"{"argv": ["true"]}"#,
            r#"{"op": 7}"#,
            r#"{"op": "exec"}"#,
            r#"{"op": "extract", "dest": 3}"#,
            r#"{"op": "raw_source"}"#,
        ] {
            assert!(
                matches!(decode_request(payload), Err(ProtoError::Malformed { .. })),
                "{payload}: {:?}",
                decode_request(payload)
            );
        }
    }

    #[test]
    fn unknown_op_is_unsupported_with_its_name() {
        match decode_request(r#"{"op": "format_disk", "device": "/dev/vda"}"#) {
            Err(ProtoError::UnsupportedOp(op)) => assert_eq!(op, "format_disk"),
            other => panic!("unexpected {other:?}"),
        }
        // Unknown fields on a known op are ignored, not unsupported.
        assert_eq!(
            decode_request(r#"{"op": "ping", "since": 3}"#).unwrap(),
            Message::Request(Request::Ping)
        );
    }

    /// One request of every kind; the match makes adding a variant without
    /// listing it here a compile error.
    fn every_request() -> Vec<Request> {
        let exec = ExecRequest {
            argv: vec!["true".into()],
            env: vec![],
            cwd: None,
            timeout_ms: None,
            direct_output: false,
            output_token: None,
        };
        let all = vec![
            Request::Ping,
            Request::Exec(exec),
            Request::Shutdown,
            Request::AttachOutput {
                token: 1,
                stream: OutputStream::Stdout,
            },
            Request::KillGroup,
            Request::Extract {
                dest: "/w".into(),
                any_link_targets: false,
            },
            Request::RawEcho,
            Request::RawSource { bytes: 1 },
            Request::ListFiles {
                path: "/workspace".into(),
                recursive: true,
            },
            Request::ReadFile {
                path: "/workspace/a".into(),
                max_bytes: 9,
            },
            Request::WriteFile {
                path: "/workspace/a".into(),
                new_file_mode: 0o644,
            },
            Request::ApplyPatch {
                root: "/workspace".into(),
            },
            Request::Archive {
                path: "/workspace".into(),
            },
            Request::InstallSecret {
                name: "A".into(),
                value: "v".into(),
            },
            Request::ServiceStart(ServiceStartRequest {
                name: "web".into(),
                argv: vec!["true".into()],
                command: "true".into(),
                cwd: "/workspace".into(),
                env: vec![],
                readiness: Some(Readiness::File {
                    path: "/workspace/.ready".into(),
                }),
                ready_timeout_ms: 1000,
                ready_interval_ms: 100,
            }),
            Request::ServiceList,
            Request::ServiceStop { name: "web".into() },
            Request::ServiceLogs {
                name: "web".into(),
                tail_lines: Some(5),
            },
            Request::ShellOpen {
                shell_id: "s".into(),
                cwd: "/workspace".into(),
                cols: 80,
                rows: 24,
                env: vec![],
            },
            Request::ShellRead {
                shell_id: "s".into(),
                cursor: 0,
                max_bytes: 10,
                idle_ms: None,
            },
            Request::ShellWrite {
                shell_id: "s".into(),
                input: "ls\n".into(),
            },
            Request::ShellSignal {
                shell_id: "s".into(),
                signal: 2,
            },
            Request::ShellClose {
                shell_id: "s".into(),
            },
            Request::TcpConnect { port: 8080 },
            Request::SetIdentity {
                unix_time_ms: 1,
                entropy_hex: "00".into(),
                machine_id: "0".repeat(32),
                hostname: "pyro".into(),
            },
        ];
        for r in &all {
            match r {
                Request::Ping
                | Request::Exec(_)
                | Request::Shutdown
                | Request::AttachOutput { .. }
                | Request::KillGroup
                | Request::Extract { .. }
                | Request::RawEcho
                | Request::RawSource { .. }
                | Request::ListFiles { .. }
                | Request::ReadFile { .. }
                | Request::WriteFile { .. }
                | Request::ApplyPatch { .. }
                | Request::Archive { .. }
                | Request::InstallSecret { .. }
                | Request::ServiceStart(_)
                | Request::ServiceList
                | Request::ServiceStop { .. }
                | Request::ServiceLogs { .. }
                | Request::ShellOpen { .. }
                | Request::ShellRead { .. }
                | Request::ShellWrite { .. }
                | Request::ShellSignal { .. }
                | Request::ShellClose { .. }
                | Request::TcpConnect { .. }
                | Request::SetIdentity { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_request_has_a_known_op_and_a_feature() {
        let all = every_request();
        assert_eq!(all.len(), KNOWN_OPS.len());
        for r in all {
            let v = serde_json::to_value(&r).unwrap();
            assert_eq!(v["op"], r.op());
            assert!(KNOWN_OPS.contains(&r.op()), "{}", r.op());
            assert!(features::ALL.contains(&r.feature()), "{}", r.feature());
            // Operations added after the first agents shipped are outside
            // the base set, so the host checks for them.
            let late = [
                features::FILES,
                features::PATCH,
                features::ARCHIVE,
                features::SECRETS,
                features::SERVICES,
                features::SHELLS,
                features::TCP_CONNECT,
                features::IDENTITY,
            ];
            assert_eq!(
                features::BASE.contains(&r.feature()),
                !late.contains(&r.feature()),
                "{}",
                r.feature()
            );
            assert_eq!(r.required_features()[0], r.feature());
            assert_eq!(roundtrip(&Message::Request(r.clone())), Message::Request(r));
        }
        let direct = Request::Exec(ExecRequest {
            argv: vec!["true".into()],
            env: vec![],
            cwd: None,
            timeout_ms: None,
            direct_output: true,
            output_token: Some(9),
        });
        assert_eq!(
            direct.required_features(),
            &[features::EXEC, features::DIRECT_OUTPUT]
        );
    }

    #[test]
    fn hello_without_features_is_an_old_agent_with_the_base_set() {
        let frame = Frame {
            kind: FrameKind::Hello,
            payload: br#"{"protocol_version":1,"peer":"pyro-agent 0.0.9"}"#.to_vec(),
        };
        let Message::Hello(h) = Message::decode(frame).unwrap() else {
            panic!("not a hello");
        };
        assert!(h.features.is_empty());
        check_peer_hello(&h).unwrap();
        for f in features::BASE {
            assert!(h.supports(f), "{f}");
        }
        assert!(!h.supports("pty"));
    }

    #[test]
    fn hello_lists_features_and_old_peers_ignore_the_field() {
        let h = Hello::new("host", &[features::EXEC, "pty"]);
        assert!(h.supports("pty"));
        assert!(h.supports(features::EXEC));
        assert!(!h.supports(features::EXTRACT));
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["features"], serde_json::json!(["exec", "pty"]));
        assert_eq!(v["protocol_version"], PROTOCOL_VERSION);
        // What an agent that predates feature lists decodes it as.
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct OldHello {
            protocol_version: u32,
            peer: String,
        }
        let old: OldHello = serde_json::from_value(v).unwrap();
        assert_eq!(old.protocol_version, PROTOCOL_VERSION);
    }

    #[test]
    fn equal_majors_talk_whatever_their_features() {
        let ours = Hello::new("agent", features::ALL);
        let mut more = ours.clone();
        more.features.push("teleport".into());
        let fewer = Hello::new("agent", &[features::PING]);
        for h in [&ours, &more, &fewer] {
            check_peer_hello(h).unwrap();
        }
    }

    #[test]
    fn another_major_is_refused() {
        for v in [0, PROTOCOL_VERSION + 1] {
            let mut h = Hello::new("future", features::ALL);
            h.protocol_version = v;
            match check_peer_hello(&h) {
                Err(ProtoError::VersionMismatch { ours, theirs }) => {
                    assert_eq!((ours, theirs), (PROTOCOL_VERSION, v))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_error_codes_decode_as_unknown() {
        let frame = Frame {
            kind: FrameKind::Error,
            payload: br#"{"code":"quota_exceeded","message":"no","retry_ms":5}"#.to_vec(),
        };
        assert_eq!(
            Message::decode(frame).unwrap(),
            Message::Error(RemoteError::new(ErrorCode::Unknown, "no"))
        );
    }

    #[test]
    fn unsupported_errors_name_the_feature_and_old_errors_have_none() {
        let e = RemoteError::unsupported("format_disk");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], "unsupported");
        assert_eq!(v["feature"], "format_disk");
        assert!(e
            .message
            .starts_with("this guest agent does not support 'format_disk'; "));
        let plain = serde_json::to_value(RemoteError::new(ErrorCode::Internal, "x")).unwrap();
        assert!(plain.get("feature").is_none());
        let old: RemoteError =
            serde_json::from_str(r#"{"code":"bad_request","message":"m"}"#).unwrap();
        assert_eq!(old, RemoteError::new(ErrorCode::BadRequest, "m"));
    }

    /// The agent refusing our `Hello` surfaces as `Refused` with its error.
    #[test]
    fn handshake_reports_a_refusal_and_checks_the_major() {
        struct Scripted {
            input: std::io::Cursor<Vec<u8>>,
            output: Vec<u8>,
        }
        impl Read for Scripted {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                self.input.read(b)
            }
        }
        impl Write for Scripted {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.output.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let answer = |m: Message| {
            let mut buf = Vec::new();
            m.encode(&mut buf).unwrap();
            Connection::new(Scripted {
                input: std::io::Cursor::new(buf),
                output: Vec::new(),
            })
        };
        let refusal = RemoteError::new(ErrorCode::VersionMismatch, "old");
        let mut conn = answer(Message::Error(refusal.clone()));
        match conn.client_handshake("host") {
            Err(ProtoError::Refused(e)) => assert_eq!(e, refusal),
            other => panic!("unexpected {other:?}"),
        }
        let mut future = Hello::new("agent", &[]);
        future.protocol_version += 1;
        let mut conn = answer(Message::Hello(future));
        assert!(matches!(
            conn.client_handshake("host"),
            Err(ProtoError::VersionMismatch { .. })
        ));
        // Our own Hello lists every feature of this build.
        let sent = read_frame(&mut conn.get_ref().output.as_slice())
            .unwrap()
            .unwrap();
        let Message::Hello(ours) = Message::decode(sent).unwrap() else {
            panic!("not a hello");
        };
        assert_eq!(ours, Hello::new("host", features::ALL));
        let mut conn = answer(Message::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            peer: "old agent".into(),
            features: vec![],
        }));
        let theirs = conn.client_handshake("host").unwrap();
        assert!(theirs.supports(features::EXEC));
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (
                any::<u32>(),
                ".{0,20}",
                proptest::collection::vec("[a-z_]{0,12}", 0..8)
            )
                .prop_map(|(v, p, features)| Message::Hello(Hello {
                    protocol_version: v,
                    peer: p,
                    features,
                })),
            (
                proptest::collection::vec(".{0,10}", 0..5),
                proptest::collection::vec((".{0,5}", ".{0,5}"), 0..3),
                proptest::option::of(".{0,10}"),
                proptest::option::of(any::<u64>())
            )
                .prop_map(|(argv, env, cwd, timeout_ms)| Message::Request(
                    Request::Exec(ExecRequest {
                        argv,
                        env,
                        cwd,
                        timeout_ms,
                        direct_output: false,
                        output_token: None,
                    })
                )),
            Just(Message::Request(Request::Ping)),
            any::<u64>().prop_map(|u| Message::Response(Response::Pong { uptime_ms: u })),
            proptest::collection::vec(any::<u8>(), 0..2048).prop_map(Message::Stdout),
            proptest::collection::vec(any::<u8>(), 0..2048).prop_map(Message::Stderr),
            proptest::collection::vec(any::<u8>(), 0..2048).prop_map(Message::Data),
            (
                any::<i32>(),
                proptest::option::of(any::<i32>()),
                any::<bool>(),
                any::<u64>()
            )
                .prop_map(|(exit_code, signal, timed_out, duration_ms)| Message::Exit(
                    ExitInfo {
                        exit_code,
                        signal,
                        timed_out,
                        duration_ms
                    }
                )),
            (
                prop_oneof![
                    Just(ErrorCode::VersionMismatch),
                    Just(ErrorCode::Unsupported),
                    Just(ErrorCode::BadRequest),
                    Just(ErrorCode::SpawnFailed),
                    Just(ErrorCode::Internal),
                ],
                ".{0,40}",
                proptest::option::of("[a-z_]{0,12}")
            )
                .prop_map(|(code, message, feature)| Message::Error(RemoteError {
                    code,
                    message,
                    feature
                })),
        ]
    }

    proptest! {
        #[test]
        fn every_message_roundtrips(m in arb_message()) {
            prop_assert_eq!(roundtrip(&m), m);
        }

        /// Arbitrary bytes never panic and never allocate past the cap.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut input = bytes.as_slice();
            for _ in 0..64 {
                match read_frame(&mut input) {
                    Ok(Some(frame)) => { let _ = Message::decode(frame); }
                    Ok(None) | Err(_) => break,
                }
            }
        }

        /// Any strict prefix of a valid encoding is reported as truncated.
        #[test]
        fn prefixes_are_truncated(m in arb_message(), cut in any::<prop::sample::Index>()) {
            let mut buf = Vec::new();
            m.encode(&mut buf).unwrap();
            let cut = 1 + cut.index(buf.len() - 1);
            let res = read_frame(&mut &buf[..cut]);
            prop_assert!(matches!(res, Err(ProtoError::Truncated { .. })), "{:?}", res);
        }
    }
}

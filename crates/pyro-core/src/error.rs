//! The core error type, its stable codes, and hints as data.
//!
//! Every surface shows an error the same way: a stable [`ErrorCode`], a
//! one-line message that names the parameter (by its API name, e.g.
//! `mem_mib`) and says what is wrong, and optionally a [`Hint`]. A hint is
//! data, not text: each surface words it for itself ([`Hint::render`]), so a
//! CLI user reads a command line, an MCP client a tool name and a Python
//! user a method call. Core messages never contain CLI syntax.

use pyro_archive::ArchiveError;
use pyro_env::EnvError;
use pyro_store::StoreError;
use pyro_vmm::VmmError;
use schemars::JsonSchema;
use serde::Serialize;

/// Stable machine-readable error codes (the `error.code` JSON field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Bad input from the caller.
    InvalidArgument,
    /// The environment name is not in the catalog.
    UnknownEnvironment,
    /// The environment has not been pulled.
    EnvironmentNotInstalled,
    /// A host tool or component is missing or unusable.
    MissingDependency,
    /// Building an environment failed.
    EnvironmentBuildFailed,
    /// The guest could not be started.
    BootFailed,
    /// The guest died or became unreachable.
    GuestLost,
    /// The guest agent failed.
    AgentError,
    /// The guest agent is too old for the operation.
    Unsupported,
    /// The operation was interrupted by a signal or cancelled.
    Interrupted,
    /// No workspace (or other object) has that id or name.
    NotFound,
    /// The name is taken, or the request conflicts with itself.
    Conflict,
    /// The workspace is not in a state that allows the operation.
    InvalidState,
    /// The workspace store failed.
    StoreError,
    /// Host I/O failed.
    IoError,
}

impl ErrorCode {
    /// The code as a string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::UnknownEnvironment => "unknown_environment",
            ErrorCode::EnvironmentNotInstalled => "environment_not_installed",
            ErrorCode::MissingDependency => "missing_dependency",
            ErrorCode::EnvironmentBuildFailed => "environment_build_failed",
            ErrorCode::BootFailed => "boot_failed",
            ErrorCode::GuestLost => "guest_lost",
            ErrorCode::AgentError => "agent_error",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Interrupted => "interrupted",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::StoreError => "store_error",
            ErrorCode::IoError => "io_error",
        }
    }

    /// Whether the caller (not the host or guest) is at fault.
    pub fn is_usage(self) -> bool {
        matches!(
            self,
            ErrorCode::InvalidArgument
                | ErrorCode::UnknownEnvironment
                | ErrorCode::EnvironmentNotInstalled
                | ErrorCode::NotFound
                | ErrorCode::Conflict
                | ErrorCode::InvalidState
        )
    }
}

/// Which surface a message is worded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The `pyro` command line.
    Cli,
    /// MCP tools.
    Mcp,
    /// The Python SDK.
    Python,
}

/// A next step beyond what the message says, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// Check the host with doctor.
    RunDoctor,
    /// Install missing host tools.
    InstallHostTools,
    /// Build the environment first.
    PullEnvironment {
        /// The environment.
        environment: String,
    },
    /// See which workspaces exist.
    ListWorkspaces,
    /// Start the stopped workspace.
    StartWorkspace {
        /// Id or name as the user gave it.
        workspace: String,
    },
    /// Delete the workspace (it cannot be used any more).
    DeleteWorkspace {
        /// Id or name as the user gave it.
        workspace: String,
    },
    /// The guest may need more memory.
    RaiseMemory,
    /// The host has too little free memory for the guest.
    LowerMemory,
    /// Build the static guest agent.
    BuildStaticAgent,
    /// Use a shorter state directory (unix socket path limit).
    ShorterStateDir,
    /// Upgrade pyro (data written by a newer version).
    UpgradePyro,
    /// Restart the workspace so its guest runs this pyro's agent.
    RestartForNewAgent {
        /// Id or name.
        workspace: String,
    },
    /// Stop the workspace first (its disk is read on the host).
    StopWorkspace {
        /// Id or name.
        workspace: String,
    },
    /// List the workspace's snapshots.
    ListSnapshots {
        /// Id or name.
        workspace: String,
    },
}

impl Hint {
    /// The hint worded for one surface.
    pub fn render(&self, surface: Surface) -> String {
        use Surface::*;
        match (self, surface) {
            (Hint::RunDoctor, Cli) => "run `pyro doctor` to check QEMU, KVM and the vsock sidecar".into(),
            (Hint::RunDoctor, Mcp) => "the host cannot run guests right now; the operator should run `pyro doctor` on the host".into(),
            (Hint::RunDoctor, Python) => "call `pyro_mcp.Pyro().doctor()` to check QEMU, KVM and the vsock sidecar".into(),
            (Hint::InstallHostTools, Mcp) => "the host lacks tools pyro needs; the operator should run `make setup` in the pyro checkout".into(),
            (Hint::InstallHostTools, _) => "run `make setup` in the pyro checkout, or install the named Debian package".into(),
            (Hint::PullEnvironment { environment }, Cli) => format!("run `pyro env pull {environment}`"),
            (Hint::PullEnvironment { environment }, Mcp) => format!("the operator should build it on the host with `pyro env pull {environment}`"),
            (Hint::PullEnvironment { environment }, Python) => format!("call `pull_environment(\"{environment}\")`"),
            (Hint::ListWorkspaces, Cli) => "`pyro workspace list` shows the workspaces that exist".into(),
            (Hint::ListWorkspaces, Mcp) => "call `workspace_list` to see the workspaces that exist".into(),
            (Hint::ListWorkspaces, Python) => "`list_workspaces()` shows the workspaces that exist".into(),
            (Hint::StartWorkspace { workspace }, Cli) => format!("run `pyro workspace start {}`", shell_word(workspace)),
            (Hint::StartWorkspace { workspace }, Mcp) => format!("call `workspace_start` with workspace_id \"{workspace}\""),
            (Hint::StartWorkspace { workspace }, Python) => format!("call `start_workspace(\"{workspace}\")`"),
            (Hint::DeleteWorkspace { workspace }, Cli) => format!("delete it with `pyro workspace delete {}`", shell_word(workspace)),
            (Hint::DeleteWorkspace { workspace }, Mcp) => format!("delete it with `workspace_delete` (workspace_id \"{workspace}\")"),
            (Hint::DeleteWorkspace { workspace }, Python) => format!("delete it with `delete_workspace(\"{workspace}\")`"),
            (Hint::RaiseMemory, Cli) => "the command may have crashed the guest or exhausted its memory; try a larger --mem-mib".into(),
            (Hint::RaiseMemory, _) => "the command may have crashed the guest or exhausted its memory; try a larger mem_mib".into(),
            (Hint::LowerMemory, Cli) => "lower --mem-mib, or stop other guests".into(),
            (Hint::LowerMemory, _) => "lower mem_mib, or stop other guests".into(),
            (Hint::BuildStaticAgent, Cli | Python) => "build the static agent with `make build` (or `make agent`), or point PYRO_AGENT_PATH at a statically linked pyro-agent".into(),
            (Hint::BuildStaticAgent, Mcp) => "the operator should build the static agent with `make build` or set PYRO_AGENT_PATH".into(),
            (Hint::ShorterStateDir, _) => "set PYRO_STATE_DIR to a shorter path".into(),
            (Hint::UpgradePyro, _) => "upgrade pyro to the version that wrote this data".into(),
            (Hint::RestartForNewAgent { workspace }, Cli) => format!("its guest runs an older agent; restart it with `pyro workspace stop {w}` and `pyro workspace start {w}`", w = shell_word(workspace)),
            (Hint::RestartForNewAgent { workspace }, Mcp) => format!("its guest runs an older agent; call `workspace_stop` then `workspace_start` for \"{workspace}\""),
            (Hint::StopWorkspace { workspace }, Cli) => format!("stop it first with `pyro workspace stop {}`, or use the `workspace file` commands while it runs", shell_word(workspace)),
            (Hint::StopWorkspace { workspace }, Mcp) => format!("call `workspace_stop` for \"{workspace}\" first, or use the workspace_file_* tools while it runs"),
            (Hint::StopWorkspace { workspace }, Python) => format!("call `stop_workspace(\"{workspace}\")` first, or use the file methods while it runs"),
            (Hint::ListSnapshots { workspace }, Cli) => format!("`pyro workspace snapshot list {}` shows its snapshots", shell_word(workspace)),
            (Hint::ListSnapshots { workspace }, Mcp) => format!("call `snapshot_list` for \"{workspace}\" to see its snapshots"),
            (Hint::ListSnapshots { workspace }, Python) => format!("`list_snapshots(\"{workspace}\")` shows its snapshots"),
            (Hint::RestartForNewAgent { workspace }, Python) => format!("its guest runs an older agent; call `stop_workspace(\"{workspace}\")` then `start_workspace(\"{workspace}\")`"),
        }
    }
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    crate::api::shell_join(&[s.to_string()])
}

/// Everything the Manager can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input; the message names the field and the accepted range.
    #[error("{0}")]
    InvalidArgument(String),
    /// The workspace is not in a state that allows this.
    #[error("{message}")]
    InvalidState {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: Option<Hint>,
    },
    /// A path inside a workspace does not exist.
    #[error("{0}")]
    PathNotFound(String),
    /// Something already exists where the operation would create it.
    #[error("{0}")]
    Conflict(String),
    /// Interrupted by a signal or cancelled; the message says what was
    /// cleaned up.
    #[error("{0}")]
    Interrupted(String),
    /// Environment layer failure.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// VM layer failure.
    #[error(transparent)]
    Vmm(#[from] VmmError),
    /// A seed or upload was refused.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Store failure or rejected change.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Host I/O failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another error with a hint of the caller's choosing.
    #[error("{inner}")]
    Hinted {
        /// The error.
        inner: Box<Error>,
        /// Its hint.
        hint: Hint,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// This error with `hint` in place of its default one.
    pub fn with_hint(self, hint: Hint) -> Error {
        Error::Hinted {
            inner: Box::new(self),
            hint,
        }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::InvalidState { .. } => ErrorCode::InvalidState,
            Error::Interrupted(_) => ErrorCode::Interrupted,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::PathNotFound(_) => ErrorCode::NotFound,
            Error::Hinted { inner, .. } => inner.code(),
            Error::Env(e) => match e {
                EnvError::Unknown { .. } => ErrorCode::UnknownEnvironment,
                EnvError::NotInstalled(_) => ErrorCode::EnvironmentNotInstalled,
                EnvError::MissingTool { .. }
                | EnvError::AgentMissing(_)
                | EnvError::AgentNotStatic { .. }
                | EnvError::AgentForeign { .. } => ErrorCode::MissingDependency,
                EnvError::ToolFailed { .. }
                | EnvError::Incomplete(_)
                | EnvError::BadManifest { .. } => ErrorCode::EnvironmentBuildFailed,
                EnvError::Io { .. } => ErrorCode::IoError,
            },
            Error::Vmm(e) => match e {
                VmmError::QemuMissing
                | VmmError::QemuImgMissing
                | VmmError::VsockMissing
                | VmmError::Slirp4netnsMissing => ErrorCode::MissingDependency,
                VmmError::NetworkFailed(_) | VmmError::Template(_) => ErrorCode::BootFailed,
                VmmError::KvmUnavailable(_) | VmmError::SocketPathTooLong(_) => {
                    ErrorCode::InvalidArgument
                }
                VmmError::DiskMissing(_) => ErrorCode::InvalidState,
                VmmError::Fork(_) => ErrorCode::GuestLost,
                VmmError::Spawn { .. } | VmmError::BootFailed { .. } => ErrorCode::BootFailed,
                VmmError::GuestLost { .. } => ErrorCode::GuestLost,
                VmmError::Remote(r) if r.code == pyro_proto::ErrorCode::Unsupported => {
                    ErrorCode::Unsupported
                }
                VmmError::Remote(r) if r.code == pyro_proto::ErrorCode::BadRequest => {
                    ErrorCode::InvalidArgument
                }
                VmmError::Remote(r) if r.code == pyro_proto::ErrorCode::NotFound => {
                    ErrorCode::NotFound
                }
                VmmError::Remote(_) | VmmError::Agent(_) | VmmError::AgentTimeout(_) => {
                    ErrorCode::AgentError
                }
                VmmError::Io { .. } => ErrorCode::IoError,
            },
            Error::Archive(ArchiveError::Io { .. }) => ErrorCode::IoError,
            Error::Archive(_) => ErrorCode::InvalidArgument,
            Error::Store(e) => match e {
                StoreError::NotFound { .. } | StoreError::SnapshotNotFound { .. } => {
                    ErrorCode::NotFound
                }
                StoreError::DuplicateName { .. } | StoreError::Conflict { .. } => {
                    ErrorCode::Conflict
                }
                StoreError::Invalid { .. } | StoreError::NoChange => ErrorCode::InvalidArgument,
                _ => ErrorCode::StoreError,
            },
            Error::Io { .. } => ErrorCode::IoError,
        }
    }

    /// Whether the caller's input (not the host or guest) is at fault.
    pub fn is_usage(&self) -> bool {
        self.code().is_usage()
    }

    /// The next step, as data, when there is one.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Error::Hinted { hint, .. } => Some(hint.clone()),
            Error::InvalidState { hint, .. } => hint.clone(),
            Error::Env(EnvError::NotInstalled(env)) => Some(Hint::PullEnvironment {
                environment: env.clone(),
            }),
            Error::Env(EnvError::BadManifest { .. }) => None,
            Error::Env(EnvError::MissingTool { .. }) => Some(Hint::InstallHostTools),
            Error::Env(
                EnvError::AgentMissing(_)
                | EnvError::AgentNotStatic { .. }
                | EnvError::AgentForeign { .. },
            ) => Some(Hint::BuildStaticAgent),
            Error::Vmm(
                VmmError::QemuMissing
                | VmmError::QemuImgMissing
                | VmmError::VsockMissing
                | VmmError::Slirp4netnsMissing,
            ) => Some(Hint::InstallHostTools),
            Error::Vmm(VmmError::NetworkFailed(_)) => Some(Hint::RunDoctor),
            Error::Vmm(VmmError::SocketPathTooLong(_)) => Some(Hint::ShorterStateDir),
            Error::Vmm(VmmError::BootFailed { .. } | VmmError::Spawn { .. }) => {
                Some(Hint::RunDoctor)
            }
            Error::Vmm(VmmError::GuestLost { .. }) => Some(Hint::RaiseMemory),
            Error::Store(StoreError::NotFound { .. }) => Some(Hint::ListWorkspaces),
            Error::Store(StoreError::SnapshotNotFound { workspace, .. }) => {
                Some(Hint::ListSnapshots {
                    workspace: workspace.clone(),
                })
            }
            Error::Store(StoreError::SchemaTooNew { .. }) => Some(Hint::UpgradePyro),
            _ => None,
        }
    }

    /// The error as the JSON body every surface shares.
    pub fn body(&self, surface: Surface) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
            hint: self.hint().map(|h| h.render(surface)),
        }
    }

    /// The whole `{"ok": false, "error": ...}` envelope.
    pub fn envelope(&self, surface: Surface) -> ErrorEnvelope {
        ErrorEnvelope::new(self.body(surface))
    }
}

/// What every surface reports for a failed operation.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// One line saying what went wrong.
    pub message: String,
    /// What to do next, worded for the surface; absent when the message
    /// says it all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// `{"ok": false, "error": {...}}`: the JSON of every failed command.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorEnvelope {
    /// Always false.
    pub ok: bool,
    /// The error.
    pub error: ErrorBody,
}

impl ErrorEnvelope {
    /// Wraps a body.
    pub fn new(error: ErrorBody) -> Self {
        ErrorEnvelope { ok: false, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_worded_per_surface_and_messages_carry_no_cli_syntax() {
        let e = Error::Store(StoreError::NotFound { what: "w1".into() });
        assert_eq!(e.to_string(), "workspace 'w1' does not exist");
        let cli = e.body(Surface::Cli).hint.unwrap();
        let mcp = e.body(Surface::Mcp).hint.unwrap();
        let py = e.body(Surface::Python).hint.unwrap();
        assert!(cli.contains("pyro workspace list"), "{cli}");
        assert!(
            mcp.contains("workspace_list") && !mcp.contains("pyro "),
            "{mcp}"
        );
        assert!(py.contains("list_workspaces()"), "{py}");

        let e = crate::run::validate_resources(1, 32768).err();
        // Only on a host with less than 32 GiB free; then the message names
        // the parameter, and the flag appears only in the CLI hint.
        if let Some(e) = e {
            assert!(!e.to_string().contains("--"), "{e}");
            assert!(e.body(Surface::Cli).hint.unwrap().contains("--mem-mib"));
            assert!(e.body(Surface::Python).hint.unwrap().contains("mem_mib"));
        }
        let e = Error::InvalidState {
            message: "workspace x is stopped and must be started before exec".into(),
            hint: Some(Hint::StartWorkspace {
                workspace: "my ws".into(),
            }),
        };
        assert_eq!(e.code(), ErrorCode::InvalidState);
        assert_eq!(
            e.body(Surface::Cli).hint.unwrap(),
            "run `pyro workspace start 'my ws'`"
        );
        assert!(e
            .body(Surface::Mcp)
            .hint
            .unwrap()
            .contains("workspace_start"));
    }
}

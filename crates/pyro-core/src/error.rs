//! The core error type. Every adapter renders it the same way: a stable
//! `code`, a one-line message that says what to do, an optional hint.

use pyro_archive::ArchiveError;
use pyro_env::EnvError;
use pyro_store::StoreError;
use pyro_vmm::VmmError;

/// Stable machine-readable error codes (the `error.code` JSON field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Bad input from the caller.
    InvalidArgument,
    /// The environment name is not in the catalog.
    UnknownEnvironment,
    /// The environment has not been pulled.
    EnvironmentNotInstalled,
    /// A host tool or component is missing.
    MissingDependency,
    /// Building an environment failed.
    EnvironmentBuildFailed,
    /// The guest could not be started.
    BootFailed,
    /// The guest died or became unreachable.
    GuestLost,
    /// The guest agent failed.
    AgentError,
    /// The operation was interrupted by a signal.
    Interrupted,
    /// No workspace (or other object) has that id or name.
    NotFound,
    /// The name is taken, or the request conflicts with itself.
    Conflict,
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
            ErrorCode::Interrupted => "interrupted",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::StoreError => "store_error",
            ErrorCode::IoError => "io_error",
        }
    }
}

/// Everything the Manager can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input; the message names the field and the accepted range.
    #[error("{0}")]
    InvalidArgument(String),
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
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::Env(e) => match e {
                EnvError::Unknown { .. } => ErrorCode::UnknownEnvironment,
                EnvError::NotInstalled(_) => ErrorCode::EnvironmentNotInstalled,
                EnvError::MissingTool { .. } | EnvError::AgentMissing(_) => {
                    ErrorCode::MissingDependency
                }
                EnvError::ToolFailed { .. }
                | EnvError::Incomplete(_)
                | EnvError::BadManifest { .. } => ErrorCode::EnvironmentBuildFailed,
                EnvError::Io { .. } => ErrorCode::IoError,
            },
            Error::Vmm(e) => match e {
                VmmError::QemuMissing | VmmError::VsockMissing => ErrorCode::MissingDependency,
                VmmError::KvmUnavailable(_) | VmmError::SocketPathTooLong(_) => {
                    ErrorCode::InvalidArgument
                }
                VmmError::Spawn { .. } | VmmError::BootFailed { .. } => ErrorCode::BootFailed,
                VmmError::GuestLost { .. } => ErrorCode::GuestLost,
                VmmError::Agent(_) | VmmError::AgentTimeout(_) => ErrorCode::AgentError,
                VmmError::Io { .. } => ErrorCode::IoError,
            },
            Error::Archive(ArchiveError::Io { .. }) => ErrorCode::IoError,
            Error::Archive(_) => ErrorCode::InvalidArgument,
            Error::Store(e) => match e {
                StoreError::NotFound { .. } => ErrorCode::NotFound,
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
        matches!(
            self.code(),
            ErrorCode::InvalidArgument
                | ErrorCode::UnknownEnvironment
                | ErrorCode::EnvironmentNotInstalled
                | ErrorCode::NotFound
                | ErrorCode::Conflict
        )
    }

    /// A next step beyond what the message says, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Vmm(VmmError::BootFailed { .. }) => {
                Some("run `pyro doctor` to check QEMU, KVM and the vsock sidecar".into())
            }
            Error::Vmm(VmmError::GuestLost { .. }) => Some(
                "the command may have crashed the guest or exhausted its memory; try --mem-mib"
                    .into(),
            ),
            _ => None,
        }
    }
}

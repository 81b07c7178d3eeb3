//! The environment layer's error type.

use std::path::PathBuf;

/// What can go wrong with environments. Messages say what is wrong; the
/// agent errors carry no CLI syntax (each surface adds its own hint).
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The name is not in the catalog.
    #[error("unknown environment '{name}'; expected one of: {valid}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// Comma-separated catalog names.
        valid: String,
    },
    /// The environment exists but has not been pulled.
    #[error("environment '{0}' is not installed")]
    NotInstalled(String),
    /// A host tool needed for building is missing.
    #[error("{tool} is not installed (Debian package {package})")]
    MissingTool {
        /// The command.
        tool: &'static str,
        /// The Debian package providing it.
        package: &'static str,
    },
    /// A host tool ran and failed.
    #[error("{tool} failed ({status}): {detail}")]
    ToolFailed {
        /// The command.
        tool: &'static str,
        /// How it exited.
        status: String,
        /// Last lines of its output.
        detail: String,
    },
    /// The built tree lacks something the environment needs.
    #[error("environment build is incomplete: {0}")]
    Incomplete(String),
    /// The guest agent binary is missing or cannot be read.
    #[error("guest agent not found at {0} (or not readable)")]
    AgentMissing(PathBuf),
    /// The guest agent is not an x86_64 ELF64 executable (or is truncated
    /// or malformed).
    #[error("guest agent {path} is not a usable x86_64 Linux executable: {reason}")]
    AgentForeign {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The guest agent needs a dynamic loader or shared libraries, which
    /// the guest's initramfs does not have.
    #[error(
        "guest agent {path} is dynamically linked; it runs as PID 1 of a guest \
         with no shared libraries, so it must be statically linked"
    )]
    AgentNotStatic {
        /// The file.
        path: PathBuf,
    },
    /// A file system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A manifest could not be read.
    #[error("manifest {path} is unreadable ({reason}); the environment must be rebuilt")]
    BadManifest {
        /// Its path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl EnvError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EnvError {
        let context = context.into();
        move |source| EnvError::Io { context, source }
    }
}

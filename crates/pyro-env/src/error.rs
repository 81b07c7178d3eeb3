//! The environment layer's error type.

use std::path::PathBuf;

/// What can go wrong with environments. Messages say what to do next.
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
    #[error("environment '{0}' is not installed; run `pyro env pull {0}` first")]
    NotInstalled(String),
    /// A host tool needed for building is missing.
    #[error("`{tool}` is not installed; run `make setup` or `apt-get install {package}`")]
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
    /// The guest agent binary is missing.
    #[error("guest agent not found at {0}; build it with `make build` or set PYRO_AGENT_PATH")]
    AgentMissing(PathBuf),
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
    #[error("manifest {path} is unreadable ({reason}); run `pyro env pull --force` to rebuild")]
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

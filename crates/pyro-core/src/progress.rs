//! How a long operation tells its caller what is happening.
//!
//! Every Manager operation takes a `&mut dyn Progress`. Core never prints:
//! the CLI turns events into `[run] phase=...` lines on stderr, the MCP
//! server into progress notifications, the SDK into nothing (or a
//! callback). Command output travels through the same reporter, so a
//! surface can stream it as it arrives.

use pyro_env::PullPhase;

/// A step of a long operation, reported when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Preparing a one-shot VM (disk overlay, sockets).
    Create,
    /// Booting a guest until its agent is ready.
    Boot,
    /// Unpacking a seed into /workspace.
    Seed,
    /// Running a command.
    Execute,
    /// Powering a guest off.
    Stop,
    /// Copying a running guest (its agent is out of reach meanwhile).
    Fork,
}

impl Phase {
    /// Lowercase name, as printed in `phase=...`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Create => "create",
            Phase::Boot => "boot",
            Phase::Seed => "seed",
            Phase::Execute => "execute",
            Phase::Stop => "stop",
            Phase::Fork => "fork",
        }
    }
}

/// What a reporter hears besides output.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// A phase of the operation on `id` (a VM or workspace id) started.
    Phase {
        /// Which.
        phase: Phase,
        /// The VM or workspace.
        id: &'a str,
        /// Its environment.
        environment: &'a str,
    },
    /// Something the user should know (e.g. software emulation is slow).
    Notice(&'a str),
    /// An environment build entered a phase.
    Pull {
        /// The environment.
        environment: &'a str,
        /// Which phase.
        phase: PullPhase,
    },
    /// A line of build output.
    PullLine(&'a str),
}

/// Receives events and command output of one operation.
pub trait Progress {
    /// An event happened. Default: ignored.
    fn event(&mut self, _event: Event<'_>) {}
    /// A chunk of the command's stdout. Default: ignored.
    fn stdout(&mut self, _chunk: &[u8]) {}
    /// A chunk of the command's stderr. Default: ignored.
    fn stderr(&mut self, _chunk: &[u8]) {}
    /// Whether results should carry the whole output (`stdout`/`stderr`
    /// fields). A surface that streams output and prints no result sets
    /// this false, so memory stays flat however much a command prints.
    fn capture_output(&self) -> bool {
        true
    }
    /// Set by the caller to cancel the operation: guest commands it runs
    /// are stopped (their connection to the agent is shut, and the agent
    /// kills the command). Default: not cancellable.
    fn cancel_flag(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
        None
    }
}

/// A reporter that ignores everything and captures output in results.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Progress for Quiet {}

/// Adapts a [`Progress`] to the environment builder's reporter.
pub(crate) struct PullSink<'a> {
    pub(crate) progress: &'a mut dyn Progress,
    pub(crate) environment: &'a str,
}

impl pyro_env::PullReporter for PullSink<'_> {
    fn phase(&mut self, phase: PullPhase) {
        self.progress.event(Event::Pull {
            environment: self.environment,
            phase,
        });
    }
    fn progress(&mut self, line: &str) {
        self.progress.event(Event::PullLine(line));
    }
}

//! Commands in flight on a workspace. Every `exec` holds a shared flock on
//! `<dir>/commands.lock` while it runs; `fork` takes it exclusively: it
//! waits for running commands (its copy unplugs the agent's vsock device,
//! which would end them), and commands that arrive during the copy wait
//! for it.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

const FILE: &str = "commands.lock";

/// A held lock; released when dropped (the file is closed).
pub(crate) struct CommandsLock(#[allow(dead_code)] std::fs::File);

fn open(dir: &Path) -> Option<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(FILE))
        .ok()
}

impl CommandsLock {
    /// Marks a command running (waits while a fork copies the workspace).
    /// Best effort: without the file the command runs unmarked.
    pub(crate) fn shared(dir: &Path) -> Option<CommandsLock> {
        let f = open(dir)?;
        // SAFETY: flock on an open fd.
        (unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH) } == 0).then_some(CommandsLock(f))
    }

    /// Waits up to `limit` until no command runs; `None` if some still do.
    pub(crate) fn exclusive_within(dir: &Path, limit: Duration) -> Option<CommandsLock> {
        let f = open(dir)?;
        let deadline = Instant::now() + limit;
        loop {
            // SAFETY: flock on an open fd.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Some(CommandsLock(f));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

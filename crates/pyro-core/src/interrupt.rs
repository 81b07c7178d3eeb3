//! What an interrupted operation leaves behind, decided by the operation.
//!
//! A surface that catches SIGINT/SIGTERM (the CLI's signal thread) or a
//! cancellation calls [`handle`]: it kills the guests this process started
//! and runs the clean-up each operation in flight registered (a create
//! removes its half-made workspace, a start leaves its workspace stopped
//! with the reason, an exec says the workspace keeps running). The messages
//! returned are what really happened, for the user.
//!
//! Clean-ups run on the signalling thread while the operation's own thread
//! may still be running: they never take workspace locks (this process
//! already holds them) and only do idempotent things.

use std::sync::Mutex;

type Action = Box<dyn FnOnce() -> String + Send>;

static ACTIONS: Mutex<Vec<(u64, Action)>> = Mutex::new(Vec::new());
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn actions() -> std::sync::MutexGuard<'static, Vec<(u64, Action)>> {
    ACTIONS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Unregisters its clean-up when the operation ends normally.
#[must_use = "the clean-up is unregistered when the guard is dropped"]
pub(crate) struct Guard(u64);

impl Drop for Guard {
    fn drop(&mut self) {
        actions().retain(|(id, _)| *id != self.0);
    }
}

/// Registers what to do if this process is interrupted now; returns the
/// message describing what was done.
pub(crate) fn on_interrupt(action: impl FnOnce() -> String + Send + 'static) -> Guard {
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    actions().push((id, Box::new(action)));
    Guard(id)
}

/// Tears down this process's guests and runs every registered clean-up,
/// newest first. Returns one line saying what happened.
pub fn handle() -> String {
    // Taken before the guests go: an operation whose guest dies under it
    // returns and drops its guard, and its clean-up would be lost.
    let pending = std::mem::take(&mut *actions());
    let torn_down = pyro_vmm::live::teardown_all();
    let messages: Vec<String> = pending.into_iter().rev().map(|(_, a)| a()).collect();
    if !messages.is_empty() {
        format!("interrupted; {}", messages.join("; "))
    } else if torn_down > 0 {
        "interrupted; the guest was stopped and its files removed".into()
    } else {
        "interrupted".into()
    }
}

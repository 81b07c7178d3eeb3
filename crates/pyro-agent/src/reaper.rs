//! Zombie reaping and exit-status delivery.
//!
//! The agent is PID 1, so every orphan in the guest becomes its child and
//! must be reaped. One thread waits for SIGCHLD and reaps everything; exit
//! statuses of processes the exec handler spawned are handed to it through a
//! channel registered under the child's pid.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::{Mutex, MutexGuard};

static CHILDREN: Mutex<Option<HashMap<i32, Sender<i32>>>> = Mutex::new(None);

/// Locks the registry. Spawning holds this across `fork` so the reaper can
/// never reap a child before its channel is registered.
pub fn registry() -> MutexGuard<'static, Option<HashMap<i32, Sender<i32>>>> {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner())
}

fn sigchld_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        set
    }
}

/// Blocks SIGCHLD in the calling thread (and every thread it starts later).
pub fn block_sigchld() {
    let set = sigchld_set();
    // SAFETY: valid set pointer; a null old-set pointer is allowed.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Starts the reaper thread.
pub fn start() {
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(|| {
            let set = sigchld_set();
            loop {
                reap_all();
                // SAFETY: valid set; a null siginfo pointer is allowed.
                unsafe {
                    libc::sigwaitinfo(&set, std::ptr::null_mut());
                }
            }
        })
        .expect("spawning the reaper thread");
}

fn reap_all() {
    loop {
        let mut status = 0;
        // SAFETY: plain syscall with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        if let Some(tx) = registry().as_mut().and_then(|m| m.remove(&pid)) {
            let _ = tx.send(status);
        }
    }
}

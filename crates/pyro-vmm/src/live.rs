//! VMs this process owns, so a SIGINT/SIGTERM handler can tear them down.
//!
//! Helpers also carry PR_SET_PDEATHSIG, so they die even if pyro is killed
//! with SIGKILL; what that leaves behind (a runtime directory) is collected
//! by the next command.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

struct Entry {
    id: String,
    /// Removed on teardown: only a one-shot VM's directory. A workspace's
    /// holds its disk and is never removed here.
    dir: Option<PathBuf>,
    pids: Vec<u32>,
}

static LIVE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn lock() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a one-shot VM runtime directory to remove if the process is
/// interrupted.
pub fn register(id: &str, dir: &Path) {
    lock().push(Entry {
        id: id.to_string(),
        dir: Some(dir.to_path_buf()),
        pids: Vec::new(),
    });
}

/// Adds helper processes to kill for a VM (registering it, without a
/// directory to remove, if it was not).
pub(crate) fn add_pids(id: &str, pids: &[u32]) {
    let mut live = lock();
    match live.iter_mut().find(|e| e.id == id) {
        Some(e) => e.pids.extend_from_slice(pids),
        None => live.push(Entry {
            id: id.to_string(),
            dir: None,
            pids: pids.to_vec(),
        }),
    }
}

/// Forgets a VM (it was torn down normally).
pub fn unregister(id: &str) {
    lock().retain(|e| e.id != id);
}

/// Kills and reaps every registered VM's processes and removes one-shot
/// VMs' directories. Called from the signal handling thread before
/// exiting. Returns how many VMs it tore down.
pub fn teardown_all() -> usize {
    let entries = std::mem::take(&mut *lock());
    let count = entries.len();
    for e in entries {
        for pid in &e.pids {
            let pid = *pid as i32;
            // SAFETY: plain syscalls on our own children.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        if let Some(dir) = &e.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    count
}

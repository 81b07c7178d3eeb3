//! VMs this process owns, so a SIGINT/SIGTERM handler can tear them down.
//!
//! Helpers also carry PR_SET_PDEATHSIG, so they die even if pyro is killed
//! with SIGKILL; what that leaves behind (a runtime directory) is collected
//! by the next command.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

struct Entry {
    id: String,
    dir: PathBuf,
    pids: Vec<u32>,
}

static LIVE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn lock() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a VM runtime directory to remove if the process is interrupted.
pub fn register(id: &str, dir: &Path) {
    lock().push(Entry {
        id: id.to_string(),
        dir: dir.to_path_buf(),
        pids: Vec::new(),
    });
}

/// Adds helper processes to kill for a registered VM.
pub(crate) fn add_pids(id: &str, dir: &Path, pids: &[u32]) {
    let mut live = lock();
    match live.iter_mut().find(|e| e.id == id) {
        Some(e) => e.pids.extend_from_slice(pids),
        None => live.push(Entry {
            id: id.to_string(),
            dir: dir.to_path_buf(),
            pids: pids.to_vec(),
        }),
    }
}

/// Forgets a VM (it was torn down normally).
pub fn unregister(id: &str) {
    lock().retain(|e| e.id != id);
}

/// Kills and reaps every registered VM's processes and removes their
/// directories. Called from the signal handling thread before exiting.
pub fn teardown_all() {
    let entries = std::mem::take(&mut *lock());
    for e in entries {
        for pid in &e.pids {
            let pid = *pid as i32;
            // SAFETY: plain syscalls on our own children.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        let _ = std::fs::remove_dir_all(&e.dir);
    }
}

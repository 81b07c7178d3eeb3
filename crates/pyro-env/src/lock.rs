//! Advisory file locks (flock), released when dropped or when the process
//! dies, so a killed pull never leaves a stale lock.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// A held exclusive flock.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until the lock on `path` (created if missing) is held.
    pub fn acquire(path: &Path) -> std::io::Result<Self> {
        Self::lock(path, libc::LOCK_EX).map(|f| f.expect("blocking flock always returns a lock"))
    }

    /// Takes the lock if free; `None` if another process holds it.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<Self>> {
        Self::lock(path, libc::LOCK_EX | libc::LOCK_NB)
    }

    fn lock(path: &Path, op: i32) -> std::io::Result<Option<Self>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        loop {
            // SAFETY: valid fd.
            if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
                return Ok(Some(Self { _file: file }));
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => return Ok(None),
                _ => return Err(e),
            }
        }
    }
}

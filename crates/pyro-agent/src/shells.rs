//! Interactive shells on pseudo-terminals that outlive host connections.
//!
//! A shell is `bash --noprofile --norc -i` (or `sh -i`) in a new session
//! whose controlling terminal is a pty. A reader thread appends everything
//! the terminal prints to a bounded buffer ([`BUFFER_BYTES`]; older output
//! is dropped, and a read from before it says `truncated`). Offsets into
//! the whole output are the cursors the host reads with.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use pyro_proto::{ErrorCode, RemoteError, ShellStatus};

use crate::files::bad;
use crate::spawn::spawn_on_tty;

/// Output kept per shell.
pub const BUFFER_BYTES: usize = 1024 * 1024;
/// Longest a read waits for the output to go idle.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// Most output one answer carries (the frame limit, with JSON escaping).
const MAX_ANSWER: u64 = 128 * 1024;

struct Shell {
    status: ShellStatus,
    pid: i32,
    /// The pty's master side, for writes and the foreground group.
    master: File,
    buffer: VecDeque<u8>,
    /// Offset of `buffer[0]` in the whole output.
    start: u64,
    /// When output last arrived.
    last_output: Instant,
}

struct Entry {
    shell: Mutex<Shell>,
    changed: Condvar,
}

type Registry = Mutex<BTreeMap<String, Arc<Entry>>>;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Default::default)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn find(id: &str) -> Result<Arc<Entry>, RemoteError> {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .cloned()
        .ok_or_else(|| {
            RemoteError::new(ErrorCode::NotFound, format!("shell '{id}' does not exist"))
        })
}

fn lock(e: &Entry) -> std::sync::MutexGuard<'_, Shell> {
    e.shell.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens a pty pair (master, slave) with the given size.
fn open_pty(cols: u16, rows: u16) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid out-pointers and a valid winsize; null name/termios are
    // allowed.
    let ret = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    if ret != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openpty returned two fresh descriptors we now own.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&master, &slave] {
        // SAFETY: fcntl on our own descriptors.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok((master, slave))
}

/// Starts a shell.
pub fn open(
    shell_id: String,
    cwd: String,
    cols: u16,
    rows: u16,
    env: Vec<(String, String)>,
) -> Result<ShellStatus, RemoteError> {
    if shell_id.is_empty()
        || shell_id.len() > 64
        || !shell_id.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(bad(format!("shell id '{shell_id}' is not valid")));
    }
    if cols == 0 || rows == 0 {
        return Err(bad("cols and rows must be greater than 0"));
    }
    if registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(&shell_id)
    {
        return Err(bad(format!("shell '{shell_id}' already exists")));
    }
    let (master, slave) = open_pty(cols, rows)
        .map_err(|e| RemoteError::new(ErrorCode::Internal, format!("opening a terminal: {e}")))?;
    let mut env = env;
    env.push(("TERM".into(), "xterm-256color".into()));
    env.push(("PS1".into(), "pyro$ ".into()));
    let bash = std::path::Path::new("/bin/bash").exists();
    let argv: Vec<String> = if bash {
        ["bash", "--noprofile", "--norc", "-i"]
    } else {
        ["sh", "-i", "", ""]
    }
    .iter()
    .filter(|a| !a.is_empty())
    .map(|a| a.to_string())
    .collect();
    let child = spawn_on_tty(&argv, &env, Some(&cwd), slave).map_err(|e| {
        RemoteError::new(
            ErrorCode::SpawnFailed,
            format!("the shell could not start: {e}"),
        )
    })?;
    let master = File::from(master);
    let reader = master
        .try_clone()
        .map_err(|e| RemoteError::new(ErrorCode::Internal, e.to_string()))?;
    let status = ShellStatus {
        shell_id: shell_id.clone(),
        cwd,
        cols,
        rows,
        running: true,
        started_at_ms: now_ms(),
        ended_at_ms: None,
        exit_code: None,
    };
    let entry = Arc::new(Entry {
        shell: Mutex::new(Shell {
            status: status.clone(),
            pid: child.pid,
            master,
            buffer: VecDeque::new(),
            start: 0,
            last_output: Instant::now(),
        }),
        changed: Condvar::new(),
    });
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(shell_id, entry.clone());
    // Terminal output into the buffer; EIO once every holder of the slave
    // side is gone.
    {
        let entry = entry.clone();
        let mut reader = reader;
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut s = lock(&entry);
                s.buffer.extend(&buf[..n]);
                let over = s.buffer.len().saturating_sub(BUFFER_BYTES);
                if over > 0 {
                    s.buffer.drain(..over);
                    s.start += over as u64;
                }
                s.last_output = Instant::now();
                drop(s);
                entry.changed.notify_all();
            }
        });
    }
    {
        let entry = entry.clone();
        let status_rx = child.status;
        std::thread::spawn(move || {
            let status = status_rx.recv().unwrap_or(-1);
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                -1
            };
            let mut s = lock(&entry);
            s.status.running = false;
            s.status.exit_code = Some(code);
            s.status.ended_at_ms = Some(now_ms());
            drop(s);
            entry.changed.notify_all();
        });
    }
    Ok(status)
}

/// Output from `cursor`: (status, start, next, text, truncated).
pub fn read(
    shell_id: &str,
    cursor: u64,
    max_bytes: u64,
    idle_ms: Option<u64>,
) -> Result<(ShellStatus, u64, u64, String, bool), RemoteError> {
    let entry = find(shell_id)?;
    let max_bytes = max_bytes.clamp(1, MAX_ANSWER);
    let mut s = lock(&entry);
    if let Some(idle) = idle_ms {
        let idle = Duration::from_millis(idle.clamp(1, 10_000));
        let deadline = Instant::now() + MAX_WAIT;
        loop {
            let end = s.start + s.buffer.len() as u64;
            let available = end.saturating_sub(cursor.max(s.start));
            let quiet = s.last_output.elapsed() >= idle;
            if !s.status.running || available >= max_bytes || (quiet && available > 0) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // Wake on output or exit, or when the quiet period could be
            // over.
            let wait = if available > 0 {
                idle.saturating_sub(s.last_output.elapsed())
            } else {
                deadline - now
            };
            s = entry
                .changed
                .wait_timeout(s, wait.max(Duration::from_millis(10)))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
    let truncated = cursor < s.start;
    let from = cursor.max(s.start);
    let end = s.start + s.buffer.len() as u64;
    let from = from.min(end);
    let take = (end - from).min(max_bytes) as usize;
    let offset = (from - s.start) as usize;
    let bytes: Vec<u8> = s.buffer.range(offset..offset + take).copied().collect();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok((s.status.clone(), from, from + take as u64, text, truncated))
}

/// Types `input` into the shell.
pub fn write(shell_id: &str, input: &str) -> Result<ShellStatus, RemoteError> {
    let entry = find(shell_id)?;
    let mut s = lock(&entry);
    if !s.status.running {
        return Err(bad(format!("shell '{shell_id}' has ended")));
    }
    s.master
        .write_all(input.as_bytes())
        .map_err(|e| RemoteError::new(ErrorCode::Internal, format!("writing to the shell: {e}")))?;
    Ok(s.status.clone())
}

/// Sends `signal` to the terminal's foreground process group (what a key
/// like Ctrl-C reaches), or the shell's group when there is none.
pub fn signal(shell_id: &str, signal: i32) -> Result<ShellStatus, RemoteError> {
    if ![libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGKILL].contains(&signal) {
        return Err(bad("signal must be HUP, INT, TERM or KILL"));
    }
    let entry = find(shell_id)?;
    let s = lock(&entry);
    if s.status.running {
        // SAFETY: plain syscalls on our own pty and process groups.
        unsafe {
            let fg = libc::tcgetpgrp(s.master.as_raw_fd());
            let group = if fg > 0 { fg } else { s.pid };
            libc::kill(-group, signal);
        }
    }
    Ok(s.status.clone())
}

/// Ends the shell (HUP to its session, KILL if it lingers) and forgets it.
pub fn close(shell_id: &str) -> Result<ShellStatus, RemoteError> {
    let entry = find(shell_id)?;
    let pid = lock(&entry).pid;
    // SAFETY: plain syscall on our child's process group.
    unsafe { libc::kill(-pid, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut s = lock(&entry);
    while s.status.running && Instant::now() < deadline {
        s = entry
            .changed
            .wait_timeout(s, Duration::from_millis(50))
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
    }
    if s.status.running {
        // SAFETY: as above.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let status = s.status.clone();
    drop(s);
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(shell_id);
    Ok(status)
}

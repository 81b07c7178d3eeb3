//! The exec handler: run one command, stream its output, report its end.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::mpsc::Sender;

use pyro_proto::{ExecRequest, ExitInfo, Message};

use crate::spawn::{spawn, SpawnError};

/// Largest output frame the agent sends. Bigger reads mean fewer frames
/// and syscalls when output is fast; a read returns whatever is there, so
/// interactive output is not delayed.
const READ_CHUNK: usize = 256 * 1024;
/// Read size for stderr.
const STDERR_CHUNK: usize = 16 * 1024;
/// Pipe capacity asked for, so a fast writer fills big frames.
const PIPE_SIZE: i32 = 1024 * 1024;

/// How long output pipes may stay open after the command itself exited
/// (background children holding them) before the process group is killed.
const PIPE_DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the readers after that kill before giving up on them.
const PIPE_ABANDON_AFTER: Duration = Duration::from_secs(2);

/// A writer shared by the output threads; each frame is written whole.
pub type SharedWriter = Arc<Mutex<Box<dyn Write + Send>>>;

fn send(writer: &SharedWriter, message: &Message) -> std::io::Result<()> {
    let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
    message.encode(&mut *w)
}

fn kill_group(pid: i32) {
    // SAFETY: plain syscall; pid > 0 is our child's process group.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Runs `req`, writing output and then exactly one `Exit` to `writer`.
/// With `stdout` (a connection to the host) the command writes its stdout
/// there directly; stderr always travels as frames. Returns the process
/// group, or `None` when the command could not start.
pub fn handle(
    req: ExecRequest,
    writer: SharedWriter,
    stdout: Option<OwnedFd>,
    on_spawn: &dyn Fn(i32),
    before_exit: &dyn Fn(),
) -> std::io::Result<Option<i32>> {
    let started = Instant::now();
    // Direct stdout goes through a large pipe and a relay thread rather
    // than straight into the socket: a command's small writes (8 KiB for
    // `head -c`) then leave the guest in large socket writes, which is what
    // costs under emulation.
    let stdout = match stdout {
        Some(socket) => match crate::spawn::pipe() {
            Ok((r, w)) => {
                relay(r, socket);
                Some(w)
            }
            Err(_) => Some(socket),
        },
        None => None,
    };
    let child = match spawn(&req.argv, &req.env, req.cwd.as_deref(), stdout) {
        Ok(child) => child,
        Err(e) => return report_spawn_error(&e, &writer).map(|_| None),
    };
    let pid = child.pid;
    on_spawn(pid);
    // Set when the host is gone or the readers were abandoned: stop writing.
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = channel::<()>();
    let readers: Vec<_> = [(child.stdout, true), (child.stderr, false)]
        .into_iter()
        .filter_map(|(pipe, is_stdout)| pipe.map(|p| (p, is_stdout)))
        .map(|(mut pipe, is_stdout)| {
            let writer = writer.clone();
            let stop = stop.clone();
            let done = done_tx.clone();
            std::thread::spawn(move || {
                use std::os::fd::AsRawFd;
                // Only stdout is worth big frames; stderr is usually a few
                // lines, and every allocation costs on an emulated guest.
                let chunk = if is_stdout {
                    // SAFETY: fcntl on our own pipe fd; failure keeps the default size.
                    unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
                    READ_CHUNK
                } else {
                    STDERR_CHUNK
                };
                let mut buf = vec![0u8; chunk];
                loop {
                    let n = match pipe.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    };
                    if stop.load(Ordering::Relaxed) {
                        continue; // drain so the writer side never blocks
                    }
                    let chunk = buf[..n].to_vec();
                    let msg = if is_stdout {
                        Message::Stdout(chunk)
                    } else {
                        Message::Stderr(chunk)
                    };
                    if send(&writer, &msg).is_err() {
                        // The host went away: nobody will read the result.
                        stop.store(true, Ordering::Relaxed);
                        kill_group(pid);
                    }
                }
                drop(done);
            })
        })
        .collect();
    drop(done_tx);

    let (status, timed_out) = wait_for_exit(&child.status, pid, req.timeout_ms, started);
    let duration_ms = started.elapsed().as_millis() as u64;

    // Wait for the pipes to close; if background processes keep them open,
    // kill the rest of the group, and in the end abandon the readers.
    let readers_done = |grace: Duration| {
        let deadline = Instant::now() + grace;
        loop {
            match done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(()) => continue,
                Err(RecvTimeoutError::Disconnected) => return true,
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    };
    if !readers_done(PIPE_DRAIN_GRACE) {
        kill_group(pid);
        if !readers_done(PIPE_ABANDON_AFTER) {
            stop.store(true, Ordering::Relaxed);
        }
    }
    if !stop.load(Ordering::Relaxed) {
        for r in readers {
            let _ = r.join();
        }
    }

    before_exit();
    send(
        &writer,
        &Message::Exit(exit_info(status, timed_out, duration_ms)),
    )?;
    Ok(Some(pid))
}

fn exit_info(status: i32, timed_out: bool, duration_ms: u64) -> ExitInfo {
    let (exit_code, signal) = decode_status(status);
    if timed_out {
        ExitInfo {
            exit_code: 124,
            signal,
            timed_out: true,
            duration_ms,
        }
    } else {
        ExitInfo {
            exit_code,
            signal,
            timed_out: false,
            duration_ms,
        }
    }
}

/// Waits for the child's status, killing its group when the timeout hits.
/// Returns the raw status and whether the timeout fired.
fn wait_for_exit(
    status_rx: &std::sync::mpsc::Receiver<i32>,
    pid: i32,
    timeout_ms: Option<u64>,
    started: Instant,
) -> (i32, bool) {
    let timeout = timeout_ms.map(Duration::from_millis);
    let mut timed_out = false;
    let status = loop {
        let wait = match timeout {
            Some(t) => t.saturating_sub(started.elapsed()),
            None => Duration::from_secs(3600),
        };
        match status_rx.recv_timeout(wait) {
            Ok(status) => break status,
            Err(RecvTimeoutError::Timeout) if timeout.is_some() && !timed_out => {
                timed_out = true;
                kill_group(pid);
                // The kill is certain to end the process; wait for it below.
                match status_rx.recv() {
                    Ok(status) => break status,
                    Err(_) => break -1,
                }
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break -1,
        }
    };
    (status, timed_out)
}

fn decode_status(status: i32) -> (i32, Option<i32>) {
    if status < 0 {
        return (-1, None);
    }
    if libc::WIFEXITED(status) {
        (libc::WEXITSTATUS(status), None)
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        (128 + sig, Some(sig))
    } else {
        (-1, None)
    }
}

fn report_spawn_error(e: &SpawnError, writer: &SharedWriter) -> std::io::Result<()> {
    send(
        writer,
        &Message::Stderr(format!("pyro-agent: {e}\n").into_bytes()),
    )?;
    send(
        writer,
        &Message::Exit(ExitInfo {
            exit_code: e.exit_code(),
            signal: None,
            timed_out: false,
            duration_ms: 0,
        }),
    )
}

/// How long a direct-output exec waits for its stdout connection, and how
/// long a connection waits for its exec.
const ATTACH_WAIT: Duration = Duration::from_secs(10);

/// Where a stdout connection and its exec meet, by token: whichever
/// arrives first waits for the other.
#[derive(Default)]
struct Slot {
    stdout: Option<OwnedFd>,
    waiter: Option<Sender<OwnedFd>>,
    since: Option<Instant>,
}

static SLOTS: Mutex<Option<HashMap<u64, Slot>>> = Mutex::new(None);

fn slots() -> std::sync::MutexGuard<'static, Option<HashMap<u64, Slot>>> {
    SLOTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hands a stdout connection to the exec with `token`, now or when it
/// arrives.
pub fn attach_stdout(token: u64, fd: OwnedFd) {
    let mut guard = slots();
    let map = guard.get_or_insert_with(Default::default);
    // Connections whose exec never came are closed (the host sees EOF).
    map.retain(|_, s| s.waiter.is_some() || s.since.is_none_or(|t| t.elapsed() < ATTACH_WAIT));
    let slot = map.entry(token).or_default();
    slot.since.get_or_insert_with(Instant::now);
    match &slot.waiter {
        Some(w) => {
            let _ = w.send(fd);
        }
        None => slot.stdout = Some(fd),
    }
}

/// Waits for the stdout connection of the exec with `token`.
pub fn await_stdout(token: u64) -> Option<OwnedFd> {
    let (tx, rx) = channel();
    let early = {
        let mut guard = slots();
        let slot = guard
            .get_or_insert_with(Default::default)
            .entry(token)
            .or_default();
        slot.waiter = Some(tx);
        slot.stdout.take()
    };
    let fd = early.or_else(|| rx.recv_timeout(ATTACH_WAIT).ok());
    if let Some(m) = slots().as_mut() {
        m.remove(&token);
    }
    fd
}

/// Copies a command's stdout pipe into its host connection in large
/// writes until every writer closed the pipe, then closes the connection
/// (the host's end of stream). A host that hung up makes the command's
/// writes fail as if it wrote to the socket itself.
fn relay(pipe: OwnedFd, socket: OwnedFd) {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on our own pipe fd; failure keeps the default size.
    unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
    std::thread::spawn(move || {
        let mut pipe = std::fs::File::from(pipe);
        let mut socket = std::fs::File::from(socket);
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            if socket.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        // Dropping the read end makes further writes fail with EPIPE,
        // like writing to the closed socket did.
    });
}

/// Kills what is left of an exec's process group.
pub fn kill_rest(pid: i32) {
    kill_group(pid);
}

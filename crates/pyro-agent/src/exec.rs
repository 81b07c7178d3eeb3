//! The exec handler: run one command, stream its output, report its end.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::mpsc::Sender;

use pyro_proto::{
    Connection, ErrorCode, ExecRequest, ExitInfo, Message, OutputStream, RemoteError, Request, Response,
};

use crate::spawn::{spawn, SpawnError};

/// Largest output frame the agent sends. Bigger reads mean fewer frames
/// and syscalls when output is fast; a read returns whatever is there, so
/// interactive output is not delayed.
const READ_CHUNK: usize = 256 * 1024;
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
pub fn handle(req: ExecRequest, writer: SharedWriter) -> std::io::Result<()> {
    let started = Instant::now();
    let child = match spawn(&req.argv, &req.env, req.cwd.as_deref(), None) {
        Ok(child) => child,
        Err(e) => return report_spawn_error(&e, &writer),
    };
    let pid = child.pid;
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
                // SAFETY: fcntl on our own pipe fd; failure just keeps the default size.
                unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
                let mut buf = vec![0u8; READ_CHUNK];
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

    send(&writer, &Message::Exit(exit_info(status, timed_out, duration_ms)))
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

/// How long a direct-output exec waits for its two output connections.
const ATTACH_WAIT: Duration = Duration::from_secs(10);

type Attachment = (OutputStream, OwnedFd);

/// Direct-output execs waiting for their output connections, by token.
static PENDING: Mutex<Option<HashMap<u64, Sender<Attachment>>>> = Mutex::new(None);

fn pending() -> std::sync::MutexGuard<'static, Option<HashMap<u64, Sender<Attachment>>>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_token() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return t.as_nanos() as u64;
    }
    u64::from_ne_bytes(b)
}

/// Whether an exec is waiting for output connections under `token`.
pub fn is_pending(token: u64) -> bool {
    pending().as_ref().is_some_and(|m| m.contains_key(&token))
}

/// Hands a connection to the exec waiting under `token`.
pub fn attach(token: u64, stream: OutputStream, fd: OwnedFd) -> Result<(), &'static str> {
    let tx = pending()
        .as_ref()
        .and_then(|m| m.get(&token).cloned())
        .ok_or("no exec is waiting for that token")?;
    tx.send((stream, fd)).map_err(|_| "the exec stopped waiting")
}

/// Runs `req` with two vsock connections as the command's stdout and
/// stderr, so output goes from the command to the host without passing
/// through pipes and this process (pipes are slow under emulation).
///
/// On `conn`: `Attach{token}`, then (once both streams are attached and the
/// command ends) `Exit`; afterwards the host may send `KillGroup` if the
/// streams are still held open by background processes.
pub fn handle_direct<S: Read + Write>(req: ExecRequest, conn: &mut Connection<S>) -> std::io::Result<()> {
    let token = new_token();
    let (tx, rx) = channel();
    pending().get_or_insert_with(Default::default).insert(token, tx);
    let sent = conn.send(&Message::Response(Response::Attach { token }));
    let deadline = Instant::now() + ATTACH_WAIT;
    let (mut out, mut err) = (None, None);
    while sent.is_ok() && (out.is_none() || err.is_none()) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((OutputStream::Stdout, fd)) => out = Some(fd),
            Ok((OutputStream::Stderr, fd)) => err = Some(fd),
            Err(_) => break,
        }
    }
    if let Some(m) = pending().as_mut() {
        m.remove(&token);
    }
    sent.map_err(std::io::Error::other)?;
    let (Some(out), Some(err)) = (out, err) else {
        let e = RemoteError { code: ErrorCode::BadRequest, message: "the output connections did not arrive".into() };
        return conn.send(&Message::Error(e)).map_err(std::io::Error::other);
    };
    let started = Instant::now();
    let child = match spawn(&req.argv, &req.env, req.cwd.as_deref(), Some((out, err))) {
        Ok(c) => c,
        Err(e) => {
            let text = format!("pyro-agent: {e}\n").into_bytes();
            conn.send(&Message::Stderr(text)).map_err(std::io::Error::other)?;
            let info = ExitInfo { exit_code: e.exit_code(), signal: None, timed_out: false, duration_ms: 0 };
            return conn.send(&Message::Exit(info)).map_err(std::io::Error::other);
        }
    };
    let (status, timed_out) = wait_for_exit(&child.status, child.pid, req.timeout_ms, started);
    let duration_ms = started.elapsed().as_millis() as u64;
    conn.send(&Message::Exit(exit_info(status, timed_out, duration_ms))).map_err(std::io::Error::other)?;
    // Until the host hangs up it may ask to end background holders.
    while let Ok(Some(Message::Request(Request::KillGroup))) = conn.recv() {
        kill_group(child.pid);
    }
    Ok(())
}

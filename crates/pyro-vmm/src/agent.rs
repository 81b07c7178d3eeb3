//! Host side of an exec: send the request, pump output, return the exit.

use std::io::{Read, Write};

use pyro_proto::{Connection, ExecRequest, ExitInfo, Message, ProtoError, Request};

/// Where command output goes as it arrives.
pub trait OutputSink {
    /// A chunk of stdout.
    fn stdout(&mut self, chunk: &[u8]);
    /// A chunk of stderr.
    fn stderr(&mut self, chunk: &[u8]);
}

/// How a command ended.
pub type ExecOutcome = ExitInfo;

/// Why an exec did not complete.
#[derive(Debug)]
pub enum ExecError {
    /// The connection closed or broke before `Exit`.
    ConnectionLost(String),
    /// The agent did not answer in time.
    Timeout,
    /// The agent sent something that is not allowed here.
    Protocol(String),
    /// The agent answered with an error of its own.
    Remote(pyro_proto::RemoteError),
}

/// Runs one exec on a handshaken connection.
pub fn exec<S: Read + Write>(
    mut conn: Connection<S>,
    req: ExecRequest,
    sink: &mut dyn OutputSink,
) -> Result<ExecOutcome, ExecError> {
    conn.send(&Message::Request(Request::Exec(req)))
        .map_err(|e| ExecError::ConnectionLost(e.to_string()))?;
    loop {
        match conn.recv() {
            Ok(Some(Message::Stdout(b))) => sink.stdout(&b),
            Ok(Some(Message::Stderr(b))) => sink.stderr(&b),
            Ok(Some(Message::Exit(info))) => return Ok(info),
            Ok(Some(Message::Error(e))) => return Err(ExecError::Remote(e)),
            Ok(Some(other)) => {
                return Err(ExecError::Protocol(format!(
                    "unexpected {} during exec",
                    other.name()
                )))
            }
            Ok(None) | Err(ProtoError::UnexpectedEof) => {
                return Err(ExecError::ConnectionLost(
                    "connection closed before the command finished".into(),
                ))
            }
            Err(ProtoError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ExecError::Timeout)
            }
            Err(ProtoError::Io(e)) => return Err(ExecError::ConnectionLost(e.to_string())),
            Err(ProtoError::Truncated { .. }) => {
                return Err(ExecError::ConnectionLost(
                    "connection closed in the middle of a frame".into(),
                ))
            }
            Err(e) => return Err(ExecError::Protocol(e.to_string())),
        }
    }
}

/// How long output streams may stay open after the command exited (held
/// by background processes) before the host asks the agent to kill them.
const STREAM_DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
/// How long to wait after that kill before giving up on the streams.
const STREAM_ABANDON_AFTER: std::time::Duration = std::time::Duration::from_secs(3);
/// Chunk size for reading output streams.
const STREAM_CHUNK: usize = 256 * 1024;
/// Output chunks in flight between reader threads and the sink; bounded so
/// a slow sink slows the guest down instead of filling host memory.
const STREAM_QUEUE: usize = 8;

enum Event {
    Out(bool, Vec<u8>),
    End,
    Exit(ExitInfo),
    Failed(ExecError),
}

fn classify(e: ProtoError) -> ExecError {
    match e {
        ProtoError::UnexpectedEof | ProtoError::Truncated { .. } => {
            ExecError::ConnectionLost("connection closed before the command finished".into())
        }
        ProtoError::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            ExecError::Timeout
        }
        ProtoError::Io(e) => ExecError::ConnectionLost(e.to_string()),
        e => ExecError::Protocol(e.to_string()),
    }
}

fn random_token() -> u64 {
    let mut b = [0u8; 8];
    let got = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if got.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return t.as_nanos() as u64 ^ u64::from(std::process::id());
    }
    u64::from_ne_bytes(b)
}

/// A direct-output exec on a connection not yet handshaken (the `Hello`
/// travels with the request): the command writes its stdout straight into an
/// extra connection (`open` makes it, in parallel with the request, since
/// they meet in the agent by token); the first connection carries stderr
/// frames and the exit.
/// `watch` receives every socket so a watchdog can shut them down.
pub fn exec_direct(
    mut conn: Connection<std::os::unix::net::UnixStream>,
    mut req: ExecRequest,
    sink: &mut dyn OutputSink,
    open: &(dyn Fn() -> Result<Connection<std::os::unix::net::UnixStream>, ExecError> + Sync),
    watch: &mut dyn FnMut(&std::os::unix::net::UnixStream),
) -> Result<ExecOutcome, ExecError> {
    use pyro_proto::{OutputStream, Response};
    use std::sync::mpsc::{sync_channel, RecvTimeoutError};

    let token = random_token();
    req.output_token = Some(token);
    watch(conn.get_ref());
    let attach = |kind: OutputStream| -> Result<std::os::unix::net::UnixStream, ExecError> {
        let mut c = open()?;
        let attach = Message::Request(Request::AttachOutput {
            token,
            stream: kind,
        });
        c.client_handshake_with(crate::PEER, &attach)
            .map_err(classify)?;
        match c.expect().map_err(classify)? {
            Message::Response(Response::Done) => {}
            Message::Error(e) => return Err(ExecError::Remote(e)),
            other => {
                return Err(ExecError::Protocol(format!(
                    "unexpected {} after attach",
                    other.name()
                )))
            }
        }
        let stream = c.into_inner();
        let _ = stream.set_read_timeout(None);
        Ok(stream)
    };
    // The stdout connection is opened while the request travels; they meet
    // in the agent by token.
    let (sent, out) = std::thread::scope(|scope| {
        let out = scope.spawn(|| attach(OutputStream::Stdout));
        let exec = Message::Request(Request::Exec(req));
        let sent = conn
            .client_handshake_with(crate::PEER, &exec)
            .map(|_| ())
            .map_err(classify);
        let out = out
            .join()
            .unwrap_or_else(|_| Err(ExecError::Protocol("attach thread panicked".into())));
        (sent, out)
    });
    sent?;
    let (tx, rx) = sync_channel::<Event>(STREAM_QUEUE);
    let mut stream = out?;
    watch(&stream);
    let stdout_handle = stream
        .try_clone()
        .map_err(|e| ExecError::ConnectionLost(e.to_string()))?;
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; STREAM_CHUNK];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Event::Out(true, buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(Event::End);
        });
    }
    let writer = conn
        .get_ref()
        .try_clone()
        .map_err(|e| ExecError::ConnectionLost(e.to_string()))?;
    {
        let tx = tx.clone();
        std::thread::spawn(move || loop {
            let event = match conn.recv() {
                Ok(Some(Message::Stdout(b))) => Event::Out(true, b),
                Ok(Some(Message::Stderr(b))) => Event::Out(false, b),
                Ok(Some(Message::Exit(info))) => Event::Exit(info),
                Ok(Some(Message::Error(e))) => Event::Failed(ExecError::Remote(e)),
                Ok(Some(other)) => Event::Failed(ExecError::Protocol(format!(
                    "unexpected {} during exec",
                    other.name()
                ))),
                Ok(None) => Event::Failed(classify(ProtoError::UnexpectedEof)),
                Err(e) => Event::Failed(classify(e)),
            };
            let last = !matches!(event, Event::Out(..));
            if tx.send(event).is_err() || last {
                return;
            }
        });
    }
    drop(tx);

    let mut stdout_ended = false;
    let mut exit: Option<ExitInfo> = None;
    let mut exited_at = std::time::Instant::now();
    let mut killed = false;
    loop {
        let event = if exit.is_some() {
            let limit = if killed {
                STREAM_DRAIN_GRACE + STREAM_ABANDON_AFTER
            } else {
                STREAM_DRAIN_GRACE
            };
            match rx.recv_timeout(limit.saturating_sub(exited_at.elapsed())) {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout) if !killed => {
                    // Background processes hold the streams: end them.
                    killed = true;
                    let mut w = Connection::new(
                        writer
                            .try_clone()
                            .map_err(|e| ExecError::ConnectionLost(e.to_string()))?,
                    );
                    let _ = w.send(&Message::Request(Request::KillGroup));
                    continue;
                }
                Err(_) => break,
            }
        } else {
            match rx.recv() {
                Ok(e) => e,
                Err(_) => {
                    return Err(ExecError::ConnectionLost(
                        "the agent connection closed".into(),
                    ))
                }
            }
        };
        match event {
            Event::Out(true, b) => sink.stdout(&b),
            Event::Out(false, b) => sink.stderr(&b),
            Event::End => stdout_ended = true,
            Event::Exit(info) => {
                exit = Some(info);
                exited_at = std::time::Instant::now();
            }
            Event::Failed(e) => return Err(e),
        }
        if stdout_ended && exit.is_some() {
            break;
        }
    }
    let _ = stdout_handle.shutdown(std::net::Shutdown::Both);
    let _ = writer.shutdown(std::net::Shutdown::Both);
    exit.ok_or_else(|| ExecError::ConnectionLost("no exit status".into()))
}

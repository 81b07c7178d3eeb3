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
    /// The agent sent something that is not allowed here, or an error.
    Protocol(String),
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
            Ok(Some(Message::Error(e))) => return Err(ExecError::Protocol(e.message)),
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
        ProtoError::Io(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            ExecError::Timeout
        }
        ProtoError::Io(e) => ExecError::ConnectionLost(e.to_string()),
        e => ExecError::Protocol(e.to_string()),
    }
}

/// A direct-output exec: the command writes straight into two extra
/// connections (`open` makes them), the first connection carries the exit.
/// `watch` receives every socket so a watchdog can shut them down.
pub fn exec_direct(
    mut conn: Connection<std::os::unix::net::UnixStream>,
    req: ExecRequest,
    sink: &mut dyn OutputSink,
    open: &mut dyn FnMut() -> Result<Connection<std::os::unix::net::UnixStream>, ExecError>,
    watch: &mut dyn FnMut(&std::os::unix::net::UnixStream),
) -> Result<ExecOutcome, ExecError> {
    use pyro_proto::{OutputStream, Response};
    use std::sync::mpsc::{sync_channel, RecvTimeoutError};

    watch(conn.get_ref());
    conn.send(&Message::Request(Request::Exec(req))).map_err(classify)?;
    let token = match conn.expect().map_err(classify)? {
        Message::Response(Response::Attach { token }) => token,
        Message::Error(e) => return Err(ExecError::Protocol(e.message)),
        other => return Err(ExecError::Protocol(format!("unexpected {} instead of attach", other.name()))),
    };
    let (tx, rx) = sync_channel::<Event>(STREAM_QUEUE);
    let mut streams = Vec::new();
    for (kind, is_stdout) in [(OutputStream::Stdout, true), (OutputStream::Stderr, false)] {
        let mut c = open()?;
        c.send(&Message::Request(Request::AttachOutput { token, stream: kind })).map_err(classify)?;
        match c.expect().map_err(classify)? {
            Message::Response(Response::Done) => {}
            Message::Error(e) => return Err(ExecError::Protocol(e.message)),
            other => return Err(ExecError::Protocol(format!("unexpected {} after attach", other.name()))),
        }
        let mut stream = c.into_inner();
        let _ = stream.set_read_timeout(None);
        watch(&stream);
        streams.push(stream.try_clone().map_err(|e| ExecError::ConnectionLost(e.to_string()))?);
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; STREAM_CHUNK];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Event::Out(is_stdout, buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(Event::End);
        });
    }
    let writer = conn.get_ref().try_clone().map_err(|e| ExecError::ConnectionLost(e.to_string()))?;
    {
        let tx = tx.clone();
        std::thread::spawn(move || loop {
            let event = match conn.recv() {
                Ok(Some(Message::Stdout(b))) => Event::Out(true, b),
                Ok(Some(Message::Stderr(b))) => Event::Out(false, b),
                Ok(Some(Message::Exit(info))) => Event::Exit(info),
                Ok(Some(Message::Error(e))) => Event::Failed(ExecError::Protocol(e.message)),
                Ok(Some(other)) => Event::Failed(ExecError::Protocol(format!("unexpected {} during exec", other.name()))),
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

    let mut ended = 0;
    let mut exit: Option<ExitInfo> = None;
    let mut exited_at = std::time::Instant::now();
    let mut killed = false;
    loop {
        let event = if exit.is_some() {
            let limit = if killed { STREAM_DRAIN_GRACE + STREAM_ABANDON_AFTER } else { STREAM_DRAIN_GRACE };
            match rx.recv_timeout(limit.saturating_sub(exited_at.elapsed())) {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout) if !killed => {
                    // Background processes hold the streams: end them.
                    killed = true;
                    let mut w = Connection::new(writer.try_clone().map_err(|e| ExecError::ConnectionLost(e.to_string()))?);
                    let _ = w.send(&Message::Request(Request::KillGroup));
                    continue;
                }
                Err(_) => break,
            }
        } else {
            match rx.recv() {
                Ok(e) => e,
                Err(_) => return Err(ExecError::ConnectionLost("the agent connection closed".into())),
            }
        };
        match event {
            Event::Out(true, b) => sink.stdout(&b),
            Event::Out(false, b) => sink.stderr(&b),
            Event::End => ended += 1,
            Event::Exit(info) => {
                exit = Some(info);
                exited_at = std::time::Instant::now();
            }
            Event::Failed(e) => return Err(e),
        }
        if ended == 2 && exit.is_some() {
            break;
        }
    }
    for s in &streams {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    let _ = writer.shutdown(std::net::Shutdown::Both);
    exit.ok_or_else(|| ExecError::ConnectionLost("no exit status".into()))
}

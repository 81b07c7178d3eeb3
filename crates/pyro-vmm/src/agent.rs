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

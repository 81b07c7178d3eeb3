//! Typed messages carried in frames, and a connection that speaks them.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::frame::{read_frame, write_frame, Frame, FrameKind};
use crate::{ProtoError, PROTOCOL_VERSION};

/// First message in each direction on every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// Free-form name and version of the sender, for diagnostics.
    pub peer: String,
}

/// Run a program in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// Program and arguments. Never passed through a shell.
    pub argv: Vec<String>,
    /// Variables added to (or replacing) the agent's base environment.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Working directory; the agent's default when absent.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Kill the whole process group after this many milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Give the command two vsock connections as its stdout and stderr
    /// instead of pipes through the agent (the host sets `output_token`).
    #[serde(default)]
    pub direct_output: bool,
    /// For direct output: the token the host's two `AttachOutput`
    /// connections carry. They may arrive before or after this request.
    #[serde(default)]
    pub output_token: Option<u64>,
}

/// Which output stream a connection carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// The command's stdout.
    Stdout,
    /// The command's stderr.
    Stderr,
}

/// What the host can ask of the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Liveness check.
    Ping,
    /// Run a command; answered with output frames and one `Exit`.
    Exec(ExecRequest),
    /// Flush file systems and power the guest off.
    Shutdown,
    /// Offer this connection as one output stream of the direct-output exec
    /// with this token (before or after its `Exec` arrives). After `Done`
    /// it carries only the command's raw bytes, then EOF.
    AttachOutput {
        /// The `output_token` of the exec it belongs to.
        token: u64,
        /// Which stream.
        stream: OutputStream,
    },
    /// On a direct-output exec's connection, after `Exit`: output streams
    /// are still held open (by background processes); kill the group.
    KillGroup,
    /// Unpack a tar stream into `dest`: the host then sends `Data` frames
    /// and an empty `Data` frame; the agent answers `Extracted`. Entries
    /// that are absolute, climb with `..`, are devices, FIFOs or hard links,
    /// or are symlinks pointing outside are refused.
    Extract {
        /// Directory to unpack into (created if missing).
        dest: String,
    },
    /// Transport benchmark: after `Done` the agent echoes raw bytes (no
    /// framing) until the host closes.
    RawEcho,
    /// Transport benchmark: after `Done` the agent writes `bytes` raw bytes
    /// (no framing) and closes.
    RawSource {
        /// How many bytes to send.
        bytes: u64,
    },
}

/// Answers to requests other than `Exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// Answer to `Ping`.
    Pong {
        /// Milliseconds since the agent started.
        uptime_ms: u64,
    },
    /// The request was carried out.
    Done,
    /// Answer to `Extract`.
    Extracted {
        /// Entries unpacked.
        entry_count: u64,
        /// File bytes written.
        bytes_written: u64,
    },
}

/// How an executed command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit status: the code, `128 + signal` when killed, 124 on timeout.
    pub exit_code: i32,
    /// Signal that ended the process, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Whether the timeout killed the process group.
    #[serde(default)]
    pub timed_out: bool,
    /// Wall time inside the guest, from spawn to exit.
    pub duration_ms: u64,
}

/// Kinds of failure the agent reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The peers speak different protocol versions.
    VersionMismatch,
    /// The request was malformed or invalid.
    BadRequest,
    /// The program could not be started.
    SpawnFailed,
    /// Anything else that went wrong inside the agent.
    Internal,
}

/// An error reported by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// Machine-readable kind.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

/// Any message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Version handshake.
    Hello(Hello),
    /// A request from the host.
    Request(Request),
    /// A non-exec answer from the agent.
    Response(Response),
    /// A chunk of stdout.
    Stdout(Vec<u8>),
    /// A chunk of stderr.
    Stderr(Vec<u8>),
    /// A chunk of an upload; empty ends it.
    Data(Vec<u8>),
    /// The command finished.
    Exit(ExitInfo),
    /// The agent could not do what was asked.
    Error(RemoteError),
}

impl Message {
    /// Short name for diagnostics.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Request(_) => "request",
            Message::Response(_) => "response",
            Message::Stdout(_) => "stdout",
            Message::Stderr(_) => "stderr",
            Message::Data(_) => "data",
            Message::Exit(_) => "exit",
            Message::Error(_) => "error",
        }
    }

    /// Decodes a frame's payload according to its kind.
    pub fn decode(frame: Frame) -> Result<Self, ProtoError> {
        fn json<T: for<'de> Deserialize<'de>>(frame: &Frame) -> Result<T, ProtoError> {
            serde_json::from_slice(&frame.payload).map_err(|e| ProtoError::Malformed {
                kind: frame.kind,
                reason: e.to_string(),
            })
        }
        Ok(match frame.kind {
            FrameKind::Hello => Message::Hello(json(&frame)?),
            FrameKind::Request => Message::Request(json(&frame)?),
            FrameKind::Response => Message::Response(json(&frame)?),
            FrameKind::Exit => Message::Exit(json(&frame)?),
            FrameKind::Error => Message::Error(json(&frame)?),
            FrameKind::Stdout => Message::Stdout(frame.payload),
            FrameKind::Stderr => Message::Stderr(frame.payload),
            FrameKind::Data => Message::Data(frame.payload),
        })
    }

    /// Writes the message as one frame.
    pub fn encode<W: Write + ?Sized>(&self, w: &mut W) -> std::io::Result<()> {
        let (kind, payload): (FrameKind, std::borrow::Cow<'_, [u8]>) = match self {
            Message::Hello(m) => (FrameKind::Hello, to_json(m).into()),
            Message::Request(m) => (FrameKind::Request, to_json(m).into()),
            Message::Response(m) => (FrameKind::Response, to_json(m).into()),
            Message::Exit(m) => (FrameKind::Exit, to_json(m).into()),
            Message::Error(m) => (FrameKind::Error, to_json(m).into()),
            Message::Stdout(b) => (FrameKind::Stdout, b.as_slice().into()),
            Message::Stderr(b) => (FrameKind::Stderr, b.as_slice().into()),
            Message::Data(b) => (FrameKind::Data, b.as_slice().into()),
        };
        write_frame(w, kind, &payload)
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// A stream that exchanges [`Message`]s.
pub struct Connection<S> {
    stream: S,
}

impl<S: Read + Write> Connection<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> Self {
        Self { stream }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Gives the stream back (for raw, unframed use after a request).
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Sends one message.
    pub fn send(&mut self, message: &Message) -> Result<(), ProtoError> {
        message.encode(&mut self.stream)?;
        Ok(())
    }

    /// Receives one message; `Ok(None)` when the peer closed between frames.
    pub fn recv(&mut self) -> Result<Option<Message>, ProtoError> {
        match read_frame(&mut self.stream)? {
            Some(frame) => Ok(Some(Message::decode(frame)?)),
            None => Ok(None),
        }
    }

    /// Receives one message; EOF is an error.
    pub fn expect(&mut self) -> Result<Message, ProtoError> {
        self.recv()?.ok_or(ProtoError::UnexpectedEof)
    }

    /// Host side of the handshake: send our `Hello`, check the agent's.
    pub fn client_handshake(&mut self, peer: &str) -> Result<Hello, ProtoError> {
        self.send_hello(peer)?;
        self.expect_hello()
    }

    /// Sends our `Hello` and the first request back to back, then checks
    /// the agent's `Hello`: one round trip fewer than handshake-then-send.
    /// A mismatched agent answers `Error` and never acts on the request.
    pub fn client_handshake_with(
        &mut self,
        peer: &str,
        first: &Message,
    ) -> Result<Hello, ProtoError> {
        self.send_hello(peer)?;
        self.send(first)?;
        self.expect_hello()
    }

    fn send_hello(&mut self, peer: &str) -> Result<(), ProtoError> {
        self.send(&Message::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            peer: peer.to_string(),
        }))
    }

    fn expect_hello(&mut self) -> Result<Hello, ProtoError> {
        match self.expect()? {
            Message::Hello(h) if h.protocol_version == PROTOCOL_VERSION => Ok(h),
            Message::Hello(h) => Err(ProtoError::VersionMismatch {
                host: PROTOCOL_VERSION,
                agent: h.protocol_version,
            }),
            Message::Error(e) if e.code == ErrorCode::VersionMismatch => {
                Err(ProtoError::Unexpected("version_mismatch error"))
            }
            other => Err(ProtoError::Unexpected(other.name())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(m: &Message) -> Message {
        let mut buf = Vec::new();
        m.encode(&mut buf).unwrap();
        let frame = read_frame(&mut buf.as_slice()).unwrap().unwrap();
        Message::decode(frame).unwrap()
    }

    #[test]
    fn request_json_shape_is_stable() {
        let req = Request::Exec(ExecRequest {
            argv: vec!["true".into()],
            env: vec![],
            cwd: None,
            timeout_ms: Some(5),
            direct_output: false,
            output_token: None,
        });
        let v: serde_json::Value = serde_json::to_value(&req).unwrap();
        assert_eq!(v["op"], "exec");
        assert_eq!(v["timeout_ms"], 5);
    }

    #[test]
    fn malformed_json_is_an_error() {
        let frame = Frame {
            kind: FrameKind::Request,
            payload: b"{\"op\":\"nope\"}".to_vec(),
        };
        assert!(matches!(
            Message::decode(frame),
            Err(ProtoError::Malformed { .. })
        ));
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (any::<u32>(), ".{0,20}").prop_map(|(v, p)| Message::Hello(Hello {
                protocol_version: v,
                peer: p
            })),
            (
                proptest::collection::vec(".{0,10}", 0..5),
                proptest::collection::vec((".{0,5}", ".{0,5}"), 0..3),
                proptest::option::of(".{0,10}"),
                proptest::option::of(any::<u64>())
            )
                .prop_map(|(argv, env, cwd, timeout_ms)| Message::Request(
                    Request::Exec(ExecRequest {
                        argv,
                        env,
                        cwd,
                        timeout_ms,
                        direct_output: false,
                        output_token: None,
                    })
                )),
            Just(Message::Request(Request::Ping)),
            any::<u64>().prop_map(|u| Message::Response(Response::Pong { uptime_ms: u })),
            proptest::collection::vec(any::<u8>(), 0..2048).prop_map(Message::Stdout),
            proptest::collection::vec(any::<u8>(), 0..2048).prop_map(Message::Stderr),
            proptest::collection::vec(any::<u8>(), 0..2048).prop_map(Message::Data),
            (
                any::<i32>(),
                proptest::option::of(any::<i32>()),
                any::<bool>(),
                any::<u64>()
            )
                .prop_map(|(exit_code, signal, timed_out, duration_ms)| Message::Exit(
                    ExitInfo {
                        exit_code,
                        signal,
                        timed_out,
                        duration_ms
                    }
                )),
            ".{0,40}".prop_map(|m| Message::Error(RemoteError {
                code: ErrorCode::Internal,
                message: m
            })),
        ]
    }

    proptest! {
        #[test]
        fn every_message_roundtrips(m in arb_message()) {
            prop_assert_eq!(roundtrip(&m), m);
        }

        /// Arbitrary bytes never panic and never allocate past the cap.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut input = bytes.as_slice();
            for _ in 0..64 {
                match read_frame(&mut input) {
                    Ok(Some(frame)) => { let _ = Message::decode(frame); }
                    Ok(None) | Err(_) => break,
                }
            }
        }

        /// Any strict prefix of a valid encoding is reported as truncated.
        #[test]
        fn prefixes_are_truncated(m in arb_message(), cut in any::<prop::sample::Index>()) {
            let mut buf = Vec::new();
            m.encode(&mut buf).unwrap();
            let cut = 1 + cut.index(buf.len() - 1);
            let res = read_frame(&mut &buf[..cut]);
            prop_assert!(matches!(res, Err(ProtoError::Truncated { .. })), "{:?}", res);
        }
    }
}

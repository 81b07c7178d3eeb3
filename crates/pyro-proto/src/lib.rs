//! The wire protocol spoken between the pyro host and the guest agent.
//!
//! # Exchange
//!
//! Every request uses its own vsock connection, so a long exec never blocks a
//! status probe or a second exec:
//!
//! 1. The host connects to the agent's port ([`AGENT_PORT`]) and sends
//!    [`Message::Hello`] with its [`PROTOCOL_VERSION`].
//! 2. The agent answers with its own `Hello`, or with [`Message::Error`]
//!    (`version_mismatch`) and closes the connection.
//! 3. The host sends one [`Message::Request`].
//! 4. The agent answers. For [`Request::Exec`] that is any number of
//!    [`Message::Stdout`] / [`Message::Stderr`] frames, sent as the output is
//!    produced, then exactly one [`Message::Exit`] (or `Error`). Other requests
//!    get one [`Message::Response`] (or `Error`).
//!
//! **Direct stdout.** Under emulation, pipes through the agent are the slowest
//! link for bulk output, so the host normally asks for direct output: it
//! picks a random token, puts it in [`ExecRequest::output_token`], and (in
//! parallel) opens a second connection that sends
//! [`Request::AttachOutput`] with the same token. The two meet in the agent
//! in either order; the command gets that connection as its stdout, so its
//! bytes reach the host without passing through the agent. stderr and the
//! `Exit` still travel as frames on the first connection. If stdout stays
//! open after `Exit` (background processes), the host sends
//! [`Request::KillGroup`] on the first connection.
//!
//! **Uploads.** [`Request::Extract`] is followed by [`Message::Data`] frames
//! and an empty one; the agent unpacks the tar stream and answers.
//!
//! When the agent is ready after boot it connects back to the host on
//! [`READY_PORT`] and sends a single `Hello`, so the host never polls.
//!
//! # Framing
//!
//! A frame is a 5-byte header (payload length as `u32` big-endian, then one
//! kind byte) followed by the payload. Payloads larger than
//! [`MAX_FRAME_PAYLOAD`] are refused before anything is allocated. Control
//! payloads are JSON; output payloads are raw bytes.
#![deny(missing_docs)]

mod frame;
mod message;
mod upload;

pub use frame::{read_frame, write_frame, Frame, FrameKind, HEADER_LEN, MAX_FRAME_PAYLOAD};
pub use message::{
    Connection, ErrorCode, ExecRequest, ExitInfo, Hello, Message, OutputStream, RemoteError,
    Request, Response,
};
pub use upload::{DataReader, DataWriter};

/// Version of this protocol. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;
/// Guest vsock port the agent serves requests on.
pub const AGENT_PORT: u32 = 1024;
/// Host vsock port the agent connects to once, when it is ready.
pub const READY_PORT: u32 = 1025;
/// Largest chunk of command output put in one frame.
pub const OUTPUT_CHUNK: usize = 64 * 1024;

/// Errors reading or decoding the protocol. None of them is a panic.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The underlying connection failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame ({got} of {expected} bytes)")]
    Truncated {
        /// Bytes the frame announced.
        expected: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// The peer closed the connection where a frame was required.
    #[error("connection closed before the expected message arrived")]
    UnexpectedEof,
    /// A frame announced a payload larger than the cap.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    Oversized {
        /// Announced payload length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// A frame carried a kind byte this version does not know.
    #[error("unknown frame kind {0:#04x}")]
    UnknownKind(u8),
    /// A control payload was not valid for its kind.
    #[error("malformed {kind:?} frame: {reason}")]
    Malformed {
        /// Kind of the offending frame.
        kind: FrameKind,
        /// What was wrong with it.
        reason: String,
    },
    /// The peer sent a valid message that makes no sense at this point.
    #[error("unexpected {0} message")]
    Unexpected(&'static str),
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: host speaks {host}, agent speaks {agent}")]
    VersionMismatch {
        /// Our version.
        host: u32,
        /// The peer's version.
        agent: u32,
    },
}

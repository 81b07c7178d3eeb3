//! The wire protocol spoken between the pyro host and the guest agent.
//!
//! # Exchange
//!
//! Every request uses its own vsock connection, so a long exec never blocks a
//! status probe or a second exec:
//!
//! 1. The host connects to the agent's port ([`AGENT_PORT`]) and sends
//!    [`Message::Hello`] with its major [`PROTOCOL_VERSION`] and its
//!    [`features`].
//! 2. The agent answers with its own `Hello`, or with [`Message::Error`]
//!    (`version_mismatch`) and closes the connection (see *Negotiation*).
//! 3. The host sends one [`Message::Request`]. It may send it right behind
//!    its `Hello` ([`Connection::client_handshake_with`]); an agent that
//!    refuses the `Hello` never acts on it.
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
//! [`READY_PORT`] and sends a single `Hello`, so the host never polls (and
//! learns the agent's features without another connection).
//!
//! # Negotiation
//!
//! A workspace keeps the agent it was booted with, so a host talks to agents
//! older (and, briefly, newer) than itself. [`Hello::protocol_version`] is a
//! *major* version, bumped only on incompatible changes; everything else is
//! a *feature* named in [`features`]:
//!
//! - **Compatibility** is one rule, [`check_peer_hello`], used by both
//!   sides: equal majors talk, whatever their feature lists; another major
//!   is [`ProtoError::VersionMismatch`] (the agent answers
//!   [`ErrorCode::VersionMismatch`]; the host reports the agent's error as
//!   [`ProtoError::Refused`]).
//! - **Feature lists.** Each `Hello` lists the sender's features. Agents
//!   that predate the list send none, which means [`features::BASE`]
//!   ([`Hello::supports`]). The host checks the agent's `Hello` before
//!   using a feature outside `BASE`; every request belongs to one feature
//!   ([`Request::feature`]; [`Request::required_features`] adds
//!   `direct_output` for an `Exec` with an `output_token`).
//! - **Unsupported operations.** A request frame whose `op` the agent does
//!   not know decodes as [`ProtoError::UnsupportedOp`] (not
//!   [`ProtoError::Malformed`], which stays for broken frames: not JSON, no
//!   `op`, a known `op` with bad fields). The agent answers such a request,
//!   and one whose feature it lacks or has disabled, with
//!   [`RemoteError::unsupported`]: code [`ErrorCode::Unsupported`],
//!   [`RemoteError::feature`] naming the feature (or unknown `op`), and ends
//!   the connection. A malformed one is answered `bad_request`.
//! - **Forward-compatible decoding.** Unknown JSON fields are ignored, and
//!   an error code this build does not know decodes as
//!   [`ErrorCode::Unknown`].
//!
//! # Framing
//!
//! A frame is a 5-byte header (payload length as `u32` big-endian, then one
//! kind byte) followed by the payload. Payloads larger than
//! [`MAX_FRAME_PAYLOAD`] are refused before anything is allocated. Control
//! payloads are JSON; output payloads are raw bytes.
#![deny(missing_docs)]

pub mod features;
mod frame;
pub mod hybrid;
mod message;
pub mod paths;
mod upload;

pub use frame::{read_frame, write_frame, Frame, FrameKind, HEADER_LEN, MAX_FRAME_PAYLOAD};
pub use message::{
    check_peer_hello, Connection, ErrorCode, ExecRequest, ExitInfo, FileEntry, FileKind, Hello,
    Message, OutputStream, PatchStatus, PatchedFile, Readiness, RemoteError, Request, Response,
    ServiceStartRequest, ServiceState, ServiceStatus, ShellStatus,
};
pub use upload::{DataReader, DataWriter};

/// Major version of this protocol, sent in every [`Hello`]. Bumped only on
/// an incompatible change; compatible additions are [`features`].
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
    /// A well-formed request frame whose `op` this build does not know
    /// (from a newer peer); the agent answers it [`ErrorCode::Unsupported`].
    #[error("unsupported operation '{0}'")]
    UnsupportedOp(String),
    /// The peer sent a valid message that makes no sense at this point.
    #[error("unexpected {0} message")]
    Unexpected(&'static str),
    /// The peer speaks another major protocol version ([`check_peer_hello`]).
    #[error("protocol version mismatch: we speak major version {ours}, the peer speaks {theirs}")]
    VersionMismatch {
        /// Our major version ([`PROTOCOL_VERSION`]).
        ours: u32,
        /// The peer's major version.
        theirs: u32,
    },
    /// The agent answered our `Hello` with an error (e.g.
    /// [`ErrorCode::VersionMismatch`]) instead of its own `Hello`.
    #[error("the agent refused the connection ({:?}): {}", .0.code, .0.message)]
    Refused(RemoteError),
}

//! Host side of hybrid vsock: a unix socket in front of the guest's vsock.
//!
//! To reach guest port P the host connects to the sidecar's socket and
//! writes `CONNECT P\n`; the sidecar answers `OK <host port>\n` and from then
//! on the stream is the guest connection. A guest connecting to the host on
//! port P arrives at the unix socket `<path>_P`, if the host listens there.

/// Longest path a unix socket address can hold (sun_path minus NUL).
pub const MAX_SOCKET_PATH: usize = 107;
/// Opens a connection to `port` in the guest behind `uds` (the handshake
/// lives in `pyro-proto`, which the agent's published-port proxy shares).
pub use pyro_proto::hybrid::connect;

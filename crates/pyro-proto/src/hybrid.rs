//! Host side of hybrid vsock (vhost-device-vsock, Firecracker): a unix
//! socket in front of the guest's vsock. To reach guest port P the host
//! connects to the socket and writes `CONNECT P\n`; the answer is
//! `OK <host port>\n` and from then on the stream is the guest connection.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long the `CONNECT` handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a connection to `port` in the guest behind `uds`.
pub fn connect(uds: &Path, port: u32) -> std::io::Result<UnixStream> {
    connect_within(uds, port, HANDSHAKE_TIMEOUT)
}

/// [`connect`] giving up after `limit` (a request can be lost while the
/// guest's vsock device is still coming up; retrying beats waiting).
pub fn connect_within(uds: &Path, port: u32, limit: Duration) -> std::io::Result<UnixStream> {
    let mut stream = UnixStream::connect(uds)?;
    stream.set_read_timeout(Some(limit))?;
    stream.write_all(format!("CONNECT {port}\n").as_bytes())?;
    // Read the reply byte by byte: anything after the newline belongs to the
    // guest connection and must stay in the socket.
    let mut line = Vec::with_capacity(16);
    let mut byte = [0u8; 1];
    loop {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "vsock connection refused (nothing listening in the guest)",
            ));
        }
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
        if line.len() > 64 {
            return Err(std::io::Error::other("vsock handshake reply too long"));
        }
    }
    if !line.starts_with(b"OK ") {
        return Err(std::io::Error::other(format!(
            "vsock handshake refused: {}",
            String::from_utf8_lossy(&line)
        )));
    }
    stream.set_read_timeout(None)?;
    Ok(stream)
}

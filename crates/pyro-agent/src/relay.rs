//! Carrying one TCP connection's bytes over another stream, both ways,
//! with half-closes passed on (published ports, in the guest and in the
//! host-side proxy).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use pyro_proto::{ErrorCode, RemoteError};

/// How long connecting to a guest port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `port` on the guest's loopback, where a service bound to
/// 127.0.0.1 or to every address listens.
pub fn connect_local(port: u16) -> Result<TcpStream, RemoteError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| {
        RemoteError::new(
            ErrorCode::NotFound,
            format!("nothing accepts connections on guest port {port}: {e}"),
        )
    })
}

/// Which end of a relay is the guest service's.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// The TCP stream (in the guest: the connection to the service).
    Tcp,
    /// The other stream (in the host proxy: the way to the guest).
    Fd,
}

/// Copies `fd` ⇄ `tcp` until both directions end. `fd` is a connected
/// stream socket (vsock or unix). The server's end of output ends the
/// whole relay: the vsock sidecar does not pass half-closes on, and an
/// HTTP/1.0 client waits for the connection to close.
pub fn splice(fd: OwnedFd, tcp: TcpStream, server: Server) -> std::io::Result<()> {
    let raw = fd.as_raw_fd();
    let mut sock_read = std::fs::File::from(fd.try_clone()?);
    let mut sock_write = std::fs::File::from(fd);
    let mut tcp_read = tcp.try_clone()?;
    let tcp_write = tcp;
    let inbound = std::thread::spawn(move || {
        let mut tcp_write = tcp_write;
        let r = copy(&mut sock_read, &mut tcp_write);
        let how = if server == Server::Fd {
            Shutdown::Both
        } else {
            Shutdown::Write
        };
        let _ = tcp_write.shutdown(how);
        r
    });
    let r = copy(&mut tcp_read, &mut sock_write);
    if server == Server::Tcp {
        // SAFETY: `raw` stays open until `sock_write` drops below.
        unsafe { libc::shutdown(raw, libc::SHUT_RDWR) };
    }
    // A client's end of input is not passed on: the sidecar would take it
    // for the end of the whole connection and drop the answer. The service
    // has the request; its answer still comes back.
    let back = inbound.join().unwrap_or(Ok(()));
    drop(sock_write);
    r.and(back)
}

fn copy(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A peer that reset is an end like any other.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
    }
}

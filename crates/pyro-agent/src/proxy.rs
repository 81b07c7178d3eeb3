//! Host mode: the published-port proxy. `pyro` binds the host port itself
//! (so a taken port is its error, not ours) and hands the listener over as
//! fd 3; each accepted connection goes to the guest's agent over the vsock
//! sidecar as a `TcpConnect` to the service's guest port.
//!
//! It lives in this binary because the static agent is the one helper every
//! pyro install already ships; nothing here runs in a guest.

use std::net::TcpListener;
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pyro_proto::{Connection, Message, Request, Response, AGENT_PORT};

/// The listener `pyro` passes.
const LISTENER_FD: i32 = 3;

/// How the proxy names itself in the handshake.
const PEER: &str = concat!("pyro-agent publish-proxy ", env!("CARGO_PKG_VERSION"));

struct Args {
    vsock: PathBuf,
    guest_port: u16,
    /// The guest's VMM: pid and start time (field 22 of /proc/PID/stat).
    watch: (i32, u64),
}

fn parse(args: &[String]) -> Option<Args> {
    let mut vsock = None;
    let mut guest_port = None;
    let mut watch = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next()?;
        match flag.as_str() {
            "--vsock" => vsock = Some(PathBuf::from(value)),
            "--guest-port" => guest_port = Some(value.parse().ok()?),
            "--watch" => {
                let (pid, start) = value.split_once(':')?;
                watch = Some((pid.parse().ok()?, start.parse().ok()?));
            }
            _ => return None,
        }
    }
    Some(Args {
        vsock: vsock?,
        guest_port: guest_port?,
        watch: watch?,
    })
}

/// `pyro-agent publish-proxy --vsock PATH --guest-port N --watch PID:START`.
pub fn main(args: &[String]) -> ExitCode {
    let Some(args) = parse(args) else {
        eprintln!(
            "usage: pyro-agent publish-proxy --vsock PATH --guest-port N --watch PID:START \
             (with a listening TCP socket as fd 3; started by pyro)"
        );
        return ExitCode::from(2);
    };
    // SAFETY: pyro passes a listening socket as fd 3 and nothing else owns it.
    let listener = unsafe { TcpListener::from_raw_fd(LISTENER_FD) };
    if listener.local_addr().is_err() {
        eprintln!("pyro-agent publish-proxy: fd 3 is not a listening socket");
        return ExitCode::from(2);
    }
    let (pid, start) = args.watch;
    if start_time(pid) != Some(start) {
        eprintln!("pyro-agent publish-proxy: the guest is already gone");
        return ExitCode::FAILURE;
    }
    // The proxy ends with the guest, however the guest ends.
    std::thread::spawn(move || {
        wait_for_exit(pid, start);
        std::process::exit(0);
    });
    for conn in listener.incoming() {
        let Ok(tcp) = conn else { continue };
        let (vsock, port) = (args.vsock.clone(), args.guest_port);
        std::thread::spawn(move || {
            if let Err(e) = forward(&vsock, port, tcp) {
                eprintln!("pyro-agent publish-proxy: guest port {port}: {e}");
            }
        });
    }
    ExitCode::SUCCESS
}

fn forward(vsock: &Path, port: u16, tcp: std::net::TcpStream) -> Result<(), String> {
    let stream = pyro_proto::hybrid::connect(vsock, AGENT_PORT).map_err(|e| e.to_string())?;
    let mut conn = Connection::new(stream);
    conn.client_handshake_with(PEER, &Message::Request(Request::TcpConnect { port }))
        .map_err(|e| e.to_string())?;
    match conn.expect().map_err(|e| e.to_string())? {
        Message::Response(Response::Done) => {}
        Message::Error(e) => return Err(e.message),
        other => return Err(format!("unexpected {}", other.name())),
    }
    let fd: std::os::fd::OwnedFd = conn.into_inner().into();
    crate::relay::splice(fd, tcp, crate::relay::Server::Fd).map_err(|e| e.to_string())
}

/// Field 22 of /proc/PID/stat, for a process that is not a zombie.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // `rest` starts at field 3 (state).
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn wait_for_exit(pid: i32, start: u64) {
    // SAFETY: plain syscall; a pidfd is owned below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if pidfd >= 0 && start_time(pid) == Some(start) {
        let mut pfd = libc::pollfd {
            fd: pidfd,
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, -1) };
            if n > 0 {
                return;
            }
        }
    }
    // No pidfd (kernel < 5.3): look every half second.
    while start_time(pid) == Some(start) {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

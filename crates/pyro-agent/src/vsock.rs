//! AF_VSOCK sockets, which std does not offer.

use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The host's context id.
pub const HOST_CID: u32 = libc::VMADDR_CID_HOST;

fn addr(cid: u32, port: u32) -> libc::sockaddr_vm {
    // SAFETY: sockaddr_vm is plain data; zero is a valid start.
    let mut a: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    a.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    a.svm_cid = cid;
    a.svm_port = port;
    a
}

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor owned from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn check(rc: i32) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A listening vsock socket.
pub struct Listener(OwnedFd);

impl Listener {
    /// Listens on `port` for any CID.
    pub fn bind(port: u32) -> io::Result<Self> {
        use std::os::fd::AsRawFd;
        let fd = socket()?;
        let a = addr(libc::VMADDR_CID_ANY, port);
        let len = std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t;
        // SAFETY: valid fd and address of the stated length.
        check(unsafe { libc::bind(fd.as_raw_fd(), (&a as *const libc::sockaddr_vm).cast(), len) })?;
        // SAFETY: valid fd.
        check(unsafe { libc::listen(fd.as_raw_fd(), 128) })?;
        Ok(Self(fd))
    }

    /// Accepts one connection as a `File` (read/write on the socket).
    pub fn accept(&self) -> io::Result<File> {
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: valid fd; null peer address is allowed.
            let fd: RawFd = unsafe {
                libc::accept4(
                    self.0.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            };
            if fd >= 0 {
                // SAFETY: fresh descriptor.
                return Ok(unsafe { File::from_raw_fd(fd) });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Connects to `port` on `cid`.
pub fn connect(cid: u32, port: u32) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let fd = socket()?;
    let a = addr(cid, port);
    let len = std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t;
    // SAFETY: valid fd and address of the stated length.
    check(unsafe { libc::connect(fd.as_raw_fd(), (&a as *const libc::sockaddr_vm).cast(), len) })?;
    Ok(File::from(fd))
}

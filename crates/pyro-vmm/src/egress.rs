//! Egress networking that cannot reach the host's loopback.
//!
//! QEMU's user-mode stack (libslirp) maps its gateway 10.0.2.2 to the
//! loopback of whatever network namespace QEMU runs in, and a root guest can
//! also route 127.0.0.1 out of its NIC; neither can be switched off. So QEMU
//! runs in a network namespace of its own (inside a user namespace, so no
//! root is needed) whose loopback has nothing listening, and slirp4netns
//! gives that namespace its way out through host sockets, with
//! `--disable-host-loopback` so the namespace cannot reach the host's
//! loopback through slirp4netns's own gateway either.
//!
//! Lifetime: slirp4netns's `--exit-fd` is the read end of a pipe whose only
//! write end QEMU holds, so slirp4netns exits whenever QEMU does, however
//! QEMU dies (kill -9 included) and whoever started it.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::VmmError;

/// How long slirp4netns may take to set up the namespace.
const READY_WAIT: Duration = Duration::from_secs(10);

/// Address range of the namespace's link to slirp4netns. It differs from
/// QEMU's own 10.0.2.0/24, so a guest naming the outer gateway reaches
/// slirp4netns (which refuses host loopback), not QEMU's gateway.
const OUTER_CIDR: &str = "10.0.3.0/24";

/// A pipe end pair, close-on-exec until a child is told to keep one.
pub(crate) struct Pipe {
    pub(crate) read: OwnedFd,
    pub(crate) write: OwnedFd,
}

impl Pipe {
    pub(crate) fn new() -> std::io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two fds on success, which we then own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fresh fds from pipe2, owned by nobody else.
        Ok(unsafe {
            Pipe {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: OwnedFd::from_raw_fd(fds[1]),
            }
        })
    }
}

/// Lets the child keep `fds` across exec (same numbers).
pub(crate) fn keep_fds(cmd: &mut Command, fds: Vec<RawFd>) {
    // SAFETY: fcntl is async-signal-safe; the fds are open in the parent
    // until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Runs `cmd` (QEMU) in a new user and network namespace where it is root,
/// mapped to the caller's own uid and gid; it keeps `exit_write` open.
pub(crate) fn isolate(cmd: &mut Command, exit_write: RawFd) {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // Formatted before fork: the child may only make async-signal-safe calls.
    let uid_map = format!("0 {uid} 1");
    let gid_map = format!("0 {gid} 1");
    // SAFETY: unshare, open, write and close are async-signal-safe, and the
    // child is single-threaded after fork, as CLONE_NEWUSER requires.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            write_proc(c"/proc/self/setgroups", b"deny")?;
            write_proc(c"/proc/self/uid_map", uid_map.as_bytes())?;
            write_proc(c"/proc/self/gid_map", gid_map.as_bytes())?;
            Ok(())
        });
    }
    keep_fds(cmd, vec![exit_write]);
}

fn write_proc(path: &std::ffi::CStr, data: &[u8]) -> std::io::Result<()> {
    // SAFETY: path is NUL-terminated; data outlives the call.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

/// Starts slirp4netns for the namespace of `qemu_pid` and waits until the
/// namespace has its interface, address and default route.
pub(crate) fn start_slirp(
    slirp: &Path,
    qemu_pid: u32,
    exit_read: OwnedFd,
    log: &Path,
    own: impl FnOnce(&mut Command),
) -> Result<Child, VmmError> {
    let ready = Pipe::new().map_err(VmmError::io("making the network ready pipe"))?;
    let mut cmd = Command::new(slirp);
    cmd.arg("--configure")
        .arg("--mtu=65520")
        .arg("--disable-host-loopback")
        .arg(format!("--cidr={OUTER_CIDR}"))
        .arg(format!("--userns-path=/proc/{qemu_pid}/ns/user"))
        .arg(format!("--exit-fd={}", exit_read.as_raw_fd()))
        .arg(format!("--ready-fd={}", ready.write.as_raw_fd()))
        .arg(qemu_pid.to_string())
        .arg("tap0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(log).map_err(VmmError::io("creating the network log"))?,
        ));
    keep_fds(
        &mut cmd,
        vec![exit_read.as_raw_fd(), ready.write.as_raw_fd()],
    );
    own(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| VmmError::Spawn {
        what: "slirp4netns",
        source,
    })?;
    // Only the children hold these now: EOF on `ready` means slirp4netns
    // is gone, and QEMU alone keeps slirp4netns alive.
    drop(exit_read);
    let Pipe { read, write } = ready;
    drop(write);
    match wait_ready(read, &mut child) {
        Ok(()) => Ok(child),
        Err(reason) => {
            crate::process::kill_and_reap(&mut child);
            let detail = std::fs::read_to_string(log).unwrap_or_default();
            let detail = detail.lines().last().unwrap_or("").trim().to_string();
            Err(VmmError::NetworkFailed(if detail.is_empty() {
                reason
            } else {
                format!("{reason}: {detail}")
            }))
        }
    }
}

fn wait_ready(read: OwnedFd, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + READY_WAIT;
    let mut pfd = libc::pollfd {
        fd: read.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "slirp4netns did not set up the network within {} s",
                READY_WAIT.as_secs()
            ));
        }
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(500) as i32) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.to_string());
        }
        if n > 0 {
            let mut byte = [0u8; 1];
            let mut f = std::fs::File::from(read);
            return match f.read(&mut byte) {
                Ok(1) => Ok(()),
                _ => Err(match child.try_wait() {
                    Ok(Some(status)) => format!("slirp4netns exited ({status})"),
                    _ => "slirp4netns closed its ready pipe".into(),
                }),
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("slirp4netns exited ({status})"));
        }
    }
}

/// Whether egress can work on this host for this user: slirp4netns found,
/// a user and network namespace can be made, and /dev/net/tun opens (the
/// namespace's tap). The error says what is missing.
pub fn check(tools: &crate::HostTools) -> Result<(), String> {
    if tools.slirp4netns.path.is_none() {
        return Err("slirp4netns is not installed (Debian package slirp4netns)".into());
    }
    let mut cmd = Command::new("/bin/true");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let pipe = Pipe::new().map_err(|e| e.to_string())?;
    isolate(&mut cmd, pipe.write.as_raw_fd());
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(_) | Err(_) => {
            return Err(
                "cannot create a user and network namespace (unprivileged user namespaces are disabled: sysctl kernel.unprivileged_userns_clone or user.max_user_namespaces)"
                    .into(),
            )
        }
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| format!("cannot open /dev/net/tun ({e}); it is usually mode 0666"))?;
    Ok(())
}

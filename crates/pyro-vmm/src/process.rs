//! Helper processes (QEMU, the vsock sidecar) owned by a pyro command.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// How long a killed helper gets to be reaped before we stop waiting.
const REAP_WAIT: Duration = Duration::from_secs(5);

/// Gives a child the default signal mask and dispositions: pyro blocks
/// SIGINT/SIGTERM/SIGHUP in all its threads (one thread takes them with
/// sigwait), and a mask is inherited across exec, so without this a guest's
/// QEMU would ignore a polite `kill` from anyone.
fn clean_signals(cmd: &mut Command) {
    // SAFETY: sigemptyset, sigprocmask and signal are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
}

/// Makes `cmd` die with the calling thread's process (PR_SET_PDEATHSIG) and
/// puts it in its own process group, so a Ctrl-C at the terminal reaches
/// pyro (which cleans up) rather than killing helpers mid-flight.
pub fn bind_to_caller(cmd: &mut Command) {
    cmd.process_group(0);
    clean_signals(cmd);
    // SAFETY: prctl and getppid are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() == 1 {
                return Err(std::io::Error::other("parent exited"));
            }
            Ok(())
        });
    }
}

/// Keeps transparent huge pages away from `cmd` (inherited across exec).
/// QEMU marks its TCG translation buffer MADV_HUGEPAGE, so on a host with
/// THP an idle guest held its whole buffer in 2 MiB pages (32 MiB at
/// `tb-size=32`) where it touches a few MiB in 4 KiB pages.
pub fn no_huge_pages(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            // Best effort: a kernel without it just keeps its default.
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
            Ok(())
        });
    }
}

/// Kills a child with SIGKILL and reaps it, waiting a bounded time.
pub fn kill_and_reap(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = child.kill();
    let deadline = Instant::now() + REAP_WAIT;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Lets a helper outlive this process: its own process group, no death
/// signal. Used for workspace guests, which keep running between commands.
pub fn detach(cmd: &mut Command) {
    cmd.process_group(0);
    clean_signals(cmd);
}

/// A process identified by pid and start time, so a reused pid is never
/// mistaken for it (or killed in its place).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcRef {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (field 22 of /proc/PID/stat).
    pub start_time: u64,
}

/// Start time of a process, if it exists.
pub fn start_time(pid: u32) -> Option<u64> {
    match state_and_start(pid)? {
        ('Z' | 'X', _) => None,
        (_, start) => Some(start),
    }
}

/// State letter and start time of a process (fields 3 and 22 of stat).
fn state_and_start(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18)?.parse().ok()?))
}

impl ProcRef {
    /// A long-lived caller (an MCP server) is the parent of the guests it
    /// started: reap this process if it exited and is our zombie, so none
    /// accumulate. Only this very process (same start time), never a pid
    /// reused by another child whose status someone else waits for.
    pub fn reap_zombie(&self) {
        if state_and_start(self.pid) == Some(('Z', self.start_time)) {
            // SAFETY: plain syscall; WNOHANG never blocks.
            unsafe { libc::waitpid(self.pid as i32, std::ptr::null_mut(), libc::WNOHANG) };
        }
    }

    /// Refers to a running process.
    pub fn of(pid: u32) -> Option<ProcRef> {
        start_time(pid).map(|start_time| ProcRef { pid, start_time })
    }

    /// Still running (and not a zombie), and the same process.
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }

    /// SIGKILLs it if it is still the same process; waits until it is gone
    /// (bounded).
    pub fn kill(&self) {
        self.reap_zombie();
        if !self.alive() {
            return;
        }
        // SAFETY: plain syscall on a verified process.
        unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
        // Reap it if it happens to be our child; otherwise init does.
        // SAFETY: plain syscall.
        unsafe { libc::waitpid(self.pid as i32, std::ptr::null_mut(), libc::WNOHANG) };
        let deadline = Instant::now() + REAP_WAIT;
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            // SAFETY: plain syscall.
            unsafe { libc::waitpid(self.pid as i32, std::ptr::null_mut(), libc::WNOHANG) };
        }
    }
}

//! Helper processes (QEMU, the vsock sidecar) owned by a pyro command.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// How long a killed helper gets to be reaped before we stop waiting.
const REAP_WAIT: Duration = Duration::from_secs(5);

/// Makes `cmd` die with the calling thread's process (PR_SET_PDEATHSIG) and
/// puts it in its own process group, so a Ctrl-C at the terminal reaches
/// pyro (which cleans up) rather than killing helpers mid-flight.
pub fn bind_to_caller(cmd: &mut Command) {
    cmd.process_group(0);
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

//! SIGINT/SIGTERM/SIGHUP: let core clean up what the interrupted operation
//! leaves, say what it did, then exit.
//!
//! The signals are blocked in every thread and taken by one thread with
//! `sigwait`, so clean-up runs as ordinary code, not in a signal handler.
//! Children (QEMU, the sidecar) get a clean mask back when they start.

use pyro_core::{ErrorBody, ErrorCode, ErrorEnvelope};

fn set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut s, sig);
        }
        s
    }
}

/// Whether the running command prints JSON (so an interruption is
/// reported as the JSON error object).
pub static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn install() {
    let s = set();
    // SAFETY: valid set pointer.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &s, std::ptr::null_mut()) };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut sig = 0;
            // SAFETY: valid pointers.
            unsafe { libc::sigwait(&s, &mut sig) };
            // From here on only this thread prints: the interrupted
            // operation may still fail (its guest is being killed) and
            // must not add its own report. The locks are reentrant, so the
            // printer below can take them again; the process exits holding
            // them.
            let _stdout = std::io::stdout().lock();
            let _stderr = std::io::stderr().lock();
            let message = pyro_core::interrupt::handle();
            if JSON.load(std::sync::atomic::Ordering::Relaxed) {
                crate::printer::Printer { json: true }.json(&ErrorEnvelope::new(ErrorBody {
                    code: ErrorCode::Interrupted,
                    message,
                    hint: None,
                }));
            } else {
                crate::printer::write_err(format!("pyro: {message}\n").as_bytes());
            }
            std::process::exit(128 + sig);
        })
        .expect("spawning the signal thread");
}

//! SIGINT/SIGTERM/SIGHUP: tear down this process's guests, then exit.
//!
//! The signals are blocked in every thread and taken by one thread with
//! `sigwait`, so teardown runs as ordinary code, not in a signal handler.

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
            pyro_vmm::live::teardown_all();
            let message = "interrupted; the guest was stopped and its files removed";
            if JSON.load(std::sync::atomic::Ordering::Relaxed) {
                let code = pyro_core::ErrorCode::Interrupted.as_str();
                crate::printer::Printer { json: true }.json(
                    &serde_json::json!({"ok": false, "error": {"code": code, "message": message}}),
                );
            } else {
                crate::printer::write_err(format!("pyro: {message}\n").as_bytes());
            }
            std::process::exit(128 + sig);
        })
        .expect("spawning the signal thread");
}

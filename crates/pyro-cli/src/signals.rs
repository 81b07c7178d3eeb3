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
            crate::printer::write_err(b"pyro: interrupted; guests stopped and cleaned up\n");
            std::process::exit(128 + sig);
        })
        .expect("spawning the signal thread");
}

//! Making a guest its own machine: after a resume from a template every
//! clone starts with the template's random pool, clock, machine-id and
//! hostname, so the host sends fresh ones (on cold boots too, for one path).

use pyro_proto::{ErrorCode, RemoteError};

/// `RNDADDENTROPY`: add bytes to the pool and credit them.
const RNDADDENTROPY: libc::c_ulong = 0x4008_5203;
/// `RNDRESEEDCRNG`: reseed the CRNG from the pool now.
const RNDRESEEDCRNG: libc::c_ulong = 0x5207;

fn internal(what: &str, e: std::io::Error) -> RemoteError {
    RemoteError::new(ErrorCode::Internal, format!("{what}: {e}"))
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Applies an identity (see `Request::SetIdentity`).
pub fn set(
    unix_time_ms: u64,
    entropy_hex: &str,
    machine_id: &str,
    hostname: &str,
) -> Result<(), RemoteError> {
    let bad = |m: String| RemoteError::new(ErrorCode::BadRequest, m);
    let entropy = hex(entropy_hex).ok_or_else(|| bad("entropy is not hex".into()))?;
    if machine_id.len() != 32 || !machine_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("machine_id must be 32 hex digits".into()));
    }
    if hostname.is_empty()
        || hostname.len() > 63
        || !hostname
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(bad(format!("hostname '{hostname}' is not valid")));
    }
    reseed(&entropy)?;
    let ts = libc::timespec {
        tv_sec: (unix_time_ms / 1000) as libc::time_t,
        tv_nsec: ((unix_time_ms % 1000) * 1_000_000) as libc::c_long,
    };
    // SAFETY: a valid timespec.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) } != 0 {
        return Err(internal(
            "setting the clock",
            std::io::Error::last_os_error(),
        ));
    }
    std::fs::write("/etc/machine-id", format!("{machine_id}\n"))
        .map_err(|e| internal("writing /etc/machine-id", e))?;
    // SAFETY: pointer and length of a live string.
    if unsafe { libc::sethostname(hostname.as_ptr().cast(), hostname.len()) } != 0 {
        return Err(internal(
            "setting the hostname",
            std::io::Error::last_os_error(),
        ));
    }
    let _ = std::fs::write("/etc/hostname", format!("{hostname}\n"));
    Ok(())
}

fn reseed(entropy: &[u8]) -> Result<(), RemoteError> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/urandom")
        .map_err(|e| internal("opening /dev/urandom", e))?;
    // struct rand_pool_info { int entropy_count; int buf_size; u32 buf[]; }
    let mut info = Vec::with_capacity(8 + entropy.len());
    info.extend_from_slice(&((entropy.len() * 8) as i32).to_ne_bytes());
    info.extend_from_slice(&(entropy.len() as i32).to_ne_bytes());
    info.extend_from_slice(entropy);
    // SAFETY: `info` has the layout the ioctl reads, and outlives it.
    if unsafe { libc::ioctl(f.as_raw_fd(), RNDADDENTROPY as _, info.as_ptr()) } != 0 {
        return Err(internal("adding entropy", std::io::Error::last_os_error()));
    }
    // SAFETY: no argument.
    if unsafe { libc::ioctl(f.as_raw_fd(), RNDRESEEDCRNG as _) } != 0 {
        return Err(internal("reseeding", std::io::Error::last_os_error()));
    }
    Ok(())
}

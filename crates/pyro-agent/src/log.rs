//! Console logging. As PID 1 stderr is the guest console, which the host
//! keeps in the VM's console log for diagnostics.

/// Writes one line prefixed with `pyro-agent:` to stderr.
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "pyro-agent: {}", format_args!($($arg)*));
    }};
}
pub(crate) use log;

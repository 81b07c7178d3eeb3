//! Loading the kernel modules the environment builder put in the initramfs.

use std::ffi::CString;
use std::os::fd::AsRawFd;

use crate::log::log;

/// Directory holding the modules and their load order.
pub const MODULE_DIR: &str = "/lib/modules/pyro";

/// Loads every module listed in `MODULE_DIR/order`, in order.
pub fn load_all() {
    let order = match std::fs::read_to_string(format!("{MODULE_DIR}/order")) {
        Ok(o) => o,
        Err(e) => {
            log!("no module list: {e}");
            return;
        }
    };
    for name in order.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Err(e) = load(&format!("{MODULE_DIR}/{name}")) {
            log!("loading {name} failed: {e}");
        }
    }
}

fn load(path: &str) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    let params = CString::default();
    // SAFETY: valid fd and NUL-terminated parameter string.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
    Ok(())
}

//! Loading the kernel modules the environment builder put in the initramfs.

use std::ffi::CString;
use std::os::fd::AsRawFd;

use crate::log::log;

/// Directory holding the modules and their load order.
pub const MODULE_DIR: &str = "/lib/modules/pyro";

/// Modules only a networked guest needs.
const NET_MODULES: &[&str] = &["failover.ko", "net_failover.ko", "virtio_net.ko"];
/// Only the microvm machine type uses virtio-mmio.
const MMIO_MODULES: &[&str] = &["virtio_mmio.ko"];

/// Loads the modules listed in `MODULE_DIR/order`, in order, skipping
/// networking when the guest has no NIC (every insmod costs boot time).
pub fn load_all(network: bool) {
    let order = match std::fs::read_to_string(format!("{MODULE_DIR}/order")) {
        Ok(o) => o,
        Err(e) => {
            log!("no module list: {e}");
            return;
        }
    };
    let wanted =
        |name: &&str| !(MMIO_MODULES.contains(name) || (!network && NET_MODULES.contains(name)));
    for name in order
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(wanted)
    {
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

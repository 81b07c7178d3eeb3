//! Templates: a booted guest frozen to files, and guests resumed from a
//! copy of them instead of booting.
//!
//! vhost-user-vsock cannot be migrated, so every guest has its vsock device
//! on a hot-pluggable PCIe port: freezing unplugs it, stops the guest and
//! saves the device state (`x-ignore-shared`: guest RAM lives in a file and
//! is not copied into the state); a clone gets a private copy of the RAM
//! in a memfd, takes the device state as an incoming migration, runs on,
//! and gets a vsock device of its own, on its own sidecar.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::qmp::Qmp;
use crate::VmmError;

/// Id of the vsock device, so it can be unplugged and plugged again.
pub(crate) const VSOCK_DEVICE: &str = "vsock0";
/// How long the guest's hotplug driver gets to finish an unplug.
const HOTPLUG_SETTLE: Duration = Duration::from_secs(3);
/// The hot-pluggable port it sits on.
pub(crate) const VSOCK_PORT: &str = "rp1";

/// The files of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateFiles {
    /// Its directory.
    pub dir: PathBuf,
}

impl TemplateFiles {
    /// The template in `dir`.
    pub fn new(dir: &Path) -> TemplateFiles {
        TemplateFiles {
            dir: dir.to_path_buf(),
        }
    }
    /// Guest RAM (sparse).
    pub fn ram(&self) -> PathBuf {
        self.dir.join("ram")
    }
    /// Device state.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }
    /// The disk overlay the frozen guest had mounted.
    pub fn disk(&self) -> PathBuf {
        self.dir.join("disk.qcow2")
    }
}

/// `exec:` migration URIs go through `/bin/sh -c`.
fn sh_quote(path: &Path) -> Result<String, VmmError> {
    let s = path.to_string_lossy();
    if s.contains('\'') {
        return Err(VmmError::Template(format!(
            "the path {s} holds a quote; templates need a plainer cache directory"
        )));
    }
    Ok(format!("'{s}'"))
}

/// Freezes a guest booted for a template: unplug vsock, stop, save the
/// device state beside its RAM file, quit QEMU.
pub(crate) fn freeze(qmp_path: &Path, state: &Path) -> Result<(), VmmError> {
    let mut qmp = Qmp::connect(qmp_path, Duration::from_secs(5))?;
    qmp.execute("device_del", json!({ "id": VSOCK_DEVICE }))?;
    qmp.wait_event("DEVICE_DELETED", Duration::from_secs(10))?;
    // The guest's PCIe hotplug driver is still finishing the removal (it
    // sleeps after powering the slot off). Frozen mid-way, every clone
    // would finish it after the resume, against the device plugged in
    // then: the slot is power-cycled and the vsock sidecar dies ("already
    // claimed"). Let it settle first.
    std::thread::sleep(HOTPLUG_SETTLE);
    qmp.execute("stop", json!({}))?;
    ignore_shared(&mut qmp)?;
    qmp.execute(
        "migrate",
        json!({ "uri": format!("exec:cat > {}", sh_quote(state)?) }),
    )?;
    qmp.wait_migration(Duration::from_secs(60))?;
    // QEMU exits; the caller reaps it.
    let _ = qmp.execute("quit", json!({}));
    Ok(())
}

/// Turns the zero pages of a frozen template's RAM file into holes, so
/// each clone copies only what the guest really holds.
pub(crate) fn punch_zero_pages(ram: &Path) -> Result<(), VmmError> {
    let io = |e: std::io::Error| VmmError::Template(format!("compacting the template memory: {e}"));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(ram)
        .map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = f.read_at(&mut buf, at).map_err(io)?;
        if n == 0 {
            break;
        }
        for (i, page) in buf[..n].chunks(PAGE).enumerate() {
            if is_zero(page) {
                let off = at + (i * PAGE) as u64;
                // SAFETY: plain syscall on an open fd.
                let rc = unsafe {
                    libc::fallocate(
                        f.as_raw_fd(),
                        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                        off as libc::off_t,
                        page.len() as libc::off_t,
                    )
                };
                if rc != 0 {
                    // A filesystem without hole punching: clones copy more.
                    return Ok(());
                }
            }
        }
        at += n as u64;
    }
    Ok(())
}

const PAGE: usize = 4096;

fn is_zero(page: &[u8]) -> bool {
    // SAFETY: any bit pattern is a valid u64.
    let (head, words, tail) = unsafe { page.align_to::<u64>() };
    head.iter().all(|&b| b == 0) && words.iter().all(|&w| w == 0) && tail.iter().all(|&b| b == 0)
}

fn ignore_shared(qmp: &mut Qmp) -> Result<(), VmmError> {
    qmp.execute(
        "migrate-set-capabilities",
        json!({ "capabilities": [{ "capability": "x-ignore-shared", "state": true }] }),
    )
    .map(|_| ())
}

/// A private copy of the template's RAM in a memfd of `size` bytes; only
/// the template's data regions are copied, so holes stay unallocated.
pub(crate) fn ram_copy(t: &TemplateFiles, size: u64) -> Result<OwnedFd, VmmError> {
    let io =
        |what: &'static str| move |e: std::io::Error| VmmError::Template(format!("{what}: {e}"));
    // SAFETY: memfd_create with a static name; the fd is owned below.
    let fd = unsafe { libc::memfd_create(c"pyro-ram".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io("memfd_create")(std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd nobody else owns.
    let mem = unsafe { OwnedFd::from_raw_fd(fd) };
    let dst = std::fs::File::from(mem.try_clone().map_err(io("memfd"))?);
    dst.set_len(size).map_err(io("sizing the guest memory"))?;
    let src = std::fs::File::open(t.ram()).map_err(io("opening the template memory"))?;
    let len = src.metadata().map_err(io("template memory"))?.len();
    if len != size {
        return Err(VmmError::Template(format!(
            "the template memory is {len} bytes, the guest needs {size}"
        )));
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut off: i64 = 0;
    while (off as u64) < len {
        // SAFETY: plain syscalls on open fds.
        let data = unsafe { libc::lseek(src.as_raw_fd(), off, libc::SEEK_DATA) };
        if data < 0 {
            break; // ENXIO: only a hole is left.
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(src.as_raw_fd(), data, libc::SEEK_HOLE) };
        // Plain reads and writes: copy_file_range refuses some
        // filesystem pairs, and a template is read from the page cache.
        let mut at = data as u64;
        while at < hole as u64 {
            let want = buf.len().min((hole as u64 - at) as usize);
            let n = src
                .read_at(&mut buf[..want], at)
                .map_err(io("reading the template memory"))?;
            if n == 0 {
                break;
            }
            // Zero pages (freed ones: the template zeroes on free) stay
            // unallocated in the copy.
            for (i, page) in buf[..n].chunks(PAGE).enumerate() {
                if !is_zero(page) {
                    dst.write_all_at(page, at + (i * PAGE) as u64)
                        .map_err(io("copying the template memory"))?;
                }
            }
            at += n as u64;
        }
        off = hole;
    }
    Ok(mem)
}

/// After QEMU started with `-incoming defer`: load the template's device
/// state, run, and plug in a vsock device on this guest's own sidecar.
pub(crate) fn resume(
    qmp_path: &Path,
    t: &TemplateFiles,
    vhost_user: &Path,
) -> Result<(), VmmError> {
    let mut qmp = Qmp::connect(qmp_path, Duration::from_secs(10))?;
    ignore_shared(&mut qmp)?;
    qmp.execute(
        "migrate-incoming",
        json!({ "uri": format!("exec:cat {}", sh_quote(&t.state())?) }),
    )?;
    qmp.wait_migration(Duration::from_secs(60))?;
    qmp.execute(
        "chardev-add",
        json!({
            "id": "vs0",
            "backend": {
                "type": "socket",
                "data": {
                    "addr": { "type": "unix", "data": { "path": vhost_user.to_string_lossy() } },
                    "server": false,
                },
            },
        }),
    )?;
    qmp.execute(
        "device_add",
        json!({
            "driver": "vhost-user-vsock-pci",
            "chardev": "vs0",
            "bus": VSOCK_PORT,
            "id": VSOCK_DEVICE,
        }),
    )?;
    // Plugged in while the guest is still paused: it sees the new device
    // as a pending hotplug event when it runs, never mid-way.
    qmp.execute("cont", json!({}))?;
    Ok(())
}

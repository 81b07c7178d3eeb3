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
/// The chardev that connects it to its sidecar.
pub(crate) const VSOCK_CHARDEV: &str = "vs0";
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
    // The guest's PCIe hotplug driver is still finishing the removal (it
    // sleeps after powering the slot off). Frozen mid-way, every clone
    // would finish it after the resume, against the device plugged in
    // then: the slot is power-cycled and the vsock sidecar dies ("already
    // claimed"). Let it settle first.
    unplug_vsock(&mut qmp)?;
    qmp.execute("stop", json!({}))?;
    save_state(&mut qmp, state)?;
    // QEMU exits; the caller reaps it.
    let _ = qmp.execute("quit", json!({}));
    Ok(())
}

/// Saves a stopped guest's device state (not its RAM, which is shared) to
/// `state`.
pub(crate) fn save_state(qmp: &mut Qmp, state: &Path) -> Result<(), VmmError> {
    ignore_shared(qmp)?;
    qmp.execute(
        "migrate",
        json!({ "uri": format!("exec:cat > {}", sh_quote(state)?) }),
    )?;
    qmp.wait_migration(Duration::from_secs(60))
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

/// A fresh memfd of `size` bytes for guest RAM.
fn memfd(size: u64) -> Result<OwnedFd, VmmError> {
    // SAFETY: memfd_create with a static name; the fd is owned below.
    let fd = unsafe { libc::memfd_create(c"pyro-ram".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(VmmError::Template(format!(
            "memfd_create: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: a fresh fd nobody else owns.
    let mem = unsafe { OwnedFd::from_raw_fd(fd) };
    std::fs::File::from(
        mem.try_clone()
            .map_err(|e| VmmError::Template(format!("memfd: {e}")))?,
    )
    .set_len(size)
    .map_err(|e| VmmError::Template(format!("sizing the guest memory: {e}")))?;
    Ok(mem)
}

/// A private copy of the template's RAM in a memfd of `size` bytes; only
/// the template's data regions are copied, so holes stay unallocated.
pub(crate) fn ram_copy(t: &TemplateFiles, size: u64) -> Result<OwnedFd, VmmError> {
    let src = std::fs::File::open(t.ram())
        .map_err(|e| VmmError::Template(format!("opening the template memory: {e}")))?;
    let mem = memfd(size)?;
    let dst = std::fs::File::from(
        mem.try_clone()
            .map_err(|e| VmmError::Template(format!("memfd: {e}")))?,
    );
    copy_pages(&src, &dst, size)?;
    Ok(mem)
}

/// Copies the non-zero pages of guest RAM `src` (a template's file or a
/// running guest's memfd) into `dst`, both `size` bytes: only the data
/// regions are read, and zero pages (freed ones: guests zero on free)
/// stay unallocated in the copy.
pub(crate) fn copy_pages(
    src: &std::fs::File,
    dst: &std::fs::File,
    size: u64,
) -> Result<(), VmmError> {
    let io =
        |what: &'static str| move |e: std::io::Error| VmmError::Template(format!("{what}: {e}"));
    let len = src.metadata().map_err(io("guest memory"))?.len();
    if len != size {
        return Err(VmmError::Template(format!(
            "the saved memory is {len} bytes, the guest needs {size}"
        )));
    }
    if dst.metadata().map_err(io("guest memory copy"))?.len() != size {
        dst.set_len(size).map_err(io("sizing the guest memory"))?;
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
                .map_err(io("reading the guest memory"))?;
            if n == 0 {
                break;
            }
            // Runs of non-zero pages go in one write each: a template's
            // data regions hold almost only those (its zero pages are holes).
            let mut run: Option<usize> = None;
            for (i, page) in buf[..n].chunks(PAGE).enumerate() {
                match (is_zero(page), run) {
                    (false, None) => run = Some(i),
                    (true, Some(start)) => {
                        dst.write_all_at(&buf[start * PAGE..i * PAGE], at + (start * PAGE) as u64)
                            .map_err(io("copying the guest memory"))?;
                        run = None;
                    }
                    _ => {}
                }
            }
            if let Some(start) = run {
                dst.write_all_at(&buf[start * PAGE..n], at + (start * PAGE) as u64)
                    .map_err(io("copying the guest memory"))?;
            }
            at += n as u64;
        }
        off = hole;
    }
    Ok(())
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
    plug_vsock(&mut qmp, vhost_user)?;
    // Plugged in while the guest is still paused: it sees the new device
    // as a pending hotplug event when it runs, never mid-way.
    qmp.execute("cont", json!({}))?;
    Ok(())
}

/// Connects the vsock device to a sidecar listening on `vhost_user` and
/// plugs it into its hot-pluggable port.
pub(crate) fn plug_vsock(qmp: &mut Qmp, vhost_user: &Path) -> Result<(), VmmError> {
    qmp.execute(
        "chardev-add",
        json!({
            "id": VSOCK_CHARDEV,
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
            "chardev": VSOCK_CHARDEV,
            "bus": VSOCK_PORT,
            "id": VSOCK_DEVICE,
        }),
    )?;
    Ok(())
}

/// Unplugs the vsock device and waits until the guest let it go and its
/// hotplug driver settled (see [`freeze`]).
pub(crate) fn unplug_vsock(qmp: &mut Qmp) -> Result<(), VmmError> {
    qmp.execute("device_del", json!({ "id": VSOCK_DEVICE }))?;
    qmp.wait_event("DEVICE_DELETED", Duration::from_secs(10))?;
    std::thread::sleep(HOTPLUG_SETTLE);
    Ok(())
}

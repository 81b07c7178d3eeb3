//! Forks: a running guest copied, at one instant, into files a new guest
//! resumes from (like a template), while the source runs on.
//!
//! The source's vsock device is unplugged (vhost-user-vsock cannot be
//! migrated), the guest is stopped, its device state saved, its RAM (the
//! memfd QEMU holds) and disk copied; then it gets a new sidecar and vsock
//! device and runs on. Its agent is out of reach for the few seconds this
//! takes, never its processes.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::process::ProcRef;
use crate::qemu::Lifetime;
use crate::qmp::Qmp;
use crate::template::{self, TemplateFiles};
use crate::vm::VmHandle;
use crate::VmmError;

/// How long the source's agent gets to answer on a new vsock device (it
/// answers in well under a second when the device comes up).
const REATTACH_DEADLINE: Duration = Duration::from_secs(4);
/// Devices plugged into the source before it is given up.
const REATTACH_ATTEMPTS: u32 = 3;

/// What a fork left behind.
#[derive(Debug)]
pub struct Forked {
    /// The source as it now runs (a new sidecar): record it.
    pub source: VmHandle,
    /// The copy to resume, or why it could not be made (the source runs on
    /// either way).
    pub image: Result<TemplateFiles, VmmError>,
}

/// Copies the running guest `vm` into `into` (an empty directory) and
/// lets it run on. An error means the source could not be given its vsock
/// device back: it is still running but out of reach, and the caller must
/// stop it.
pub(crate) fn fork(vm: &VmHandle, into: &Path, sidecar: &Path) -> Result<Forked, VmmError> {
    let files = vm.files();
    let image = TemplateFiles::new(into);
    let mut qmp = match Qmp::connect(&files.qmp, Duration::from_secs(5)) {
        Ok(q) => q,
        // Nothing changed: the source runs on as it was.
        Err(e) => {
            return Ok(Forked {
                source: vm.clone(),
                image: Err(VmmError::Fork(format!("reaching the source's QEMU: {e}"))),
            })
        }
    };
    // The old sidecar goes first. Gone, it makes a fork killed at any
    // later point leave a source that reads as gone (and is reconciled to
    // stopped, its disk kept), never one that looks alive and answers
    // nothing. QEMU keeps running the guest without its backend.
    if let Some(s) = &vm.sidecar {
        s.kill();
    }
    // From here on an error leaves the source out of reach: the caller
    // stops it.
    template::unplug_vsock(&mut qmp)
        .map_err(|e| VmmError::Fork(format!("unplugging the source's vsock device: {e}")))?;
    let copied = copy_stopped(&mut qmp, vm, &image)
        .map_err(|e| VmmError::Fork(format!("copying the running guest: {e}")));
    let source = reattach(&mut qmp, vm, sidecar)?;
    Ok(Forked {
        source,
        image: copied.map(|()| image),
    })
}

/// Stops the guest and copies its device state, RAM and disk.
fn copy_stopped(qmp: &mut Qmp, vm: &VmHandle, image: &TemplateFiles) -> Result<(), VmmError> {
    qmp.execute("stop", json!({}))?;
    // Also flushes and deactivates the disk, so the copy below is whole.
    template::save_state(qmp, &image.state())?;
    let io =
        |what: &'static str| move |e: std::io::Error| VmmError::Template(format!("{what}: {e}"));
    let ram = guest_ram(vm.vmm)?;
    let src = std::fs::File::open(&ram).map_err(io("opening the guest memory"))?;
    let size = src.metadata().map_err(io("guest memory"))?.len();
    let dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(image.ram())
        .map_err(io("creating the memory copy"))?;
    template::copy_pages(&src, &dst, size)?;
    std::fs::copy(vm.files().disk, image.disk()).map_err(io("copying the disk"))?;
    Ok(())
}

/// The guest RAM QEMU holds: its largest memfd.
fn guest_ram(vmm: ProcRef) -> Result<PathBuf, VmmError> {
    let fds = format!("/proc/{}/fd", vmm.pid);
    let read =
        std::fs::read_dir(&fds).map_err(|e| VmmError::Template(format!("reading {fds}: {e}")))?;
    let mut best: Option<(u64, PathBuf)> = None;
    for e in read.filter_map(Result::ok) {
        let is_memfd =
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("/memfd:"));
        if !is_memfd {
            continue;
        }
        let len = std::fs::metadata(e.path()).map(|m| m.len()).unwrap_or(0);
        if best.as_ref().is_none_or(|(l, _)| len > *l) {
            best = Some((len, e.path()));
        }
    }
    if !vmm.alive() {
        return Err(VmmError::Template("QEMU exited during the fork".into()));
    }
    best.map(|(_, p)| p)
        .ok_or_else(|| VmmError::Template("QEMU holds no guest memory in a memfd".into()))
}

/// Gives the source a new sidecar and vsock device and lets it run; waits
/// until its agent answers. Now and then a plugged device never comes up
/// (as with template clones); the source cannot be replaced by another
/// copy, so its device is unplugged and plugged again on a fresh sidecar.
fn reattach(qmp: &mut Qmp, vm: &VmHandle, sidecar: &Path) -> Result<VmHandle, VmmError> {
    let files = vm.files();
    // Running first: a device plugged into a guest paused after an
    // outgoing migration never came up (seen every time), while one
    // plugged into the running guest does.
    let cont = qmp.execute("cont", json!({}));
    // The unplugged device's chardev is still there under its id.
    let _ = qmp.execute("chardev-remove", json!({ "id": template::VSOCK_CHARDEV }));
    cont?;
    let mut last = String::new();
    for attempt in 1..=REATTACH_ATTEMPTS {
        let _ = std::fs::remove_file(&files.vhost_user);
        let _ = std::fs::remove_file(&files.vsock);
        let child = crate::qemu::spawn_sidecar(sidecar, &files, Lifetime::Detached)?;
        let source = VmHandle {
            sidecar: ProcRef::of(child.id()),
            ..vm.clone()
        };
        // Never waited for here: it outlives this process like the first.
        drop(child);
        template::plug_vsock(qmp, &files.vhost_user)?;
        match crate::vm::await_agent(&source, Instant::now() + REATTACH_DEADLINE) {
            Ok(()) => return Ok(source),
            Err(e) => {
                last = format!(
                    "attempt {attempt}: no answer within {} s ({e})",
                    REATTACH_DEADLINE.as_secs()
                )
            }
        }
        if let Some(s) = &source.sidecar {
            s.kill();
        }
        if attempt < REATTACH_ATTEMPTS {
            template::unplug_vsock(qmp)?;
            qmp.execute("chardev-remove", json!({ "id": template::VSOCK_CHARDEV }))?;
        }
    }
    Err(VmmError::Fork(format!(
        "the source's agent did not answer on a new vsock device ({last})"
    )))
}

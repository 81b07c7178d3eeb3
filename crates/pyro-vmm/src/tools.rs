//! Host programs pyro drives, found on PATH (or `~/.cargo/bin` for the
//! cargo-installed sidecar), with their versions.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

/// One host program.
#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    /// Where it is, if found.
    pub path: Option<PathBuf>,
    /// First line of its `--version`, if found.
    pub version: Option<String>,
}

impl Tool {
    fn find(name: &str) -> Tool {
        let path = find_on_path(name);
        let version = path.as_deref().and_then(version_of);
        Tool { path, version }
    }

    /// Whether it was found.
    pub fn present(&self) -> bool {
        self.path.is_some()
    }
}

/// What the host has.
#[derive(Debug, Clone, Serialize)]
pub struct HostTools {
    /// qemu-system-x86_64.
    pub qemu: Tool,
    /// qemu-img (overlays).
    pub qemu_img: Tool,
    /// The vhost-user vsock sidecar.
    pub vhost_device_vsock: Tool,
    /// Firecracker (reported only; its guests need virtio-mmio support).
    pub firecracker: Tool,
    /// slirp4netns: the way out of an egress guest's own namespace.
    pub slirp4netns: Tool,
}

impl HostTools {
    /// Looks everything up. Cheap enough for every command that boots.
    pub fn discover() -> HostTools {
        HostTools {
            qemu: Tool::find("qemu-system-x86_64"),
            qemu_img: Tool::find("qemu-img"),
            vhost_device_vsock: Tool::find("vhost-device-vsock"),
            firecracker: Tool::find("firecracker"),
            slirp4netns: Tool::find("slirp4netns"),
        }
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.push(PathBuf::from("/usr/local/cargo/bin"));
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn version_of(path: &Path) -> Option<String> {
    let out = Command::new(path).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}

/// Whether `/dev/kvm` exists, and whether we can read and write it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct KvmAccess {
    /// The device node exists.
    pub exists: bool,
    /// We may read it.
    pub readable: bool,
    /// We may write it.
    pub writable: bool,
}

impl KvmAccess {
    /// Checks `/dev/kvm`.
    pub fn check() -> KvmAccess {
        let path = c"/dev/kvm";
        // SAFETY: valid NUL-terminated path.
        let ok = |mode| unsafe { libc::access(path.as_ptr(), mode) == 0 };
        KvmAccess {
            exists: ok(libc::F_OK),
            readable: ok(libc::R_OK),
            writable: ok(libc::W_OK),
        }
    }

    /// Usable for a VM at all.
    pub fn usable(&self) -> bool {
        self.exists && self.readable && self.writable
    }
}

/// Whether the kernel's vhost-vsock device is usable.
pub fn kernel_vhost_vsock() -> bool {
    let path = c"/dev/vhost-vsock";
    // SAFETY: valid NUL-terminated path.
    unsafe { libc::access(path.as_ptr(), libc::R_OK | libc::W_OK) == 0 }
}

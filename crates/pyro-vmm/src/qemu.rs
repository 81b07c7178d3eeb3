//! The QEMU backend: command line and start-up.
//!
//! A guest is q35 with virtio-pci devices, booted straight from the
//! environment's kernel and initramfs. vsock goes through the
//! `vhost-device-vsock` sidecar (vhost-user, needs a shared memfd memory
//! backend), which gives the host a unix socket. The console goes to a file
//! in the VM directory for diagnostics.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{bind_to_caller, detach, kill_and_reap};
use crate::tools::{HostTools, KvmAccess};
use crate::vm::{Vm, VmFiles};
use crate::vsock::MAX_SOCKET_PATH;
use crate::VmmError;

/// How long the sidecar may take to create its socket.
const SIDECAR_READY: Duration = Duration::from_secs(5);

/// CPU virtualisation used for the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// Software emulation: slow, still a real isolated guest.
    Tcg,
}

impl Accel {
    /// Name as in `PYRO_ACCEL` and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Everything needed to start one guest.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// Short unique id (12 hex).
    pub vm_id: String,
    /// Runtime directory: sockets, disk overlay, console log. Must exist.
    pub dir: PathBuf,
    /// Guest kernel.
    pub kernel: PathBuf,
    /// Initramfs with the agent.
    pub initramfs: PathBuf,
    /// Base root image (raw ext4); a qcow2 overlay on it is the guest's disk.
    pub rootfs: PathBuf,
    /// Whether the overlay is made now or must already exist.
    pub disk: DiskMode,
    /// Extra kernel command line arguments (`pyro.*` knobs for the agent).
    pub kernel_args: Vec<String>,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub mem_mib: u32,
    /// Give the guest user-mode networking.
    pub network: bool,
    /// Accelerator.
    pub accel: Accel,
}

/// Whether a guest's disk overlay is created or reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskMode {
    /// Make a fresh overlay (replacing a leftover one).
    Create,
    /// The overlay must exist (a workspace being started again keeps its
    /// files); a missing one is an error, never an empty disk.
    Existing,
}

/// Kernel command line of every pyro guest.
pub fn kernel_cmdline(network: bool, extra: &[String]) -> String {
    let mut s = String::from("console=ttyS0 reboot=k panic=1 quiet loglevel=3 pyro.root=/dev/vda");
    if network {
        s.push_str(" pyro.net=1");
    }
    for arg in extra {
        s.push(' ');
        s.push_str(arg);
    }
    s
}

/// QEMU arguments shared by real guests and boot probes.
pub fn base_args(
    accel: Accel,
    vcpus: u32,
    mem_mib: u32,
    kernel: &Path,
    initramfs: &Path,
    cmdline: &str,
) -> Vec<String> {
    let (machine, cpu) = match accel {
        Accel::Kvm => ("q35,accel=kvm", "host"),
        Accel::Tcg => ("q35,accel=tcg", "max"),
    };
    [
        "-machine",
        machine,
        "-cpu",
        cpu,
        "-smp",
        &vcpus.to_string(),
        "-m",
        &format!("{mem_mib}M"),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
        "-kernel",
        &kernel.to_string_lossy(),
        "-initrd",
        &initramfs.to_string_lossy(),
        "-append",
        cmdline,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn check_socket_path(path: &Path) -> Result<(), VmmError> {
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(VmmError::SocketPathTooLong(path.to_path_buf()));
    }
    Ok(())
}

fn wait_for_path(
    path: &Path,
    child: &mut std::process::Child,
    limit: Duration,
) -> Result<(), VmmError> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if path.exists() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(VmmError::BootFailed {
                reason: format!("vhost-device-vsock exited ({status})"),
                console: String::new(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(VmmError::BootFailed {
        reason: "vhost-device-vsock did not create its socket".into(),
        console: String::new(),
    })
}

/// Whether a guest dies with the process that started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// One-shot: QEMU and the sidecar die with this process; the runtime
    /// directory is removed on teardown.
    BoundToCaller,
    /// Workspace: QEMU and the sidecar keep running after this process
    /// exits; teardown keeps the directory (and so the disk).
    Detached,
}

/// Starts the guest described by `spec`. The returned [`Vm`] owns QEMU and
/// the sidecar; both die with this process.
pub fn start(spec: &VmSpec, tools: &HostTools) -> Result<Vm, VmmError> {
    start_with(spec, tools, Lifetime::BoundToCaller)
}

/// The QEMU backend.
#[derive(Debug, Clone)]
pub struct Qemu {
    tools: HostTools,
}

impl Qemu {
    /// A backend using these host programs.
    pub fn new(tools: HostTools) -> Qemu {
        Qemu { tools }
    }
}

impl crate::Backend for Qemu {
    fn kind(&self) -> crate::BackendKind {
        crate::BackendKind::Qemu
    }
    fn start(&self, spec: &VmSpec, lifetime: Lifetime) -> Result<Vm, VmmError> {
        start_with(spec, &self.tools, lifetime)
    }
    fn status(&self, vm: &crate::VmHandle) -> crate::VmStatus {
        vm.status()
    }
    fn stop(&self, vm: &crate::VmHandle) {
        vm.shutdown();
    }
    fn kill(&self, vm: &crate::VmHandle) {
        vm.kill();
    }
    fn connect(
        &self,
        vm: &crate::VmHandle,
    ) -> Result<pyro_proto::Connection<std::os::unix::net::UnixStream>, VmmError> {
        vm.connect()
    }
}

fn own(cmd: &mut Command, lifetime: Lifetime) {
    match lifetime {
        Lifetime::BoundToCaller => bind_to_caller(cmd),
        Lifetime::Detached => detach(cmd),
    }
}

fn start_with(spec: &VmSpec, tools: &HostTools, lifetime: Lifetime) -> Result<Vm, VmmError> {
    let qemu = tools.qemu.path.clone().ok_or(VmmError::QemuMissing)?;
    let sidecar = tools
        .vhost_device_vsock
        .path
        .clone()
        .ok_or(VmmError::VsockMissing)?;
    let qemu_img = tools
        .qemu_img
        .path
        .clone()
        .ok_or(VmmError::QemuImgMissing)?;
    if spec.accel == Accel::Kvm && !KvmAccess::check().usable() {
        return Err(VmmError::KvmUnavailable(
            "cannot open /dev/kvm read-write".into(),
        ));
    }
    let files = VmFiles::new(&spec.dir);
    for p in [&files.vsock, &files.vhost_user, &files.ready] {
        check_socket_path(p)?;
    }

    // Leftovers of a previous boot of this directory.
    for p in [&files.vsock, &files.vhost_user, &files.ready] {
        let _ = std::fs::remove_file(p);
    }
    // Copy-on-write disk: the environment image is never written.
    match spec.disk {
        DiskMode::Create => {
            let _ = std::fs::remove_file(&files.disk);
            create_overlay(&qemu_img, &spec.rootfs, &files.disk)?;
        }
        DiskMode::Existing if !files.disk.is_file() => {
            return Err(VmmError::DiskMissing(files.disk.clone()));
        }
        DiskMode::Existing => {}
    }
    // Checked before anything starts, like the other tools.
    let slirp = if spec.network {
        Some(
            tools
                .slirp4netns
                .path
                .clone()
                .ok_or(VmmError::Slirp4netnsMissing)?,
        )
    } else {
        None
    };
    start_processes(spec, &qemu, &sidecar, slirp, files, lifetime)
}

fn create_overlay(qemu_img: &Path, rootfs: &Path, disk: &Path) -> Result<(), VmmError> {
    let out = Command::new(qemu_img)
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(rootfs)
        .arg(disk)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| VmmError::Spawn {
            what: "qemu-img",
            source,
        })?;
    if !out.status.success() {
        return Err(VmmError::BootFailed {
            reason: format!(
                "qemu-img could not create the disk overlay: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            console: String::new(),
        });
    }
    Ok(())
}

fn start_processes(
    spec: &VmSpec,
    qemu: &Path,
    sidecar: &Path,
    slirp: Option<PathBuf>,
    files: VmFiles,
    lifetime: Lifetime,
) -> Result<Vm, VmmError> {
    // The agent announces readiness by connecting here; listen before boot.
    let ready = std::os::unix::net::UnixListener::bind(&files.ready)
        .map_err(VmmError::io("listening for the guest agent"))?;
    ready
        .set_nonblocking(true)
        .map_err(VmmError::io("listening for the guest agent"))?;

    let mut cmd = Command::new(sidecar);
    cmd.arg("--vm").arg(format!(
        "guest-cid=3,socket={},uds-path={}",
        files.vhost_user.display(),
        files.vsock.display()
    ));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(&files.sidecar_log)
                .map_err(VmmError::io("creating the sidecar log"))?,
        ));
    own(&mut cmd, lifetime);
    let mut sidecar_child = cmd.spawn().map_err(|source| VmmError::Spawn {
        what: "vhost-device-vsock",
        source,
    })?;
    if let Err(e) = wait_for_path(&files.vhost_user, &mut sidecar_child, SIDECAR_READY) {
        kill_and_reap(&mut sidecar_child);
        return Err(e);
    }

    let mut args = base_args(
        spec.accel,
        spec.vcpus,
        spec.mem_mib,
        &spec.kernel,
        &spec.initramfs,
        &kernel_cmdline(spec.network, &spec.kernel_args),
    );
    let disk = format!(
        "id=d0,file={},format=qcow2,if=none,cache={},discard=unmap",
        files.disk.display(),
        // A one-shot disk is thrown away; a workspace disk must survive.
        if lifetime == Lifetime::Detached {
            "writeback"
        } else {
            "unsafe"
        }
    );
    let mem = format!(
        "memory-backend-memfd,id=mem0,size={}M,share=on",
        spec.mem_mib
    );
    let vsock_dev = format!("socket,id=vs0,path={}", files.vhost_user.display());
    let console = format!("file,id=con0,path={}", files.console.display());
    args.extend(
        [
            "-name",
            &format!("pyro-{}", spec.vm_id),
            "-object",
            &mem,
            "-numa",
            "node,memdev=mem0",
            "-chardev",
            &console,
            "-serial",
            "chardev:con0",
            "-drive",
            &disk,
            "-device",
            "virtio-blk-pci,drive=d0",
            "-chardev",
            &vsock_dev,
            "-device",
            "vhost-user-vsock-pci,chardev=vs0",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    if spec.network {
        args.extend(
            [
                "-netdev",
                "user,id=n0",
                "-device",
                "virtio-net-pci,netdev=n0",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
    }
    // Egress: QEMU in a namespace of its own, joined to the world by
    // slirp4netns (see `egress`).
    let exit_pipe = match slirp {
        Some(slirp) => Some((
            slirp,
            crate::egress::Pipe::new().map_err(VmmError::io("making the network pipe"))?,
        )),
        None => None,
    };
    let mut cmd = Command::new(qemu);
    if let Some((_, pipe)) = &exit_pipe {
        crate::egress::isolate(&mut cmd, std::os::fd::AsRawFd::as_raw_fd(&pipe.write));
    }
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(&files.qemu_log)
                .map_err(VmmError::io("creating the QEMU log"))?,
        ));
    own(&mut cmd, lifetime);
    let mut qemu_child = match cmd.spawn() {
        Ok(c) => c,
        Err(source) => {
            kill_and_reap(&mut sidecar_child);
            return Err(VmmError::Spawn {
                what: "qemu-system-x86_64",
                source,
            });
        }
    };
    let net_child = match exit_pipe {
        None => None,
        Some((slirp, crate::egress::Pipe { read, write })) => {
            // QEMU alone holds the write end from here on.
            drop(write);
            match crate::egress::start_slirp(&slirp, qemu_child.id(), read, &files.net_log, |c| {
                own(c, lifetime)
            }) {
                Ok(c) => Some(c),
                Err(e) => {
                    kill_and_reap(&mut qemu_child);
                    kill_and_reap(&mut sidecar_child);
                    return Err(e);
                }
            }
        }
    };
    Vm::new(
        spec.vm_id.clone(),
        files,
        qemu_child,
        Some(sidecar_child),
        net_child,
        ready,
        lifetime,
    )
}

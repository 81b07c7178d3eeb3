//! The QEMU backend: command line and start-up.
//!
//! A guest is q35 with virtio-pci devices, booted straight from the
//! environment's kernel and initramfs. vsock goes through the
//! `vhost-device-vsock` sidecar (vhost-user, needs a shared memfd memory
//! backend), which gives the host a unix socket. The console goes to a file
//! in the VM directory for diagnostics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
    /// Boot the kernel, or resume a template.
    pub boot: BootSource,
}

/// Where a guest starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootSource {
    /// Boot the kernel; memory in a memfd.
    Kernel,
    /// Boot the kernel with memory in `ram` in the guest's directory, which
    /// becomes a template once frozen ([`crate::Vm::freeze`]).
    ForTemplate,
    /// Resume a private copy of this template (the disk is a copy of the
    /// template's overlay; `disk` must be [`DiskMode::Create`]).
    Template(crate::template::TemplateFiles),
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
    // A 32 MiB translation cache instead of the default's share of guest
    // memory: about 20 MiB less per guest, no visible cost.
    let (accel, cpu) = match accel {
        Accel::Kvm => ("kvm", "host"),
        Accel::Tcg => ("tcg,tb-size=32", "max"),
    };
    [
        "-machine",
        "q35",
        "-accel",
        accel,
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
    fn fork(&self, vm: &crate::VmHandle, into: &Path) -> Result<crate::Forked, VmmError> {
        let sidecar = self
            .tools
            .vhost_device_vsock
            .path
            .clone()
            .ok_or(VmmError::VsockMissing)?;
        crate::fork::fork(vm, into, &sidecar)
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
    for p in [&files.vsock, &files.vhost_user, &files.ready, &files.qmp] {
        check_socket_path(p)?;
    }

    // Leftovers of a previous boot of this directory.
    for p in [&files.vsock, &files.vhost_user, &files.ready, &files.qmp] {
        let _ = std::fs::remove_file(p);
    }
    // Copy-on-write disk: the environment image is never written.
    match (&spec.disk, &spec.boot) {
        (DiskMode::Create, BootSource::Template(t)) => {
            // The frozen guest's own overlay (small), so the clone's page
            // cache matches its disk; it is backed by the environment image
            // like any overlay and does not need the template afterwards.
            let _ = std::fs::remove_file(&files.disk);
            std::fs::copy(t.disk(), &files.disk)
                .map_err(VmmError::io("copying the template's disk"))?;
        }
        (DiskMode::Existing, BootSource::Template(_)) => {
            return Err(VmmError::Template(
                "a guest resumed from a template needs a fresh disk".into(),
            ));
        }
        (DiskMode::Create, _) => {
            let _ = std::fs::remove_file(&files.disk);
            create_overlay(&qemu_img, &spec.rootfs, &files.disk)?;
        }
        (DiskMode::Existing, _) if !files.disk.is_file() => {
            return Err(VmmError::DiskMissing(files.disk.clone()));
        }
        (DiskMode::Existing, _) => {}
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

/// Starts a vhost-device-vsock sidecar for the guest in `files` and waits
/// for its vhost-user socket.
pub(crate) fn spawn_sidecar(
    sidecar: &Path,
    files: &VmFiles,
    lifetime: Lifetime,
) -> Result<Child, VmmError> {
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
    let mut child = cmd.spawn().map_err(|source| VmmError::Spawn {
        what: "vhost-device-vsock",
        source,
    })?;
    if let Err(e) = wait_for_path(&files.vhost_user, &mut child, SIDECAR_READY) {
        kill_and_reap(&mut child);
        return Err(e);
    }
    Ok(child)
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
    // A resumed guest's agent is up already.
    let resumed = matches!(spec.boot, BootSource::Template(_));
    let ready = if resumed {
        None
    } else {
        let ready = std::os::unix::net::UnixListener::bind(&files.ready)
            .map_err(VmmError::io("listening for the guest agent"))?;
        ready
            .set_nonblocking(true)
            .map_err(VmmError::io("listening for the guest agent"))?;
        Some(ready)
    };

    let mut sidecar_child = spawn_sidecar(sidecar, &files, lifetime)?;

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
    // Guest RAM is shared (vhost-user needs that): a memfd for a kernel
    // boot, a file for a template, a copy of the template's in a memfd for
    // a resumed guest.
    let ram_copy = match &spec.boot {
        BootSource::Template(t) => {
            Some(crate::template::ram_copy(t, u64::from(spec.mem_mib) << 20)?)
        }
        _ => None,
    };
    let mem = match (&spec.boot, &ram_copy) {
        (BootSource::Template(_), Some(fd)) => format!(
            "memory-backend-file,id=mem0,size={}M,mem-path=/proc/self/fd/{},share=on",
            spec.mem_mib,
            std::os::fd::AsRawFd::as_raw_fd(fd)
        ),
        (BootSource::ForTemplate, _) => format!(
            "memory-backend-file,id=mem0,size={}M,mem-path={},share=on",
            spec.mem_mib,
            crate::template::TemplateFiles::new(&spec.dir)
                .ram()
                .display()
        ),
        _ => format!(
            "memory-backend-memfd,id=mem0,size={}M,share=on",
            spec.mem_mib
        ),
    };
    let vsock_dev = format!(
        "socket,id={},path={}",
        crate::template::VSOCK_CHARDEV,
        files.vhost_user.display()
    );
    let console = format!("file,id=con0,path={}", files.console.display());
    let qmp = format!("unix:{},server=on,wait=off", files.qmp.display());
    let vsock_pci = format!(
        "vhost-user-vsock-pci,chardev={},bus={},id={}",
        crate::template::VSOCK_CHARDEV,
        crate::template::VSOCK_PORT,
        crate::template::VSOCK_DEVICE
    );
    let port = format!(
        "pcie-root-port,id={},slot=1,chassis=1",
        crate::template::VSOCK_PORT
    );
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
            "-qmp",
            &qmp,
            // vsock sits on a hot-pluggable port: templates unplug it.
            "-device",
            &port,
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    if resumed {
        // The vsock backend is connected only when its device is plugged
        // in after the resume: a connection idle across the incoming
        // migration made the sidecar see its owner claimed twice.
        args.extend(["-incoming".to_string(), "defer".to_string()]);
    } else {
        args.extend([
            "-chardev".to_string(),
            vsock_dev,
            "-device".to_string(),
            vsock_pci,
        ]);
    }
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
    crate::process::no_huge_pages(&mut cmd);
    if let Some(fd) = &ram_copy {
        crate::egress::keep_fds(&mut cmd, vec![std::os::fd::AsRawFd::as_raw_fd(fd)]);
    }
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
    // Only QEMU holds the guest's memory from here on.
    drop(ram_copy);
    if let BootSource::Template(t) = &spec.boot {
        if let Err(e) = crate::template::resume(&files.qmp, t, &files.vhost_user) {
            kill_and_reap(&mut qemu_child);
            kill_and_reap(&mut sidecar_child);
            if let Some(mut n) = net_child {
                kill_and_reap(&mut n);
            }
            return Err(e);
        }
    }
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

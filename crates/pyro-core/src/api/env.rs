//! Params and results of doctor and the environment operations.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults;

/// CPU virtualisation a guest uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Accelerator {
    /// Hardware virtualisation.
    Kvm,
    /// Software emulation: slow, still a real isolated guest.
    Tcg,
}

impl Accelerator {
    /// `kvm` or `tcg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Accelerator::Kvm => "kvm",
            Accelerator::Tcg => "tcg",
        }
    }
}

impl From<pyro_vmm::Accel> for Accelerator {
    fn from(a: pyro_vmm::Accel) -> Self {
        match a {
            pyro_vmm::Accel::Kvm => Accelerator::Kvm,
            pyro_vmm::Accel::Tcg => Accelerator::Tcg,
        }
    }
}

/// `doctor` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DoctorParams {
    /// Platform to check; only `linux-x86_64` exists.
    #[serde(default = "defaults::platform")]
    pub platform: String,
    /// Boot the probe guests again instead of using the cached result.
    #[serde(default)]
    pub refresh: bool,
}

impl Default for DoctorParams {
    fn default() -> Self {
        DoctorParams {
            platform: defaults::platform(),
            refresh: false,
        }
    }
}

/// KVM device access plus whether a KVM guest really boots.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct KvmReport {
    /// `/dev/kvm` exists.
    pub exists: bool,
    /// Readable by us.
    pub readable: bool,
    /// Writable by us.
    pub writable: bool,
    /// A KVM guest booted before the deadline (`null` when not probed).
    pub boots: Option<bool>,
    /// Why it did not, when it did not.
    pub detail: Option<String>,
}

/// Transport to the guest agent.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VsockReport {
    /// `/dev/vhost-vsock` is usable.
    pub kernel_vhost_vsock: bool,
    /// The vhost-device-vsock sidecar is installed.
    pub sidecar: bool,
    /// What pyro will use (`vhost-device-vsock`), or `null`.
    pub transport: Option<String>,
}

/// Tool presence and version.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ToolReport {
    /// Found.
    pub present: bool,
    /// Path.
    pub path: Option<PathBuf>,
    /// Version line.
    pub version: Option<String>,
}

/// Firecracker status; reported, not used.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FirecrackerReport {
    /// Presence and version.
    #[serde(flatten)]
    pub tool: ToolReport,
    /// Whether pyro can use it.
    pub usable: bool,
    /// Why not.
    pub reason: String,
}

/// What guests can do here.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Capabilities {
    /// A guest boots (with the chosen accelerator).
    pub vm_boot: bool,
    /// Commands can run in a guest through the agent.
    pub guest_exec: bool,
    /// Guests can get outbound networking (the egress policy).
    pub guest_network: bool,
    /// Why something is false, when it is.
    pub reason: Option<String>,
}

/// Whether creates resume templates instead of booting.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TemplatesReport {
    /// Creates and runs resume a template when one fits.
    pub enabled: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// Where templates are kept.
    pub dir: PathBuf,
    /// Templates built so far.
    pub count: usize,
}

/// Networking facts.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NetworkingReport {
    /// Off unless asked for.
    pub enabled_by_default: bool,
    /// How guests get a network: QEMU user-mode in a namespace of its own,
    /// joined to the host by slirp4netns (no root, no TAP).
    pub mode: String,
    /// QEMU has the user-mode network backend.
    pub user_netdev_available: bool,
    /// The egress policy works here (slirp4netns, user namespaces, tun).
    pub egress_available: bool,
    /// Why egress does not work, when it does not.
    pub egress_reason: Option<String>,
}

/// One environment's install status.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CachedEnv {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Installed.
    pub installed: bool,
}

/// Environment cache state.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CacheReport {
    /// Cache dir.
    pub dir: PathBuf,
    /// Catalog entries and whether they are installed.
    pub environments: Vec<CachedEnv>,
}

/// The guest agent binary.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AgentReport {
    /// Where it is expected.
    pub path: PathBuf,
    /// Whether it is there.
    pub present: bool,
    /// Whether it is statically linked for x86_64 (it must be, to run as
    /// PID 1 in a guest); `null` when absent.
    pub static_binary: Option<bool>,
}

/// Outcome of one boot probe.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProbeReport {
    /// Accelerator probed.
    pub accelerator: Accelerator,
    /// The guest reached the agent before the deadline.
    pub boots: bool,
    /// Milliseconds from QEMU start to the first guest output.
    pub first_output_ms: Option<u64>,
    /// Milliseconds from QEMU start to the probe marker.
    pub boot_ms: Option<u64>,
    /// Why it failed, when it did.
    pub detail: Option<String>,
}

/// The cached host probe and what it is valid for.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HostProbeReport {
    /// `uname -r` of the host.
    pub host_kernel: String,
    /// First line of `qemu-system-x86_64 --version`.
    pub qemu_version: String,
    /// sha256 of the guest kernel probed with.
    pub guest_kernel_sha256: String,
    /// KVM probe; `null` when /dev/kvm is not usable.
    pub kvm: Option<ProbeReport>,
    /// TCG probe; run only when KVM does not boot.
    pub tcg: Option<ProbeReport>,
    /// When it ran (Unix seconds).
    pub probed_at: f64,
}

/// The whole doctor report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DoctorReport {
    /// Host platform.
    pub platform: String,
    /// PASS when guests can boot and run commands here.
    pub runtime_ok: bool,
    /// Problems that make runtime_ok false, each with its fix.
    pub issues: Vec<String>,
    /// Things worth knowing that do not fail the runtime.
    pub warnings: Vec<String>,
    /// KVM.
    pub kvm: KvmReport,
    /// Accelerator guests will use.
    pub accelerator: Accelerator,
    /// Why that one.
    pub accelerator_reason: String,
    /// QEMU.
    pub qemu: ToolReport,
    /// qemu-img.
    pub qemu_img: ToolReport,
    /// vhost-device-vsock.
    pub vhost_device_vsock: ToolReport,
    /// Firecracker.
    pub firecracker: FirecrackerReport,
    /// vsock transport.
    pub vsock: VsockReport,
    /// Guest agent.
    pub agent: AgentReport,
    /// Environment cache.
    pub environment_cache: CacheReport,
    /// Capabilities.
    pub capabilities: Capabilities,
    /// Networking.
    pub networking: NetworkingReport,
    /// Fast create from templates.
    pub templates: TemplatesReport,
    /// State dir.
    pub state_dir: PathBuf,
    /// Probe results, when a probe ran or was cached.
    pub probe: Option<HostProbeReport>,
}

/// Params naming one environment.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentParams {
    /// Catalog name, e.g. `debian:12`.
    pub environment: String,
}

/// `env pull` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvPullParams {
    /// Catalog name, e.g. `debian:12`.
    pub environment: String,
    /// Rebuild even if it is installed.
    #[serde(default)]
    pub force: bool,
}

/// sha256 of each artifact of an install.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ArtifactDigests {
    /// Kernel image.
    pub kernel_sha256: String,
    /// Initramfs as built (guests use one per agent build beside it).
    pub initramfs_sha256: String,
    /// Root image.
    pub rootfs_sha256: String,
}

/// Everything known about one environment (`env inspect`, and each item of
/// `env list`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EnvironmentInfo {
    /// Catalog name.
    pub name: String,
    /// Recipe version.
    pub version: String,
    /// One-line description.
    pub description: String,
    /// Packages users can count on.
    pub default_packages: Vec<String>,
    /// Distribution.
    pub distribution: String,
    /// Distribution version.
    pub distribution_version: String,
    /// Guest platform.
    pub platform: String,
    /// Catalog version.
    pub catalog_version: String,
    /// Whether a complete install exists.
    pub installed: bool,
    /// The pyro cache dir.
    pub cache_dir: PathBuf,
    /// Where the install lives (or would).
    pub install_dir: PathBuf,
    /// Manifest path, when installed.
    pub install_manifest: Option<PathBuf>,
    /// Kernel path, when installed.
    pub kernel_image: Option<PathBuf>,
    /// Initramfs path, when installed.
    pub initramfs_image: Option<PathBuf>,
    /// Root image path, when installed.
    pub rootfs_image: Option<PathBuf>,
    /// How it was built (`debian-packages`), when installed.
    pub source: Option<String>,
    /// Mirror it was built from, when installed.
    pub mirror: Option<String>,
    /// Guest kernel release, when installed.
    pub kernel_release: Option<String>,
    /// When it was built, when installed.
    pub built_at: Option<f64>,
    /// Artifact digests, when installed.
    pub artifacts: Option<ArtifactDigests>,
}

/// `env list` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EnvironmentList {
    /// Catalog version.
    pub catalog_version: String,
    /// Every environment, sorted by name.
    pub environments: Vec<EnvironmentInfo>,
}

/// `env prune` result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PruneResult {
    /// Removed entries of the environments directory, sorted.
    pub deleted_environment_dirs: Vec<String>,
    /// How many directories.
    pub count: usize,
    /// Removed files inside kept installs (`<install dir>/<file>`): guest
    /// initramfs images of agents not used for a while, and leftovers of
    /// killed writes.
    pub deleted_files: Vec<String>,
}

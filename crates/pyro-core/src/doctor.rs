//! `doctor`: what this host can do, found out for real.
//!
//! Works when nothing else does: every check catches its own failure and
//! turns it into an issue, so the report always comes out.

use std::path::PathBuf;

use pyro_env::CATALOG;
use pyro_vmm::probe::ProbeResult;
use pyro_vmm::tools::{kernel_vhost_vsock, KvmAccess, Tool};
use pyro_vmm::Accel;
use serde::Serialize;

use crate::accel::{choice_from_probe, HostProbe};
use crate::envs::PLATFORM;
use crate::Manager;

/// KVM device access plus whether a KVM guest really boots.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct VsockReport {
    /// `/dev/vhost-vsock` is usable.
    pub kernel_vhost_vsock: bool,
    /// The vhost-device-vsock sidecar is installed.
    pub sidecar: bool,
    /// What pyro will use (`vhost-device-vsock`), or `null`.
    pub transport: Option<String>,
}

/// Tool presence and version.
#[derive(Debug, Clone, Serialize)]
pub struct ToolReport {
    /// Found.
    pub present: bool,
    /// Path.
    pub path: Option<PathBuf>,
    /// Version line.
    pub version: Option<String>,
}

impl From<&Tool> for ToolReport {
    fn from(t: &Tool) -> Self {
        ToolReport {
            present: t.present(),
            path: t.path.clone(),
            version: t.version.clone(),
        }
    }
}

/// Firecracker status; reported, not used.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct Capabilities {
    /// A guest boots (with the chosen accelerator).
    pub vm_boot: bool,
    /// Commands can run in a guest through the agent.
    pub guest_exec: bool,
    /// Guests can get outbound networking (QEMU user-mode).
    pub guest_network: bool,
    /// Why something is false, when it is.
    pub reason: Option<String>,
}

/// Networking facts.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkingReport {
    /// Off unless `--network` is given.
    pub enabled_by_default: bool,
    /// QEMU user-mode networking (no root, no TAP).
    pub mode: String,
    /// QEMU has the user-mode network backend.
    pub user_netdev_available: bool,
}

/// One environment's install status.
#[derive(Debug, Clone, Serialize)]
pub struct CachedEnv {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Installed.
    pub installed: bool,
}

/// Environment cache state.
#[derive(Debug, Clone, Serialize)]
pub struct CacheReport {
    /// Cache dir.
    pub dir: PathBuf,
    /// Catalog entries and whether they are installed.
    pub environments: Vec<CachedEnv>,
}

/// The guest agent binary.
#[derive(Debug, Clone, Serialize)]
pub struct AgentReport {
    /// Where it is expected.
    pub path: PathBuf,
    /// Whether it is there.
    pub present: bool,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
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
    pub accelerator: Accel,
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
    /// State dir.
    pub state_dir: PathBuf,
    /// Raw probe results, when a probe ran or was cached.
    pub probe: Option<HostProbe>,
}

fn user_netdev(qemu: &Tool) -> bool {
    let Some(path) = &qemu.path else { return false };
    std::process::Command::new(path)
        .args(["-netdev", "help"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == "user")
        })
        .unwrap_or(false)
}

impl Manager {
    /// Diagnoses the host. Boots probe guests once per host (cached);
    /// `refresh` forces new probes.
    pub fn doctor(&self, refresh: bool) -> DoctorReport {
        let tools = self.tools();
        let mut issues = Vec::new();
        let mut warnings = Vec::new();
        let access = KvmAccess::check();
        if !tools.qemu.present() {
            issues.push("qemu-system-x86_64 is not installed; run `make setup` or `apt-get install qemu-system-x86`".into());
        }
        if !tools.qemu_img.present() {
            issues.push(
                "qemu-img is not installed; run `make setup` or `apt-get install qemu-utils`"
                    .into(),
            );
        }
        let sidecar = tools.vhost_device_vsock.present();
        if !sidecar {
            issues.push("vhost-device-vsock is not installed; run `make setup` or `cargo install vhost-device-vsock`".into());
        }
        let agent_present = self.config().agent_path.is_file();
        if !agent_present {
            issues.push(format!(
                "guest agent not found at {}; run `make build` or set PYRO_AGENT_PATH",
                self.config().agent_path.display()
            ));
        }
        if !access.exists {
            warnings.push("/dev/kvm is not available on this host; guests run under TCG software emulation (slow)".into());
        } else if !access.usable() {
            warnings.push(
                "/dev/kvm is not readable and writable by this user; add the user to the kvm group"
                    .into(),
            );
        }

        // Probe with any installed environment's kernel.
        let env = CATALOG
            .iter()
            .find_map(|e| self.env_cache().installed(e.name).ok().flatten());
        let mut probe = None;
        match (&env, tools.qemu.present()) {
            (None, _) => warnings.push(
                "no environment is installed, so no guest was booted to probe; run `pyro env pull debian:12`".into(),
            ),
            (Some(_), false) => {}
            (Some(env), true) => match self.host_probe(env, refresh) {
                Ok(p) => probe = Some(p),
                Err(e) => issues.push(format!("boot probe failed: {e}")),
            },
        }
        let kvm_probe: Option<&ProbeResult> = probe.as_ref().and_then(|p| p.kvm.as_ref());
        let booted = probe.as_ref().map(|p| {
            p.kvm.as_ref().is_some_and(|k| k.boots) || p.tcg.as_ref().is_some_and(|t| t.boots)
        });
        if booted == Some(false) {
            let detail = probe
                .as_ref()
                .and_then(|p| p.tcg.as_ref())
                .and_then(|t| t.detail.clone())
                .unwrap_or_else(|| "no detail".into());
            issues.push(format!("no guest boots on this host, neither under KVM nor TCG ({detail}); see the console of `pyro doctor --refresh`"));
        }
        let (accelerator, accelerator_reason) = match (self.config().accel, &probe) {
            (Some(a), _) => (a, format!("forced by PYRO_ACCEL={}", a.as_str())),
            (None, Some(p)) => {
                let c = choice_from_probe(p);
                (c.accelerator, c.reason)
            }
            (None, None) => (
                Accel::Tcg,
                "not probed yet; TCG until a KVM guest is seen to boot".into(),
            ),
        };
        let vm_boot = booted.unwrap_or(false);
        let guest_exec = vm_boot && sidecar && agent_present;
        let user_net = user_netdev(&tools.qemu);
        let reason = if !vm_boot {
            Some(if env.is_none() {
                "not probed: no environment installed".to_string()
            } else {
                "no guest booted".to_string()
            })
        } else if !guest_exec {
            Some("vsock sidecar or guest agent missing".into())
        } else if !user_net {
            Some("QEMU lacks user-mode networking".into())
        } else {
            None
        };
        DoctorReport {
            platform: PLATFORM.into(),
            runtime_ok: issues.is_empty(),
            issues,
            warnings,
            kvm: KvmReport {
                exists: access.exists,
                readable: access.readable,
                writable: access.writable,
                boots: kvm_probe.map(|k| k.boots).or(if probe.is_some() {
                    Some(false)
                } else {
                    None
                }),
                detail: kvm_probe.and_then(|k| k.detail.clone()).or_else(|| {
                    (probe.is_some() && kvm_probe.is_none())
                        .then(|| "/dev/kvm is not usable, nothing to probe".into())
                }),
            },
            accelerator,
            accelerator_reason,
            qemu: (&tools.qemu).into(),
            qemu_img: (&tools.qemu_img).into(),
            vhost_device_vsock: (&tools.vhost_device_vsock).into(),
            firecracker: FirecrackerReport {
                tool: (&tools.firecracker).into(),
                usable: false,
                reason: "the Firecracker backend is not built yet; pyro uses QEMU".into(),
            },
            vsock: VsockReport {
                kernel_vhost_vsock: kernel_vhost_vsock(),
                sidecar,
                transport: sidecar.then(|| "vhost-device-vsock".to_string()),
            },
            agent: AgentReport {
                path: self.config().agent_path.clone(),
                present: agent_present,
            },
            environment_cache: CacheReport {
                dir: self.config().cache_dir.clone(),
                environments: CATALOG
                    .iter()
                    .map(|e| CachedEnv {
                        name: e.name.into(),
                        version: e.version.into(),
                        installed: self.env_cache().installed(e.name).ok().flatten().is_some(),
                    })
                    .collect(),
            },
            capabilities: Capabilities {
                vm_boot,
                guest_exec,
                guest_network: guest_exec && user_net,
                reason,
            },
            networking: NetworkingReport {
                enabled_by_default: false,
                mode: "qemu-user".into(),
                user_netdev_available: user_net,
            },
            state_dir: self.config().state_dir.clone(),
            probe,
        }
    }
}

//! `doctor`: what this host can do, found out for real.
//!
//! Works when nothing else does: every check catches its own failure and
//! turns it into an issue, so the report always comes out.

use pyro_env::CATALOG;
use pyro_vmm::probe::ProbeResult;
use pyro_vmm::tools::{kernel_vhost_vsock, KvmAccess, Tool};
use pyro_vmm::Accel;

use crate::accel::choice_from_probe;
use crate::api::{
    AgentReport, CacheReport, CachedEnv, Capabilities, DoctorParams, DoctorReport,
    FirecrackerReport, KvmReport, NetworkingReport, ToolReport, VsockReport,
};
use crate::envs::PLATFORM;
use crate::progress::Progress;
use crate::{Error, Manager};

impl From<&Tool> for ToolReport {
    fn from(t: &Tool) -> Self {
        ToolReport {
            present: t.present(),
            path: t.path.clone(),
            version: t.version.clone(),
        }
    }
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
    /// `refresh` forces new probes. Never fails for a host problem: those
    /// are issues in the report.
    pub fn doctor(
        &self,
        p: DoctorParams,
        _progress: &mut dyn Progress,
    ) -> Result<DoctorReport, Error> {
        if p.platform != PLATFORM {
            return Err(Error::InvalidArgument(format!(
                "unsupported platform '{}'; expected {PLATFORM}",
                p.platform
            )));
        }
        let refresh = p.refresh;
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
        let agent_path = &self.config().agent_path;
        let agent_present = agent_path.is_file();
        let agent_check = pyro_env::check_agent(agent_path);
        if let Err(e) = &agent_check {
            issues.push(format!(
                "{e}; build it with `make build` or set PYRO_AGENT_PATH to a statically linked pyro-agent"
            ));
        }
        let agent_ok = agent_check.is_ok();
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
        let guest_exec = vm_boot && sidecar && agent_ok;
        let user_net = user_netdev(&tools.qemu);
        let egress = pyro_vmm::egress::check(tools);
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
        } else if let Err(why) = &egress {
            Some(format!("no egress networking: {why}"))
        } else {
            None
        };
        Ok(DoctorReport {
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
            accelerator: accelerator.into(),
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
                path: agent_path.clone(),
                present: agent_present,
                static_binary: agent_present.then_some(agent_ok),
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
                guest_network: guest_exec && user_net && egress.is_ok(),
                reason,
            },
            networking: NetworkingReport {
                enabled_by_default: false,
                mode: "qemu-user+slirp4netns".into(),
                user_netdev_available: user_net,
                egress_available: egress.is_ok(),
                egress_reason: egress.err(),
            },
            templates: self.templates_report(),
            state_dir: self.config().state_dir.clone(),
            probe: probe.as_ref().map(|p| p.report()),
        })
    }
}

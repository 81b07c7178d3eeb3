//! Choosing the accelerator from a real boot probe.
//!
//! The probe result is cached in `<cache>/host-probe.json`, keyed by the
//! host kernel release, the QEMU version and the guest kernel's sha256:
//! any of them changing can change the answer, nothing else can.

use std::path::PathBuf;
use std::time::Duration;

use pyro_env::{FileLock, InstalledEnv};
use pyro_vmm::probe::{boot_probe, ProbeResult};
use pyro_vmm::tools::KvmAccess;
use pyro_vmm::Accel;
use serde::{Deserialize, Serialize};

use crate::api::{HostProbeReport, ProbeReport};
use crate::{Error, Manager};

/// A KVM guest reaches the agent in well under a second; anything slower
/// is the nested-virtualisation crawl that ends in an internal error.
const KVM_PROBE_DEADLINE: Duration = Duration::from_secs(10);
/// TCG boots in a few seconds here; allow for a loaded CI machine.
const TCG_PROBE_DEADLINE: Duration = Duration::from_secs(90);
/// Probe guests are as small as a guest can be.
const PROBE_MEM_MIB: u32 = 256;

/// What the cache key covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeKey {
    /// `uname -r` of the host.
    pub host_kernel: String,
    /// First line of `qemu-system-x86_64 --version`.
    pub qemu_version: String,
    /// sha256 of the guest kernel probed with.
    pub guest_kernel_sha256: String,
}

/// Cached probe results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostProbe {
    /// What the results are valid for.
    pub key: ProbeKey,
    /// KVM probe; `None` when /dev/kvm is not usable (nothing to probe).
    pub kvm: Option<ProbeResult>,
    /// TCG probe; run only when KVM does not boot.
    pub tcg: Option<ProbeResult>,
    /// When it ran.
    pub probed_at: f64,
}

impl HostProbe {
    /// As shown to users.
    pub fn report(&self) -> HostProbeReport {
        let one = |r: &ProbeResult| ProbeReport {
            accelerator: r.accel.into(),
            boots: r.boots,
            first_output_ms: r.first_output_ms,
            boot_ms: r.boot_ms,
            detail: r.detail.clone(),
        };
        HostProbeReport {
            host_kernel: self.key.host_kernel.clone(),
            qemu_version: self.key.qemu_version.clone(),
            guest_kernel_sha256: self.key.guest_kernel_sha256.clone(),
            kvm: self.kvm.as_ref().map(one),
            tcg: self.tcg.as_ref().map(one),
            probed_at: self.probed_at,
        }
    }
}

/// The accelerator guests will use, and why.
#[derive(Debug, Clone)]
pub struct AccelChoice {
    /// kvm or tcg.
    pub accelerator: Accel,
    /// One line explaining the choice.
    pub reason: String,
}

fn host_kernel() -> String {
    // SAFETY: utsname is plain data filled by uname.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl Manager {
    fn probe_path(&self) -> PathBuf {
        self.config().cache_dir.join("host-probe.json")
    }

    fn probe_key(&self, env: &InstalledEnv) -> ProbeKey {
        ProbeKey {
            host_kernel: host_kernel(),
            qemu_version: self.tools().qemu.version.clone().unwrap_or_default(),
            guest_kernel_sha256: env.manifest.kernel.sha256.clone(),
        }
    }

    /// The cached probe for `env`'s kernel, if still valid.
    pub fn cached_probe(&self, env: &InstalledEnv) -> Option<HostProbe> {
        let text = std::fs::read_to_string(self.probe_path()).ok()?;
        let probe: HostProbe = serde_json::from_str(&text).ok()?;
        (probe.key == self.probe_key(env)).then_some(probe)
    }

    /// Returns the cached probe, or boots probes now (once per host).
    pub fn host_probe(&self, env: &InstalledEnv, refresh: bool) -> Result<HostProbe, Error> {
        if !refresh {
            if let Some(p) = self.cached_probe(env) {
                return Ok(p);
            }
        }
        std::fs::create_dir_all(&self.config().cache_dir)
            .map_err(Error::io("creating the cache dir"))?;
        // One prober at a time; the others then read its result.
        let _lock = FileLock::acquire(&self.config().cache_dir.join(".lock-host-probe"))
            .map_err(Error::io("locking the probe cache"))?;
        if !refresh {
            if let Some(p) = self.cached_probe(env) {
                return Ok(p);
            }
        }
        let tools = self.tools();
        let kvm = if KvmAccess::check().usable() {
            Some(boot_probe(
                tools,
                Accel::Kvm,
                &env.kernel(),
                &env.initramfs(),
                PROBE_MEM_MIB,
                KVM_PROBE_DEADLINE,
            )?)
        } else {
            None
        };
        let tcg = if kvm.as_ref().is_some_and(|k| k.boots) {
            None
        } else {
            Some(boot_probe(
                tools,
                Accel::Tcg,
                &env.kernel(),
                &env.initramfs(),
                PROBE_MEM_MIB,
                TCG_PROBE_DEADLINE,
            )?)
        };
        let probe = HostProbe {
            key: self.probe_key(env),
            kvm,
            tcg,
            probed_at: crate::now(),
        };
        let tmp = self
            .probe_path()
            .with_extension(format!("json.{}.tmp", std::process::id()));
        std::fs::write(
            &tmp,
            serde_json::to_string_pretty(&probe).unwrap_or_default(),
        )
        .and_then(|_| std::fs::rename(&tmp, self.probe_path()))
        .map_err(Error::io("saving the probe result"))?;
        Ok(probe)
    }

    /// Picks KVM when it really boots, else TCG; `PYRO_ACCEL` overrides.
    pub fn choose_accel(&self, env: &InstalledEnv) -> Result<AccelChoice, Error> {
        if let Some(accel) = self.config().accel {
            return Ok(AccelChoice {
                accelerator: accel,
                reason: format!("forced by PYRO_ACCEL={}", accel.as_str()),
            });
        }
        let probe = self.host_probe(env, false)?;
        Ok(choice_from_probe(&probe))
    }
}

/// The decision a probe implies.
pub fn choice_from_probe(probe: &HostProbe) -> AccelChoice {
    match &probe.kvm {
        Some(k) if k.boots => AccelChoice { accelerator: Accel::Kvm, reason: "a KVM guest booted".into() },
        Some(k) => AccelChoice {
            accelerator: Accel::Tcg,
            reason: format!(
                "/dev/kvm is present but a KVM guest did not boot ({}); using TCG software emulation (slow)",
                k.detail.as_deref().unwrap_or("no detail")
            ),
        },
        None => AccelChoice {
            accelerator: Accel::Tcg,
            reason: "/dev/kvm is not usable; using TCG software emulation (slow)".into(),
        },
    }
}

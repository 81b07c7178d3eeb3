//! Templates: per environment and guest shape, a booted guest frozen to
//! files in the cache, so creates and runs resume a copy in well under a
//! second instead of booting. Built on first use under a lock (concurrent
//! creates wait for one build), never holding secrets or seed content (they
//! arrive after the resume), and keyed by everything that shapes a booted
//! guest: environment, kernel, initramfs (which holds the agent), kernel
//! arguments, vCPUs, memory, network, accelerator and QEMU's version.
//!
//! Layout: `<cache>/templates/<key>/{ram,state,disk.qcow2,template.json}`;
//! `template.json` is written last, so a directory without it is a build
//! that never finished.

use std::path::{Path, PathBuf};

use pyro_env::FileLock;
use pyro_vmm::{BootSource, DiskMode, Lifetime, TemplateFiles, VmSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::{BootInfo, BootMode};
use crate::{Error, Manager};

/// Marks a complete template.
const MANIFEST: &str = "template.json";

/// What a template was built from (kept in `template.json`).
#[derive(Debug, Serialize, Deserialize)]
struct TemplateManifest {
    key: String,
    environment: String,
    vcpus: u32,
    mem_mib: u32,
    network: bool,
    built_at: f64,
}

/// The cache key of a guest shape.
fn key(spec: &VmSpec, qemu_version: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        spec.kernel.to_string_lossy().as_ref(),
        spec.initramfs.to_string_lossy().as_ref(),
        spec.rootfs.to_string_lossy().as_ref(),
        &pyro_vmm::qemu::kernel_cmdline(spec.network, &spec.kernel_args),
        &spec.vcpus.to_string(),
        &spec.mem_mib.to_string(),
        spec.accel.as_str(),
        qemu_version,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    // The initramfs is named by its content (agent included) and touched
    // on every use; kernel and image are named by environment version, and
    // their size and mtime tell a rebuild of the same version.
    for p in [&spec.kernel, &spec.rootfs] {
        let (len, stamp) = std::fs::metadata(p)
            .map(|m| {
                let t = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                (m.len(), t)
            })
            .unwrap_or((0, 0));
        h.update(len.to_le_bytes());
        h.update(stamp.to_le_bytes());
    }
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether templates are wanted (`PYRO_TEMPLATES=off` turns them off).
pub(crate) fn enabled() -> Result<(), String> {
    match std::env::var("PYRO_TEMPLATES")
        .ok()
        .as_deref()
        .map(str::trim)
    {
        Some("off" | "0" | "false" | "no") => Err("templates are off (PYRO_TEMPLATES=off)".into()),
        _ => Ok(()),
    }
}

impl Manager {
    fn templates_dir(&self) -> PathBuf {
        self.config().cache_dir.join("templates")
    }

    /// The template for a guest of this shape, built now if missing. An
    /// error is the reason to boot cold instead.
    pub(crate) fn template_for(&self, spec: &VmSpec) -> Result<TemplateFiles, String> {
        enabled()?;
        let qemu_version = self.tools().qemu.version.clone().unwrap_or_default();
        let key = key(spec, &qemu_version);
        let root = self.templates_dir();
        std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        let dir = root.join(&key);
        if dir.join(MANIFEST).is_file() {
            return Ok(TemplateFiles::new(&dir));
        }
        let _lock = FileLock::acquire(&root.join(format!(".lock-{key}")))
            .map_err(|e| format!("locking the template: {e}"))?;
        // Someone else may have built it while we waited.
        if dir.join(MANIFEST).is_file() {
            return Ok(TemplateFiles::new(&dir));
        }
        // Builds of this key that were killed (we hold its lock now).
        if let Ok(read) = std::fs::read_dir(&root) {
            let (building, old) = (format!("{key}.building-"), format!("{key}.old-"));
            for e in read.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&building) || name.starts_with(&old) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        self.build_template(spec, &key, &dir)
            .map_err(|e| format!("building the template failed: {e}"))
    }

    fn build_template(&self, spec: &VmSpec, key: &str, dir: &Path) -> Result<TemplateFiles, Error> {
        let building = dir.with_extension(format!("building-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&building);
        // A dropped template may still be read by a clone starting now: it
        // is moved aside (open files stay readable), never cut from under.
        if dir.exists() {
            let old = dir.with_extension(format!("old-{}", std::process::id()));
            if std::fs::rename(dir, &old).is_ok() {
                let _ = std::fs::remove_dir_all(&old);
            }
        }
        std::fs::create_dir_all(&building).map_err(Error::io("making the template directory"))?;
        let built = (|| {
            let mut t_spec = VmSpec {
                vm_id: format!("template-{key}"),
                dir: building.clone(),
                disk: DiskMode::Create,
                boot: BootSource::ForTemplate,
                ..spec.clone()
            };
            // Freed pages are zeroed, so dropped caches cost clones nothing.
            t_spec.kernel_args.push("init_on_free=1".into());
            let mut vm = self.backend().start(&t_spec, Lifetime::BoundToCaller)?;
            vm.wait_ready(Manager::boot_deadline(spec.accel))?;
            // Fewer pages to copy into every clone: written-back caches are
            // dropped (freed pages are zeroed: init_on_free).
            let settle = pyro_proto::ExecRequest {
                argv: vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    "sync; echo 3 > /proc/sys/vm/drop_caches".into(),
                ],
                env: Vec::new(),
                cwd: None,
                timeout_ms: Some(30_000),
                direct_output: false,
                output_token: None,
            };
            let _ = vm.exec(settle, &mut Discard);
            let t = vm.freeze()?;
            let manifest = TemplateManifest {
                key: key.to_string(),
                environment: spec.rootfs.to_string_lossy().into_owned(),
                vcpus: spec.vcpus,
                mem_mib: spec.mem_mib,
                network: spec.network,
                built_at: crate::now(),
            };
            std::fs::write(
                t.dir.join(MANIFEST),
                serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
            )
            .map_err(Error::io("writing the template manifest"))?;
            std::fs::rename(&building, dir).map_err(Error::io("placing the template"))?;
            Ok(TemplateFiles::new(dir))
        })();
        if built.is_err() {
            let _ = std::fs::remove_dir_all(&building);
        }
        built
    }

    /// Doctor's view of templates: wanted, possible, and how many exist.
    pub(crate) fn templates_report(&self) -> crate::api::TemplatesReport {
        let dir = self.templates_dir();
        let count = std::fs::read_dir(&dir)
            .map(|r| {
                r.filter_map(Result::ok)
                    .filter(|e| e.path().join(MANIFEST).is_file())
                    .count()
            })
            .unwrap_or(0);
        let reason = enabled().err().or_else(|| {
            self.tools()
                .qemu
                .version
                .is_none()
                .then(|| "QEMU is missing".to_string())
        });
        crate::api::TemplatesReport {
            enabled: reason.is_none(),
            reason,
            dir,
            count,
        }
    }

    /// Forgets a template that failed to resume (the next create builds it
    /// again); clones already made do not need it.
    pub(crate) fn discard_template(&self, t: &TemplateFiles) {
        let _ = std::fs::remove_file(t.dir.join(MANIFEST));
    }
}

/// What to tell the user about a boot that could have been fast and was
/// not (templates off or a stopped workspace's own disk are not news).
pub(crate) fn cold_notice(b: &BootInfo) -> Option<String> {
    match (&b.mode, &b.reason) {
        (BootMode::Cold, Some(r)) if r.starts_with("building") || r.starts_with("resuming") => {
            Some(format!("booted cold: {r}"))
        }
        _ => None,
    }
}

/// A boot's mode for results.
pub(crate) fn boot_info(from_template: bool, reason: Option<String>) -> BootInfo {
    BootInfo {
        mode: if from_template {
            BootMode::Template
        } else {
            BootMode::Cold
        },
        reason,
    }
}

/// Output nobody reads.
struct Discard;

impl pyro_vmm::OutputSink for Discard {
    fn stdout(&mut self, _: &[u8]) {}
    fn stderr(&mut self, _: &[u8]) {}
}

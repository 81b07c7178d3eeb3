//! `pull`: building an environment from Debian packages.
//!
//! Steps, each reported as a [`PullPhase`]:
//! 1. `bootstrap` — mmdebstrap a minbase tree with the environment's
//!    packages plus the cloud kernel, so kernel and modules match;
//! 2. `kernel` — copy the kernel and the virtio/vsock modules out of it;
//! 3. `rootfs` — write the tree into an ext4 image with `mke2fs -d`;
//! 4. `initramfs` — the agent as `/init` plus the modules;
//! 5. `manifest` — sha256 of every artifact, then the rename into place.
//!
//! All work happens in `.partial-<env>` under an flock; only the final
//! rename makes the environment visible.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::cache::{self, EnvCache, InstalledEnv, Manifest};
use crate::catalog::{self, CatalogEntry, SUITE, SYSTEM_PACKAGES};
use crate::cpio::CpioWriter;
use crate::digest::sha256_file;
use crate::{EnvError, FileLock};

/// Modules the agent loads, in dependency order. Missing ones are assumed
/// built into the kernel.
pub const GUEST_MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "virtio_mmio",
    "virtio_blk",
    "vsock",
    "vmw_vsock_virtio_transport_common",
    "vmw_vsock_virtio_transport",
    "failover",
    "net_failover",
    "virtio_net",
];

/// Free space left in the root image for the user's work.
const ROOTFS_HEADROOM_MIB: u64 = 1024;

/// A step of a pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPhase {
    /// Looking at what is installed.
    Resolve,
    /// Running mmdebstrap.
    Bootstrap,
    /// Extracting kernel and modules.
    Kernel,
    /// Writing the ext4 image.
    Rootfs,
    /// Writing the initramfs.
    Initramfs,
    /// Hashing and installing.
    Manifest,
    /// Installed.
    Ready,
}

impl PullPhase {
    /// Name printed in `[pull] phase=...`.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPhase::Resolve => "resolve",
            PullPhase::Bootstrap => "bootstrap",
            PullPhase::Kernel => "kernel",
            PullPhase::Rootfs => "rootfs",
            PullPhase::Initramfs => "initramfs",
            PullPhase::Manifest => "manifest",
            PullPhase::Ready => "ready",
        }
    }
}

/// Receives progress from a pull. Libraries never print; callers do.
pub trait PullReporter {
    /// A new phase started.
    fn phase(&mut self, phase: PullPhase);
    /// A line of progress within the current phase.
    fn progress(&mut self, line: &str);
}

/// Inputs of a pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Rebuild even when installed.
    pub force: bool,
    /// mmdebstrap MIRROR argument (URI, sources line or file); `None` lets
    /// mmdebstrap use its default.
    pub mirror: Option<String>,
    /// The static guest agent binary to embed.
    pub agent: PathBuf,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn which(tool: &'static str, package: &'static str) -> Result<PathBuf, EnvError> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file());
    found.ok_or(EnvError::MissingTool { tool, package })
}

/// Runs a tool, forwarding each output line to the reporter; keeps the
/// last lines for the error.
fn run_tool(
    tool: &'static str,
    mut cmd: Command,
    reporter: &mut dyn PullReporter,
) -> Result<(), EnvError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(EnvError::io(format!("starting {tool}")))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let pumps: Vec<_> = [
        stdout.map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        stderr.map(|s| Box::new(s) as _),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        })
    })
    .collect();
    drop(tx);
    let mut tail: Vec<String> = Vec::new();
    for line in rx {
        reporter.progress(&line);
        tail.push(line);
        if tail.len() > 8 {
            tail.remove(0);
        }
    }
    for p in pumps {
        let _ = p.join();
    }
    let status = child
        .wait()
        .map_err(EnvError::io(format!("waiting for {tool}")))?;
    if !status.success() {
        return Err(EnvError::ToolFailed {
            tool,
            status: status.to_string(),
            detail: tail.join(" | "),
        });
    }
    Ok(())
}

impl EnvCache {
    /// Installs `name` (no-op when installed and not forced).
    pub fn pull(
        &self,
        name: &str,
        opts: &PullOptions,
        reporter: &mut dyn PullReporter,
    ) -> Result<InstalledEnv, EnvError> {
        let entry = catalog::find(name)?;
        reporter.phase(PullPhase::Resolve);
        if !opts.agent.is_file() {
            return Err(EnvError::AgentMissing(opts.agent.clone()));
        }
        let envs = self.environments_dir();
        std::fs::create_dir_all(&envs)
            .map_err(EnvError::io(format!("creating {}", envs.display())))?;
        let _lock = FileLock::acquire(&self.lock_path(entry))
            .map_err(EnvError::io("locking the environment"))?;
        if !opts.force {
            if let Some(installed) = self.installed_entry(entry)? {
                let installed = self.refresh_agent(installed, &opts.agent)?;
                reporter.phase(PullPhase::Ready);
                return Ok(installed);
            }
        }
        let partial = self.partial_dir(entry);
        if partial.exists() {
            // Left by a killed pull; we hold the lock, so nobody owns it.
            std::fs::remove_dir_all(&partial)
                .map_err(EnvError::io("removing a stale partial build"))?;
        }
        std::fs::create_dir_all(&partial).map_err(EnvError::io("creating the build directory"))?;
        let result = build_into(entry, &partial, opts, reporter);
        let manifest = match result {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&partial);
                return Err(e);
            }
        };
        let final_dir = self.install_dir(entry);
        if final_dir.exists() {
            let old = envs.join(format!(".partial-old-{}", entry.dir_name()));
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(&final_dir, &old)
                .map_err(EnvError::io("moving the old install aside"))?;
            let _ = std::fs::remove_dir_all(&old);
        }
        std::fs::rename(&partial, &final_dir)
            .map_err(EnvError::io("installing the environment"))?;
        reporter.phase(PullPhase::Ready);
        Ok(InstalledEnv {
            entry,
            dir: final_dir,
            manifest,
        })
    }

    /// Rebuilds the initramfs of an install when the agent binary changed,
    /// so upgrading pyro never needs a full re-pull.
    pub fn refresh_agent(
        &self,
        installed: InstalledEnv,
        agent: &Path,
    ) -> Result<InstalledEnv, EnvError> {
        let sha = sha256_file(agent).map_err(|_| EnvError::AgentMissing(agent.to_path_buf()))?;
        if sha == installed.manifest.agent_sha256 {
            return Ok(installed);
        }
        let tmp = installed.dir.join(format!("{}.tmp", cache::INITRAMFS_FILE));
        write_initramfs(&installed.dir.join(cache::MODULES_DIR), agent, &tmp)?;
        std::fs::rename(&tmp, installed.initramfs())
            .map_err(EnvError::io("replacing the initramfs"))?;
        let mut manifest = installed.manifest.clone();
        manifest.initramfs = cache::artifact(&installed.dir, cache::INITRAMFS_FILE)?;
        manifest.agent_sha256 = sha;
        write_manifest(&installed.dir, &manifest)?;
        Ok(InstalledEnv {
            manifest,
            ..installed
        })
    }
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), EnvError> {
    let tmp = dir.join(format!("{}.tmp", cache::MANIFEST_FILE));
    let text = serde_json::to_string_pretty(manifest).unwrap_or_default();
    std::fs::write(&tmp, text).map_err(EnvError::io("writing the manifest"))?;
    std::fs::rename(&tmp, dir.join(cache::MANIFEST_FILE))
        .map_err(EnvError::io("writing the manifest"))
}

fn build_into(
    entry: &CatalogEntry,
    dir: &Path,
    opts: &PullOptions,
    reporter: &mut dyn PullReporter,
) -> Result<Manifest, EnvError> {
    let mmdebstrap = which("mmdebstrap", "mmdebstrap")?;
    let mke2fs = which("mke2fs", "e2fsprogs")?;
    let tree = dir.join("tree");
    let packages: Vec<String> = entry
        .default_packages
        .iter()
        .chain(SYSTEM_PACKAGES)
        .map(|p| p.to_string())
        .collect();

    reporter.phase(PullPhase::Bootstrap);
    let started = Instant::now();
    let mut cmd = Command::new(mmdebstrap);
    cmd.arg("--variant=minbase")
        .arg(format!("--include={}", packages.join(",")))
        // The kernel's own initramfs is never used; skip generating it.
        .arg("--dpkgopt=path-exclude=/usr/share/doc/*")
        .arg("--dpkgopt=path-exclude=/usr/share/man/*")
        .arg("--dpkgopt=path-exclude=/usr/share/locale/*")
        .arg(SUITE)
        .arg(&tree);
    if let Some(mirror) = &opts.mirror {
        cmd.arg(mirror);
    }
    run_tool("mmdebstrap", cmd, reporter)?;
    reporter.progress(&format!(
        "bootstrap finished in {:.1}s",
        started.elapsed().as_secs_f64()
    ));

    reporter.phase(PullPhase::Kernel);
    let (kernel_release, kernel_path) = find_kernel(&tree)?;
    std::fs::copy(&kernel_path, dir.join(cache::KERNEL_FILE))
        .map_err(EnvError::io("copying the kernel"))?;
    let modules_dir = dir.join(cache::MODULES_DIR);
    copy_modules(
        &tree.join("usr/lib/modules").join(&kernel_release),
        &modules_dir,
    )?;
    reporter.progress(&format!("kernel {kernel_release}"));

    reporter.phase(PullPhase::Rootfs);
    prepare_tree(&tree)?;
    let used_mib = du_mib(&tree)?;
    let size_mib = used_mib + used_mib / 4 + ROOTFS_HEADROOM_MIB;
    reporter.progress(&format!(
        "tree uses {used_mib} MiB; image size {size_mib} MiB (sparse)"
    ));
    let rootfs = dir.join(cache::ROOTFS_FILE);
    let mut cmd = Command::new(mke2fs);
    cmd.args(["-q", "-F", "-t", "ext4", "-L", "pyro-root", "-d"])
        .arg(&tree)
        .arg(&rootfs)
        .arg(format!("{size_mib}M"));
    run_tool("mke2fs", cmd, reporter)?;
    std::fs::remove_dir_all(&tree).map_err(EnvError::io("removing the build tree"))?;

    reporter.phase(PullPhase::Initramfs);
    write_initramfs(&modules_dir, &opts.agent, &dir.join(cache::INITRAMFS_FILE))?;

    reporter.phase(PullPhase::Manifest);
    reporter.progress("hashing artifacts");
    let manifest = Manifest {
        name: entry.name.to_string(),
        version: entry.version.to_string(),
        catalog_version: catalog::CATALOG_VERSION.to_string(),
        source: "debian-packages".to_string(),
        mirror: opts.mirror.clone().unwrap_or_else(|| "default".to_string()),
        packages,
        kernel_release,
        built_at: now(),
        kernel: cache::artifact(dir, cache::KERNEL_FILE)?,
        initramfs: cache::artifact(dir, cache::INITRAMFS_FILE)?,
        rootfs: cache::artifact(dir, cache::ROOTFS_FILE)?,
        agent_sha256: sha256_file(&opts.agent).map_err(EnvError::io("hashing the agent"))?,
    };
    // INVARIANT: the manifest is written last; it is what makes an install.
    write_manifest(dir, &manifest)?;
    Ok(manifest)
}

fn find_kernel(tree: &Path) -> Result<(String, PathBuf), EnvError> {
    let boot = tree.join("boot");
    let read = std::fs::read_dir(&boot).map_err(EnvError::io("reading the tree's /boot"))?;
    let mut kernels: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    kernels.sort();
    let path = kernels
        .pop()
        .ok_or_else(|| EnvError::Incomplete("no kernel in /boot".into()))?;
    let release = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .trim_start_matches("vmlinuz-")
        .to_string();
    Ok((release, path))
}

fn copy_modules(src: &Path, dst: &Path) -> Result<(), EnvError> {
    std::fs::create_dir_all(dst).map_err(EnvError::io("creating the modules directory"))?;
    let mut found = std::collections::HashMap::new();
    let mut stack = vec![src.join("kernel")];
    while let Some(dir) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for item in read.filter_map(Result::ok) {
            let path = item.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
            {
                found.insert(name.replace('-', "_"), path.clone());
            }
        }
    }
    let mut order = String::new();
    for module in GUEST_MODULES {
        if let Some(path) = found.get(*module) {
            let file = format!("{module}.ko");
            std::fs::copy(path, dst.join(&file))
                .map_err(EnvError::io(format!("copying {file}")))?;
            order.push_str(&file);
            order.push('\n');
        }
    }
    if !order.contains("virtio_blk") && !builtin(src, "virtio_blk") {
        return Err(EnvError::Incomplete("kernel has no virtio_blk".into()));
    }
    std::fs::write(dst.join("order"), order).map_err(EnvError::io("writing the module order"))
}

fn builtin(modules_root: &Path, module: &str) -> bool {
    std::fs::read_to_string(modules_root.join("modules.builtin"))
        .map(|t| t.lines().any(|l| l.ends_with(&format!("/{module}.ko"))))
        .unwrap_or(false)
}

/// Adjusts the tree for life as a pyro guest root.
fn prepare_tree(tree: &Path) -> Result<(), EnvError> {
    let io = |what: &str| EnvError::io(format!("preparing the tree: {what}"));
    std::fs::create_dir_all(tree.join("workspace")).map_err(io("/workspace"))?;
    std::fs::write(tree.join("etc/hostname"), "pyro\n").map_err(io("/etc/hostname"))?;
    std::fs::write(
        tree.join("etc/hosts"),
        "127.0.0.1 localhost\n127.0.1.1 pyro\n::1 localhost\n",
    )
    .map_err(io("/etc/hosts"))?;
    // The kernel and its initrd live outside the image; drop the copies.
    if let Ok(read) = std::fs::read_dir(tree.join("boot")) {
        for item in read.filter_map(Result::ok) {
            let _ = std::fs::remove_file(item.path());
        }
    }
    Ok(())
}

fn du_mib(tree: &Path) -> Result<u64, EnvError> {
    let out = Command::new("du")
        .args(["-s", "-m", "-x"])
        .arg(tree)
        .output()
        .map_err(EnvError::io("measuring the tree"))?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| EnvError::Incomplete("could not measure the tree".into()))
}

/// Writes the initramfs: agent as `/init`, modules, and the few nodes PID 1
/// needs before devtmpfs is mounted.
pub fn write_initramfs(modules_dir: &Path, agent: &Path, out: &Path) -> Result<(), EnvError> {
    let agent_bytes =
        std::fs::read(agent).map_err(|_| EnvError::AgentMissing(agent.to_path_buf()))?;
    let file =
        std::fs::File::create(out).map_err(EnvError::io(format!("creating {}", out.display())))?;
    let io = EnvError::io("writing the initramfs");
    let mut w = CpioWriter::new(std::io::BufWriter::new(file));
    let result = (|| -> std::io::Result<()> {
        for d in [
            "dev",
            "proc",
            "sys",
            "newroot",
            "lib",
            "lib/modules",
            "lib/modules/pyro",
        ] {
            w.dir(d, 0o755)?;
        }
        w.char_device("dev/console", 0o600, 5, 1)?;
        w.char_device("dev/null", 0o666, 1, 3)?;
        w.file("init", 0o755, &agent_bytes)?;
        let mut names: Vec<_> = std::fs::read_dir(modules_dir)?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            let name = name.to_string_lossy().into_owned();
            let data = std::fs::read(modules_dir.join(&name))?;
            w.file(&format!("lib/modules/pyro/{name}"), 0o644, &data)?;
        }
        Ok(())
    })();
    result.map_err(io)?;
    w.finish().map_err(EnvError::io("writing the initramfs"))?;
    Ok(())
}

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
//!
//! The agent is checked ([`check_agent`]) before anything is written, and
//! the checked bytes are what goes into the initramfs. An install used with
//! another agent gets a per-agent initramfs beside its own
//! ([`EnvCache::refresh_agent`]; layout in [`crate::cache`]).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::agent::{check_agent, AgentBinary};
use crate::cache::{self, AgentInitramfs, EnvCache, InstalledEnv, Manifest};
use crate::catalog::{self, CatalogEntry, SUITE, SYSTEM_PACKAGES};
use crate::cpio::CpioWriter;
use crate::fsutil::{self, write_atomic};
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
    /// The static guest agent binary to embed; checked with
    /// [`check_agent`] before anything is written.
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
        let agent = check_agent(&opts.agent)?;
        let envs = self.environments_dir();
        std::fs::create_dir_all(&envs)
            .map_err(EnvError::io(format!("creating {}", envs.display())))?;
        let _lock = FileLock::acquire(&self.lock_path(entry))
            .map_err(EnvError::io("locking the environment"))?;
        if !opts.force {
            if let Some(installed) = self.installed_entry(entry)? {
                let installed = self.use_agent(installed, &agent)?;
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
        let result = build_into(entry, &partial, opts, &agent, reporter);
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
            agent_initramfs: None,
        })
    }

    /// Checks the agent binary ([`check_agent`]) and returns `installed`
    /// set to boot an initramfs holding exactly that agent, so upgrading
    /// pyro never needs a full re-pull and pyro builds sharing a cache never
    /// disturb each other. Nothing is written when the agent is refused.
    /// See [`EnvCache::use_agent`].
    pub fn refresh_agent(
        &self,
        installed: InstalledEnv,
        agent: &Path,
    ) -> Result<InstalledEnv, EnvError> {
        let agent = check_agent(agent)?;
        self.use_agent(installed, &agent)
    }

    /// [`EnvCache::refresh_agent`] for an already checked agent. The
    /// build's agent uses the build's initramfs; any other agent gets
    /// `initramfs-<agent16>.cpio` in the install, written once under the
    /// install's initramfs lock (unique temp name, fsync, rename) and only
    /// touched afterwards. The manifest is never changed.
    pub fn use_agent(
        &self,
        installed: InstalledEnv,
        agent: &AgentBinary,
    ) -> Result<InstalledEnv, EnvError> {
        if agent.sha256 == installed.manifest.agent_sha256 {
            return Ok(InstalledEnv {
                agent_initramfs: None,
                ..installed
            });
        }
        let file = cache::agent_initramfs_file(&agent.sha256);
        let path = installed.dir.join(&file);
        // Held while checking, so `prune` cannot remove the file between
        // the check and the touch.
        let _lock = FileLock::acquire(&installed.dir.join(cache::INITRAMFS_LOCK_FILE))
            .map_err(EnvError::io(format!("locking {}", installed.dir.display())))?;
        if path.is_file() {
            // Content-addressed: never rewritten, only marked as used.
            let _ = fsutil::touch(&path);
        } else {
            remove_stale_temps(&installed.dir);
            write_initramfs(&installed.dir.join(cache::MODULES_DIR), agent, &path)?;
        }
        Ok(InstalledEnv {
            agent_initramfs: Some(AgentInitramfs {
                file,
                agent_sha256: agent.sha256.clone(),
            }),
            ..installed
        })
    }
}

/// Removes initramfs temp files left by a killed writer. Only call with the
/// install's initramfs lock held: then nobody is writing one.
fn remove_stale_temps(dir: &Path) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    for item in read.filter_map(Result::ok) {
        let name = item.file_name();
        if fsutil::is_temp_for(&name.to_string_lossy(), cache::AGENT_INITRAMFS_PREFIX) {
            let _ = std::fs::remove_file(item.path());
        }
    }
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), EnvError> {
    let text = serde_json::to_string_pretty(manifest).unwrap_or_default();
    write_atomic(dir, cache::MANIFEST_FILE, |f| {
        std::io::Write::write_all(f, text.as_bytes())
    })
    .map_err(EnvError::io("writing the manifest"))
}

fn build_into(
    entry: &CatalogEntry,
    dir: &Path,
    opts: &PullOptions,
    agent: &AgentBinary,
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
    write_initramfs(&modules_dir, agent, &dir.join(cache::INITRAMFS_FILE))?;

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
        agent_sha256: agent.sha256.clone(),
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

/// Writes the initramfs `out` (atomically: unique temp name in its
/// directory, fsync, rename): the checked agent as `/init`, the modules,
/// and the few nodes PID 1 needs before devtmpfs is mounted.
pub fn write_initramfs(
    modules_dir: &Path,
    agent: &AgentBinary,
    out: &Path,
) -> Result<(), EnvError> {
    let (Some(dir), Some(name)) = (out.parent(), out.file_name()) else {
        return Err(EnvError::Incomplete(format!(
            "no initramfs file name in {}",
            out.display()
        )));
    };
    let mut names: Vec<_> = std::fs::read_dir(modules_dir)
        .map_err(EnvError::io(format!("reading {}", modules_dir.display())))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    write_atomic(dir, &name.to_string_lossy(), |file| {
        let mut w = CpioWriter::new(std::io::BufWriter::new(file));
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
        w.file("init", 0o755, agent.bytes())?;
        for name in &names {
            let data = std::fs::read(modules_dir.join(name))?;
            w.file(&format!("lib/modules/pyro/{name}"), 0o644, &data)?;
        }
        w.finish()?.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    })
    .map_err(EnvError::io(format!("writing {}", out.display())))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::agent::tests::{dynamic_elf, real_agent, static_elf};
    use crate::cache::{agent_initramfs_file, PruneReport, AGENT_INITRAMFS_GRACE};

    const ENV: &str = "debian:12";

    /// A cache with a complete install of `debian:12` built with `agent`
    /// (fake kernel and rootfs, two fake modules), without mmdebstrap.
    struct Fixture {
        _tmp: tempfile::TempDir,
        cache: EnvCache,
        agents: PathBuf,
    }

    impl Fixture {
        fn new(build_agent: &[u8]) -> Fixture {
            let tmp = tempfile::tempdir().unwrap();
            let cache = EnvCache::new(tmp.path().join("cache"));
            let agents = tmp.path().join("agents");
            std::fs::create_dir_all(&agents).unwrap();
            let fx = Fixture {
                _tmp: tmp,
                cache,
                agents,
            };
            let agent = check_agent(&fx.agent("build-agent", build_agent)).unwrap();
            let entry = catalog::find(ENV).unwrap();
            let dir = fx.cache.install_dir(entry);
            let modules = dir.join(cache::MODULES_DIR);
            std::fs::create_dir_all(&modules).unwrap();
            std::fs::write(modules.join("virtio_blk.ko"), b"blk module").unwrap();
            std::fs::write(modules.join("vsock.ko"), b"vsock module").unwrap();
            std::fs::write(modules.join("order"), "virtio_blk.ko\nvsock.ko\n").unwrap();
            std::fs::write(dir.join(cache::KERNEL_FILE), b"kernel").unwrap();
            std::fs::write(dir.join(cache::ROOTFS_FILE), b"rootfs").unwrap();
            write_initramfs(&modules, &agent, &dir.join(cache::INITRAMFS_FILE)).unwrap();
            let manifest = Manifest {
                name: ENV.into(),
                version: entry.version.into(),
                catalog_version: catalog::CATALOG_VERSION.into(),
                source: "test".into(),
                mirror: "default".into(),
                packages: vec![],
                kernel_release: "6.1.0-test".into(),
                built_at: 0.0,
                kernel: cache::artifact(&dir, cache::KERNEL_FILE).unwrap(),
                initramfs: cache::artifact(&dir, cache::INITRAMFS_FILE).unwrap(),
                rootfs: cache::artifact(&dir, cache::ROOTFS_FILE).unwrap(),
                agent_sha256: agent.sha256.clone(),
            };
            write_manifest(&dir, &manifest).unwrap();
            fx
        }

        fn agent(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let path = self.agents.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        }

        fn installed(&self) -> InstalledEnv {
            self.cache.require(ENV).unwrap()
        }

        fn dir(&self) -> PathBuf {
            self.installed().dir
        }

        /// Every file in the install with its content.
        fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
            let mut out: Vec<_> = std::fs::read_dir(self.dir())
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| e.path().is_file())
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap(),
                    )
                })
                .collect();
            out.sort();
            out
        }

        fn names(&self) -> BTreeSet<String> {
            self.snapshot().into_iter().map(|(n, _)| n).collect()
        }

        fn agent_initramfs_names(&self) -> Vec<String> {
            self.names()
                .into_iter()
                .filter(|n| n.starts_with("initramfs-"))
                .collect()
        }

        fn temp_names(&self) -> Vec<String> {
            self.names()
                .into_iter()
                .filter(|n| n.contains(".tmp"))
                .collect()
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn set_mtime(path: &Path, when: SystemTime) {
        let secs = when
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let t = libc::timespec {
            tv_sec: secs as libc::time_t,
            tv_nsec: 0,
        };
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: valid C string and two timespecs.
        let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [t, t].as_ptr(), 0) };
        assert_eq!(rc, 0);
    }

    fn mtime(path: &Path) -> SystemTime {
        std::fs::metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn the_build_agent_uses_the_build_initramfs() {
        let build = static_elf(b"build agent");
        let fx = Fixture::new(&build);
        let before = fx.snapshot();
        let env = fx
            .cache
            .refresh_agent(fx.installed(), &fx.agent("same", &build))
            .unwrap();
        assert_eq!(env.initramfs(), env.dir.join(cache::INITRAMFS_FILE));
        assert_eq!(env.initramfs(), env.manifest_initramfs());
        assert_eq!(env.agent_sha256(), env.manifest.agent_sha256);
        assert_eq!(fx.snapshot(), before, "nothing written");
    }

    #[test]
    fn two_agents_get_two_initramfs_files_and_the_manifest_stays() {
        let fx = Fixture::new(&static_elf(b"build agent"));
        let before = fx.snapshot();
        let a_bytes = static_elf(b"agent A");
        let b_bytes = static_elf(b"agent B");
        let a = check_agent(&fx.agent("a", &a_bytes)).unwrap();
        let b = check_agent(&fx.agent("b", &b_bytes)).unwrap();

        let env_a = fx.cache.refresh_agent(fx.installed(), &a.path).unwrap();
        let env_b = fx.cache.refresh_agent(fx.installed(), &b.path).unwrap();
        assert_eq!(
            env_a.initramfs(),
            env_a.dir.join(agent_initramfs_file(&a.sha256))
        );
        assert_eq!(
            env_b.initramfs(),
            env_b.dir.join(agent_initramfs_file(&b.sha256))
        );
        assert_eq!(
            env_a.initramfs().file_name().unwrap().to_str().unwrap(),
            format!("initramfs-{}.cpio", &a.sha256[..16])
        );
        assert_ne!(env_a.initramfs(), env_b.initramfs());
        assert_eq!(env_a.agent_sha256(), a.sha256);
        assert_eq!(env_b.agent_sha256(), b.sha256);

        let ia = std::fs::read(env_a.initramfs()).unwrap();
        let ib = std::fs::read(env_b.initramfs()).unwrap();
        assert!(contains(&ia, &a_bytes) && !contains(&ia, &b_bytes));
        assert!(contains(&ib, &b_bytes) && !contains(&ib, &a_bytes));
        assert!(contains(&ia, b"vsock module"), "modules are in it");

        // Base initramfs and manifest are byte for byte what the build wrote.
        let after: Vec<_> = fx
            .snapshot()
            .into_iter()
            .filter(|(n, _)| !n.starts_with("initramfs-") && n != cache::INITRAMFS_LOCK_FILE)
            .collect();
        assert_eq!(after, before);
        assert_eq!(fx.agent_initramfs_names().len(), 2);
        assert!(fx.temp_names().is_empty());
        // Still installed, and inspect-style reads see the build's artifact.
        let plain = fx.installed();
        assert_eq!(plain.initramfs(), plain.manifest_initramfs());
        assert_eq!(
            crate::digest::sha256_file(&plain.initramfs()).unwrap(),
            plain.manifest.initramfs.sha256
        );
    }

    /// The real static agent and a copy with bytes appended (still a valid
    /// ELF, another hash), when the agent is built.
    #[test]
    fn real_agent_and_a_modified_copy_get_two_files() {
        let Some(real) = real_agent() else {
            eprintln!("skipped: no static agent built");
            return;
        };
        let fx = Fixture::new(&static_elf(b"build agent"));
        let mut copy = std::fs::read(&real).unwrap();
        copy.extend_from_slice(b"\0extra bytes\0");
        let copy = fx.agent("copy", &copy);
        let one = fx.cache.refresh_agent(fx.installed(), &real).unwrap();
        let two = fx.cache.refresh_agent(fx.installed(), &copy).unwrap();
        assert_ne!(one.initramfs(), two.initramfs());
        assert!(one.initramfs().is_file() && two.initramfs().is_file());
        assert_eq!(fx.agent_initramfs_names().len(), 2);
    }

    #[test]
    fn using_an_agent_again_does_not_rewrite_its_initramfs() {
        let fx = Fixture::new(&static_elf(b"build agent"));
        let a = fx.agent("a", &static_elf(b"agent A"));
        let first = fx.cache.refresh_agent(fx.installed(), &a).unwrap();
        let path = first.initramfs();
        let meta = std::fs::metadata(&path).unwrap();
        let content = std::fs::read(&path).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3 * 86400);
        set_mtime(&path, old);

        let again = fx.cache.refresh_agent(fx.installed(), &a).unwrap();
        assert_eq!(again.initramfs(), path);
        let meta2 = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (meta2.dev(), meta2.ino()),
            (meta.dev(), meta.ino()),
            "same file"
        );
        assert_eq!(std::fs::read(&path).unwrap(), content);
        assert!(mtime(&path) > old, "a use is recorded in the mtime");
        assert_eq!(fx.agent_initramfs_names().len(), 1);
    }

    #[test]
    fn an_existing_file_is_trusted_not_rewritten() {
        let fx = Fixture::new(&static_elf(b"build agent"));
        let a = check_agent(&fx.agent("a", &static_elf(b"agent A"))).unwrap();
        // Whatever is under the content-addressed name stays as it is.
        let path = fx.dir().join(agent_initramfs_file(&a.sha256));
        std::fs::write(&path, b"placed by another pyro").unwrap();
        let env = fx.cache.refresh_agent(fx.installed(), &a.path).unwrap();
        assert_eq!(env.initramfs(), path);
        assert_eq!(std::fs::read(&path).unwrap(), b"placed by another pyro");
    }

    #[test]
    fn concurrent_refreshes_write_one_file_and_leave_no_temp() {
        let fx = Arc::new(Fixture::new(&static_elf(b"build agent")));
        // Big enough that the write takes a moment.
        let mut big = static_elf(b"agent A");
        big.resize(8 << 20, 0x5a);
        let a = check_agent(&fx.agent("a", &big)).unwrap();
        let barrier = Arc::new(Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let fx = fx.clone();
                let barrier = barrier.clone();
                let path = a.path.clone();
                std::thread::spawn(move || {
                    let installed = fx.installed();
                    barrier.wait();
                    let env = fx.cache.refresh_agent(installed, &path).unwrap();
                    let meta = std::fs::metadata(env.initramfs()).unwrap();
                    (env.initramfs(), meta.ino())
                })
            })
            .collect();
        let results: BTreeSet<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            results.len(),
            1,
            "every thread got the same file: {results:?}"
        );
        assert_eq!(
            fx.agent_initramfs_names(),
            [agent_initramfs_file(&a.sha256)]
        );
        assert!(fx.temp_names().is_empty(), "{:?}", fx.temp_names());
        let written = std::fs::read(fx.dir().join(agent_initramfs_file(&a.sha256))).unwrap();
        assert!(contains(
            &written[..written.len().min(16 << 20)],
            &big[..4096]
        ));
    }

    #[test]
    fn a_dynamic_agent_is_refused_before_anything_is_written() {
        let fx = Fixture::new(&static_elf(b"build agent"));
        let before = fx.snapshot();
        let system_true = Path::new("/bin/true");
        let dynamic = if system_true.is_file() {
            system_true.to_path_buf()
        } else {
            fx.agent("dyn", &dynamic_elf())
        };
        let err = fx
            .cache
            .refresh_agent(fx.installed(), &dynamic)
            .unwrap_err();
        assert!(matches!(err, EnvError::AgentNotStatic { .. }), "{err:?}");
        assert!(err.to_string().contains("dynamically linked"), "{err}");
        assert_eq!(fx.snapshot(), before, "not even a lock file");

        // A pull checks first too: nothing is created in an empty cache.
        let empty = tempfile::tempdir().unwrap();
        let cache = EnvCache::new(empty.path().join("cache"));
        struct Quiet;
        impl PullReporter for Quiet {
            fn phase(&mut self, _: PullPhase) {}
            fn progress(&mut self, _: &str) {}
        }
        let opts = PullOptions {
            force: false,
            mirror: None,
            agent: dynamic.clone(),
        };
        let err = cache.pull(ENV, &opts, &mut Quiet).unwrap_err();
        assert!(matches!(err, EnvError::AgentNotStatic { .. }), "{err:?}");
        assert!(!cache.root().exists());
        // And the foreign and missing cases the same way.
        let text = fx.agent("text", b"hello\n");
        assert!(matches!(
            fx.cache.refresh_agent(fx.installed(), &text),
            Err(EnvError::AgentForeign { .. })
        ));
        assert!(matches!(
            fx.cache
                .refresh_agent(fx.installed(), &fx.agents.join("absent")),
            Err(EnvError::AgentMissing(_))
        ));
        assert_eq!(fx.snapshot(), before);
    }

    #[test]
    fn a_killed_writers_temp_file_is_removed_by_the_next_write() {
        let fx = Fixture::new(&static_elf(b"build agent"));
        let stale = fx.dir().join(".initramfs-0123456789abcdef.cpio.tmp-1-2-3");
        std::fs::write(&stale, b"half").unwrap();
        let a = fx.agent("a", &static_elf(b"agent A"));
        fx.cache.refresh_agent(fx.installed(), &a).unwrap();
        assert!(!stale.exists());
        assert!(fx.temp_names().is_empty());
    }

    #[test]
    fn prune_keeps_the_four_most_recently_used_agent_initramfs() {
        let fx = Fixture::new(&static_elf(b"build agent"));
        let now = SystemTime::now();
        let mut files = Vec::new();
        for i in 0..7u8 {
            let a = fx.agent(&format!("a{i}"), &static_elf(&[b'x', i]));
            let env = fx.cache.refresh_agent(fx.installed(), &a).unwrap();
            files.push(env.initramfs());
        }
        // 0 and 1 were used long ago, 2 and 3 a while ago, 4..6 just now;
        // 3 was used again recently, so 0, 1 and 2 are the three oldest.
        for (i, f) in files.iter().enumerate() {
            let age = match i {
                0 => 10 * 86400,
                1 => 9 * 86400,
                2 => 8 * 86400,
                3 => 7 * 86400,
                _ => 0,
            };
            set_mtime(f, now - Duration::from_secs(age));
        }
        let a3 = fx.agents.join("a3");
        fx.cache.refresh_agent(fx.installed(), &a3).unwrap();
        let stale = fx.dir().join(".initramfs-0123456789abcdef.cpio.tmp-1-2-3");
        std::fs::write(&stale, b"half").unwrap();
        let before_base = std::fs::read(fx.dir().join(cache::INITRAMFS_FILE)).unwrap();

        let report = fx.cache.prune_report().unwrap();
        let install = fx.dir();
        let install_name = install.file_name().unwrap().to_str().unwrap();
        let mut expected: Vec<String> = [&files[0], &files[1], &files[2]]
            .iter()
            .map(|f| {
                format!(
                    "{install_name}/{}",
                    f.file_name().unwrap().to_str().unwrap()
                )
            })
            .collect();
        expected.push(format!(
            "{install_name}/{}",
            stale.file_name().unwrap().to_str().unwrap()
        ));
        expected.sort();
        assert_eq!(
            report,
            PruneReport {
                deleted_dirs: vec![],
                deleted_files: expected
            }
        );
        for f in &files[3..] {
            assert!(f.is_file(), "{f:?} kept");
        }
        assert_eq!(fx.agent_initramfs_names().len(), 4);
        assert_eq!(
            std::fs::read(fx.dir().join(cache::INITRAMFS_FILE)).unwrap(),
            before_base
        );
        assert!(fx.cache.installed(ENV).unwrap().is_some());
        // Nothing more to do the second time; `prune` reports dirs only.
        assert_eq!(fx.cache.prune().unwrap(), Vec::<String>::new());
        assert_eq!(fx.agent_initramfs_names().len(), 4);
    }

    #[test]
    fn prune_keeps_recently_used_files_beyond_four() {
        let fx = Fixture::new(&static_elf(b"build agent"));
        let now = SystemTime::now();
        for i in 0..6u8 {
            let a = fx.agent(&format!("a{i}"), &static_elf(&[b'y', i]));
            let env = fx.cache.refresh_agent(fx.installed(), &a).unwrap();
            // All within the grace period.
            set_mtime(&env.initramfs(), now - AGENT_INITRAMFS_GRACE / 2);
        }
        let report = fx.cache.prune_report().unwrap();
        assert!(report.deleted_files.is_empty(), "{report:?}");
        assert_eq!(fx.agent_initramfs_names().len(), 6);
    }
}

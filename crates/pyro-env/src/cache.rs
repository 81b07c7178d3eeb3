//! The environment cache on disk.
//!
//! ```text
//! $PYRO_CACHE_DIR/environments/
//!   debian_12-1.0.0/            one installed environment
//!     vmlinuz  initramfs.cpio  rootfs.ext4  modules/  manifest.json
//!     initramfs-<agent16>.cpio  the initramfs for another agent binary
//!     .lock-initramfs           flock held while adding or pruning those
//!   .partial-debian_12-1.0.0/   a pull in progress (or killed)
//!   .lock-debian_12-1.0.0       flock held while pulling
//! ```
//!
//! An environment counts as installed only when its final directory holds a
//! readable `manifest.json` and every artifact it names. The directory is
//! renamed into place after the manifest is written, so a killed pull never
//! leaves an environment that looks installed.
//!
//! ## One initramfs per agent
//!
//! The initramfs embeds the guest agent. `initramfs.cpio` holds the agent
//! the install was built with (the manifest's `agent_sha256`) and is never
//! rewritten. Any other agent binary (another pyro build on the same
//! machine) gets its own `initramfs-<first 16 hex of its sha256>.cpio`
//! beside it, content-addressed: written once, under `.lock-initramfs`, to
//! a unique temp name, fsynced and renamed; an existing one is never
//! rewritten, only touched (mtime) on each use. The manifest always
//! describes the build and is not changed by this.
//!
//! `prune` keeps, per install, the [`KEEP_AGENT_INITRAMFS`] most recently
//! used per-agent files plus any used within [`AGENT_INITRAMFS_GRACE`], and
//! removes the rest (and temp files a killed writer left).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::catalog::{self, CatalogEntry};
use crate::digest::sha256_file;
use crate::EnvError;

/// File names inside an environment directory.
pub const KERNEL_FILE: &str = "vmlinuz";
/// The initramfs with the agent.
pub const INITRAMFS_FILE: &str = "initramfs.cpio";
/// The ext4 root image.
pub const ROOTFS_FILE: &str = "rootfs.ext4";
/// Kernel modules copied out of the tree, plus their load `order`.
pub const MODULES_DIR: &str = "modules";
/// The manifest; present only in complete installs.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Start of a per-agent initramfs name: `initramfs-<agent16>.cpio`.
pub const AGENT_INITRAMFS_PREFIX: &str = "initramfs-";
/// End of a per-agent initramfs name.
pub const AGENT_INITRAMFS_SUFFIX: &str = ".cpio";
/// Lock file inside an install, held while per-agent initramfs files are
/// written or pruned.
pub const INITRAMFS_LOCK_FILE: &str = ".lock-initramfs";
/// Per-agent initramfs files `prune` keeps per install, most recently used
/// first.
pub const KEEP_AGENT_INITRAMFS: usize = 4;
/// `prune` never removes a per-agent initramfs used more recently than
/// this, so one just handed to a starting guest stays.
pub const AGENT_INITRAMFS_GRACE: Duration = Duration::from_secs(3600);

/// The per-agent initramfs file name for an agent's hex sha256.
pub fn agent_initramfs_file(agent_sha256: &str) -> String {
    let short = agent_sha256.get(..16).unwrap_or(agent_sha256);
    format!("{AGENT_INITRAMFS_PREFIX}{short}{AGENT_INITRAMFS_SUFFIX}")
}

/// Whether `name` is a per-agent initramfs file name.
fn is_agent_initramfs(name: &str) -> bool {
    name.strip_prefix(AGENT_INITRAMFS_PREFIX)
        .and_then(|r| r.strip_suffix(AGENT_INITRAMFS_SUFFIX))
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One artifact's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// File name within the environment directory.
    pub file: String,
    /// Hex sha256 of its content.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// What `manifest.json` records about an install.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Environment name.
    pub name: String,
    /// Environment version.
    pub version: String,
    /// Catalog version it was built from.
    pub catalog_version: String,
    /// How it was produced, e.g. `debian-packages`.
    pub source: String,
    /// The mirror it was built from (`default` when mmdebstrap chose).
    pub mirror: String,
    /// Every package asked for.
    pub packages: Vec<String>,
    /// Guest kernel release.
    pub kernel_release: String,
    /// Unix time of the build.
    pub built_at: f64,
    /// The kernel image.
    pub kernel: Artifact,
    /// The initramfs.
    pub initramfs: Artifact,
    /// The root file system image.
    pub rootfs: Artifact,
    /// sha256 of the agent inside the initramfs.
    pub agent_sha256: String,
}

/// An installed environment.
#[derive(Debug, Clone)]
pub struct InstalledEnv {
    /// Its catalog entry.
    pub entry: &'static CatalogEntry,
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// The per-agent initramfs chosen by `refresh_agent`, when the agent is
    /// not the one the install was built with.
    pub(crate) agent_initramfs: Option<AgentInitramfs>,
}

/// A per-agent initramfs inside an install.
#[derive(Debug, Clone)]
pub(crate) struct AgentInitramfs {
    /// File name within the install.
    pub(crate) file: String,
    /// sha256 of the agent in it.
    pub(crate) agent_sha256: String,
}

impl InstalledEnv {
    /// Kernel image path.
    pub fn kernel(&self) -> PathBuf {
        self.dir.join(KERNEL_FILE)
    }
    /// The initramfs to boot: after `refresh_agent`, the one holding that
    /// agent (`initramfs-<agent16>.cpio`, or the build's own when the agent
    /// is the build's); otherwise the one the manifest describes.
    pub fn initramfs(&self) -> PathBuf {
        match &self.agent_initramfs {
            Some(a) => self.dir.join(&a.file),
            None => self.manifest_initramfs(),
        }
    }
    /// The initramfs the build wrote, which the manifest describes.
    pub fn manifest_initramfs(&self) -> PathBuf {
        self.dir.join(INITRAMFS_FILE)
    }
    /// sha256 of the agent inside [`InstalledEnv::initramfs`].
    pub fn agent_sha256(&self) -> &str {
        match &self.agent_initramfs {
            Some(a) => &a.agent_sha256,
            None => &self.manifest.agent_sha256,
        }
    }
    /// Root image path.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join(ROOTFS_FILE)
    }
    /// Manifest path.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }
}

/// The cache root and the operations on it.
#[derive(Debug, Clone)]
pub struct EnvCache {
    root: PathBuf,
}

impl EnvCache {
    /// A cache rooted at `root` (the pyro cache dir).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The pyro cache dir.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where environments live.
    pub fn environments_dir(&self) -> PathBuf {
        self.root.join("environments")
    }

    /// Final directory of an entry.
    pub fn install_dir(&self, entry: &CatalogEntry) -> PathBuf {
        self.environments_dir().join(entry.dir_name())
    }

    pub(crate) fn partial_dir(&self, entry: &CatalogEntry) -> PathBuf {
        self.environments_dir()
            .join(format!(".partial-{}", entry.dir_name()))
    }

    pub(crate) fn lock_path(&self, entry: &CatalogEntry) -> PathBuf {
        self.environments_dir()
            .join(format!(".lock-{}", entry.dir_name()))
    }

    /// The install of `name`, if complete.
    pub fn installed(&self, name: &str) -> Result<Option<InstalledEnv>, EnvError> {
        let entry = catalog::find(name)?;
        self.installed_entry(entry)
    }

    /// Like [`EnvCache::installed`] but an absent install is an error.
    pub fn require(&self, name: &str) -> Result<InstalledEnv, EnvError> {
        self.installed(name)?
            .ok_or_else(|| EnvError::NotInstalled(name.to_string()))
    }

    pub(crate) fn installed_entry(
        &self,
        entry: &'static CatalogEntry,
    ) -> Result<Option<InstalledEnv>, EnvError> {
        let dir = self.install_dir(entry);
        let path = dir.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EnvError::io(format!("reading {}", path.display()))(e)),
        };
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| EnvError::BadManifest {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let complete = [&manifest.kernel, &manifest.initramfs, &manifest.rootfs]
            .iter()
            .all(|a| dir.join(&a.file).is_file());
        Ok(complete.then_some(InstalledEnv {
            entry,
            dir,
            manifest,
            agent_initramfs: None,
        }))
    }

    /// Removes partial builds nobody is working on, installs of versions or
    /// names the catalog does not know, incomplete installs, and per-agent
    /// initramfs files no longer used (see the module docs). Returns the
    /// removed directory names, sorted; [`EnvCache::prune_report`] also
    /// names the removed files.
    pub fn prune(&self) -> Result<Vec<String>, EnvError> {
        Ok(self.prune_report()?.deleted_dirs)
    }

    /// [`EnvCache::prune`], reporting removed files as well.
    pub fn prune_report(&self) -> Result<PruneReport, EnvError> {
        let dir = self.environments_dir();
        let read = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PruneReport::default()),
            Err(e) => return Err(EnvError::io(format!("reading {}", dir.display()))(e)),
        };
        let mut report = PruneReport::default();
        for item in read {
            let item = item.map_err(EnvError::io("listing the environment cache"))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with(".lock-") {
                continue;
            }
            let keep = if let Some(base) = name.strip_prefix(".partial-") {
                // A partial build whose lock is held is still running.
                self.lock_held(base)?
            } else {
                catalog::CATALOG
                    .iter()
                    .find(|e| e.dir_name() == name)
                    .map(|e| {
                        self.installed_entry(e)
                            .map(|i| i.is_some())
                            .unwrap_or(false)
                    })
                    .unwrap_or(false)
            };
            let path = item.path();
            if keep {
                if !name.starts_with('.') {
                    for file in prune_agent_initramfs(&path, SystemTime::now())? {
                        report.deleted_files.push(format!("{name}/{file}"));
                    }
                }
                continue;
            }
            let res = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            res.map_err(EnvError::io(format!("removing {}", path.display())))?;
            report.deleted_dirs.push(name);
        }
        report.deleted_dirs.sort();
        report.deleted_files.sort();
        Ok(report)
    }

    fn lock_held(&self, dir_name: &str) -> Result<bool, EnvError> {
        let path = self.environments_dir().join(format!(".lock-{dir_name}"));
        let lock =
            crate::FileLock::try_acquire(&path).map_err(EnvError::io("checking a pull lock"))?;
        Ok(lock.is_none())
    }
}

/// What [`EnvCache::prune_report`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Removed entries of the environments directory, sorted.
    pub deleted_dirs: Vec<String>,
    /// Removed files inside kept installs, as `<install dir>/<file>`,
    /// sorted: per-agent initramfs files no longer used and temp files a
    /// killed writer left.
    pub deleted_files: Vec<String>,
}

/// In one install, under its initramfs lock: removes temp files (nobody
/// else can be writing), then every per-agent initramfs beyond the
/// [`KEEP_AGENT_INITRAMFS`] most recently used that was not used within
/// [`AGENT_INITRAMFS_GRACE`] of `now`. Returns the removed file names.
pub(crate) fn prune_agent_initramfs(
    install: &Path,
    now: SystemTime,
) -> Result<Vec<String>, EnvError> {
    let _lock = crate::FileLock::acquire(&install.join(INITRAMFS_LOCK_FILE))
        .map_err(EnvError::io(format!("locking {}", install.display())))?;
    let read = std::fs::read_dir(install)
        .map_err(EnvError::io(format!("reading {}", install.display())))?;
    let mut removed = Vec::new();
    let mut agents = Vec::new();
    for item in read.filter_map(Result::ok) {
        let name = item.file_name().to_string_lossy().into_owned();
        if crate::fsutil::is_temp_for(&name, AGENT_INITRAMFS_PREFIX) {
            remove(install, &name)?;
            removed.push(name);
        } else if is_agent_initramfs(&name) {
            let used = item
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            agents.push((used, name));
        }
    }
    // Most recently used first; names break ties so the order is stable.
    agents.sort_by(|a, b| b.cmp(a));
    for (used, name) in agents.into_iter().skip(KEEP_AGENT_INITRAMFS) {
        let idle = now.duration_since(used).unwrap_or_default();
        if idle > AGENT_INITRAMFS_GRACE {
            remove(install, &name)?;
            removed.push(name);
        }
    }
    removed.sort();
    Ok(removed)
}

fn remove(dir: &Path, name: &str) -> Result<(), EnvError> {
    let path = dir.join(name);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(EnvError::io(format!("removing {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

/// Describes a file for the manifest.
pub(crate) fn artifact(dir: &Path, file: &str) -> Result<Artifact, EnvError> {
    let path = dir.join(file);
    let sha256 = sha256_file(&path).map_err(EnvError::io(format!("hashing {}", path.display())))?;
    let size_bytes = path
        .metadata()
        .map_err(EnvError::io(format!("reading {}", path.display())))?
        .len();
    Ok(Artifact {
        file: file.to_string(),
        sha256,
        size_bytes,
    })
}

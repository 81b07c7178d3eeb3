//! The environment cache on disk.
//!
//! ```text
//! $PYRO_CACHE_DIR/environments/
//!   debian_12-1.0.0/            one installed environment
//!     vmlinuz  initramfs.cpio  rootfs.ext4  modules/  manifest.json
//!   .partial-debian_12-1.0.0/   a pull in progress (or killed)
//!   .lock-debian_12-1.0.0       flock held while pulling
//! ```
//!
//! An environment counts as installed only when its final directory holds a
//! readable `manifest.json` and every artifact it names. The directory is
//! renamed into place after the manifest is written, so a killed pull never
//! leaves an environment that looks installed.

use std::path::{Path, PathBuf};

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
}

impl InstalledEnv {
    /// Kernel image path.
    pub fn kernel(&self) -> PathBuf {
        self.dir.join(KERNEL_FILE)
    }
    /// Initramfs path.
    pub fn initramfs(&self) -> PathBuf {
        self.dir.join(INITRAMFS_FILE)
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
        }))
    }

    /// Removes partial builds nobody is working on, installs of versions or
    /// names the catalog does not know, and incomplete installs. Returns the
    /// removed directory names, sorted.
    pub fn prune(&self) -> Result<Vec<String>, EnvError> {
        let dir = self.environments_dir();
        let read = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(EnvError::io(format!("reading {}", dir.display()))(e)),
        };
        let mut removed = Vec::new();
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
            if !keep {
                let path = item.path();
                let res = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                res.map_err(EnvError::io(format!("removing {}", path.display())))?;
                removed.push(name);
            }
        }
        removed.sort();
        Ok(removed)
    }

    fn lock_held(&self, dir_name: &str) -> Result<bool, EnvError> {
        let path = self.environments_dir().join(format!(".lock-{dir_name}"));
        let lock =
            crate::FileLock::try_acquire(&path).map_err(EnvError::io("checking a pull lock"))?;
        Ok(lock.is_none())
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

//! Environment operations: list, inspect, pull, prune.

use std::path::PathBuf;

use pyro_env::{
    catalog, CatalogEntry, InstalledEnv, PullOptions, PullReporter, CATALOG, CATALOG_VERSION,
};
use serde::Serialize;

use crate::{Error, Manager};

/// Platform every environment targets.
pub const PLATFORM: &str = "linux-x86_64";

/// sha256 of each artifact of an install.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactDigests {
    /// Kernel image.
    pub kernel_sha256: String,
    /// Initramfs.
    pub initramfs_sha256: String,
    /// Root image.
    pub rootfs_sha256: String,
}

/// Everything known about one environment (`env inspect`, and each item of
/// `env list`).
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentList {
    /// Catalog version.
    pub catalog_version: String,
    /// Every environment, sorted by name.
    pub environments: Vec<EnvironmentInfo>,
}

/// `env prune` result.
#[derive(Debug, Clone, Serialize)]
pub struct PruneResult {
    /// Removed directory names, sorted.
    pub deleted_environment_dirs: Vec<String>,
    /// How many.
    pub count: usize,
}

impl Manager {
    fn describe(
        &self,
        entry: &'static CatalogEntry,
        installed: Option<&InstalledEnv>,
    ) -> EnvironmentInfo {
        let cache = self.env_cache();
        EnvironmentInfo {
            name: entry.name.into(),
            version: entry.version.into(),
            description: entry.description.into(),
            default_packages: entry
                .default_packages
                .iter()
                .map(|p| p.to_string())
                .collect(),
            distribution: entry.distribution.into(),
            distribution_version: entry.distribution_version.into(),
            platform: PLATFORM.into(),
            catalog_version: CATALOG_VERSION.into(),
            installed: installed.is_some(),
            cache_dir: cache.root().to_path_buf(),
            install_dir: cache.install_dir(entry),
            install_manifest: installed.map(InstalledEnv::manifest_path),
            kernel_image: installed.map(InstalledEnv::kernel),
            initramfs_image: installed.map(InstalledEnv::initramfs),
            rootfs_image: installed.map(InstalledEnv::rootfs),
            source: installed.map(|i| i.manifest.source.clone()),
            mirror: installed.map(|i| i.manifest.mirror.clone()),
            kernel_release: installed.map(|i| i.manifest.kernel_release.clone()),
            built_at: installed.map(|i| i.manifest.built_at),
            artifacts: installed.map(|i| ArtifactDigests {
                kernel_sha256: i.manifest.kernel.sha256.clone(),
                initramfs_sha256: i.manifest.initramfs.sha256.clone(),
                rootfs_sha256: i.manifest.rootfs.sha256.clone(),
            }),
        }
    }

    /// All catalog environments with their install status.
    pub fn env_list(&self) -> Result<EnvironmentList, Error> {
        let environments = CATALOG
            .iter()
            .map(|e| Ok(self.describe(e, self.env_cache().installed(e.name)?.as_ref())))
            .collect::<Result<_, Error>>()?;
        Ok(EnvironmentList {
            catalog_version: CATALOG_VERSION.into(),
            environments,
        })
    }

    /// One environment. Read-only.
    pub fn env_inspect(&self, name: &str) -> Result<EnvironmentInfo, Error> {
        let entry = catalog::find(name)?;
        Ok(self.describe(entry, self.env_cache().installed(name)?.as_ref()))
    }

    /// Builds and installs an environment (instant when installed).
    pub fn env_pull(
        &self,
        name: &str,
        force: bool,
        reporter: &mut dyn PullReporter,
    ) -> Result<EnvironmentInfo, Error> {
        let opts = PullOptions {
            force,
            mirror: self.config().mirror.clone(),
            agent: self.config().agent_path.clone(),
        };
        let installed = self.env_cache().pull(name, &opts, reporter)?;
        Ok(self.describe(installed.entry, Some(&installed)))
    }

    /// Removes partial builds and stale installs.
    pub fn env_prune(&self) -> Result<PruneResult, Error> {
        let deleted = self.env_cache().prune()?;
        Ok(PruneResult {
            count: deleted.len(),
            deleted_environment_dirs: deleted,
        })
    }

    /// An installed environment with an initramfs matching this pyro's agent.
    pub fn ready_env(&self, name: &str) -> Result<InstalledEnv, Error> {
        let env = self.env_cache().require(name)?;
        Ok(self
            .env_cache()
            .refresh_agent(env, &self.config().agent_path)?)
    }
}

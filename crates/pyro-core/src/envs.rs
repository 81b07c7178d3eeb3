//! Environment operations: list, inspect, pull, prune.

use pyro_env::{catalog, CatalogEntry, InstalledEnv, PullOptions, CATALOG, CATALOG_VERSION};

use crate::api::{
    ArtifactDigests, EnvPullParams, EnvironmentInfo, EnvironmentList, EnvironmentParams, NoParams,
    PruneResult,
};
use crate::progress::{Progress, PullSink};
use crate::{Error, Manager};

/// Platform every environment targets.
pub const PLATFORM: &str = crate::api::defaults::PLATFORM;

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
    pub fn env_list(
        &self,
        _params: NoParams,
        _progress: &mut dyn Progress,
    ) -> Result<EnvironmentList, Error> {
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
    pub fn env_inspect(
        &self,
        p: EnvironmentParams,
        _progress: &mut dyn Progress,
    ) -> Result<EnvironmentInfo, Error> {
        let entry = catalog::find(&p.environment)?;
        Ok(self.describe(entry, self.env_cache().installed(&p.environment)?.as_ref()))
    }

    /// Builds and installs an environment (instant when installed).
    pub fn env_pull(
        &self,
        p: EnvPullParams,
        progress: &mut dyn Progress,
    ) -> Result<EnvironmentInfo, Error> {
        let opts = PullOptions {
            force: p.force,
            mirror: self.config().mirror.clone(),
            agent: self.config().agent_path.clone(),
        };
        let mut sink = PullSink {
            progress,
            environment: &p.environment,
        };
        let installed = self.env_cache().pull(&p.environment, &opts, &mut sink)?;
        Ok(self.describe(installed.entry, Some(&installed)))
    }

    /// Removes partial builds and stale installs.
    pub fn env_prune(
        &self,
        _params: NoParams,
        _progress: &mut dyn Progress,
    ) -> Result<PruneResult, Error> {
        let report = self.env_cache().prune_report()?;
        Ok(PruneResult {
            count: report.deleted_dirs.len(),
            deleted_environment_dirs: report.deleted_dirs,
            deleted_files: report.deleted_files,
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

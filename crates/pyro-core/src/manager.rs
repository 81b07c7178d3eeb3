//! The Manager: one instance per process, cheap to create.

use std::sync::OnceLock;

use pyro_env::EnvCache;
use pyro_store::Store;
use pyro_vmm::HostTools;

use crate::{Config, Error};

/// Entry point to everything pyro does. See the crate docs.
#[derive(Debug)]
pub struct Manager {
    config: Config,
    envs: EnvCache,
    tools: OnceLock<HostTools>,
    store: OnceLock<Store>,
}

impl Manager {
    /// A manager over `config`. Nothing is touched on disk yet.
    pub fn new(config: Config) -> Manager {
        let envs = EnvCache::new(config.cache_dir.clone());
        Manager {
            config,
            envs,
            tools: OnceLock::new(),
            store: OnceLock::new(),
        }
    }

    /// A manager configured from the process environment.
    pub fn from_env() -> Result<Manager, Error> {
        Ok(Manager::new(Config::from_env()?))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Host programs, looked up on first use.
    pub fn tools(&self) -> &HostTools {
        self.tools.get_or_init(HostTools::discover)
    }

    pub(crate) fn store_cell(&self) -> &OnceLock<Store> {
        &self.store
    }

    pub(crate) fn env_cache(&self) -> &EnvCache {
        &self.envs
    }
}

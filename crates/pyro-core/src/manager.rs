//! The Manager: one instance per process, cheap to create, shareable
//! between threads (an MCP server serves several calls at once).

use std::sync::OnceLock;

use pyro_env::EnvCache;
use pyro_store::Store;
use pyro_vmm::{Backend, HostTools, Qemu};

use crate::{Config, Error};

/// Entry point to everything pyro does. See the crate docs.
#[derive(Debug)]
pub struct Manager {
    config: Config,
    envs: EnvCache,
    tools: OnceLock<HostTools>,
    backend: OnceLock<Qemu>,
    store: OnceLock<Store>,
    vms: crate::vms::Vms,
}

impl Manager {
    /// A manager over `config`. Nothing is touched on disk yet.
    pub fn new(config: Config) -> Manager {
        let envs = EnvCache::new(config.cache_dir.clone());
        Manager {
            config,
            envs,
            tools: OnceLock::new(),
            backend: OnceLock::new(),
            store: OnceLock::new(),
            vms: Default::default(),
        }
    }

    /// The VMs this Manager holds (`vm_*`).
    pub(crate) fn vm_table(&self) -> &crate::vms::Vms {
        &self.vms
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

    /// The VMM backend guests run on.
    pub(crate) fn backend(&self) -> &dyn Backend {
        self.backend.get_or_init(|| Qemu::new(self.tools().clone()))
    }

    /// The store, opened on first use (the state dir is made private).
    pub fn store(&self) -> Result<&Store, Error> {
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        crate::runtime_dirs::ensure_state_dir(&self.config.state_dir)?;
        let store = Store::open(&self.config.state_dir.join("pyro.db"))?;
        Ok(self.store.get_or_init(|| store))
    }

    pub(crate) fn env_cache(&self) -> &EnvCache {
        &self.envs
    }
}

//! pyro environments.
//!
//! An environment is a curated guest image built locally from Debian
//! packages: a kernel, an initramfs holding the guest agent and the kernel
//! modules it loads, and an ext4 root file system.
//!
//! - [`catalog`]: the environments pyro knows and their versions.
//! - [`cache`]: where installed environments live and what makes one
//!   installed (its manifest, written last).
//! - [`build`]: `pull` — mmdebstrap, kernel and modules, ext4 image,
//!   initramfs — in a partial directory renamed into place at the end.
//! - [`cpio`]: the initramfs writer.
//! - [`agent`]: the check that the guest agent can be PID 1 (static
//!   x86_64 ELF), done before any initramfs is written.
#![deny(missing_docs)]

pub mod agent;
pub mod build;
pub mod cache;
pub mod catalog;
pub mod cpio;
mod digest;
mod error;
mod fsutil;
mod lock;

pub use agent::{check_agent, AgentBinary, AgentLinkage};
pub use build::{PullOptions, PullPhase, PullReporter};
pub use cache::{EnvCache, InstalledEnv, Manifest, PruneReport};
pub use catalog::{CatalogEntry, CATALOG, CATALOG_VERSION};
pub use error::EnvError;
pub use lock::FileLock;

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
#![deny(missing_docs)]

pub mod build;
pub mod cache;
pub mod catalog;
pub mod cpio;
mod digest;
mod error;
mod lock;

pub use build::{PullOptions, PullPhase, PullReporter};
pub use cache::{EnvCache, InstalledEnv, Manifest};
pub use catalog::{CatalogEntry, CATALOG, CATALOG_VERSION};
pub use error::EnvError;
pub use lock::FileLock;

//! pyro's VM layer: starting guests and talking to their agent.
//!
//! - [`Backend`]: the trait core drives guests through.
//! - [`tools`]: finding QEMU, vhost-device-vsock and Firecracker and their
//!   versions.
//! - [`qemu`]: the QEMU backend — command line, sidecar, start and kill.
//! - [`vm`]: a running VM: readiness, agent connections, teardown.
//! - [`agent`]: the host side of the agent protocol (exec streaming).
//! - [`probe`]: boot probes with a deadline (is KVM really usable?).
//! - [`process`]: child processes that cannot outlive their owner.
//! - [`live`]: VMs this process must tear down on SIGINT/SIGTERM.
#![deny(missing_docs)]

pub mod agent;
mod backend;
pub mod egress;
mod error;
mod files;
mod fork;
pub mod live;
pub mod probe;
pub mod process;
pub mod qemu;
mod qmp;
pub mod template;
pub mod tools;
pub mod vm;
pub mod vsock;

pub use agent::{ExecOutcome, OutputSink};
pub use backend::{Backend, BackendKind};
pub use error::VmmError;
pub use files::ArchiveCounts;
pub use fork::Forked;
pub use qemu::{Accel, BootSource, DiskMode, Lifetime, Qemu, VmSpec};
pub use template::TemplateFiles;
pub use tools::HostTools;
pub use vm::{Vm, VmHandle, VmStatus};

/// How the host names itself in the protocol handshake.
pub(crate) const PEER: &str = concat!("pyro ", env!("CARGO_PKG_VERSION"));

//! The backend trait: what core needs from a VMM, and nothing else.
//!
//! Core starts, checks, stops and kills guests and connects to their agent
//! only through [`Backend`]; QEMU ([`crate::qemu::Qemu`]) is the first
//! implementation. A Firecracker backend implements the same five calls
//! (both give the same hybrid-vsock unix socket), so adding it does not
//! touch core.

use std::os::unix::net::UnixStream;

use pyro_proto::Connection;

use crate::qemu::{Lifetime, VmSpec};
use crate::vm::{Vm, VmHandle, VmStatus};
use crate::VmmError;

/// Which VMM runs a guest (recorded with the guest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// QEMU (q35, virtio-pci).
    #[default]
    Qemu,
}

/// A VMM that can run pyro guests.
pub trait Backend: std::fmt::Debug + Send + Sync {
    /// Which one this is.
    fn kind(&self) -> BackendKind;
    /// Starts a guest. With [`Lifetime::BoundToCaller`] it dies with this
    /// process; with [`Lifetime::Detached`] it outlives it once
    /// [`Vm::detach`]ed.
    fn start(&self, spec: &VmSpec, lifetime: Lifetime) -> Result<Vm, VmmError>;
    /// Whether all of the guest's processes still run.
    fn status(&self, vm: &VmHandle) -> VmStatus;
    /// Asks the guest to flush and power off, then makes sure every
    /// process of it is gone.
    fn stop(&self, vm: &VmHandle);
    /// Kills every process of the guest at once.
    fn kill(&self, vm: &VmHandle);
    /// Copies the running guest into `into` (an empty directory) for a
    /// new guest to resume from, while it runs on. An error means the
    /// source is out of reach (still running): stop it.
    fn fork(&self, vm: &VmHandle, into: &std::path::Path) -> Result<crate::Forked, VmmError>;
    /// A fresh, handshaken connection to the guest agent.
    fn connect(&self, vm: &VmHandle) -> Result<Connection<UnixStream>, VmmError>;
}

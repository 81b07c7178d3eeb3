//! The VM layer's error type.

use std::path::PathBuf;

/// What can go wrong starting or talking to a guest.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// QEMU is not installed.
    #[error("qemu-system-x86_64 is not installed (Debian package qemu-system-x86)")]
    QemuMissing,
    /// qemu-img is not installed.
    #[error("qemu-img is not installed (Debian package qemu-utils)")]
    QemuImgMissing,
    /// No vsock transport is available.
    #[error("no vsock transport: /dev/vhost-vsock is absent and vhost-device-vsock is not installed (crates.io package vhost-device-vsock)")]
    VsockMissing,
    /// Egress was asked for and slirp4netns is missing.
    #[error(
        "egress networking needs slirp4netns, which is not installed (Debian package slirp4netns)"
    )]
    Slirp4netnsMissing,
    /// A template could not be made or resumed.
    #[error("template: {0}")]
    Template(String),
    /// A running guest could not be copied, or did not come back after.
    #[error("fork: {0}")]
    Fork(String),
    /// The egress network could not be set up.
    #[error("could not set up the guest's network: {0}")]
    NetworkFailed(String),
    /// A guest that must keep its disk has none.
    #[error("the workspace disk {0} is missing; its files cannot be recovered")]
    DiskMissing(PathBuf),
    /// KVM was forced but is not usable.
    #[error("KVM was requested (PYRO_ACCEL=kvm) but /dev/kvm is not usable: {0}")]
    KvmUnavailable(String),
    /// A socket path would exceed the kernel's limit.
    #[error("socket path {0} is too long for a unix socket")]
    SocketPathTooLong(PathBuf),
    /// A helper process could not be started.
    #[error("could not start {what}: {source}")]
    Spawn {
        /// Which process.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The guest did not become ready.
    #[error("the guest did not boot: {reason}{}", console_suffix(.console))]
    BootFailed {
        /// What happened.
        reason: String,
        /// Last lines of the guest console.
        console: String,
    },
    /// The guest went away during a request.
    #[error("the guest stopped while the command was running ({reason}){}", console_suffix(.console))]
    GuestLost {
        /// What is known about why.
        reason: String,
        /// Last lines of the guest console.
        console: String,
    },
    /// The agent broke the protocol or reported a failure.
    #[error("guest agent error: {0}")]
    Agent(String),
    /// The agent refused the request, with its own code.
    #[error("guest agent: {}", .0.message)]
    Remote(pyro_proto::RemoteError),
    /// The agent did not answer in time.
    #[error("the guest agent did not answer within {0} s")]
    AgentTimeout(u64),
    /// Host-side I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn console_suffix(console: &str) -> String {
    if console.trim().is_empty() {
        String::new()
    } else {
        format!("; guest console: {}", console.trim().replace('\n', " | "))
    }
}

impl VmmError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VmmError {
        let context = context.into();
        move |source| VmmError::Io { context, source }
    }
}

//! Published ports: a service's guest port reachable on the host's
//! 127.0.0.1. pyro binds the host port itself (so "port taken" is an exact
//! error and "pick one" is the kernel's choice), then hands the listener to
//! a proxy process (`pyro-agent publish-proxy`) that carries each
//! connection to the guest's agent over vsock. The proxy exits with the
//! guest's VMM; the service's record keeps the proxies (pid and start
//! time) so stopping the service stops them.

use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use pyro_vmm::process::ProcRef;
use pyro_vmm::VmHandle;

use crate::api::{PublishedPort, PublishedPortSpec};
use crate::Error;

/// Lowest host port a user may ask for (below are privileged ports).
const MIN_HOST_PORT: u16 = 1025;

/// Checks the specs: guest ports 1-65535, host ports 1025-65535, no pair
/// twice, no host port twice.
pub(crate) fn validate(specs: &[PublishedPortSpec]) -> Result<(), Error> {
    let mut seen_host = std::collections::BTreeSet::new();
    let mut seen_pair = std::collections::BTreeSet::new();
    for s in specs {
        if s.guest_port == 0 {
            return Err(Error::InvalidArgument(
                "guest_port must be between 1 and 65535".into(),
            ));
        }
        if let Some(h) = s.host_port {
            if h < MIN_HOST_PORT {
                return Err(Error::InvalidArgument(format!(
                    "host_port {h} is out of range: use {MIN_HOST_PORT}-65535, or leave it out to get a free port"
                )));
            }
            if !seen_host.insert(h) {
                return Err(Error::InvalidArgument(format!(
                    "host_port {h} is published twice"
                )));
            }
        }
        if !seen_pair.insert((s.host_port, s.guest_port)) {
            return Err(Error::InvalidArgument(format!(
                "guest_port {} is published twice to the same host port",
                s.guest_port
            )));
        }
    }
    Ok(())
}

/// A bound host port waiting for its proxy.
pub(crate) struct Bound {
    listener: TcpListener,
    port: PublishedPort,
}

/// Binds every host port on 127.0.0.1 (all or none).
pub(crate) fn bind(specs: &[PublishedPortSpec]) -> Result<Vec<Bound>, Error> {
    specs
        .iter()
        .map(|s| {
            let want = s.host_port.unwrap_or(0);
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, want)).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    Error::Conflict(format!(
                        "host port {want} is already in use on 127.0.0.1; publish to another port, or leave host_port out to get a free one"
                    ))
                } else {
                    Error::Io {
                        context: format!("binding 127.0.0.1:{want}"),
                        source: e,
                    }
                }
            })?;
            let host_port = listener
                .local_addr()
                .map_err(|source| Error::Io {
                    context: "reading a bound port".into(),
                    source,
                })?
                .port();
            Ok(Bound {
                listener,
                port: PublishedPort {
                    host: Ipv4Addr::LOCALHOST.to_string(),
                    host_port,
                    guest_port: s.guest_port,
                    protocol: "tcp".into(),
                },
            })
        })
        .collect()
}

/// Starts one proxy per bound port. On failure the proxies already
/// started are stopped again.
pub(crate) fn start_proxies(
    agent: &std::path::Path,
    vm: &VmHandle,
    bound: Vec<Bound>,
) -> Result<(Vec<PublishedPort>, Vec<ProcRef>), Error> {
    let mut ports = Vec::new();
    let mut procs: Vec<ProcRef> = Vec::new();
    for b in bound {
        match start_proxy(agent, vm, &b) {
            Ok(p) => {
                procs.push(p);
                ports.push(b.port);
            }
            Err(e) => {
                stop(&procs);
                return Err(e);
            }
        }
    }
    Ok((ports, procs))
}

fn start_proxy(agent: &std::path::Path, vm: &VmHandle, b: &Bound) -> Result<ProcRef, Error> {
    let fd = b.listener.as_raw_fd();
    let mut cmd = Command::new(agent);
    cmd.arg("publish-proxy")
        .arg("--vsock")
        .arg(vm.files().vsock)
        .arg("--guest-port")
        .arg(b.port.guest_port.to_string())
        .arg("--watch")
        .arg(format!("{}:{}", vm.vmm.pid, vm.vmm.start_time))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    pyro_vmm::process::detach(&mut cmd);
    // SAFETY: dup2 is async-signal-safe; `fd` is open until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| Error::Io {
        context: format!("starting the port proxy {}", agent.display()),
        source,
    })?;
    let proc = ProcRef::of(child.id());
    // Reap it whenever it ends (a long-lived MCP server would collect
    // zombies otherwise).
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    proc.ok_or_else(|| Error::Io {
        context: "starting the port proxy".into(),
        source: std::io::Error::other("it exited at once"),
    })
}

/// Stops proxies that are still the processes recorded.
pub(crate) fn stop(procs: &[ProcRef]) {
    for p in procs {
        p.kill();
    }
}

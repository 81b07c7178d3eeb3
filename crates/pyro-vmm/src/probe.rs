//! Boot probes: does a guest really boot with this accelerator?
//!
//! `/dev/kvm` existing proves nothing (on nested hosts a KVM guest can
//! crawl and die), so the probe boots the environment's kernel and
//! initramfs with `pyro.probe=1`: the agent prints `probe ok` as soon as it
//! runs and powers off. Reaching that line before the deadline is success.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::process::{bind_to_caller, kill_and_reap};
use crate::qemu::{base_args, Accel};
use crate::tools::HostTools;
use crate::VmmError;

/// Line the agent prints in probe mode.
pub const PROBE_MARKER: &str = "pyro-agent: probe ok";

/// Outcome of one probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Accelerator probed.
    pub accel: Accel,
    /// The guest reached the agent before the deadline.
    pub boots: bool,
    /// Milliseconds from QEMU start to the first guest output.
    pub first_output_ms: Option<u64>,
    /// Milliseconds from QEMU start to the probe marker.
    pub boot_ms: Option<u64>,
    /// Why it failed, when it did.
    pub detail: Option<String>,
}

/// Boots kernel + initramfs in probe mode with a deadline.
pub fn boot_probe(
    tools: &HostTools,
    accel: Accel,
    kernel: &Path,
    initramfs: &Path,
    mem_mib: u32,
    deadline: Duration,
) -> Result<ProbeResult, VmmError> {
    let qemu = tools.qemu.path.clone().ok_or(VmmError::QemuMissing)?;
    let cmdline = "console=ttyS0 reboot=k panic=1 quiet loglevel=3 pyro.probe=1";
    let mut args = base_args(accel, 1, mem_mib, kernel, initramfs, cmdline);
    args.extend(["-serial", "stdio"].iter().map(|s| s.to_string()));
    let mut cmd = Command::new(qemu);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    bind_to_caller(&mut cmd);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| VmmError::Spawn {
        what: "qemu-system-x86_64",
        source,
    })?;
    let mut stdout = child.stdout.take().expect("stdout was piped");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut first_output_ms = None;
    let mut boot_ms = None;
    let end = started + deadline;
    while boot_ms.is_none() {
        let now = Instant::now();
        if now >= end {
            break;
        }
        match rx.recv_timeout(end - now) {
            Ok(chunk) => {
                first_output_ms.get_or_insert(started.elapsed().as_millis() as u64);
                seen.extend_from_slice(&chunk);
                if String::from_utf8_lossy(&seen).contains(PROBE_MARKER) {
                    boot_ms = Some(started.elapsed().as_millis() as u64);
                }
            }
            Err(_) => break,
        }
    }
    kill_and_reap(&mut child);
    let _ = reader.join();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let detail = match boot_ms {
        Some(_) => None,
        None if started.elapsed() >= deadline => {
            Some(format!("no guest output within {} s", deadline.as_secs()))
        }
        None => Some(format!(
            "QEMU exited before the guest ran{}",
            stderr
                .lines()
                .last()
                .map(|l| format!(": {l}"))
                .unwrap_or_default()
        )),
    };
    Ok(ProbeResult {
        accel,
        boots: boot_ms.is_some(),
        first_output_ms,
        boot_ms,
        detail,
    })
}

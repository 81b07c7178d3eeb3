//! One-shot runs: boot a guest, run one command, tear everything down.

use std::time::{Duration, Instant};

use pyro_proto::ExecRequest;
use pyro_vmm::{qemu, Accel, OutputSink, VmSpec};
use serde::Serialize;

use crate::output::Collector;
use crate::{ids, runtime_dirs, Error, Manager};

/// vCPU range accepted.
pub const VCPU_RANGE: std::ops::RangeInclusive<u32> = 1..=8;
/// Memory range accepted, in MiB.
pub const MEM_RANGE: std::ops::RangeInclusive<u32> = 256..=32768;
/// Boot deadline under KVM.
const BOOT_DEADLINE_KVM: Duration = Duration::from_secs(30);
/// Boot deadline under TCG (a loaded 2-core CI host is slow).
const BOOT_DEADLINE_TCG: Duration = Duration::from_secs(180);
/// Memory QEMU itself needs beside the guest's.
const QEMU_OVERHEAD_MIB: u64 = 128;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Catalog name of the environment.
    pub environment: String,
    /// Program and arguments (no shell is added).
    pub command: Vec<String>,
    /// vCPUs.
    pub vcpu_count: u32,
    /// Guest memory.
    pub mem_mib: u32,
    /// Kill the command after this long.
    pub timeout_seconds: u64,
    /// Give the guest outbound networking.
    pub network: bool,
    /// Keep stdout/stderr in the result (the observer sees them either way).
    pub capture_output: bool,
}

impl RunRequest {
    /// A request with the documented defaults.
    pub fn new(environment: impl Into<String>, command: Vec<String>) -> RunRequest {
        RunRequest {
            environment: environment.into(),
            command,
            vcpu_count: 1,
            mem_mib: 1024,
            timeout_seconds: 30,
            network: false,
            capture_output: true,
        }
    }
}

/// Steps of a run, reported as they start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPhase {
    /// Preparing the VM (disk overlay, sockets).
    Create,
    /// Booting until the agent is ready.
    Start,
    /// Running the command.
    Execute,
}

impl RunPhase {
    /// Name as printed in `[run] phase=...`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunPhase::Create => "create",
            RunPhase::Start => "start",
            RunPhase::Execute => "execute",
        }
    }
}

/// Receives a run's progress and output as it happens.
pub trait RunObserver: OutputSink {
    /// A phase started.
    fn phase(&mut self, phase: RunPhase, environment: &str, vm_id: &str);
    /// Something the user should know (e.g. software emulation).
    fn notice(&mut self, message: &str);
}

/// What happened to the VM afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct Cleanup {
    /// The VM.
    pub vm_id: String,
    /// It was deleted.
    pub deleted: bool,
    /// Why.
    pub reason: String,
}

/// Milliseconds spent in each phase.
#[derive(Debug, Clone, Serialize)]
pub struct RunTimings {
    /// Disk overlay and helper start-up.
    pub create_ms: u64,
    /// From QEMU start to the agent's ready notice.
    pub boot_ms: u64,
    /// The exec round trip.
    pub exec_ms: u64,
    /// Teardown.
    pub cleanup_ms: u64,
}

/// Result of `run`.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The VM that ran it.
    pub vm_id: String,
    /// Environment name.
    pub environment: String,
    /// Environment version.
    pub environment_version: String,
    /// The command, shell-quoted for display.
    pub command: String,
    /// Captured stdout (empty unless `capture_output`).
    pub stdout: String,
    /// Captured stderr (empty unless `capture_output`).
    pub stderr: String,
    /// Exit code (124 on timeout, 128+N when killed by signal N).
    pub exit_code: i32,
    /// Whether the timeout fired.
    pub timed_out: bool,
    /// Wall time of the whole run.
    pub duration_ms: u64,
    /// Always `guest_vsock`: commands only ever run in a guest.
    pub execution_mode: String,
    /// kvm or tcg.
    pub accelerator: Accel,
    /// Phase timings.
    pub timings: RunTimings,
    /// What happened to the VM.
    pub cleanup: Cleanup,
}

/// Quotes argv for display the way a POSIX shell would read it back.
pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let safe = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
            if safe {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks limits shared by everything that boots a guest.
pub fn validate_resources(vcpu_count: u32, mem_mib: u32) -> Result<(), Error> {
    if !VCPU_RANGE.contains(&vcpu_count) {
        return Err(Error::InvalidArgument(format!(
            "vcpu_count must be between {} and {}, got {vcpu_count}",
            VCPU_RANGE.start(),
            VCPU_RANGE.end()
        )));
    }
    if !MEM_RANGE.contains(&mem_mib) {
        return Err(Error::InvalidArgument(format!(
            "mem_mib must be between {} and {}, got {mem_mib}",
            MEM_RANGE.start(),
            MEM_RANGE.end()
        )));
    }
    if let Some(available) = mem_available_mib() {
        let needed = mem_mib as u64 + QEMU_OVERHEAD_MIB;
        if needed > available {
            return Err(Error::InvalidArgument(format!(
                "not enough host memory: a {mem_mib} MiB guest needs about {needed} MiB but only {available} MiB is available; lower --mem-mib or stop other guests"
            )));
        }
    }
    Ok(())
}

fn mem_available_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Manager {
    /// Boots a fresh guest, runs `req.command` in it, and deletes the guest.
    pub fn run(
        &self,
        req: &RunRequest,
        observer: &mut dyn RunObserver,
    ) -> Result<RunResult, Error> {
        let started = Instant::now();
        if req.command.is_empty() {
            return Err(Error::InvalidArgument(
                "a command is required after `--`".into(),
            ));
        }
        if req.timeout_seconds == 0 {
            return Err(Error::InvalidArgument(
                "timeout_seconds must be greater than 0".into(),
            ));
        }
        validate_resources(req.vcpu_count, req.mem_mib)?;
        let env = self.ready_env(&req.environment)?;
        let choice = self.choose_accel(&env)?;
        if choice.accelerator == Accel::Tcg {
            observer.notice(&choice.reason);
        }
        runtime_dirs::collect_orphans(&self.config().state_dir);

        let vm_id = ids::new_id();
        let create_started = Instant::now();
        observer.phase(RunPhase::Create, &req.environment, &vm_id);
        let dir = runtime_dirs::create(&self.config().state_dir, &vm_id)?;
        let spec = VmSpec {
            vm_id: vm_id.clone(),
            dir: dir.clone(),
            kernel: env.kernel(),
            initramfs: env.initramfs(),
            rootfs: env.rootfs(),
            vcpus: req.vcpu_count,
            mem_mib: req.mem_mib,
            network: req.network,
            accel: choice.accelerator,
        };
        let vm = qemu::start(&spec, self.tools());
        let mut vm = match vm {
            Ok(vm) => vm,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                pyro_vmm::live::unregister(&vm_id);
                return Err(e.into());
            }
        };
        let create_ms = ms(create_started.elapsed());

        observer.phase(RunPhase::Start, &req.environment, &vm_id);
        let deadline = match choice.accelerator {
            Accel::Kvm => BOOT_DEADLINE_KVM,
            Accel::Tcg => BOOT_DEADLINE_TCG,
        };
        let boot = vm.wait_ready(deadline)?;

        observer.phase(RunPhase::Execute, &req.environment, &vm_id);
        let exec_started = Instant::now();
        let limit = if req.capture_output { usize::MAX } else { 0 };
        let mut tee = Collector::new(Some(observer as &mut dyn OutputSink), limit);
        let exec = ExecRequest {
            argv: req.command.clone(),
            env: Vec::new(),
            cwd: Some("/root".into()),
            timeout_ms: Some(req.timeout_seconds.saturating_mul(1000)),
            direct_output: true,
            output_token: None,
        };
        let outcome = vm.exec(exec, &mut tee)?;
        if outcome.timed_out {
            tee.stderr(format!("command timed out after {}s\n", req.timeout_seconds).as_bytes());
        }
        let exec_ms = ms(exec_started.elapsed());

        let cleanup_started = Instant::now();
        vm.destroy();
        let cleanup_ms = ms(cleanup_started.elapsed());
        Ok(RunResult {
            vm_id: vm_id.clone(),
            environment: req.environment.clone(),
            environment_version: env.entry.version.to_string(),
            command: shell_join(&req.command),
            stdout: Collector::text(&tee.stdout),
            stderr: Collector::text(&tee.stderr),
            exit_code: outcome.exit_code,
            timed_out: outcome.timed_out,
            duration_ms: ms(started.elapsed()),
            execution_mode: "guest_vsock".into(),
            accelerator: choice.accelerator,
            timings: RunTimings {
                create_ms,
                boot_ms: ms(boot.agent_ready),
                exec_ms,
                cleanup_ms,
            },
            cleanup: Cleanup {
                vm_id,
                deleted: true,
                reason: "post_exec_cleanup".into(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_join_quotes_only_what_needs_it() {
        let argv: Vec<String> = ["sh", "-c", "echo out; exit 7", "it's", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            shell_join(&argv),
            r#"sh -c 'echo out; exit 7' 'it'\''s' ''"#
        );
    }

    #[test]
    fn resource_limits_name_the_range() {
        assert_eq!(
            validate_resources(9, 1024).unwrap_err().to_string(),
            "vcpu_count must be between 1 and 8, got 9"
        );
        assert_eq!(
            validate_resources(1, 100).unwrap_err().to_string(),
            "mem_mib must be between 256 and 32768, got 100"
        );
        assert!(validate_resources(1, 256).is_ok());
    }
}

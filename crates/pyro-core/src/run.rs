//! One-shot runs (`vm_run`): boot a guest, run one command, tear down.

use std::time::{Duration, Instant};

use pyro_vmm::{Accel, DiskMode, Lifetime};

use crate::api::{Cleanup, RunParams, RunResult, RunTimings};
use crate::guest::{self, Boot};
use crate::progress::{Event, Phase, Progress};
use crate::{ids, interrupt, runtime_dirs, Error, Hint, Manager};

/// vCPU range accepted.
pub const VCPU_RANGE: std::ops::RangeInclusive<u32> = 1..=8;
/// Memory range accepted, in MiB.
pub const MEM_RANGE: std::ops::RangeInclusive<u32> = 256..=32768;
/// Memory QEMU itself needs beside the guest's.
const QEMU_OVERHEAD_MIB: u64 = 128;

/// Checks limits shared by everything that boots a guest.
pub(crate) fn validate_resources(vcpu_count: u32, mem_mib: u32) -> Result<(), Error> {
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
                "not enough host memory: a {mem_mib} MiB guest needs about {needed} MiB but only {available} MiB is available"
            ))
            .with_hint(Hint::LowerMemory));
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
    /// Boots a fresh guest, runs the command in it, and deletes the guest.
    pub fn vm_run(&self, p: RunParams, progress: &mut dyn Progress) -> Result<RunResult, Error> {
        let started = Instant::now();
        guest::validate_exec(&p.command, "/root", p.timeout_seconds)?;
        guest::refuse_host_compat(p.allow_host_compat)?;
        if !crate::TTL_RANGE.contains(&p.ttl_seconds) {
            return Err(Error::InvalidArgument(format!(
                "ttl_seconds must be between {} and {}, got {}",
                crate::TTL_RANGE.start(),
                crate::TTL_RANGE.end(),
                p.ttl_seconds
            )));
        }
        validate_resources(p.vcpu_count, p.mem_mib)?;
        let env = self.ready_env(&p.environment)?;
        let choice = self.choose_accel(&env)?;
        if choice.accelerator == Accel::Tcg {
            progress.event(Event::Notice(&choice.reason));
        }
        runtime_dirs::collect_orphans(&self.config().state_dir);

        let vm_id = ids::new_id();
        let create_started = Instant::now();
        progress.event(Event::Phase {
            phase: Phase::Create,
            id: &vm_id,
            environment: &p.environment,
        });
        let dir = runtime_dirs::create(&self.config().state_dir, &vm_id)?;
        let _cleanup =
            interrupt::on_interrupt(|| "the guest was stopped and its files removed".into());
        let mut create_ms = 0;
        let booted = self.boot_guest(
            Boot {
                id: &vm_id,
                dir: dir.clone(),
                env: &env,
                accel: choice.accelerator,
                vcpus: p.vcpu_count,
                mem_mib: p.mem_mib,
                network: p.network,
                disk: DiskMode::Create,
                image: None,
                lifetime: Lifetime::BoundToCaller,
            },
            &mut |_| {
                create_ms = ms(create_started.elapsed());
                progress.event(Event::Phase {
                    phase: Phase::Boot,
                    id: &vm_id,
                    environment: &p.environment,
                });
                Ok(())
            },
        );
        let (vm, boot, boot_info) = match booted {
            Ok(b) => b,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                pyro_vmm::live::unregister(&vm_id);
                return Err(e);
            }
        };
        if let Some(n) = crate::templates::cold_notice(&boot_info) {
            progress.event(Event::Notice(&n));
        }

        progress.event(Event::Phase {
            phase: Phase::Execute,
            id: &vm_id,
            environment: &p.environment,
        });
        let exec_started = Instant::now();
        let out = self.one_shot_exec(vm.handle(), &p.command, p.timeout_seconds, progress)?;
        let exec_ms = ms(exec_started.elapsed());

        let cleanup_started = Instant::now();
        vm.destroy();
        let cleanup_ms = ms(cleanup_started.elapsed());
        Ok(RunResult {
            vm_id: vm_id.clone(),
            environment: p.environment.clone(),
            environment_version: env.entry.version.to_string(),
            command: p.command.display(),
            output: out.public(progress.capture_output()),
            duration_ms: ms(started.elapsed()),
            execution_mode: "guest_vsock".into(),
            accelerator: choice.accelerator.into(),
            timings: RunTimings {
                create_ms,
                boot_ms: ms(boot),
                exec_ms,
                cleanup_ms,
            },
            cleanup: Cleanup {
                vm_id,
                deleted: true,
                reason: "post_exec_cleanup".into(),
            },
            boot: boot_info,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

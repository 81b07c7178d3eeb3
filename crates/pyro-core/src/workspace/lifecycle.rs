//! Create, start, stop and delete: every step under the workspace's lock,
//! with the record re-read inside it.

use std::path::PathBuf;

use pyro_archive::Seed;
use pyro_store::{NewWorkspace, WorkspaceState};
use pyro_vmm::{Accel, DiskMode, Lifetime, VmHandle};

use super::{info, Runtime, TTL_RANGE};
use crate::api::{
    defaults, DeleteResult, WorkspaceCreateParams, WorkspaceInfo, WorkspaceRef, WorkspaceSeed,
};
use crate::guest::Boot;
use crate::progress::{Event, Phase, Progress};
use crate::run::validate_resources;
use crate::{ids, interrupt, Error, Hint, Manager};

impl Manager {
    /// Creates and boots a workspace. Everything the caller can get wrong
    /// is checked before anything is recorded or booted.
    pub fn workspace_create(
        &self,
        p: WorkspaceCreateParams,
        progress: &mut dyn Progress,
    ) -> Result<WorkspaceInfo, Error> {
        validate_resources(p.vcpu_count, p.mem_mib)?;
        if !TTL_RANGE.contains(&p.ttl_seconds) {
            return Err(Error::InvalidArgument(format!(
                "ttl_seconds must be between {} and {}, got {}",
                TTL_RANGE.start(),
                TTL_RANGE.end(),
                p.ttl_seconds
            )));
        }
        if let Some(name) = &p.name {
            pyro_store::validate_name(name)?;
        }
        for (k, v) in &p.labels {
            pyro_store::validate_label_key(k)?;
            pyro_store::validate_label_value(k, v)?;
        }
        let seed = match &p.seed_path {
            Some(path) => {
                let abs = if path.is_absolute() {
                    path.clone()
                } else {
                    std::env::current_dir()
                        .map_err(Error::io("reading the working directory"))?
                        .join(path)
                };
                let seed = Seed::open(&abs)?;
                let stats = seed.check()?;
                Some((seed, stats))
            }
            None => None,
        };
        let seed_info = match &seed {
            Some((s, stats)) => WorkspaceSeed {
                mode: s.mode().into(),
                seed_path: Some(s.path().to_path_buf()),
                destination: defaults::WORKSPACE_PATH.into(),
                entry_count: stats.entry_count,
                bytes_written: stats.bytes,
            },
            None => WorkspaceSeed::empty(),
        };
        let env = self.ready_env(&p.environment)?;
        // Probing (once per host) happens before anything is recorded.
        let choice = self.choose_accel(&env)?;
        let store = self.store()?;
        self.stop_idle()?;

        let id = ids::new_id();
        // INVARIANT: the lock is held before the record exists and until
        // the guest is started or the record failed, so nobody stops,
        // starts or collects a half-made workspace.
        let _lock = self.lock_workspace(&id)?;
        let dir = self.workspace_dir(&id);
        store
            .insert(
                &NewWorkspace {
                    workspace_id: id.clone(),
                    name: p.name.clone(),
                    labels: p.labels.clone(),
                    environment: p.environment.clone(),
                    environment_version: env.entry.version.to_string(),
                    vcpu_count: p.vcpu_count,
                    mem_mib: p.mem_mib,
                    ttl_seconds: Some(p.ttl_seconds),
                    network_policy: p.network_policy.as_str().into(),
                    runtime: Runtime::owned_by_me().value(),
                    seed: serde_json::to_value(&seed_info).unwrap_or_default(),
                },
                crate::now(),
            )
            .inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&dir);
            })?;
        let cleanup = {
            let (id, state_dir) = (id.clone(), self.config().state_dir.clone());
            interrupt::on_interrupt(move || {
                discard_workspace(&state_dir, &id);
                format!("the workspace being created ({id}) was removed")
            })
        };
        if choice.accelerator == Accel::Tcg {
            progress.event(Event::Notice(&choice.reason));
        }
        progress.event(Event::Phase {
            phase: Phase::Boot,
            id: &id,
            environment: &p.environment,
        });
        let booted = self
            .boot_guest(
                Boot {
                    id: &id,
                    dir: dir.clone(),
                    env: &env,
                    accel: choice.accelerator,
                    vcpus: p.vcpu_count,
                    mem_mib: p.mem_mib,
                    network: false,
                    disk: DiskMode::Create,
                    lifetime: Lifetime::Detached,
                },
                &mut |vm| self.record_boot(&id, WorkspaceState::Creating, vm, choice.accelerator),
            )
            .and_then(|(vm, _)| {
                if let Some((seed, _)) = &seed {
                    progress.event(Event::Phase {
                        phase: Phase::Seed,
                        id: &id,
                        environment: &p.environment,
                    });
                    let mut write = |w: &mut dyn std::io::Write| {
                        seed.write_tar(w).map_err(std::io::Error::other)
                    };
                    vm.handle().extract(defaults::WORKSPACE_PATH, &mut write)?;
                }
                Ok(vm.detach()?)
            });
        let result = match booted {
            Ok(vm) => {
                store.set_state(
                    &id,
                    WorkspaceState::Started,
                    None,
                    Some(running(vm, choice.accelerator)),
                    None,
                )?;
                Ok(info(&store.resolve(&id)?))
            }
            Err(e) => {
                if let Ok(r) = store.resolve(&id) {
                    if let Some(vm) = Runtime::of(&r).vm {
                        self.backend().kill(&vm);
                    }
                }
                let _ = store.set_state(
                    &id,
                    WorkspaceState::Failed,
                    Some(e.to_string()),
                    Some(Runtime::empty()),
                    None,
                );
                Err(e)
            }
        };
        drop(cleanup);
        result
    }

    /// Records a guest just spawned (before waiting for its agent), still
    /// owned by this process.
    fn record_boot(
        &self,
        id: &str,
        state: WorkspaceState,
        vm: &VmHandle,
        accel: Accel,
    ) -> Result<(), Error> {
        let rt = Runtime {
            vm: Some(vm.clone()),
            accelerator: Some(accel),
            ..Runtime::owned_by_me()
        };
        Ok(self
            .store()?
            .set_state(id, state, None, Some(rt.value()), None)?)
    }

    /// Boots a stopped workspace again on the same disk. Already started:
    /// nothing to do (counts as activity).
    pub fn workspace_start(
        &self,
        p: WorkspaceRef,
        progress: &mut dyn Progress,
    ) -> Result<WorkspaceInfo, Error> {
        self.stop_idle()?;
        let store = self.store()?;
        let id = store.resolve(&p.workspace_id)?.workspace_id;
        let _lock = self.lock_workspace(&id)?;
        let r = self.reread_locked(&id)?;
        match r.state {
            WorkspaceState::Started => {
                store.touch(&id, crate::now())?;
                return Ok(info(&store.resolve(&id)?));
            }
            WorkspaceState::Failed | WorkspaceState::Creating => {
                return Err(Error::InvalidState {
                    message: format!(
                        "workspace {id} failed to be created and cannot be started{}",
                        r.last_error
                            .as_deref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    ),
                    hint: Some(Hint::DeleteWorkspace {
                        workspace: p.workspace_id.clone(),
                    }),
                })
            }
            WorkspaceState::Stopped => {}
        }
        let env = self.ready_env(&r.environment)?;
        let choice = self.choose_accel(&env)?;
        store.set_state(
            &id,
            WorkspaceState::Stopped,
            r.last_error.clone(),
            Some(Runtime::owned_by_me().value()),
            None,
        )?;
        let cleanup = {
            let (id, db) = (id.clone(), self.config().state_dir.join("pyro.db"));
            interrupt::on_interrupt(move || {
                mark_start_interrupted(&db, &id);
                format!("workspace {id} was left stopped")
            })
        };
        if choice.accelerator == Accel::Tcg {
            progress.event(Event::Notice(&choice.reason));
        }
        progress.event(Event::Phase {
            phase: Phase::Boot,
            id: &id,
            environment: &r.environment,
        });
        let booted = self
            .boot_guest(
                Boot {
                    id: &id,
                    dir: self.workspace_dir(&id),
                    env: &env,
                    accel: choice.accelerator,
                    vcpus: r.vcpu_count,
                    mem_mib: r.mem_mib,
                    network: false,
                    disk: DiskMode::Existing,
                    lifetime: Lifetime::Detached,
                },
                &mut |vm| self.record_boot(&id, WorkspaceState::Stopped, vm, choice.accelerator),
            )
            .and_then(|(vm, _)| Ok(vm.detach()?));
        let result = match booted {
            Ok(vm) => {
                store.set_state(
                    &id,
                    WorkspaceState::Started,
                    None,
                    Some(running(vm, choice.accelerator)),
                    Some(crate::now()),
                )?;
                Ok(info(&store.resolve(&id)?))
            }
            Err(e) => {
                if let Ok(r) = store.resolve(&id) {
                    if let Some(vm) = Runtime::of(&r).vm {
                        self.backend().kill(&vm);
                    }
                }
                store.set_state(
                    &id,
                    WorkspaceState::Stopped,
                    Some(e.to_string()),
                    Some(Runtime::empty()),
                    Some(crate::now()),
                )?;
                Err(e)
            }
        };
        drop(cleanup);
        result
    }

    /// Flushes and powers the guest off; the disk is kept.
    pub fn workspace_stop(
        &self,
        p: WorkspaceRef,
        progress: &mut dyn Progress,
    ) -> Result<WorkspaceInfo, Error> {
        let store = self.store()?;
        let id = store.resolve(&p.workspace_id)?.workspace_id;
        // Waits for a create or start in flight, then stops what it made.
        let _lock = self.lock_workspace(&id)?;
        let r = self.reread_locked(&id)?;
        if let Some(vm) = Runtime::of(&r).vm {
            progress.event(Event::Phase {
                phase: Phase::Stop,
                id: &id,
                environment: &r.environment,
            });
            self.backend().stop(&vm);
        }
        let state = match r.state {
            WorkspaceState::Failed | WorkspaceState::Creating => WorkspaceState::Failed,
            _ => WorkspaceState::Stopped,
        };
        let last_error = match r.state {
            WorkspaceState::Started => None,
            _ => r.last_error.clone(),
        };
        store.set_state(
            &id,
            state,
            last_error,
            Some(Runtime::empty()),
            Some(crate::now()),
        )?;
        Ok(info(&store.resolve(&id)?))
    }

    /// Kills the guest and removes the workspace and its disk.
    pub fn workspace_delete(
        &self,
        p: WorkspaceRef,
        _progress: &mut dyn Progress,
    ) -> Result<DeleteResult, Error> {
        let store = self.store()?;
        let id = store.resolve(&p.workspace_id)?.workspace_id;
        let _lock = self.lock_workspace(&id)?;
        let r = store.resolve(&id)?;
        if let Some(vm) = Runtime::of(&r).vm {
            self.backend().kill(&vm);
        }
        // A guest spawned but not yet recorded (killed create) is found by
        // its command line.
        kill_guests_of(&self.workspace_dir(&id));
        store.delete(&id)?;
        let _ = std::fs::remove_dir_all(self.workspace_dir(&id));
        Ok(DeleteResult {
            workspace_id: id,
            deleted: true,
            reason: "explicit_delete".into(),
        })
    }
}

fn running(vm: VmHandle, accel: Accel) -> serde_json::Value {
    Runtime {
        owner: None,
        vm: Some(vm),
        accelerator: Some(accel),
    }
    .value()
}

/// Kills the VMM and sidecar processes whose command lines name `dir`.
pub(crate) fn kill_guests_of(dir: &std::path::Path) {
    let root = dir.parent().unwrap_or(dir);
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for (pid, owner) in super::reconcile::guest_processes_under(root) {
        if owner == id {
            if let Some(p) = pyro_vmm::process::ProcRef::of(pid) {
                p.kill();
            }
        }
    }
}

/// Interrupt clean-up of a create: the guest (already killed by the VM
/// layer) and the record and directory go. Opens its own store handle:
/// it runs on the signal thread.
fn discard_workspace(state_dir: &std::path::Path, id: &str) {
    let dir: PathBuf = state_dir.join("workspaces").join(id);
    kill_guests_of(&dir);
    if let Ok(store) = pyro_store::Store::open(&state_dir.join("pyro.db")) {
        let _ = store.delete(id);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Interrupt clean-up of a start: the guest is gone (killed by the VM
/// layer), so the record says stopped, with why.
fn mark_start_interrupted(db: &std::path::Path, id: &str) {
    if let Ok(store) = pyro_store::Store::open(db) {
        if let Ok(r) = store.resolve(id) {
            if let Some(vm) = Runtime::of(&r).vm {
                vm.kill();
            }
        }
        let _ = store.set_state(
            id,
            WorkspaceState::Stopped,
            Some("start was interrupted".into()),
            Some(Runtime::empty()),
            None,
        );
    }
}

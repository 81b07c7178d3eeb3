//! Create, start, stop and delete: every step under the workspace's lock,
//! with the record re-read inside it.

use std::path::PathBuf;

use pyro_archive::Seed;
use pyro_store::{NewWorkspace, SnapshotKind, SnapshotRow, WorkspaceState, BASELINE};
use pyro_vmm::{Accel, DiskMode, Lifetime, VmHandle};

use super::snapshots::{SnapshotFile, Tee, EMPTY_TAR};
use super::{info, Runtime, TTL_RANGE};
use crate::accel::AccelChoice;
use crate::api::{
    defaults, DeleteResult, NetworkPolicy, WorkspaceCreateParams, WorkspaceInfo, WorkspaceRef,
    WorkspaceSeed,
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
        crate::guest::refuse_host_compat(p.allow_host_compat)?;
        if !TTL_RANGE.contains(&p.ttl_seconds) {
            return Err(Error::InvalidArgument(format!(
                "ttl_seconds must be between {} and {}, got {}",
                TTL_RANGE.start(),
                TTL_RANGE.end(),
                p.ttl_seconds
            )));
        }
        super::validate_name_and_labels(p.name.as_deref(), &p.labels)?;
        let seed = match &p.seed_path {
            Some(path) => {
                let abs = super::files::host_path(path)?;
                let seed = Seed::open(&abs)?;
                let stats = seed.check()?;
                Some((seed, stats))
            }
            None => None,
        };
        let secrets = crate::secrets::load(&p.secrets)?;
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
        // Values go to files only the owner reads; the record keeps names.
        crate::secrets::store(&dir, &secrets).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&dir);
        })?;
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
                    secrets: serde_json::to_value(crate::secrets::describe(&secrets))
                        .unwrap_or_default(),
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
        let booted = self.boot_workspace(
            WorkspaceBoot {
                id: &id,
                environment: &p.environment,
                env: &env,
                accel: choice,
                vcpus: p.vcpu_count,
                mem_mib: p.mem_mib,
                network: p.network_policy,
                disk: DiskMode::Create,
                image: None,
                state_while_booting: WorkspaceState::Creating,
                state_on_failure: WorkspaceState::Failed,
            },
            progress,
            &mut |vm, progress| {
                // The baseline is the seed exactly as the guest received it.
                let mut baseline = SnapshotFile::create(self.snapshot_file(&id, BASELINE))?;
                let (entry_count, bytes_written) = match &seed {
                    Some((seed, _)) => {
                        progress.event(Event::Phase {
                            phase: Phase::Seed,
                            id: &id,
                            environment: &p.environment,
                        });
                        let mut write = |w: &mut dyn std::io::Write| {
                            let mut tee = Tee {
                                a: w,
                                b: &mut baseline.file,
                            };
                            seed.write_tar(&mut tee).map_err(std::io::Error::other)
                        };
                        vm.extract(defaults::WORKSPACE_PATH, &mut write)?
                    }
                    None => {
                        use std::io::Write as _;
                        baseline
                            .file
                            .write_all(&EMPTY_TAR)
                            .map_err(Error::io("writing the baseline".to_string()))?;
                        (0, 0)
                    }
                };
                baseline.keep()?;
                store.insert_snapshot(
                    &id,
                    &SnapshotRow {
                        name: BASELINE.into(),
                        kind: SnapshotKind::Baseline,
                        created_at: crate::now(),
                        entry_count,
                        bytes_written,
                    },
                )?;
                Ok(())
            },
        );
        drop(cleanup);
        booted
    }

    /// Boots a workspace's guest (the caller holds its lock): records the
    /// guest as soon as it is spawned, still owned by this process, then
    /// runs `ready` (seeding) and records it started. On failure the guest
    /// is killed and the record gets `state_on_failure` with the reason.
    pub(super) fn boot_workspace(
        &self,
        b: WorkspaceBoot<'_>,
        progress: &mut dyn Progress,
        ready: &mut dyn FnMut(&VmHandle, &mut dyn Progress) -> Result<(), Error>,
    ) -> Result<WorkspaceInfo, Error> {
        let store = self.store()?;
        let accel = b.accel.accelerator;
        if accel == Accel::Tcg {
            progress.event(Event::Notice(&b.accel.reason));
        }
        progress.event(Event::Phase {
            phase: Phase::Boot,
            id: b.id,
            environment: b.environment,
        });
        let record = |vm: &VmHandle| -> Result<(), Error> {
            let rt = Runtime {
                vm: Some(vm.clone()),
                accelerator: Some(accel),
                ..Runtime::owned_by_me()
            };
            Ok(store.set_state(b.id, b.state_while_booting, None, Some(rt.value()), None)?)
        };
        let booted = self
            .boot_guest(
                Boot {
                    id: b.id,
                    dir: self.workspace_dir(b.id),
                    env: b.env,
                    accel,
                    vcpus: b.vcpus,
                    mem_mib: b.mem_mib,
                    network: b.network.has_network(),
                    disk: b.disk,
                    image: b.image.clone(),
                    lifetime: Lifetime::Detached,
                },
                &mut |vm| record(vm),
            )
            .and_then(|(vm, _, boot)| {
                if let Some(n) = crate::templates::cold_notice(&boot) {
                    progress.event(Event::Notice(&n));
                }
                // On every boot, before anything runs in it.
                self.install_secrets(b.id, vm.handle())?;
                ready(vm.handle(), progress)?;
                Ok((vm.detach()?, boot))
            });
        // Starting counts as activity; creating sets it at insert.
        let touch = (b.disk == DiskMode::Existing).then(crate::now);
        match booted {
            Ok((vm, boot)) => {
                let rt = Runtime {
                    owner: None,
                    vm: Some(vm),
                    accelerator: Some(accel),
                    boot: Some(boot),
                };
                store.set_state(b.id, WorkspaceState::Started, None, Some(rt.value()), touch)?;
                Ok(info(&store.resolve(b.id)?))
            }
            Err(e) => {
                if let Ok(r) = store.resolve(b.id) {
                    if let Some(vm) = Runtime::of(&r).vm {
                        self.backend().kill(&vm);
                    }
                }
                store.set_state(
                    b.id,
                    b.state_on_failure,
                    Some(e.to_string()),
                    Some(Runtime::empty()),
                    touch,
                )?;
                Err(e)
            }
        }
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
        let (_lock, r) = self.lock_and_reread(&p.workspace_id)?;
        let id = r.workspace_id.clone();
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
        let booted = self.boot_workspace(
            WorkspaceBoot {
                id: &id,
                environment: &r.environment,
                env: &env,
                accel: choice,
                vcpus: r.vcpu_count,
                mem_mib: r.mem_mib,
                network: super::info(&r).network_policy,
                disk: DiskMode::Existing,
                image: None,
                state_while_booting: WorkspaceState::Stopped,
                state_on_failure: WorkspaceState::Stopped,
            },
            progress,
            &mut |_, _| Ok(()),
        );
        drop(cleanup);
        booted
    }

    /// Flushes and powers the guest off; the disk is kept.
    pub fn workspace_stop(
        &self,
        p: WorkspaceRef,
        progress: &mut dyn Progress,
    ) -> Result<WorkspaceInfo, Error> {
        let store = self.store()?;
        // Waits for a create or start in flight, then stops what it made.
        let (_lock, r) = self.lock_and_reread(&p.workspace_id)?;
        let id = r.workspace_id.clone();
        if let Some(vm) = Runtime::of(&r).vm {
            progress.event(Event::Phase {
                phase: Phase::Stop,
                id: &id,
                environment: &r.environment,
            });
            // Services end cleanly before the guest powers off.
            self.end_services(&id, Some(&vm), "workspace_stopped");
            self.backend().stop(&vm);
        } else {
            self.end_services(&id, None, "workspace_stopped");
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
        let (_lock, r) = self.lock_and_reread(&p.workspace_id)?;
        let id = r.workspace_id.clone();
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

impl Manager {
    /// Writes the workspace's secrets into its guest's /run/pyro-secrets.
    fn install_secrets(&self, id: &str, vm: &VmHandle) -> Result<(), Error> {
        let r = self.store()?.resolve(id)?;
        let infos = crate::secrets::infos_of(&r);
        if infos.is_empty() {
            return Ok(());
        }
        let values = crate::secrets::values(&self.workspace_dir(id), &infos)?;
        for (name, value) in &values {
            vm.install_secret(name, value)?;
        }
        Ok(())
    }
}

/// What [`Manager::boot_workspace`] boots.
pub(super) struct WorkspaceBoot<'a> {
    pub(super) id: &'a str,
    pub(super) environment: &'a str,
    pub(super) env: &'a pyro_env::InstalledEnv,
    pub(super) accel: AccelChoice,
    pub(super) vcpus: u32,
    pub(super) mem_mib: u32,
    pub(super) network: NetworkPolicy,
    pub(super) disk: DiskMode,
    /// A fork's copy of its source.
    pub(super) image: Option<pyro_vmm::TemplateFiles>,
    pub(super) state_while_booting: WorkspaceState,
    pub(super) state_on_failure: WorkspaceState,
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
pub(super) fn discard_workspace(state_dir: &std::path::Path, id: &str) {
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

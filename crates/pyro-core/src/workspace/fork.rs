//! Fork: a new workspace with a running workspace's memory and disk at
//! one instant, while the source runs on.
//!
//! The source is held under its lock only while it is copied (its agent
//! is out of reach for those few seconds, its processes keep their state);
//! the fork then resumes the copy like a clone of a template, gets an
//! identity of its own, and carries over everything the host keeps about
//! the source: secrets, seed description, baseline and snapshots, service
//! records and labels. Published ports stay with the source (host ports
//! are the source's).

use pyro_store::{NewWorkspace, WorkspaceState};
use pyro_vmm::DiskMode;

use std::time::Duration;

use super::exec::require_started;
use super::inflight::CommandsLock;
use super::lifecycle::{discard_workspace, WorkspaceBoot};
use super::{info, Runtime};
use crate::accel::AccelChoice;
use crate::api::{WorkspaceForkParams, WorkspaceInfo};
use crate::progress::{Event, Phase, Progress};
use crate::{ids, interrupt, Error, Manager};

/// Where the copy of the source waits for the fork to resume it.
const IMAGE_DIR: &str = "fork-image";
/// How long a fork waits for the source's running commands.
const COMMANDS_WAIT: Duration = Duration::from_secs(10);
/// In the source's directory while its copy is made: the forking pyro
/// process (pid and start time).
const MARKER: &str = "forking";

/// Whether a live pyro process is copying the workspace in `dir` (its
/// agent is out of reach until it is done).
pub(crate) fn in_flight(dir: &std::path::Path) -> bool {
    std::fs::read(dir.join(MARKER))
        .ok()
        .and_then(|b| serde_json::from_slice::<pyro_vmm::process::ProcRef>(&b).ok())
        .is_some_and(|p| p.alive())
}

/// The marker, removed when the copy is over however it ends.
struct Marker(std::path::PathBuf);

impl Marker {
    fn set(dir: &std::path::Path) -> Marker {
        let path = dir.join(MARKER);
        if let Some(me) = pyro_vmm::process::ProcRef::of(std::process::id()) {
            let _ = std::fs::write(&path, serde_json::to_vec(&me).unwrap_or_default());
        }
        Marker(path)
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Manager {
    /// Forks a started workspace.
    pub fn workspace_fork(
        &self,
        p: WorkspaceForkParams,
        progress: &mut dyn Progress,
    ) -> Result<WorkspaceInfo, Error> {
        super::validate_name_and_labels(p.name.as_deref(), &p.labels)?;
        let store = self.store()?;
        if let Some(name) = &p.name {
            // Checked before the source is paused; the insert checks again.
            if store.resolve(name).is_ok() {
                return Err(pyro_store::StoreError::DuplicateName { name: name.clone() }.into());
            }
        }
        self.stop_idle()?;

        let (src_lock, src) = self.lock_and_reread(&p.workspace_id)?;
        let src_id = src.workspace_id.clone();
        let vm = require_started(&src, &p.workspace_id, "fork")?;
        let src_rt = Runtime::of(&src);
        let env = self.ready_env(&src.environment)?;
        // The copy only resumes under the accelerator it was made with.
        let accel = match src_rt.accelerator {
            Some(accelerator) => AccelChoice {
                accelerator,
                reason: format!(
                    "the fork runs under {} like its source",
                    accelerator.as_str()
                ),
            },
            None => self.choose_accel(&env)?,
        };

        let id = ids::new_id();
        // INVARIANT: as in create, the fork's lock is held from before its
        // record exists until its guest started or the record failed.
        let _lock = self.lock_workspace(&id)?;
        let dir = self.workspace_dir(&id);
        let image_dir = dir.join(IMAGE_DIR);
        let cleanup = {
            let (id, state_dir) = (id.clone(), self.config().state_dir.clone());
            interrupt::on_interrupt(move || {
                discard_workspace(&state_dir, &id);
                format!("the fork being made ({id}) was removed")
            })
        };
        let discard = |e: Error| {
            let _ = std::fs::remove_dir_all(&dir);
            e
        };
        let src_dir = self.workspace_dir(&src_id);
        let infos = crate::secrets::infos_of(&src);
        let secrets = crate::secrets::values(&src_dir, &infos).map_err(discard)?;
        let secrets: Vec<crate::secrets::Secret> = infos
            .iter()
            .filter_map(|i| {
                secrets.get(&i.name).map(|v| crate::secrets::Secret {
                    name: i.name.clone(),
                    value: v.clone(),
                    source: i.source_kind,
                })
            })
            .collect();
        crate::secrets::store(&dir, &secrets).map_err(discard)?;
        std::fs::create_dir(&image_dir)
            .map_err(Error::io("making the fork's image directory"))
            .map_err(discard)?;

        progress.event(Event::Phase {
            phase: Phase::Fork,
            id: &src_id,
            environment: &src.environment,
        });
        // The copy unplugs the agent's vsock device, which would end the
        // commands running on the source: wait for them, and hold new ones
        // until the copy is made.
        let Some(quiet) = CommandsLock::exclusive_within(&src_dir, COMMANDS_WAIT) else {
            return Err(discard(Error::InvalidState {
                message: format!(
                    "workspace {src_id} is still running a command after {} s; a fork now would end it: fork when it has finished",
                    COMMANDS_WAIT.as_secs()
                ),
                hint: None,
            }));
        };
        // Other calls on the source meanwhile wait for the copy (see `load`).
        let marker = Marker::set(&src_dir);
        let image = match self.backend().fork(&vm, &image_dir) {
            Ok(forked) => {
                let rt = Runtime {
                    vm: Some(forked.source),
                    ..src_rt
                };
                store.set_state(
                    &src_id,
                    WorkspaceState::Started,
                    src.last_error.clone(),
                    Some(rt.value()),
                    Some(crate::now()),
                )?;
                forked.image.map_err(|e| discard(e.into()))?
            }
            Err(e) => {
                // Out of reach for good: stopped, its disk kept, so the
                // record agrees with what runs.
                self.backend().kill(&vm);
                super::lifecycle::kill_guests_of(&src_dir);
                self.end_services(&src_id, None, "workspace_stopped");
                store.set_state(
                    &src_id,
                    WorkspaceState::Stopped,
                    Some(format!("stopped after a failed fork: {e}")),
                    Some(Runtime::empty()),
                    Some(crate::now()),
                )?;
                return Err(discard(e.into()));
            }
        };
        // The source is usable again while the fork boots.
        drop(marker);
        drop(quiet);
        drop(src_lock);

        let mut labels = src.labels.clone();
        labels.extend(p.labels.clone());
        store
            .insert(
                &NewWorkspace {
                    workspace_id: id.clone(),
                    name: p.name.clone(),
                    labels,
                    environment: src.environment.clone(),
                    environment_version: src.environment_version.clone(),
                    vcpu_count: src.vcpu_count,
                    mem_mib: src.mem_mib,
                    ttl_seconds: src.ttl_seconds,
                    network_policy: src.network_policy.clone(),
                    runtime: Runtime::owned_by_me().value(),
                    seed: src.seed.clone(),
                    secrets: src.secrets.clone(),
                },
                crate::now(),
            )
            .map_err(|e| discard(e.into()))?;
        let copied = self.copy_host_records(&src_id, &id);
        let booted = copied.and_then(|()| {
            self.boot_workspace(
                WorkspaceBoot {
                    id: &id,
                    environment: &src.environment,
                    env: &env,
                    accel,
                    vcpus: src.vcpu_count,
                    mem_mib: src.mem_mib,
                    network: info(&src).network_policy,
                    disk: DiskMode::Create,
                    image: Some(image),
                    state_while_booting: WorkspaceState::Creating,
                    state_on_failure: WorkspaceState::Failed,
                },
                progress,
                &mut |_, _| Ok(()),
            )
        });
        let _ = std::fs::remove_dir_all(&image_dir);
        drop(cleanup);
        booted
    }

    /// Snapshots (baseline included) and service records of `from`, for
    /// its fork `to`.
    fn copy_host_records(&self, from: &str, to: &str) -> Result<(), Error> {
        let store = self.store()?;
        for row in store.snapshots(from)? {
            let (src, dst) = (
                self.snapshot_file(from, &row.name),
                self.snapshot_file(to, &row.name),
            );
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(Error::io("making the snapshots directory"))?;
            }
            std::fs::copy(&src, &dst)
                .map_err(Error::io(format!("copying snapshot {}", row.name)))?;
            store.insert_snapshot(to, &row)?;
        }
        for (name, state, mut record) in store.services(from)? {
            // The source keeps its published ports and their proxies.
            if let Some(obj) = record.as_object_mut() {
                obj.remove(super::services::PROXIES);
                obj.insert("published_ports".into(), serde_json::json!([]));
            }
            store.put_service(to, &name, &state, &record)?;
        }
        Ok(())
    }
}

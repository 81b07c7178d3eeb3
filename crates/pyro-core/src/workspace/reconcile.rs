//! Making records agree with the processes on the host: observed state,
//! reconciliation, idle stop, and gc.

use pyro_store::{StoreError, WorkspaceRecord, WorkspaceState};
use pyro_vmm::process::ProcRef;
use pyro_vmm::{Backend, VmStatus};

use super::Runtime;
use crate::api::{GcResult, NoParams};
use crate::progress::Progress;
use crate::{Error, Manager};

/// What the processes say about a record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Observed {
    /// The record is right.
    AsRecorded,
    /// It should say `state`, with this reason; any guest it names is to
    /// be killed.
    Changed {
        state: WorkspaceState,
        reason: String,
    },
}

/// Compares a record with the processes it names (reads /proc through the
/// backend; writes nothing).
pub(crate) fn observe(backend: &dyn Backend, r: &WorkspaceRecord) -> Observed {
    let rt = Runtime::of(r);
    let owner_alive = rt.owner.as_ref().is_some_and(ProcRef::alive);
    match r.state {
        WorkspaceState::Started => match rt.vm.as_ref().map(|vm| backend.status(vm)) {
            Some(VmStatus::Running) => Observed::AsRecorded,
            Some(VmStatus::Gone(why)) => Observed::Changed {
                state: WorkspaceState::Stopped,
                reason: format!("the guest stopped unexpectedly ({why})"),
            },
            None => Observed::Changed {
                state: WorkspaceState::Stopped,
                reason: "no guest was recorded for this started workspace".into(),
            },
        },
        WorkspaceState::Creating if owner_alive => Observed::AsRecorded,
        WorkspaceState::Creating => Observed::Changed {
            state: WorkspaceState::Failed,
            reason: "creation was interrupted (the pyro process creating it is gone)".into(),
        },
        // A start in flight; or one whose process died, leaving its guest.
        WorkspaceState::Stopped if rt.owner.is_some() || rt.vm.is_some() => {
            if owner_alive {
                Observed::AsRecorded
            } else {
                Observed::Changed {
                    state: WorkspaceState::Stopped,
                    reason: "start was interrupted (the pyro process starting it is gone)".into(),
                }
            }
        }
        WorkspaceState::Stopped | WorkspaceState::Failed => Observed::AsRecorded,
    }
}

impl Manager {
    /// Persists what `observe` found, under the lock the caller holds,
    /// killing whatever guest the record named. Returns the new record.
    pub(crate) fn settle(
        &self,
        r: &WorkspaceRecord,
        state: WorkspaceState,
        reason: String,
    ) -> Result<WorkspaceRecord, Error> {
        let rt = Runtime::of(r);
        if let Some(vm) = &rt.vm {
            self.backend().kill(vm);
        }
        // Its guest is gone, and the services with it.
        self.end_services(&r.workspace_id, None, "workspace_stopped");
        // A guest spawned but not yet recorded (its creator was killed in
        // between) is found by its command line.
        super::lifecycle::kill_guests_of(&self.workspace_dir(&r.workspace_id));
        let mut reason = reason;
        // A reset whose process died before its new guest was up: the disk
        // from before it is put back.
        if r.state == WorkspaceState::Stopped && rt.owner.is_some() {
            let disk = pyro_vmm::vm::VmFiles::new(&self.workspace_dir(&r.workspace_id)).disk;
            let aside = super::snapshots::aside_disk(&disk);
            if aside.exists() && std::fs::rename(&aside, &disk).is_ok() {
                reason = "a reset was interrupted; the disk from before it was put back".into();
            }
        }
        let store = self.store()?;
        store.set_state(
            &r.workspace_id,
            state,
            Some(reason),
            Some(Runtime::empty()),
            None,
        )?;
        Ok(store.resolve(&r.workspace_id)?)
    }

    /// Re-reads a record under its lock (held by the caller) and settles it.
    pub(crate) fn reread_locked(&self, id: &str) -> Result<WorkspaceRecord, Error> {
        let r = self.store()?.resolve(id)?;
        match observe(self.backend(), &r) {
            Observed::AsRecorded => Ok(r),
            Observed::Changed { state, reason } => self.settle(&r, state, reason),
        }
    }

    /// Resolves `id_or_name`, waits for the workspace's lock, and re-reads
    /// (and settles) the record inside it: how every lifecycle change
    /// starts, so none acts on a stale read.
    pub(crate) fn lock_and_reread(
        &self,
        id_or_name: &str,
    ) -> Result<(pyro_env::FileLock, WorkspaceRecord), Error> {
        let id = self.store()?.resolve(id_or_name)?.workspace_id;
        let lock = self.lock_workspace(&id)?;
        Ok((lock, self.reread_locked(&id)?))
    }

    /// Resolves a record and reconciles it with reality when no operation
    /// is in flight on it (one that is will settle it itself). Never waits,
    /// except for a fork copying the workspace: its agent is out of reach
    /// for those few seconds and comes back on a new sidecar.
    pub(crate) fn load(&self, id_or_name: &str) -> Result<WorkspaceRecord, Error> {
        let r = self.store()?.resolve(id_or_name)?;
        if super::fork::in_flight(&self.workspace_dir(&r.workspace_id)) {
            let _lock = self.lock_workspace(&r.workspace_id)?;
            return self.reread_locked(&r.workspace_id);
        }
        if observe(self.backend(), &r) == Observed::AsRecorded {
            return Ok(r);
        }
        match self.try_lock_workspace(&r.workspace_id) {
            Some(_lock) => self.reread_locked(&r.workspace_id),
            None => Ok(r),
        }
    }

    /// Reconciles every record that names processes, so that queries on
    /// the recorded state are exact.
    pub(crate) fn reconcile_all(&self) -> Result<Vec<(String, WorkspaceState)>, Error> {
        let store = self.store()?;
        let mut changed = Vec::new();
        for id in store.ids_with_runtime()? {
            let Ok(r) = store.resolve(&id) else { continue };
            if observe(self.backend(), &r) == Observed::AsRecorded {
                continue;
            }
            if let Some(_lock) = self.try_lock_workspace(&id) {
                let after = self.reread_locked(&id)?;
                if after.state != r.state {
                    changed.push((id, after.state));
                }
            }
        }
        Ok(changed)
    }

    /// Stops started workspaces idle past their TTL. Never deletes.
    pub(crate) fn stop_idle(&self) -> Result<Vec<String>, Error> {
        let store = self.store()?;
        let t = crate::now();
        let mut stopped = Vec::new();
        for id in store.ids_idle_past_ttl(t)? {
            // An operation in flight counts as activity.
            let Some(_lock) = self.try_lock_workspace(&id) else {
                continue;
            };
            // Re-read under the lock: an exec may have just touched it.
            let Ok(r) = self.reread_locked(&id) else {
                continue;
            };
            let Some(ttl) = r.ttl_seconds else { continue };
            if r.state != WorkspaceState::Started || r.last_activity_at + ttl as f64 > t {
                continue;
            }
            if let Some(vm) = Runtime::of(&r).vm {
                self.backend().stop(&vm);
            }
            store.set_state(
                &r.workspace_id,
                WorkspaceState::Stopped,
                Some(format!(
                    "stopped after {ttl} s idle (ttl_seconds); start it to resume"
                )),
                Some(Runtime::empty()),
                None,
            )?;
            stopped.push(r.workspace_id);
        }
        Ok(stopped)
    }

    /// Reconciles records with the processes on the host: dead guests are
    /// marked stopped, interrupted creations failed, guest processes no
    /// record owns are killed, and orphaned directories removed.
    pub fn workspace_gc(
        &self,
        _params: NoParams,
        _progress: &mut dyn Progress,
    ) -> Result<GcResult, Error> {
        let store = self.store()?;
        let mut result = GcResult {
            idle_stopped: self.stop_idle()?,
            ..Default::default()
        };
        for (id, state) in self.reconcile_all()? {
            match state {
                WorkspaceState::Failed => result.marked_failed.push(id),
                _ => result.marked_stopped.push(id),
            }
        }
        result.killed_orphans = self.kill_unowned_guests()?;
        if let Ok(read) = std::fs::read_dir(self.config().state_dir.join("workspaces")) {
            for item in read.filter_map(Result::ok) {
                let id = item.file_name().to_string_lossy().into_owned();
                if matches!(store.resolve(&id), Err(StoreError::NotFound { .. })) {
                    // A create takes the lock before inserting its record.
                    let Some(_lock) = self.try_lock_workspace(&id) else {
                        continue;
                    };
                    if matches!(store.resolve(&id), Err(StoreError::NotFound { .. }))
                        && std::fs::remove_dir_all(item.path()).is_ok()
                    {
                        result.removed_dirs.push(id);
                    }
                }
            }
        }
        crate::runtime_dirs::collect_orphans(&self.config().state_dir);
        Ok(result)
    }

    /// Kills VMM and sidecar processes started for a workspace directory
    /// whose record does not name them (deleted, stopped, or lost in a
    /// race), skipping workspaces with an operation in flight.
    fn kill_unowned_guests(&self) -> Result<Vec<u32>, Error> {
        let root = self.config().state_dir.join("workspaces");
        let mut killed = Vec::new();
        for (pid, id) in guest_processes_under(&root) {
            let Some(_lock) = self.try_lock_workspace(&id) else {
                if !self.workspace_dir(&id).is_dir() {
                    // No directory, no lock, no record: nobody owns it.
                    if let Some(p) = ProcRef::of(pid) {
                        p.kill();
                        killed.push(pid);
                    }
                }
                continue;
            };
            let owned = match self.store()?.resolve(&id) {
                Ok(r) => Runtime::of(&r)
                    .vm
                    .is_some_and(|vm| vm.processes().iter().any(|p| p.pid == pid)),
                Err(StoreError::NotFound { .. }) => false,
                Err(e) => return Err(e.into()),
            };
            if !owned {
                if let Some(p) = ProcRef::of(pid) {
                    p.kill();
                    killed.push(pid);
                }
            }
        }
        Ok(killed)
    }
}

/// QEMU and sidecar processes whose command line names a directory under
/// `root`, with the workspace id it names.
pub(crate) fn guest_processes_under(root: &std::path::Path) -> Vec<(u32, String)> {
    let needle = format!("{}/", root.to_string_lossy());
    let Ok(read) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in read.filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let program = cmdline.split(' ').next().unwrap_or_default();
        let ours =
            program.ends_with("qemu-system-x86_64") || program.ends_with("vhost-device-vsock");
        if !ours {
            continue;
        }
        if let Some(at) = cmdline.find(&needle) {
            let rest = &cmdline[at + needle.len()..];
            let id: String = rest.chars().take_while(|c| *c != '/').collect();
            if !id.is_empty() {
                found.push((pid, id));
            }
        }
    }
    found
}

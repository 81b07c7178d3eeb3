//! Snapshots of /workspace and resets.
//!
//! A snapshot is a plain tar of /workspace kept on the host in
//! `workspaces/<id>/snapshots/<name>.tar`, recorded in the store. The
//! baseline is the create-time seed, written while the seed streams into
//! the guest. Reset boots a fresh disk and restores a snapshot into it; the
//! old disk is kept aside until the new guest is up, so a failed reset
//! loses nothing.

use std::io::Write;
use std::path::PathBuf;

use pyro_store::{SnapshotKind as StoreKind, SnapshotRow, WorkspaceState, BASELINE};
use pyro_vmm::DiskMode;

use super::{info, Runtime};
use crate::api::{
    defaults, SnapshotDeleted, SnapshotInfo, SnapshotKind, SnapshotList, SnapshotParams,
    WorkspaceRef, WorkspaceReset, WorkspaceResetParams, WorkspaceResetResult,
};
use crate::progress::{Event, Phase, Progress};
use crate::{interrupt, Error, Manager};

fn kind(k: StoreKind) -> SnapshotKind {
    match k {
        StoreKind::Baseline => SnapshotKind::Baseline,
        StoreKind::Named => SnapshotKind::Named,
    }
}

fn snapshot_info(id: &str, s: SnapshotRow) -> SnapshotInfo {
    SnapshotInfo {
        workspace_id: id.to_string(),
        deletable: s.kind == StoreKind::Named,
        snapshot_name: s.name,
        kind: kind(s.kind),
        created_at: s.created_at,
        entry_count: s.entry_count,
        bytes_written: s.bytes_written,
    }
}

/// Writes a tar into `<final>.partial`, renamed into place by
/// [`SnapshotFile::keep`]; removed if dropped before.
pub(crate) struct SnapshotFile {
    partial: PathBuf,
    path: PathBuf,
    pub(crate) file: std::fs::File,
    kept: bool,
    _interrupted: interrupt::Guard,
}

impl SnapshotFile {
    pub(crate) fn create(path: PathBuf) -> Result<SnapshotFile, Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(Error::io(format!("creating {}", dir.display())))?;
        }
        let partial = path.with_extension("tar.partial");
        let file = std::fs::File::create(&partial)
            .map_err(Error::io(format!("creating {}", partial.display())))?;
        let on_interrupt = {
            let partial = partial.clone();
            interrupt::on_interrupt(move || {
                let _ = std::fs::remove_file(&partial);
                "the snapshot was not taken".into()
            })
        };
        Ok(SnapshotFile {
            partial,
            path,
            file,
            kept: false,
            _interrupted: on_interrupt,
        })
    }

    pub(crate) fn keep(mut self) -> Result<(), Error> {
        self.file
            .sync_all()
            .map_err(Error::io(format!("writing {}", self.partial.display())))?;
        std::fs::rename(&self.partial, &self.path)
            .map_err(Error::io(format!("writing {}", self.path.display())))?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for SnapshotFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// Copies everything written into two writers (the guest and the baseline
/// file).
pub(crate) struct Tee<'a> {
    pub(crate) a: &'a mut dyn Write,
    pub(crate) b: &'a mut dyn Write,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.a.write(buf)?;
        self.b.write_all(&buf[..n])?;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.a.flush()?;
        self.b.flush()
    }
}

/// An empty tar (two zero blocks).
pub(crate) const EMPTY_TAR: [u8; 1024] = [0; 1024];

impl Manager {
    /// Where snapshot `name` of workspace `id` is kept.
    pub(crate) fn snapshot_file(&self, id: &str, name: &str) -> PathBuf {
        self.workspace_dir(id)
            .join("snapshots")
            .join(format!("{name}.tar"))
    }

    /// Captures /workspace as a named snapshot. Counts as activity.
    pub fn snapshot_create(
        &self,
        p: SnapshotParams,
        progress: &mut dyn Progress,
    ) -> Result<SnapshotInfo, Error> {
        pyro_store::validate_snapshot_name(&p.snapshot_name)?;
        let (r, vm) = self.started(&p.workspace_id, "snapshot create")?;
        let id = r.workspace_id.clone();
        // One snapshot change at a time per workspace: two creates of the
        // same name must not write the same file.
        let _lock = self.lock_workspace(&id)?;
        let store = self.store()?;
        if store.snapshot(&id, &p.snapshot_name).is_ok() {
            return Err(pyro_store::StoreError::Conflict {
                message: format!(
                    "snapshot '{}' already exists in workspace '{id}'",
                    p.snapshot_name
                ),
            }
            .into());
        }
        progress.event(Event::Notice(&format!(
            "capturing /workspace as snapshot '{}'",
            p.snapshot_name
        )));
        let mut out = SnapshotFile::create(self.snapshot_file(&id, &p.snapshot_name))?;
        let (_, counts) = self.on_guest(&r, &p.workspace_id, &vm, |vm| {
            vm.archive(
                defaults::WORKSPACE_PATH,
                |_, stream: &mut dyn std::io::Read| {
                    std::io::copy(stream, &mut out.file)
                        .map_err(Error::io("writing the snapshot".to_string()))
                },
            )
        })?;
        out.keep()?;
        let row = SnapshotRow {
            name: p.snapshot_name.clone(),
            kind: StoreKind::Named,
            created_at: crate::now(),
            entry_count: counts.entry_count,
            bytes_written: counts.bytes,
        };
        store.insert_snapshot(&id, &row).inspect_err(|_| {
            let _ = std::fs::remove_file(self.snapshot_file(&id, &p.snapshot_name));
        })?;
        Ok(snapshot_info(&id, row))
    }

    /// The workspace's snapshots: baseline first, then newest first. Not
    /// activity; works in any state.
    pub fn snapshot_list(
        &self,
        p: WorkspaceRef,
        _progress: &mut dyn Progress,
    ) -> Result<SnapshotList, Error> {
        let r = self.store()?.resolve(&p.workspace_id)?;
        let mut rows = self.store()?.snapshots(&r.workspace_id)?;
        if !rows.iter().any(|s| s.kind == StoreKind::Baseline) {
            // Created before snapshots existed: its baseline is empty.
            rows.insert(0, empty_baseline(r.created_at));
        }
        let snapshots: Vec<SnapshotInfo> = rows
            .into_iter()
            .map(|s| snapshot_info(&r.workspace_id, s))
            .collect();
        Ok(SnapshotList {
            workspace_id: r.workspace_id,
            count: snapshots.len(),
            snapshots,
        })
    }

    /// Deletes a named snapshot. Counts as activity.
    pub fn snapshot_delete(
        &self,
        p: SnapshotParams,
        _progress: &mut dyn Progress,
    ) -> Result<SnapshotDeleted, Error> {
        let (_lock, r) = self.lock_and_reread(&p.workspace_id)?;
        let id = r.workspace_id.clone();
        self.store()?
            .delete_snapshot(&id, &p.snapshot_name, crate::now())?;
        let _ = std::fs::remove_file(self.snapshot_file(&id, &p.snapshot_name));
        Ok(SnapshotDeleted {
            workspace_id: id,
            snapshot_name: p.snapshot_name,
            deleted: true,
        })
    }

    /// Replaces the workspace's guest with a fresh one whose /workspace is
    /// restored from a snapshot (the baseline by default). Works in any
    /// state; the history is erased and `reset_count` grows.
    pub fn workspace_reset(
        &self,
        p: WorkspaceResetParams,
        progress: &mut dyn Progress,
    ) -> Result<WorkspaceResetResult, Error> {
        self.stop_idle()?;
        let store = self.store()?;
        let (_lock, r) = self.lock_and_reread(&p.workspace_id)?;
        let id = r.workspace_id.clone();
        if matches!(r.state, WorkspaceState::Failed | WorkspaceState::Creating) {
            return Err(Error::InvalidState {
                message: format!("workspace {id} failed to be created and cannot be reset"),
                hint: Some(crate::Hint::DeleteWorkspace {
                    workspace: p.workspace_id.clone(),
                }),
            });
        }
        let snap = match store.snapshot(&id, &p.snapshot) {
            Ok(s) => s,
            Err(_) if p.snapshot == BASELINE => empty_baseline(r.created_at),
            Err(e) => return Err(e.into()),
        };
        let tar_path = self.snapshot_file(&id, &snap.name);
        let env = self.ready_env(&r.environment)?;
        let choice = self.choose_accel(&env)?;
        // INVARIANT: the record says "stopped, owned by this process" before
        // the old guest is killed or its disk moved, so a reset killed at
        // any point is settled by putting the old disk back.
        let old_vm = Runtime::of(&r).vm;
        self.end_services(&id, old_vm.as_ref(), "workspace_reset");
        store.set_state(
            &id,
            WorkspaceState::Stopped,
            None,
            Some(
                Runtime {
                    vm: old_vm.clone(),
                    ..Runtime::owned_by_me()
                }
                .value(),
            ),
            None,
        )?;
        if let Some(vm) = old_vm {
            progress.event(Event::Phase {
                phase: Phase::Stop,
                id: &id,
                environment: &r.environment,
            });
            // Flushed, not killed: the old disk must be whole if it has to
            // come back.
            self.backend().stop(&vm);
        }
        // The old disk waits aside until the new guest is up.
        let disk = pyro_vmm::vm::VmFiles::new(&self.workspace_dir(&id)).disk;
        let aside = aside_disk(&disk);
        if disk.exists() {
            std::fs::rename(&disk, &aside)
                .map_err(Error::io("setting the old disk aside".to_string()))?;
        }
        let cleanup = {
            let (id, state_dir) = (id.clone(), self.config().state_dir.clone());
            let (disk, aside) = (disk.clone(), aside.clone());
            interrupt::on_interrupt(move || {
                super::lifecycle::kill_guests_of(&state_dir.join("workspaces").join(&id));
                if aside.exists() {
                    let _ = std::fs::rename(&aside, &disk);
                }
                if let Ok(store) = pyro_store::Store::open(&state_dir.join("pyro.db")) {
                    let _ = store.set_state(
                        &id,
                        WorkspaceState::Stopped,
                        Some("reset was interrupted; the disk from before it is kept".into()),
                        Some(Runtime::empty()),
                        None,
                    );
                }
                format!("the reset of workspace {id} was undone; it is stopped")
            })
        };
        let mut restored = (0, 0);
        let booted = self.boot_workspace(
            super::lifecycle::WorkspaceBoot {
                id: &id,
                environment: &r.environment,
                env: &env,
                accel: choice,
                vcpus: r.vcpu_count,
                mem_mib: r.mem_mib,
                network: super::info(&r).network_policy,
                disk: DiskMode::Create,
                image: None,
                state_while_booting: WorkspaceState::Stopped,
                state_on_failure: WorkspaceState::Stopped,
            },
            progress,
            &mut |vm, progress| {
                progress.event(Event::Phase {
                    phase: Phase::Seed,
                    id: &id,
                    environment: &r.environment,
                });
                let mut write = |w: &mut dyn Write| match std::fs::File::open(&tar_path) {
                    Ok(mut f) => std::io::copy(&mut f, w).map(drop),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => w.write_all(&EMPTY_TAR),
                    Err(e) => Err(e),
                };
                // The snapshot is the guest's own /workspace: its links
                // (a venv's absolute ones included) come back as they were.
                restored = vm.extract_with(defaults::WORKSPACE_PATH, true, &mut write)?;
                Ok(())
            },
        );
        drop(cleanup);
        match booted {
            Ok(_) => {
                let _ = std::fs::remove_file(&aside);
                store.record_reset(&id, crate::now())?;
            }
            Err(e) => {
                if aside.exists() {
                    let _ = std::fs::rename(&aside, &disk);
                }
                return Err(e);
            }
        }
        let workspace = info(&store.resolve(&id)?);
        Ok(WorkspaceResetResult {
            workspace,
            workspace_reset: WorkspaceReset {
                snapshot_name: snap.name,
                kind: kind(snap.kind),
                destination: defaults::WORKSPACE_PATH.into(),
                entry_count: restored.0,
                bytes_written: restored.1,
            },
        })
    }
}

/// Where a reset keeps the disk from before it until the new guest is up.
/// Only an unfinished reset leaves it (see `settle`).
pub(crate) fn aside_disk(disk: &std::path::Path) -> PathBuf {
    disk.with_extension("qcow2.pre-reset")
}

fn empty_baseline(created_at: f64) -> SnapshotRow {
    SnapshotRow {
        name: BASELINE.into(),
        kind: StoreKind::Baseline,
        created_at,
        entry_count: 0,
        bytes_written: 0,
    }
}

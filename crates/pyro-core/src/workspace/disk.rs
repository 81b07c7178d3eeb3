//! A stopped workspace's disk, read on the host without booting it: list,
//! read and export as a raw ext4 image. The workspace's lock is held
//! throughout, so nothing starts the guest (and writes the disk) while it
//! is read.

use pyro_disk::{Disk, DiskError, EntryKind};
use pyro_store::{WorkspaceRecord, WorkspaceState};

use super::files::{check_max_bytes, guest_path, host_path, refuse_existing};
use crate::api::{
    ArtifactType, FileEntry, WorkspaceDiskExport, WorkspaceDiskExportParams, WorkspaceFileList,
    WorkspaceFileListParams, WorkspaceFileRead, WorkspaceFileReadParams,
};
use crate::progress::{Event, Progress};
use crate::{Error, Hint, Manager};

const MODE: &str = "host_disk";

fn artifact(k: EntryKind) -> ArtifactType {
    match k {
        EntryKind::File => ArtifactType::File,
        EntryKind::Directory => ArtifactType::Directory,
        EntryKind::Symlink => ArtifactType::Symlink,
        EntryKind::Other => ArtifactType::Other,
    }
}

fn disk_error(e: DiskError) -> Error {
    match e {
        DiskError::NotFound(_) => Error::PathNotFound(e.to_string()),
        DiskError::Io { context, source } => Error::Io { context, source },
        _ => Error::InvalidArgument(e.to_string()),
    }
}

impl Manager {
    /// Runs `f` on the disk of a stopped workspace, under its lock.
    fn with_disk<T>(
        &self,
        asked_as: &str,
        op: &str,
        f: impl FnOnce(&WorkspaceRecord, &std::path::Path) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let (_lock, r) = self.lock_and_reread(asked_as)?;
        match r.state {
            WorkspaceState::Stopped => {}
            WorkspaceState::Started => {
                return Err(Error::InvalidState {
                    message: format!(
                        "workspace {} is started; {op} reads the disk of a stopped workspace",
                        r.workspace_id
                    ),
                    hint: Some(Hint::StopWorkspace {
                        workspace: asked_as.to_string(),
                    }),
                })
            }
            state => {
                return Err(Error::InvalidState {
                    message: format!(
                        "workspace {} is {}; {op} needs a stopped workspace",
                        r.workspace_id,
                        state.as_str()
                    ),
                    hint: None,
                })
            }
        }
        let disk = pyro_vmm::vm::VmFiles::new(&self.workspace_dir(&r.workspace_id)).disk;
        if !disk.is_file() {
            return Err(Error::InvalidState {
                message: format!("workspace {} has no disk", r.workspace_id),
                hint: None,
            });
        }
        f(&r, &disk)
    }

    /// Lists a path on a stopped workspace's disk. Not activity.
    pub fn workspace_disk_list(
        &self,
        p: WorkspaceFileListParams,
        _progress: &mut dyn Progress,
    ) -> Result<WorkspaceFileList, Error> {
        let path = guest_path(&p.path)?;
        self.with_disk(&p.workspace_id, "disk list", |r, disk| {
            let d = Disk::open(disk).map_err(disk_error)?;
            let entries = d.list(&path, p.recursive).map_err(disk_error)?;
            Ok(WorkspaceFileList {
                workspace_id: r.workspace_id.clone(),
                path: path.clone(),
                recursive: p.recursive,
                entries: entries
                    .into_iter()
                    .map(|e| FileEntry {
                        path: e.path,
                        artifact_type: artifact(e.kind),
                        size_bytes: if e.kind == EntryKind::Directory {
                            0
                        } else {
                            e.size_bytes
                        },
                        link_target: e.link_target,
                        mode: e.mode & 0o7777,
                    })
                    .collect(),
                execution_mode: MODE.into(),
            })
        })
    }

    /// Reads (part of) a file on a stopped workspace's disk. Not activity.
    pub fn workspace_disk_read(
        &self,
        p: WorkspaceFileReadParams,
        _progress: &mut dyn Progress,
    ) -> Result<WorkspaceFileRead, Error> {
        check_max_bytes(p.max_bytes)?;
        let path = guest_path(&p.path)?;
        self.with_disk(&p.workspace_id, "disk read", |r, disk| {
            let d = Disk::open(disk).map_err(disk_error)?;
            let read = d.read(&path, p.max_bytes).map_err(disk_error)?;
            self.read_result(
                r,
                path.clone(),
                read.size_bytes,
                &read.content,
                read.truncated,
                p.max_bytes,
                MODE,
            )
        })
    }

    /// Writes a stopped workspace's disk as a standalone raw ext4 image.
    /// Not activity.
    pub fn workspace_disk_export(
        &self,
        p: WorkspaceDiskExportParams,
        progress: &mut dyn Progress,
    ) -> Result<WorkspaceDiskExport, Error> {
        let output = host_path(&p.output_path)?;
        refuse_existing(&output)?;
        self.with_disk(&p.workspace_id, "disk export", |r, disk| {
            let d = Disk::open(disk).map_err(disk_error)?;
            if let Some(parent) = output.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(Error::io(format!("creating {}", parent.display())))?;
            }
            progress.event(Event::Notice(&format!(
                "writing the disk of workspace {} to {}",
                r.workspace_id,
                output.display()
            )));
            let _on_interrupt = {
                let output = output.clone();
                crate::interrupt::on_interrupt(move || {
                    let _ = std::fs::remove_file(&output);
                    "the disk export was stopped; the partial image was removed".into()
                })
            };
            let bytes = d.export_raw(&output).map_err(|e| match e {
                DiskError::Io { ref source, .. }
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    Error::Conflict(format!(
                        "output_path already exists: {}; choose a path that does not exist",
                        output.display()
                    ))
                }
                e => disk_error(e),
            })?;
            Ok(WorkspaceDiskExport {
                workspace_id: r.workspace_id.clone(),
                output_path: output.clone(),
                disk_format: "ext4".into(),
                bytes_written: bytes,
            })
        })
    }
}

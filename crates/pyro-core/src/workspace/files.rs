//! A started workspace's files: sync push, list, read, write, patch and
//! export. Paths are resolved here once ([`guest_path`]) and checked again
//! by the agent; transfers stream both ways.

use std::io::Read;
use std::path::{Path, PathBuf};

use pyro_archive::Seed;
use pyro_proto::{paths, FileKind};
use pyro_store::WorkspaceRecord;
use pyro_vmm::VmHandle;

use super::exec::require_started;
use crate::api::{
    ArtifactType, ChangeStatus, ContentEncoding, FileEntry, PatchEntry, PatchSummary,
    WorkspaceExport, WorkspaceExportParams, WorkspaceFileList, WorkspaceFileListParams,
    WorkspaceFileRead, WorkspaceFileReadParams, WorkspaceFileWrite, WorkspaceFileWriteParams,
    WorkspacePatchApplyParams, WorkspacePatchResult, WorkspaceSync, WorkspaceSyncPushParams,
    WorkspaceSyncResult, MAX_FILE_BYTES,
};
use crate::progress::{Event, Progress};
use crate::{Error, Manager};

/// Mode of a file `file write` creates.
const NEW_FILE_MODE: u32 = 0o644;

/// The absolute guest path for what a user typed: relative to /workspace,
/// or absolute under it; never climbing.
pub(crate) fn guest_path(input: &str) -> Result<String, Error> {
    paths::resolve(input).map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// [`guest_path`] for something that must be a file, not /workspace.
fn guest_file(input: &str) -> Result<String, Error> {
    let path = guest_path(input)?;
    if path == paths::WORKSPACE_ROOT {
        return Err(Error::InvalidArgument(
            "/workspace itself is a directory; name a file inside it".into(),
        ));
    }
    Ok(path)
}

/// A host path made absolute against the working directory.
pub(crate) fn host_path(p: &Path) -> Result<PathBuf, Error> {
    if p.as_os_str().is_empty() {
        return Err(Error::InvalidArgument("the host path is empty".into()));
    }
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(Error::io("reading the working directory"))?
            .join(p)
    };
    // `./x` and `a/./b` are shown without the dots; `..` stays (it may
    // cross a symlink, so it is not resolved by hand).
    Ok(joined
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect())
}

pub(crate) fn artifact(kind: FileKind) -> ArtifactType {
    match kind {
        FileKind::File => ArtifactType::File,
        FileKind::Directory => ArtifactType::Directory,
        FileKind::Symlink => ArtifactType::Symlink,
        FileKind::Other => ArtifactType::Other,
    }
}

/// Text is valid UTF-8 without NUL bytes. A read cut short may end inside
/// a character: that tail is dropped rather than calling the file binary.
pub(crate) fn encode_content(mut bytes: Vec<u8>, truncated: bool) -> (String, ContentEncoding) {
    if !bytes.contains(&0) {
        match std::str::from_utf8(&bytes) {
            Ok(_) => {
                return (
                    String::from_utf8(bytes).unwrap_or_default(),
                    ContentEncoding::Utf8,
                )
            }
            Err(e) if truncated && e.error_len().is_none() => {
                bytes.truncate(e.valid_up_to());
                return (
                    String::from_utf8(bytes).unwrap_or_default(),
                    ContentEncoding::Utf8,
                );
            }
            Err(_) => {}
        }
    }
    (base64(&bytes), ContentEncoding::Base64)
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn check_max_bytes(max_bytes: u64) -> Result<(), Error> {
    if max_bytes == 0 || max_bytes > MAX_FILE_BYTES {
        return Err(Error::InvalidArgument(format!(
            "max_bytes must be between 1 and {MAX_FILE_BYTES}, got {max_bytes}"
        )));
    }
    Ok(())
}

impl Manager {
    /// The record and guest of a started workspace.
    pub(crate) fn started(
        &self,
        asked_as: &str,
        op: &str,
    ) -> Result<(WorkspaceRecord, VmHandle), Error> {
        self.stop_idle()?;
        let r = self.load(asked_as)?;
        let vm = require_started(&r, asked_as, op)?;
        Ok((r, vm))
    }

    /// Runs a guest call, explaining a failure in terms of the workspace.
    pub(crate) fn on_guest<T>(
        &self,
        r: &WorkspaceRecord,
        asked_as: &str,
        vm: &VmHandle,
        call: impl FnOnce(&VmHandle) -> Result<T, Error>,
    ) -> Result<T, Error> {
        call(vm).map_err(|e| self.explain_failure(r, asked_as, vm, e))
    }

    /// Copies a host directory or archive into the workspace (nothing is
    /// deleted; files are overwritten).
    pub fn workspace_sync_push(
        &self,
        p: WorkspaceSyncPushParams,
        progress: &mut dyn Progress,
    ) -> Result<WorkspaceSyncResult, Error> {
        let dest = guest_path(&p.dest)?;
        let source = host_path(&p.source_path)?;
        let seed = Seed::open(&source)?;
        let stats = seed.check()?;
        let (r, vm) = self.started(&p.workspace_id, "sync push")?;
        progress.event(Event::Notice(&format!(
            "copying {} {} ({} bytes) into {dest}",
            stats.entry_count,
            if stats.entry_count == 1 {
                "entry"
            } else {
                "entries"
            },
            stats.bytes
        )));
        let (entry_count, bytes_written) = self.on_guest(&r, &p.workspace_id, &vm, |vm| {
            let mut write =
                |w: &mut dyn std::io::Write| seed.write_tar(w).map_err(std::io::Error::other);
            Ok(vm.extract(&dest, &mut write)?)
        })?;
        self.store()?.touch(&r.workspace_id, crate::now())?;
        Ok(WorkspaceSyncResult {
            workspace_id: r.workspace_id,
            execution_mode: "guest_vsock".into(),
            workspace_sync: WorkspaceSync {
                mode: seed.mode().into(),
                source_path: source,
                destination: dest,
                entry_count,
                bytes_written,
            },
        })
    }

    /// Lists a path in a started workspace. Not activity.
    pub fn workspace_file_list(
        &self,
        p: WorkspaceFileListParams,
        _progress: &mut dyn Progress,
    ) -> Result<WorkspaceFileList, Error> {
        let path = guest_path(&p.path)?;
        let (r, vm) = self.started(&p.workspace_id, "file list")?;
        let entries = self.on_guest(&r, &p.workspace_id, &vm, |vm| {
            Ok(vm.list_files(&path, p.recursive)?)
        })?;
        Ok(WorkspaceFileList {
            workspace_id: r.workspace_id,
            path,
            recursive: p.recursive,
            entries: entries
                .into_iter()
                .map(|e| FileEntry {
                    path: e.path,
                    artifact_type: artifact(e.kind),
                    size_bytes: e.size_bytes,
                    link_target: e.link_target,
                    mode: e.mode,
                })
                .collect(),
            execution_mode: "guest_vsock".into(),
        })
    }

    /// Reads (part of) a file in a started workspace. Not activity.
    pub fn workspace_file_read(
        &self,
        p: WorkspaceFileReadParams,
        _progress: &mut dyn Progress,
    ) -> Result<WorkspaceFileRead, Error> {
        check_max_bytes(p.max_bytes)?;
        let path = guest_file(&p.path)?;
        let (r, vm) = self.started(&p.workspace_id, "file read")?;
        let (size, bytes) = self.on_guest(&r, &p.workspace_id, &vm, |vm| {
            Ok(vm.read_file(&path, p.max_bytes)?)
        })?;
        let truncated = size > bytes.len() as u64;
        self.read_result(
            &r,
            path,
            size,
            &bytes,
            truncated,
            p.max_bytes,
            "guest_vsock",
        )
    }

    /// The public result of a read of `path` in `r` (running guest or
    /// stopped disk): secret values redacted, text as is or base64.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn read_result(
        &self,
        r: &WorkspaceRecord,
        path: String,
        size_bytes: u64,
        bytes: &[u8],
        truncated: bool,
        max_bytes: u64,
        execution_mode: &str,
    ) -> Result<WorkspaceFileRead, Error> {
        let bytes = self.redactor(r)?.redact(bytes);
        let (content, encoding) = encode_content(bytes, truncated);
        Ok(WorkspaceFileRead {
            workspace_id: r.workspace_id.clone(),
            path,
            size_bytes,
            max_bytes,
            content,
            binary: encoding == ContentEncoding::Base64,
            encoding,
            truncated,
            execution_mode: execution_mode.into(),
        })
    }

    /// Replaces (or creates) a file atomically, keeping its mode.
    pub fn workspace_file_write(
        &self,
        p: WorkspaceFileWriteParams,
        _progress: &mut dyn Progress,
    ) -> Result<WorkspaceFileWrite, Error> {
        let path = guest_file(&p.path)?;
        if p.text.len() as u64 > MAX_FILE_BYTES {
            return Err(Error::InvalidArgument(format!(
                "text is {} bytes; file write takes at most {MAX_FILE_BYTES} (1 MiB)",
                p.text.len()
            )));
        }
        let (r, vm) = self.started(&p.workspace_id, "file write")?;
        let (bytes_written, mode) = self.on_guest(&r, &p.workspace_id, &vm, |vm| {
            Ok(vm.write_file(&path, &mut p.text.as_bytes(), NEW_FILE_MODE)?)
        })?;
        self.store()?.touch(&r.workspace_id, crate::now())?;
        Ok(WorkspaceFileWrite {
            workspace_id: r.workspace_id,
            path,
            size_bytes: bytes_written,
            bytes_written,
            mode,
            execution_mode: "guest_vsock".into(),
        })
    }

    /// Applies a unified diff under /workspace, all or nothing.
    pub fn workspace_patch_apply(
        &self,
        p: WorkspacePatchApplyParams,
        _progress: &mut dyn Progress,
    ) -> Result<WorkspacePatchResult, Error> {
        if p.patch.trim().is_empty() {
            return Err(Error::InvalidArgument("patch must not be empty".into()));
        }
        if p.patch.len() > pyro_patch::MAX_PATCH_BYTES {
            return Err(Error::InvalidArgument(format!(
                "patch is {} bytes; at most {} (1 MiB) are accepted",
                p.patch.len(),
                pyro_patch::MAX_PATCH_BYTES
            )));
        }
        // Parsed here too, so a malformed patch fails before any guest
        // call, with the same message the agent would give.
        pyro_patch::parse(&p.patch).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let (r, vm) = self.started(&p.workspace_id, "patch apply")?;
        let files = self.on_guest(&r, &p.workspace_id, &vm, |vm| {
            Ok(vm.apply_patch(paths::WORKSPACE_ROOT, &p.patch)?)
        })?;
        self.store()?.touch(&r.workspace_id, crate::now())?;
        let mut summary = PatchSummary::default();
        let entries: Vec<PatchEntry> = files
            .into_iter()
            .map(|f| {
                let status = match f.status {
                    pyro_proto::PatchStatus::Added => ChangeStatus::Added,
                    pyro_proto::PatchStatus::Modified => ChangeStatus::Modified,
                    pyro_proto::PatchStatus::Deleted => ChangeStatus::Deleted,
                };
                summary.total += 1;
                match status {
                    ChangeStatus::Added => summary.added += 1,
                    ChangeStatus::Deleted => summary.deleted += 1,
                    _ => summary.modified += 1,
                }
                PatchEntry {
                    path: f.path,
                    status,
                }
            })
            .collect();
        Ok(WorkspacePatchResult {
            workspace_id: r.workspace_id,
            changed: !entries.is_empty(),
            summary,
            entries,
            patch: p.patch,
            execution_mode: "guest_vsock".into(),
        })
    }

    /// Copies a file or directory out of the workspace to a new host path.
    /// Not activity.
    pub fn workspace_export(
        &self,
        p: WorkspaceExportParams,
        progress: &mut dyn Progress,
    ) -> Result<WorkspaceExport, Error> {
        let path = guest_path(&p.path)?;
        let output = host_path(&p.output_path)?;
        refuse_existing(&output)?;
        let (r, vm) = self.started(&p.workspace_id, "export")?;
        progress.event(Event::Notice(&format!(
            "exporting {path} to {}",
            output.display()
        )));
        let staging = Staging::new(&output)?;
        let ((kind, stats), _) = self.on_guest(&r, &p.workspace_id, &vm, |vm| {
            vm.archive(&path, |kind, reader: &mut dyn Read| {
                if kind == FileKind::Other {
                    return Err(Error::InvalidArgument(format!(
                        "{path} is a special file and cannot be exported"
                    )));
                }
                let stats = pyro_archive::unpack(reader, &staging.dir)?;
                Ok::<_, Error>((kind, stats))
            })
        })?;
        let from = match kind {
            FileKind::Directory => staging.dir.clone(),
            _ => {
                let name = path.rsplit('/').next().unwrap_or_default();
                staging.dir.join(name)
            }
        };
        if kind == FileKind::Directory {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o755));
        }
        rename_no_replace(&from, &output)?;
        drop(staging);
        Ok(WorkspaceExport {
            workspace_id: r.workspace_id,
            workspace_path: path,
            output_path: output,
            artifact_type: artifact(kind),
            entry_count: stats.entry_count,
            bytes_written: stats.bytes,
            execution_mode: "guest_vsock".into(),
        })
    }
}

/// Refuses an output path that exists (even as a dangling symlink).
pub(crate) fn refuse_existing(output: &Path) -> Result<(), Error> {
    if output.symlink_metadata().is_ok() {
        return Err(Error::Conflict(format!(
            "output_path already exists: {}; choose a path that does not exist",
            output.display()
        )));
    }
    Ok(())
}

/// A private directory beside the output where an export is unpacked, so
/// a failed export leaves nothing at the output path. Removed on drop.
struct Staging {
    dir: PathBuf,
    _interrupted: crate::interrupt::Guard,
}

impl Staging {
    fn new(output: &Path) -> Result<Staging, Error> {
        let parent = output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("/"));
        std::fs::create_dir_all(parent)
            .map_err(Error::io(format!("creating {}", parent.display())))?;
        let name = output
            .file_name()
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "output_path {} does not name a file",
                    output.display()
                ))
            })?
            .to_string_lossy()
            .into_owned();
        let dir = parent.join(format!(".{name}.pyro-export-{}", crate::ids::new_id()));
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(Error::io(format!("creating {}", dir.display())))?;
        let on_interrupt = {
            let dir = dir.clone();
            crate::interrupt::on_interrupt(move || {
                let _ = std::fs::remove_dir_all(&dir);
                "the export was stopped; nothing was written at the output path".into()
            })
        };
        Ok(Staging {
            dir,
            _interrupted: on_interrupt,
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Moves `from` to `to`, failing if `to` appeared meanwhile (never
/// replacing what someone else created).
pub(crate) fn rename_no_replace(from: &Path, to: &Path) -> Result<(), Error> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap_or_default();
    let (f, t) = (c(from), c(to));
    // SAFETY: two NUL-terminated paths; AT_FDCWD.
    let ret = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EEXIST) {
        return Err(Error::Conflict(format!(
            "output_path already exists: {}; choose a path that does not exist",
            to.display()
        )));
    }
    Err(Error::io(format!("moving the export to {}", to.display()))(
        e,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0, 255, 1]), "AP8B");
    }

    #[test]
    fn base64_round_trips_through_the_result() {
        for data in [&b""[..], b"a", b"ab", b"abc", b"\0\xff\x10binary\x80"] {
            let (content, encoding) = encode_content(data.to_vec(), false);
            let r = crate::api::WorkspaceFileRead {
                workspace_id: String::new(),
                path: String::new(),
                size_bytes: 0,
                max_bytes: 1,
                content,
                binary: false,
                encoding,
                truncated: false,
                execution_mode: String::new(),
            };
            assert_eq!(r.bytes(), data);
        }
    }

    #[test]
    fn content_is_text_or_base64() {
        assert_eq!(
            encode_content(b"hi\n".to_vec(), false),
            ("hi\n".into(), ContentEncoding::Utf8)
        );
        assert_eq!(
            encode_content(b"a\0b".to_vec(), false).1,
            ContentEncoding::Base64
        );
        assert_eq!(
            encode_content(vec![0xff, 0xfe], false).1,
            ContentEncoding::Base64
        );
        // "é" cut in half by a limit is still text.
        let cut = "aé".as_bytes()[..2].to_vec();
        assert_eq!(
            encode_content(cut.clone(), true),
            ("a".into(), ContentEncoding::Utf8)
        );
        assert_eq!(encode_content(cut, false).1, ContentEncoding::Base64);
    }

    #[test]
    fn paths_stay_inside() {
        assert_eq!(guest_path("a/b").unwrap(), "/workspace/a/b");
        assert!(guest_path("../x").is_err());
        assert!(guest_file("/workspace").is_err());
        assert!(guest_file(".").is_err());
    }
}

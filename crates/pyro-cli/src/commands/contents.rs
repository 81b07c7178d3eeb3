//! `pyro workspace sync|file|patch|diff|export|snapshot|reset|disk`:
//! flags → params, call the Manager, render.

use std::path::{Path, PathBuf};

use pyro_core::api::{
    SnapshotParams, WorkspaceDiskExportParams, WorkspaceExportParams, WorkspaceFileListParams,
    WorkspaceFileRead, WorkspaceFileReadParams, WorkspaceFileWriteParams,
    WorkspacePatchApplyParams, WorkspaceRef, WorkspaceResetParams, WorkspaceSyncPushParams,
};
use pyro_core::{Error, Manager, Quiet};

use crate::args::{
    DiskExportArgs, ExportArgs, FileListArgs, FileReadArgs, FileWriteArgs, IdArgs, PatchApplyArgs,
    ResetArgs, SnapshotCommand, SyncPushArgs,
};
use crate::commands::finish;
use crate::commands::workspace::summary;
use crate::exit::Exit;
use crate::printer::{write_err, write_out, yes_no, CliProgress, Printer};

/// `~` at the start of a host path means the home directory.
fn expand_home(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => p.to_path_buf(),
    }
}

/// Reads a `--text-file` / `--patch-file` argument: an existing UTF-8
/// file.
fn read_text_arg(flag: &str, path: &Path) -> Result<String, Error> {
    let path = expand_home(path);
    match std::fs::metadata(&path) {
        Err(_) => {
            return Err(Error::InvalidArgument(format!(
                "{flag} file not found: {}",
                path.display()
            )))
        }
        Ok(m) if m.is_dir() => {
            return Err(Error::InvalidArgument(format!(
                "{flag} must point to a file, not a directory: {}",
                path.display()
            )))
        }
        Ok(_) => {}
    }
    let bytes = std::fs::read(&path).map_err(|e| {
        Error::InvalidArgument(format!("{flag} cannot be read: {}: {e}", path.display()))
    })?;
    String::from_utf8(bytes).map_err(|_| {
        Error::InvalidArgument(format!(
            "{flag} must contain UTF-8 text: {}",
            path.display()
        ))
    })
}

fn fail(printer: Printer, e: Error) -> Exit {
    printer.error(&e);
    Exit::from(&e)
}

pub fn sync_push(m: &Manager, a: &SyncPushArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    let params = WorkspaceSyncPushParams {
        workspace_id: a.workspace.clone(),
        source_path: expand_home(&a.source),
        dest: a.dest.clone(),
    };
    let mut progress = CliProgress::new("workspace-sync", a.output.json);
    finish(printer, m.workspace_sync_push(params, &mut progress), |r| {
        let s = &r.workspace_sync;
        printer.line(&format!(
            "[workspace-sync] workspace_id={} mode={} source={} destination={} entry_count={} bytes_written={} execution_mode={}",
            r.workspace_id,
            s.mode,
            s.source_path.display(),
            s.destination,
            s.entry_count,
            s.bytes_written,
            r.execution_mode
        ));
        Exit::Success
    })
}

pub fn file_list(m: &Manager, a: &FileListArgs, disk: bool) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    let params = WorkspaceFileListParams {
        workspace_id: a.workspace.clone(),
        path: a.path.clone(),
        recursive: a.recursive,
    };
    let result = if disk {
        m.workspace_disk_list(params, &mut Quiet)
    } else {
        m.workspace_file_list(params, &mut Quiet)
    };
    finish(printer, result, |l| {
        let what = if disk {
            "Workspace disk path"
        } else {
            "Workspace path"
        };
        printer.line(&format!(
            "{what}: {} (recursive={})",
            l.path,
            yes_no(l.recursive)
        ));
        if l.entries.is_empty() {
            printer.line(if disk {
                "No workspace disk entries found."
            } else {
                "No workspace entries found."
            });
        }
        for e in &l.entries {
            let kind = serde_json::to_value(e.artifact_type)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            let mut line = format!("{} [{kind}] size={}", e.path, e.size_bytes);
            if let Some(t) = &e.link_target {
                line.push_str(&format!(" -> {t}"));
            }
            printer.line(&line);
        }
        Exit::Success
    })
}

pub fn file_read(m: &Manager, a: &FileReadArgs, disk: bool) -> Exit {
    let printer = Printer { json: a.json };
    let params = WorkspaceFileReadParams {
        workspace_id: a.workspace.clone(),
        path: a.path.clone(),
        max_bytes: a.max_bytes,
    };
    let result = if disk {
        m.workspace_disk_read(params, &mut Quiet)
    } else {
        m.workspace_file_read(params, &mut Quiet)
    };
    finish(printer, result, |r: &WorkspaceFileRead| {
        let bytes = r.bytes();
        if a.content_only {
            write_out(&bytes);
            return Exit::Success;
        }
        if r.binary {
            write_err(
                format!(
                    "{} is not text ({} bytes read); use --content-only for the raw bytes or --json for base64\n",
                    r.path,
                    bytes.len()
                )
                .as_bytes(),
            );
        } else if !bytes.is_empty() {
            write_out(&bytes);
            if !bytes.ends_with(b"\n") {
                write_out(b"\n");
            }
        }
        let tag = if disk {
            "workspace-disk-read"
        } else {
            "workspace-file-read"
        };
        write_err(
            format!(
                "[{tag}] workspace_id={} path={} size_bytes={} truncated={} binary={}\n",
                r.workspace_id,
                r.path,
                r.size_bytes,
                yes_no(r.truncated),
                yes_no(r.binary)
            )
            .as_bytes(),
        );
        Exit::Success
    })
}

pub fn file_write(m: &Manager, a: &FileWriteArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    let text = match (&a.text, &a.text_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => match read_text_arg("--text-file", f) {
            Ok(t) => t,
            Err(e) => return fail(printer, e),
        },
        (None, None) => String::new(),
    };
    let params = WorkspaceFileWriteParams {
        workspace_id: a.workspace.clone(),
        path: a.path.clone(),
        text,
    };
    finish(printer, m.workspace_file_write(params, &mut Quiet), |r| {
        printer.line(&format!(
            "[workspace-file-write] workspace_id={} path={} bytes_written={} mode={:04o} execution_mode={}",
            r.workspace_id, r.path, r.bytes_written, r.mode, r.execution_mode
        ));
        Exit::Success
    })
}

pub fn patch_apply(m: &Manager, a: &PatchApplyArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    let patch = match (&a.patch, &a.patch_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => match read_text_arg("--patch-file", f) {
            Ok(t) => t,
            Err(e) => return fail(printer, e),
        },
        (None, None) => String::new(),
    };
    let params = WorkspacePatchApplyParams {
        workspace_id: a.workspace.clone(),
        patch,
    };
    finish(printer, m.workspace_patch_apply(params, &mut Quiet), |r| {
        printer.line(&format!(
            "[workspace-patch] workspace_id={} total={} added={} modified={} deleted={} execution_mode={}",
            r.workspace_id,
            r.summary.total,
            r.summary.added,
            r.summary.modified,
            r.summary.deleted,
            r.execution_mode
        ));
        Exit::Success
    })
}

pub fn diff(m: &Manager, a: &IdArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    finish(
        printer,
        m.workspace_diff(WorkspaceRef::new(&a.workspace), &mut Quiet),
        |d| {
            if !d.changed {
                printer.line("No workspace changes.");
                return Exit::Success;
            }
            let s = &d.summary;
            printer.line(&format!(
                "[workspace-diff] workspace_id={} total={} added={} modified={} deleted={} type_changed={} text_patched={} non_text={}",
                d.workspace_id,
                s.total,
                s.added,
                s.modified,
                s.deleted,
                s.type_changed,
                s.text_patched,
                s.non_text
            ));
            for e in d.entries.iter().filter(|e| e.text_patch.is_none()) {
                let status = serde_json::to_value(e.status)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                let kind = serde_json::to_value(e.artifact_type)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                printer.line(&format!("{status} {} [{kind}] (no text patch)", e.path));
            }
            write_out(d.patch.as_bytes());
            Exit::Success
        },
    )
}

pub fn export(m: &Manager, a: &ExportArgs) -> Exit {
    let printer = Printer { json: a.json.json };
    let params = WorkspaceExportParams {
        workspace_id: a.workspace.clone(),
        path: a.path.clone(),
        output_path: expand_home(&a.output),
    };
    let mut progress = CliProgress::new("workspace-export", a.json.json);
    finish(printer, m.workspace_export(params, &mut progress), |r| {
        let kind = serde_json::to_value(r.artifact_type)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        printer.line(&format!(
            "[workspace-export] workspace_id={} workspace_path={} output_path={} artifact_type={kind} entry_count={} bytes_written={} execution_mode={}",
            r.workspace_id,
            r.workspace_path,
            r.output_path.display(),
            r.entry_count,
            r.bytes_written,
            r.execution_mode
        ));
        Exit::Success
    })
}

fn kind_str(k: pyro_core::api::SnapshotKind) -> &'static str {
    match k {
        pyro_core::api::SnapshotKind::Baseline => "baseline",
        pyro_core::api::SnapshotKind::Named => "named",
    }
}

pub fn snapshot(m: &Manager, c: &SnapshotCommand) -> Exit {
    match c {
        SnapshotCommand::Create(a) => {
            let printer = Printer {
                json: a.output.json,
            };
            let params = SnapshotParams {
                workspace_id: a.workspace.clone(),
                snapshot_name: a.name.clone(),
            };
            let mut progress = CliProgress::new("workspace-snapshot-create", a.output.json);
            finish(printer, m.snapshot_create(params, &mut progress), |s| {
                printer.line(&format!(
                    "[workspace-snapshot-create] workspace_id={} snapshot_name={} kind={} entry_count={} bytes_written={}",
                    s.workspace_id,
                    s.snapshot_name,
                    kind_str(s.kind),
                    s.entry_count,
                    s.bytes_written
                ));
                Exit::Success
            })
        }
        SnapshotCommand::List(a) => {
            let printer = Printer {
                json: a.output.json,
            };
            finish(
                printer,
                m.snapshot_list(WorkspaceRef::new(&a.workspace), &mut Quiet),
                |l| {
                    for s in &l.snapshots {
                        printer.line(&format!(
                            "{} [{}] entry_count={} bytes_written={} deletable={}",
                            s.snapshot_name,
                            kind_str(s.kind),
                            s.entry_count,
                            s.bytes_written,
                            yes_no(s.deletable)
                        ));
                    }
                    Exit::Success
                },
            )
        }
        SnapshotCommand::Delete(a) => {
            let printer = Printer {
                json: a.output.json,
            };
            let params = SnapshotParams {
                workspace_id: a.workspace.clone(),
                snapshot_name: a.name.clone(),
            };
            finish(printer, m.snapshot_delete(params, &mut Quiet), |r| {
                printer.line(&format!("Deleted workspace snapshot: {}", r.snapshot_name));
                Exit::Success
            })
        }
    }
}

pub fn reset(m: &Manager, a: &ResetArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    let params = WorkspaceResetParams {
        workspace_id: a.workspace.clone(),
        snapshot: a.snapshot.clone(),
    };
    let mut progress = CliProgress::new("workspace-reset", a.output.json);
    finish(printer, m.workspace_reset(params, &mut progress), |r| {
        summary(printer, "Reset workspace ID", &r.workspace);
        let w = &r.workspace_reset;
        printer.line(&format!(
            "Reset source: {} ({})",
            w.snapshot_name,
            kind_str(w.kind)
        ));
        printer.line(&format!(
            "Reset restore: destination={} entry_count={} bytes_written={}",
            w.destination, w.entry_count, w.bytes_written
        ));
        Exit::Success
    })
}

pub fn disk_export(m: &Manager, a: &DiskExportArgs) -> Exit {
    let printer = Printer { json: a.json.json };
    let params = WorkspaceDiskExportParams {
        workspace_id: a.workspace.clone(),
        output_path: expand_home(&a.output),
    };
    let mut progress = CliProgress::new("workspace-disk-export", a.json.json);
    finish(
        printer,
        m.workspace_disk_export(params, &mut progress),
        |r| {
            printer.line(&format!(
            "[workspace-disk-export] workspace_id={} output_path={} disk_format={} bytes_written={}",
            r.workspace_id,
            r.output_path.display(),
            r.disk_format,
            r.bytes_written
        ));
            Exit::Success
        },
    )
}

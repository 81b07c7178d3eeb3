//! Applying a unified diff to the workspace, all or nothing.
//!
//! Every file's new content is computed and written to a staged file
//! beside it before anything is replaced; a hunk that does not apply, a
//! file that is not text or a path that is refused leaves every file as it
//! was. Only after all are staged are they renamed into place and deleted
//! files removed.

use std::io::Read;

use pyro_patch::Change;
use pyro_proto::{paths, PatchStatus, PatchedFile, RemoteError};

use crate::files::{self, bad};

/// Largest file a patch may read or produce.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Applies the patch text `patch` under the workspace root (`root` must be
/// `/workspace`: patch paths are relative to it).
pub fn apply(root: &str, patch: &mut dyn Read) -> Result<Vec<PatchedFile>, RemoteError> {
    if root != paths::WORKSPACE_ROOT {
        return Err(bad(format!(
            "patches apply under {}, not {root}",
            paths::WORKSPACE_ROOT
        )));
    }
    let mut text = Vec::new();
    patch
        .take(pyro_patch::MAX_PATCH_BYTES as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|e| bad(format!("reading the patch: {e}")))?;
    if text.len() > pyro_patch::MAX_PATCH_BYTES {
        return Err(bad(format!(
            "the patch is larger than {} bytes",
            pyro_patch::MAX_PATCH_BYTES
        )));
    }
    let text = String::from_utf8(text).map_err(|_| bad("the patch is not UTF-8 text"))?;
    let parsed = pyro_patch::parse(&text).map_err(|e| bad(e.to_string()))?;

    // First every file's new content, so a hunk that does not apply
    // changes nothing (not even a parent directory).
    let mut planned = Vec::new();
    let mut report = Vec::new();
    for fp in &parsed {
        let path = paths::resolve(fp.path()).map_err(|e| bad(format!("{}: {e}", fp.path())))?;
        if paths::relative(&path) == Some("") {
            return Err(bad("a patch cannot replace /workspace itself"));
        }
        let t = files::target(&path)?;
        let current = match files::existing(&t)? {
            Some(_) => {
                let (file, size) = files::open_for_read(&path)?;
                if size > MAX_FILE_BYTES {
                    return Err(bad(format!(
                        "{path} is larger than {MAX_FILE_BYTES} bytes; patches change files up to 1 MiB"
                    )));
                }
                let mut buf = Vec::with_capacity(size as usize);
                file.take(MAX_FILE_BYTES + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| bad(format!("reading {path}: {e}")))?;
                Some(buf)
            }
            None => None,
        };
        let new = fp
            .apply(current.as_deref())
            .map_err(|e| bad(e.to_string()))?;
        if let Some(content) = &new {
            if content.len() as u64 > MAX_FILE_BYTES {
                return Err(bad(format!(
                    "{path} would be larger than {MAX_FILE_BYTES} bytes after the patch"
                )));
            }
        }
        let status = match fp.change() {
            Change::Add => PatchStatus::Added,
            Change::Modify => PatchStatus::Modified,
            Change::Delete => PatchStatus::Deleted,
        };
        planned.push((t, new));
        report.push(PatchedFile { path, status });
    }
    let mut staged = Vec::new();
    let mut deletes = Vec::new();
    for (t, new) in planned {
        match new {
            Some(content) => staged.push(files::stage(t, &mut content.as_slice(), 0o644)?.0),
            None => deletes.push(t),
        }
    }
    // Everything applied and is staged: now replace, then delete.
    for s in staged {
        s.commit()?;
    }
    for t in deletes {
        std::fs::remove_file(&t.local).map_err(|e| bad(format!("deleting {}: {e}", t.shown)))?;
    }
    report.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

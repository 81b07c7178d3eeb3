//! `workspace diff`: /workspace now against the create-time baseline.
//!
//! The baseline is a plain tar on the host (`snapshots/baseline.tar`),
//! indexed by path with each file's offset, so its contents are read only
//! for files that may have changed. The current tree streams from the guest
//! as a tar and is compared entry by entry; memory holds at most two copies
//! of one text file (up to [`TEXT_LIMIT`]), whatever the workspace's size.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::api::{ArtifactType, ChangeStatus, DiffEntry, DiffSummary, WorkspaceDiff, WorkspaceRef};
use crate::progress::Progress;
use crate::{Error, Manager};

/// Largest file shown as a text patch; larger changed files are listed
/// as non-text.
const TEXT_LIMIT: u64 = 1024 * 1024;

/// One baseline entry.
#[derive(Debug, Clone)]
struct BaseEntry {
    kind: ArtifactType,
    mode: u32,
    size: u64,
    /// Where the file's bytes start in the tar.
    offset: u64,
    link: Option<String>,
}

/// Normalizes a tar entry path: `./a/b/` → `a/b`; the root is `""`.
fn rel_of(path: &Path) -> String {
    let s = path.to_string_lossy();
    let mut parts = Vec::new();
    for p in s.split('/') {
        if p.is_empty() || p == "." {
            continue;
        }
        parts.push(p);
    }
    parts.join("/")
}

fn kind_of(t: tar::EntryType) -> ArtifactType {
    if t.is_dir() {
        ArtifactType::Directory
    } else if t.is_symlink() {
        ArtifactType::Symlink
    } else if t.is_file() {
        ArtifactType::File
    } else {
        ArtifactType::Other
    }
}

fn link_of<R: Read>(e: &tar::Entry<'_, R>) -> Option<String> {
    e.link_name()
        .ok()
        .flatten()
        .map(|l| l.to_string_lossy().into_owned())
}

/// Indexes a baseline tar (missing file: an empty baseline).
fn index(tar_path: &Path) -> Result<BTreeMap<String, BaseEntry>, Error> {
    let mut out = BTreeMap::new();
    let Ok(file) = File::open(tar_path) else {
        return Ok(out);
    };
    let mut archive = tar::Archive::new(file);
    let ctx = || format!("reading the baseline {}", tar_path.display());
    for e in archive.entries().map_err(Error::io(ctx()))? {
        let e = e.map_err(Error::io(ctx()))?;
        let rel = rel_of(&e.path().map_err(Error::io(ctx()))?);
        if rel.is_empty() {
            continue;
        }
        let h = e.header();
        out.insert(
            rel,
            BaseEntry {
                kind: kind_of(h.entry_type()),
                mode: h.mode().unwrap_or(0) & 0o777,
                size: e.size(),
                offset: e.raw_file_position(),
                link: link_of(&e),
            },
        );
    }
    Ok(out)
}

fn is_text(b: &[u8]) -> bool {
    !b.contains(&0) && std::str::from_utf8(b).is_ok()
}

/// Reads a baseline file's bytes.
fn base_bytes(tar: &File, e: &BaseEntry) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; e.size as usize];
    tar.read_exact_at(&mut buf, e.offset)?;
    Ok(buf)
}

/// Whether a stream equals a baseline file of the same size, compared in
/// chunks (for files too big to hold).
fn stream_equals(tar: &File, e: &BaseEntry, cur: &mut dyn Read) -> std::io::Result<bool> {
    let mut a = vec![0u8; 64 * 1024];
    let mut b = vec![0u8; 64 * 1024];
    let mut pos = e.offset;
    let mut same = true;
    loop {
        let n = cur.read(&mut a)?;
        if n == 0 {
            return Ok(same);
        }
        if same {
            tar.read_exact_at(&mut b[..n], pos)?;
            same = a[..n] == b[..n];
            pos += n as u64;
        }
    }
}

/// Builds the diff; `current` is the guest's tar stream of /workspace.
struct Differ {
    base: BTreeMap<String, BaseEntry>,
    tar: Option<File>,
    seen: BTreeSet<String>,
    /// Directories that have something in them, per side.
    base_parents: BTreeSet<String>,
    cur_parents: BTreeSet<String>,
    /// Directories now present, to report added empty ones at the end.
    cur_dirs: Vec<String>,
    entries: Vec<DiffEntry>,
}

fn parent_of(rel: &str) -> String {
    rel.rsplit_once('/')
        .map(|(p, _)| p.to_string())
        .unwrap_or_default()
}

fn patch_of(rel: &str, old: Option<&[u8]>, new: Option<&[u8]>) -> Option<String> {
    let text = |b: Option<&[u8]>| -> Option<Option<String>> {
        match b {
            None => Some(None),
            Some(b) if is_text(b) => Some(Some(String::from_utf8_lossy(b).into_owned())),
            Some(_) => None,
        }
    };
    let (old, new) = (text(old)?, text(new)?);
    let p = pyro_patch::unified_diff(rel, old.as_deref(), new.as_deref(), 3);
    (!p.is_empty()).then_some(p)
}

impl Differ {
    fn push(
        &mut self,
        path: &str,
        status: ChangeStatus,
        kind: ArtifactType,
        patch: Option<String>,
    ) {
        self.entries.push(DiffEntry {
            path: path.to_string(),
            status,
            artifact_type: kind,
            text_patch: patch,
        });
    }

    fn current(&mut self, stream: &mut dyn Read) -> Result<(), Error> {
        let mut archive = tar::Archive::new(stream);
        let ctx = || "reading /workspace from the guest".to_string();
        for e in archive.entries().map_err(Error::io(ctx()))? {
            let mut e = e.map_err(Error::io(ctx()))?;
            let rel = rel_of(&e.path().map_err(Error::io(ctx()))?);
            if rel.is_empty() {
                continue;
            }
            self.cur_parents.insert(parent_of(&rel));
            let kind = kind_of(e.header().entry_type());
            let mode = e.header().mode().unwrap_or(0) & 0o777;
            let size = e.size();
            let link = link_of(&e);
            self.seen.insert(rel.clone());
            let base = self.base.get(&rel).cloned();
            match (base, kind) {
                (_, ArtifactType::Directory) => {
                    if let Some(b) = &self.base.get(&rel) {
                        if b.kind != ArtifactType::Directory {
                            self.push(&rel, ChangeStatus::TypeChanged, kind, None);
                            continue;
                        }
                    }
                    self.cur_dirs.push(rel);
                }
                (None, ArtifactType::File) => {
                    let patch = if size <= TEXT_LIMIT {
                        let mut buf = Vec::with_capacity(size as usize);
                        e.read_to_end(&mut buf).map_err(Error::io(ctx()))?;
                        patch_of(&rel, None, Some(&buf))
                    } else {
                        None
                    };
                    self.push(&rel, ChangeStatus::Added, kind, patch);
                }
                (None, _) => self.push(&rel, ChangeStatus::Added, kind, None),
                (Some(b), k) if b.kind != k => {
                    self.push(&rel, ChangeStatus::TypeChanged, kind, None)
                }
                (Some(b), ArtifactType::File) => {
                    let tar = self.tar.as_ref();
                    let (changed, patch) = match tar {
                        Some(tar) if size <= TEXT_LIMIT && b.size <= TEXT_LIMIT => {
                            let mut cur = Vec::with_capacity(size as usize);
                            e.read_to_end(&mut cur).map_err(Error::io(ctx()))?;
                            let old = base_bytes(tar, &b).map_err(Error::io(ctx()))?;
                            if old == cur {
                                (b.mode != mode, None)
                            } else {
                                (true, patch_of(&rel, Some(&old), Some(&cur)))
                            }
                        }
                        Some(tar) if size == b.size => {
                            let same = stream_equals(tar, &b, &mut e).map_err(Error::io(ctx()))?;
                            (!same || b.mode != mode, None)
                        }
                        _ => (true, None),
                    };
                    if changed {
                        self.push(&rel, ChangeStatus::Modified, kind, patch);
                    }
                }
                (Some(b), _) => {
                    if b.link != link || (kind != ArtifactType::Symlink && b.mode != mode) {
                        self.push(&rel, ChangeStatus::Modified, kind, None);
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<DiffEntry>, Error> {
        for rel in std::mem::take(&mut self.cur_dirs) {
            let empty = !self.cur_parents.contains(&rel);
            if empty && !self.base.contains_key(&rel) {
                self.push(&rel, ChangeStatus::Added, ArtifactType::Directory, None);
            }
        }
        for rel in self.base.keys() {
            self.base_parents.insert(parent_of(rel));
        }
        let gone: Vec<(String, BaseEntry)> = self
            .base
            .iter()
            .filter(|(rel, _)| !self.seen.contains(*rel))
            .map(|(r, e)| (r.clone(), e.clone()))
            .collect();
        for (rel, b) in gone {
            match b.kind {
                ArtifactType::Directory => {
                    if !self.base_parents.contains(&rel) {
                        self.push(&rel, ChangeStatus::Deleted, b.kind, None);
                    }
                }
                ArtifactType::File if b.size <= TEXT_LIMIT => {
                    let old = match &self.tar {
                        Some(tar) => Some(
                            base_bytes(tar, &b)
                                .map_err(Error::io("reading the baseline".to_string()))?,
                        ),
                        None => None,
                    };
                    let patch = old.and_then(|o| patch_of(&rel, Some(&o), None));
                    self.push(&rel, ChangeStatus::Deleted, b.kind, patch);
                }
                _ => self.push(&rel, ChangeStatus::Deleted, b.kind, None),
            }
        }
        self.entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(self.entries)
    }
}

impl Manager {
    /// What changed in /workspace since the workspace was created. Not
    /// activity.
    pub fn workspace_diff(
        &self,
        p: WorkspaceRef,
        _progress: &mut dyn Progress,
    ) -> Result<WorkspaceDiff, Error> {
        let (r, vm) = self.started(&p.workspace_id, "diff")?;
        let tar_path = self.snapshot_file(&r.workspace_id, pyro_store::BASELINE);
        let mut differ = Differ {
            base: index(&tar_path)?,
            tar: File::open(&tar_path).ok(),
            seen: BTreeSet::new(),
            base_parents: BTreeSet::new(),
            cur_parents: BTreeSet::new(),
            cur_dirs: Vec::new(),
            entries: Vec::new(),
        };
        if let Some(t) = differ.tar.as_mut() {
            let _ = t.seek(SeekFrom::Start(0));
        }
        self.on_guest(&r, &p.workspace_id, &vm, |vm| {
            vm.archive(
                pyro_proto::paths::WORKSPACE_ROOT,
                |_, stream: &mut dyn Read| differ.current(stream),
            )
            .map(|_| ())
        })?;
        let redactor = self.redactor(&r)?;
        let mut entries = differ.finish()?;
        if !redactor.is_empty() {
            for e in &mut entries {
                e.text_patch = e.text_patch.take().map(|t| redactor.redact_str(&t));
            }
        }
        let mut summary = DiffSummary::default();
        let mut patch = String::new();
        for e in &entries {
            summary.total += 1;
            match e.status {
                ChangeStatus::Added => summary.added += 1,
                ChangeStatus::Modified => summary.modified += 1,
                ChangeStatus::Deleted => summary.deleted += 1,
                ChangeStatus::TypeChanged => summary.type_changed += 1,
            }
            match &e.text_patch {
                Some(t) => {
                    summary.text_patched += 1;
                    patch.push_str(t);
                }
                None if e.artifact_type != ArtifactType::Directory => summary.non_text += 1,
                None => {}
            }
        }
        Ok(WorkspaceDiff {
            workspace_id: r.workspace_id,
            changed: !entries.is_empty(),
            summary,
            entries,
            patch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            if path.ends_with('/') {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                h.set_cksum();
                b.append_data(&mut h, path, &[][..]).unwrap();
            } else {
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, path, *data).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn diff(base: &[(&str, &[u8])], now: &[(&str, &[u8])]) -> Vec<(String, ChangeStatus, bool)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baseline.tar");
        std::fs::write(&path, tar_of(base)).unwrap();
        let mut d = Differ {
            base: index(&path).unwrap(),
            tar: File::open(&path).ok(),
            seen: BTreeSet::new(),
            base_parents: BTreeSet::new(),
            cur_parents: BTreeSet::new(),
            cur_dirs: Vec::new(),
            entries: Vec::new(),
        };
        d.current(&mut tar_of(now).as_slice()).unwrap();
        d.finish()
            .unwrap()
            .into_iter()
            .map(|e| (e.path, e.status, e.text_patch.is_some()))
            .collect()
    }

    #[test]
    fn classifies_changes() {
        let got = diff(
            &[
                ("./a.txt", b"one\n"),
                ("./same.txt", b"x\n"),
                ("./gone.txt", b"bye\n"),
                ("./bin", b"\0\x01"),
                ("./d/", b""),
                ("./empty/", b""),
            ],
            &[
                ("a.txt", b"two\n"),
                ("same.txt", b"x\n"),
                ("bin", b"\0\x02"),
                ("new.txt", b"hi\n"),
                ("d", b"now a file\n"),
                ("newdir/", b""),
            ],
        );
        assert_eq!(
            got,
            vec![
                ("a.txt".into(), ChangeStatus::Modified, true),
                ("bin".into(), ChangeStatus::Modified, false),
                ("d".into(), ChangeStatus::TypeChanged, false),
                ("empty".into(), ChangeStatus::Deleted, false),
                ("gone.txt".into(), ChangeStatus::Deleted, true),
                ("new.txt".into(), ChangeStatus::Added, true),
                ("newdir".into(), ChangeStatus::Added, false),
            ]
        );
    }

    #[test]
    fn no_baseline_means_everything_is_added() {
        let dir = tempfile::tempdir().unwrap();
        let base = index(&dir.path().join("missing.tar")).unwrap();
        assert!(base.is_empty());
    }
}

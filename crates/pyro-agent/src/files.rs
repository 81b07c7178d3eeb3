//! File operations inside the workspace: list, read, write and archive.
//!
//! Requests carry absolute guest paths under `/workspace`
//! ([`pyro_proto::paths`]); each is checked again here and mapped onto the
//! workspace root (the real `/workspace` in a guest, a test directory with
//! `--listen-unix`). No operation follows a symlink: a path whose parent is
//! a symlink is refused, and a symlink named by the path is listed or
//! archived as a symlink.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pyro_proto::{paths, ErrorCode, FileEntry, FileKind, RemoteError};

static ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Entries per `Entries` frame: well under the frame cap even with long
/// paths.
pub const LIST_BATCH: usize = 256;

/// Serves `/workspace` from `dir` instead (host-side tests).
pub fn set_root(dir: PathBuf) {
    let _ = ROOT.set(dir);
}

fn root() -> &'static Path {
    ROOT.get_or_init(|| PathBuf::from(paths::WORKSPACE_ROOT))
}

/// A request's failure, with the code the host maps to a user error.
pub fn bad(message: impl Into<String>) -> RemoteError {
    RemoteError::new(ErrorCode::BadRequest, message)
}

fn internal(context: &str, path: &str, e: io::Error) -> RemoteError {
    RemoteError::new(ErrorCode::Internal, format!("{context} {path}: {e}"))
}

/// A checked request path: what the user sees and where it is here.
pub struct Target {
    /// The guest path, e.g. `/workspace/src/app.py`.
    pub shown: String,
    /// The same path on this system.
    pub local: PathBuf,
}

/// Checks `path` (absolute, normalized, under the workspace) and that no
/// component between the root and it is a symlink or a non-directory.
/// Missing components are fine (the caller decides).
pub fn target(path: &str) -> Result<Target, RemoteError> {
    let rel = paths::relative(path).ok_or_else(|| {
        bad(format!(
            "path '{path}' is not a normalized path under /workspace"
        ))
    })?;
    let mut local = root().to_path_buf();
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 < parts.len() {
            let here = local.join(part);
            match fs::symlink_metadata(&here) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(bad(format!(
                        "{path}: its parent {} is a symlink; file operations never follow symlinks",
                        shown(&parts[..=i])
                    )))
                }
                Ok(m) if !m.is_dir() => {
                    return Err(bad(format!(
                        "{path}: its parent {} is not a directory",
                        shown(&parts[..=i])
                    )))
                }
                _ => {}
            }
        }
        local.push(part);
    }
    Ok(Target {
        shown: path.to_string(),
        local,
    })
}

fn shown(parts: &[&str]) -> String {
    format!("{}/{}", paths::WORKSPACE_ROOT, parts.join("/"))
}

fn kind_of(m: &fs::Metadata) -> FileKind {
    let t = m.file_type();
    if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_dir() {
        FileKind::Directory
    } else if t.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    }
}

fn entry(shown: String, local: &Path, m: &fs::Metadata) -> FileEntry {
    let kind = kind_of(m);
    let link_target = (kind == FileKind::Symlink)
        .then(|| fs::read_link(local).ok())
        .flatten()
        .map(|t| t.to_string_lossy().into_owned());
    FileEntry {
        path: shown,
        kind,
        size_bytes: if kind == FileKind::Directory {
            0
        } else {
            m.len()
        },
        mode: m.mode() & 0o7777,
        link_target,
    }
}

fn lstat(t: &Target) -> Result<fs::Metadata, RemoteError> {
    fs::symlink_metadata(&t.local).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            RemoteError::new(ErrorCode::NotFound, format!("{} does not exist", t.shown))
        }
        _ => internal("reading", &t.shown, e),
    })
}

/// Entries of `path`: its children (all descendants when `recursive`),
/// sorted by path; a file or symlink lists itself.
pub fn list(path: &str, recursive: bool) -> Result<Vec<FileEntry>, RemoteError> {
    let t = target(path)?;
    let meta = lstat(&t)?;
    if !meta.is_dir() {
        return Ok(vec![entry(t.shown, &t.local, &meta)]);
    }
    let mut out = Vec::new();
    let mut stack = vec![(t.shown.clone(), t.local.clone())];
    while let Some((shown, local)) = stack.pop() {
        let dir = fs::read_dir(&local).map_err(|e| internal("listing", &shown, e))?;
        for item in dir {
            let item = item.map_err(|e| internal("listing", &shown, e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let child_local = item.path();
            let child_shown = format!("{shown}/{name}");
            let Ok(m) = fs::symlink_metadata(&child_local) else {
                continue; // removed while listing
            };
            if recursive && m.is_dir() {
                stack.push((child_shown.clone(), child_local.clone()));
            }
            out.push(entry(child_shown, &child_local, &m));
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Opens a regular file for reading; returns it and its size.
pub fn open_for_read(path: &str) -> Result<(File, u64), RemoteError> {
    let t = target(path)?;
    let meta = lstat(&t)?;
    if !meta.is_file() {
        return Err(bad(format!(
            "{} is a {}, not a regular file",
            t.shown,
            noun(kind_of(&meta))
        )));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&t.local)
        .map_err(|e| internal("opening", &t.shown, e))?;
    Ok((file, meta.len()))
}

fn noun(k: FileKind) -> &'static str {
    match k {
        FileKind::File => "file",
        FileKind::Directory => "directory",
        FileKind::Symlink => "symlink",
        FileKind::Other => "special file",
    }
}

/// Creates the missing directories of `t`'s parent (0755), refusing to
/// pass through anything that is not a real directory.
fn make_parents(t: &Target) -> Result<(), RemoteError> {
    let rel = paths::relative(&t.shown).unwrap_or("");
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let mut local = root().to_path_buf();
    for (i, part) in parts.iter().enumerate().take(parts.len().saturating_sub(1)) {
        local.push(part);
        match fs::symlink_metadata(&local) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(bad(format!(
                    "{}: its parent {} is not a directory",
                    t.shown,
                    shown(&parts[..=i])
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match fs::create_dir(&local) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(internal("creating", &shown(&parts[..=i]), e)),
                }
                let _ = fs::set_permissions(&local, fs::Permissions::from_mode(0o755));
            }
            Err(e) => return Err(internal("reading", &shown(&parts[..=i]), e)),
        }
    }
    Ok(())
}

/// What a staged file replaces.
pub struct Existing {
    mode: u32,
    uid: u32,
    gid: u32,
}

/// Checks that `t` is a regular file or missing: its mode and owner, or
/// `None`.
pub fn existing(t: &Target) -> Result<Option<Existing>, RemoteError> {
    match fs::symlink_metadata(&t.local) {
        Ok(m) if m.is_file() => Ok(Some(Existing {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
        })),
        Ok(m) => Err(bad(format!(
            "{} is a {}; only regular files can be written",
            t.shown,
            noun(kind_of(&m))
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(internal("reading", &t.shown, e)),
    }
}

/// A file written next to its destination, renamed over it by
/// [`Staged::commit`]; removed if dropped uncommitted.
pub struct Staged {
    tmp: PathBuf,
    dest: Target,
    done: bool,
}

static STAGE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Writes `data` into a new hidden file beside `t` (its parents are
/// created), with the mode and owner of the file it replaces, or
/// `new_mode`. Returns it staged and the bytes written.
pub fn stage(
    t: Target,
    data: &mut dyn Read,
    new_mode: u32,
) -> Result<(Staged, u64, u32), RemoteError> {
    let prior = existing(&t)?;
    make_parents(&t)?;
    let name = t
        .local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let seq = STAGE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = t
        .local
        .with_file_name(format!(".{name}.pyro-{}-{seq}", std::process::id()));
    let staged = Staged {
        tmp,
        dest: t,
        done: false,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&staged.tmp)
        .map_err(|e| internal("creating a file beside", &staged.dest.shown, e))?;
    let written =
        io::copy(data, &mut file).map_err(|e| internal("writing", &staged.dest.shown, e))?;
    let mode = prior.as_ref().map(|p| p.mode).unwrap_or(new_mode & 0o7777);
    if let Some(p) = &prior {
        // SAFETY: plain syscall on an fd we own.
        let _ = unsafe { libc::fchown(std::os::fd::AsRawFd::as_raw_fd(&file), p.uid, p.gid) };
    }
    // After chown, which clears setuid bits.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| internal("setting the mode of", &staged.dest.shown, e))?;
    file.sync_all()
        .map_err(|e| internal("writing", &staged.dest.shown, e))?;
    Ok((staged, written, mode))
}

impl Staged {
    /// Renames the staged file over its destination.
    pub fn commit(mut self) -> Result<(), RemoteError> {
        fs::rename(&self.tmp, &self.dest.local)
            .map_err(|e| internal("replacing", &self.dest.shown, e))?;
        self.done = true;
        // The rename is durable once its directory is synced.
        if let Some(dir) = self.dest.local.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Replaces (or creates) `path` with what `data` yields, atomically.
pub fn write(path: &str, data: &mut dyn Read, new_mode: u32) -> Result<(u64, u32), RemoteError> {
    let t = target(path)?;
    if paths::relative(&t.shown) == Some("") {
        return Err(bad(
            "/workspace itself is a directory; name a file inside it",
        ));
    }
    let (staged, written, mode) = stage(t, data, new_mode)?;
    staged.commit()?;
    Ok((written, mode))
}

/// Where an upload to `dest` is unpacked: a workspace path is checked like
/// any other (no symlink at or above it; it may not exist yet), and mapped
/// onto the workspace root; anything else (absolute, outside the
/// workspace) is used as is.
pub fn extract_dest(dest: &str) -> Result<PathBuf, RemoteError> {
    if paths::relative(dest).is_none() {
        return Ok(PathBuf::from(dest));
    }
    let t = target(dest)?;
    match fs::symlink_metadata(&t.local) {
        Ok(m) if m.file_type().is_symlink() => Err(bad(format!(
            "{dest} is a symlink; uploads never write through symlinks"
        ))),
        Ok(m) if !m.is_dir() => Err(bad(format!("{dest} exists and is not a directory"))),
        _ => Ok(t.local),
    }
}

/// What `path` is, for an archive's head.
pub fn archive_kind(path: &str) -> Result<(Target, FileKind), RemoteError> {
    let t = target(path)?;
    let meta = lstat(&t)?;
    let kind = kind_of(&meta);
    if kind == FileKind::Other {
        return Err(bad(format!(
            "{} is a special file (device, FIFO or socket) and cannot be exported",
            t.shown
        )));
    }
    Ok((t, kind))
}

/// Writes `t` as a tar stream into `out`: a directory's contents relative
/// to it (sorted, depth first), or the file or symlink itself under its
/// name. Symlinks are archived as symlinks; special files are skipped
/// (they carry no data and no workspace operation can restore them).
/// Returns (entries, file bytes).
pub fn archive(t: &Target, kind: FileKind, out: &mut dyn Write) -> io::Result<(u64, u64)> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    let mut entries = 0u64;
    let mut bytes = 0u64;
    if kind != FileKind::Directory {
        let name = t.local.file_name().unwrap_or_default();
        append(&mut builder, &t.local, Path::new(name))?;
        let m = fs::symlink_metadata(&t.local)?;
        return builder
            .into_inner()
            .map(|_| (1, if m.is_file() { m.len() } else { 0 }));
    }
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut children: Vec<(String, fs::Metadata)> = Vec::new();
        for item in fs::read_dir(t.local.join(&rel))? {
            let item = item?;
            let Ok(m) = fs::symlink_metadata(item.path()) else {
                continue;
            };
            children.push((item.file_name().to_string_lossy().into_owned(), m));
        }
        children.sort_by(|a, b| b.0.cmp(&a.0));
        for (name, m) in &children {
            let child = rel.join(name);
            let local = t.local.join(&child);
            let kind = kind_of(m);
            if kind == FileKind::Other {
                continue;
            }
            append(&mut builder, &local, &child)?;
            entries += 1;
            if kind == FileKind::File {
                bytes += m.len();
            }
            if kind == FileKind::Directory {
                stack.push(child);
            }
        }
    }
    builder.into_inner()?;
    Ok((entries, bytes))
}

/// Bytes read from a file per call while archiving: large reads matter
/// under emulation (8 KiB reads take twice as long as 64 KiB ones).
const ARCHIVE_READ: usize = 256 * 1024;

/// Appends one path (never following a symlink) as `name`; a file's bytes
/// are read in large chunks.
fn append(builder: &mut tar::Builder<&mut dyn Write>, local: &Path, name: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(local)?;
    if !meta.is_file() {
        return builder.append_path_with_name(local, name);
    }
    let file = File::open(local)?;
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    // The size read now is what is sent: a file growing meanwhile is cut
    // there, one shrinking is refused by the tar writer.
    let reader = io::BufReader::with_capacity(ARCHIVE_READ, file.take(meta.len()));
    builder.append_data(&mut header, name, reader)
}

/// Where secrets live in the guest (on the /run tmpfs).
const SECRETS_DIR: &str = "/run/pyro-secrets";
static SECRETS_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Keeps secrets in `dir` instead of /run/pyro-secrets (host-side tests).
pub fn set_secrets_dir(dir: PathBuf) {
    let _ = SECRETS_ROOT.set(dir);
}

/// Writes a secret as `<dir>/<name>` (0600; the directory 0700), replacing
/// it atomically.
pub fn install_secret(name: &str, value: &str) -> Result<(), RemoteError> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64;
    if !ok {
        return Err(bad(format!("secret name '{name}' is not valid")));
    }
    let dir = SECRETS_ROOT.get_or_init(|| PathBuf::from(SECRETS_DIR));
    fs::create_dir_all(dir).map_err(|e| internal("creating", SECRETS_DIR, e))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| internal("writing", SECRETS_DIR, e))?;
    f.write_all(value.as_bytes())
        .map_err(|e| internal("writing", SECRETS_DIR, e))?;
    fs::rename(&tmp, dir.join(name)).map_err(|e| internal("writing", SECRETS_DIR, e))
}

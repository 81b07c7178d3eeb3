//! Safe tar handling, shared by the host (which checks a seed before
//! anything boots) and the guest agent (which checks again while
//! unpacking).
//!
//! The host check ([`validate`], [`Seed::check`]) refuses everything
//! [`unpack`] would refuse on its own, so a bad seed fails before a guest
//! boots. An entry is refused when:
//!
//! - its path is absolute, contains `..` or a NUL byte, has a component
//!   longer than [`MAX_NAME_BYTES`] or is longer than [`MAX_PATH_BYTES`];
//! - it is a hard link, a device, a FIFO, a sparse file or any other
//!   special file;
//! - it is a symlink whose target is empty, absolute, contains `..` or a NUL
//!   byte, or is longer than [`MAX_PATH_BYTES`];
//! - an earlier entry made one of its parents a file or a symlink (unpacking
//!   never writes through a symlink), or made the path itself a directory
//!   when this entry is not one, or not a directory when this one is;
//! - it is the archive root (`.`) and not a directory.
//!
//! Symlinks are kept as symlinks, never followed, so a symlink loop is just
//! two symlinks. [`unpack`] additionally refuses to write through anything
//! already in the destination that is not a real directory: every existing
//! parent is opened with `O_NOFOLLOW`, so a symlink planted in the
//! destination (`link -> /etc`) makes `link/passwd` an error instead of a
//! write to `/etc/passwd`. Files and directories get `mode & 0o777`
//! (setuid, setgid and sticky bits are dropped); ownership is not restored.
#![deny(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr};
use std::fs::{File, Permissions};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// Longest path component, in bytes (Linux `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// Longest entry path or symlink target, in bytes (Linux `PATH_MAX` less
/// the terminating NUL).
pub const MAX_PATH_BYTES: usize = 4095;

/// Why an archive or seed was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The seed path does not exist.
    #[error("seed path {0} does not exist")]
    Missing(PathBuf),
    /// The seed path is neither a directory nor a tar archive.
    #[error("seed path {0} must be a directory or a .tar, .tar.gz or .tgz archive")]
    WrongKind(PathBuf),
    /// An entry breaks the rules.
    #[error("archive entry '{path}' refused: {reason}")]
    Unsafe {
        /// The entry (shortened when very long).
        path: String,
        /// The rule it breaks.
        reason: String,
    },
    /// The archive is truncated or not a tar archive.
    #[error("archive is corrupt or not a tar archive: {0}")]
    Corrupt(String),
    /// Reading or writing failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

fn io_err(context: &str) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        context: context.to_string(),
        source,
    }
}

fn io_at(context: String) -> impl FnOnce(io::Error) -> ArchiveError {
    move |source| ArchiveError::Io { context, source }
}

fn corrupt(e: io::Error) -> ArchiveError {
    ArchiveError::Corrupt(e.to_string())
}

/// Counts of what an archive holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    /// Entries (the archive root `.` and metadata entries are not counted).
    pub entry_count: u64,
    /// Bytes of regular file content.
    pub bytes: u64,
}

fn unsafe_entry(path: &str, reason: impl Into<String>) -> ArchiveError {
    ArchiveError::Unsafe {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// A path as shown in messages: lossy UTF-8, shortened in the middle when
/// very long so an error stays one readable line.
fn show(p: &Path) -> String {
    let s = p.to_string_lossy();
    let n = s.chars().count();
    if n <= 200 {
        return s.into_owned();
    }
    let head: String = s.chars().take(120).collect();
    let tail: String = s.chars().skip(n - 60).collect();
    format!("{head}…{tail} ({} bytes)", p.as_os_str().len())
}

/// What an entry is, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Dir => "directory",
            Kind::File => "file",
            Kind::Symlink => "symlink",
        }
    }
}

/// An entry that passed the per-entry rules.
#[derive(Debug)]
struct Checked {
    /// Normalised relative path (no `.`, never empty).
    rel: PathBuf,
    /// For messages.
    shown: String,
    kind: Kind,
    /// Symlink target.
    target: Option<PathBuf>,
    /// Permission bits (`& 0o777`).
    mode: u32,
    mtime: Option<u64>,
    /// Content bytes (files only).
    size: u64,
}

/// Checks a path's shape; returns it normalised (no `.` components; empty
/// for the root).
fn check_path(path: &Path, shown: &str) -> Result<PathBuf, ArchiveError> {
    if path.has_root() {
        return Err(unsafe_entry(shown, "absolute paths are not allowed"));
    }
    let mut rel = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => {
                check_name(name, shown)?;
                rel.push(name);
            }
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(unsafe_entry(shown, "paths must not contain '..'"));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_entry(shown, "absolute paths are not allowed"));
            }
        }
    }
    let len = rel.as_os_str().len();
    if len > MAX_PATH_BYTES {
        return Err(unsafe_entry(
            shown,
            format!("the path is {len} bytes long; at most {MAX_PATH_BYTES} are allowed"),
        ));
    }
    Ok(rel)
}

fn check_name(name: &OsStr, shown: &str) -> Result<(), ArchiveError> {
    if name.as_bytes().contains(&0) {
        return Err(unsafe_entry(shown, "paths must not contain NUL bytes"));
    }
    let len = name.len();
    if len > MAX_NAME_BYTES {
        return Err(unsafe_entry(
            shown,
            format!("a path component is {len} bytes long; at most {MAX_NAME_BYTES} are allowed"),
        ));
    }
    Ok(())
}

/// Which symlink targets an archive may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkTargets {
    /// Relative and never climbing (`..`): seeds, uploads and exports.
    #[default]
    Contained,
    /// Any target (still non-empty, no NUL, bounded): a guest restoring a
    /// snapshot of its own /workspace, where links such as a venv's
    /// `bin/python -> /usr/bin/python3` are ordinary. Unpacking still never
    /// writes through a symlink, so a target is only ever stored.
    Any,
}

fn check_link_target(target: &Path, shown: &str) -> Result<(), ArchiveError> {
    check_link_target_with(target, shown, LinkTargets::Contained)
}

fn check_link_target_with(
    target: &Path,
    shown: &str,
    links: LinkTargets,
) -> Result<(), ArchiveError> {
    let bytes = target.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(unsafe_entry(shown, "symlink without a target"));
    }
    if bytes.contains(&0) {
        return Err(unsafe_entry(
            shown,
            "symlink targets must not contain NUL bytes",
        ));
    }
    if bytes.len() > MAX_PATH_BYTES {
        return Err(unsafe_entry(
            shown,
            format!(
                "the symlink target is {} bytes long; at most {MAX_PATH_BYTES} are allowed",
                bytes.len()
            ),
        ));
    }
    let contained = target
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if links == LinkTargets::Contained && (target.has_root() || !contained) {
        return Err(unsafe_entry(
            shown,
            "symlink targets must be relative and stay inside the tree",
        ));
    }
    Ok(())
}

/// The per-entry rules. `None` for entries that write nothing: metadata
/// (PAX and GNU extension headers) and the archive root as a directory.
fn inspect<R: Read>(
    entry: &tar::Entry<'_, R>,
    links: LinkTargets,
) -> Result<Option<Checked>, ArchiveError> {
    use tar::EntryType as T;
    let header = entry.header();
    let kind = header.entry_type();
    if kind.is_pax_global_extensions()
        || kind.is_pax_local_extensions()
        || kind.is_gnu_longname()
        || kind.is_gnu_longlink()
    {
        return Ok(None);
    }
    let path = entry.path().map_err(corrupt)?;
    let rel = check_path(&path, &show(&path))?;
    // Named as normalised (`./a//b` is `a/b`), like a directory seed's
    // items, so the host and the guest name an entry the same way.
    let shown = if rel.as_os_str().is_empty() {
        ".".to_string()
    } else {
        show(&rel)
    };
    let kind = match kind {
        T::Regular | T::Continuous => Kind::File,
        T::Directory => Kind::Dir,
        T::Symlink => Kind::Symlink,
        T::Link => return Err(unsafe_entry(&shown, "hard links are not allowed")),
        T::Char | T::Block => return Err(unsafe_entry(&shown, "device files are not allowed")),
        T::Fifo => return Err(unsafe_entry(&shown, "FIFOs are not allowed")),
        T::GNUSparse => return Err(unsafe_entry(&shown, "sparse files are not allowed")),
        _ => return Err(unsafe_entry(&shown, "special files are not allowed")),
    };
    if rel.as_os_str().is_empty() {
        if kind == Kind::Dir {
            return Ok(None);
        }
        return Err(unsafe_entry(
            &shown,
            format!(
                "the archive root ('.') can only be a directory, not a {}",
                kind.noun()
            ),
        ));
    }
    let target = if kind == Kind::Symlink {
        let target = entry
            .link_name()
            .map_err(corrupt)?
            .ok_or_else(|| unsafe_entry(&shown, "symlink without a target"))?;
        check_link_target_with(&target, &shown, links)?;
        Some(target.into_owned())
    } else {
        None
    };
    let mode = header.mode().map_err(corrupt)? & 0o777;
    Ok(Some(Checked {
        rel,
        shown,
        kind,
        target,
        mode,
        mtime: header.mtime().ok(),
        size: if kind == Kind::File { entry.size() } else { 0 },
    }))
}

/// Checks one entry against the per-entry rules (path shape, type, symlink
/// target). [`validate`] and [`unpack`] also check entries against each
/// other (parents and type conflicts).
pub fn check_entry<R: Read>(entry: &tar::Entry<'_, R>) -> Result<(), ArchiveError> {
    inspect(entry, LinkTargets::Contained).map(|_| ())
}

/// What the entries so far make of each path: explicit entries and the
/// directories their paths imply.
#[derive(Default)]
struct Tree {
    seen: HashMap<PathBuf, Kind>,
}

impl Tree {
    /// Refuses an entry whose parent an earlier entry made a file or a
    /// symlink, or whose type clashes with an earlier entry of that path;
    /// records it otherwise. A later file or symlink may replace an earlier
    /// file or symlink (unpack replaces it).
    fn admit(&mut self, e: &Checked) -> Result<(), ArchiveError> {
        let mut prefix = PathBuf::new();
        let parent = e.rel.parent().unwrap_or(Path::new(""));
        for c in parent.components() {
            prefix.push(c);
            match self.seen.get(&prefix) {
                Some(Kind::Dir) => {}
                Some(Kind::File) => {
                    return Err(unsafe_entry(
                        &e.shown,
                        format!(
                            "its parent '{}' is a file earlier in the archive",
                            show(&prefix)
                        ),
                    ))
                }
                Some(Kind::Symlink) => {
                    return Err(unsafe_entry(
                        &e.shown,
                        format!(
                            "its parent '{}' is a symlink earlier in the archive; \
                             unpacking never writes through symlinks",
                            show(&prefix)
                        ),
                    ))
                }
                None => {
                    self.seen.insert(prefix.clone(), Kind::Dir);
                }
            }
        }
        match self.seen.get(&e.rel) {
            Some(&earlier) if (earlier == Kind::Dir) != (e.kind == Kind::Dir) => Err(unsafe_entry(
                &e.shown,
                format!(
                    "it is a {} but an earlier entry made it a {}",
                    e.kind.noun(),
                    earlier.noun()
                ),
            )),
            _ => {
                self.seen.insert(e.rel.clone(), e.kind);
                Ok(())
            }
        }
    }
}

impl ArchiveStats {
    fn add(&mut self, e: &Checked) {
        self.entry_count += 1;
        self.bytes += e.size;
    }
}

/// Reads a whole tar stream, checking every entry and the entries against
/// each other, so that whatever passes also unpacks into an empty
/// directory. Reads to the end of the stream (so a gzip trailer is
/// verified).
pub fn validate<R: Read>(reader: R) -> Result<ArchiveStats, ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    let mut tree = Tree::default();
    let mut stats = ArchiveStats::default();
    for entry in archive.entries().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        if let Some(e) = inspect(&entry, LinkTargets::Contained)? {
            tree.admit(&e)?;
            stats.add(&e);
        }
    }
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(corrupt)?;
    Ok(stats)
}

/// Unpacks a tar stream into `dest` (created if missing), checking every
/// entry first with the same rules as [`validate`], and never writing
/// through anything in `dest` that is not a real directory (see the crate
/// docs). Existing files and symlinks are replaced (unlinked, not written
/// through); a type clash with what `dest` holds is refused. Directory modes
/// are applied at the end, deepest first, so a read-only directory can
/// still receive its entries. Not atomic: a refusal midway leaves what was
/// written so far.
pub fn unpack<R: Read>(reader: R, dest: &Path) -> Result<ArchiveStats, ArchiveError> {
    unpack_with(reader, dest, LinkTargets::Contained)
}

/// [`unpack`] with a choice of which symlink targets are accepted.
pub fn unpack_with<R: Read>(
    reader: R,
    dest: &Path,
    links: LinkTargets,
) -> Result<ArchiveStats, ArchiveError> {
    std::fs::create_dir_all(dest).map_err(io_err("creating the destination"))?;
    let root = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dest)
        .map_err(io_err("opening the destination"))?;
    let mut writer = Writer {
        root: root.into(),
        cached: None,
        dir_modes: BTreeMap::new(),
    };
    let mut archive = tar::Archive::new(reader);
    let mut tree = Tree::default();
    let mut stats = ArchiveStats::default();
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        if let Some(e) = inspect(&entry, links)? {
            tree.admit(&e)?;
            writer.write(&e, &mut entry)?;
            stats.add(&e);
        }
    }
    writer.finish()?;
    Ok(stats)
}

// ---- *at() syscalls ---------------------------------------------------------

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Opens the directory `name` in `dir`, refusing to follow a symlink.
fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    let name = cstr(name)?;
    // SAFETY: valid fd and NUL-terminated string; the result is a new fd
    // we own.
    let fd = cvt(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn mkdir_at(dir: BorrowedFd<'_>, name: &OsStr, mode: libc::mode_t) -> io::Result<()> {
    let name = cstr(name)?;
    // SAFETY: valid fd and NUL-terminated string.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

/// The file type bits (`S_IFMT`) of `name` in `dir`, not following a
/// symlink; `None` when it does not exist.
fn type_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<libc::mode_t>> {
    let cname = cstr(name)?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid fd, NUL-terminated string and a buffer of the right
    // size; `st` is only read when the call succeeded.
    let ret = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            cname.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match cvt(ret) {
        // SAFETY: fstatat succeeded, so it filled `st`.
        Ok(_) => Ok(Some(unsafe { st.assume_init() }.st_mode & libc::S_IFMT)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn unlink_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let name = cstr(name)?;
    // SAFETY: valid fd and NUL-terminated string.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

fn symlink_at(target: &Path, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let target = cstr(target.as_os_str())?;
    let name = cstr(name)?;
    // SAFETY: valid fd and NUL-terminated strings.
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// Creates the file `name` in `dir`; fails if anything (even a dangling
/// symlink) is there.
fn create_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<File> {
    let name = cstr(name)?;
    // SAFETY: valid fd and NUL-terminated string; the result is a new fd
    // we own.
    let fd = cvt(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    })?;
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

// ---- writing ----------------------------------------------------------------

/// Writes checked entries below `root` through directory fds opened with
/// `O_NOFOLLOW`, one component at a time.
struct Writer {
    root: OwnedFd,
    /// The parent directory of the last entry, which the next entry usually
    /// shares. Entries never turn a directory into something else (see
    /// [`Tree`]), so it stays valid.
    cached: Option<(PathBuf, OwnedFd)>,
    /// Directory entries and their modes, applied by `finish`.
    dir_modes: BTreeMap<PathBuf, u32>,
}

impl Writer {
    /// Why `name` in `dir` (at `prefix`) cannot be opened as a directory:
    /// an entry refusal when it is a symlink or not a directory, else the
    /// I/O error.
    fn parent_error(
        dir: BorrowedFd<'_>,
        name: &OsStr,
        prefix: &Path,
        shown: &str,
        err: io::Error,
    ) -> ArchiveError {
        match type_at(dir, name) {
            Ok(Some(libc::S_IFLNK)) => unsafe_entry(
                shown,
                format!(
                    "its parent '{}' is a symlink in the destination; \
                     unpacking never writes through symlinks",
                    show(prefix)
                ),
            ),
            Ok(Some(t)) if t != libc::S_IFDIR => unsafe_entry(
                shown,
                format!(
                    "its parent '{}' exists in the destination and is not a directory",
                    show(prefix)
                ),
            ),
            _ => ArchiveError::Io {
                context: format!("opening the directory '{}'", show(prefix)),
                source: err,
            },
        }
    }

    /// Opens the directory `rel` below the root, creating missing ones
    /// (mode 0755) when `create`, never following a symlink.
    fn open_dir(&self, rel: &Path, shown: &str, create: bool) -> Result<OwnedFd, ArchiveError> {
        let mut cur = self
            .root
            .try_clone()
            .map_err(io_err("opening the destination"))?;
        let mut prefix = PathBuf::new();
        for c in rel.components() {
            let name = c.as_os_str();
            prefix.push(name);
            let next = match open_dir_at(cur.as_fd(), name) {
                Ok(fd) => fd,
                Err(e) if create && e.raw_os_error() == Some(libc::ENOENT) => {
                    match mkdir_at(cur.as_fd(), name, 0o755) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => {
                            return Err(ArchiveError::Io {
                                context: format!("creating the directory '{}'", show(&prefix)),
                                source: e,
                            })
                        }
                    }
                    open_dir_at(cur.as_fd(), name)
                        .map_err(|e| Self::parent_error(cur.as_fd(), name, &prefix, shown, e))?
                }
                Err(e) => return Err(Self::parent_error(cur.as_fd(), name, &prefix, shown, e)),
            };
            cur = next;
        }
        Ok(cur)
    }

    fn write<R: Read>(&mut self, e: &Checked, data: &mut R) -> Result<(), ArchiveError> {
        let parent = e.rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let name = e.rel.file_name().expect("a checked path is never empty");
        let dir = match self.cached.take() {
            Some((p, fd)) if p == parent => fd,
            _ => self.open_dir(&parent, &e.shown, true)?,
        };
        let result = self.write_in(dir.as_fd(), name, e, data);
        self.cached = Some((parent, dir));
        result
    }

    fn write_in<R: Read>(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        e: &Checked,
        data: &mut R,
    ) -> Result<(), ArchiveError> {
        let existing = type_at(dir, name).map_err(io_at(format!("inspecting '{}'", e.shown)))?;
        match (e.kind, existing) {
            (Kind::Dir, None) => mkdir_at(dir, name, 0o700)
                .map_err(io_at(format!("creating the directory '{}'", e.shown)))?,
            (Kind::Dir, Some(libc::S_IFDIR)) => {}
            (Kind::Dir, Some(libc::S_IFLNK)) => {
                return Err(unsafe_entry(
                    &e.shown,
                    "it is a directory but a symlink of that name exists in the destination; \
                     unpacking never writes through symlinks",
                ))
            }
            (Kind::Dir, Some(_)) => {
                return Err(unsafe_entry(
                    &e.shown,
                    "it is a directory but a file of that name exists in the destination",
                ))
            }
            (kind, Some(libc::S_IFDIR)) => {
                return Err(unsafe_entry(
                    &e.shown,
                    format!(
                        "it is a {} but a directory of that name exists in the destination",
                        kind.noun()
                    ),
                ))
            }
            (_, Some(_)) => {
                unlink_at(dir, name).map_err(io_at(format!("replacing '{}'", e.shown)))?
            }
            (_, None) => {}
        }
        match e.kind {
            Kind::Dir => {
                self.dir_modes.insert(e.rel.clone(), e.mode);
            }
            Kind::Symlink => {
                let target = e.target.as_deref().expect("a checked symlink has a target");
                symlink_at(target, dir, name)
                    .map_err(io_at(format!("creating the symlink '{}'", e.shown)))?;
            }
            Kind::File => {
                let context = || format!("writing '{}'", e.shown);
                let mut file = create_at(dir, name).map_err(io_at(context()))?;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match data.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                        Err(err) => return Err(corrupt(err)),
                    };
                    file.write_all(&buf[..n]).map_err(io_at(context()))?;
                }
                file.set_permissions(Permissions::from_mode(e.mode))
                    .map_err(io_at(context()))?;
                if let Some(mtime) = e.mtime {
                    // Best effort, like tar: a time the filesystem cannot
                    // store is not worth failing the unpack for.
                    let _ = file.set_modified(UNIX_EPOCH + Duration::from_secs(mtime));
                }
            }
        }
        Ok(())
    }

    /// Applies the directory modes, deepest first.
    fn finish(mut self) -> Result<(), ArchiveError> {
        self.cached = None;
        let mut dirs: Vec<(PathBuf, u32)> =
            std::mem::take(&mut self.dir_modes).into_iter().collect();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (rel, mode) in dirs {
            let shown = show(&rel);
            let fd = self.open_dir(&rel, &shown, false)?;
            File::from(fd)
                .set_permissions(Permissions::from_mode(mode))
                .map_err(io_at(format!("setting the mode of '{shown}'")))?;
        }
        Ok(())
    }
}

// ---- seeds ------------------------------------------------------------------

/// A host-side seed: a directory, or a tar archive (gzip detected by magic).
#[derive(Debug, Clone)]
pub enum Seed {
    /// Tar the directory's contents.
    Directory(PathBuf),
    /// Send the archive's tar stream (decompressed if gzip).
    Archive(PathBuf),
}

impl Seed {
    /// Classifies a path; refuses anything else.
    pub fn open(path: &Path) -> Result<Seed, ArchiveError> {
        let meta =
            std::fs::metadata(path).map_err(|_| ArchiveError::Missing(path.to_path_buf()))?;
        if meta.is_dir() {
            return Ok(Seed::Directory(path.to_path_buf()));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if meta.is_file()
            && [".tar", ".tar.gz", ".tgz"]
                .iter()
                .any(|s| name.ends_with(s))
        {
            return Ok(Seed::Archive(path.to_path_buf()));
        }
        Err(ArchiveError::WrongKind(path.to_path_buf()))
    }

    /// `directory` or `archive`.
    pub fn mode(&self) -> &'static str {
        match self {
            Seed::Directory(_) => "directory",
            Seed::Archive(_) => "archive",
        }
    }

    /// The path.
    pub fn path(&self) -> &Path {
        match self {
            Seed::Directory(p) | Seed::Archive(p) => p,
        }
    }

    fn archive_reader(path: &Path) -> Result<Box<dyn Read>, ArchiveError> {
        let mut file = File::open(path).map_err(io_err("opening the seed archive"))?;
        let mut magic = [0u8; 2];
        let n = file
            .read(&mut magic)
            .map_err(io_err("reading the seed archive"))?;
        let file = File::open(path).map_err(io_err("opening the seed archive"))?;
        Ok(if n == 2 && magic == [0x1f, 0x8b] {
            Box::new(flate2::read::GzDecoder::new(BufReader::new(file)))
        } else {
            Box::new(BufReader::new(file))
        })
    }

    /// Checks the whole seed without sending anything: every archive entry
    /// and the entries against each other ([`validate`]), or every item of
    /// the directory (same rules; files opened, not read). Whatever passes
    /// unpacks into an empty directory.
    pub fn check(&self) -> Result<ArchiveStats, ArchiveError> {
        match self {
            Seed::Archive(p) => validate(Self::archive_reader(p)?),
            Seed::Directory(dir) => check_dir(dir),
        }
    }

    /// Writes the seed as a plain tar stream. A directory's symlinks are
    /// archived as symlinks, never followed.
    pub fn write_tar<W: Write>(&self, out: W) -> Result<(), ArchiveError> {
        match self {
            Seed::Archive(p) => {
                let mut out = out;
                io::copy(&mut Self::archive_reader(p)?, &mut out)
                    .map_err(io_err("reading the seed archive"))?;
                Ok(())
            }
            Seed::Directory(dir) => {
                let mut builder = tar::Builder::new(out);
                builder.follow_symlinks(false);
                builder.mode(tar::HeaderMode::Complete);
                builder
                    .append_dir_all(".", dir)
                    .map_err(io_err("reading the seed directory"))?;
                builder.finish().map_err(io_err("writing the seed"))
            }
        }
    }
}

/// An I/O failure on a seed directory item, naming it.
fn item_error(shown: &str, what: &str, e: io::Error) -> ArchiveError {
    unsafe_entry(shown, format!("{what}: {e}"))
}

/// Applies the entry rules to a directory tree without reading file
/// contents (a repository can be large). Never follows a symlink (they are
/// archived as symlinks) and refuses a directory that contains itself (a
/// bind mount loop), so the walk always ends. Every item is reached through
/// the same paths [`Seed::write_tar`] uses, so what passes can be archived.
fn check_dir(root: &Path) -> Result<ArchiveStats, ArchiveError> {
    let mut stats = ArchiveStats::default();
    let root_meta = std::fs::metadata(root).map_err(io_err("reading the seed directory"))?;
    // Directories still to list, each with the (dev, inode) of itself and
    // its ancestors.
    let mut stack: Vec<(PathBuf, Vec<(u64, u64)>)> =
        vec![(PathBuf::new(), vec![(root_meta.dev(), root_meta.ino())])];
    while let Some((rel, ancestors)) = stack.pop() {
        let shown_dir = if rel.as_os_str().is_empty() {
            ".".to_string()
        } else {
            show(&rel)
        };
        let read = std::fs::read_dir(root.join(&rel))
            .map_err(|e| item_error(&shown_dir, "the directory cannot be listed", e))?;
        for item in read {
            let item =
                item.map_err(|e| item_error(&shown_dir, "the directory cannot be listed", e))?;
            let name = item.file_name();
            let rel_path = rel.join(&name);
            let shown = show(&rel_path);
            check_name(&name, &shown)?;
            let len = rel_path.as_os_str().len();
            if len > MAX_PATH_BYTES {
                return Err(unsafe_entry(
                    &shown,
                    format!("the path is {len} bytes long; at most {MAX_PATH_BYTES} are allowed"),
                ));
            }
            let path = item.path();
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|e| item_error(&shown, "it cannot be read", e))?;
            let kind = meta.file_type();
            stats.entry_count += 1;
            if kind.is_symlink() {
                let target = std::fs::read_link(&path)
                    .map_err(|e| item_error(&shown, "the symlink cannot be read", e))?;
                check_link_target(&target, &shown)?;
            } else if kind.is_dir() {
                let id = (meta.dev(), meta.ino());
                if ancestors.contains(&id) {
                    return Err(unsafe_entry(
                        &shown,
                        "the directory contains itself (a bind mount loop?)",
                    ));
                }
                let mut ancestors = ancestors.clone();
                ancestors.push(id);
                stack.push((rel_path, ancestors));
            } else if kind.is_file() {
                // Opened (not read) so an unreadable file is refused now,
                // not halfway through sending the seed. O_NOFOLLOW and
                // O_NONBLOCK: a file swapped for a symlink or a FIFO since
                // the stat is an error, never followed or waited on.
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(&path)
                    .map_err(|e| item_error(&shown, "the file cannot be read", e))?;
                stats.bytes += meta.len();
            } else {
                return Err(unsafe_entry(
                    &shown,
                    "special files (devices, FIFOs, sockets) are not allowed",
                ));
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests;

//! Read a stopped workspace's disk on the host, without booting it and
//! without root: no loop mounts, no `qemu-nbd`.
//!
//! A workspace disk is a qcow2 overlay over a read-only raw ext4 base
//! image. [`Disk::open`] opens either a qcow2 file (following its backing
//! chain) or a raw image, then the ext4 file system in it, through the
//! [`ext4-view`](ext4_view) crate (pure Rust, read-only, no `unsafe`,
//! replays a dirty journal in memory). [`Disk::list`] and [`Disk::read`]
//! look inside; [`Disk::export_raw`] writes a standalone sparse raw image.
//!
//! **The file system is hostile.** A guest running as root can write any
//! bytes to its ext4, so everything read from it is checked: errors, never
//! panics or unbounded allocations (the superblock's size is checked
//! against the image before loading, symlink targets are capped at
//! [`MAX_PATH_BYTES`], file reads at the caller's `max_bytes`, listings at
//! [`MAX_LIST_ENTRIES`]; as a last line of defence a panic inside the
//! reader is caught and reported as [`DiskError::Corrupt`]). The qcow2
//! metadata is written by QEMU on the host but is validated as well.
//!
//! **Symlinks are never followed**, at any component of a path: a path
//! that goes through a symlink is [`DiskError::CrossesSymlink`]; a symlink
//! itself is listed with its target.
//!
//! **Memory stays bounded** whatever the image size: at most 1 MiB of
//! qcow2 L2 tables per image in the chain, the L1 table (1 KiB per 64 GiB
//! with 64 KiB clusters, capped at 32 MiB), ext4-view's block cache
//! (256 blocks) and a 1 MiB export buffer.
//!
//! [`Disk`] is `Send + Sync`: it holds the opened image and loads the
//! file system's superblock, group descriptors and journal afresh for each
//! call (a few small reads).
#![deny(missing_docs)]

mod error;
mod fs;
mod image;
mod qcow2;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

pub use error::DiskError;
pub use image::{BlockDevice, Image, ImageFormat, MAX_BACKING_DEPTH};
pub use qcow2::{L2_CACHE_BYTES, MAX_L1_BYTES};

use ext4_view::{Ext4, Metadata};

/// Most entries [`Disk::list`] returns; more is [`DiskError::TooManyEntries`].
pub const MAX_LIST_ENTRIES: usize = 1_000_000;

/// Longest guest path (and symlink target) handled, in bytes (Linux
/// `PATH_MAX` less the terminating NUL).
pub const MAX_PATH_BYTES: usize = 4095;

/// Longest path component, in bytes (Linux `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// Size of the buffer [`Disk::export_raw`] streams through.
pub const EXPORT_BUFFER_BYTES: usize = 1 << 20;

/// Runs of zeros at least this long (and aligned to it) become holes in
/// an export.
const EXPORT_HOLE_GRANULE: usize = 4096;

/// A disk image opened for reading, with the ext4 file system in it.
#[derive(Debug)]
pub struct Disk {
    image: Arc<Image>,
}

/// One file, directory, symlink or other node in the guest file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskEntry {
    /// Absolute guest path. Bytes of a name that are not UTF-8 are shown
    /// as U+FFFD (such a path cannot be passed back to [`Disk::read`]).
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// Size in bytes as the inode records it (for a directory, the space
    /// its entries take; for a symlink, its target's length).
    pub size_bytes: u64,
    /// For a symlink, where it points (as stored, never resolved).
    pub link_target: Option<String>,
    /// Permission bits (`mode & 0o7777`); the file type is in `kind`.
    pub mode: u32,
}

/// Kind of a [`DiskEntry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A FIFO, socket or device node.
    Other,
}

impl EntryKind {
    /// `"file"`, `"directory"`, `"symlink"` or `"other"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Directory => "directory",
            EntryKind::Symlink => "symlink",
            EntryKind::Other => "other",
        }
    }
}

/// The result of [`Disk::read`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskRead {
    /// The normalized guest path read.
    pub path: String,
    /// The file's full size.
    pub size_bytes: u64,
    /// Its first `min(size_bytes, max_bytes)` bytes.
    pub content: Vec<u8>,
    /// Whether `content` is shorter than the file.
    pub truncated: bool,
}

impl Disk {
    /// Opens the image at `path` (qcow2 with its backing chain, or raw,
    /// told apart by the qcow2 magic) and checks that it holds an ext4
    /// file system this reader can handle.
    pub fn open(path: &Path) -> Result<Disk, DiskError> {
        Disk::from_image(Image::open(path)?)
    }

    /// Like [`Disk::open`] for an image already opened.
    pub fn from_image(image: Image) -> Result<Disk, DiskError> {
        let disk = Disk {
            image: Arc::new(image),
        };
        guard("opening the file system", || disk.fs().map(drop))?;
        Ok(disk)
    }

    /// The underlying image.
    pub fn image(&self) -> &Image {
        &self.image
    }

    fn fs(&self) -> Result<Ext4, DiskError> {
        fs::load(&self.image)
    }

    /// Entries at `path` (absolute guest path like `/workspace` or
    /// `/workspace/src`). A directory lists its children (and with
    /// `recursive`, all descendants), sorted by path component by
    /// component (so a directory's descendants follow it directly); a file
    /// or symlink gives just itself. Symlinks are never followed, at any
    /// component: a path crossing a symlink is an error.
    pub fn list(&self, path: &str, recursive: bool) -> Result<Vec<DiskEntry>, DiskError> {
        let guest = GuestPath::parse(path)?;
        guard("listing a directory", || {
            let fs = self.fs()?;
            let meta = fs::resolve_nofollow(&fs, &guest)?;
            if !meta.is_dir() {
                return Ok(vec![entry(&fs, guest.to_string(), &meta)?]);
            }
            let mut out = Vec::new();
            fs::walk(&fs, &guest.to_string(), recursive, |path, meta| {
                if out.len() >= MAX_LIST_ENTRIES {
                    return Err(DiskError::TooManyEntries {
                        path: guest.to_string(),
                        limit: MAX_LIST_ENTRIES,
                    });
                }
                out.push(entry(&fs, path, meta)?);
                Ok(())
            })?;
            out.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
            Ok(out)
        })
    }

    /// Up to `max_bytes` of a regular file: its full size, the content and
    /// whether the content was cut short. Anything but a regular file
    /// (a directory, a symlink, a device) is an error.
    pub fn read(&self, path: &str, max_bytes: u64) -> Result<DiskRead, DiskError> {
        let guest = GuestPath::parse(path)?;
        guard("reading a file", || {
            let fs = self.fs()?;
            let norm = guest.to_string();
            let meta = fs::resolve_nofollow(&fs, &guest)?;
            let ft = meta.file_type();
            if !ft.is_regular_file() {
                let kind = if ft.is_dir() {
                    "a directory".to_string()
                } else if ft.is_symlink() {
                    format!(
                        "a symbolic link to {}; symbolic links are not followed",
                        fs::link_target(&fs, &norm, &meta)?
                    )
                } else {
                    "a special file".to_string()
                };
                return Err(DiskError::NotAFile { path: norm, kind });
            }
            let size = meta.len();
            let content = fs::read_prefix(&fs, &norm, size.min(max_bytes))?;
            Ok(DiskRead {
                truncated: (content.len() as u64) < size,
                path: norm,
                size_bytes: size,
                content,
            })
        })
    }

    /// Writes the whole image (its guest-visible bytes) as a standalone
    /// sparse raw file at `out` and returns its size in bytes. `out` is
    /// created with `create_new`: an existing path is refused. Runs of
    /// zeros are left as holes (seeked over, not written). Streamed
    /// through a fixed [`EXPORT_BUFFER_BYTES`] buffer. On error the
    /// partial file is removed. An existing `out` is
    /// [`DiskError::Io`] with an [`io::ErrorKind::AlreadyExists`] source.
    pub fn export_raw(&self, out: &Path) -> Result<u64, DiskError> {
        let file = match OpenOptions::new().write(true).create_new(true).open(out) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(DiskError::io(
                    format!(
                        "{} already exists; refusing to overwrite it, choose a new path",
                        out.display()
                    ),
                    e,
                ))
            }
            Err(e) => return Err(DiskError::io(format!("creating {}", out.display()), e)),
        };
        let result = export(&self.image, &file, out);
        if result.is_err() {
            drop(file);
            let _ = std::fs::remove_file(out);
        }
        result
    }
}

static ZEROS: [u8; EXPORT_HOLE_GRANULE] = [0; EXPORT_HOLE_GRANULE];

fn export(image: &Image, file: &File, out: &Path) -> Result<u64, DiskError> {
    let size = image.size();
    let write_err = |e| DiskError::io(format!("writing {}", out.display()), e);
    let mut buf = vec![0u8; EXPORT_BUFFER_BYTES];
    let mut pos = 0u64;
    while pos < size {
        let len = (size - pos).min(EXPORT_BUFFER_BYTES as u64);
        let zeros = image.known_zeros(pos, len)?;
        if zeros > 0 {
            pos += zeros;
            continue;
        }
        let chunk = &mut buf[..len as usize];
        image.read_at(pos, chunk)?;
        // Write each run of non-zero granules in one go.
        let mut run_start: Option<usize> = None;
        for (i, granule) in chunk.chunks(EXPORT_HOLE_GRANULE).enumerate() {
            let at = i * EXPORT_HOLE_GRANULE;
            // A slice comparison is a memcmp: fast even unoptimized.
            let zero = granule == &ZEROS[..granule.len()];
            match (zero, run_start) {
                (false, None) => run_start = Some(at),
                (true, Some(start)) => {
                    file.write_all_at(&chunk[start..at], pos + start as u64)
                        .map_err(write_err)?;
                    run_start = None;
                }
                _ => {}
            }
        }
        if let Some(start) = run_start {
            file.write_all_at(&chunk[start..], pos + start as u64)
                .map_err(write_err)?;
        }
        pos += len;
    }
    file.set_len(size).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    Ok(size)
}

fn entry(fs: &Ext4, path: String, meta: &Metadata) -> Result<DiskEntry, DiskError> {
    let ft = meta.file_type();
    let kind = if ft.is_regular_file() {
        EntryKind::File
    } else if ft.is_dir() {
        EntryKind::Directory
    } else if ft.is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::Other
    };
    let link_target = if kind == EntryKind::Symlink {
        Some(fs::link_target(fs, &path, meta)?)
    } else {
        None
    };
    Ok(DiskEntry {
        size_bytes: meta.len(),
        mode: u32::from(meta.mode()) & 0o7777,
        path,
        kind,
        link_target,
    })
}

/// Runs `f`, turning a panic inside the file system reader (a bug, most
/// likely on damaged data) into an error.
fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, DiskError>) -> Result<T, DiskError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(_) => Err(DiskError::Corrupt(format!(
            "internal error while {what}: the file system reader panicked on damaged data \
             (a bug in pyro-disk)"
        ))),
    }
}

/// An absolute, normalized guest path, as components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GuestPath {
    components: Vec<String>,
}

impl GuestPath {
    /// Accepts `/`, `/a`, `/a/b` and the same with one trailing slash;
    /// refuses relative paths, empty components, `.`, `..` and NUL bytes.
    pub(crate) fn parse(path: &str) -> Result<GuestPath, DiskError> {
        let bad = |reason: &str| DiskError::InvalidPath {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        let Some(body) = path.strip_prefix('/') else {
            return Err(bad("must be absolute (start with /)"));
        };
        if path.len() > MAX_PATH_BYTES {
            return Err(bad(&format!("longer than {MAX_PATH_BYTES} bytes")));
        }
        if path.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        let body = body.strip_suffix('/').unwrap_or(body);
        let mut components = Vec::new();
        if !body.is_empty() {
            for c in body.split('/') {
                match c {
                    "" => return Err(bad("has an empty component (//)")),
                    "." | ".." => return Err(bad("must be normalized (no . or .. components)")),
                    c if c.len() > MAX_NAME_BYTES => {
                        return Err(bad(&format!(
                            "has a component longer than {MAX_NAME_BYTES} bytes"
                        )))
                    }
                    c => components.push(c.to_string()),
                }
            }
        }
        Ok(GuestPath { components })
    }

    pub(crate) fn components(&self) -> &[String] {
        &self.components
    }
}

impl std::fmt::Display for GuestPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.components.is_empty() {
            return f.write_str("/");
        }
        for c in &self.components {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_must_be_absolute_and_normalized() {
        let ok = |p: &str| GuestPath::parse(p).unwrap().to_string();
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("/workspace"), "/workspace");
        assert_eq!(ok("/workspace/"), "/workspace");
        assert_eq!(ok("/workspace/src/a.rs"), "/workspace/src/a.rs");
        assert_eq!(ok("/a b/ü"), "/a b/ü");
        for bad in [
            "",
            "workspace",
            "./workspace",
            "/workspace//src",
            "/workspace/./src",
            "/workspace/..",
            "/workspace/../etc",
            "/workspace//",
            "/a\0b",
        ] {
            let err = GuestPath::parse(bad).unwrap_err();
            assert!(
                matches!(err, DiskError::InvalidPath { .. }),
                "{bad:?}: {err}"
            );
        }
        assert!(GuestPath::parse(&format!("/{}", "a".repeat(256))).is_err());
        assert!(GuestPath::parse(&format!("/{}", "a".repeat(255))).is_ok());
        assert!(GuestPath::parse(&"/a".repeat(2048)).is_err());
    }

    #[test]
    fn disk_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Disk>();
        check::<Image>();
        check::<DiskError>();
    }

    #[test]
    fn panics_become_errors() {
        let err = guard::<()>("testing", || panic!("boom")).unwrap_err();
        assert!(err.to_string().contains("internal error"), "{err}");
    }
}

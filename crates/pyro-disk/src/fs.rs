//! The ext4 file system in an image, through `ext4-view`.

use std::sync::Arc;

use ext4_view::{Ext4, Ext4Error, Ext4Read, Metadata, PathBuf as ExtPath};

use crate::error::DiskError;
use crate::image::Image;
use crate::{GuestPath, MAX_PATH_BYTES};

/// Most block groups accepted. A 4 KiB-block ext4 has one group per
/// 128 MiB, so this is 128 TiB; a hostile superblock claiming more would
/// make the reader allocate a descriptor for each.
const MAX_BLOCK_GROUPS: u64 = 1 << 20;

const EXT4_MAGIC: u16 = 0xef53;
const INCOMPAT_64BIT: u32 = 0x80;

/// Lets `ext4-view` read the image; errors travel as `DiskError` and are
/// unwrapped again in [`ext4_error`].
struct Reader(Arc<Image>);

impl Ext4Read for Reader {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        self.0
            .read_at(start_byte, dst)
            .map_err(|e| Box::new(e).into())
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks the superblock's geometry against the image before handing it
/// to the reader, then loads the file system.
pub(crate) fn load(image: &Arc<Image>) -> Result<Ext4, DiskError> {
    let size = image.size();
    let path = image.path().display();
    if size < 2048 {
        return Err(DiskError::Corrupt(format!(
            "{path} holds a {size}-byte disk, too small for an ext4 file system"
        )));
    }
    let mut sb = [0u8; 1024];
    image.read_at(1024, &mut sb)?;
    if le16(&sb, 0x38) != EXT4_MAGIC {
        return Err(DiskError::Corrupt(format!(
            "no ext4 file system in {path} (no ext2/3/4 superblock magic at offset 1024); is \
             it a workspace disk?"
        )));
    }
    let bad = |what: String| {
        DiskError::Corrupt(format!("the ext4 superblock in {path} is invalid: {what}"))
    };
    let log_block_size = le32(&sb, 0x18);
    if log_block_size > 6 {
        return Err(bad(format!("block size 2^(10+{log_block_size})")));
    }
    let block_size = 1024u64 << log_block_size;
    let mut blocks = u64::from(le32(&sb, 0x04));
    if le32(&sb, 0x60) & INCOMPAT_64BIT != 0 {
        blocks |= u64::from(le32(&sb, 0x150)) << 32;
    }
    match blocks.checked_mul(block_size) {
        Some(bytes) if bytes <= size => {}
        _ => {
            return Err(bad(format!(
                "it claims {blocks} blocks of {block_size} bytes but the disk holds only \
                 {size} bytes"
            )))
        }
    }
    let per_group = u64::from(le32(&sb, 0x20));
    let first = u64::from(le32(&sb, 0x14));
    if per_group == 0 {
        return Err(bad("zero blocks per group".into()));
    }
    let groups = blocks.saturating_sub(first).div_ceil(per_group);
    if groups > MAX_BLOCK_GROUPS {
        return Err(bad(format!(
            "{groups} block groups (more than {MAX_BLOCK_GROUPS})"
        )));
    }
    Ext4::load(Box::new(Reader(Arc::clone(image)))).map_err(|e| ext4_error(e, "/"))
}

/// Turns an `ext4-view` error met while handling `path` into ours.
pub(crate) fn ext4_error(err: Ext4Error, path: &str) -> DiskError {
    match err {
        Ext4Error::NotFound => DiskError::NotFound(path.to_string()),
        Ext4Error::NotADirectory => DiskError::NotADirectory(path.to_string()),
        Ext4Error::IsADirectory => DiskError::NotAFile {
            path: path.to_string(),
            kind: "a directory".into(),
        },
        Ext4Error::IsASpecialFile => DiskError::NotAFile {
            path: path.to_string(),
            kind: "a special file".into(),
        },
        Ext4Error::Encrypted => DiskError::Unsupported(format!(
            "{path} is encrypted (fscrypt); encrypted files are not supported"
        )),
        Ext4Error::Io(inner) => match inner.downcast::<DiskError>() {
            Ok(ours) => *ours,
            Err(other) => DiskError::io(
                format!("reading the file system at {path}"),
                std::io::Error::other(other),
            ),
        },
        Ext4Error::Incompatible(what) => DiskError::Unsupported(format!(
            "the ext4 file system uses a feature this reader does not support ({what})"
        )),
        Ext4Error::Corrupt(what) => DiskError::Corrupt(format!(
            "the ext4 file system is damaged ({what}), met at {path}"
        )),
        other => DiskError::Corrupt(format!(
            "the ext4 file system could not be read at {path}: {other}"
        )),
    }
}

/// Metadata of `path`, refusing to go through a symlink at any component
/// (the last component may be a symlink: its own metadata is returned).
///
/// Every prefix is looked up with `symlink_metadata`, which follows
/// symlinks only in the components before the last; as each of those was
/// checked not to be a symlink already, nothing is ever followed.
pub(crate) fn resolve_nofollow(fs: &Ext4, path: &GuestPath) -> Result<Metadata, DiskError> {
    let full = path.to_string();
    let comps = path.components();
    if comps.is_empty() {
        return fs.symlink_metadata("/").map_err(|e| ext4_error(e, "/"));
    }
    let mut prefix = String::with_capacity(full.len());
    for (i, c) in comps.iter().enumerate() {
        prefix.push('/');
        prefix.push_str(c);
        let meta = fs.symlink_metadata(prefix.as_str()).map_err(|e| match e {
            Ext4Error::NotFound => DiskError::NotFound(full.clone()),
            e => ext4_error(e, &prefix),
        })?;
        if i + 1 == comps.len() {
            return Ok(meta);
        }
        if meta.is_symlink() {
            let target = link_target(fs, &prefix, &meta)?;
            return Err(DiskError::CrossesSymlink {
                path: full,
                symlink: prefix,
                target,
            });
        }
        if !meta.is_dir() {
            return Err(DiskError::NotADirectory(prefix));
        }
    }
    unreachable!("the loop returns at the last component")
}

/// The target of the symlink at `path` (whose metadata is `meta`), with
/// non-UTF-8 bytes as U+FFFD. Targets longer than [`MAX_PATH_BYTES`] are
/// refused before reading, so a hostile size cannot force a huge read.
pub(crate) fn link_target(fs: &Ext4, path: &str, meta: &Metadata) -> Result<String, DiskError> {
    let len = meta.len();
    if len == 0 || len > MAX_PATH_BYTES as u64 {
        return Err(DiskError::Corrupt(format!(
            "the symbolic link {path} has an invalid target length ({len} bytes)"
        )));
    }
    let target = fs.read_link(path).map_err(|e| ext4_error(e, path))?;
    Ok(String::from_utf8_lossy(target.as_ref()).into_owned())
}

/// Calls `each` for every entry of the directory `dir` (not `.` or `..`),
/// and with `recursive` for every entry below it, depth first. Only real
/// directories are descended into, never symlinks.
pub(crate) fn walk(
    fs: &Ext4,
    dir: &str,
    recursive: bool,
    mut each: impl FnMut(String, &Metadata) -> Result<(), DiskError>,
) -> Result<(), DiskError> {
    let start = ExtPath::try_from(dir).map_err(|e| DiskError::InvalidPath {
        path: dir.to_string(),
        reason: e.to_string(),
    })?;
    let mut stack = vec![(start, dir.to_string())];
    while let Some((dir_raw, dir_shown)) = stack.pop() {
        let entries = fs
            .read_dir(&dir_raw)
            .map_err(|e| ext4_error(e, &dir_shown))?;
        for entry in entries {
            let entry = entry.map_err(|e| ext4_error(e, &dir_shown))?;
            let name = entry.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let mut shown = dir_shown.clone();
            if !shown.ends_with('/') {
                shown.push('/');
            }
            shown.push_str(&String::from_utf8_lossy(name.as_ref()));
            let raw = entry.path();
            if raw.as_ref().len() > MAX_PATH_BYTES {
                return Err(DiskError::Unsupported(format!(
                    "{shown}: path longer than {MAX_PATH_BYTES} bytes"
                )));
            }
            let meta = entry.metadata().map_err(|e| ext4_error(e, &shown))?;
            let is_dir = meta.is_dir();
            each(shown.clone(), &meta)?;
            if recursive && is_dir {
                stack.push((raw, shown));
            }
        }
    }
    Ok(())
}

/// The first `len` bytes of the regular file at `path` (fewer if the
/// file ends early). Memory grows with what is actually read, not with
/// the size the inode claims.
pub(crate) fn read_prefix(fs: &Ext4, path: &str, len: u64) -> Result<Vec<u8>, DiskError> {
    let mut file = fs.open(path).map_err(|e| ext4_error(e, path))?;
    let mut content = Vec::with_capacity(len.min(1 << 20) as usize);
    let mut chunk = vec![0u8; 64 << 10];
    while (content.len() as u64) < len {
        let want = (len - content.len() as u64).min(chunk.len() as u64) as usize;
        let got = file
            .read_bytes(&mut chunk[..want])
            .map_err(|e| ext4_error(e, path))?;
        if got == 0 {
            break;
        }
        content.extend_from_slice(&chunk[..got]);
    }
    Ok(content)
}

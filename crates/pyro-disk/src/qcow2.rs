//! Read-only qcow2 (versions 2 and 3).
//!
//! Only what a QEMU overlay needs: the header, the active L1 table, L2
//! tables (cached, bounded LRU) and the backing chain. Unallocated clusters
//! read from the backing image (zeros past its end, or with no backing
//! file); zero clusters read as zeros. Compressed clusters, encryption,
//! external data files, extended L2 entries and unknown incompatible
//! features are refused. Snapshots are ignored (the active L1 table is the
//! disk's current state); refcounts are never read.
//!
//! The header is written by QEMU on the host, not by the guest, but it is
//! still checked: every offset is validated against the file, and the L1
//! table is capped at [`MAX_L1_BYTES`], so a damaged file gives an error
//! rather than a panic or a huge allocation.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::DiskError;
use crate::image::{check_range, read_full_at, Image, ImageFormat, MAX_BACKING_DEPTH};

/// First four bytes of every qcow2 file.
pub(crate) const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";

/// Largest L1 table loaded (QEMU's own limit). With 64 KiB clusters this
/// covers 2 PiB of virtual disk.
pub const MAX_L1_BYTES: u64 = 32 << 20;

/// Memory for cached L2 tables per image in a chain (at least one table
/// is always cached).
pub const L2_CACHE_BYTES: u64 = 1 << 20;

const V2_HEADER_LEN: u64 = 72;
const V3_HEADER_LEN: u64 = 104;
const MIN_CLUSTER_BITS: u32 = 9;
const MAX_CLUSTER_BITS: u32 = 21;
const MAX_BACKING_NAME: u32 = 1023;

const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const OFLAG_COMPRESSED: u64 = 1 << 62;
const OFLAG_ZERO: u64 = 1;

const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;
const INCOMPAT_KNOWN: u64 =
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;

const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;

/// Where a guest cluster's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mapping {
    /// Host offset of the cluster in this file.
    Data(u64),
    /// Reads as zeros.
    Zero,
    /// Not in this file: from the backing image, or zeros without one.
    Unallocated,
}

pub(crate) struct Qcow2 {
    file: File,
    path: PathBuf,
    file_len: u64,
    version: u32,
    cluster_bits: u32,
    size: u64,
    l1: Vec<u64>,
    backing: Option<Box<Image>>,
    l2_cache: Mutex<L2Cache>,
}

impl fmt::Debug for Qcow2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Qcow2")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("cluster_size", &self.cluster_size())
            .field("size", &self.size)
            .field("backing", &self.backing)
            .finish_non_exhaustive()
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

impl Qcow2 {
    /// Parses the header of `file` (`file_len` bytes, opened from `path`)
    /// and opens its backing chain. `depth` counts this image in the chain.
    pub(crate) fn open(
        file: File,
        path: &Path,
        file_len: u64,
        depth: usize,
    ) -> Result<Qcow2, DiskError> {
        let p = path.display();
        let corrupt = |what: String| DiskError::Corrupt(format!("qcow2 image {p}: {what}"));
        let unsupported = |what: String| DiskError::Unsupported(format!("qcow2 image {p}: {what}"));
        let read = |buf: &mut [u8], at: u64, what: &str| -> Result<(), DiskError> {
            let n = read_full_at(&file, buf, at)
                .map_err(|e| DiskError::io(format!("reading the {what} of {p}"), e))?;
            if n < buf.len() {
                return Err(DiskError::Corrupt(format!(
                    "qcow2 image {p}: the {what} ({} bytes at offset {at}) lies beyond the end of \
                     the file ({file_len} bytes); the file is truncated",
                    buf.len()
                )));
            }
            Ok(())
        };

        let mut hdr = [0u8; V3_HEADER_LEN as usize];
        let hdr_len = file_len.min(V3_HEADER_LEN) as usize;
        if (hdr_len as u64) < V2_HEADER_LEN {
            return Err(corrupt(format!(
                "the file is only {file_len} bytes, too short for a qcow2 header; it is truncated"
            )));
        }
        read(&mut hdr[..hdr_len], 0, "header")?;
        if hdr[0..4] != QCOW2_MAGIC {
            return Err(corrupt(
                "no qcow2 magic (QFI\\xfb) at the start of the file".into(),
            ));
        }
        let version = be32(&hdr, 4);
        if version != 2 && version != 3 {
            return Err(unsupported(format!(
                "qcow2 version {version} is not supported (only versions 2 and 3)"
            )));
        }
        let backing_offset = be64(&hdr, 8);
        let backing_len = be32(&hdr, 16);
        let cluster_bits = be32(&hdr, 20);
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
            return Err(corrupt(format!(
                "cluster_bits {cluster_bits} is outside {MIN_CLUSTER_BITS}..={MAX_CLUSTER_BITS}"
            )));
        }
        let cluster_size = 1u64 << cluster_bits;
        let size = be64(&hdr, 24);
        let crypt_method = be32(&hdr, 32);
        let l1_size = be32(&hdr, 36);
        let l1_offset = be64(&hdr, 40);

        let (incompat, header_len) = if version == 3 {
            if (hdr_len as u64) < V3_HEADER_LEN {
                return Err(corrupt(format!(
                    "the file is only {file_len} bytes, too short for a version 3 header; it is \
                     truncated"
                )));
            }
            let header_len = u64::from(be32(&hdr, 100));
            if header_len < V3_HEADER_LEN || header_len > cluster_size {
                return Err(corrupt(format!("header_length {header_len} is invalid")));
            }
            (be64(&hdr, 72), header_len)
        } else {
            (0, V2_HEADER_LEN)
        };

        if crypt_method != 0 {
            return Err(unsupported(
                "the image is encrypted; encrypted qcow2 images are not supported".into(),
            ));
        }
        if incompat & INCOMPAT_CORRUPT != 0 {
            return Err(corrupt(format!(
                "QEMU has marked the image corrupt; check and repair it with \
                 `qemu-img check -r all {p}`"
            )));
        }
        if incompat & INCOMPAT_DATA_FILE != 0 {
            return Err(unsupported(
                "the image keeps its data in an external data file; not supported".into(),
            ));
        }
        if incompat & INCOMPAT_EXTL2 != 0 {
            return Err(unsupported(
                "the image uses extended L2 entries (subclusters); not supported".into(),
            ));
        }
        if incompat & !INCOMPAT_KNOWN != 0 {
            return Err(unsupported(format!(
                "unknown incompatible feature bits {:#x} (written by a newer QEMU?)",
                incompat & !INCOMPAT_KNOWN
            )));
        }

        // The L1 table: only the entries that cover the virtual size.
        let l2_entries_bits = cluster_bits - 3;
        let bytes_per_l1_entry = 1u64 << (cluster_bits + l2_entries_bits);
        let l1_needed = size.div_ceil(bytes_per_l1_entry);
        if l1_needed > u64::from(l1_size) {
            return Err(corrupt(format!(
                "the L1 table has {l1_size} entries but the virtual size ({size} bytes) needs \
                 {l1_needed}"
            )));
        }
        if l1_needed * 8 > MAX_L1_BYTES {
            return Err(unsupported(format!(
                "a virtual size of {size} bytes with {cluster_size}-byte clusters needs an L1 \
                 table larger than {} MiB",
                MAX_L1_BYTES >> 20
            )));
        }
        let mut l1 = Vec::new();
        if l1_needed > 0 {
            if !l1_offset.is_multiple_of(cluster_size) {
                return Err(corrupt(format!(
                    "the L1 table offset {l1_offset:#x} is not cluster aligned"
                )));
            }
            let mut raw = vec![0u8; (l1_needed * 8) as usize];
            read(&mut raw, l1_offset, "L1 table")?;
            l1 = raw.chunks_exact(8).map(|c| be64(c, 0)).collect();
        }

        let has_backing = backing_offset != 0 && backing_len != 0;
        if has_backing
            && (backing_len > MAX_BACKING_NAME
                || backing_offset < header_len
                || backing_offset
                    .checked_add(u64::from(backing_len))
                    .is_none_or(|end| end > cluster_size))
        {
            return Err(corrupt(format!(
                "the backing file name ({backing_len} bytes at offset {backing_offset}) is invalid"
            )));
        }

        // Header extensions: between the header and the backing file name
        // (or the end of the first cluster).
        let ext_end = if has_backing {
            backing_offset.min(cluster_size)
        } else {
            cluster_size
        }
        .min(file_len);
        let mut backing_format = None;
        if ext_end > header_len {
            let mut ext = vec![0u8; (ext_end - header_len) as usize];
            read(&mut ext, header_len, "header extensions")?;
            let mut at = 0usize;
            while at + 8 <= ext.len() {
                let kind = be32(&ext, at);
                let len = be32(&ext, at + 4) as usize;
                at += 8;
                if kind == EXT_END {
                    break;
                }
                if len > ext.len() - at {
                    return Err(corrupt(format!(
                        "header extension {kind:#x} runs past the end of the first cluster"
                    )));
                }
                if kind == EXT_BACKING_FORMAT {
                    backing_format = Some(String::from_utf8_lossy(&ext[at..at + len]).into_owned());
                }
                at += len.next_multiple_of(8).min(ext.len() - at);
            }
        }

        // The backing file.
        let mut backing = None;
        if has_backing {
            let mut name = vec![0u8; backing_len as usize];
            read(&mut name, backing_offset, "backing file name")?;
            let backing_path = resolve_backing(path, &name).map_err(unsupported)?;
            let format = match backing_format.as_deref() {
                None => None,
                Some("raw") => Some(ImageFormat::Raw),
                Some("qcow2") => Some(ImageFormat::Qcow2),
                Some(other) => {
                    return Err(unsupported(format!(
                        "its backing file {} has format {other:?}; only raw and qcow2 are \
                         supported",
                        backing_path.display()
                    )))
                }
            };
            if depth >= MAX_BACKING_DEPTH {
                return Err(unsupported(format!(
                    "the backing chain is deeper than {MAX_BACKING_DEPTH} images (a loop?) at \
                     backing file {}",
                    backing_path.display()
                )));
            }
            backing = Some(Box::new(Image::open_inner(
                &backing_path,
                format,
                depth + 1,
            )?));
        }

        let cache_slots = (L2_CACHE_BYTES >> cluster_bits).max(1) as usize;
        Ok(Qcow2 {
            file,
            path: path.to_path_buf(),
            file_len,
            version,
            cluster_bits,
            size,
            l1,
            backing,
            l2_cache: Mutex::new(L2Cache::new(cache_slots)),
        })
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn backing(&self) -> Option<&Image> {
        self.backing.as_deref()
    }

    fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    fn corrupt(&self, what: String) -> DiskError {
        DiskError::Corrupt(format!("qcow2 image {}: {what}", self.path.display()))
    }

    fn truncated(&self, what: &str, offset: u64) -> DiskError {
        self.corrupt(format!(
            "the {what} at offset {offset:#x} lies beyond the end of the file ({} bytes); the \
             file is truncated",
            self.file_len
        ))
    }

    /// Where guest cluster `index` is.
    fn map(&self, index: u64) -> Result<Mapping, DiskError> {
        let cs = self.cluster_size();
        let l2_bits = self.cluster_bits - 3;
        let l1_index = index >> l2_bits;
        let l2_index = (index & ((1 << l2_bits) - 1)) as usize;
        let l1_entry = usize::try_from(l1_index)
            .ok()
            .and_then(|i| self.l1.get(i))
            .copied()
            .ok_or_else(|| self.corrupt(format!("cluster {index} is outside the L1 table")))?;
        let l2_offset = l1_entry & OFFSET_MASK;
        if l2_offset == 0 {
            return Ok(Mapping::Unallocated);
        }
        if !l2_offset.is_multiple_of(cs) {
            return Err(self.corrupt(format!(
                "L1 entry {l1_index} points to an unaligned L2 table at {l2_offset:#x}"
            )));
        }
        if l2_offset
            .checked_add(cs)
            .is_none_or(|end| end > self.file_len)
        {
            return Err(self.truncated("L2 table", l2_offset));
        }
        let entry = self.l2_entry(l2_offset, l2_index)?;
        if entry & OFLAG_COMPRESSED != 0 {
            return Err(DiskError::Unsupported(format!(
                "compressed qcow2 clusters are not supported ({} has some); rewrite it without \
                 compression with `qemu-img convert -O qcow2`",
                self.path.display()
            )));
        }
        if entry & OFLAG_ZERO != 0 {
            if self.version < 3 {
                return Err(self.corrupt(format!(
                    "zero cluster entry for cluster {index} in a version 2 image"
                )));
            }
            return Ok(Mapping::Zero);
        }
        let host = entry & OFFSET_MASK;
        if host == 0 {
            return Ok(Mapping::Unallocated);
        }
        if !host.is_multiple_of(cs) {
            return Err(self.corrupt(format!(
                "cluster {index} points to unaligned data at {host:#x}"
            )));
        }
        if host >= self.file_len {
            return Err(self.truncated("data cluster", host));
        }
        Ok(Mapping::Data(host))
    }

    fn l2_entry(&self, l2_offset: u64, index: usize) -> Result<u64, DiskError> {
        let mut cache = self
            .l2_cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.entry(l2_offset, index, || {
            let mut raw = vec![0u8; self.cluster_size() as usize];
            let n = read_full_at(&self.file, &mut raw, l2_offset).map_err(|e| {
                DiskError::io(format!("reading an L2 table of {}", self.path.display()), e)
            })?;
            if n < raw.len() {
                return Err(self.truncated("L2 table", l2_offset));
            }
            Ok(raw.chunks_exact(8).map(|c| be64(c, 0)).collect())
        })
    }

    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        check_range(&self.path, offset, buf.len(), self.size)?;
        let cs = self.cluster_size();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let within = pos % cs;
            let n = ((cs - within) as usize).min(buf.len() - done);
            let chunk = &mut buf[done..done + n];
            match self.map(pos >> self.cluster_bits)? {
                Mapping::Data(host) => {
                    // As in QEMU, the part of a cluster past the end of the
                    // file reads as zeros (QEMU may leave the file's last
                    // cluster short).
                    let got = read_full_at(&self.file, chunk, host + within).map_err(|e| {
                        DiskError::io(format!("reading data of {}", self.path.display()), e)
                    })?;
                    chunk[got..].fill(0);
                }
                Mapping::Zero => chunk.fill(0),
                Mapping::Unallocated => self.read_backing(pos, chunk)?,
            }
            done += n;
        }
        Ok(())
    }

    fn read_backing(&self, pos: u64, chunk: &mut [u8]) -> Result<(), DiskError> {
        let Some(backing) = &self.backing else {
            chunk.fill(0);
            return Ok(());
        };
        let avail = backing.size().saturating_sub(pos).min(chunk.len() as u64) as usize;
        if avail > 0 {
            backing.read_at(pos, &mut chunk[..avail])?;
        }
        chunk[avail..].fill(0);
        Ok(())
    }

    /// How many bytes from `offset` (at most `len`) read as zeros by the
    /// metadata alone.
    pub(crate) fn known_zeros(&self, offset: u64, len: u64) -> Result<u64, DiskError> {
        let cs = self.cluster_size();
        let len = len.min(self.size.saturating_sub(offset));
        let mut zeros = 0u64;
        while zeros < len {
            let pos = offset + zeros;
            let n = (cs - pos % cs).min(len - zeros);
            let zero = match self.map(pos >> self.cluster_bits)? {
                Mapping::Data(_) => false,
                Mapping::Zero => true,
                Mapping::Unallocated => match &self.backing {
                    None => true,
                    Some(b) => {
                        let m = b.size().saturating_sub(pos).min(n);
                        m == 0 || b.known_zeros(pos, m)? == m
                    }
                },
            };
            if !zero {
                break;
            }
            zeros += n;
        }
        Ok(zeros)
    }
}

/// Where the backing file named `name` in the header of `overlay` is:
/// absolute names as they are, relative ones relative to the overlay's
/// directory (as QEMU does).
fn resolve_backing(overlay: &Path, name: &[u8]) -> Result<PathBuf, String> {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    if name.starts_with(b"json:") {
        return Err(format!(
            "its backing file is given as a json: specification ({}); only file names are \
             supported",
            String::from_utf8_lossy(name)
        ));
    }
    if name.contains(&0) {
        return Err("its backing file name contains a NUL byte".into());
    }
    let name = Path::new(OsStr::from_bytes(name));
    if name.is_absolute() {
        return Ok(name.to_path_buf());
    }
    Ok(match overlay.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
        _ => name.to_path_buf(),
    })
}

/// A few L2 tables, least recently used evicted first.
struct L2Cache {
    capacity: usize,
    clock: u64,
    slots: Vec<Slot>,
}

struct Slot {
    offset: u64,
    last_used: u64,
    table: Vec<u64>,
}

impl L2Cache {
    fn new(capacity: usize) -> L2Cache {
        L2Cache {
            capacity: capacity.max(1),
            clock: 0,
            slots: Vec::new(),
        }
    }

    /// Entry `index` of the L2 table at `offset`, loading the table with
    /// `load` when it is not cached.
    fn entry(
        &mut self,
        offset: u64,
        index: usize,
        load: impl FnOnce() -> Result<Vec<u64>, DiskError>,
    ) -> Result<u64, DiskError> {
        self.clock += 1;
        let slot = match self.slots.iter().position(|s| s.offset == offset) {
            Some(i) => i,
            None => {
                let table = load()?;
                let slot = Slot {
                    offset,
                    last_used: 0,
                    table,
                };
                if self.slots.len() < self.capacity {
                    self.slots.push(slot);
                    self.slots.len() - 1
                } else {
                    let lru = self
                        .slots
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, s)| s.last_used)
                        .map_or(0, |(i, _)| i);
                    self.slots[lru] = slot;
                    lru
                }
            }
        };
        let slot = &mut self.slots[slot];
        slot.last_used = self.clock;
        slot.table
            .get(index)
            .copied()
            .ok_or_else(|| DiskError::Corrupt(format!("L2 index {index} is outside the table")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn l2_cache_evicts_least_recently_used() {
        let mut cache = L2Cache::new(2);
        let loads = Cell::new(0);
        let get = |cache: &mut L2Cache, off: u64| {
            cache
                .entry(off, 1, || {
                    loads.set(loads.get() + 1);
                    Ok(vec![off, off + 1])
                })
                .unwrap()
        };
        assert_eq!(get(&mut cache, 10), 11);
        assert_eq!(get(&mut cache, 20), 21);
        assert_eq!(get(&mut cache, 10), 11); // hit; 20 is now the LRU
        assert_eq!(loads.get(), 2);
        assert_eq!(get(&mut cache, 30), 31); // evicts 20
        assert_eq!(get(&mut cache, 10), 11); // still cached
        assert_eq!(loads.get(), 3);
        assert_eq!(get(&mut cache, 20), 21); // reloaded
        assert_eq!(loads.get(), 4);
        assert_eq!(cache.slots.len(), 2);
        assert!(cache.entry(10, 5, || Ok(vec![])).is_err());
    }

    #[test]
    fn backing_names_resolve_like_qemu() {
        let o = Path::new("/var/lib/pyro/ws/disk.qcow2");
        assert_eq!(
            resolve_backing(o, b"base.ext4").unwrap(),
            Path::new("/var/lib/pyro/ws/base.ext4")
        );
        assert_eq!(
            resolve_backing(o, b"../img/base.ext4").unwrap(),
            Path::new("/var/lib/pyro/ws/../img/base.ext4")
        );
        assert_eq!(
            resolve_backing(o, b"/abs/base.ext4").unwrap(),
            Path::new("/abs/base.ext4")
        );
        assert_eq!(
            resolve_backing(Path::new("disk.qcow2"), b"base").unwrap(),
            Path::new("base")
        );
        assert!(resolve_backing(o, b"json:{}").is_err());
        assert!(resolve_backing(o, b"a\0b").is_err());
    }
}

//! Disk images as block devices: raw files and qcow2 chains.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::DiskError;
use crate::qcow2::{Qcow2, QCOW2_MAGIC};

/// Longest backing chain followed (overlay, its backing file, that
/// file's backing file, ...), counting the image opened. Deeper chains
/// (or loops) are refused.
pub const MAX_BACKING_DEPTH: usize = 16;

/// Anything that reads like a disk: a size and positioned reads.
pub trait BlockDevice {
    /// Size in bytes (the guest-visible size for qcow2).
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `offset`. Reading past [`size`]
    /// is an error.
    ///
    /// [`size`]: BlockDevice::size
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError>;
}

/// On-host format of a disk image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// The bytes of the disk, as is.
    Raw,
    /// A qcow2 file (version 2 or 3), possibly with a backing file.
    Qcow2,
}

impl ImageFormat {
    /// The name QEMU uses for the format.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
        }
    }
}

/// An opened disk image, read-only. `Send + Sync`: reads are positioned
/// (`pread`) and the qcow2 L2 cache sits behind a mutex.
#[derive(Debug)]
pub struct Image {
    path: PathBuf,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Raw { file: File, size: u64 },
    Qcow2(Box<Qcow2>),
}

impl Image {
    /// Opens `path`, telling qcow2 (magic `QFI\xfb`) from raw by its
    /// first bytes. A qcow2 image's backing chain is opened too.
    ///
    /// A raw image whose first four bytes happen to be the qcow2 magic
    /// is taken for qcow2; use [`Image::open_as`] when the format is
    /// known.
    pub fn open(path: &Path) -> Result<Image, DiskError> {
        Image::open_inner(path, None, 1)
    }

    /// Opens `path` as the given format, without probing.
    pub fn open_as(path: &Path, format: ImageFormat) -> Result<Image, DiskError> {
        Image::open_inner(path, Some(format), 1)
    }

    /// `depth` counts this image: 1 for the top of a chain.
    pub(crate) fn open_inner(
        path: &Path,
        format: Option<ImageFormat>,
        depth: usize,
    ) -> Result<Image, DiskError> {
        let file = File::open(path).map_err(|e| {
            let what = if depth == 1 {
                "disk image"
            } else {
                "backing file"
            };
            DiskError::io(format!("opening {what} {}", path.display()), e)
        })?;
        let meta = file
            .metadata()
            .map_err(|e| DiskError::io(format!("reading metadata of {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(DiskError::Unsupported(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let len = meta.len();
        let format = match format {
            Some(f) => f,
            None => {
                let mut magic = [0u8; 4];
                let n = read_full_at(&file, &mut magic, 0)
                    .map_err(|e| DiskError::io(format!("reading {}", path.display()), e))?;
                if n == 4 && magic == QCOW2_MAGIC {
                    ImageFormat::Qcow2
                } else {
                    ImageFormat::Raw
                }
            }
        };
        let backend = match format {
            ImageFormat::Raw => Backend::Raw { file, size: len },
            ImageFormat::Qcow2 => Backend::Qcow2(Box::new(Qcow2::open(file, path, len, depth)?)),
        };
        Ok(Image {
            path: path.to_path_buf(),
            backend,
        })
    }

    /// The path this image was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The image's format.
    pub fn format(&self) -> ImageFormat {
        match self.backend {
            Backend::Raw { .. } => ImageFormat::Raw,
            Backend::Qcow2(_) => ImageFormat::Qcow2,
        }
    }

    /// Size in bytes of the disk the image holds.
    pub fn size(&self) -> u64 {
        match &self.backend {
            Backend::Raw { size, .. } => *size,
            Backend::Qcow2(q) => q.size(),
        }
    }

    /// Paths of the images behind this one, nearest first (empty for raw
    /// images and qcow2 images without a backing file).
    pub fn backing_chain(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut cur = self;
        while let Backend::Qcow2(q) = &cur.backend {
            match q.backing() {
                Some(b) => {
                    out.push(b.path.clone());
                    cur = b;
                }
                None => break,
            }
        }
        out
    }

    /// Fills `buf` with the disk's bytes at `offset`.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        check_range(&self.path, offset, buf.len(), self.size())?;
        match &self.backend {
            Backend::Raw { file, .. } => {
                let n = read_full_at(file, buf, offset).map_err(|e| {
                    DiskError::io(
                        format!(
                            "reading {} bytes at offset {offset} of {}",
                            buf.len(),
                            self.path.display()
                        ),
                        e,
                    )
                })?;
                if n < buf.len() {
                    return Err(DiskError::io(
                        format!("reading {}", self.path.display()),
                        io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the file shrank while it was being read",
                        ),
                    ));
                }
                Ok(())
            }
            Backend::Qcow2(q) => q.read_at(offset, buf),
        }
    }

    /// How many bytes from `offset` (at most `len`) are known to read as
    /// zeros without reading data: unallocated or zero clusters with
    /// nothing behind them. 0 when unknown (always for raw images).
    pub(crate) fn known_zeros(&self, offset: u64, len: u64) -> Result<u64, DiskError> {
        match &self.backend {
            Backend::Raw { .. } => Ok(0),
            Backend::Qcow2(q) => q.known_zeros(offset, len),
        }
    }
}

impl BlockDevice for Image {
    fn size(&self) -> u64 {
        Image::size(self)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        Image::read_at(self, offset, buf)
    }
}

/// Refuses reads that do not lie within `[0, size)`.
pub(crate) fn check_range(
    path: &Path,
    offset: u64,
    len: usize,
    size: u64,
) -> Result<(), DiskError> {
    let end = offset.checked_add(len as u64);
    match end {
        Some(end) if end <= size => Ok(()),
        _ => Err(DiskError::Corrupt(format!(
            "read of {len} bytes at offset {offset} lies beyond the end of {} ({size} bytes)",
            path.display()
        ))),
    }
}

/// `pread` until `buf` is full or end of file; returns the bytes read.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset
            .checked_add(done as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "offset overflows"))?;
        match file.read_at(&mut buf[done..], at) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

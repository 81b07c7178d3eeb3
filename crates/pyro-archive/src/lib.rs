//! Safe tar handling, shared by the host (which checks a seed before
//! anything boots) and the guest agent (which checks again while
//! unpacking).
//!
//! An entry is refused when its path is absolute or contains `..`, when it
//! is a hard link, a device, a FIFO or any other special file, or when it
//! is a symlink whose target is absolute or contains `..`. Unpacking never
//! writes through a symlinked parent directory.
#![deny(missing_docs)]

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

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
        /// The entry.
        path: String,
        /// The rule it breaks.
        reason: &'static str,
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

/// Counts of what an archive holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    /// Entries.
    pub entry_count: u64,
    /// Bytes of regular file content.
    pub bytes: u64,
}

fn unsafe_entry(path: &str, reason: &'static str) -> ArchiveError {
    ArchiveError::Unsafe {
        path: path.to_string(),
        reason,
    }
}

fn relative_and_contained(p: &Path) -> bool {
    p.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Checks one entry against the rules.
pub fn check_entry<R: Read>(entry: &tar::Entry<'_, R>) -> Result<(), ArchiveError> {
    let path = entry
        .path()
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    let shown = path.to_string_lossy().into_owned();
    if path.is_absolute() {
        return Err(unsafe_entry(&shown, "absolute paths are not allowed"));
    }
    if !relative_and_contained(&path) {
        return Err(unsafe_entry(&shown, "paths must not contain '..'"));
    }
    use tar::EntryType as T;
    match entry.header().entry_type() {
        T::Regular
        | T::Directory
        | T::Continuous
        | T::GNULongName
        | T::XHeader
        | T::XGlobalHeader => Ok(()),
        T::Symlink => {
            let target = entry
                .link_name()
                .map_err(|e| ArchiveError::Corrupt(e.to_string()))?
                .ok_or_else(|| unsafe_entry(&shown, "symlink without a target"))?;
            if target.is_absolute() || !relative_and_contained(&target) {
                return Err(unsafe_entry(
                    &shown,
                    "symlink targets must be relative and stay inside the tree",
                ));
            }
            Ok(())
        }
        T::Link => Err(unsafe_entry(&shown, "hard links are not allowed")),
        T::Char | T::Block => Err(unsafe_entry(&shown, "device files are not allowed")),
        T::Fifo => Err(unsafe_entry(&shown, "FIFOs are not allowed")),
        _ => Err(unsafe_entry(&shown, "special files are not allowed")),
    }
}

/// Reads a whole tar stream, checking every entry.
pub fn validate<R: Read>(reader: R) -> Result<ArchiveStats, ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    let mut stats = ArchiveStats::default();
    for entry in archive
        .entries()
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?
    {
        let entry = entry.map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
        check_entry(&entry)?;
        stats.entry_count += 1;
        if entry.header().entry_type().is_file() {
            stats.bytes += entry.size();
        }
    }
    Ok(stats)
}

/// Unpacks a tar stream into `dest`, checking every entry first.
pub fn unpack<R: Read>(reader: R, dest: &Path) -> Result<ArchiveStats, ArchiveError> {
    std::fs::create_dir_all(dest).map_err(io_err("creating the destination"))?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    let mut stats = ArchiveStats::default();
    for entry in archive
        .entries()
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?
    {
        let mut entry = entry.map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
        check_entry(&entry)?;
        let is_file = entry.header().entry_type().is_file();
        let size = entry.size();
        // unpack_in refuses to write outside `dest`, including through
        // symlinked parents.
        let inside = entry
            .unpack_in(dest)
            .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
        if !inside {
            let path = entry
                .path()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Err(unsafe_entry(
                &path,
                "it would be written outside the destination",
            ));
        }
        stats.entry_count += 1;
        if is_file {
            stats.bytes += size;
        }
    }
    Ok(stats)
}

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

    /// Checks the whole seed (every archive entry; the directory's
    /// readability) without sending anything.
    pub fn check(&self) -> Result<ArchiveStats, ArchiveError> {
        match self {
            Seed::Archive(p) => validate(Self::archive_reader(p)?),
            Seed::Directory(dir) => check_dir(dir, Path::new("")),
        }
    }

    /// Writes the seed as a plain tar stream.
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

/// Applies the entry rules to a directory tree without reading file
/// contents (a repository can be large).
fn check_dir(root: &Path, rel: &Path) -> Result<ArchiveStats, ArchiveError> {
    let mut stats = ArchiveStats::default();
    let dir = root.join(rel);
    let read = std::fs::read_dir(&dir).map_err(io_err("reading the seed directory"))?;
    for item in read {
        let item = item.map_err(io_err("reading the seed directory"))?;
        let rel_path = rel.join(item.file_name());
        let shown = rel_path.to_string_lossy().into_owned();
        let meta = item
            .metadata()
            .map_err(io_err("reading the seed directory"))?;
        let kind = meta.file_type();
        stats.entry_count += 1;
        if kind.is_dir() {
            let sub = check_dir(root, &rel_path)?;
            stats.entry_count += sub.entry_count;
            stats.bytes += sub.bytes;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(item.path()).map_err(io_err("reading a symlink"))?;
            if target.is_absolute() || !relative_and_contained(&target) {
                return Err(unsafe_entry(
                    &shown,
                    "symlink targets must be relative and stay inside the tree",
                ));
            }
        } else if kind.is_file() {
            stats.bytes += meta.len();
        } else {
            return Err(unsafe_entry(
                &shown,
                "special files (devices, FIFOs, sockets) are not allowed",
            ));
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    /// Writes a raw name into the header, bypassing the builder's checks.
    fn raw(kind: tar::EntryType, name: &str, link: Option<&str>) -> Vec<u8> {
        let mut h = header(kind, 0);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn good_archives_pass_and_unpack() {
        let data = tar_with(|b| {
            let mut h = header(tar::EntryType::Directory, 0);
            h.set_mode(0o755);
            b.append_data(&mut h, "src", &[][..]).unwrap();
            let mut h = header(tar::EntryType::Regular, 5);
            b.append_data(&mut h, "src/a.txt", &b"hello"[..]).unwrap();
            let mut h = header(tar::EntryType::Symlink, 0);
            b.append_link(&mut h, "link", "src/a.txt").unwrap();
        });
        assert_eq!(
            validate(&data[..]).unwrap(),
            ArchiveStats {
                entry_count: 3,
                bytes: 5
            }
        );
        let dir = tempfile::tempdir().unwrap();
        unpack(&data[..], dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("link")).unwrap(),
            "hello"
        );
    }

    #[test]
    fn unsafe_entries_are_refused() {
        use tar::EntryType as T;
        for (data, why) in [
            (raw(T::Regular, "/etc/passwd", None), "absolute"),
            (raw(T::Regular, "a/../../x", None), ".."),
            (raw(T::Link, "h", Some("a")), "hard links"),
            (raw(T::Char, "null", None), "device"),
            (raw(T::Fifo, "pipe", None), "FIFOs"),
            (raw(T::Symlink, "s", Some("/etc")), "symlink"),
            (raw(T::Symlink, "s", Some("../x")), "symlink"),
        ] {
            let err = validate(&data[..]).unwrap_err().to_string();
            assert!(err.contains(why), "{err} should mention {why}");
            let dir = tempfile::tempdir().unwrap();
            assert!(unpack(&data[..], dir.path()).is_err());
        }
    }

    #[test]
    fn corrupt_archives_are_errors() {
        let mut data = tar_with(|b| {
            let mut h = header(tar::EntryType::Regular, 3000);
            b.append_data(&mut h, "big", &vec![1u8; 3000][..]).unwrap();
        });
        data.truncate(1000);
        assert!(matches!(validate(&data[..]), Err(ArchiveError::Corrupt(_))));
    }

    #[test]
    fn seeds_are_classified() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.txt"), "x").unwrap();
        std::fs::write(dir.path().join("a.TGZ"), "x").unwrap();
        assert!(matches!(
            Seed::open(dir.path()).unwrap(),
            Seed::Directory(_)
        ));
        assert!(matches!(
            Seed::open(&dir.path().join("a.TGZ")).unwrap(),
            Seed::Archive(_)
        ));
        assert!(matches!(
            Seed::open(&dir.path().join("f.txt")),
            Err(ArchiveError::WrongKind(_))
        ));
        assert!(matches!(
            Seed::open(&dir.path().join("nope")),
            Err(ArchiveError::Missing(_))
        ));
        assert_eq!(
            Seed::open(dir.path()).unwrap().check().unwrap().entry_count,
            2
        );
        assert!(Seed::open(&dir.path().join("a.TGZ"))
            .unwrap()
            .check()
            .is_err());
    }
}

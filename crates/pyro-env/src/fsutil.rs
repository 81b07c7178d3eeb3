//! Crash- and race-safe file writes: a unique temp file in the target's
//! directory, fsynced, then renamed over the target.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Marks temp files: `.<name>.tmp-<pid>-<nanos>-<seq>`.
pub(crate) const TMP_MARKER: &str = ".tmp-";

/// A temp path beside `dir/name` that no other process or thread uses:
/// pid, wall-clock nanoseconds and a per-process counter.
fn temp_path(dir: &Path, name: &str) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        ".{name}{TMP_MARKER}{}-{nanos}-{seq}",
        std::process::id()
    ))
}

/// Whether `file_name` is a temp file [`write_atomic`] made for `name`.
pub(crate) fn is_temp_for(file_name: &str, name_prefix: &str) -> bool {
    file_name
        .strip_prefix('.')
        .is_some_and(|rest| rest.starts_with(name_prefix) && rest.contains(TMP_MARKER))
}

/// Writes `dir/name` through a unique temp file: `fill` writes it, it is
/// fsynced and renamed into place (replacing any file of that name), then
/// the directory is fsynced. Readers see the old file or the whole new one;
/// a failure or crash leaves at most the temp file.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let (tmp, mut file) = loop {
        let tmp = temp_path(dir, name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    let result = (|| {
        fill(&mut file)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, dir.join(name))?;
        // Make the rename durable; best effort (some file systems refuse).
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Sets a file's access and modification times to now, to record a use.
/// Needs ownership or write permission.
pub(crate) fn touch(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: valid C string; a null `times` means "now" for both.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), std::ptr::null(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_unique_and_recognised() {
        let dir = Path::new("/x");
        let a = temp_path(dir, "initramfs-ab.cpio");
        let b = temp_path(dir, "initramfs-ab.cpio");
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(is_temp_for(name, "initramfs-"), "{name}");
        assert!(!is_temp_for(name, "manifest"), "{name}");
        assert!(!is_temp_for("initramfs-ab.cpio", "initramfs-"));
    }

    #[test]
    fn failed_fill_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "old").unwrap();
        let err = write_atomic(dir.path(), "f", |_| Err(io::Error::other("boom"))).unwrap_err();
        assert_eq!(err.to_string(), "boom");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f"]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("f")).unwrap(),
            "old"
        );
        write_atomic(dir.path(), "f", |f| io::Write::write_all(f, b"new")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("f")).unwrap(),
            "new"
        );
    }
}

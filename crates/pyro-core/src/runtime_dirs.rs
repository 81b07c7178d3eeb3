//! Runtime directories of VMs under `<state>/vms/<vm_id>/`.
//!
//! Each holds an `owner` file naming the pyro process that started it (pid
//! and start time, so a reused pid is not mistaken for the owner). A
//! directory whose owner is gone was left by a killed pyro; its helper
//! processes died with it (PR_SET_PDEATHSIG), and the next command removes
//! the directory.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use pyro_vmm::process::ProcRef;

use crate::Error;

const OWNER_FILE: &str = "owner";

fn owner_alive(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(OWNER_FILE)) else {
        // Being created right now, or broken: judge by age.
        return std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .map(|t| t.elapsed().map(|e| e.as_secs() < 60).unwrap_or(true))
            .unwrap_or(false);
    };
    let mut parts = text.split_whitespace();
    let pid: Option<u32> = parts.next().and_then(|p| p.parse().ok());
    let start: Option<u64> = parts.next().and_then(|p| p.parse().ok());
    match (pid, start) {
        (Some(pid), Some(start_time)) => ProcRef { pid, start_time }.alive(),
        _ => false,
    }
}

/// The directory all VM runtime dirs live in.
pub fn vms_root(state_dir: &Path) -> PathBuf {
    state_dir.join("vms")
}

/// Creates the state dir private to the user (0700), tightening one that
/// exists with looser permissions: it holds command output and disks.
pub fn ensure_state_dir(state_dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(Error::io(format!(
            "creating state dir {}",
            state_dir.display()
        )))?;
    let meta = std::fs::metadata(state_dir).map_err(Error::io(format!(
        "reading state dir {}",
        state_dir.display()
    )))?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700)).map_err(
            Error::io(format!("making state dir {} private", state_dir.display())),
        )?;
    }
    Ok(())
}

/// Creates the state dir (0700) and a fresh runtime dir owned by us.
pub fn create(state_dir: &Path, vm_id: &str) -> Result<PathBuf, Error> {
    ensure_state_dir(state_dir)?;
    let dir = vms_root(state_dir).join(vm_id);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(Error::io(format!("creating {}", dir.display())))?;
    let me = std::process::id();
    let start = ProcRef::of(me).map(|p| p.start_time).unwrap_or(0);
    let owner = format!("{me} {start}\n");
    std::fs::write(dir.join(OWNER_FILE), owner).map_err(Error::io("writing the VM owner file"))?;
    pyro_vmm::live::register(vm_id, &dir);
    Ok(dir)
}

/// Removes runtime dirs whose owner process is gone. Returns how many.
pub fn collect_orphans(state_dir: &Path) -> usize {
    let Ok(read) = std::fs::read_dir(vms_root(state_dir)) else {
        return 0;
    };
    let mut removed = 0;
    for item in read.filter_map(Result::ok) {
        let path = item.path();
        if path.is_dir() && !owner_alive(&path) && std::fs::remove_dir_all(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_dir_survives_and_dead_owner_is_collected() {
        let state = tempfile::tempdir().unwrap();
        let mine = create(state.path(), "aaaaaaaaaaaa").unwrap();
        let dead = create(state.path(), "bbbbbbbbbbbb").unwrap();
        // pid 0 never names a live process with that start time.
        std::fs::write(dead.join(OWNER_FILE), "999999999 1\n").unwrap();
        assert_eq!(collect_orphans(state.path()), 1);
        assert!(mine.exists());
        assert!(!dead.exists());
    }
}

//! Operator safety: host paths a tool reads are confined to directories
//! the operator allowed (`--allow-host-path DIR`, default: the server's
//! working directory).
//!
//! A path is resolved against the server's working directory and
//! canonicalized (every symlink followed), and the result must lie inside
//! one of the allowed directories, themselves canonicalized at start-up. So
//! a symlink inside an allowed directory that points outside it is refused,
//! and `..` cannot climb out. The canonical path is what the operation then
//! receives, so it reads what was checked.

use std::path::{Path, PathBuf};

use pyro_core::{ErrorBody, ErrorCode};

/// The directories tools may read host files from.
#[derive(Debug, Clone)]
pub struct HostPaths {
    cwd: PathBuf,
    allowed: Vec<PathBuf>,
}

impl HostPaths {
    /// Allows `allowed` (relative ones resolve against `cwd`), or `cwd`
    /// alone when the list is empty, unless `cwd` is `/` (a client that
    /// starts servers in `/` would otherwise open the whole host): then
    /// nothing. Every directory must exist.
    pub fn new(cwd: &Path, allowed: &[PathBuf]) -> Result<HostPaths, String> {
        let cwd = cwd
            .canonicalize()
            .map_err(|e| format!("the working directory {}: {e}", cwd.display()))?;
        let wanted: Vec<PathBuf> = if allowed.is_empty() {
            if cwd == Path::new("/") {
                Vec::new()
            } else {
                vec![cwd.clone()]
            }
        } else {
            allowed.iter().map(|p| cwd.join(p)).collect()
        };
        let mut dirs = Vec::with_capacity(wanted.len());
        for dir in wanted {
            let canonical = dir
                .canonicalize()
                .map_err(|e| format!("--allow-host-path {}: {e}", dir.display()))?;
            if !canonical.is_dir() {
                return Err(format!(
                    "--allow-host-path {}: not a directory",
                    dir.display()
                ));
            }
            if !dirs.contains(&canonical) {
                dirs.push(canonical);
            }
        }
        Ok(HostPaths { cwd, allowed: dirs })
    }

    /// The allowed directories, canonical.
    pub fn allowed(&self) -> &[PathBuf] {
        &self.allowed
    }

    /// Resolves `path` (the value of parameter `param`) and returns its
    /// canonical form if it lies in an allowed directory.
    pub fn check(&self, param: &str, path: &Path) -> Result<PathBuf, ErrorBody> {
        let joined = self.cwd.join(path);
        let canonical = joined
            .canonicalize()
            .map_err(|e| invalid(format!("{param} '{}' cannot be read: {e}", path.display())))?;
        self.confine(param, path, &joined, canonical)
    }

    /// For a path the tool will create: its deepest existing ancestor is
    /// canonicalized (symlinks followed) and the missing rest appended,
    /// which must be plain names (no `..`). The result must lie in an
    /// allowed directory. Whether the path itself already exists is the
    /// operation's business (it refuses to overwrite).
    pub fn check_output(&self, param: &str, path: &Path) -> Result<PathBuf, ErrorBody> {
        use std::path::Component;
        let joined = self.cwd.join(path);
        let mut existing = joined.clone();
        let mut rest: Vec<std::ffi::OsString> = Vec::new();
        // A dangling symlink at the end is left to the operation, which
        // refuses it as existing; it is never followed here.
        while existing.symlink_metadata().is_err() {
            match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name.to_os_string());
                    existing = parent.to_path_buf();
                }
                _ => break,
            }
        }
        if joined
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return Err(invalid(format!(
                "{param} '{}' must not contain '.' or '..' components",
                path.display()
            )));
        }
        let mut canonical = if existing
            .symlink_metadata()
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
            && rest.is_empty()
        {
            // The output itself is a symlink: keep it as named (the
            // operation refuses an existing output).
            existing
                .parent()
                .and_then(|p| p.canonicalize().ok())
                .map(|p| p.join(existing.file_name().unwrap_or_default()))
                .unwrap_or(existing)
        } else {
            existing.canonicalize().map_err(|e| {
                invalid(format!(
                    "{param} '{}' cannot be written: {e}",
                    path.display()
                ))
            })?
        };
        for name in rest.iter().rev() {
            canonical.push(name);
        }
        self.confine(param, path, &joined, canonical)
    }

    fn confine(
        &self,
        param: &str,
        path: &Path,
        joined: &Path,
        canonical: PathBuf,
    ) -> Result<PathBuf, ErrorBody> {
        if self.allowed.iter().any(|dir| canonical.starts_with(dir)) {
            return Ok(canonical);
        }
        let shown = if canonical == joined {
            format!("{param} '{}'", path.display())
        } else {
            format!(
                "{param} '{}' (which resolves to '{}')",
                path.display(),
                canonical.display()
            )
        };
        let dirs: Vec<String> = self
            .allowed
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        let message = if dirs.is_empty() {
            format!(
                "{shown} is refused: this server may use no host directory (it was started in / without --allow-host-path)"
            )
        } else {
            format!(
                "{shown} is outside the host directories this server may use: {}",
                dirs.join(", ")
            )
        };
        Err(ErrorBody {
            code: ErrorCode::InvalidArgument,
            message,
            hint: Some(
                "use a path inside those directories; the operator can allow more by starting the server with `pyro mcp serve --allow-host-path DIR`".into(),
            ),
        })
    }
}

fn invalid(message: String) -> ErrorBody {
    ErrorBody {
        code: ErrorCode::InvalidArgument,
        message,
        hint: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_confined_by_their_existing_ancestors() {
        let root = tempfile::tempdir().unwrap();
        let root_path = root.path().canonicalize().unwrap();
        let allowed = root_path.join("allowed");
        let outside = root_path.join("outside");
        std::fs::create_dir_all(&allowed).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, allowed.join("escape")).unwrap();
        let paths = HostPaths::new(&allowed, &[]).unwrap();
        assert_eq!(
            paths
                .check_output("output_path", Path::new("new/dir/out.txt"))
                .unwrap(),
            allowed.join("new/dir/out.txt")
        );
        assert!(paths
            .check_output("output_path", &outside.join("x"))
            .is_err());
        let err = paths
            .check_output("output_path", Path::new("escape/x"))
            .unwrap_err();
        assert!(err.message.contains("outside"), "{}", err.message);
        assert!(paths
            .check_output("output_path", Path::new("new/../../outside/x"))
            .is_err());
        // A dangling symlink as the output is passed on as named (the
        // operation refuses it as existing), never followed out.
        std::os::unix::fs::symlink(outside.join("nope"), allowed.join("dangling")).unwrap();
        assert_eq!(
            paths
                .check_output("output_path", Path::new("dangling"))
                .unwrap(),
            allowed.join("dangling")
        );
    }

    #[test]
    fn paths_inside_are_canonical_and_outside_ones_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let root_path = root.path().canonicalize().unwrap();
        let allowed = root_path.join("allowed");
        let outside = root_path.join("outside");
        std::fs::create_dir_all(allowed.join("src")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, allowed.join("escape")).unwrap();
        std::os::unix::fs::symlink(allowed.join("src"), outside.join("back")).unwrap();

        let paths = HostPaths::new(&allowed, &[]).unwrap();
        assert_eq!(paths.allowed(), std::slice::from_ref(&allowed));
        // Relative to the working directory.
        assert_eq!(
            paths.check("seed_path", Path::new("src")).unwrap(),
            allowed.join("src")
        );
        assert_eq!(
            paths
                .check("seed_path", &allowed.join("src/../src"))
                .unwrap(),
            allowed.join("src")
        );
        // A link from outside into the allowed dir resolves inside: fine.
        assert_eq!(
            paths.check("seed_path", &outside.join("back")).unwrap(),
            allowed.join("src")
        );

        let err = paths.check("seed_path", &outside).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        assert!(
            err.message.contains("outside the host directories"),
            "{}",
            err.message
        );
        assert!(err.message.contains(&allowed.display().to_string()));
        assert!(err.hint.unwrap().contains("--allow-host-path"));

        let err = paths.check("seed_path", Path::new("escape")).unwrap_err();
        assert!(err.message.contains("resolves to"), "{}", err.message);
        let err = paths
            .check("seed_path", Path::new("../outside"))
            .unwrap_err();
        assert!(err.message.contains("outside the host"), "{}", err.message);

        let err = paths.check("seed_path", Path::new("missing")).unwrap_err();
        assert!(err.message.contains("cannot be read"), "{}", err.message);
    }

    #[test]
    fn allowed_dirs_must_exist_and_resolve_against_the_working_directory() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("a")).unwrap();
        let paths = HostPaths::new(&base, &[PathBuf::from("a"), base.join("a")]).unwrap();
        assert_eq!(paths.allowed(), [base.join("a")]);
        // The working directory is not allowed unless listed.
        assert!(paths.check("seed_path", &base).is_err());
        let err = HostPaths::new(&base, &[PathBuf::from("nope")]).unwrap_err();
        assert!(err.contains("--allow-host-path"), "{err}");
    }

    #[test]
    fn a_server_started_in_the_root_reads_nothing_unless_told() {
        let paths = HostPaths::new(Path::new("/"), &[]).unwrap();
        assert!(paths.allowed().is_empty());
        let err = paths.check("seed_path", Path::new("etc")).unwrap_err();
        assert!(
            err.message.contains("may use no host directory"),
            "{}",
            err.message
        );
        assert!(err.hint.unwrap().contains("--allow-host-path"));
        let paths = HostPaths::new(Path::new("/"), &[PathBuf::from("/")]).unwrap();
        assert!(paths.check("seed_path", Path::new("etc")).is_ok());
    }
}

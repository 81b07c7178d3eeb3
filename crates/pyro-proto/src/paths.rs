//! Guest paths that file operations carry: always absolute, normalized and
//! inside [`WORKSPACE_ROOT`]. The host resolves what a user typed with
//! [`resolve`]; the agent checks again with the same function, so a request
//! from anywhere else cannot name a path outside the workspace.

/// The directory every workspace file operation stays inside.
pub const WORKSPACE_ROOT: &str = "/workspace";
/// Longest path accepted (Linux's `PATH_MAX` less the NUL).
pub const MAX_PATH_BYTES: usize = 4095;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Nothing was given.
    #[error("the workspace path is empty")]
    Empty,
    /// `..`, or an absolute path outside the root.
    #[error("workspace path '{0}' must stay inside /workspace (no '..', absolute paths under /workspace)")]
    Escapes(String),
    /// A NUL byte.
    #[error("workspace path contains a NUL byte")]
    Nul,
    /// Longer than [`MAX_PATH_BYTES`].
    #[error("workspace path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
}

/// The absolute, normalized guest path for `input`: relative paths resolve
/// under [`WORKSPACE_ROOT`]; absolute ones must be the root or below it.
/// `.` and repeated slashes are dropped; any `..` is refused (even one that
/// would stay inside), so no path ever climbs.
pub fn resolve(input: &str) -> Result<String, PathError> {
    if input.is_empty() {
        return Err(PathError::Empty);
    }
    if input.contains('\0') {
        return Err(PathError::Nul);
    }
    let mut out = String::from(WORKSPACE_ROOT);
    let rest = match input.strip_prefix('/') {
        None => input,
        Some(_) => {
            let below = input
                .strip_prefix(WORKSPACE_ROOT)
                .filter(|r| r.is_empty() || r.starts_with('/'));
            match below {
                Some(r) => r,
                None => return Err(PathError::Escapes(input.to_string())),
            }
        }
    };
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(PathError::Escapes(input.to_string())),
            name => {
                out.push('/');
                out.push_str(name);
            }
        }
    }
    if out.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    Ok(out)
}

/// The part of a resolved path below the root: `""` for the root itself,
/// `a/b` for `/workspace/a/b`. `None` for a path [`resolve`] would not
/// return.
pub fn relative(abs: &str) -> Option<&str> {
    let rest = abs.strip_prefix(WORKSPACE_ROOT)?;
    if rest.is_empty() {
        return Some("");
    }
    let rest = rest.strip_prefix('/')?;
    (resolve(abs).ok()? == abs).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_and_absolute() {
        assert_eq!(resolve("note.txt").unwrap(), "/workspace/note.txt");
        assert_eq!(resolve("./src//app.py").unwrap(), "/workspace/src/app.py");
        assert_eq!(resolve("/workspace").unwrap(), "/workspace");
        assert_eq!(resolve("/workspace/").unwrap(), "/workspace");
        assert_eq!(resolve(".").unwrap(), "/workspace");
        assert_eq!(resolve("/workspace/a/./b/").unwrap(), "/workspace/a/b");
    }

    #[test]
    fn refuses_escapes() {
        for bad in [
            "..",
            "../etc/passwd",
            "a/../../b",
            "a/..",
            "/etc/passwd",
            "/workspaces/x",
            "/workspace/../etc",
            "/",
        ] {
            assert!(
                matches!(resolve(bad), Err(PathError::Escapes(_))),
                "{bad}: {:?}",
                resolve(bad)
            );
        }
        assert_eq!(resolve(""), Err(PathError::Empty));
        assert_eq!(resolve("a\0b"), Err(PathError::Nul));
        assert_eq!(resolve(&"a/".repeat(3000)), Err(PathError::TooLong));
    }

    #[test]
    fn relative_parts() {
        assert_eq!(relative("/workspace"), Some(""));
        assert_eq!(relative("/workspace/a/b"), Some("a/b"));
        assert_eq!(relative("/workspace/../x"), None);
        assert_eq!(relative("/workspacex"), None);
        assert_eq!(relative("/etc"), None);
    }
}

//! The crate's one error type.

use std::io;

/// Why reading or exporting a disk failed.
///
/// Guest paths in these errors are the normalized absolute paths inside
/// the guest file system (non-UTF-8 bytes shown as U+FFFD).
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The guest path is not absolute and normalized.
    #[error("invalid guest path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// The rule it breaks.
        reason: String,
    },
    /// Nothing exists at the guest path.
    #[error("{0}: no such file or directory in the workspace disk")]
    NotFound(String),
    /// A component of the guest path (the path itself for `list`, a parent
    /// for anything else) is not a directory.
    #[error("{0}: not a directory")]
    NotADirectory(String),
    /// The guest path is not a regular file.
    #[error("{path}: not a regular file (it is {kind})")]
    NotAFile {
        /// The guest path.
        path: String,
        /// What it is instead ("a directory", "a symbolic link to ...").
        kind: String,
    },
    /// A parent component of the guest path is a symbolic link; links are
    /// never followed.
    #[error(
        "{path}: crosses the symbolic link {symlink} (-> {target}); symbolic links are not \
         followed, use the path the link points to instead"
    )]
    CrossesSymlink {
        /// The guest path asked for.
        path: String,
        /// The symlink in it.
        symlink: String,
        /// Where that symlink points (as stored, unresolved).
        target: String,
    },
    /// A recursive listing would exceed the entry limit.
    #[error(
        "{path}: more than {limit} entries below this directory; list a subdirectory \
         or list without recursion"
    )]
    TooManyEntries {
        /// The directory listed.
        path: String,
        /// The limit, [`crate::MAX_LIST_ENTRIES`].
        limit: usize,
    },
    /// The image or file system uses a feature this reader does not handle.
    #[error("unsupported disk image: {0}")]
    Unsupported(String),
    /// The image or file system is damaged (or was written by a hostile
    /// guest).
    #[error("corrupt disk image: {0}")]
    Corrupt(String),
    /// Reading or writing a host file failed. An export target that
    /// already exists is this variant with an `AlreadyExists` source.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}

impl DiskError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        DiskError::Io {
            context: context.into(),
            source,
        }
    }
}

//! The one error type of this crate.

/// Why a patch could not be parsed or applied.
///
/// Messages name the file and the hunk (1-based) where there is one, and say
/// what to do about it, because they are shown to the agent or user that
/// sent the patch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch text is empty or only whitespace.
    #[error("the patch is empty; pass the output of `diff -u` or `git diff`")]
    Empty,

    /// The patch text is larger than [`MAX_PATCH_BYTES`](crate::MAX_PATCH_BYTES).
    #[error(
        "the patch is {size} bytes, over the limit of {max} bytes; split it into smaller patches"
    )]
    TooLarge {
        /// Size of the patch, in bytes.
        size: usize,
        /// The limit, in bytes.
        max: usize,
    },

    /// The patch has no `---`/`+++` file headers at all.
    #[error(
        "the patch changes no files (no `--- a/PATH` / `+++ b/PATH` headers found); \
         pass the output of `diff -u` or `git diff`"
    )]
    NoFiles,

    /// The patch text breaks the unified diff syntax outside a hunk.
    #[error("line {line} of the patch is malformed: {reason}; regenerate the patch")]
    Malformed {
        /// The 1-based line of the patch text.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// A hunk breaks the unified diff syntax (for example its `@@` counts
    /// disagree with its body).
    #[error("hunk {hunk} of {path} is malformed: {reason}; regenerate the patch")]
    BadHunk {
        /// The file the hunk belongs to.
        path: String,
        /// The 1-based number of the hunk within its file.
        hunk: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// The patch uses a `git diff` feature this crate refuses (renames,
    /// copies, mode changes, binary files, symlinks, submodules).
    #[error(
        "the patch {what} ({path}), which is not supported; send only text edits \
         and make that change with a shell command instead"
    )]
    Unsupported {
        /// The file concerned (as written in the patch).
        path: String,
        /// What the patch does, e.g. "renames a file".
        what: String,
    },

    /// A path in the patch is empty, absolute or escapes the workspace.
    #[error("the patch names the path {path:?}, which is refused: {reason}; use a path relative to the workspace")]
    BadPath {
        /// The path as written in the patch (prefix removed).
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// The same file appears in two parts of one patch.
    #[error("{path} appears more than once in the patch; put all of its changes in one diff")]
    DuplicatePath {
        /// The repeated path.
        path: String,
    },

    /// A hunk's lines are not in the file where the patch expects them.
    #[error(
        "hunk {hunk} of {path} does not apply: the lines at line {line} differ from the patch's context; \
         the file has changed since the patch was made, so regenerate the patch from the current file"
    )]
    HunkMismatch {
        /// The file being patched.
        path: String,
        /// The 1-based number of the hunk within its file.
        hunk: usize,
        /// The 1-based line of the current file where the hunk was expected.
        line: usize,
    },

    /// The patch creates a file that already exists.
    #[error(
        "the patch creates {path}, but it already exists; diff against the existing file instead"
    )]
    AlreadyExists {
        /// The file.
        path: String,
    },

    /// The patch changes or deletes a file that does not exist.
    #[error("the patch expects {path} to exist, but it does not; to create a new file, use `--- /dev/null` as its old side")]
    Missing {
        /// The file.
        path: String,
    },

    /// The file to patch is not UTF-8 text.
    #[error(
        "{path} is not a text file (it is not valid UTF-8); patches can only change text files"
    )]
    NotText {
        /// The file.
        path: String,
    },

    /// A delete did not remove the whole file.
    #[error(
        "the patch deletes {path}, but {lines} line(s) would remain; \
         the file has changed since the patch was made, so regenerate the patch from the current file"
    )]
    DeleteLeftover {
        /// The file.
        path: String,
        /// How many lines the patch did not account for.
        lines: usize,
    },
}

//! What a parsed patch holds: one [`FilePatch`] per file, made of [`Hunk`]s.

/// One file's part of a unified diff.
///
/// Paths are stored with one leading `a/` or `b/` removed; `None` stands for
/// `/dev/null` (the file does not exist on that side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// The path on the `---` side, or `None` when the patch creates the file.
    pub old_path: Option<String>,
    /// The path on the `+++` side, or `None` when the patch deletes the file.
    pub new_path: Option<String>,
    /// The hunks, in file order. Empty only when creating or deleting an
    /// empty file.
    pub hunks: Vec<Hunk>,
    /// The old side's last line (the last context or removed line of the last
    /// hunk) has no newline: the patch carried `\ No newline at end of file`.
    pub old_missing_newline: bool,
    /// The new side's last line (the last context or added line of the last
    /// hunk) has no newline.
    pub new_missing_newline: bool,
}

/// What a [`FilePatch`] does to its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Creates the file (`--- /dev/null`).
    Add,
    /// Edits an existing file.
    Modify,
    /// Deletes the file (`+++ /dev/null`).
    Delete,
}

/// One `@@ -l,s +l,s @@` block of a file's diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// First old line (1-based); when `old_count` is 0, the line after which
    /// the new lines go (0 = the start of the file).
    pub old_start: usize,
    /// Number of context and removed lines.
    pub old_count: usize,
    /// First new line, with the same convention as `old_start`.
    pub new_start: usize,
    /// Number of context and added lines.
    pub new_count: usize,
    /// Text after the closing `@@` (often the enclosing function), trimmed.
    pub section: String,
    /// The body, in order.
    pub lines: Vec<Line>,
}

/// One line of a hunk body, without its `' '`/`-`/`+` marker and without its
/// `\n`. A `\r` before the `\n` is part of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Present on both sides (`' '`).
    Context(String),
    /// Only in the old file (`-`).
    Remove(String),
    /// Only in the new file (`+`).
    Add(String),
}

impl Line {
    /// The line's text.
    pub fn text(&self) -> &str {
        match self {
            Line::Context(t) | Line::Remove(t) | Line::Add(t) => t,
        }
    }

    /// Whether the line exists in the old file.
    pub fn is_old(&self) -> bool {
        !matches!(self, Line::Add(_))
    }

    /// Whether the line exists in the new file.
    pub fn is_new(&self) -> bool {
        !matches!(self, Line::Remove(_))
    }
}

impl Hunk {
    /// The 0-based index in the old file of the hunk's first old line (or,
    /// for a pure insertion, of the line the new lines go before).
    pub fn old_index(&self) -> usize {
        if self.old_count == 0 {
            self.old_start
        } else {
            self.old_start.saturating_sub(1)
        }
    }
}

impl FilePatch {
    /// The path it changes (new path, or old path for a delete), with any
    /// `a/` / `b/` prefix removed. Empty only for a hand-built patch with
    /// neither path.
    pub fn path(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or("")
    }

    /// Whether the patch creates, edits or deletes its file.
    pub fn change(&self) -> Change {
        match (&self.old_path, &self.new_path) {
            (None, _) => Change::Add,
            (Some(_), None) => Change::Delete,
            (Some(_), Some(_)) => Change::Modify,
        }
    }
}

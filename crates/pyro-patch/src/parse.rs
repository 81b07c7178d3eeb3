//! Reading unified diffs (plain `diff -u` and `git diff` output) into
//! [`FilePatch`]es, refusing anything this crate will not apply.

use std::collections::HashSet;

use crate::path::{self, HeaderPath};
use crate::{Change, FilePatch, Hunk, Line, PatchError, MAX_PATCH_BYTES};

/// Parses a whole unified diff touching one or more files.
///
/// Accepts `diff -u` and `git diff` output. Text before, between and after
/// file diffs (commit messages, `diff -ru` command lines, `index` lines) is
/// skipped; `git diff` extended headers other than `new file mode` /
/// `deleted file mode` / `index` (renames, copies, mode changes, binary
/// patches) are refused, as are paths that are empty, absolute or contain
/// `..`, and a file named twice. Hunk line counts must match their bodies
/// exactly.
pub fn parse(text: &str) -> Result<Vec<FilePatch>, PatchError> {
    if text.len() > MAX_PATCH_BYTES {
        return Err(PatchError::TooLarge {
            size: text.len(),
            max: MAX_PATCH_BYTES,
        });
    }
    if text.trim().is_empty() {
        return Err(PatchError::Empty);
    }
    let mut lines: Vec<&str> = text.split('\n').collect();
    // The text's final newline ends the last line; it does not start another.
    if text.ends_with('\n') {
        lines.pop();
    }
    let mut parser = Parser {
        lines,
        pos: 0,
        files: Vec::new(),
        git: None,
    };
    parser.run()?;
    if parser.files.is_empty() {
        return Err(PatchError::NoFiles);
    }
    let mut seen = HashSet::new();
    for file in &parser.files {
        if !seen.insert(file.path()) {
            return Err(PatchError::DuplicatePath {
                path: file.path().to_string(),
            });
        }
    }
    Ok(parser.files)
}

/// What is known of the `diff --git` block being read.
struct GitBlock {
    /// 1-based patch line of the `diff --git` line.
    line: usize,
    /// The old and new paths, when the `diff --git` line can be read.
    paths: Option<(String, String)>,
    /// A name for messages, even when `paths` is `None`.
    label: String,
    new_file: bool,
    deleted_file: bool,
    /// Whether the block's `---`/`+++` lines have been read; extended
    /// headers only come before them.
    has_header: bool,
}

struct Parser<'a> {
    lines: Vec<&'a str>,
    /// Index of the next line to read.
    pos: usize,
    files: Vec<FilePatch>,
    git: Option<GitBlock>,
}

/// A header line without the `\r` a CRLF patch leaves on it. Hunk body
/// lines keep theirs: there it belongs to the file's content.
fn header(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

fn malformed(line: usize, reason: impl Into<String>) -> PatchError {
    PatchError::Malformed {
        line,
        reason: reason.into(),
    }
}

/// Whether a line could be part of a hunk body (other than a blank line).
fn looks_like_body(line: &str) -> bool {
    matches!(line.as_bytes().first(), Some(b' ' | b'+' | b'-' | b'\\'))
}

impl<'a> Parser<'a> {
    fn peek_at(&self, pos: usize) -> Option<&'a str> {
        self.lines.get(pos).copied()
    }

    /// Whether a `---` line at `pos` starts a file header (`+++` follows).
    fn file_header_at(&self, pos: usize) -> bool {
        self.peek_at(pos)
            .is_some_and(|l| header(l).starts_with("--- "))
            && self
                .peek_at(pos + 1)
                .is_some_and(|l| header(l).starts_with("+++ "))
    }

    fn run(&mut self) -> Result<(), PatchError> {
        while let Some(raw) = self.peek_at(self.pos) {
            let line_no = self.pos + 1;
            let line = header(raw);
            if line.starts_with("diff ") {
                self.finish_git()?;
                if let Some(rest) = line.strip_prefix("diff --git ") {
                    let paths = path::git_header_paths(rest);
                    self.git = Some(GitBlock {
                        line: line_no,
                        label: paths
                            .as_ref()
                            .map_or_else(|| rest.to_string(), |(_, new)| new.clone()),
                        paths,
                        new_file: false,
                        deleted_file: false,
                        has_header: false,
                    });
                }
                self.pos += 1;
            } else if self.file_header_at(self.pos) {
                self.file()?;
            } else if line.starts_with("@@") {
                return Err(malformed(
                    line_no,
                    "a hunk (`@@` line) has no `--- a/PATH` / `+++ b/PATH` header before it",
                ));
            } else if line.starts_with("--- ")
                && self
                    .peek_at(self.pos + 1)
                    .is_some_and(|l| l.starts_with("@@"))
            {
                return Err(malformed(
                    line_no,
                    "a `---` line is not followed by a `+++` line",
                ));
            } else {
                self.other_line(line)?;
                self.pos += 1;
            }
        }
        self.finish_git()
    }

    /// Checks a line outside any file diff: git extended headers, binary
    /// markers, or text to skip.
    fn other_line(&mut self, line: &str) -> Result<(), PatchError> {
        let unsupported = |path: &str, what: &str| PatchError::Unsupported {
            path: path.to_string(),
            what: what.to_string(),
        };
        if let Some(files) = line
            .strip_prefix("Binary files ")
            .and_then(|l| l.strip_suffix(" differ"))
        {
            let path = match &self.git {
                Some(git) => git.label.clone(),
                None => {
                    path::strip_prefix(files.split(" and ").next().unwrap_or(files)).to_string()
                }
            };
            return Err(unsupported(&path, "changes a binary file"));
        }
        let Some(git) = self.git.as_mut().filter(|g| !g.has_header) else {
            return Ok(());
        };
        let label = git.label.as_str();
        if let Some(rest) = line.strip_prefix("index ") {
            // `index OLD..NEW MODE`: only regular files are patchable.
            if let Some(mode) = rest.split_whitespace().nth(1) {
                if mode != "100644" && mode != "100755" {
                    return Err(unsupported(label, &format!("changes {}", mode_kind(mode))));
                }
            }
        } else if let Some(mode) = line.strip_prefix("new file mode ") {
            if mode.trim() != "100644" {
                return Err(unsupported(
                    label,
                    &format!("creates {}", mode_kind(mode.trim())),
                ));
            }
            git.new_file = true;
        } else if let Some(mode) = line.strip_prefix("deleted file mode ") {
            let mode = mode.trim();
            if mode != "100644" && mode != "100755" {
                return Err(unsupported(label, &format!("deletes {}", mode_kind(mode))));
            }
            git.deleted_file = true;
        } else if line.starts_with("old mode ") || line.starts_with("new mode ") {
            return Err(unsupported(label, "changes a file mode"));
        } else if line.starts_with("rename from ")
            || line.starts_with("rename to ")
            || line.starts_with("rename old ")
            || line.starts_with("rename new ")
        {
            return Err(unsupported(label, "renames a file"));
        } else if line.starts_with("copy from ") || line.starts_with("copy to ") {
            return Err(unsupported(label, "copies a file"));
        } else if line.starts_with("similarity index ") {
            return Err(unsupported(label, "renames or copies a file"));
        } else if line.starts_with("dissimilarity index ") {
            return Err(unsupported(
                label,
                "rewrites a file as a whole (`dissimilarity index`)",
            ));
        } else if line == "GIT binary patch" {
            return Err(unsupported(label, "changes a binary file"));
        }
        Ok(())
    }

    /// Ends the current `diff --git` block. A block without `---`/`+++`
    /// lines is git's way of creating or deleting an empty file.
    fn finish_git(&mut self) -> Result<(), PatchError> {
        let Some(git) = self.git.take() else {
            return Ok(());
        };
        if git.has_header {
            return Ok(());
        }
        if !git.new_file && !git.deleted_file {
            return Err(malformed(
                git.line,
                format!(
                    "the `diff --git` block for {} has no `---`/`+++` lines",
                    git.label
                ),
            ));
        }
        if git.new_file && git.deleted_file {
            return Err(malformed(
                git.line,
                format!("{} is both created and deleted", git.label),
            ));
        }
        let Some((old, new)) = git.paths.filter(|(old, new)| old == new) else {
            return Err(malformed(
                git.line,
                "the paths of this `diff --git` line cannot be read",
            ));
        };
        path::check(&old)?;
        path::check(&new)?;
        self.files.push(FilePatch {
            old_path: (!git.new_file).then_some(old),
            new_path: (!git.deleted_file).then_some(new),
            hunks: Vec::new(),
            old_missing_newline: false,
            new_missing_newline: false,
        });
        Ok(())
    }

    /// Reads a `---`/`+++` header and the hunks after it.
    fn file(&mut self) -> Result<(), PatchError> {
        let line_no = self.pos + 1;
        let old = self.header_path(self.pos, "--- ")?;
        let new = self.header_path(self.pos + 1, "+++ ")?;
        self.pos += 2;
        if old.is_none() && new.is_none() {
            return Err(malformed(
                line_no,
                "both sides of the file header are /dev/null",
            ));
        }
        if let Some(git) = self.git.as_mut() {
            git.has_header = true;
            if git.new_file && old.is_some() {
                return Err(malformed(
                    line_no,
                    "`new file mode` is given but the `---` side is not /dev/null",
                ));
            }
            if git.deleted_file && new.is_some() {
                return Err(malformed(
                    line_no,
                    "`deleted file mode` is given but the `+++` side is not /dev/null",
                ));
            }
        }
        for p in old.iter().chain(new.iter()) {
            path::check(p)?;
        }
        let mut file = FilePatch {
            old_path: old,
            new_path: new,
            hunks: Vec::new(),
            old_missing_newline: false,
            new_missing_newline: false,
        };
        let name = file.path().to_string();
        while self
            .peek_at(self.pos)
            .is_some_and(|l| header(l).starts_with("@@"))
        {
            let number = file.hunks.len() + 1;
            let bad = |reason: String| PatchError::BadHunk {
                path: name.clone(),
                hunk: number,
                reason,
            };
            if file.old_missing_newline || file.new_missing_newline {
                return Err(bad(
                    "it follows a `\\ No newline at end of file` line, which can only end a file's last hunk"
                        .into(),
                ));
            }
            let hunk = self.hunk(&mut file, &name, number)?;
            if let Some(prev) = file.hunks.last() {
                if hunk.old_index() < prev.old_index().saturating_add(prev.old_count) {
                    return Err(bad(format!(
                        "it starts before the end of hunk {}; hunks must be in file order and must not overlap",
                        number - 1
                    )));
                }
            }
            match file.change() {
                Change::Add if hunk.old_start != 0 || hunk.old_count != 0 => {
                    return Err(bad(
                        "the file is created, so the hunk must start `@@ -0,0` and have no old lines".into(),
                    ));
                }
                Change::Delete if hunk.new_start != 0 || hunk.new_count != 0 => {
                    return Err(bad(
                        "the file is deleted, so the hunk must have `+0,0` and no new lines".into(),
                    ));
                }
                _ => {}
            }
            file.hunks.push(hunk);
        }
        if file.hunks.is_empty() && file.change() == Change::Modify {
            return Err(malformed(
                line_no,
                format!("the diff of {name} has a `---`/`+++` header but no hunks"),
            ));
        }
        self.files.push(file);
        Ok(())
    }

    fn header_path(&self, pos: usize, marker: &str) -> Result<HeaderPath, PatchError> {
        let line = header(self.peek_at(pos).unwrap_or(""));
        let raw = line.strip_prefix(marker).unwrap_or("");
        path::header_path(raw).map_err(|reason| malformed(pos + 1, reason))
    }

    /// Reads one hunk, its `@@` line first, checking its counts against its
    /// body and recording `\ No newline at end of file` markers in `file`.
    fn hunk(
        &mut self,
        file: &mut FilePatch,
        name: &str,
        number: usize,
    ) -> Result<Hunk, PatchError> {
        let bad = |reason: String| PatchError::BadHunk {
            path: name.to_string(),
            hunk: number,
            reason,
        };
        let at = header(self.peek_at(self.pos).unwrap_or(""));
        let Some((old_start, old_count, new_start, new_count, section)) = parse_hunk_header(at)
        else {
            return Err(bad(format!(
                "its header {at:?} is not of the form `@@ -START,COUNT +START,COUNT @@`"
            )));
        };
        if (old_start == 0 && old_count != 0) || (new_start == 0 && new_count != 0) {
            return Err(bad(format!("its header {at:?} names line 0")));
        }
        if old_count == 0 && new_count == 0 {
            return Err(bad(format!("its header {at:?} counts no lines at all")));
        }
        self.pos += 1;
        let counts = format!("its `@@` line counts {old_count} old and {new_count} new lines");
        let mut lines: Vec<Line> = Vec::new();
        let (mut olds, mut news) = (0usize, 0usize);
        // Whether the last body line already carries a no-newline marker.
        let mut marked = false;
        loop {
            let complete = olds == old_count && news == new_count;
            let raw = self.peek_at(self.pos);
            if let Some(raw) = raw.filter(|l| l.starts_with('\\')) {
                let Some(last) = lines.last().filter(|_| !marked) else {
                    return Err(bad(format!(
                        "its `{}` line does not follow a line of the hunk",
                        header(raw)
                    )));
                };
                file.old_missing_newline |= last.is_old();
                file.new_missing_newline |= last.is_new();
                marked = true;
                self.pos += 1;
                continue;
            }
            if complete {
                break;
            }
            let line = match raw.map(|l| (l.as_bytes().first(), l.get(1..).unwrap_or(""))) {
                Some((Some(b' '), text)) => Line::Context(text.to_string()),
                // An empty line is a context line whose space was stripped
                // (by an editor or a mailer); git accepts it too.
                Some((None, _)) => Line::Context(String::new()),
                Some((Some(b'-'), text)) => Line::Remove(text.to_string()),
                Some((Some(b'+'), text)) => Line::Add(text.to_string()),
                _ => {
                    return Err(bad(format!(
                        "{counts}, but the body has only {olds} old and {news} new lines"
                    )))
                }
            };
            if line.is_old() && olds == old_count {
                return Err(bad(format!("{counts}, but the body has more old lines")));
            }
            if line.is_new() && news == new_count {
                return Err(bad(format!("{counts}, but the body has more new lines")));
            }
            if (line.is_old() && file.old_missing_newline)
                || (line.is_new() && file.new_missing_newline)
            {
                return Err(bad(
                    "a line follows the `\\ No newline at end of file` line of its side".into(),
                ));
            }
            olds += usize::from(line.is_old());
            news += usize::from(line.is_new());
            lines.push(line);
            marked = false;
            self.pos += 1;
        }
        self.check_no_surplus()
            .map_err(|()| bad(format!("{counts}, but the body has more lines than that")))?;
        Ok(Hunk {
            old_start,
            old_count,
            new_start,
            new_count,
            section,
            lines,
        })
    }

    /// After a complete hunk, refuses further body lines: they mean the
    /// `@@` counts are too small, and skipping them would silently drop
    /// part of the change.
    fn check_no_surplus(&self) -> Result<(), ()> {
        let mut pos = self.pos;
        while self.peek_at(pos).is_some_and(|l| header(l).is_empty()) {
            pos += 1;
        }
        let Some(next) = self.peek_at(pos) else {
            return Ok(());
        };
        // `-- ` is the signature line `git format-patch` ends with.
        if header(next) == "-- " || self.file_header_at(pos) || !looks_like_body(next) {
            return Ok(());
        }
        Err(())
    }
}

/// Reads `@@ -l[,s] +l[,s] @@[ section]`; an omitted count means 1.
fn parse_hunk_header(line: &str) -> Option<(usize, usize, usize, usize, String)> {
    let rest = line.strip_prefix("@@ -")?;
    let (old, rest) = rest.split_once(" +")?;
    let (new, rest) = rest.split_once(" @@")?;
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    let (old_start, old_count) = parse_range(old)?;
    let (new_start, new_count) = parse_range(new)?;
    Some((
        old_start,
        old_count,
        new_start,
        new_count,
        rest.trim().to_string(),
    ))
}

fn parse_range(s: &str) -> Option<(usize, usize)> {
    let number = |t: &str| {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse::<usize>().ok()
    };
    match s.split_once(',') {
        Some((start, count)) => Some((number(start)?, number(count)?)),
        None => Some((number(s)?, 1)),
    }
}

/// Names what a git mode other than a regular file stands for.
fn mode_kind(mode: &str) -> &'static str {
    match mode {
        "100755" => "an executable file (mode 100755)",
        "120000" => "a symlink",
        "160000" => "a submodule",
        "040000" => "a directory",
        _ => "a file with an unusual mode",
    }
}

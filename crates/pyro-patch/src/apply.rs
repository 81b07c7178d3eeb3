//! Applying a [`FilePatch`] to a file's content: exact matches only, no
//! fuzz, nothing written unless every hunk applies.

use crate::{path, Change, FilePatch, Hunk, Line, PatchError};

/// One side of a hunk: each line's text and whether a `\n` ends it.
type Side<'a> = Vec<(&'a str, bool)>;

impl FilePatch {
    /// Applies to the file's current content (`None` = file missing).
    /// Returns the new content (`None` = delete).
    ///
    /// Each hunk's old lines must match the file exactly (a `\r` before a
    /// `\n` is part of the line). A hunk is tried at its stated line, moved
    /// by how far the previous hunk was found from its own stated line, then
    /// at lines further and further away in both directions, as `git apply`
    /// does; hunks apply in order and never overlap. A hunk whose context
    /// reaches the start (or end) of the file in the patch must match at the
    /// start (or end) of the file.
    pub fn apply(&self, current: Option<&[u8]>) -> Result<Option<Vec<u8>>, PatchError> {
        let name = self.path();
        path::check(name)?;
        let text = match (self.change(), current) {
            (Change::Add, Some(_)) => {
                return Err(PatchError::AlreadyExists {
                    path: name.to_string(),
                })
            }
            (Change::Add, None) => "",
            (_, None) => {
                return Err(PatchError::Missing {
                    path: name.to_string(),
                })
            }
            (_, Some(bytes)) => std::str::from_utf8(bytes).map_err(|_| PatchError::NotText {
                path: name.to_string(),
            })?,
        };
        // Lines keep their `\n`, so a last line without one is a different
        // line from the same text with one, exactly as in the patch.
        let old: Vec<&str> = text.split_inclusive('\n').collect();
        let mut out = String::with_capacity(text.len());
        let mut done = 0; // old lines already copied or replaced
        let mut offset: i128 = 0; // where the last hunk was found minus where it said
        for (i, hunk) in self.hunks.iter().enumerate() {
            let last = i + 1 == self.hunks.len();
            let before = side(hunk, Line::is_old, last && self.old_missing_newline);
            let after = side(hunk, Line::is_new, last && self.new_missing_newline);
            let stated = hunk.old_index();
            let expected = usize::try_from((stated as i128 + offset).max(0)).unwrap_or(usize::MAX);
            let (leading, trailing) = context_around(hunk);
            let anchors = Anchors {
                // The patch's context began at line 1, so the change is at
                // the top of the file; git refuses to move such a hunk.
                start: !before.is_empty() && hunk.old_start <= 1,
                // Context before the change but none after it: the patch's
                // file ended there. A missing final newline also pins the
                // hunk to the end.
                end: (!before.is_empty() && trailing == 0 && leading > 0)
                    || (last && (self.old_missing_newline || self.new_missing_newline)),
            };
            let Some(pos) = locate(&old, &before, expected, done, anchors) else {
                return Err(PatchError::HunkMismatch {
                    path: name.to_string(),
                    hunk: i + 1,
                    line: expected.saturating_add(1),
                });
            };
            for line in old.get(done..pos).unwrap_or(&[]) {
                out.push_str(line);
            }
            for (text, newline) in after {
                out.push_str(text);
                if newline {
                    out.push('\n');
                }
            }
            done = pos + before.len();
            offset = pos as i128 - stated as i128;
        }
        for line in old.get(done..).unwrap_or(&[]) {
            out.push_str(line);
        }
        if self.change() == Change::Delete {
            if !out.is_empty() {
                return Err(PatchError::DeleteLeftover {
                    path: name.to_string(),
                    lines: out.split_inclusive('\n').count(),
                });
            }
            return Ok(None);
        }
        Ok(Some(out.into_bytes()))
    }
}

/// The lines of one side of `hunk`; `missing_newline` drops the `\n` of
/// the side's last line.
fn side(hunk: &Hunk, on_side: fn(&Line) -> bool, missing_newline: bool) -> Side<'_> {
    let mut lines: Side<'_> = hunk
        .lines
        .iter()
        .filter(|l| on_side(l))
        .map(|l| (l.text(), true))
        .collect();
    if missing_newline {
        if let Some(last) = lines.last_mut() {
            last.1 = false;
        }
    }
    lines
}

/// How many context lines come before the first change and after the last.
fn context_around(hunk: &Hunk) -> (usize, usize) {
    let is_context = |l: &&Line| matches!(l, Line::Context(_));
    let leading = hunk.lines.iter().take_while(is_context).count();
    let trailing = hunk.lines.iter().rev().take_while(is_context).count();
    (leading, trailing)
}

/// Where a hunk must match, besides matching exactly.
#[derive(Clone, Copy)]
struct Anchors {
    start: bool,
    end: bool,
}

/// Finds where `before` occurs in `old` at or after `min`, nearest to
/// `expected` first.
fn locate(
    old: &[&str],
    before: &Side<'_>,
    expected: usize,
    min: usize,
    anchors: Anchors,
) -> Option<usize> {
    let highest = old.len().checked_sub(before.len())?;
    if min > highest {
        return None;
    }
    let fits = |pos: usize| {
        old.get(pos..pos.saturating_add(before.len()))
            .is_some_and(|window| {
                window
                    .iter()
                    .zip(before)
                    .all(|(line, &(text, newline))| same_line(line, text, newline))
            })
    };
    if anchors.start || anchors.end {
        if anchors.start && anchors.end && highest != 0 {
            return None;
        }
        let pos = if anchors.start { 0 } else { highest };
        return (pos >= min && fits(pos)).then_some(pos);
    }
    if before.is_empty() {
        // Nothing to match: the stated place is the only evidence.
        return (expected >= min && expected <= highest).then_some(expected);
    }
    let start = expected.clamp(min, highest);
    for distance in 0..=highest - min {
        let up = start.checked_add(distance).filter(|&p| p <= highest);
        let down = start
            .checked_sub(distance)
            .filter(|&p| p >= min && distance > 0);
        if up.is_none() && down.is_none() {
            break;
        }
        if let Some(pos) = up.into_iter().chain(down).find(|&p| fits(p)) {
            return Some(pos);
        }
    }
    None
}

/// Whether a file line (with its `\n`, if any) is the patch line `text`.
fn same_line(line: &str, text: &str, newline: bool) -> bool {
    if newline {
        line.strip_suffix('\n') == Some(text)
    } else {
        line == text
    }
}

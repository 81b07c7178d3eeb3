//! Writing unified diffs of text files.

use std::fmt::Write as _;
use std::ops::Range;

use similar::{capture_diff_slices, group_diff_ops, Algorithm, DiffTag};

use crate::path::quote;

/// A unified diff of one text file, or `""` when `old` and `new` are equal.
///
/// `old` is `None` when the file is being created and `new` is `None` when
/// it is being deleted; the header then names `/dev/null` on that side.
/// Headers are `--- a/PATH` / `+++ b/PATH` (quoted as git does when the
/// path holds control characters, quotes or backslashes). Each hunk carries
/// up to `context` unchanged lines on either side, and a line without a
/// final newline is followed by `\ No newline at end of file`.
///
/// Creating or deleting an empty file gives a header with no hunks, which
/// [`parse`](crate::parse) accepts.
pub fn unified_diff(path: &str, old: Option<&str>, new: Option<&str>, context: usize) -> String {
    if old == new {
        return String::new();
    }
    // Lines keep their `\n` so that a last line without one differs from
    // the same text with one, which is what the marker expresses.
    let old_lines: Vec<&str> = old.unwrap_or("").split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.unwrap_or("").split_inclusive('\n').collect();
    let mut out = String::new();
    out.push_str("--- ");
    out.push_str(&old.map_or_else(|| "/dev/null".to_string(), |_| quote("a/", path)));
    out.push_str("\n+++ ");
    out.push_str(&new.map_or_else(|| "/dev/null".to_string(), |_| quote("b/", path)));
    out.push('\n');

    // More context than lines changes nothing, and keeps the grouping's
    // `2 * context` from overflowing.
    let context = context.min(old_lines.len().max(new_lines.len()));
    let ops = capture_diff_slices(Algorithm::Myers, &old_lines, &new_lines);
    for group in group_diff_ops(ops, context) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let old_range = first.old_range().start..last.old_range().end;
        let new_range = first.new_range().start..last.new_range().end;
        // Writing to a String cannot fail.
        let _ = writeln!(out, "@@ -{} +{} @@", range(&old_range), range(&new_range));
        for op in &group {
            let (tag, olds, news) = op.as_tag_tuple();
            let olds = old_lines.get(olds).unwrap_or(&[]);
            let news = new_lines.get(news).unwrap_or(&[]);
            match tag {
                DiffTag::Equal => olds.iter().for_each(|l| push_line(&mut out, ' ', l)),
                DiffTag::Delete => olds.iter().for_each(|l| push_line(&mut out, '-', l)),
                DiffTag::Insert => news.iter().for_each(|l| push_line(&mut out, '+', l)),
                DiffTag::Replace => {
                    olds.iter().for_each(|l| push_line(&mut out, '-', l));
                    news.iter().for_each(|l| push_line(&mut out, '+', l));
                }
            }
        }
    }
    out
}

/// A hunk range as GNU diff writes it: `START,COUNT`, the count left out
/// when it is 1, and an empty range named by the line before it.
fn range(r: &Range<usize>) -> String {
    match r.len() {
        0 => format!("{},0", r.start),
        1 => format!("{}", r.start + 1),
        n => format!("{},{}", r.start + 1, n),
    }
}

fn push_line(out: &mut String, marker: char, line: &str) {
    out.push(marker);
    out.push_str(line);
    if !line.ends_with('\n') {
        out.push_str("\n\\ No newline at end of file\n");
    }
}

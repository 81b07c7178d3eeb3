//! Paths in patch headers: reading them (prefixes, timestamps, git's
//! quoting), checking them, and writing them.

use crate::PatchError;

/// What a `---`/`+++` header names: `None` for `/dev/null`.
pub(crate) type HeaderPath = Option<String>;

/// Reads the path of a `---` or `+++` header line (the text after the
/// marker and its space). Returns the reason when it cannot be read.
pub(crate) fn header_path(raw: &str) -> Result<HeaderPath, String> {
    let name = if raw.starts_with('"') {
        // git quotes names with unusual characters; anything after the
        // closing quote is a timestamp or padding.
        let (name, _rest) = unquote(raw)?;
        name
    } else {
        // GNU diff appends a tab and a timestamp; git appends a lone tab to
        // names containing spaces. Either way the name ends at the tab.
        raw.split('\t').next().unwrap_or("").to_string()
    };
    if name == "/dev/null" {
        return Ok(None);
    }
    Ok(Some(strip_prefix(&name).to_string()))
}

/// Removes one leading `a/` or `b/`, as `patch -p1` and `git apply` do.
pub(crate) fn strip_prefix(name: &str) -> &str {
    name.strip_prefix("a/")
        .or_else(|| name.strip_prefix("b/"))
        .unwrap_or(name)
}

/// Reads the two paths of a `diff --git a/X b/Y` line (the text after
/// `diff --git `). `None` when they cannot be told apart, which only
/// matters for patches that have no `---`/`+++` lines.
pub(crate) fn git_header_paths(rest: &str) -> Option<(String, String)> {
    let (old, new) = if rest.starts_with('"') {
        let (old, tail) = unquote(rest).ok()?;
        let tail = tail.strip_prefix(' ')?;
        let new = if tail.starts_with('"') {
            unquote(tail).ok()?.0
        } else {
            tail.to_string()
        };
        (old, new)
    } else if let Some(space) = rest.find(" \"") {
        // Unquoted old name, quoted new name.
        let new = unquote(rest.get(space + 1..)?).ok()?.0;
        (rest.get(..space)?.to_string(), new)
    } else if let Some((old, new)) = split_in_half(rest) {
        // Unquoted names may contain spaces: split where both halves name
        // the same file, as they do unless the file is renamed.
        (old.to_string(), new.to_string())
    } else {
        // Different names (a rename or copy): split at the only ` b/`.
        let mut parts = rest.split(" b/");
        let (old, new) = (parts.next()?, parts.next()?);
        if parts.next().is_some() || !old.starts_with("a/") {
            return None;
        }
        (old.to_string(), format!("b/{new}"))
    };
    Some((
        strip_prefix(&old).to_string(),
        strip_prefix(&new).to_string(),
    ))
}

/// Splits `"a/P b/P"` into its two halves when they name the same path.
fn split_in_half(rest: &str) -> Option<(&str, &str)> {
    let half = rest.len().checked_sub(1)? / 2;
    let (old, new) = (rest.get(..half)?, rest.get(half + 1..)?);
    (rest.get(half..half + 1)? == " " && strip_prefix(old) == strip_prefix(new))
        .then_some((old, new))
}

/// Undoes git's C-style quoting of `"..."`. Returns the name and what
/// follows the closing quote.
fn unquote(raw: &str) -> Result<(String, &str), String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 1; // skip the opening quote
    loop {
        let Some(&b) = bytes.get(i) else {
            return Err("a quoted path has no closing quote".into());
        };
        i += 1;
        match b {
            b'"' => break,
            b'\\' => {
                let Some(&e) = bytes.get(i) else {
                    return Err("a quoted path ends with a backslash".into());
                };
                i += 1;
                let byte = match e {
                    b'a' => 7,
                    b'b' => 8,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'v' => 11,
                    b'f' => 12,
                    b'r' => b'\r',
                    b'"' | b'\\' => e,
                    b'0'..=b'3' => {
                        let digits = bytes.get(i..i + 2).unwrap_or(&[]);
                        if digits.len() != 2 || !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                            return Err("a quoted path has a bad octal escape".into());
                        }
                        i += 2;
                        (e - b'0') * 64 + (digits[0] - b'0') * 8 + (digits[1] - b'0')
                    }
                    _ => return Err("a quoted path has an unknown escape".into()),
                };
                out.push(byte);
            }
            _ => out.push(b),
        }
    }
    let name = String::from_utf8(out).map_err(|_| "a quoted path is not UTF-8".to_string())?;
    Ok((name, raw.get(i..).unwrap_or("")))
}

/// Refuses paths that are empty, absolute or climb out of the workspace.
pub(crate) fn check(path: &str) -> Result<(), PatchError> {
    let reason = if path.is_empty() {
        "it is empty"
    } else if path.starts_with('/') {
        "it is absolute"
    } else if path.contains('\0') {
        "it contains a NUL byte"
    } else if path.split('/').any(|c| c == "..") {
        "it contains a `..` component"
    } else if path.ends_with('/') || path.split('/').all(|c| c.is_empty() || c == ".") {
        "it names a directory, not a file"
    } else {
        return Ok(());
    };
    Err(PatchError::BadPath {
        path: path.to_string(),
        reason,
    })
}

/// Writes `prefix` + `path` for a header line, quoted the way git does
/// when the name holds characters that would break the line.
pub(crate) fn quote(prefix: &str, path: &str) -> String {
    let needs_quotes = path.starts_with('"')
        || path
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_ascii_control());
    if !needs_quotes {
        let mut s = format!("{prefix}{path}");
        // A trailing tab tells GNU patch where a name with spaces ends.
        if path.contains(' ') {
            s.push('\t');
        }
        return s;
    }
    let mut s = String::from("\"");
    for c in prefix.chars().chain(path.chars()) {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\t' => s.push_str("\\t"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            c if c.is_ascii_control() => s.push_str(&format!("\\{:03o}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

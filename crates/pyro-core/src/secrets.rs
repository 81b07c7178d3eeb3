//! Workspace secrets: checked once, stored on the host readable only by
//! the owner (`workspaces/<id>/secrets/<NAME>.secret`, 0600 in a 0700
//! directory), installed in the guest at `/run/pyro-secrets/<NAME>` on
//! every boot, mapped into one process's environment on request, and
//! redacted from every output pyro prints or stores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::api::{SecretInfo, SecretSource, SecretSpec};
use crate::Error;

/// Largest secret value.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
/// What a redacted value is replaced with.
pub const REDACTED: &[u8] = b"[REDACTED]";

/// `^[A-Za-z_][A-Za-z0-9_]{0,63}$`, for secret and environment variable
/// names alike.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let first = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first || !rest || name.len() > 64 {
        return Err(Error::InvalidArgument(format!(
            "{what} '{name}' must match ^[A-Za-z_][A-Za-z0-9_]{{0,63}}$"
        )));
    }
    Ok(())
}

/// A checked secret: name, value and where it came from.
pub(crate) struct Secret {
    pub name: String,
    pub value: String,
    pub source: SecretSource,
}

/// Checks the specs of a create: names, duplicates, exactly one source,
/// values non-empty UTF-8 of at most 64 KiB. File paths resolve against
/// the working directory.
pub(crate) fn load(specs: &[SecretSpec]) -> Result<Vec<Secret>, Error> {
    let mut out: Vec<Secret> = Vec::with_capacity(specs.len());
    for s in specs {
        validate_name("secret name", &s.name)?;
        if out.iter().any(|o| o.name == s.name) {
            return Err(Error::InvalidArgument(format!(
                "duplicate secret name: {}",
                s.name
            )));
        }
        let (value, source) = match (&s.value, &s.file_path) {
            (Some(v), None) => (v.clone(), SecretSource::Literal),
            (None, Some(p)) => (read_file(&s.name, p)?, SecretSource::File),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "secret '{}' needs exactly one of value or file_path",
                    s.name
                )))
            }
        };
        if value.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "secret '{}' must not be empty",
                s.name
            )));
        }
        if value.len() > MAX_SECRET_BYTES {
            return Err(Error::InvalidArgument(format!(
                "secret '{}' is {} bytes; at most {MAX_SECRET_BYTES} are allowed",
                s.name,
                value.len()
            )));
        }
        out.push(Secret {
            name: s.name.clone(),
            value,
            source,
        });
    }
    Ok(out)
}

fn read_file(name: &str, path: &Path) -> Result<String, Error> {
    let meta = std::fs::metadata(path).map_err(|_| {
        Error::InvalidArgument(format!(
            "secret file for '{name}' not found: {}",
            path.display()
        ))
    })?;
    if !meta.is_file() {
        return Err(Error::InvalidArgument(format!(
            "secret file for '{name}' is not a regular file: {}",
            path.display()
        )));
    }
    if meta.len() > MAX_SECRET_BYTES as u64 {
        return Err(Error::InvalidArgument(format!(
            "secret file for '{name}' is {} bytes; at most {MAX_SECRET_BYTES} are allowed",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(Error::io(format!(
        "reading the secret file {}",
        path.display()
    )))?;
    String::from_utf8(bytes).map_err(|_| {
        Error::InvalidArgument(format!(
            "secret file for '{name}' must contain UTF-8 text: {}",
            path.display()
        ))
    })
}

/// The secrets directory of a workspace directory.
pub(crate) fn dir_of(workspace_dir: &Path) -> PathBuf {
    workspace_dir.join("secrets")
}

/// Writes the values (0600 files in a 0700 directory).
pub(crate) fn store(workspace_dir: &Path, secrets: &[Secret]) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if secrets.is_empty() {
        return Ok(());
    }
    let dir = dir_of(workspace_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(Error::io(format!("creating {}", dir.display())))?;
    for s in secrets {
        let path = dir.join(format!("{}.secret", s.name));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(Error::io(format!("writing {}", path.display())))?;
        f.write_all(s.value.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(Error::io(format!("writing {}", path.display())))?;
    }
    Ok(())
}

/// The stored values of the secrets `infos` describes, by name.
pub(crate) fn values(
    workspace_dir: &Path,
    infos: &[SecretInfo],
) -> Result<BTreeMap<String, String>, Error> {
    let dir = dir_of(workspace_dir);
    let mut out = BTreeMap::new();
    for i in infos {
        let path = dir.join(format!("{}.secret", i.name));
        let value = std::fs::read_to_string(&path).map_err(Error::io(format!(
            "reading the stored secret '{}' ({})",
            i.name,
            path.display()
        )))?;
        out.insert(i.name.clone(), value);
    }
    Ok(out)
}

/// Descriptions as the store keeps them.
pub(crate) fn describe(secrets: &[Secret]) -> Vec<SecretInfo> {
    secrets
        .iter()
        .map(|s| SecretInfo {
            name: s.name.clone(),
            source_kind: s.source,
        })
        .collect()
}

/// Replaces secret values with `[REDACTED]`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a value containing another is replaced whole.
    values: Vec<Vec<u8>>,
}

impl Redactor {
    /// A redactor for these values (empty ones are ignored).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut values: Vec<Vec<u8>> = values
            .into_iter()
            .filter(|v| !v.is_empty())
            .map(|v| v.as_bytes().to_vec())
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Redactor { values }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn longest(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }

    fn match_at(&self, buf: &[u8], at: usize) -> Option<usize> {
        self.values
            .iter()
            .find(|v| buf[at..].starts_with(v))
            .map(Vec::len)
    }

    /// Redacts a whole buffer.
    pub fn redact(&self, buf: &[u8]) -> Vec<u8> {
        if self.is_empty() {
            return buf.to_vec();
        }
        let mut out = Vec::with_capacity(buf.len());
        self.scan(buf, buf.len(), &mut out);
        out
    }

    /// Redacts text.
    pub fn redact_str(&self, s: &str) -> String {
        if self.is_empty() {
            return s.to_string();
        }
        String::from_utf8_lossy(&self.redact(s.as_bytes())).into_owned()
    }

    /// Emits `buf[..]` with matches replaced, stopping before `stop` (no
    /// match starts at or after it); returns where it stopped.
    fn scan(&self, buf: &[u8], stop: usize, out: &mut Vec<u8>) -> usize {
        let mut i = 0;
        while i < stop {
            match self.match_at(buf, i) {
                Some(n) => {
                    out.extend_from_slice(REDACTED);
                    i += n;
                }
                None => {
                    out.push(buf[i]);
                    i += 1;
                }
            }
        }
        i
    }
}

/// Redacts one output stream chunk by chunk: the last bytes that could be
/// the start of a value are held back until the next chunk (or the end),
/// so a value split across two chunks is still caught.
#[derive(Debug, Default)]
pub struct StreamRedactor {
    redactor: Redactor,
    pending: Vec<u8>,
}

impl StreamRedactor {
    /// A stream redactor for `redactor`'s values.
    pub fn new(redactor: Redactor) -> StreamRedactor {
        StreamRedactor {
            redactor,
            pending: Vec::new(),
        }
    }

    /// Takes a chunk; returns what can be shown now.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.redactor.is_empty() {
            return chunk.to_vec();
        }
        self.pending.extend_from_slice(chunk);
        let hold = self.redactor.longest() - 1;
        let stop = self.pending.len().saturating_sub(hold);
        let mut out = Vec::with_capacity(stop);
        let done = self.redactor.scan(&self.pending, stop, &mut out);
        self.pending.drain(..done);
        out
    }

    /// The rest, at the end of the stream.
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.pending);
        self.redactor.redact(&rest)
    }
}

/// The secrets of a workspace record.
pub(crate) fn infos_of(r: &pyro_store::WorkspaceRecord) -> Vec<SecretInfo> {
    serde_json::from_value(r.secrets.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for ok in ["API_TOKEN", "_x", "a1"] {
            validate_name("secret name", ok).unwrap();
        }
        for bad in ["", "1a", "a-b", "a b", &"x".repeat(65)] {
            assert!(validate_name("secret name", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn whole_buffers_are_redacted_longest_first() {
        let r = Redactor::new(["abc", "abcdef", ""]);
        assert_eq!(r.redact(b"xabcdefyabcz"), b"x[REDACTED]y[REDACTED]z");
        assert_eq!(r.redact_str("none"), "none");
    }

    #[test]
    fn a_value_split_across_chunks_is_caught() {
        let value = "s3cr3t-token";
        let text = format!("a{value}b{value}{value}c");
        // Every way of cutting the text in two or three pieces.
        for i in 0..=text.len() {
            for j in i..=text.len() {
                let mut s = StreamRedactor::new(Redactor::new([value]));
                let mut out = s.push(&text.as_bytes()[..i]);
                out.extend(s.push(&text.as_bytes()[i..j]));
                out.extend(s.push(&text.as_bytes()[j..]));
                out.extend(s.finish());
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    "a[REDACTED]b[REDACTED][REDACTED]c",
                    "cut at {i},{j}"
                );
            }
        }
    }

    #[test]
    fn a_value_inside_the_marker_is_not_redacted_twice() {
        let mut s = StreamRedactor::new(Redactor::new(["RED"]));
        let mut out = s.push(b"xRE");
        out.extend(s.push(b"Dy"));
        out.extend(s.finish());
        assert_eq!(out, b"x[REDACTED]y");
    }
}

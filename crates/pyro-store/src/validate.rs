//! Rules for names and labels, one place for every surface.

use crate::StoreError;

/// Longest name or label value.
pub const MAX_VALUE_CHARS: usize = 120;

/// No control characters and no line breaks of any kind (C0/C1 controls,
/// DEL, and the Unicode line and paragraph separators).
fn printable(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
}

/// Whether `s` has the shape of a workspace id: exactly 12 lowercase hex
/// characters. Names never have it, so ids and names cannot be confused.
pub fn is_workspace_id(s: &str) -> bool {
    s.len() == 12
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks and normalises (strips) a workspace name.
pub fn validate_name(name: &str) -> Result<String, StoreError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(StoreError::invalid("name", "name must not be empty"));
    }
    if name.chars().count() > MAX_VALUE_CHARS {
        return Err(StoreError::invalid(
            "name",
            format!("name must be at most {MAX_VALUE_CHARS} characters"),
        ));
    }
    if !printable(name) {
        return Err(StoreError::invalid(
            "name",
            "name must not contain newlines or control characters",
        ));
    }
    if is_workspace_id(name) {
        return Err(StoreError::invalid(
            "name",
            format!(
                "name '{name}' looks like a workspace id (12 hex characters); choose another name"
            ),
        ));
    }
    Ok(name.to_string())
}

/// Checks and normalises a label key: `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`.
pub fn validate_label_key(key: &str) -> Result<String, StoreError> {
    let key = key.trim();
    let mut chars = key.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
    if key.is_empty() {
        return Err(StoreError::invalid("label", "label key must not be empty"));
    }
    if !first_ok || !rest_ok || key.len() > 64 {
        return Err(StoreError::invalid(
            "label",
            format!("label key '{key}' must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$"),
        ));
    }
    Ok(key.to_string())
}

/// Checks and normalises a label value.
pub fn validate_label_value(key: &str, value: &str) -> Result<String, StoreError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(StoreError::invalid(
            "label",
            format!("label '{key}' must not be empty"),
        ));
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(StoreError::invalid(
            "label",
            format!("label '{key}' must be at most {MAX_VALUE_CHARS} characters"),
        ));
    }
    if !printable(value) {
        return Err(StoreError::invalid(
            "label",
            format!("label '{key}' must not contain newlines or control characters"),
        ));
    }
    Ok(value.to_string())
}

/// Parses `KEY=VALUE` (split on the first `=`).
pub fn parse_label_arg(arg: &str) -> Result<(String, String), StoreError> {
    let (k, v) = arg.split_once('=').ok_or_else(|| {
        StoreError::invalid("label", format!("labels must use KEY=VALUE, got '{arg}'"))
    })?;
    if k.trim().is_empty() || v.trim().is_empty() {
        return Err(StoreError::invalid(
            "label",
            format!("labels must use KEY=VALUE, got '{arg}'"),
        ));
    }
    let key = validate_label_key(k)?;
    let value = validate_label_value(&key, v)?;
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Ok(normalised)` or `Err(part of the message)`.
    type Expect<'a> = Result<&'a str, &'static str>;

    /// `Ok((key, value))` or `Err(part of the message)`.
    type ExpectPair = Result<(&'static str, &'static str), &'static str>;

    fn check<T: std::fmt::Debug + PartialEq>(
        what: &str,
        input: &str,
        got: Result<T, StoreError>,
        want: Result<T, &str>,
    ) {
        match (got, want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w, "{what} {input:?}"),
            (Err(e), Err(part)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(part),
                    "{what} {input:?}: {msg:?} lacks {part:?}"
                );
                assert!(matches!(e, StoreError::Invalid { .. }), "{what} {input:?}");
            }
            (g, w) => panic!("{what} {input:?}: got {g:?}, want {w:?}"),
        }
    }

    #[test]
    fn name_table() {
        let long_ok = "x".repeat(120);
        let long_bad = "x".repeat(121);
        let wide_ok = "é".repeat(120);
        let table: Vec<(&str, Expect)> = vec![
            ("a", Ok("a")),
            ("repro fix #123", Ok("repro fix #123")),
            ("  padded\t", Ok("padded")),
            ("é", Ok("é")),
            (&long_ok, Ok(&long_ok)),
            (&wide_ok, Ok(&wide_ok)),
            ("0123456789abc", Ok("0123456789abc")),
            ("0123456789AB", Ok("0123456789AB")),
            ("0123456789ag", Ok("0123456789ag")),
            ("", Err("name must not be empty")),
            ("   ", Err("name must not be empty")),
            (&long_bad, Err("at most 120 characters")),
            ("two\nlines", Err("newlines or control")),
            ("cr\rhere", Err("newlines or control")),
            ("tab\there", Err("newlines or control")),
            ("nul\0", Err("newlines or control")),
            ("del\u{7f}x", Err("newlines or control")),
            ("line\u{2028}sep", Err("newlines or control")),
            ("0123456789ab", Err("looks like a workspace id")),
            (" 0123456789ab ", Err("looks like a workspace id")),
        ];
        for (input, want) in table {
            check("name", input, validate_name(input), want.map(String::from));
        }
    }

    #[test]
    fn label_key_table() {
        let k64 = "k".repeat(64);
        let k65 = "k".repeat(65);
        let table: Vec<(&str, Expect)> = vec![
            ("team", Ok("team")),
            (" team ", Ok("team")),
            ("a.b-c_d", Ok("a.b-c_d")),
            ("0", Ok("0")),
            ("Z9", Ok("Z9")),
            (&k64, Ok(&k64)),
            ("", Err("must not be empty")),
            ("  ", Err("must not be empty")),
            (&k65, Err("must match")),
            ("-k", Err("must match")),
            (".k", Err("must match")),
            ("_k", Err("must match")),
            ("bad key", Err("must match")),
            ("k=v", Err("must match")),
            ("ké", Err("must match")),
            ("k/v", Err("must match")),
        ];
        for (input, want) in table {
            check(
                "key",
                input,
                validate_label_key(input),
                want.map(String::from),
            );
        }
    }

    #[test]
    fn label_value_table() {
        let v120 = "v".repeat(120);
        let v121 = "v".repeat(121);
        let table: Vec<(&str, Expect)> = vec![
            ("x", Ok("x")),
            ("  spaced out  ", Ok("spaced out")),
            ("a=b", Ok("a=b")),
            (&v120, Ok(&v120)),
            ("", Err("label 'k' must not be empty")),
            (" ", Err("label 'k' must not be empty")),
            (&v121, Err("label 'k' must be at most 120 characters")),
            ("a\nb", Err("newlines or control")),
            ("a\rb", Err("newlines or control")),
            ("a\u{1b}b", Err("newlines or control")),
        ];
        for (input, want) in table {
            check(
                "value",
                input,
                validate_label_value("k", input),
                want.map(String::from),
            );
        }
    }

    #[test]
    fn label_arg_table() {
        let long = format!("k={}", "v".repeat(121));
        let table: Vec<(&str, ExpectPair)> = vec![
            ("team=x", Ok(("team", "x"))),
            (" a.b-c_d = v=w ", Ok(("a.b-c_d", "v=w"))),
            ("k==", Ok(("k", "="))),
            ("novalue", Err("labels must use KEY=VALUE")),
            ("", Err("labels must use KEY=VALUE")),
            ("=v", Err("labels must use KEY=VALUE")),
            (" = v", Err("labels must use KEY=VALUE")),
            ("k=", Err("labels must use KEY=VALUE")),
            ("k=  ", Err("labels must use KEY=VALUE")),
            ("-k=v", Err("must match")),
            ("bad key=v", Err("must match")),
            (&long, Err("at most 120")),
            ("k=a\rb", Err("control")),
        ];
        for (input, want) in table {
            check(
                "arg",
                input,
                parse_label_arg(input),
                want.map(|(k, v)| (k.to_string(), v.to_string())),
            );
        }
    }

    #[test]
    fn ids() {
        for ok in ["0123456789ab", "ffffffffffff", "000000000000"] {
            assert!(is_workspace_id(ok), "{ok}");
        }
        for bad in [
            "0123456789AB",
            "0123456789a",
            "0123456789abc",
            "0123456789ag",
            "",
        ] {
            assert!(!is_workspace_id(bad), "{bad}");
        }
    }
}

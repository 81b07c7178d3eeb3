//! Rules for names and labels, one place for every surface.

use std::collections::BTreeMap;

use crate::StoreError;

/// Longest name or label value.
pub const MAX_VALUE_CHARS: usize = 120;

/// Longest label key.
pub const MAX_KEY_CHARS: usize = 64;

/// Most labels one workspace can have.
pub const MAX_LABELS: usize = 64;

/// Characters that render as nothing or reorder text around them: soft
/// hyphen, Arabic letter mark, Mongolian vowel separator, zero-width
/// spaces and joiners, directional marks, embeddings and overrides, word
/// joiner and invisible operators, byte order mark, interlinear annotation
/// and tag characters. A name holding one can look identical to another
/// name, or display as something else.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// What is wrong with the characters of `s`, if anything: control
/// characters and line breaks of any kind (C0/C1 controls, DEL, the Unicode
/// line and paragraph separators), or invisible and formatting characters
/// (see [`invisible`]). The message starts with `what` and names the first
/// offending character as `U+XXXX`.
fn bad_chars(what: &str, s: &str) -> Option<String> {
    if let Some(c) = s
        .chars()
        .find(|&c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    {
        return Some(format!(
            "{what} must not contain newlines or control characters (found U+{:04X})",
            c as u32
        ));
    }
    s.chars().find(|&c| invisible(c)).map(|c| {
        format!(
            "{what} must not contain invisible or formatting characters (found U+{:04X})",
            c as u32
        )
    })
}

/// Whether `s` has the shape of a workspace id: exactly 12 lowercase hex
/// characters.
pub fn is_workspace_id(s: &str) -> bool {
    s.len() == 12
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `s` could be taken for a workspace id: 12 hex characters in any
/// case. Names never have this shape, and looking up such a string only
/// ever finds the workspace with that id (lowercased), so a name can never
/// shadow an id.
pub fn looks_like_workspace_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit())
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
    if let Some(message) = bad_chars("name", name) {
        return Err(StoreError::invalid("name", message));
    }
    if looks_like_workspace_id(name) {
        return Err(StoreError::invalid(
            "name",
            format!(
                "name '{name}' looks like a workspace id (12 hex characters); choose another name"
            ),
        ));
    }
    Ok(name.to_string())
}

/// Refuses a label set larger than [`MAX_LABELS`]; `count` is how many
/// labels the workspace would have after the change.
pub(crate) fn check_label_count(count: usize) -> Result<(), StoreError> {
    if count > MAX_LABELS {
        return Err(StoreError::invalid(
            "labels",
            format!(
                "a workspace can have at most {MAX_LABELS} labels; this change would give it {count}"
            ),
        ));
    }
    Ok(())
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
    if !first_ok || !rest_ok || key.len() > MAX_KEY_CHARS {
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
    if let Some(message) = bad_chars(&format!("label '{key}'"), value) {
        return Err(StoreError::invalid("label", message));
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

/// Parses repeated `KEY=VALUE` arguments (each as [`parse_label_arg`]) into
/// a label map. A key given twice is refused, whatever its values, rather
/// than silently keeping one of them.
pub fn parse_label_args(args: &[String]) -> Result<BTreeMap<String, String>, StoreError> {
    let mut labels = BTreeMap::new();
    for arg in args {
        let (key, value) = parse_label_arg(arg)?;
        if let Some(first) = labels.get(&key) {
            return Err(StoreError::invalid(
                "label",
                format!(
                    "label '{key}' is given twice (values '{first}' and '{value}'); \
                     give each key once"
                ),
            ));
        }
        labels.insert(key, value);
    }
    Ok(labels)
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
            ("two\nlines", Err("(found U+000A)")),
            (
                "nel\u{85}x",
                Err("newlines or control characters (found U+0085)"),
            ),
            ("0123456789ab", Err("looks like a workspace id")),
            (" 0123456789ab ", Err("looks like a workspace id")),
            ("0123456789AB", Err("looks like a workspace id")),
            ("aBcDeF012345", Err("looks like a workspace id")),
            ("ABCDEFABCDEF", Err("looks like a workspace id")),
            (
                "zero\u{200B}width",
                Err("invisible or formatting characters (found U+200B)"),
            ),
            ("evil\u{202E}txt.exe", Err("(found U+202E)")),
            ("\u{FEFF}bom", Err("(found U+FEFF)")),
            ("soft\u{AD}hyphen", Err("(found U+00AD)")),
            ("tag\u{E0041}", Err("(found U+E0041)")),
        ];
        for (input, want) in table {
            check("name", input, validate_name(input), want.map(String::from));
        }
    }

    #[test]
    fn names_refuse_every_invisible_or_formatting_character() {
        let invisible: Vec<char> = [
            0xAD, 0x61C, 0x180E, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C,
            0x202D, 0x202E, 0x2060, 0x2061, 0x2064, 0x2066, 0x2069, 0x206F, 0xFEFF, 0xFFF9, 0xFFFA,
            0xFFFB, 0xE0000, 0xE0001, 0xE007F,
        ]
        .into_iter()
        .map(|c| char::from_u32(c).unwrap())
        .collect();
        for c in invisible {
            for name in [format!("a{c}b"), format!("{c}ab"), format!("ab{c}")] {
                let err = validate_name(&name).unwrap_err().to_string();
                let code = format!("U+{:04X}", c as u32);
                assert!(
                    err.contains("invisible or formatting") && err.contains(&code),
                    "{name:?}: {err}"
                );
            }
            let err = validate_label_value("k", &format!("a{c}b"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("label 'k' must not contain invisible"),
                "{err}"
            );
        }
        for c in (0u32..0x20).chain(0x7F..0xA0).filter_map(char::from_u32) {
            let err = validate_name(&format!("a{c}b")).unwrap_err().to_string();
            assert!(
                err.contains(&format!("control characters (found U+{:04X})", c as u32)),
                "{err}"
            );
        }
        // Neighbours of the refused ranges are fine.
        for ok in [
            "a\u{AC}b",
            "a\u{200A}b",
            "a\u{2070}b",
            "a\u{FFFC}b",
            "a\u{E0080}b",
            "日本",
        ] {
            assert_eq!(validate_name(ok).unwrap(), ok);
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
    fn label_args_table() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let map = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        type Labels = BTreeMap<String, String>;
        let table: Vec<(Vec<String>, Result<Labels, &str>)> = vec![
            (args(&[]), Ok(map(&[]))),
            (args(&["a=1", "b=2"]), Ok(map(&[("a", "1"), ("b", "2")]))),
            (args(&[" a = x=y "]), Ok(map(&[("a", "x=y")]))),
            (
                args(&["k=a", "k=b"]),
                Err("label 'k' is given twice (values 'a' and 'b'); give each key once"),
            ),
            (
                args(&["k=a", "other=1", " k = a "]),
                Err("label 'k' is given twice (values 'a' and 'a'); give each key once"),
            ),
            (
                args(&["k=a", "bad"]),
                Err("labels must use KEY=VALUE, got 'bad'"),
            ),
            (args(&["k=a\u{200B}"]), Err("(found U+200B)")),
        ];
        for (input, want) in table {
            check("args", &input.join(" "), parse_label_args(&input), want);
        }
    }

    #[test]
    fn label_count_cap() {
        assert!(check_label_count(MAX_LABELS).is_ok());
        let err = check_label_count(MAX_LABELS + 3).unwrap_err();
        assert!(matches!(
            err,
            StoreError::Invalid {
                field: "labels",
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "a workspace can have at most 64 labels; this change would give it 67"
        );
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
        for shaped in ["0123456789ab", "0123456789AB", "ABCDEFabcdef"] {
            assert!(looks_like_workspace_id(shaped), "{shaped}");
        }
        for not in [
            "0123456789a",
            "0123456789abc",
            "0123456789ag",
            "０１２３４５６７８９ab",
            "",
        ] {
            assert!(!looks_like_workspace_id(not), "{not}");
        }
    }
}

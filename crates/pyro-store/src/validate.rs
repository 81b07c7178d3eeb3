//! Rules for names and labels, one place for every surface.

use crate::StoreError;

/// Longest name or label value.
pub const MAX_VALUE_CHARS: usize = 120;

fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

fn looks_like_id(s: &str) -> bool {
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
    if looks_like_id(name) {
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

    #[test]
    fn names() {
        for ok in [
            "a",
            "repro fix #123",
            "é",
            &"x".repeat(120),
            "0123456789abc",
            "0123456789AB",
        ] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        assert_eq!(validate_name("  padded ").unwrap(), "padded");
        for (bad, why) in [
            ("", "empty"),
            ("   ", "empty"),
            (&"x".repeat(121), "at most 120"),
            ("two\nlines", "control"),
            ("tab\there", "control"),
            ("0123456789ab", "looks like a workspace id"),
        ] {
            let err = validate_name(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn labels() {
        assert_eq!(
            parse_label_arg("team=x").unwrap(),
            ("team".into(), "x".into())
        );
        assert_eq!(
            parse_label_arg(" a.b-c_d = v=w ").unwrap(),
            ("a.b-c_d".into(), "v=w".into())
        );
        for (bad, why) in [
            ("novalue", "KEY=VALUE"),
            ("=v", "KEY=VALUE"),
            ("k=", "KEY=VALUE"),
            ("-k=v", "must match"),
            ("bad key=v", "must match"),
            (&format!("{}=v", "k".repeat(65)), "must match"),
            (&format!("k={}", "v".repeat(121)), "at most 120"),
            ("k=a\rb", "control"),
        ] {
            let err = parse_label_arg(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}

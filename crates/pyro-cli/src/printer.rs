//! The one place that decides where output goes: data on stdout, progress
//! and diagnostics on stderr, JSON or text.

use std::io::Write;

use pyro_core::Error;
use serde::Serialize;

/// Output mode of one command.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub json: bool,
}

impl Printer {
    /// Pretty JSON document on stdout.
    pub fn json<T: Serialize>(&self, value: &T) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into());
        write_out(format!("{text}\n").as_bytes());
    }

    /// A line of human output on stdout.
    pub fn line(&self, text: &str) {
        write_out(format!("{text}\n").as_bytes());
    }

    /// A status line on stderr (progress, summaries).
    pub fn status(&self, text: &str) {
        write_err(format!("{text}\n").as_bytes());
    }

    /// Reports an error in the mode's format.
    pub fn error(&self, err: &Error) {
        if self.json {
            let mut body =
                serde_json::json!({"code": err.code().as_str(), "message": err.to_string()});
            if let Some(h) = err.hint() {
                body["hint"] = h.into();
            }
            self.json(&serde_json::json!({"ok": false, "error": body}));
        } else {
            self.usage_error(&err.to_string(), err.hint().as_deref());
        }
    }

    /// Reports an error given as text.
    pub fn usage_error(&self, message: &str, hint: Option<&str>) {
        let mut text = format!("error: {message}\n");
        if let Some(h) = hint {
            text.push_str(&format!("hint: {h}\n"));
        }
        write_err(text.as_bytes());
    }
}

/// Writes to stdout and flushes. A closed pipe (`| head`) is not an error:
/// the rest of the output is dropped.
pub fn write_out(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|_| out.flush());
}

/// Writes to stderr and flushes.
pub fn write_err(bytes: &[u8]) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(bytes).and_then(|_| err.flush());
}

/// `yes`/`no` for human output.
pub fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

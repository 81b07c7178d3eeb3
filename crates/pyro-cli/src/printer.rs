//! The one place that decides where output goes: results on stdout,
//! progress and diagnostics on stderr, JSON or text; and the CLI's
//! progress reporter.

use std::io::Write;

use pyro_core::{Error, ErrorEnvelope, Event, Phase, Progress, Surface};
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
        let body = err.body(Surface::Cli);
        if self.json {
            self.json(&ErrorEnvelope::new(body));
        } else {
            self.usage_error(&body.message, body.hint.as_deref());
        }
    }

    /// Reports an error given as text (`error:` and `hint:` lines).
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

/// Progress of one command on stderr, tagged like `[run]`.
pub struct CliProgress {
    /// Tag without brackets.
    pub tag: &'static str,
    /// Print phase and notice lines.
    pub phases: bool,
    /// Stream the command's output to our stdout/stderr (text mode). When
    /// false, results capture it instead.
    pub stream: bool,
    pull_started: std::time::Instant,
}

impl CliProgress {
    /// A reporter for text mode (phases and output) or JSON mode (nothing
    /// but what the result carries).
    pub fn new(tag: &'static str, json: bool) -> Self {
        CliProgress {
            tag,
            phases: !json,
            stream: !json,
            pull_started: std::time::Instant::now(),
        }
    }
}

impl Progress for CliProgress {
    fn event(&mut self, event: Event<'_>) {
        let tag = self.tag;
        match event {
            Event::Pull { environment, phase } => {
                // Builds take minutes: always say what is going on.
                self.pull_started = std::time::Instant::now();
                write_err(
                    format!(
                        "[pull] phase={} environment={environment}\n",
                        phase.as_str()
                    )
                    .as_bytes(),
                );
            }
            Event::PullLine(line) => {
                let line = line.trim();
                if !line.is_empty() {
                    let secs = self.pull_started.elapsed().as_secs();
                    write_err(format!("[pull]   +{secs}s {line}\n").as_bytes());
                }
            }
            _ if !self.phases => {}
            Event::Notice(text) => write_err(format!("[{tag}] notice: {text}\n").as_bytes()),
            Event::Phase {
                phase,
                id,
                environment,
            } => {
                let line = match phase {
                    Phase::Create => {
                        format!("[{tag}] phase=create environment={environment} vm_id={id}\n")
                    }
                    // `run` says start for boot, as the 3.x CLI did.
                    Phase::Boot if tag == "run" => format!("[{tag}] phase=start vm_id={id}\n"),
                    _ if tag == "run" => format!("[{tag}] phase={} vm_id={id}\n", phase.as_str()),
                    _ => format!(
                        "[{tag}] phase={} workspace_id={id} environment={environment}\n",
                        phase.as_str()
                    ),
                };
                write_err(line.as_bytes());
            }
        }
    }
    fn stdout(&mut self, chunk: &[u8]) {
        if self.stream {
            write_out(chunk);
        }
    }
    fn stderr(&mut self, chunk: &[u8]) {
        if self.stream {
            write_err(chunk);
        }
    }
    fn capture_output(&self) -> bool {
        !self.stream
    }
}

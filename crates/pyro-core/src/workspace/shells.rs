//! Interactive shells in a started workspace, kept by its agent (they end
//! with the guest). Reads are cursor-based; `plain` rendering lives here.

use pyro_proto::{Request, Response, ShellStatus};

use crate::api::{
    ShellClosed, ShellInfo, ShellOpenParams, ShellRead, ShellReadParams, ShellRef, ShellSignal,
    ShellSignalParams, ShellWrite, ShellWriteParams,
};
use crate::progress::Progress;
use crate::{Error, Manager};

fn info(id: &str, s: ShellStatus) -> ShellInfo {
    ShellInfo {
        workspace_id: id.to_string(),
        shell_id: s.shell_id,
        cwd: s.cwd,
        cols: s.cols,
        rows: s.rows,
        state: if s.running { "running" } else { "stopped" }.into(),
        started_at: s.started_at_ms as f64 / 1000.0,
        ended_at: s.ended_at_ms.map(|m| m as f64 / 1000.0),
        exit_code: s.exit_code,
        execution_mode: "guest_vsock".into(),
    }
}

fn signal_number(name: &str) -> Result<(i32, &'static str), Error> {
    match name.trim().to_ascii_uppercase().trim_start_matches("SIG") {
        "HUP" => Ok((libc::SIGHUP, "HUP")),
        "INT" => Ok((libc::SIGINT, "INT")),
        "TERM" => Ok((libc::SIGTERM, "TERM")),
        "KILL" => Ok((libc::SIGKILL, "KILL")),
        _ => Err(Error::InvalidArgument(format!(
            "signal_name '{name}' must be one of HUP, INT, TERM, KILL"
        ))),
    }
}

/// Terminal output as plain text: escape sequences (CSI, OSC, other ESC)
/// dropped, `\r` returns to the line start, `\b` steps back, CSI K clears
/// to the end of the line and CSI 2J/3J clears the screen.
pub fn render_plain(raw: &str) -> String {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let mut col = 0usize;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        let line = lines.last_mut().expect("at least one line");
        match c {
            '\x1b' => match chars.peek() {
                Some('[') => {
                    chars.next();
                    let mut params = String::new();
                    let mut fin = None;
                    for d in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&d) {
                            fin = Some(d);
                            break;
                        }
                        params.push(d);
                    }
                    match fin {
                        Some('K') => line.truncate(col),
                        Some('J') if params == "2" || params == "3" => {
                            lines = vec![Vec::new()];
                            col = 0;
                        }
                        _ => {}
                    }
                }
                Some(']') => {
                    chars.next();
                    // OSC: until BEL or ESC \.
                    while let Some(d) = chars.next() {
                        if d == '\x07' {
                            break;
                        }
                        if d == '\x1b' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                // Charset and similar: ESC, an intermediate, one final.
                Some(&i) if "()*+-./#%".contains(i) => {
                    chars.next();
                    chars.next();
                }
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\r' => col = 0,
            '\x08' => col = col.saturating_sub(1),
            '\n' => {
                lines.push(Vec::new());
                col = 0;
            }
            c if c.is_control() && c != '\t' => {}
            c => {
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    lines
        .iter()
        .map(|l| l.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Manager {
    fn shell_call(
        &self,
        asked_as: &str,
        op: &str,
        request: Request,
    ) -> Result<(pyro_store::WorkspaceRecord, Response), Error> {
        let (r, vm) = self.started(asked_as, op)?;
        let shell_id = match &request {
            Request::ShellRead { shell_id, .. }
            | Request::ShellWrite { shell_id, .. }
            | Request::ShellSignal { shell_id, .. }
            | Request::ShellClose { shell_id } => Some(shell_id.clone()),
            _ => None,
        };
        let answer = self
            .on_guest(&r, asked_as, &vm, |vm| Ok(vm.shell_request(request)?))
            .map_err(|e| match (e.code(), &shell_id) {
                (crate::ErrorCode::NotFound, Some(s)) => Error::PathNotFound(format!(
                    "shell '{s}' does not exist in workspace '{}'",
                    r.workspace_id
                )),
                _ => e,
            })?;
        Ok((r, answer))
    }

    /// Opens a shell. Counts as activity.
    pub fn shell_open(
        &self,
        p: ShellOpenParams,
        _progress: &mut dyn Progress,
    ) -> Result<ShellInfo, Error> {
        if !(1..=1000).contains(&p.cols) || !(1..=1000).contains(&p.rows) {
            return Err(Error::InvalidArgument(
                "cols and rows must be between 1 and 1000".into(),
            ));
        }
        if !p.cwd.starts_with('/') {
            return Err(Error::InvalidArgument(format!(
                "cwd must be an absolute path in the guest, got '{}'",
                p.cwd
            )));
        }
        let r = self.load(&p.workspace_id)?;
        let (env, _) = self.secret_env(&r, &p.secret_env)?;
        let (r, answer) = self.shell_call(
            &p.workspace_id,
            "shell open",
            Request::ShellOpen {
                shell_id: crate::ids::new_id(),
                cwd: p.cwd,
                cols: p.cols,
                rows: p.rows,
                env,
            },
        )?;
        let Response::Shell { shell } = answer else {
            return Err(unexpected(&answer));
        };
        self.store()?.touch(&r.workspace_id, crate::now())?;
        Ok(info(&r.workspace_id, shell))
    }

    /// Reads a shell's output. Not activity.
    pub fn shell_read(
        &self,
        p: ShellReadParams,
        _progress: &mut dyn Progress,
    ) -> Result<ShellRead, Error> {
        if p.max_chars == 0 || p.max_chars > 131_072 {
            return Err(Error::InvalidArgument(
                "max_chars must be between 1 and 131072".into(),
            ));
        }
        if p.wait_for_idle_ms
            .is_some_and(|w| !(1..=10_000).contains(&w))
        {
            return Err(Error::InvalidArgument(
                "wait_for_idle_ms must be between 1 and 10000".into(),
            ));
        }
        let (r, answer) = self.shell_call(
            &p.workspace_id,
            "shell read",
            Request::ShellRead {
                shell_id: p.shell_id.clone(),
                cursor: p.cursor,
                max_bytes: p.max_chars,
                idle_ms: p.wait_for_idle_ms,
            },
        )?;
        let Response::ShellOutput {
            shell,
            cursor,
            next_cursor,
            output,
            truncated,
        } = answer
        else {
            return Err(unexpected(&answer));
        };
        let redactor = self.redactor(&r)?;
        let output = redactor.redact_str(&output);
        let output = if p.plain {
            render_plain(&output)
        } else {
            output
        };
        Ok(ShellRead {
            shell: info(&r.workspace_id, shell),
            cursor,
            next_cursor,
            output,
            truncated,
            plain: p.plain,
            wait_for_idle_ms: p.wait_for_idle_ms,
        })
    }

    /// Types into a shell. Counts as activity.
    pub fn shell_write(
        &self,
        p: ShellWriteParams,
        _progress: &mut dyn Progress,
    ) -> Result<ShellWrite, Error> {
        let mut input = p.input.clone();
        if p.append_newline {
            input.push('\n');
        }
        let (r, answer) = self.shell_call(
            &p.workspace_id,
            "shell write",
            Request::ShellWrite {
                shell_id: p.shell_id.clone(),
                input,
            },
        )?;
        let Response::Shell { shell } = answer else {
            return Err(unexpected(&answer));
        };
        self.store()?.touch(&r.workspace_id, crate::now())?;
        Ok(ShellWrite {
            shell: info(&r.workspace_id, shell),
            input_length: p.input.chars().count(),
            append_newline: p.append_newline,
        })
    }

    /// Signals a shell's foreground. Counts as activity.
    pub fn shell_signal(
        &self,
        p: ShellSignalParams,
        _progress: &mut dyn Progress,
    ) -> Result<ShellSignal, Error> {
        let (number, name) = signal_number(&p.signal_name)?;
        let (r, answer) = self.shell_call(
            &p.workspace_id,
            "shell signal",
            Request::ShellSignal {
                shell_id: p.shell_id.clone(),
                signal: number,
            },
        )?;
        let Response::Shell { shell } = answer else {
            return Err(unexpected(&answer));
        };
        self.store()?.touch(&r.workspace_id, crate::now())?;
        Ok(ShellSignal {
            shell: info(&r.workspace_id, shell),
            signal: name.into(),
        })
    }

    /// Ends a shell. Counts as activity.
    pub fn shell_close(
        &self,
        p: ShellRef,
        _progress: &mut dyn Progress,
    ) -> Result<ShellClosed, Error> {
        let (r, answer) = self.shell_call(
            &p.workspace_id,
            "shell close",
            Request::ShellClose {
                shell_id: p.shell_id.clone(),
            },
        )?;
        let Response::Shell { shell } = answer else {
            return Err(unexpected(&answer));
        };
        self.store()?.touch(&r.workspace_id, crate::now())?;
        Ok(ShellClosed {
            shell: info(&r.workspace_id, shell),
            closed: true,
        })
    }
}

fn unexpected(r: &Response) -> Error {
    Error::Vmm(pyro_vmm::VmmError::Agent(format!(
        "unexpected answer to a shell request: {r:?}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_rendering_applies_the_terminal() {
        assert_eq!(render_plain("\x1b[1;32mpyro$ \x1b[0mls\r\n"), "pyro$ ls\n");
        assert_eq!(render_plain("abc\rx"), "xbc");
        assert_eq!(render_plain("abc\x08\x08X"), "aXc");
        assert_eq!(render_plain("abcdef\r\x1b[Kxy"), "xy");
        assert_eq!(render_plain("old\n\x1b[2Jnew"), "new");
        assert_eq!(render_plain("\x1b]0;title\x07text"), "text");
        assert_eq!(render_plain("a\x1b(Bb"), "ab");
    }

    #[test]
    fn signals_by_name() {
        assert_eq!(signal_number("int").unwrap().1, "INT");
        assert_eq!(signal_number("SIGTERM").unwrap().1, "TERM");
        assert!(signal_number("USR1").is_err());
    }
}

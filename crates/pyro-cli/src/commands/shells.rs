//! `pyro workspace shell ...`: flags → params, call the Manager, render.

use pyro_core::api::{
    ShellInfo, ShellOpenParams, ShellReadParams, ShellRef, ShellSignalParams, ShellWriteParams,
};
use pyro_core::{Manager, Quiet};

use crate::args::ShellCommand;
use crate::commands::finish;
use crate::commands::workspace::parse_secret_env;
use crate::exit::Exit;
use crate::printer::{write_err, write_out, Printer};

fn footer(tag: &str, s: &ShellInfo, extra: &str) -> String {
    format!(
        "[{tag}] workspace_id={} shell_id={} state={} cwd={} cols={} rows={}{extra} execution_mode={}\n",
        s.workspace_id, s.shell_id, s.state, s.cwd, s.cols, s.rows, s.execution_mode
    )
}

pub fn run(m: &Manager, c: &ShellCommand) -> Exit {
    match c {
        ShellCommand::Open(a) => {
            let printer = Printer { json: a.json };
            let secret_env = match parse_secret_env(&a.secret_env) {
                Ok(e) => e,
                Err(e) => {
                    printer.error(&e);
                    return Exit::from(&e);
                }
            };
            let p = ShellOpenParams {
                workspace_id: a.workspace.clone(),
                cwd: a.cwd.clone(),
                cols: a.cols,
                rows: a.rows,
                secret_env,
            };
            match m.shell_open(p, &mut Quiet) {
                Ok(s) if a.id_only => {
                    printer.line(&s.shell_id);
                    Exit::Success
                }
                other => finish(printer, other, |s| {
                    write_err(footer("workspace-shell-open", s, "").as_bytes());
                    Exit::Success
                }),
            }
        }
        ShellCommand::Read(a) => {
            let printer = Printer {
                json: a.output.json,
            };
            let p = ShellReadParams {
                workspace_id: a.workspace.clone(),
                shell_id: a.shell.clone(),
                cursor: a.cursor,
                max_chars: a.max_chars,
                plain: a.plain,
                wait_for_idle_ms: a.wait_for_idle_ms,
            };
            finish(printer, m.shell_read(p, &mut Quiet), |r| {
                write_out(r.output.as_bytes());
                let extra = format!(
                    " cursor={} next_cursor={} truncated={} plain={}",
                    r.cursor, r.next_cursor, r.truncated, r.plain
                );
                write_err(footer("workspace-shell-read", &r.shell, &extra).as_bytes());
                Exit::Success
            })
        }
        ShellCommand::Write(a) => {
            let printer = Printer {
                json: a.output.json,
            };
            let p = ShellWriteParams {
                workspace_id: a.workspace.clone(),
                shell_id: a.shell.clone(),
                input: a.input.clone(),
                append_newline: !a.no_newline,
            };
            finish(printer, m.shell_write(p, &mut Quiet), |r| {
                let extra = format!(
                    " input_length={} append_newline={}",
                    r.input_length, r.append_newline
                );
                write_err(footer("workspace-shell-write", &r.shell, &extra).as_bytes());
                Exit::Success
            })
        }
        ShellCommand::Signal(a) => {
            let printer = Printer {
                json: a.output.json,
            };
            let p = ShellSignalParams {
                workspace_id: a.workspace.clone(),
                shell_id: a.shell.clone(),
                signal_name: a.signal.clone(),
            };
            finish(printer, m.shell_signal(p, &mut Quiet), |r| {
                let extra = format!(" signal={}", r.signal);
                write_err(footer("workspace-shell-signal", &r.shell, &extra).as_bytes());
                Exit::Success
            })
        }
        ShellCommand::Close(a) => {
            let printer = Printer {
                json: a.output.json,
            };
            let p = ShellRef {
                workspace_id: a.workspace.clone(),
                shell_id: a.shell.clone(),
            };
            finish(printer, m.shell_close(p, &mut Quiet), |r| {
                write_err(footer("workspace-shell-close", &r.shell, " closed=true").as_bytes());
                Exit::Success
            })
        }
    }
}

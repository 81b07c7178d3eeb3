//! `pyro`: parse, turn flags into an operation's params, call one Manager
//! method, render its result. Nothing else.
//!
//! A library so that the same command runs from the `pyro` binary
//! (`main.rs`) and, in-process, from the Python package's `pyro` console
//! script (crate pyro-py): both call [`run`] with the process's arguments.

mod args;
mod commands;
mod exit;
mod printer;
mod signals;

use std::ffi::OsString;
use std::io::Write;

use clap::Parser;
use pyro_core::{ErrorBody, ErrorCode, ErrorEnvelope};

use crate::args::{
    Cli, Command, DiskCommand, EnvCommand, FileCommand, McpCommand, PatchCommand, SyncCommand,
    WorkspaceCommand,
};
use crate::exit::Exit;
use crate::printer::Printer;

/// Runs the `pyro` command line `raw` (program name first) and returns
/// its exit status. Call it once per process, before the process starts
/// any other thread: it blocks SIGINT, SIGTERM and SIGHUP in the calling
/// thread and hands them to a thread that cleans up and exits the process.
pub fn run(raw: Vec<OsString>) -> u8 {
    // INVARIANT: before any thread exists, so every thread inherits the mask.
    signals::install();
    let code = run_parsed(raw);
    // Output is flushed as it is written; this is for anything a library
    // (clap) left buffered, since no runtime flushes stdout for a caller
    // that is not a Rust `main` (the Python console script).
    let _ = std::io::stdout().flush();
    code
}

fn run_parsed(raw: Vec<OsString>) -> u8 {
    let json = raw
        .iter()
        .take_while(|a| a.as_encoded_bytes() != b"--")
        .any(|a| a.as_encoded_bytes() == b"--json");
    signals::JSON.store(json, std::sync::atomic::Ordering::Relaxed);
    // Arguments travel as JSON strings: refuse what is not UTF-8 rather
    // than guess (or panic in std::env::args).
    let mut argv = Vec::with_capacity(raw.len());
    for (i, a) in raw.into_iter().enumerate() {
        match a.into_string() {
            Ok(s) => argv.push(s),
            Err(bad) => {
                let message = format!(
                    "argument {i} ({}) is not valid UTF-8; pyro passes arguments as text",
                    bad.to_string_lossy()
                );
                return usage_error(json, message).code();
            }
        }
    }
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => return parse_error(e, json),
    };
    dispatch(cli).code()
}

/// A command-line mistake caught before any operation runs.
pub(crate) fn usage_error(json: bool, message: String) -> Exit {
    let printer = Printer { json };
    if json {
        printer.json(&ErrorEnvelope::new(ErrorBody {
            code: ErrorCode::InvalidArgument,
            message,
            hint: None,
        }));
    } else {
        printer.usage_error(&message, None);
    }
    Exit::Usage
}

/// clap's errors, as JSON when `--json` was asked for.
fn parse_error(e: clap::Error, json: bool) -> u8 {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            2
        } else {
            0
        };
    }
    if json {
        // The whole message up to the usage block, on one line.
        let rendered = e.render().to_string();
        let message = rendered
            .split("\n\n")
            .take_while(|part| !part.starts_with("Usage:") && !part.starts_with("For more"))
            .map(|part| part.trim().trim_start_matches("error: ").replace('\n', " "))
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        return usage_error(true, message).code();
    }
    let _ = e.print();
    Exit::Usage.code()
}

fn dispatch(cli: Cli) -> Exit {
    if let Command::Schema(_) = cli.command {
        return commands::schema::run();
    }
    let manager = match pyro_core::Manager::from_env() {
        Ok(m) => m,
        Err(e) => {
            let printer = Printer {
                json: signals::JSON.load(std::sync::atomic::Ordering::Relaxed),
            };
            printer.error(&e);
            return Exit::from(&e);
        }
    };
    match cli.command {
        Command::Schema(_) => unreachable!("handled above"),
        Command::Demo(a) => commands::demo::run(&manager, &a),
        Command::Doctor(a) => commands::doctor::run(&manager, &a),
        Command::Env(EnvCommand::List(o)) => commands::env::list(&manager, o.json),
        Command::Env(EnvCommand::Inspect(a)) => commands::env::inspect(&manager, &a),
        Command::Env(EnvCommand::Pull(a)) => commands::env::pull(&manager, &a),
        Command::Env(EnvCommand::Prune(o)) => commands::env::prune(&manager, o.json),
        Command::Mcp(McpCommand::Serve(a)) => commands::mcp::serve(manager, a),
        Command::Run(a) => commands::run::run(&manager, &a),
        Command::Workspace(w) => match w {
            WorkspaceCommand::Create(a) => commands::workspace::create(&manager, &a),
            WorkspaceCommand::List(a) => commands::workspace::list(&manager, &a),
            WorkspaceCommand::Status(a) => commands::workspace::status(&manager, &a),
            WorkspaceCommand::Update(a) => commands::workspace::update(&manager, &a),
            WorkspaceCommand::Fork(a) => commands::workspace::fork(&manager, &a),
            WorkspaceCommand::Exec(a) => commands::workspace::exec(&manager, &a),
            WorkspaceCommand::Logs(a) => commands::workspace::logs(&manager, &a),
            WorkspaceCommand::Stop(a) => commands::workspace::stop(&manager, &a),
            WorkspaceCommand::Start(a) => commands::workspace::start(&manager, &a),
            WorkspaceCommand::Delete(a) => commands::workspace::delete(&manager, &a),
            WorkspaceCommand::Gc(o) => commands::workspace::gc(&manager, o.json),
            WorkspaceCommand::Sync(SyncCommand::Push(a)) => {
                commands::contents::sync_push(&manager, &a)
            }
            WorkspaceCommand::File(FileCommand::List(a)) => {
                commands::contents::file_list(&manager, &a, false)
            }
            WorkspaceCommand::File(FileCommand::Read(a)) => {
                commands::contents::file_read(&manager, &a, false)
            }
            WorkspaceCommand::File(FileCommand::Write(a)) => {
                commands::contents::file_write(&manager, &a)
            }
            WorkspaceCommand::Patch(PatchCommand::Apply(a)) => {
                commands::contents::patch_apply(&manager, &a)
            }
            WorkspaceCommand::Diff(a) => commands::contents::diff(&manager, &a),
            WorkspaceCommand::Export(a) => commands::contents::export(&manager, &a),
            WorkspaceCommand::Snapshot(c) => commands::contents::snapshot(&manager, &c),
            WorkspaceCommand::Reset(a) => commands::contents::reset(&manager, &a),
            WorkspaceCommand::Disk(DiskCommand::List(a)) => {
                commands::contents::file_list(&manager, &a, true)
            }
            WorkspaceCommand::Disk(DiskCommand::Read(a)) => {
                commands::contents::file_read(&manager, &a, true)
            }
            WorkspaceCommand::Disk(DiskCommand::Export(a)) => {
                commands::contents::disk_export(&manager, &a)
            }
            WorkspaceCommand::Service(c) => commands::services::run(&manager, &c),
            WorkspaceCommand::Shell(c) => commands::shells::run(&manager, &c),
        },
    }
}

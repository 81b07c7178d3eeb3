//! `pyro`: parse, call one Manager method, render. Nothing else.

mod args;
mod commands;
mod exit;
mod printer;
mod signals;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, EnvCommand, WorkspaceCommand};
use crate::exit::Exit;
use crate::printer::Printer;

fn main() -> ExitCode {
    // INVARIANT: before any thread exists, so every thread inherits the mask.
    signals::install();
    let argv: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => return parse_error(e, &argv),
    };
    let json = argv
        .iter()
        .take_while(|a| a.as_str() != "--")
        .any(|a| a == "--json");
    signals::JSON.store(json, std::sync::atomic::Ordering::Relaxed);
    ExitCode::from(dispatch(cli).code())
}

/// clap's errors, as JSON when `--json` was asked for.
fn parse_error(e: clap::Error, argv: &[String]) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                2
            } else {
                0
            },
        );
    }
    let before_dashes = argv.iter().take_while(|a| a.as_str() != "--");
    if before_dashes.into_iter().any(|a| a == "--json") {
        let message = e.kind().to_string();
        let detail = e.to_string();
        let first = detail
            .lines()
            .next()
            .unwrap_or(&message)
            .trim_start_matches("error: ")
            .to_string();
        Printer { json: true }.json(&serde_json::json!({
            "ok": false,
            "error": {"code": "invalid_argument", "message": first}
        }));
        return ExitCode::from(Exit::Usage.code());
    }
    let _ = e.print();
    ExitCode::from(Exit::Usage.code())
}

fn dispatch(cli: Cli) -> Exit {
    let manager = match pyro_core::Manager::from_env() {
        Ok(m) => m,
        Err(e) => {
            Printer { json: false }.error(&e);
            return Exit::from(&e);
        }
    };
    match cli.command {
        Command::Demo(a) => commands::demo::run(&manager, &a),
        Command::Doctor(a) => commands::doctor::run(&manager, &a),
        Command::Env(EnvCommand::List(o)) => commands::env::list(&manager, o.json),
        Command::Env(EnvCommand::Inspect(a)) => commands::env::inspect(&manager, &a),
        Command::Env(EnvCommand::Pull(a)) => commands::env::pull(&manager, &a),
        Command::Env(EnvCommand::Prune(o)) => commands::env::prune(&manager, o.json),
        Command::Run(a) => commands::run::run(&manager, &a),
        Command::Workspace(w) => match w {
            WorkspaceCommand::Create(a) => commands::workspace::create(&manager, &a),
            WorkspaceCommand::List(a) => commands::workspace::list(&manager, &a),
            WorkspaceCommand::Status(a) => commands::workspace::status(&manager, &a),
            WorkspaceCommand::Update(a) => commands::workspace::update(&manager, &a),
            WorkspaceCommand::Exec(a) => commands::workspace::exec(&manager, &a),
            WorkspaceCommand::Logs(a) => commands::workspace::logs(&manager, &a),
            WorkspaceCommand::Stop(a) => commands::workspace::stop(&manager, &a),
            WorkspaceCommand::Start(a) => commands::workspace::start(&manager, &a),
            WorkspaceCommand::Delete(a) => commands::workspace::delete(&manager, &a),
            WorkspaceCommand::Gc(o) => commands::workspace::gc(&manager, o.json),
        },
    }
}

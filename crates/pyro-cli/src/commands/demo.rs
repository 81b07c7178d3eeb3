//! `pyro demo`: the one command that shows pyro works.

use pyro_core::run::RunRequest;
use pyro_core::Manager;

use crate::args::DemoArgs;
use crate::commands::env::PullProgress;
use crate::commands::run::StreamObserver;
use crate::exit::Exit;
use crate::printer::Printer;

const DEMO_ENV: &str = "debian:12";

pub fn run(manager: &Manager, a: &DemoArgs) -> Exit {
    let printer = Printer { json: true };
    match manager.env_inspect(DEMO_ENV) {
        Ok(info) if !info.installed => {
            printer.status(&format!(
                "[demo] {DEMO_ENV} is not installed yet; building it from Debian packages first (once, about a minute)"
            ));
            if let Err(e) = manager.env_pull(DEMO_ENV, false, &mut PullProgress::new(DEMO_ENV)) {
                printer.error(&e);
                return Exit::from(&e);
            }
        }
        Ok(_) => {}
        Err(e) => {
            printer.error(&e);
            return Exit::from(&e);
        }
    }
    let mut req = RunRequest::new(DEMO_ENV, vec!["git".into(), "--version".into()]);
    req.network = a.network;
    let mut observer = StreamObserver {
        phases: true,
        stream_output: false,
    };
    match manager.run(&req, &mut observer) {
        Ok(result) => {
            printer.json(&result);
            if result.exit_code == 0 {
                Exit::Success
            } else {
                Exit::Failure
            }
        }
        Err(e) => {
            printer.error(&e);
            Exit::from(&e)
        }
    }
}

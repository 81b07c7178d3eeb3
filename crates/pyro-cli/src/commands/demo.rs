//! `pyro demo`: the one command that shows pyro works.

use pyro_core::api::{CommandSpec, EnvPullParams, EnvironmentParams, RunParams};
use pyro_core::Manager;

use crate::args::DemoArgs;
use crate::exit::Exit;
use crate::printer::{CliProgress, Printer};

const DEMO_ENV: &str = "debian:12";

pub fn run(manager: &Manager, a: &DemoArgs) -> Exit {
    let printer = Printer { json: true };
    let mut progress = CliProgress::new("run", false);
    // Output is captured into the JSON result, not streamed.
    progress.stream = false;
    let inspect = manager.env_inspect(
        EnvironmentParams {
            environment: DEMO_ENV.into(),
        },
        &mut progress,
    );
    match inspect {
        Ok(info) if !info.installed => {
            printer.status(&format!(
                "[demo] {DEMO_ENV} is not installed yet; building it from Debian packages first (once, about a minute)"
            ));
            let pulled = manager.env_pull(
                EnvPullParams {
                    environment: DEMO_ENV.into(),
                    force: false,
                },
                &mut progress,
            );
            if let Err(e) = pulled {
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
    let command = CommandSpec::Argv(vec!["git".into(), "--version".into()]);
    let params = RunParams {
        network: a.network,
        ..RunParams::new(DEMO_ENV, command)
    };
    match manager.vm_run(params, &mut progress) {
        Ok(result) => {
            printer.json(&result);
            if result.output.exit_code == 0 {
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

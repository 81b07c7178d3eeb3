//! `pyro run`.

use pyro_core::api::{CommandSpec, RunParams, RunResult};
use pyro_core::Manager;

use crate::args::RunArgs;
use crate::exit::Exit;
use crate::printer::{write_err, CliProgress, Printer};

pub fn run(manager: &Manager, a: &RunArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    if a.command.is_empty() {
        return crate::usage_error(a.output.json, "a command is required after `--`".into());
    }
    let params = RunParams {
        vcpu_count: a.vcpu_count,
        mem_mib: a.mem_mib,
        timeout_seconds: a.timeout_seconds,
        network: a.network,
        ttl_seconds: a.ttl_seconds,
        allow_host_compat: a.allow_host_compat,
        ..RunParams::new(a.environment.clone(), CommandSpec::Argv(a.command.clone()))
    };
    // Text mode streams and never buffers the output; JSON needs it whole.
    let mut progress = CliProgress::new("run", a.output.json);
    match manager.vm_run(params, &mut progress) {
        Ok(result) => {
            if a.output.json {
                printer.json(&result);
            } else {
                summary(&result);
            }
            Exit::Guest(result.output.exit_code)
        }
        Err(e) => {
            printer.error(&e);
            Exit::from(&e)
        }
    }
}

fn summary(r: &RunResult) {
    write_err(
        format!(
            "[run] environment={} execution_mode={} exit_code={} duration_ms={} boot={}\n",
            r.environment,
            r.execution_mode,
            r.output.exit_code,
            r.duration_ms,
            r.boot.mode.as_str()
        )
        .as_bytes(),
    );
}

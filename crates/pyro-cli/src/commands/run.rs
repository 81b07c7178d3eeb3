//! `pyro run`.

use pyro_core::run::{RunObserver, RunPhase, RunRequest, RunResult};
use pyro_core::{Manager, OutputSink};

use crate::args::RunArgs;
use crate::exit::Exit;
use crate::printer::{write_err, write_out, Printer};

/// Streams guest output to our stdout/stderr and phases to stderr.
pub struct StreamObserver {
    /// Also print `[run]` phase lines.
    pub phases: bool,
    /// Forward guest output as it arrives.
    pub stream_output: bool,
}

impl OutputSink for StreamObserver {
    fn stdout(&mut self, chunk: &[u8]) {
        if self.stream_output {
            write_out(chunk);
        }
    }
    fn stderr(&mut self, chunk: &[u8]) {
        if self.stream_output {
            write_err(chunk);
        }
    }
}

impl RunObserver for StreamObserver {
    fn phase(&mut self, phase: RunPhase, environment: &str, vm_id: &str) {
        if !self.phases {
            return;
        }
        let line = match phase {
            RunPhase::Create => {
                format!("[run] phase=create environment={environment} vm_id={vm_id}\n")
            }
            _ => format!("[run] phase={} vm_id={vm_id}\n", phase.as_str()),
        };
        write_err(line.as_bytes());
    }
    fn notice(&mut self, message: &str) {
        if self.phases {
            write_err(format!("[run] notice: {message}\n").as_bytes());
        }
    }
}

pub fn run(manager: &Manager, a: &RunArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    let mut req = RunRequest::new(a.environment.clone(), a.command.clone());
    req.vcpu_count = a.vcpu_count;
    req.mem_mib = a.mem_mib;
    req.timeout_seconds = a.timeout_seconds;
    req.network = a.network;
    // Text mode streams and never buffers the output; JSON needs it whole.
    req.capture_output = a.output.json;
    let mut observer = StreamObserver {
        phases: !a.output.json,
        stream_output: !a.output.json,
    };
    match manager.run(&req, &mut observer) {
        Ok(result) => {
            if a.output.json {
                printer.json(&result);
            } else {
                summary(&result);
            }
            Exit::Guest(result.exit_code)
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
            "[run] environment={} execution_mode={} exit_code={} duration_ms={}\n",
            r.environment, r.execution_mode, r.exit_code, r.duration_ms
        )
        .as_bytes(),
    );
}

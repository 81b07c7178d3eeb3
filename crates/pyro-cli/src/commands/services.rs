//! `pyro workspace service ...`: flags → params, call the Manager, render.

use pyro_core::api::{
    CommandSpec, PublishedPortSpec, Readiness, ServiceInfo, ServiceLogsParams, ServiceRef,
    ServiceStartParams, ServiceState, WorkspaceRef,
};
use pyro_core::{Error, Manager, Quiet};

use crate::args::{ServiceCommand, ServiceStartArgs};
use crate::commands::finish;
use crate::commands::workspace::parse_secret_env;
use crate::exit::Exit;
use crate::printer::{write_err, write_out, CliProgress, Printer};

fn state_str(s: ServiceState) -> &'static str {
    match s {
        ServiceState::Running => "running",
        ServiceState::Exited => "exited",
        ServiceState::Stopped => "stopped",
        ServiceState::Failed => "failed",
    }
}

fn readiness_str(r: &Option<Readiness>) -> String {
    match r {
        None => "none".into(),
        Some(Readiness::File { path }) => format!("file:{path}"),
        Some(Readiness::Tcp { address }) => format!("tcp:{address}"),
        Some(Readiness::Http { url }) => format!("http:{url}"),
        Some(Readiness::Command { command }) => format!("command:{command:?}"),
    }
}

fn footer(tag: &str, s: &ServiceInfo) -> String {
    let mut line = format!(
        "[{tag}] workspace_id={} service_name={} state={} cwd={} readiness={}",
        s.workspace_id,
        s.service_name,
        state_str(s.state),
        s.cwd,
        readiness_str(&s.readiness)
    );
    if let Some(c) = s.exit_code {
        line.push_str(&format!(" exit_code={c}"));
    }
    if let Some(r) = &s.stop_reason {
        line.push_str(&format!(" stop_reason={r}"));
    }
    line.push_str(&format!(" execution_mode={}", s.execution_mode));
    if let Some(ports) = published(s) {
        line.push_str(&format!(" published_ports={ports}"));
    }
    line.push('\n');
    line
}

/// `127.0.0.1:HOST->GUEST/tcp,...` while the service runs.
fn published(s: &ServiceInfo) -> Option<String> {
    (s.state == ServiceState::Running && !s.published_ports.is_empty()).then(|| {
        s.published_ports
            .iter()
            .map(|p| {
                format!(
                    "{}:{}->{}/{}",
                    p.host, p.host_port, p.guest_port, p.protocol
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// `--publish GUEST` or `--publish HOST:GUEST`.
fn parse_publish(args: &[String]) -> Result<Vec<PublishedPortSpec>, Error> {
    let bad = || {
        Error::InvalidArgument("published ports must use GUEST_PORT or HOST_PORT:GUEST_PORT".into())
    };
    args.iter()
        .map(|a| {
            let port = |s: &str| s.trim().parse::<u16>().ok().filter(|p| *p > 0);
            match a.split_once(':') {
                Some((h, g)) => Ok(PublishedPortSpec {
                    host_port: Some(port(h).ok_or_else(bad)?),
                    guest_port: port(g).ok_or_else(bad)?,
                }),
                None => Ok(PublishedPortSpec {
                    host_port: None,
                    guest_port: port(a).ok_or_else(bad)?,
                }),
            }
        })
        .collect()
}

fn start(m: &Manager, a: &ServiceStartArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    if a.command.is_empty() {
        return crate::usage_error(a.output.json, "a command is required after `--`".into());
    }
    let parsed =
        parse_secret_env(&a.secret_env).and_then(|env| Ok((env, parse_publish(&a.publish)?)));
    let (secret_env, published_ports) = match parsed {
        Ok(p) => p,
        Err(e) => {
            printer.error(&e);
            return Exit::from(&e);
        }
    };
    let params = ServiceStartParams {
        workspace_id: a.workspace.clone(),
        service_name: a.name.clone(),
        command: CommandSpec::Argv(a.command.clone()),
        cwd: a.cwd.clone(),
        ready_file: a.ready_file.clone(),
        ready_tcp: a.ready_tcp.clone(),
        ready_http: a.ready_http.clone(),
        ready_command: a.ready_command.clone(),
        ready_timeout_seconds: a.ready_timeout_seconds,
        ready_interval_ms: a.ready_interval_ms,
        secret_env,
        published_ports,
    };
    let mut progress = CliProgress::new("workspace-service-start", a.output.json);
    match m.service_start(params, &mut progress) {
        Ok(s) => {
            if printer.json {
                printer.json(&s);
            } else {
                write_err(footer("workspace-service-start", &s).as_bytes());
            }
            // A service that never became ready is a failed start.
            if s.state == ServiceState::Failed {
                Exit::Failure
            } else {
                Exit::Success
            }
        }
        Err(e) => {
            printer.error(&e);
            Exit::from(&e)
        }
    }
}

pub fn run(m: &Manager, c: &ServiceCommand) -> Exit {
    match c {
        ServiceCommand::Start(a) => start(m, a),
        ServiceCommand::List(a) => {
            let printer = Printer {
                json: a.output.json,
            };
            finish(
                printer,
                m.service_list(WorkspaceRef::new(&a.workspace), &mut Quiet),
                |l| {
                    if l.services.is_empty() {
                        printer.line("No workspace services found.");
                    }
                    for s in &l.services {
                        let ports = published(s)
                            .map(|p| format!(" published={p}"))
                            .unwrap_or_default();
                        printer.line(&format!(
                            "{} [{}] cwd={}{ports}",
                            s.service_name,
                            state_str(s.state),
                            s.cwd
                        ));
                    }
                    Exit::Success
                },
            )
        }
        ServiceCommand::Status(a) => {
            let printer = Printer {
                json: a.output.json,
            };
            let r = ServiceRef {
                workspace_id: a.workspace.clone(),
                service_name: a.name.clone(),
            };
            finish(printer, m.service_status(r, &mut Quiet), |s| {
                write_err(footer("workspace-service-status", s).as_bytes());
                Exit::Success
            })
        }
        ServiceCommand::Logs(a) => {
            let printer = Printer {
                json: a.output.json,
            };
            let p = ServiceLogsParams {
                workspace_id: a.workspace.clone(),
                service_name: a.name.clone(),
                tail_lines: a.tail_lines,
                all: a.all,
            };
            finish(printer, m.service_logs(p, &mut Quiet), |l| {
                write_out(l.stdout.as_bytes());
                write_err(l.stderr.as_bytes());
                write_err(
                    format!(
                        "[workspace-service-logs] workspace_id={} service_name={} state={} truncated={}\n",
                        l.service.workspace_id,
                        l.service.service_name,
                        state_str(l.service.state),
                        l.truncated
                    )
                    .as_bytes(),
                );
                Exit::Success
            })
        }
        ServiceCommand::Stop(a) => {
            let printer = Printer {
                json: a.output.json,
            };
            let r = ServiceRef {
                workspace_id: a.workspace.clone(),
                service_name: a.name.clone(),
            };
            finish(printer, m.service_stop(r, &mut Quiet), |s| {
                write_err(footer("workspace-service-stop", s).as_bytes());
                Exit::Success
            })
        }
    }
}

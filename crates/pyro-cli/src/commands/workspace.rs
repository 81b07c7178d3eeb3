//! `pyro workspace ...`: flags → params, call the Manager, render.

use std::collections::BTreeMap;

use pyro_core::api::{
    CommandSpec, NoParams, SecretSource, SecretSpec, WorkspaceCreateParams, WorkspaceExecParams,
    WorkspaceForkParams, WorkspaceInfo, WorkspaceListParams, WorkspaceRef, WorkspaceUpdateParams,
};
use pyro_core::{Error, Manager, Quiet};

use crate::args::{CreateArgs, ExecArgs, ForkArgs, IdArgs, ListArgs, UpdateArgs};
use crate::commands::finish;
use crate::exit::Exit;
use crate::printer::{write_err, write_out, CliProgress, Printer};

fn fail(printer: Printer, e: Error) -> Exit {
    printer.error(&e);
    Exit::from(&e)
}

/// Repeated `--label KEY=VALUE` flags; a key given twice is an error.
fn parse_labels(args: &[String]) -> Result<BTreeMap<String, String>, Error> {
    pyro_core::parse_label_args(args)
}

/// `--secret NAME=VALUE` (value verbatim) and `--secret-file NAME=PATH`.
fn parse_secrets(literal: &[String], files: &[String]) -> Result<Vec<SecretSpec>, Error> {
    let mut out = Vec::new();
    for s in literal {
        let Some((name, value)) = s.split_once('=') else {
            return Err(Error::InvalidArgument(
                "workspace secrets must use NAME=VALUE".into(),
            ));
        };
        out.push(SecretSpec {
            name: name.trim().to_string(),
            value: Some(value.to_string()),
            file_path: None,
        });
    }
    for s in files {
        match s.split_once('=') {
            Some((name, path)) if !name.trim().is_empty() && !path.is_empty() => {
                out.push(SecretSpec {
                    name: name.trim().to_string(),
                    value: None,
                    file_path: Some(std::path::PathBuf::from(path)),
                })
            }
            _ => {
                return Err(Error::InvalidArgument(
                    "workspace secret files must use NAME=PATH".into(),
                ))
            }
        }
    }
    Ok(out)
}

/// `--secret-env SECRET[=ENV]`.
pub(crate) fn parse_secret_env(args: &[String]) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for a in args {
        let (secret, var) = match a.split_once('=') {
            Some((s, v)) => (s.trim(), v.trim()),
            None => (a.trim(), a.trim()),
        };
        if secret.is_empty() {
            return Err(Error::InvalidArgument(
                "workspace secret env mapping must name a secret".into(),
            ));
        }
        if var.is_empty() {
            return Err(Error::InvalidArgument(
                "workspace secret env mapping must name an environment variable".into(),
            ));
        }
        if out.insert(secret.to_string(), var.to_string()).is_some() {
            return Err(Error::InvalidArgument(format!(
                "workspace secret env mapping references '{secret}' more than once"
            )));
        }
    }
    Ok(out)
}

/// "12 s ago", "3 min ago", "2 h ago", "4 d ago".
pub fn age(ts: f64) -> String {
    let secs = (pyro_core::now() - ts).max(0.0) as u64;
    match secs {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86400 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86400),
    }
}

/// Local time as `YYYY-MM-DD HH:MM:SS`.
pub fn local_time(ts: f64) -> String {
    let t = ts as libc::time_t;
    // SAFETY: tm is plain data; localtime_r fills it from a valid time_t.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// `k=v` pairs; a value that could be misread (separators, quotes,
/// spaces, `=`) is shown quoted, so `labels=a=b,k="x,y"` reads one way.
fn labels_text(labels: &BTreeMap<String, String>, sep: &str) -> String {
    labels
        .iter()
        .map(|(k, v)| {
            let plain = !v.is_empty()
                && !v
                    .chars()
                    .any(|c| c == ',' || c == '=' || c == '"' || c == '\\' || c.is_whitespace());
            if plain {
                format!("{k}={v}")
            } else {
                format!("{k}={v:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(sep)
}

pub(crate) fn summary(p: Printer, heading: &str, w: &WorkspaceInfo) {
    p.line(&format!("{heading}: {}", w.workspace_id));
    if let Some(n) = &w.name {
        p.line(&format!("Name: {n}"));
    }
    if !w.labels.is_empty() {
        p.line(&format!("Labels: {}", labels_text(&w.labels, ", ")));
    }
    p.line(&format!("Environment: {}", w.environment));
    p.line(&format!("State: {}", w.state.as_str()));
    p.line(&format!("Workspace: {}", w.workspace_path));
    p.line(&format!(
        "Last activity at: {} ({}, {})",
        w.last_activity_at,
        local_time(w.last_activity_at),
        age(w.last_activity_at)
    ));
    if let Some(e) = w.expires_at {
        p.line(&format!("Idle stop at: {} ({})", e, local_time(e)));
    }
    p.line(&format!("Network policy: {}", w.network_policy.as_str()));
    let seed = &w.workspace_seed;
    match &seed.seed_path {
        Some(path) => p.line(&format!(
            "Workspace seed: {} from {}",
            seed.mode,
            path.display()
        )),
        None => p.line(&format!("Workspace seed: {}", seed.mode)),
    }
    if !w.secrets.is_empty() {
        let list: Vec<String> = w
            .secrets
            .iter()
            .map(|s| {
                let kind = match s.source_kind {
                    SecretSource::Literal => "literal",
                    SecretSource::File => "file",
                };
                format!("{} ({kind})", s.name)
            })
            .collect();
        p.line(&format!("Secrets: {}", list.join(", ")));
    }
    p.line(&format!("Execution mode: {}", w.execution_mode));
    if let Some(b) = &w.boot {
        p.line(&format!("Boot: {}", boot_text(b)));
    }
    let vcpu = if w.vcpu_count == 1 { "vCPU" } else { "vCPUs" };
    p.line(&format!(
        "Resources: {} {vcpu} / {} MiB",
        w.vcpu_count, w.mem_mib
    ));
    p.line(&format!("Command count: {}", w.command_count));
    p.line(&format!("Reset count: {}", w.reset_count));
    if let Some(t) = w.last_reset_at {
        p.line(&format!("Last reset at: {t} ({})", local_time(t)));
    }
    p.line(&format!(
        "Services: {}/{} running",
        w.running_service_count, w.service_count
    ));
    if let Some(c) = &w.last_command {
        p.line(&format!(
            "Last command: {} (exit_code={})",
            c.command, c.exit_code
        ));
    }
    if let Some(e) = &w.last_error {
        p.line(&format!("Last error: {e}"));
    }
}

fn show(printer: Printer, heading: &str, result: Result<WorkspaceInfo, Error>) -> Exit {
    finish(printer, result, |w| {
        summary(printer, heading, w);
        Exit::Success
    })
}

pub fn create(m: &Manager, a: &CreateArgs) -> Exit {
    let printer = Printer { json: a.json };
    let labels = match parse_labels(&a.labels) {
        Ok(l) => l,
        Err(e) => return fail(printer, e),
    };
    let secrets = match parse_secrets(&a.secrets, &a.secret_files) {
        Ok(s) => s,
        Err(e) => return fail(printer, e),
    };
    let network_policy = match a.network_policy.parse() {
        Ok(n) => n,
        Err(e) => return fail(printer, e),
    };
    let params = WorkspaceCreateParams {
        secrets,
        network_policy,
        name: a.name.clone(),
        labels,
        vcpu_count: a.vcpu_count,
        mem_mib: a.mem_mib,
        ttl_seconds: a.ttl_seconds,
        seed_path: a.seed_path.clone(),
        allow_host_compat: a.allow_host_compat,
        ..WorkspaceCreateParams::new(a.environment.clone())
    };
    let mut progress = CliProgress::new("workspace-create", a.json || a.id_only);
    match m.workspace_create(params, &mut progress) {
        Ok(w) if a.id_only => {
            printer.line(&w.workspace_id);
            Exit::Success
        }
        other => show(printer, "Workspace ID", other),
    }
}

pub fn list(m: &Manager, a: &ListArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    let state = match a.state.as_deref().map(str::parse).transpose() {
        Ok(s) => s,
        Err(e) => return fail(printer, e),
    };
    let params = WorkspaceListParams {
        labels: a.labels.clone(),
        name: a.name.clone(),
        state,
        limit: a.limit,
    };
    finish(printer, m.workspace_list(params, &mut Quiet), |list| {
        if list.workspaces.is_empty() {
            printer.line("No workspaces.");
        }
        for w in &list.workspaces {
            let mut line = format!("[workspace] workspace_id={}", w.workspace_id);
            if let Some(n) = &w.name {
                line.push_str(&format!(" name={n:?}"));
            }
            line.push_str(&format!(
                " state={} environment={}",
                w.state.as_str(),
                w.environment
            ));
            if !w.labels.is_empty() {
                line.push_str(&format!(" labels={}", labels_text(&w.labels, ",")));
            }
            line.push_str(&format!(
                " last_activity_at={} ({}) commands={} services={}/{}",
                w.last_activity_at,
                age(w.last_activity_at),
                w.command_count,
                w.running_service_count,
                w.service_count
            ));
            printer.line(&line);
        }
        Exit::Success
    })
}

pub fn status(m: &Manager, a: &IdArgs) -> Exit {
    show(
        Printer {
            json: a.output.json,
        },
        "Workspace ID",
        m.workspace_status(WorkspaceRef::new(&a.workspace), &mut Quiet),
    )
}

pub fn update(m: &Manager, a: &UpdateArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    let labels = match parse_labels(&a.labels) {
        Ok(l) => l,
        Err(e) => return fail(printer, e),
    };
    let params = WorkspaceUpdateParams {
        workspace_id: a.workspace.clone(),
        name: a.name.clone(),
        clear_name: a.clear_name,
        labels,
        clear_labels: a.clear_labels.clone(),
    };
    show(
        printer,
        "Workspace ID",
        m.workspace_update(params, &mut Quiet),
    )
}

pub fn fork(m: &Manager, a: &ForkArgs) -> Exit {
    let printer = Printer { json: a.json };
    let labels = match parse_labels(&a.labels) {
        Ok(l) => l,
        Err(e) => return fail(printer, e),
    };
    let params = WorkspaceForkParams {
        workspace_id: a.workspace.clone(),
        name: a.name.clone(),
        labels,
    };
    let mut progress = CliProgress::new("workspace-fork", a.json || a.id_only);
    match m.workspace_fork(params, &mut progress) {
        Ok(w) if a.id_only => {
            printer.line(&w.workspace_id);
            Exit::Success
        }
        other => show(printer, "Workspace ID", other),
    }
}

pub fn exec(m: &Manager, a: &ExecArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    if a.command.is_empty() {
        return crate::usage_error(a.output.json, "a command is required after `--`".into());
    }
    let secret_env = match parse_secret_env(&a.secret_env) {
        Ok(m) => m,
        Err(e) => return fail(printer, e),
    };
    let params = WorkspaceExecParams {
        workspace_id: a.workspace.clone(),
        command: CommandSpec::Argv(a.command.clone()),
        cwd: a.cwd.clone(),
        timeout_seconds: a.timeout_seconds,
        secret_env,
    };
    let mut progress = CliProgress::new("workspace-exec", a.output.json);
    progress.phases = false;
    match m.workspace_exec(params, &mut progress) {
        Ok(r) => {
            if printer.json {
                printer.json(&r);
            } else {
                write_err(
                    format!(
                        "[workspace-exec] workspace_id={} sequence={} cwd={} execution_mode={} exit_code={} duration_ms={}\n",
                        r.workspace_id, r.sequence, r.cwd, r.execution_mode, r.output.exit_code, r.duration_ms
                    )
                    .as_bytes(),
                );
            }
            Exit::Guest(r.output.exit_code)
        }
        Err(e) => fail(printer, e),
    }
}

pub fn logs(m: &Manager, a: &IdArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    finish(
        printer,
        m.workspace_logs(WorkspaceRef::new(&a.workspace), &mut Quiet),
        |l| {
            if l.entries.is_empty() {
                printer.line("No workspace logs found.");
            }
            for e in &l.entries {
                printer.line(&format!(
                    "#{} exit_code={} duration_ms={} cwd={}",
                    e.sequence, e.exit_code, e.duration_ms, e.cwd
                ));
                printer.line(&format!("$ {}", e.command));
                write_out(e.stdout.as_bytes());
                write_err(e.stderr.as_bytes());
            }
            Exit::Success
        },
    )
}

pub fn stop(m: &Manager, a: &IdArgs) -> Exit {
    let mut progress = CliProgress::new("workspace-stop", a.output.json);
    show(
        Printer {
            json: a.output.json,
        },
        "Stopped workspace ID",
        m.workspace_stop(WorkspaceRef::new(&a.workspace), &mut progress),
    )
}

pub fn start(m: &Manager, a: &IdArgs) -> Exit {
    let mut progress = CliProgress::new("workspace-start", a.output.json);
    show(
        Printer {
            json: a.output.json,
        },
        "Started workspace ID",
        m.workspace_start(WorkspaceRef::new(&a.workspace), &mut progress),
    )
}

pub fn delete(m: &Manager, a: &IdArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    finish(
        printer,
        m.workspace_delete(WorkspaceRef::new(&a.workspace), &mut Quiet),
        |r| {
            printer.line(&format!("Deleted workspace: {}", r.workspace_id));
            Exit::Success
        },
    )
}

pub fn gc(m: &Manager, json: bool) -> Exit {
    let printer = Printer { json };
    finish(printer, m.workspace_gc(NoParams {}, &mut Quiet), |r| {
        printer.line(&format!(
            "Marked stopped: {}; marked failed: {}; stopped idle: {}; killed orphan guest processes: {}; removed orphaned directories: {}",
            r.marked_stopped.len(),
            r.marked_failed.len(),
            r.idle_stopped.len(),
            r.killed_orphans.len(),
            r.removed_dirs.len()
        ));
        Exit::Success
    })
}

/// `template`, `fork`, or `cold (why)`.
pub(crate) fn boot_text(b: &pyro_core::api::BootInfo) -> String {
    match &b.reason {
        Some(r) => format!("{} ({r})", b.mode.as_str()),
        None => b.mode.as_str().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_that_could_be_misread_are_quoted() {
        let labels: BTreeMap<String, String> = [
            ("a", "b"),
            ("k", "a=b,k=c"),
            ("q", "say \"hi\""),
            ("s", "two words"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            labels_text(&labels, ","),
            r#"a=b,k="a=b,k=c",q="say \"hi\"",s="two words""#
        );
    }
}

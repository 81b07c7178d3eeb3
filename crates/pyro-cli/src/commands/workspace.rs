//! `pyro workspace ...`: translate flags, call the Manager, render.

use std::collections::BTreeMap;

use pyro_core::workspace::{CreateWorkspace, WorkspaceInfo};
use pyro_core::{Error, LabelFilter, ListQuery, Manager, NameChange, OutputSink, WorkspaceState};

use crate::commands::run::StreamObserver;

use crate::args::{CreateArgs, ExecArgs, IdArgs, ListArgs, UpdateArgs};
use crate::exit::Exit;
use crate::printer::{write_err, write_out, Printer};

fn fail(printer: Printer, e: Error) -> Exit {
    printer.error(&e);
    Exit::from(&e)
}

fn parse_labels(args: &[String]) -> Result<BTreeMap<String, String>, Error> {
    let mut labels = BTreeMap::new();
    for a in args {
        let (k, v) = pyro_store::parse_label_arg(a)?;
        labels.insert(k, v);
    }
    Ok(labels)
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

fn labels_text(labels: &BTreeMap<String, String>, sep: &str) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(sep)
}

fn summary(p: Printer, heading: &str, w: &WorkspaceInfo) {
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
    p.line(&format!("Network policy: {}", w.network_policy));
    let mode = w.workspace_seed["mode"].as_str().unwrap_or("empty");
    match w.workspace_seed["seed_path"].as_str() {
        Some(path) => p.line(&format!("Workspace seed: {mode} from {path}")),
        None => p.line(&format!("Workspace seed: {mode}")),
    }
    p.line(&format!("Execution mode: {}", w.execution_mode));
    let vcpu = if w.vcpu_count == 1 { "vCPU" } else { "vCPUs" };
    p.line(&format!(
        "Resources: {} {vcpu} / {} MiB",
        w.vcpu_count, w.mem_mib
    ));
    p.line(&format!("Command count: {}", w.command_count));
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
    match result {
        Ok(w) if printer.json => {
            printer.json(&w);
            Exit::Success
        }
        Ok(w) => {
            summary(printer, heading, &w);
            Exit::Success
        }
        Err(e) => fail(printer, e),
    }
}

pub fn create(m: &Manager, a: &CreateArgs) -> Exit {
    let printer = Printer { json: a.json };
    let labels = match parse_labels(&a.labels) {
        Ok(l) => l,
        Err(e) => return fail(printer, e),
    };
    let mut req = CreateWorkspace::new(a.environment.clone());
    req.name = a.name.clone();
    req.labels = labels;
    req.vcpu_count = a.vcpu_count;
    req.mem_mib = a.mem_mib;
    req.ttl_seconds = a.ttl_seconds;
    req.seed_path = a.seed_path.clone();
    let quiet = a.json || a.id_only;
    let mut progress = |line: &str| {
        if !quiet {
            write_err(format!("[workspace-create] {line}\n").as_bytes());
        }
    };
    match m.workspace_create(&req, &mut progress) {
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
    let query = (|| -> Result<ListQuery, Error> {
        let labels = a
            .labels
            .iter()
            .map(|l| LabelFilter::parse(l))
            .collect::<Result<Vec<_>, _>>()?;
        let state = a.state.as_deref().map(WorkspaceState::parse).transpose()?;
        Ok(ListQuery {
            labels,
            name: a.name.clone(),
            state,
            limit: a.limit,
        })
    })();
    let list = match query.and_then(|q| m.workspace_list(&q)) {
        Ok(l) => l,
        Err(e) => return fail(printer, e),
    };
    if printer.json {
        printer.json(&list);
        return Exit::Success;
    }
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
}

pub fn status(m: &Manager, a: &IdArgs) -> Exit {
    show(
        Printer {
            json: a.output.json,
        },
        "Workspace ID",
        m.workspace_status(&a.workspace),
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
    let name = match (&a.name, a.clear_name) {
        (Some(n), _) => NameChange::Set(n.clone()),
        (None, true) => NameChange::Clear,
        (None, false) => NameChange::Keep,
    };
    show(
        printer,
        "Workspace ID",
        m.workspace_update(&a.workspace, name, labels, a.clear_labels.clone()),
    )
}

pub fn exec(m: &Manager, a: &ExecArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    let mut stream = StreamObserver {
        phases: false,
        stream_output: true,
    };
    let forward: Option<&mut dyn OutputSink> = if a.output.json {
        None
    } else {
        Some(&mut stream)
    };
    match m.workspace_exec(
        &a.workspace,
        a.command.clone(),
        Some(a.cwd.clone()),
        a.timeout_seconds,
        a.output.json,
        forward,
    ) {
        Ok(r) => {
            if printer.json {
                printer.json(&r);
            } else {
                write_err(
                    format!(
                        "[workspace-exec] workspace_id={} sequence={} cwd={} execution_mode={} exit_code={} duration_ms={}\n",
                        r.workspace_id, r.sequence, r.cwd, r.execution_mode, r.exit_code, r.duration_ms
                    )
                    .as_bytes(),
                );
            }
            Exit::Guest(r.exit_code)
        }
        Err(e) => fail(printer, e),
    }
}

pub fn logs(m: &Manager, a: &IdArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    match m.workspace_logs(&a.workspace) {
        Ok(l) if printer.json => {
            printer.json(&l);
            Exit::Success
        }
        Ok(l) => {
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
        }
        Err(e) => fail(printer, e),
    }
}

pub fn stop(m: &Manager, a: &IdArgs) -> Exit {
    show(
        Printer {
            json: a.output.json,
        },
        "Stopped workspace ID",
        m.workspace_stop(&a.workspace),
    )
}

pub fn start(m: &Manager, a: &IdArgs) -> Exit {
    show(
        Printer {
            json: a.output.json,
        },
        "Started workspace ID",
        m.workspace_start(&a.workspace),
    )
}

pub fn delete(m: &Manager, a: &IdArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    match m.workspace_delete(&a.workspace) {
        Ok(r) if printer.json => {
            printer.json(&r);
            Exit::Success
        }
        Ok(r) => {
            printer.line(&format!("Deleted workspace: {}", r.workspace_id));
            Exit::Success
        }
        Err(e) => fail(printer, e),
    }
}

pub fn gc(m: &Manager, json: bool) -> Exit {
    let printer = Printer { json };
    match m.workspace_gc() {
        Ok(r) if json => {
            printer.json(&r);
            Exit::Success
        }
        Ok(r) => {
            printer.line(&format!(
                "Marked stopped: {}; marked failed: {}; stopped idle: {}; removed orphaned directories: {}",
                r.marked_stopped.len(),
                r.marked_failed.len(),
                r.idle_stopped.len(),
                r.removed_dirs.len()
            ));
            Exit::Success
        }
        Err(e) => fail(printer, e),
    }
}

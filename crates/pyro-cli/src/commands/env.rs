//! `pyro env list|inspect|pull|prune`.

use std::time::Instant;

use pyro_core::envs::EnvironmentInfo;
use pyro_core::{Manager, PullPhase, PullReporter};

use crate::args::{EnvNameArgs, PullArgs};
use crate::exit::Exit;
use crate::printer::{yes_no, Printer};

/// Prints `[pull]` phases and the builder's progress lines on stderr.
pub struct PullProgress {
    environment: String,
    phase_started: Instant,
}

impl PullProgress {
    pub fn new(environment: &str) -> Self {
        PullProgress {
            environment: environment.to_string(),
            phase_started: Instant::now(),
        }
    }
}

impl PullReporter for PullProgress {
    fn phase(&mut self, phase: PullPhase) {
        self.phase_started = Instant::now();
        crate::printer::write_err(
            format!(
                "[pull] phase={} environment={}\n",
                phase.as_str(),
                self.environment
            )
            .as_bytes(),
        );
    }
    fn progress(&mut self, line: &str) {
        let line = line.trim();
        if !line.is_empty() {
            let secs = self.phase_started.elapsed().as_secs();
            crate::printer::write_err(format!("[pull]   +{secs}s {line}\n").as_bytes());
        }
    }
}

fn fail(printer: Printer, e: pyro_core::Error) -> Exit {
    printer.error(&e);
    Exit::from(&e)
}

pub fn list(manager: &Manager, json: bool) -> Exit {
    let printer = Printer { json };
    let list = match manager.env_list() {
        Ok(l) => l,
        Err(e) => return fail(printer, e),
    };
    if json {
        printer.json(&list);
        return Exit::Success;
    }
    printer.line(&format!("Catalog version: {}", list.catalog_version));
    if list.environments.is_empty() {
        printer.line("No environments found.");
    }
    for env in &list.environments {
        let state = if env.installed {
            "installed"
        } else {
            "not installed"
        };
        printer.line(&format!("{} [{state}] {}", env.name, env.description));
    }
    Exit::Success
}

fn details(printer: Printer, heading: &str, env: &EnvironmentInfo) {
    printer.line(&format!("{heading}: {}", env.name));
    printer.line(&format!("Version: {}", env.version));
    printer.line(&format!(
        "Distribution: {} {}",
        env.distribution, env.distribution_version
    ));
    printer.line(&format!("Installed: {}", yes_no(env.installed)));
    printer.line(&format!("Cache dir: {}", env.cache_dir.display()));
    printer.line(&format!(
        "Default packages: {}",
        env.default_packages.join(", ")
    ));
    printer.line(&format!("Description: {}", env.description));
    if env.installed {
        printer.line(&format!("Install dir: {}", env.install_dir.display()));
        let paths = [
            ("Install manifest", &env.install_manifest),
            ("Kernel image", &env.kernel_image),
            ("Initramfs", &env.initramfs_image),
            ("Rootfs image", &env.rootfs_image),
        ];
        for (label, path) in paths {
            if let Some(p) = path {
                printer.line(&format!("{label}: {}", p.display()));
            }
        }
        if let Some(k) = &env.kernel_release {
            printer.line(&format!("Kernel release: {k}"));
        }
        if let Some(s) = &env.source {
            printer.line(&format!(
                "Source: {s} (mirror: {})",
                env.mirror.as_deref().unwrap_or("default")
            ));
        }
    } else {
        printer.line(&format!(
            "Source: built locally from Debian packages by `pyro env pull {}`",
            env.name
        ));
    }
}

pub fn inspect(manager: &Manager, a: &EnvNameArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    match manager.env_inspect(&a.environment) {
        Ok(env) if a.output.json => {
            printer.json(&env);
            Exit::Success
        }
        Ok(env) => {
            details(printer, "Environment", &env);
            Exit::Success
        }
        Err(e) => fail(printer, e),
    }
}

pub fn pull(manager: &Manager, a: &PullArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    let mut progress = PullProgress::new(&a.environment);
    match manager.env_pull(&a.environment, a.force, &mut progress) {
        Ok(env) if a.output.json => {
            printer.json(&env);
            Exit::Success
        }
        Ok(env) => {
            details(printer, "Pulled", &env);
            Exit::Success
        }
        Err(e) => fail(printer, e),
    }
}

pub fn prune(manager: &Manager, json: bool) -> Exit {
    let printer = Printer { json };
    match manager.env_prune() {
        Ok(r) if json => {
            printer.json(&r);
            Exit::Success
        }
        Ok(r) => {
            let noun = if r.count == 1 { "entry" } else { "entries" };
            printer.line(&format!("Deleted {} cached environment {noun}.", r.count));
            for d in &r.deleted_environment_dirs {
                printer.line(&format!("- {d}"));
            }
            Exit::Success
        }
        Err(e) => fail(printer, e),
    }
}

//! `pyro env list|inspect|pull|prune`.

use pyro_core::api::{EnvPullParams, EnvironmentInfo, EnvironmentParams, NoParams};
use pyro_core::{Manager, Quiet};

use crate::args::{EnvNameArgs, PullArgs};
use crate::commands::finish;
use crate::exit::Exit;
use crate::printer::{yes_no, CliProgress, Printer};

pub fn list(manager: &Manager, json: bool) -> Exit {
    let printer = Printer { json };
    finish(printer, manager.env_list(NoParams {}, &mut Quiet), |list| {
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
    })
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
    let params = EnvironmentParams {
        environment: a.environment.clone(),
    };
    finish(printer, manager.env_inspect(params, &mut Quiet), |env| {
        details(printer, "Environment", env);
        Exit::Success
    })
}

pub fn pull(manager: &Manager, a: &PullArgs) -> Exit {
    let printer = Printer {
        json: a.output.json,
    };
    let params = EnvPullParams {
        environment: a.environment.clone(),
        force: a.force,
    };
    let mut progress = CliProgress::new("pull", a.output.json);
    finish(printer, manager.env_pull(params, &mut progress), |env| {
        details(printer, "Pulled", env);
        Exit::Success
    })
}

pub fn prune(manager: &Manager, json: bool) -> Exit {
    let printer = Printer { json };
    finish(printer, manager.env_prune(NoParams {}, &mut Quiet), |r| {
        let noun = if r.count == 1 { "entry" } else { "entries" };
        printer.line(&format!("Deleted {} cached environment {noun}.", r.count));
        for d in &r.deleted_environment_dirs {
            printer.line(&format!("- {d}"));
        }
        for f in &r.deleted_files {
            printer.line(&format!("- {f} (unused file)"));
        }
        Exit::Success
    })
}

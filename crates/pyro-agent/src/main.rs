//! pyro-agent: the guest side of pyro.
//!
//! It is `/init` in every environment's initramfs. As PID 1 it loads the
//! kernel modules the guest needs, mounts the environment's ext4 root,
//! switches into it, and then serves the [`pyro_proto`] protocol on vsock,
//! reaping every zombie that ends up parented to it.
//!
//! `pyro-agent --listen-unix PATH [--disable-features a,b]` serves the same
//! protocol on a unix socket without touching the system, which lets the
//! handlers be exercised on the host. `--disable-features` plays the part of
//! `pyro.disable_features=a,b` on a guest's kernel command line (see
//! `features`): the agent acts as if it lacked those features.

mod exec;
mod features;
mod files;
mod identity;
mod init;
mod log;
mod modules;
mod net;
mod patch;
mod proxy;
mod reaper;
mod relay;
mod server;
mod services;
mod shells;
mod spawn;
mod vsock;

use std::process::ExitCode;

fn main() -> ExitCode {
    // INVARIANT: SIGCHLD must be blocked before any thread starts, so only
    // the reaper thread ever sees it.
    reaper::block_sigchld();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--listen-unix") => {
            let usage = || {
                eprintln!(
                    "usage: pyro-agent --listen-unix PATH [--disable-features a,b] \
                     [--workspace-root DIR]"
                );
                ExitCode::from(2)
            };
            let mut rest: Vec<&String> = args[2..].iter().collect();
            // `--workspace-root DIR` serves /workspace from DIR (tests).
            if let Some(i) = rest.iter().position(|a| *a == "--workspace-root") {
                let Some(dir) = rest.get(i + 1) else {
                    return usage();
                };
                files::set_root(std::path::PathBuf::from(dir.as_str()));
                // Secrets go beside it, not in the real /run.
                files::set_secrets_dir(std::path::PathBuf::from(format!("{dir}-secrets")));
                services::set_log_dir(std::path::PathBuf::from(format!("{dir}-services")));
                rest.drain(i..=i + 1);
            }
            let (path, features) = match rest.as_slice() {
                [path] => (*path, features::Features::all()),
                [path, flag, list] if *flag == "--disable-features" => (
                    *path,
                    features::Features::without(&list.split(',').collect::<Vec<_>>()),
                ),
                _ => return usage(),
            };
            reaper::start();
            match server::serve_unix(path, features) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("pyro-agent: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("publish-proxy") => proxy::main(&args[2..]),
        Some("--version") => {
            println!("pyro-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ if std::process::id() == 1 => {
            // PID 1 must never return: the kernel panics when it exits.
            init::run_as_init();
        }
        _ => {
            eprintln!(
                "pyro-agent runs as PID 1 in a pyro guest; use --listen-unix PATH to test it"
            );
            ExitCode::from(2)
        }
    }
}

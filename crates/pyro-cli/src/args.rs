//! Command-line syntax (clap types only).

use clap::{Args, Parser, Subcommand};

/// Isolated Linux workspaces inside microVMs.
#[derive(Debug, Parser)]
#[command(name = "pyro", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run `git --version` in a fresh debian:12 guest and print the JSON result.
    Demo(DemoArgs),
    /// Check what this host can do (boots a probe guest once per host).
    Doctor(DoctorArgs),
    /// List, inspect, build and prune guest environments.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Run one command in a fresh guest that is deleted afterwards.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Give the guest outbound networking.
    #[arg(long)]
    pub network: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Platform to check (only linux-x86_64 exists).
    #[arg(long, default_value = "linux-x86_64")]
    pub platform: String,
    /// Boot the probe guests again instead of using the cached result.
    #[arg(long)]
    pub refresh: bool,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List the catalog and what is installed.
    List(JsonFlag),
    /// Show one environment.
    Inspect(EnvNameArgs),
    /// Build an environment locally from Debian packages.
    Pull(PullArgs),
    /// Remove partial builds and stale environment versions.
    Prune(JsonFlag),
}

#[derive(Debug, Args)]
pub struct EnvNameArgs {
    /// Environment name, e.g. debian:12.
    pub environment: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Environment name, e.g. debian:12.
    pub environment: String,
    /// Rebuild even if it is installed.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Environment name, e.g. debian:12.
    pub environment: String,
    /// Guest vCPUs (1-8).
    #[arg(long, default_value_t = 1)]
    pub vcpu_count: u32,
    /// Guest memory in MiB (256-32768).
    #[arg(long, default_value_t = 1024)]
    pub mem_mib: u32,
    /// Kill the command after this many seconds (exit code 124).
    #[arg(long, default_value_t = 30)]
    pub timeout_seconds: u64,
    /// Give the guest outbound networking (QEMU user-mode, no root needed).
    #[arg(long)]
    pub network: bool,
    #[command(flatten)]
    pub output: JsonFlag,
    /// The program and its arguments, after `--`. No shell is added: use
    /// `-- sh -c '...'` for shell syntax.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

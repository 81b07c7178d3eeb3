//! The `pyro` binary: everything is in the library (`lib.rs`), shared with
//! the Python package's `pyro` console script.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(pyro_cli::run(std::env::args_os().collect()))
}

//! `pyro mcp serve`: hand the Manager to the MCP server (crate pyro-mcp).

use crate::args::McpServeArgs;
use crate::exit::Exit;
use crate::printer::Printer;

pub fn serve(manager: pyro_core::Manager, args: McpServeArgs) -> Exit {
    let printer = Printer { json: false };
    let profile = match args.profile.parse::<pyro_mcp::Profile>() {
        Ok(p) => p,
        Err(message) => return crate::usage_error(false, message),
    };
    // A directory that does not exist is bad input (exit 2), caught before
    // serving; serve_stdio checks the same again.
    if let Ok(cwd) = std::env::current_dir() {
        if let Err(message) = pyro_mcp::paths::HostPaths::new(&cwd, &args.allow_host_paths) {
            return crate::usage_error(false, message);
        }
    }
    let opts = pyro_mcp::ServeOptions {
        profile,
        allowed_host_paths: args.allow_host_paths,
    };
    // Errors go to stderr: stdout belongs to the MCP client.
    match pyro_mcp::serve_stdio(manager, opts) {
        Ok(()) => Exit::Success,
        Err(message) => {
            printer.usage_error(&message, None);
            Exit::Failure
        }
    }
}

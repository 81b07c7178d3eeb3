//! One module per top-level command: flags → params, call the Manager,
//! render the result.

pub mod contents;
pub mod demo;
pub mod doctor;
pub mod env;
pub mod mcp;
pub mod run;
pub mod schema;
pub mod services;
pub mod shells;
pub mod workspace;

use serde::Serialize;

use crate::exit::Exit;
use crate::printer::Printer;

/// Renders a result: the JSON document, or the text `human` prints; an
/// error in the printer's format.
pub fn finish<T: Serialize>(
    printer: Printer,
    result: Result<T, pyro_core::Error>,
    human: impl FnOnce(&T) -> Exit,
) -> Exit {
    match result {
        Ok(v) if printer.json => {
            printer.json(&v);
            Exit::Success
        }
        Ok(v) => human(&v),
        Err(e) => {
            printer.error(&e);
            Exit::from(&e)
        }
    }
}

//! `pyro schema`: the operation API's JSON Schemas, for tools and tests.

use crate::exit::Exit;
use crate::printer::Printer;

pub fn run() -> Exit {
    Printer { json: true }.json(&pyro_core::api::schema_document());
    Exit::Success
}

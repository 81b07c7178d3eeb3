//! One module per top-level command: call the Manager, render the result.

pub mod demo;
pub mod doctor;
pub mod env;
pub mod run;
pub mod workspace;

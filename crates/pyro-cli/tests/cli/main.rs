//! CLI tests. `input` needs no guest; `guest` boots real guests (under TCG
//! on hosts without a working KVM), sharing one environment build.

mod util;

mod agent;
mod contents;
mod env;
mod guest;
mod input;
mod interrupt;
mod network;
mod races;
mod schema;
mod secrets;
mod services;
mod shells;
mod templates;
mod truth;
mod upgrade;
mod workspace;

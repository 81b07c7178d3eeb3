//! CLI tests. `input` needs no guest; `guest` boots real guests (under TCG
//! on hosts without a working KVM), sharing one environment build.

mod util;

mod env;
mod guest;
mod input;
mod workspace;

//! Unified diffs for pyro: strict parsing, all-or-nothing application, and
//! diff generation.
//!
//! The guest agent uses [`parse`] and [`FilePatch::apply`] to apply a patch
//! an agent sends: every file's new content is computed before anything is
//! written, so a patch either applies whole or not at all. The host uses
//! [`unified_diff`] to show changes.
//!
//! Parsing and applying are strict on purpose, because a patch that applies
//! "approximately" silently corrupts a workspace:
//!
//! - the patch must be non-empty text of at most [`MAX_PATCH_BYTES`];
//! - `diff -u` and `git diff` output are accepted; renames, copies, mode
//!   changes, symlinks, submodules and binary files are refused;
//! - hunk line counts must match hunk bodies exactly;
//! - context must match exactly (no fuzz, no whitespace leniency); a hunk
//!   may only move to a nearby place where it matches exactly;
//! - paths must be relative, non-empty and free of `..`, and each file may
//!   appear once.
//!
//! Nothing here panics on any input.
#![deny(missing_docs)]

mod apply;
mod diff;
mod error;
mod parse;
mod patch;
mod path;

pub use diff::unified_diff;
pub use error::PatchError;
pub use parse::parse;
pub use patch::{Change, FilePatch, Hunk, Line};

/// The largest patch [`parse`] accepts, in bytes.
pub const MAX_PATCH_BYTES: usize = 1024 * 1024;

#[cfg(test)]
mod tests;

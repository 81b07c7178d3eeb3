//! `list` filters.

use crate::{validate, StoreError, WorkspaceState};

/// One `--label` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelFilter {
    /// `KEY=VALUE`: the label must have this value.
    Equals(String, String),
    /// `KEY`: the label must be present.
    Present(String),
}

impl LabelFilter {
    /// Parses `KEY=VALUE` or `KEY`.
    pub fn parse(arg: &str) -> Result<LabelFilter, StoreError> {
        if arg.contains('=') {
            let (k, v) = validate::parse_label_arg(arg)?;
            Ok(LabelFilter::Equals(k, v))
        } else {
            Ok(LabelFilter::Present(validate::validate_label_key(arg)?))
        }
    }
}

/// What `list` returns.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// All must match.
    pub labels: Vec<LabelFilter>,
    /// Exact name.
    pub name: Option<String>,
    /// Recorded state.
    pub state: Option<WorkspaceState>,
    /// At most this many.
    pub limit: Option<usize>,
}

//! `list` filters, and the SQL they become.

use rusqlite::types::Value;

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
    /// Parses `KEY=VALUE` or `KEY` (stripped and validated like labels).
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
    /// Exact name (stripped).
    pub name: Option<String>,
    /// Recorded state.
    pub state: Option<WorkspaceState>,
    /// At most this many.
    pub limit: Option<usize>,
}

/// The labels of the row `w` as one JSON object (`{}` when none); one
/// lookup in the `labels` primary key per row.
pub(crate) const LABELS_JSON: &str =
    "(SELECT json_group_object(l.key, l.value) FROM labels l WHERE l.workspace_id = w.workspace_id)";

/// Columns of a summary, in the order `summary_from_row` reads them.
const SUMMARY_COLUMNS: &str = "w.workspace_id, w.name, w.environment, w.state, w.created_at, \
     w.last_activity_at, w.ttl_seconds, w.command_count";

/// The list order: most recent activity, then newest, then id.
pub(crate) const ORDER: &str =
    " ORDER BY w.last_activity_at DESC, w.created_at DESC, w.workspace_id ASC";

/// The `WHERE` clause for `query` and its parameters; the filtering is
/// SQLite's (labels through the `(key, value)` index), never ours.
fn where_clause(query: &ListQuery) -> (String, Vec<Value>) {
    let mut sql = String::from(" WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    for f in &query.labels {
        match f {
            LabelFilter::Equals(k, v) => {
                sql.push_str(
                    " AND EXISTS (SELECT 1 FROM labels f WHERE f.workspace_id = w.workspace_id \
                     AND f.key = ? AND f.value = ?)",
                );
                args.push(k.clone().into());
                args.push(v.clone().into());
            }
            LabelFilter::Present(k) => {
                sql.push_str(
                    " AND EXISTS (SELECT 1 FROM labels f WHERE f.workspace_id = w.workspace_id \
                     AND f.key = ?)",
                );
                args.push(k.clone().into());
            }
        }
    }
    if let Some(n) = &query.name {
        sql.push_str(" AND w.name = ?");
        args.push(n.trim().to_string().into());
    }
    if let Some(s) = query.state {
        sql.push_str(" AND w.state = ?");
        args.push(s.as_str().to_string().into());
    }
    (sql, args)
}

/// One statement answering `query`: summaries with their labels, ordered and
/// limited by SQLite.
pub(crate) fn list_sql(query: &ListQuery) -> (String, Vec<Value>) {
    let (filter, mut args) = where_clause(query);
    let mut sql =
        format!("SELECT {SUMMARY_COLUMNS}, {LABELS_JSON} FROM workspaces w{filter}{ORDER}");
    if let Some(limit) = query.limit {
        sql.push_str(" LIMIT ?");
        args.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
    }
    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse() {
        assert_eq!(
            LabelFilter::parse(" team = x ").unwrap(),
            LabelFilter::Equals("team".into(), "x".into())
        );
        assert_eq!(
            LabelFilter::parse(" team ").unwrap(),
            LabelFilter::Present("team".into())
        );
        for bad in ["", "=x", "team=", "bad key", "-team"] {
            assert!(LabelFilter::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_filter_is_a_parameter() {
        let (sql, args) = list_sql(&ListQuery {
            labels: vec![
                LabelFilter::Equals("a".into(), "1".into()),
                LabelFilter::Present("b".into()),
            ],
            name: Some(" n ".into()),
            state: Some(WorkspaceState::Started),
            limit: Some(5),
        });
        assert_eq!(sql.matches('?').count(), args.len());
        assert_eq!(args.len(), 6);
        assert!(sql.ends_with("LIMIT ?"));
        assert_eq!(args[3], Value::Text("n".into()));
    }
}

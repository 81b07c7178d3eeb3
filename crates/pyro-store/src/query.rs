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

/// The labels of the row `w` as one string, `key US value RS key US value…`
/// (ASCII unit and record separators; NULL when none), one lookup in the
/// `labels` primary key per row. Unambiguous because keys and values never
/// contain control characters (see `validate`); cheaper to take apart than
/// JSON, which matters when listing thousands.
pub(crate) const LABELS_COL: &str = "(SELECT group_concat(l.key || char(31) || l.value, char(30)) \
     FROM labels l WHERE l.workspace_id = w.workspace_id)";

/// Splits a [`LABELS_COL`] value.
pub(crate) fn split_labels(packed: Option<&str>) -> std::collections::BTreeMap<String, String> {
    packed
        .unwrap_or_default()
        .split('\u{1e}')
        .filter_map(|pair| pair.split_once('\u{1f}'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Columns of a summary, in the order `summary_from_row` reads them.
/// Recorded and running services of `w`.
pub(crate) const SERVICE_COUNTS: &str = "(SELECT COUNT(*) FROM services s WHERE s.workspace_id = w.workspace_id), \
     (SELECT COUNT(*) FROM services s WHERE s.workspace_id = w.workspace_id AND s.state = 'running')";

const SUMMARY_COLUMNS: &str = "w.workspace_id, w.name, w.environment, w.state, w.created_at, \
     w.last_activity_at, w.ttl_seconds, w.command_count";

/// The list order: most recent activity, then newest, then id.
pub(crate) const ORDER: &str =
    " ORDER BY w.last_activity_at DESC, w.created_at DESC, w.workspace_id ASC";

/// How many matches of a label filter make it "common": below this a list
/// is driven by the `labels (key, value)` index (find the few matching ids,
/// then sort them); at or above it, and with a limit, by the activity index
/// (walk workspaces in list order, checking each, stop at the limit).
pub(crate) const DRIVE_BELOW: i64 = 1000;

/// The SQL and parameters for counting (up to `cap`) the label rows matching
/// `filter`, through the `(key, value)` index.
pub(crate) fn label_matches_sql(filter: &LabelFilter, cap: i64) -> (String, Vec<Value>) {
    let (cond, mut args) = label_condition(filter);
    args.push(cap.into());
    (
        format!("SELECT count(*) FROM (SELECT 1 FROM labels f WHERE {cond} LIMIT ?)"),
        args,
    )
}

fn label_condition(filter: &LabelFilter) -> (&'static str, Vec<Value>) {
    match filter {
        LabelFilter::Equals(k, v) => (
            "f.key = ? AND f.value = ?",
            vec![k.clone().into(), v.clone().into()],
        ),
        LabelFilter::Present(k) => ("f.key = ?", vec![k.clone().into()]),
    }
}

/// The `WHERE` clause for `query` and its parameters; the filtering is
/// SQLite's, never ours. The label filter at index `drive` (if any) is
/// written as an `IN` over the `(key, value)` index so SQLite starts from
/// it; the others are per-row `EXISTS` checks on the labels primary key.
fn where_clause(query: &ListQuery, drive: Option<usize>) -> (String, Vec<Value>) {
    let mut sql = String::from(" WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    for (i, f) in query.labels.iter().enumerate() {
        let (cond, a) = label_condition(f);
        if drive == Some(i) {
            sql.push_str(&format!(
                " AND w.workspace_id IN (SELECT f.workspace_id FROM labels f WHERE {cond})"
            ));
        } else {
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM labels f WHERE f.workspace_id = w.workspace_id AND {cond})"
            ));
        }
        args.extend(a);
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

/// One statement answering `query`: summaries with their labels, filtered,
/// ordered and limited by SQLite. `drive`: see [`where_clause`].
pub(crate) fn list_sql(query: &ListQuery, drive: Option<usize>) -> (String, Vec<Value>) {
    let (filter, mut args) = where_clause(query, drive);
    let mut sql = format!(
        "SELECT {SUMMARY_COLUMNS}, {LABELS_COL}, {SERVICE_COUNTS} FROM workspaces w{filter}{ORDER}"
    );
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
        let q = ListQuery {
            labels: vec![
                LabelFilter::Equals("a".into(), "1".into()),
                LabelFilter::Present("b".into()),
            ],
            name: Some(" n ".into()),
            state: Some(WorkspaceState::Started),
            limit: Some(5),
        };
        for drive in [None, Some(0), Some(1)] {
            let (sql, args) = list_sql(&q, drive);
            assert_eq!(sql.matches('?').count(), args.len());
            assert_eq!(args.len(), 6);
            assert!(sql.ends_with("LIMIT ?"));
            assert_eq!(args[3], Value::Text("n".into()));
            assert_eq!(
                sql.matches("IN (SELECT").count(),
                usize::from(drive.is_some())
            );
        }
        let (sql, args) = label_matches_sql(&q.labels[0], 7);
        assert_eq!(sql.matches('?').count(), args.len());
        assert_eq!(args[2], Value::Integer(7));
    }

    #[test]
    fn packed_labels_split() {
        assert!(split_labels(None).is_empty());
        assert!(split_labels(Some("")).is_empty());
        let m = split_labels(Some("a\u{1f}1\u{1e}b.c\u{1f}x = y"));
        assert_eq!(m.len(), 2);
        assert_eq!((m["a"].as_str(), m["b.c"].as_str()), ("1", "x = y"));
    }
}

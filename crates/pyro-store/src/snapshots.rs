//! Snapshots of a workspace's `/workspace` (the archives live beside the
//! workspace on disk; the store keeps what they are) and resets.

use rusqlite::{params, OptionalExtension};

use crate::store::{not_found, Store};
use crate::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

/// The implicit snapshot taken at create time.
pub const BASELINE: &str = "baseline";

/// Whether a snapshot is the create-time baseline or one a user made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// The create-time seed; never deleted.
    Baseline,
    /// Made by `snapshot create`.
    Named,
}

impl SnapshotKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Baseline => "baseline",
            SnapshotKind::Named => "named",
        }
    }
}

/// One stored snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRow {
    /// Its name (`baseline` for the baseline).
    pub name: String,
    /// Baseline or named.
    pub kind: SnapshotKind,
    /// When it was taken.
    pub created_at: f64,
    /// Entries archived.
    pub entry_count: u64,
    /// File bytes archived.
    pub bytes_written: u64,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotRow> {
    let kind: String = r.get(1)?;
    Ok(SnapshotRow {
        name: r.get(0)?,
        kind: if kind == "baseline" {
            SnapshotKind::Baseline
        } else {
            SnapshotKind::Named
        },
        created_at: r.get(2)?,
        entry_count: r.get::<_, i64>(3)?.max(0) as u64,
        bytes_written: r.get::<_, i64>(4)?.max(0) as u64,
    })
}

impl Store {
    /// Records a snapshot of the workspace with this id. A named snapshot
    /// also counts as activity (at `created_at`). A name in use is
    /// [`StoreError::Conflict`].
    pub fn insert_snapshot(&self, id: &str, s: &SnapshotRow) -> Result<()> {
        self.write(|tx| {
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM snapshots WHERE workspace_id = ?1 AND name = ?2",
                    params![id, s.name],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_some() {
                return Err(StoreError::Conflict {
                    message: format!("snapshot '{}' already exists in workspace '{id}'", s.name),
                });
            }
            let n = tx.execute(
                "UPDATE workspaces SET last_activity_at = MAX(last_activity_at, ?2) \
                 WHERE workspace_id = ?1",
                params![
                    id,
                    if s.kind == SnapshotKind::Named {
                        s.created_at
                    } else {
                        0.0
                    }
                ],
            )?;
            if n == 0 {
                return Err(not_found(id));
            }
            tx.execute(
                "INSERT INTO snapshots (workspace_id, name, kind, created_at, entry_count, \
                 bytes_written) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    s.name,
                    s.kind.as_str(),
                    s.created_at,
                    s.entry_count as i64,
                    s.bytes_written as i64
                ],
            )?;
            Ok(())
        })
    }

    /// The snapshots of the workspace with this id: the baseline first,
    /// then named ones newest first. Reads only.
    pub fn snapshots(&self, id: &str) -> Result<Vec<SnapshotRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT name, kind, created_at, entry_count, bytes_written FROM snapshots \
             WHERE workspace_id = ?1 \
             ORDER BY kind = 'baseline' DESC, created_at DESC, name",
        )?;
        let rows = stmt.query_map([id], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One snapshot, or [`StoreError::SnapshotNotFound`].
    pub fn snapshot(&self, id: &str, name: &str) -> Result<SnapshotRow> {
        let conn = self.conn();
        conn.query_row(
            "SELECT name, kind, created_at, entry_count, bytes_written FROM snapshots \
             WHERE workspace_id = ?1 AND name = ?2",
            params![id, name],
            row,
        )
        .optional()?
        .ok_or_else(|| StoreError::SnapshotNotFound {
            workspace: id.to_string(),
            name: name.to_string(),
        })
    }

    /// Forgets a named snapshot (the baseline is refused); counts as
    /// activity at `now`.
    pub fn delete_snapshot(&self, id: &str, name: &str, now: f64) -> Result<()> {
        if name == BASELINE {
            return Err(StoreError::invalid(
                "snapshot",
                "cannot delete the baseline snapshot",
            ));
        }
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM snapshots WHERE workspace_id = ?1 AND name = ?2",
                params![id, name],
            )?;
            if n == 0 {
                return Err(StoreError::SnapshotNotFound {
                    workspace: id.to_string(),
                    name: name.to_string(),
                });
            }
            tx.execute(
                "UPDATE workspaces SET last_activity_at = MAX(last_activity_at, ?2) \
                 WHERE workspace_id = ?1",
                params![id, now],
            )?;
            Ok(())
        })
    }

    /// Records a finished reset: one more reset at `now` (also the last
    /// activity), and the command history erased.
    pub fn record_reset(&self, id: &str, now: f64) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE workspaces SET reset_count = reset_count + 1, last_reset_at = ?2, \
                 command_count = 0, last_command = NULL, \
                 last_activity_at = MAX(last_activity_at, ?2) WHERE workspace_id = ?1",
                params![id, now],
            )?;
            if n == 0 {
                return Err(not_found(id));
            }
            tx.execute("DELETE FROM commands WHERE workspace_id = ?1", [id])?;
            Ok(())
        })
    }
}

/// Checks a snapshot name: like a label key (1-64 of `[A-Za-z0-9._-]`,
/// starting alphanumeric), and not `baseline`.
pub fn validate_snapshot_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
    if name.is_empty() {
        return Err(StoreError::invalid(
            "snapshot",
            "snapshot name must not be empty",
        ));
    }
    if !first_ok || !rest_ok || name.len() > 64 {
        return Err(StoreError::invalid(
            "snapshot",
            format!("snapshot name '{name}' must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$"),
        ));
    }
    if name == BASELINE {
        return Err(StoreError::invalid(
            "snapshot",
            "snapshot_name 'baseline' is reserved (it is the create-time snapshot)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewWorkspace;

    fn store_with_one() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        store
            .insert(
                &NewWorkspace {
                    workspace_id: "0123456789ab".into(),
                    name: None,
                    labels: Default::default(),
                    environment: "debian:12".into(),
                    environment_version: "1".into(),
                    vcpu_count: 1,
                    mem_mib: 512,
                    ttl_seconds: None,
                    network_policy: "off".into(),
                    runtime: serde_json::json!({}),
                    seed: serde_json::json!({}),
                    secrets: serde_json::json!([]),
                },
                1.0,
            )
            .unwrap();
        (dir, store)
    }

    fn snap(name: &str, kind: SnapshotKind, at: f64) -> SnapshotRow {
        SnapshotRow {
            name: name.into(),
            kind,
            created_at: at,
            entry_count: 1,
            bytes_written: 2,
        }
    }

    #[test]
    fn snapshots_order_conflicts_and_activity() {
        let (_d, s) = store_with_one();
        let id = "0123456789ab";
        s.insert_snapshot(id, &snap(BASELINE, SnapshotKind::Baseline, 1.0))
            .unwrap();
        assert_eq!(s.resolve(id).unwrap().last_activity_at, 1.0);
        s.insert_snapshot(id, &snap("a", SnapshotKind::Named, 5.0))
            .unwrap();
        s.insert_snapshot(id, &snap("b", SnapshotKind::Named, 6.0))
            .unwrap();
        assert_eq!(s.resolve(id).unwrap().last_activity_at, 6.0);
        let names: Vec<_> = s
            .snapshots(id)
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["baseline", "b", "a"]);
        assert!(matches!(
            s.insert_snapshot(id, &snap("a", SnapshotKind::Named, 7.0)),
            Err(StoreError::Conflict { .. })
        ));
        assert!(s.delete_snapshot(id, BASELINE, 8.0).is_err());
        s.delete_snapshot(id, "a", 9.0).unwrap();
        assert_eq!(s.resolve(id).unwrap().last_activity_at, 9.0);
        assert!(matches!(
            s.snapshot(id, "a"),
            Err(StoreError::SnapshotNotFound { .. })
        ));
        assert!(matches!(
            s.delete_snapshot(id, "a", 10.0),
            Err(StoreError::SnapshotNotFound { .. })
        ));
    }

    #[test]
    fn reset_erases_history_and_counts() {
        let (_d, s) = store_with_one();
        let id = "0123456789ab";
        s.record_command(id, "true", "/workspace", 0, 1, "", "", 2.0)
            .unwrap();
        s.record_reset(id, 3.0).unwrap();
        let r = s.resolve(id).unwrap();
        assert_eq!(
            (r.reset_count, r.last_reset_at, r.command_count),
            (1, Some(3.0), 0)
        );
        assert!(r.last_command.is_none());
        assert!(s.commands(id).unwrap().is_empty());
        assert_eq!(
            s.record_command(id, "true", "/workspace", 0, 1, "", "", 4.0)
                .unwrap(),
            1
        );
    }

    #[test]
    fn snapshot_names() {
        validate_snapshot_name("checkpoint-1.ok").unwrap();
        for bad in ["", "baseline", "-x", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_snapshot_name(bad).is_err(), "{bad}");
        }
    }
}

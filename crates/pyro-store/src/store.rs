//! The store itself: open, migrate, read, change.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};

use crate::query::{LabelFilter, ListQuery};
use crate::record::{
    CommandEntry, LastCommand, NameChange, NewWorkspace, WorkspaceRecord, WorkspaceState,
    WorkspaceSummary,
};
use crate::schema::MIGRATIONS;
use crate::validate::{validate_label_key, validate_label_value, validate_name};
use crate::StoreError;

/// How long a writer waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

type Result<T> = std::result::Result<T, StoreError>;

/// An open store. One per process; safe to share between threads.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
}

const RECORD_COLUMNS: &str = "workspace_id, name, environment, environment_version, state, vcpu_count, mem_mib, \
     ttl_seconds, network_policy, created_at, last_activity_at, command_count, last_command, last_error, runtime, seed";

fn json_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<serde_json::Value> {
    let text: String = row.get(idx)?;
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

fn state_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<WorkspaceState> {
    let text: String = row.get(idx)?;
    WorkspaceState::parse(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<WorkspaceRecord> {
    let last_command: Option<String> = row.get(12)?;
    Ok(WorkspaceRecord {
        workspace_id: row.get(0)?,
        name: row.get(1)?,
        labels: BTreeMap::new(),
        environment: row.get(2)?,
        environment_version: row.get(3)?,
        state: state_col(row, 4)?,
        vcpu_count: row.get(5)?,
        mem_mib: row.get(6)?,
        ttl_seconds: row.get::<_, Option<i64>>(7)?.map(|t| t as u64),
        network_policy: row.get(8)?,
        created_at: row.get(9)?,
        last_activity_at: row.get(10)?,
        command_count: row.get::<_, i64>(11)? as u64,
        last_command: last_command.and_then(|t| serde_json::from_str::<LastCommand>(&t).ok()),
        last_error: row.get(13)?,
        runtime: json_col(row, 14)?,
        seed: json_col(row, 15)?,
    })
}

fn labels_of(conn: &Connection, id: &str) -> Result<BTreeMap<String, String>> {
    let mut stmt = conn.prepare_cached("SELECT key, value FROM labels WHERE workspace_id = ?1")?;
    let rows = stmt.query_map([id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn find(conn: &Connection, id_or_name: &str) -> Result<WorkspaceRecord> {
    let sql =
        format!("SELECT {RECORD_COLUMNS} FROM workspaces WHERE workspace_id = ?1 OR name = ?1");
    let record = conn
        .query_row(&sql, [id_or_name.trim()], record_from_row)
        .optional()?;
    let mut record = record.ok_or_else(|| StoreError::NotFound {
        what: id_or_name.to_string(),
    })?;
    record.labels = labels_of(conn, &record.workspace_id)?;
    Ok(record)
}

fn name_taken(tx: &Transaction<'_>, name: &str, except: &str) -> Result<bool> {
    Ok(tx
        .query_row(
            "SELECT 1 FROM workspaces WHERE name = ?1 AND workspace_id != ?2",
            params![name, except],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn valid_labels(labels: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    labels
        .iter()
        .map(|(k, v)| {
            let k = validate_label_key(k)?;
            let v = validate_label_value(&k, v)?;
            Ok((k, v))
        })
        .collect()
}

fn is_id(s: &str) -> bool {
    s.len() == 12
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::SchemaTooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        tx.commit()?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction; commits if it succeeds.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Schema version on disk.
    pub fn schema_version(&self) -> Result<i64> {
        self.read(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?))
    }

    /// Adds a workspace; `created_at` and `last_activity_at` are `now`.
    pub fn insert(&self, new: &NewWorkspace, now: f64) -> Result<WorkspaceRecord> {
        if !is_id(&new.workspace_id) {
            return Err(StoreError::invalid(
                "workspace_id",
                "workspace ids are 12 lowercase hex characters",
            ));
        }
        let name = new.name.as_deref().map(validate_name).transpose()?;
        let labels = valid_labels(&new.labels)?;
        self.write(|tx| {
            if let Some(n) = &name {
                if name_taken(tx, n, &new.workspace_id)? {
                    return Err(StoreError::DuplicateName { name: n.clone() });
                }
            }
            tx.execute(
                "INSERT INTO workspaces (workspace_id, name, environment, environment_version, state, vcpu_count, \
                 mem_mib, ttl_seconds, network_policy, created_at, last_activity_at, runtime, seed) \
                 VALUES (?1, ?2, ?3, ?4, 'creating', ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11)",
                params![
                    new.workspace_id,
                    name,
                    new.environment,
                    new.environment_version,
                    new.vcpu_count,
                    new.mem_mib,
                    new.ttl_seconds.map(|t| t as i64),
                    new.network_policy,
                    now,
                    new.runtime.to_string(),
                    new.seed.to_string(),
                ],
            )?;
            for (k, v) in &labels {
                tx.execute("INSERT INTO labels (workspace_id, key, value) VALUES (?1, ?2, ?3)", params![new.workspace_id, k, v])?;
            }
            find(tx, &new.workspace_id)
        })
    }

    /// The workspace with this id or name.
    pub fn resolve(&self, id_or_name: &str) -> Result<WorkspaceRecord> {
        self.read(|c| find(c, id_or_name))
    }

    /// Workspaces matching `query`, most recently active first.
    pub fn list(&self, query: &ListQuery) -> Result<Vec<WorkspaceSummary>> {
        self.read(|c| {
            let mut sql = String::from(
                "SELECT w.workspace_id, w.name, w.environment, w.state, w.created_at, w.last_activity_at, \
                 w.ttl_seconds, w.command_count FROM workspaces w WHERE 1 = 1",
            );
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            for f in &query.labels {
                match f {
                    LabelFilter::Equals(k, v) => {
                        sql.push_str(" AND EXISTS (SELECT 1 FROM labels l WHERE l.workspace_id = w.workspace_id AND l.key = ? AND l.value = ?)");
                        args.push(k.clone().into());
                        args.push(v.clone().into());
                    }
                    LabelFilter::Present(k) => {
                        sql.push_str(" AND EXISTS (SELECT 1 FROM labels l WHERE l.workspace_id = w.workspace_id AND l.key = ?)");
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
            sql.push_str(" ORDER BY w.last_activity_at DESC, w.created_at DESC, w.workspace_id ASC");
            if let Some(limit) = query.limit {
                sql.push_str(" LIMIT ?");
                args.push((limit as i64).into());
            }
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
                let state = state_col(r, 3)?;
                let last_activity_at: f64 = r.get(5)?;
                let ttl: Option<i64> = r.get(6)?;
                Ok(WorkspaceSummary {
                    workspace_id: r.get(0)?,
                    name: r.get(1)?,
                    labels: BTreeMap::new(),
                    environment: r.get(2)?,
                    state,
                    created_at: r.get(4)?,
                    last_activity_at,
                    expires_at: match (state, ttl) {
                        (WorkspaceState::Started, Some(t)) => Some(last_activity_at + t as f64),
                        _ => None,
                    },
                    command_count: r.get::<_, i64>(7)? as u64,
                    service_count: 0,
                    running_service_count: 0,
                })
            })?;
            let mut out: Vec<WorkspaceSummary> = rows.collect::<rusqlite::Result<_>>()?;
            attach_labels(c, &mut out)?;
            Ok(out)
        })
    }

    /// Renames and relabels. Clearing happens after setting; a key both set
    /// and cleared is refused. A call that changes nothing is refused and
    /// writes nothing; otherwise `last_activity_at` becomes `now`.
    pub fn update_metadata(
        &self,
        id_or_name: &str,
        name: NameChange,
        set_labels: BTreeMap<String, String>,
        clear_labels: Vec<String>,
        now: f64,
    ) -> Result<WorkspaceRecord> {
        let set_labels = valid_labels(&set_labels)?;
        let clear: Vec<String> = clear_labels
            .iter()
            .map(|k| validate_label_key(k))
            .collect::<Result<_>>()?;
        if let Some(k) = clear.iter().find(|k| set_labels.contains_key(*k)) {
            return Err(StoreError::Conflict {
                message: format!("label '{k}' cannot be both set and cleared in one update"),
            });
        }
        let name = match name {
            NameChange::Set(n) => NameChange::Set(validate_name(&n)?),
            other => other,
        };
        self.write(|tx| {
            let current = find(tx, id_or_name)?;
            let id = current.workspace_id.clone();
            let new_name = match &name {
                NameChange::Keep => current.name.clone(),
                NameChange::Set(n) => Some(n.clone()),
                NameChange::Clear => None,
            };
            if let Some(n) = &new_name {
                if current.name.as_ref() != Some(n) && name_taken(tx, n, &id)? {
                    return Err(StoreError::DuplicateName { name: n.clone() });
                }
            }
            let mut labels = current.labels.clone();
            labels.extend(set_labels.clone());
            for k in &clear {
                labels.remove(k);
            }
            if new_name == current.name && labels == current.labels {
                return Err(StoreError::NoChange);
            }
            tx.execute(
                "UPDATE workspaces SET name = ?2, last_activity_at = ?3 WHERE workspace_id = ?1",
                params![id, new_name, now],
            )?;
            tx.execute("DELETE FROM labels WHERE workspace_id = ?1", [&id])?;
            for (k, v) in &labels {
                tx.execute(
                    "INSERT INTO labels (workspace_id, key, value) VALUES (?1, ?2, ?3)",
                    params![id, k, v],
                )?;
            }
            find(tx, &id)
        })
    }

    /// Records a state change. `runtime` replaces the runtime data when
    /// given; `touch` sets `last_activity_at` when given.
    pub fn set_state(
        &self,
        id: &str,
        state: WorkspaceState,
        last_error: Option<String>,
        runtime: Option<serde_json::Value>,
        touch: Option<f64>,
    ) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE workspaces SET state = ?2, last_error = ?3, runtime = COALESCE(?4, runtime), \
                 last_activity_at = COALESCE(?5, last_activity_at) WHERE workspace_id = ?1",
                params![id, state.as_str(), last_error, runtime.map(|r| r.to_string()), touch],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound { what: id.to_string() });
            }
            Ok(())
        })
    }

    /// Sets `last_activity_at`.
    pub fn touch(&self, id: &str, now: f64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE workspaces SET last_activity_at = ?2 WHERE workspace_id = ?1",
                params![id, now],
            )?;
            Ok(())
        })
    }

    /// Appends to the history; returns the command's sequence number.
    #[allow(clippy::too_many_arguments)]
    pub fn record_command(
        &self,
        id: &str,
        command: &str,
        cwd: &str,
        exit_code: i32,
        duration_ms: u64,
        stdout: &str,
        stderr: &str,
        now: f64,
    ) -> Result<u64> {
        self.write(|tx| {
            let count: i64 = tx
                .query_row("SELECT command_count FROM workspaces WHERE workspace_id = ?1", [id], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::NotFound { what: id.to_string() })?;
            let sequence = count as u64 + 1;
            tx.execute(
                "INSERT INTO commands (workspace_id, sequence, command, cwd, exit_code, duration_ms, stdout, stderr, recorded_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![id, sequence as i64, command, cwd, exit_code, duration_ms as i64, stdout, stderr, now],
            )?;
            let last = LastCommand { sequence, command: command.into(), cwd: cwd.into(), exit_code, duration_ms };
            tx.execute(
                "UPDATE workspaces SET command_count = ?2, last_command = ?3, last_activity_at = ?4 WHERE workspace_id = ?1",
                params![id, sequence as i64, serde_json::to_string(&last).unwrap_or_default(), now],
            )?;
            Ok(sequence)
        })
    }

    /// The history, oldest first.
    pub fn commands(&self, id: &str) -> Result<Vec<CommandEntry>> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT sequence, command, cwd, exit_code, duration_ms, recorded_at, stdout, stderr \
                 FROM commands WHERE workspace_id = ?1 ORDER BY sequence",
            )?;
            let rows = stmt.query_map([id], |r| {
                Ok(CommandEntry {
                    sequence: r.get::<_, i64>(0)? as u64,
                    command: r.get(1)?,
                    cwd: r.get(2)?,
                    exit_code: r.get(3)?,
                    duration_ms: r.get::<_, i64>(4)? as u64,
                    recorded_at: r.get(5)?,
                    stdout: r.get(6)?,
                    stderr: r.get(7)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Removes a workspace with its labels and history.
    pub fn delete(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            if tx.execute("DELETE FROM workspaces WHERE workspace_id = ?1", [id])? == 0 {
                return Err(StoreError::NotFound {
                    what: id.to_string(),
                });
            }
            Ok(())
        })
    }

    /// Fills the store with `n` stopped workspaces in one transaction, for
    /// benchmarks and tests of large stores.
    #[doc(hidden)]
    pub fn bulk_insert_for_bench(&self, n: usize, now: f64) -> Result<()> {
        self.write(|tx| {
            let mut ws = tx.prepare(
                "INSERT INTO workspaces (workspace_id, name, environment, environment_version, state, vcpu_count, \
                 mem_mib, ttl_seconds, network_policy, created_at, last_activity_at) \
                 VALUES (?1, ?2, 'debian:12', '1.0.0', 'stopped', 1, 1024, 600, 'off', ?3, ?3)",
            )?;
            let mut label = tx.prepare("INSERT INTO labels (workspace_id, key, value) VALUES (?1, ?2, ?3)")?;
            for i in 0..n {
                let id = format!("{:012x}", 0xb0_0000_0000u64 + i as u64);
                ws.execute(params![id, format!("bench-{i}"), now - i as f64])?;
                label.execute(params![id, "team", format!("t{}", i % 10)])?;
            }
            Ok(())
        })
    }
}

/// Fills in labels for a page of summaries with one query.
fn attach_labels(c: &Connection, rows: &mut [WorkspaceSummary]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut by_id: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    // Within SQLite's parameter limit ask for exactly these ids; beyond it
    // one scan of the labels table is cheaper anyway.
    if rows.len() <= 900 {
        let marks = vec!["?"; rows.len()].join(",");
        let sql =
            format!("SELECT workspace_id, key, value FROM labels WHERE workspace_id IN ({marks})");
        let mut stmt = c.prepare(&sql)?;
        let ids = rows.iter().map(|r| r.workspace_id.as_str());
        let mut q = stmt.query(rusqlite::params_from_iter(ids))?;
        while let Some(r) = q.next()? {
            by_id
                .entry(r.get(0)?)
                .or_default()
                .insert(r.get(1)?, r.get(2)?);
        }
    } else {
        let mut stmt = c.prepare("SELECT workspace_id, key, value FROM labels")?;
        let mut q = stmt.query([])?;
        while let Some(r) = q.next()? {
            by_id
                .entry(r.get(0)?)
                .or_default()
                .insert(r.get(1)?, r.get(2)?);
        }
    }
    for row in rows {
        if let Some(l) = by_id.remove(&row.workspace_id) {
            row.labels = l;
        }
    }
    Ok(())
}

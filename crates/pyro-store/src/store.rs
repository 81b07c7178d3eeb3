//! The store itself: open, migrate, read, change.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};

use crate::query::{
    label_matches_sql, list_sql, split_labels, ListQuery, DRIVE_BELOW, LABELS_COL, ORDER,
};
use crate::record::{
    expires_at, CommandEntry, LastCommand, NameChange, NewWorkspace, WorkspaceRecord,
    WorkspaceState, WorkspaceSummary,
};
use crate::schema::MIGRATIONS;
use crate::validate::{
    check_label_count, is_workspace_id, looks_like_workspace_id, validate_label_key,
    validate_label_value, validate_name,
};
use crate::StoreError;

/// How long a writer waits for another process's transaction before giving
/// up. Transactions here last milliseconds; this only bounds pathology.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

type Result<T> = std::result::Result<T, StoreError>;

/// An open store. One per process; safe to share between threads (calls are
/// serialised on one connection), and any number of processes may open the
/// same file at once.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
}

/// Columns of a full record, in the order `record_from_row` reads them.
fn record_select() -> String {
    format!(
        "SELECT w.workspace_id, w.name, w.environment, w.environment_version, w.state, \
         w.vcpu_count, w.mem_mib, w.ttl_seconds, w.network_policy, w.created_at, \
         w.last_activity_at, w.command_count, w.last_command, w.last_error, w.runtime, w.seed, \
         {LABELS_COL}, w.reset_count, w.last_reset_at, w.secrets, \
         (SELECT COUNT(*) FROM services s WHERE s.workspace_id = w.workspace_id), \
         (SELECT COUNT(*) FROM services s WHERE s.workspace_id = w.workspace_id \
          AND s.state = 'running') FROM workspaces w"
    )
}

/// Opaque JSON columns: a value that does not parse reads as `null` rather
/// than making the workspace impossible to inspect or delete.
fn json_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<serde_json::Value> {
    let text: Option<String> = row.get(idx)?;
    Ok(text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null))
}

fn labels_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<BTreeMap<String, String>> {
    Ok(split_labels(row.get_ref(idx)?.as_str_or_null()?))
}

fn state_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<WorkspaceState> {
    let text: String = row.get(idx)?;
    WorkspaceState::parse(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

fn u64_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Integer, Box::new(e)))
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<WorkspaceRecord> {
    let state = state_col(row, 4)?;
    let ttl_seconds = row.get::<_, Option<i64>>(7)?.map(|t| t.max(0) as u64);
    let last_activity_at: f64 = row.get(10)?;
    let last_command: Option<String> = row.get(12)?;
    Ok(WorkspaceRecord {
        workspace_id: row.get(0)?,
        name: row.get(1)?,
        labels: labels_col(row, 16)?,
        environment: row.get(2)?,
        environment_version: row.get(3)?,
        state,
        vcpu_count: row.get(5)?,
        mem_mib: row.get(6)?,
        ttl_seconds,
        network_policy: row.get(8)?,
        created_at: row.get(9)?,
        last_activity_at,
        expires_at: expires_at(state, last_activity_at, ttl_seconds),
        command_count: u64_col(row, 11)?,
        last_command: last_command.and_then(|t| serde_json::from_str::<LastCommand>(&t).ok()),
        last_error: row.get(13)?,
        runtime: json_col(row, 14)?,
        seed: json_col(row, 15)?,
        reset_count: u64_col(row, 17)?,
        last_reset_at: row.get(18)?,
        secrets: json_col(row, 19)?,
        service_count: u64_col(row, 20)?,
        running_service_count: u64_col(row, 21)?,
    })
}

fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<WorkspaceSummary> {
    let state = state_col(row, 3)?;
    let last_activity_at: f64 = row.get(5)?;
    let ttl_seconds = row.get::<_, Option<i64>>(6)?.map(|t| t.max(0) as u64);
    Ok(WorkspaceSummary {
        workspace_id: row.get(0)?,
        name: row.get(1)?,
        labels: labels_col(row, 8)?,
        environment: row.get(2)?,
        state,
        created_at: row.get(4)?,
        last_activity_at,
        expires_at: expires_at(state, last_activity_at, ttl_seconds),
        command_count: u64_col(row, 7)?,
        service_count: u64_col(row, 9)?,
        running_service_count: u64_col(row, 10)?,
    })
}

/// How `find` looks `what` up: a string shaped like an id (12 hex
/// characters, any case) only ever as an id, lowercased; anything else as a
/// name. Names never have the id shape (see `validate_name`), so no name
/// can shadow an id, even one stored before that rule.
fn lookup(what: &str) -> (&'static str, String) {
    let what = what.trim();
    if looks_like_workspace_id(what) {
        ("w.workspace_id", what.to_ascii_lowercase())
    } else {
        ("w.name", what.to_string())
    }
}

/// The record with this id or name, read in one statement (so its labels
/// and fields come from the same snapshot).
fn find(conn: &Connection, id_or_name: &str) -> Result<WorkspaceRecord> {
    let (column, key) = lookup(id_or_name);
    let sql = format!("{} WHERE {column} = ?1", record_select());
    conn.prepare_cached(&sql)?
        .query_row([key], record_from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound {
            what: id_or_name.to_string(),
        })
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

/// Validates and strips every label. Two keys that are the same once
/// stripped (`"k"` and `" k "`) are refused rather than one silently
/// dropped.
fn valid_labels(labels: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    let mut valid = BTreeMap::new();
    for (k, v) in labels {
        let k = validate_label_key(k)?;
        let v = validate_label_value(&k, v)?;
        if let Some(first) = valid.get(&k) {
            return Err(StoreError::invalid(
                "label",
                format!(
                    "label '{k}' is given twice (values '{first}' and '{v}'); give each key once"
                ),
            ));
        }
        valid.insert(k, v);
    }
    Ok(valid)
}

fn upsert_label(tx: &Transaction<'_>, id: &str, key: &str, value: &str) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO labels (workspace_id, key, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (workspace_id, key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![id, key, value])?;
    Ok(())
}

/// The label filter that should drive a list: the one with the fewest
/// matches, if it has fewer than [`DRIVE_BELOW`] (counted through the
/// `(key, value)` index, stopping at that many). SQLite has no statistics to
/// choose between "find the few matches, then sort" and "walk in order,
/// check each, stop at the limit"; this makes the choice for it.
fn driving_filter(conn: &Connection, query: &ListQuery) -> Result<Option<usize>> {
    let mut best: Option<(usize, i64)> = None;
    for (i, f) in query.labels.iter().enumerate() {
        let (sql, args) = label_matches_sql(f, DRIVE_BELOW);
        let n: i64 = conn
            .prepare_cached(&sql)?
            .query_row(rusqlite::params_from_iter(args), |r| r.get(0))?;
        match best {
            Some((_, fewest)) if fewest <= n => {}
            _ => best = Some((i, n)),
        }
    }
    Ok(best.filter(|&(_, n)| n < DRIVE_BELOW).map(|(i, _)| i))
}

pub(crate) fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        what: id.to_string(),
    }
}

/// Applies the migrations `user_version` has not seen, in one transaction.
fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}

/// Switches the file to WAL. Another process doing the same on a new file
/// can make this fail with "database is locked" without the busy handler
/// being consulted, so it is retried within the busy timeout.
fn enable_wal(conn: &Connection) -> Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(StoreError::Unusable(format!(
                    "SQLite refused WAL mode (journal_mode stayed '{mode}'); \
                     put PYRO_STATE_DIR on a local filesystem"
                )))
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Makes `path` mode 0600: creates it so when `create` and it is missing
/// (never truncating), and tightens it when it exists with more.
fn private_file(path: &Path, create: bool) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let unusable = |what: &str, e: std::io::Error| {
        StoreError::Unusable(format!("{what} {}: {e}", path.display()))
    };
    if create {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(unusable("cannot create", e)),
        }
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(unusable("cannot inspect", e)),
    };
    if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| unusable("cannot restrict the permissions of", e))?;
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`
    /// (normally `<state_dir>/pyro.db`). The file and its `-wal` and `-shm`
    /// companions are made mode 0600 (SQLite creates the companions with
    /// the database's mode). Fails with [`StoreError::SchemaTooNew`] when a
    /// newer pyro wrote it.
    pub fn open(path: &Path) -> Result<Store> {
        private_file(path, true)?;
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        enable_wal(&conn)?;
        for suffix in ["-wal", "-shm"] {
            let mut companion = path.as_os_str().to_owned();
            companion.push(suffix);
            private_file(Path::new(&companion), false)?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction and commits if it
    /// succeeds; any error rolls everything back.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Schema version on disk (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Adds a workspace in state `creating`; `created_at` and
    /// `last_activity_at` are `now`. Name and labels are validated (and
    /// stripped) here; at most [`MAX_LABELS`](crate::MAX_LABELS) labels.
    pub fn insert(&self, new: &NewWorkspace, now: f64) -> Result<WorkspaceRecord> {
        if !is_workspace_id(&new.workspace_id) {
            return Err(StoreError::invalid(
                "workspace_id",
                format!(
                    "workspace id '{}' is not 12 lowercase hex characters",
                    new.workspace_id
                ),
            ));
        }
        let name = new.name.as_deref().map(validate_name).transpose()?;
        let labels = valid_labels(&new.labels)?;
        check_label_count(labels.len())?;
        let id = new.workspace_id.as_str();
        self.write(|tx| {
            let exists = tx
                .query_row(
                    "SELECT 1 FROM workspaces WHERE workspace_id = ?1",
                    [id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if exists {
                return Err(StoreError::Conflict {
                    message: format!("workspace id '{id}' is already in use"),
                });
            }
            if let Some(n) = &name {
                if name_taken(tx, n, id)? {
                    return Err(StoreError::DuplicateName { name: n.clone() });
                }
            }
            tx.execute(
                "INSERT INTO workspaces (workspace_id, name, environment, environment_version, \
                 state, vcpu_count, mem_mib, ttl_seconds, network_policy, created_at, \
                 last_activity_at, runtime, seed, secrets) \
                 VALUES (?1, ?2, ?3, ?4, 'creating', ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12)",
                params![
                    id,
                    name,
                    new.environment,
                    new.environment_version,
                    new.vcpu_count,
                    new.mem_mib,
                    new.ttl_seconds
                        .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
                    new.network_policy,
                    now,
                    new.runtime.to_string(),
                    new.seed.to_string(),
                    new.secrets.to_string(),
                ],
            )?;
            for (k, v) in &labels {
                upsert_label(tx, id, k, v)?;
            }
            find(tx, id)
        })
    }

    /// The workspace with this id or name. A string of 12 hex characters
    /// (any case) is only ever looked up as an id, so no name can shadow
    /// an id. Reads only.
    pub fn resolve(&self, id_or_name: &str) -> Result<WorkspaceRecord> {
        find(&self.conn(), id_or_name)
    }

    /// Workspaces matching `query`, most recently active first (then newest,
    /// then by id). Filtering, ordering and the limit happen in SQLite, in
    /// one statement, through the indexes. Reads only.
    pub fn list(&self, query: &ListQuery) -> Result<Vec<WorkspaceSummary>> {
        let conn = self.conn();
        let (sql, args) = list_sql(query, driving_filter(&conn, query)?);
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), summary_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Ids of the workspaces whose recorded state is `state`, in list order.
    /// Reads only.
    pub fn ids_in_state(&self, state: WorkspaceState) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT w.workspace_id FROM workspaces w WHERE w.state = ?1{ORDER}"
        ))?;
        let rows = stmt.query_map([state.as_str()], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Ids of workspaces whose runtime data may name live processes: every
    /// `started` or `creating` one, and any other whose runtime is not the
    /// empty object `{}`, in no particular order. What the Manager
    /// reconciles before a listing. Reads only.
    pub fn ids_with_runtime(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        // No ORDER: a plain table scan is the cheapest pass over every row.
        let mut stmt = conn.prepare_cached(
            "SELECT w.workspace_id FROM workspaces w \
             WHERE w.state IN ('started', 'creating') OR w.runtime <> '{}'",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Ids of started workspaces idle past their TTL at `now`
    /// (`last_activity_at + ttl_seconds <= now`), longest idle first.
    /// Reads only.
    pub fn ids_idle_past_ttl(&self, now: f64) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT workspace_id FROM workspaces WHERE state = 'started' \
             AND ttl_seconds IS NOT NULL AND last_activity_at + ttl_seconds <= ?1 \
             ORDER BY last_activity_at + ttl_seconds, workspace_id",
        )?;
        let rows = stmt.query_map([now], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Renames and relabels the workspace with this id or name.
    ///
    /// Everything is validated before anything is read. A key both set and
    /// cleared is refused ([`StoreError::Invalid`]), and so is a change that
    /// would leave more than [`MAX_LABELS`](crate::MAX_LABELS) labels; a name
    /// another workspace has is refused ([`StoreError::DuplicateName`]); a
    /// call that would
    /// change nothing (same name, same label values, clearing absent keys) is
    /// refused ([`StoreError::NoChange`]) and writes nothing. Otherwise the
    /// changes and `last_activity_at = now` are written in one transaction.
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
            return Err(StoreError::invalid(
                "labels",
                format!("label '{k}' cannot be both set and cleared in one update"),
            ));
        }
        let name = match name {
            NameChange::Set(n) => NameChange::Set(validate_name(&n)?),
            other => other,
        };
        self.write(|tx| {
            let current = find(tx, id_or_name)?;
            let id = current.workspace_id.as_str();
            let new_name = match &name {
                NameChange::Keep => current.name.clone(),
                NameChange::Set(n) => Some(n.clone()),
                NameChange::Clear => None,
            };
            let rename = new_name != current.name;
            let upserts: Vec<(&String, &String)> = set_labels
                .iter()
                .filter(|(k, v)| current.labels.get(*k) != Some(*v))
                .collect();
            let removals: Vec<&String> = clear
                .iter()
                .filter(|k| current.labels.contains_key(*k))
                .collect();
            if !rename && upserts.is_empty() && removals.is_empty() {
                return Err(StoreError::NoChange);
            }
            let added = upserts
                .iter()
                .filter(|(k, _)| !current.labels.contains_key(*k))
                .count();
            let count = current.labels.len() + added - removals.len();
            // A workspace stored with more labels than the cap (before it
            // existed) can still be renamed or lose labels.
            if count > current.labels.len() {
                check_label_count(count)?;
            }
            if rename {
                if let Some(n) = &new_name {
                    if name_taken(tx, n, id)? {
                        return Err(StoreError::DuplicateName { name: n.clone() });
                    }
                }
            }
            tx.execute(
                "UPDATE workspaces SET name = ?2, last_activity_at = MAX(last_activity_at, ?3) \
                 WHERE workspace_id = ?1",
                params![id, new_name, now],
            )?;
            for (k, v) in upserts {
                upsert_label(tx, id, k, v)?;
            }
            for k in removals {
                tx.execute(
                    "DELETE FROM labels WHERE workspace_id = ?1 AND key = ?2",
                    params![id, k],
                )?;
            }
            find(tx, id)
        })
    }

    /// Records a state change of the workspace with this id. `last_error`
    /// replaces the stored one (`None` clears it); `runtime` replaces the
    /// opaque runtime data when given; `touch` sets `last_activity_at` when
    /// given.
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
                 last_activity_at = MAX(last_activity_at, COALESCE(?5, last_activity_at)) \
                 WHERE workspace_id = ?1",
                params![id, state.as_str(), last_error, runtime.map(|r| r.to_string()), touch],
            )?;
            if n == 0 {
                return Err(not_found(id));
            }
            Ok(())
        })
    }

    /// Sets `last_activity_at` of the workspace with this id.
    pub fn touch(&self, id: &str, now: f64) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE workspaces SET last_activity_at = MAX(last_activity_at, ?2) \
                 WHERE workspace_id = ?1",
                params![id, now],
            )?;
            if n == 0 {
                return Err(not_found(id));
            }
            Ok(())
        })
    }

    /// Appends a finished command to the history of the workspace with this
    /// id and returns its sequence number (`command_count + 1`, taken in the
    /// same transaction, so concurrent execs get distinct numbers). Sets
    /// `last_command`, `command_count` and `last_activity_at`. `stdout` and
    /// `stderr` are stored as given: the caller caps and redacts them.
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
        let duration = i64::try_from(duration_ms).unwrap_or(i64::MAX);
        self.write(|tx| {
            let count: i64 = tx
                .query_row(
                    "SELECT command_count FROM workspaces WHERE workspace_id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| not_found(id))?;
            let sequence = count.max(0) as u64 + 1;
            tx.execute(
                "INSERT INTO commands (workspace_id, sequence, command, cwd, exit_code, \
                 duration_ms, stdout, stderr, recorded_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    id,
                    sequence as i64,
                    command,
                    cwd,
                    exit_code,
                    duration,
                    stdout,
                    stderr,
                    now
                ],
            )?;
            let last = LastCommand {
                sequence,
                command: command.into(),
                cwd: cwd.into(),
                exit_code,
                duration_ms,
            };
            let last = serde_json::to_string(&last)
                .map_err(|e| StoreError::Corrupt(format!("encoding the last command: {e}")))?;
            tx.execute(
                "UPDATE workspaces SET command_count = ?2, last_command = ?3, \
                 last_activity_at = MAX(last_activity_at, ?4) WHERE workspace_id = ?1",
                params![id, sequence as i64, last, now],
            )?;
            Ok(sequence)
        })
    }

    /// The command history of the workspace with this id, by sequence
    /// (empty when it has none or does not exist). Reads only.
    pub fn commands(&self, id: &str) -> Result<Vec<CommandEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT sequence, command, cwd, exit_code, duration_ms, recorded_at, stdout, stderr \
             FROM commands WHERE workspace_id = ?1 ORDER BY sequence",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(CommandEntry {
                sequence: u64_col(r, 0)?,
                command: r.get(1)?,
                cwd: r.get(2)?,
                exit_code: r.get(3)?,
                duration_ms: u64_col(r, 4)?,
                recorded_at: r.get(5)?,
                stdout: r.get(6)?,
                stderr: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Removes the workspace with this id, with its labels and history.
    pub fn delete(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            if tx.execute("DELETE FROM workspaces WHERE workspace_id = ?1", [id])? == 0 {
                return Err(not_found(id));
            }
            Ok(())
        })
    }

    /// Adds `n` stopped workspaces in one transaction, for benchmarks and
    /// tests of large stores. Workspace `i` (counting from the records
    /// already there) is named `bench-<i>`, labelled `team=t<i % 10>` and
    /// `bench=yes`, created and last active at `now - i`.
    #[doc(hidden)]
    pub fn bulk_insert_for_bench(&self, n: usize, now: f64) -> Result<()> {
        self.write(|tx| {
            let base: i64 = tx.query_row("SELECT count(*) FROM workspaces", [], |r| r.get(0))?;
            let mut ws = tx.prepare(
                "INSERT INTO workspaces (workspace_id, name, environment, environment_version, \
                 state, vcpu_count, mem_mib, ttl_seconds, network_policy, created_at, \
                 last_activity_at) \
                 VALUES (?1, ?2, 'debian:12', '1.0.0', 'stopped', 1, 1024, 600, 'off', ?3, ?3)",
            )?;
            for i in base as u64..base as u64 + n as u64 {
                let id = format!("{:012x}", 0xb0_0000_0000u64 + i);
                ws.execute(params![id, format!("bench-{i}"), now - i as f64])?;
                upsert_label(tx, &id, "team", &format!("t{}", i % 10))?;
                upsert_label(tx, &id, "bench", "yes")?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LabelFilter;

    /// SQLite's plan for `list(query)`, one line per step.
    fn plan(store: &Store, query: &ListQuery) -> String {
        let conn = store.conn();
        let (sql, args) = list_sql(query, driving_filter(&conn, query).unwrap());
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap();
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join("\n")
    }

    #[test]
    fn lists_use_the_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("pyro.db")).unwrap();
        // 3000 workspaces: team=t0..t9 (300 each, rare), bench=yes (all).
        store.bulk_insert_for_bench(3000, 1e6).unwrap();
        let q = |labels: &[&str], limit| ListQuery {
            labels: labels
                .iter()
                .map(|l| LabelFilter::parse(l).unwrap())
                .collect(),
            limit,
            ..Default::default()
        };
        // No filter: walk the activity index in order, no sorting.
        for limit in [None, Some(20)] {
            let p = plan(&store, &q(&[], limit));
            assert!(p.contains("workspaces_by_activity"), "{p}");
            assert!(!p.contains("TEMP B-TREE"), "{p}");
        }
        // A rare label: start from the (key, value) index.
        for labels in [
            &["team=t3"][..],
            &["bench=yes", "team=t3"],
            &["bench", "team=t3"],
        ] {
            let p = plan(&store, &q(labels, Some(20)));
            assert!(p.contains("labels_by_key_value"), "{labels:?}: {p}");
        }
        // A common label: walk in order and stop at the limit.
        for labels in [&["bench=yes"][..], &["bench"]] {
            let p = plan(&store, &q(labels, Some(20)));
            assert!(p.contains("workspaces_by_activity"), "{labels:?}: {p}");
            assert!(!p.contains("TEMP B-TREE"), "{labels:?}: {p}");
        }
        // Labels come from the primary key, one lookup per row.
        let p = plan(&store, &q(&[], None));
        assert!(
            p.contains("sqlite_autoindex_labels_1 (workspace_id=?)"),
            "{p}"
        );
        // Resolving by id or by name uses their unique indexes.
        let conn = store.conn();
        for (what, index) in [
            ("00000000000A", "sqlite_autoindex_workspaces_1"),
            ("bench-7", "sqlite_autoindex_workspaces_2"),
        ] {
            let (column, key) = lookup(what);
            let sql = format!("EXPLAIN QUERY PLAN {} WHERE {column} = ?1", record_select());
            let mut stmt = conn.prepare(&sql).unwrap();
            let p: Vec<String> = stmt
                .query_map([key], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(
                p.iter()
                    .any(|l| l.contains(&format!("USING INDEX {index}"))),
                "{what}: {p:?}"
            );
        }
    }
}

//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pyro_store::{ListQuery, NewWorkspace, Store};

/// A store in a fresh temporary directory.
pub fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(dir.path())).unwrap();
    (dir, store)
}

/// The database file under a state dir.
pub fn db(dir: &Path) -> PathBuf {
    dir.join("pyro.db")
}

/// An insert request.
pub fn new(id: &str, name: Option<&str>, pairs: &[(&str, &str)]) -> NewWorkspace {
    NewWorkspace {
        workspace_id: id.into(),
        name: name.map(String::from),
        labels: labels(pairs),
        environment: "debian:12".into(),
        environment_version: "1.0.0".into(),
        vcpu_count: 1,
        mem_mib: 1024,
        ttl_seconds: Some(600),
        network_policy: "off".into(),
        runtime: serde_json::json!({"pid": 42}),
        seed: serde_json::json!({"mode": "empty"}),
        secrets: serde_json::json!([]),
    }
}

/// A label map.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What `list` returns, as names (or ids when unnamed).
pub fn names(store: &Store, q: &ListQuery) -> Vec<String> {
    store
        .list(q)
        .unwrap()
        .into_iter()
        .map(|w| w.name.unwrap_or(w.workspace_id))
        .collect()
}

/// The last-activity time of a workspace.
pub fn activity(store: &Store, id: &str) -> f64 {
    store.resolve(id).unwrap().last_activity_at
}

/// How many commits other connections have made since `conn` last looked
/// changes when anyone writes (`PRAGMA data_version`).
pub fn data_version(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .unwrap()
}

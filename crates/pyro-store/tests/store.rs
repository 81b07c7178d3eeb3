//! The store against real SQLite files.

use std::collections::BTreeMap;

use pyro_store::{
    LabelFilter, ListQuery, NameChange, NewWorkspace, Store, StoreError, WorkspaceState,
};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("pyro.db")).unwrap();
    (dir, store)
}

fn new(id: &str, name: Option<&str>, labels: &[(&str, &str)]) -> NewWorkspace {
    NewWorkspace {
        workspace_id: id.into(),
        name: name.map(String::from),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        environment: "debian:12".into(),
        environment_version: "1.0.0".into(),
        vcpu_count: 1,
        mem_mib: 1024,
        ttl_seconds: Some(600),
        network_policy: "off".into(),
        runtime: serde_json::json!({}),
        seed: serde_json::json!({"mode": "empty"}),
    }
}

fn names(store: &Store, q: &ListQuery) -> Vec<String> {
    store
        .list(q)
        .unwrap()
        .into_iter()
        .map(|w| w.name.unwrap_or(w.workspace_id))
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn order_is_activity_then_creation_then_id() {
    let (_d, s) = open();
    s.insert(&new("00000000000a", Some("old"), &[]), 100.0)
        .unwrap();
    s.insert(&new("00000000000b", Some("mid"), &[]), 200.0)
        .unwrap();
    s.insert(&new("00000000000c", Some("new"), &[]), 300.0)
        .unwrap();
    assert_eq!(names(&s, &ListQuery::default()), ["new", "mid", "old"]);
    // Activity on the oldest moves it to the top.
    s.record_command("00000000000a", "true", "/workspace", 0, 1, "", "", 400.0)
        .unwrap();
    assert_eq!(names(&s, &ListQuery::default()), ["old", "new", "mid"]);
    // Ties on activity: newer creation first, then id.
    s.touch("00000000000b", 400.0).unwrap();
    assert_eq!(names(&s, &ListQuery::default()), ["mid", "old", "new"]);
    s.insert(&new("00000000000e", None, &[]), 500.0).unwrap();
    s.insert(&new("00000000000d", None, &[]), 500.0).unwrap();
    assert_eq!(
        names(&s, &ListQuery::default())[..2],
        ["00000000000d", "00000000000e"]
    );
}

#[test]
fn filters_combine() {
    let (_d, s) = open();
    s.insert(
        &new("00000000000a", Some("a"), &[("team", "x"), ("tier", "dev")]),
        1.0,
    )
    .unwrap();
    s.insert(&new("00000000000b", Some("b"), &[("team", "y")]), 2.0)
        .unwrap();
    s.insert(&new("00000000000c", Some("c"), &[("team", "x")]), 3.0)
        .unwrap();
    let q = |filters: &[&str]| ListQuery {
        labels: filters
            .iter()
            .map(|f| LabelFilter::parse(f).unwrap())
            .collect(),
        ..Default::default()
    };
    assert_eq!(names(&s, &q(&["team=x"])), ["c", "a"]);
    assert_eq!(names(&s, &q(&["team=x", "tier"])), ["a"]);
    assert_eq!(names(&s, &q(&["tier=prod"])), Vec::<String>::new());
    assert_eq!(
        names(
            &s,
            &ListQuery {
                name: Some("b".into()),
                ..Default::default()
            }
        ),
        ["b"]
    );
    assert_eq!(
        names(
            &s,
            &ListQuery {
                limit: Some(2),
                ..Default::default()
            }
        ),
        ["c", "b"]
    );
    s.set_state("00000000000b", WorkspaceState::Started, None, None, None)
        .unwrap();
    assert_eq!(
        names(
            &s,
            &ListQuery {
                state: Some(WorkspaceState::Started),
                ..Default::default()
            }
        ),
        ["b"]
    );
    let listed = s.list(&q(&["team=x", "tier"])).unwrap();
    assert_eq!(listed[0].labels, labels(&[("team", "x"), ("tier", "dev")]));
}

#[test]
fn names_are_unique_and_resolve_like_ids() {
    let (_d, s) = open();
    s.insert(&new("00000000000a", Some("a"), &[]), 1.0).unwrap();
    assert!(matches!(
        s.insert(&new("00000000000b", Some(" a "), &[]), 2.0),
        Err(StoreError::DuplicateName { .. })
    ));
    s.insert(&new("00000000000b", Some("b"), &[]), 2.0).unwrap();
    assert_eq!(s.resolve("a").unwrap().workspace_id, "00000000000a");
    assert_eq!(
        s.resolve("00000000000b").unwrap().name.as_deref(),
        Some("b")
    );
    let err = s.resolve("zzz").unwrap_err();
    assert_eq!(
        err.to_string(),
        "workspace 'zzz' does not exist; `pyro workspace list` shows what does"
    );
    let renamed = s.update_metadata(
        "b",
        NameChange::Set("a".into()),
        BTreeMap::new(),
        vec![],
        3.0,
    );
    assert!(matches!(renamed, Err(StoreError::DuplicateName { .. })));
}

#[test]
fn update_rules_and_activity() {
    let (_d, s) = open();
    s.insert(&new("00000000000a", Some("a"), &[("team", "x")]), 1.0)
        .unwrap();
    // No change: error, nothing written, activity untouched.
    for (name, set, clear) in [
        (NameChange::Keep, labels(&[("team", "x")]), vec![]),
        (NameChange::Set("a".into()), BTreeMap::new(), vec![]),
        (
            NameChange::Keep,
            BTreeMap::new(),
            vec!["absent".to_string()],
        ),
        (NameChange::Keep, BTreeMap::new(), vec![]),
    ] {
        assert!(matches!(
            s.update_metadata("a", name, set, clear, 50.0),
            Err(StoreError::NoChange)
        ));
    }
    assert_eq!(s.resolve("a").unwrap().last_activity_at, 1.0);
    // Set and clear one key: refused.
    let both = s.update_metadata(
        "a",
        NameChange::Keep,
        labels(&[("k", "v")]),
        vec!["k".into()],
        50.0,
    );
    assert!(matches!(both, Err(StoreError::Conflict { .. })));
    assert!(!s.resolve("a").unwrap().labels.contains_key("k"));
    // A real change touches activity.
    let r = s
        .update_metadata(
            "a",
            NameChange::Set("b".into()),
            labels(&[("owner", "me")]),
            vec!["team".into()],
            60.0,
        )
        .unwrap();
    assert_eq!(r.name.as_deref(), Some("b"));
    assert_eq!(r.labels, labels(&[("owner", "me")]));
    assert_eq!(r.last_activity_at, 60.0);
    let r = s
        .update_metadata("b", NameChange::Clear, BTreeMap::new(), vec![], 70.0)
        .unwrap();
    assert_eq!(r.name, None);
    // Reads never touch it.
    s.list(&ListQuery::default()).unwrap();
    s.commands("00000000000a").unwrap();
    assert_eq!(s.resolve("00000000000a").unwrap().last_activity_at, 70.0);
    // set_state touches only when asked.
    s.set_state("00000000000a", WorkspaceState::Stopped, None, None, None)
        .unwrap();
    assert_eq!(s.resolve("00000000000a").unwrap().last_activity_at, 70.0);
    s.set_state(
        "00000000000a",
        WorkspaceState::Started,
        None,
        None,
        Some(80.0),
    )
    .unwrap();
    assert_eq!(s.resolve("00000000000a").unwrap().last_activity_at, 80.0);
}

#[test]
fn history_is_numbered_and_deleted_with_the_workspace() {
    let (_d, s) = open();
    s.insert(&new("00000000000a", None, &[("k", "v")]), 1.0)
        .unwrap();
    assert_eq!(
        s.record_command("00000000000a", "echo 1", "/workspace", 0, 5, "1\n", "", 2.0)
            .unwrap(),
        1
    );
    assert_eq!(
        s.record_command("00000000000a", "false", "/tmp", 1, 6, "", "e", 3.0)
            .unwrap(),
        2
    );
    let h = s.commands("00000000000a").unwrap();
    assert_eq!(h.iter().map(|c| c.sequence).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(h[0].stdout, "1\n");
    let r = s.resolve("00000000000a").unwrap();
    assert_eq!(r.command_count, 2);
    assert_eq!(r.last_command.unwrap().command, "false");
    s.delete("00000000000a").unwrap();
    assert!(s.commands("00000000000a").unwrap().is_empty());
    assert!(matches!(
        s.delete("00000000000a"),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn schema_is_versioned_and_reopening_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pyro.db");
    let s = Store::open(&path).unwrap();
    s.insert(&new("00000000000a", Some("kept"), &[]), 1.0)
        .unwrap();
    assert_eq!(s.schema_version().unwrap(), 1);
    drop(s);
    let s = Store::open(&path).unwrap();
    assert_eq!(s.resolve("kept").unwrap().workspace_id, "00000000000a");
    drop(s);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}

/// 8 processes add 20 labels each to one workspace at once: none is lost.
#[test]
fn concurrent_processes_lose_no_update() {
    if let Ok(path) = std::env::var("PYRO_STORE_CHILD_DB") {
        let me: usize = std::env::var("PYRO_STORE_CHILD_N")
            .unwrap()
            .parse()
            .unwrap();
        let s = Store::open(std::path::Path::new(&path)).unwrap();
        for i in 0..20 {
            let set = labels(&[(&format!("p{me}-{i}"), "v")]);
            s.update_metadata("shared", NameChange::Keep, set, vec![], 1.0)
                .unwrap();
        }
        return;
    }
    let (dir, s) = open();
    s.insert(&new("00000000000a", Some("shared"), &[]), 1.0)
        .unwrap();
    let db = dir.path().join("pyro.db");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..8)
        .map(|n| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "concurrent_processes_lose_no_update",
                    "--nocapture",
                ])
                .env("PYRO_STORE_CHILD_DB", &db)
                .env("PYRO_STORE_CHILD_N", n.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(s.resolve("shared").unwrap().labels.len(), 160);
}

#[test]
fn ten_thousand_records_list_fast() {
    let (_d, s) = open();
    s.bulk_insert_for_bench(10_000, 1_000_000.0).unwrap();
    let t = std::time::Instant::now();
    let page = s
        .list(&ListQuery {
            limit: Some(20),
            ..Default::default()
        })
        .unwrap();
    let page_time = t.elapsed();
    assert_eq!(page.len(), 20);
    assert_eq!(page[0].name.as_deref(), Some("bench-0"));
    assert_eq!(page[0].labels, labels(&[("team", "t0")]));
    let t = std::time::Instant::now();
    let all = s.list(&ListQuery::default()).unwrap();
    let all_time = t.elapsed();
    assert_eq!(all.len(), 10_000);
    assert_eq!(all[9_999].name.as_deref(), Some("bench-9999"));
    let team = s
        .list(&ListQuery {
            labels: vec![LabelFilter::parse("team=t3").unwrap()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(team.len(), 1_000);
    eprintln!("10k store: list --limit 20 {page_time:?}, full list {all_time:?}");
}

//! The store against real SQLite files: records, queries, update rules,
//! activity, history, schema.

mod common;

use std::collections::BTreeMap;

use common::{activity, data_version, db, labels, names, new, open};
use pyro_store::{
    LabelFilter, ListQuery, NameChange, Store, StoreError, WorkspaceState, WorkspaceSummary,
};

const A: &str = "00000000000a";
const B: &str = "00000000000b";
const C: &str = "00000000000c";

fn filtered(filters: &[&str]) -> ListQuery {
    ListQuery {
        labels: filters
            .iter()
            .map(|f| LabelFilter::parse(f).unwrap())
            .collect(),
        ..Default::default()
    }
}

/// Three workspaces: a (team=x, tier=dev), b (team=y), c (team=x), created
/// at 1, 2, 3.
fn three() -> (tempfile::TempDir, Store) {
    let (d, s) = open();
    s.insert(&new(A, Some("a"), &[("team", "x"), ("tier", "dev")]), 1.0)
        .unwrap();
    s.insert(&new(B, Some("b"), &[("team", "y")]), 2.0).unwrap();
    s.insert(&new(C, Some("c"), &[("team", "x")]), 3.0).unwrap();
    (d, s)
}

// ---- insert and resolve ----------------------------------------------------

#[test]
fn insert_stores_everything_and_starts_creating() {
    let (_d, s) = open();
    let r = s
        .insert(&new(A, Some("  web  "), &[(" team ", " x ")]), 100.5)
        .unwrap();
    assert_eq!(r.workspace_id, A);
    assert_eq!(r.name.as_deref(), Some("web"));
    assert_eq!(r.labels, labels(&[("team", "x")]));
    assert_eq!(r.state, WorkspaceState::Creating);
    assert_eq!((r.created_at, r.last_activity_at), (100.5, 100.5));
    assert_eq!(r.expires_at, None);
    assert_eq!((r.command_count, r.last_command.clone()), (0, None));
    assert_eq!(r.last_error, None);
    assert_eq!(r.runtime, serde_json::json!({"pid": 42}));
    assert_eq!(r.seed, serde_json::json!({"mode": "empty"}));
    assert_eq!(
        (r.vcpu_count, r.mem_mib, r.ttl_seconds),
        (1, 1024, Some(600))
    );
    assert_eq!(r, s.resolve(A).unwrap());
    assert_eq!(r, s.resolve("web").unwrap());
    assert_eq!(r, s.resolve(" web ").unwrap());
}

#[test]
fn insert_refuses_bad_input_and_writes_nothing() {
    let (_d, s) = open();
    s.insert(&new(A, Some("a"), &[]), 1.0).unwrap();
    let bad_name = "0123456789ab";
    let cases = [
        (new("short", None, &[]), "workspace_id"),
        (new("00000000000B", None, &[]), "workspace_id"),
        (new(B, Some(bad_name), &[]), "name"),
        (new(B, Some(""), &[]), "name"),
        (new(B, None, &[("-bad", "v")]), "label"),
        (new(B, None, &[("k", "two\nlines")]), "label"),
    ];
    for (req, field) in cases {
        match s.insert(&req, 2.0) {
            Err(StoreError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{req:?}: {other:?}"),
        }
    }
    assert!(matches!(
        s.insert(&new(A, Some("other"), &[]), 2.0),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(names(&s, &ListQuery::default()), ["a"]);
}

#[test]
fn duplicate_name_on_insert_is_refused() {
    let (_d, s) = open();
    s.insert(&new(A, Some("a"), &[]), 1.0).unwrap();
    let err = s
        .insert(&new(B, Some(" a "), &[("k", "v")]), 2.0)
        .unwrap_err();
    assert!(matches!(&err, StoreError::DuplicateName { name } if name == "a"));
    assert_eq!(
        err.to_string(),
        "a workspace named 'a' already exists; choose another name or delete it first"
    );
    assert!(matches!(s.resolve(B), Err(StoreError::NotFound { .. })));
    // Unnamed workspaces do not clash.
    s.insert(&new(B, None, &[]), 2.0).unwrap();
    s.insert(&new(C, None, &[]), 3.0).unwrap();
}

#[test]
fn unknown_workspace_is_not_found_naming_what_was_asked() {
    let (_d, s) = open();
    s.insert(&new(A, Some("a"), &[]), 1.0).unwrap();
    for what in ["zzz", "00000000000f", "A"] {
        let err = s.resolve(what).unwrap_err();
        assert!(matches!(&err, StoreError::NotFound { what: w } if w == what));
        assert_eq!(
            err.to_string(),
            format!("workspace '{what}' does not exist")
        );
    }
    assert!(matches!(s.touch(B, 5.0), Err(StoreError::NotFound { .. })));
    assert!(matches!(
        s.set_state(B, WorkspaceState::Started, None, None, None),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.record_command(B, "true", "/", 0, 1, "", "", 5.0),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.update_metadata("nope", NameChange::Clear, BTreeMap::new(), vec![], 5.0),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(s.delete(B), Err(StoreError::NotFound { .. })));
}

// ---- list ------------------------------------------------------------------

#[test]
fn list_orders_by_activity_then_creation_then_id() {
    let (_d, s) = open();
    s.insert(&new(A, Some("old"), &[]), 100.0).unwrap();
    s.insert(&new(B, Some("mid"), &[]), 200.0).unwrap();
    s.insert(&new(C, Some("new"), &[]), 300.0).unwrap();
    assert_eq!(names(&s, &ListQuery::default()), ["new", "mid", "old"]);
    // Activity on the oldest moves it to the top.
    s.record_command(A, "true", "/workspace", 0, 1, "", "", 400.0)
        .unwrap();
    assert_eq!(names(&s, &ListQuery::default()), ["old", "new", "mid"]);
    // Tie on activity: the newer creation first.
    s.touch(B, 400.0).unwrap();
    assert_eq!(names(&s, &ListQuery::default()), ["mid", "old", "new"]);
    // Tie on both: by id, ascending, whatever the insert order.
    s.insert(&new("00000000000f", None, &[]), 500.0).unwrap();
    s.insert(&new("00000000000d", None, &[]), 500.0).unwrap();
    s.insert(&new("00000000000e", None, &[]), 500.0).unwrap();
    assert_eq!(
        names(&s, &ListQuery::default()),
        [
            "00000000000d",
            "00000000000e",
            "00000000000f",
            "mid",
            "old",
            "new"
        ]
    );
}

#[test]
fn list_filters_by_label_value() {
    let (_d, s) = three();
    assert_eq!(names(&s, &filtered(&["team=x"])), ["c", "a"]);
    assert_eq!(names(&s, &filtered(&["team=y"])), ["b"]);
    assert!(names(&s, &filtered(&["team=z"])).is_empty());
    assert!(names(&s, &filtered(&["tier=x"])).is_empty());
}

#[test]
fn list_filters_by_label_presence() {
    let (_d, s) = three();
    assert_eq!(names(&s, &filtered(&["tier"])), ["a"]);
    assert_eq!(names(&s, &filtered(&["team"])), ["c", "b", "a"]);
    assert!(names(&s, &filtered(&["owner"])).is_empty());
}

#[test]
fn list_requires_every_label_filter() {
    let (_d, s) = three();
    assert_eq!(names(&s, &filtered(&["team=x", "tier"])), ["a"]);
    assert_eq!(names(&s, &filtered(&["team=x", "tier=dev"])), ["a"]);
    assert!(names(&s, &filtered(&["team=y", "tier"])).is_empty());
    assert!(names(&s, &filtered(&["team=x", "team=y"])).is_empty());
    // The rows carry all their labels, not only the matched ones.
    let listed = s.list(&filtered(&["tier"])).unwrap();
    assert_eq!(listed[0].labels, labels(&[("team", "x"), ("tier", "dev")]));
}

#[test]
fn list_filters_by_name() {
    let (_d, s) = three();
    let by = |n: &str| ListQuery {
        name: Some(n.into()),
        ..Default::default()
    };
    assert_eq!(names(&s, &by("b")), ["b"]);
    assert_eq!(names(&s, &by(" b ")), ["b"]);
    assert!(names(&s, &by("B")).is_empty());
    assert!(names(&s, &by("zzz")).is_empty());
    let q = ListQuery {
        name: Some("a".into()),
        labels: vec![LabelFilter::Present("tier".into())],
        ..Default::default()
    };
    assert_eq!(names(&s, &q), ["a"]);
}

#[test]
fn list_filters_by_state() {
    let (_d, s) = three();
    let by = |st| ListQuery {
        state: Some(st),
        ..Default::default()
    };
    assert_eq!(names(&s, &by(WorkspaceState::Creating)), ["c", "b", "a"]);
    s.set_state(B, WorkspaceState::Started, None, None, None)
        .unwrap();
    s.set_state(A, WorkspaceState::Failed, Some("boom".into()), None, None)
        .unwrap();
    assert_eq!(names(&s, &by(WorkspaceState::Started)), ["b"]);
    assert_eq!(names(&s, &by(WorkspaceState::Failed)), ["a"]);
    assert_eq!(names(&s, &by(WorkspaceState::Creating)), ["c"]);
    assert!(names(&s, &by(WorkspaceState::Stopped)).is_empty());
    let mut q = by(WorkspaceState::Started);
    q.labels = vec![LabelFilter::parse("team=x").unwrap()];
    assert!(names(&s, &q).is_empty());
}

#[test]
fn list_limit_keeps_the_order() {
    let (_d, s) = three();
    let lim = |n| ListQuery {
        limit: Some(n),
        ..Default::default()
    };
    assert_eq!(names(&s, &lim(2)), ["c", "b"]);
    assert_eq!(names(&s, &lim(1)), ["c"]);
    assert_eq!(names(&s, &lim(10)), ["c", "b", "a"]);
    assert!(names(&s, &lim(0)).is_empty());
    let mut q = filtered(&["team=x"]);
    q.limit = Some(1);
    assert_eq!(names(&s, &q), ["c"]);
}

#[test]
fn list_rows_carry_exactly_the_listed_fields() {
    let (_d, s) = three();
    s.set_state(B, WorkspaceState::Started, None, None, Some(10.0))
        .unwrap();
    s.record_command(B, "ls", "/workspace", 0, 3, "", "", 20.0)
        .unwrap();
    let w = s.list(&filtered(&["team=y"])).unwrap().remove(0);
    assert_eq!(
        w,
        WorkspaceSummary {
            workspace_id: B.into(),
            name: Some("b".into()),
            labels: [("team".to_string(), "y".to_string())].into(),
            environment: "debian:12".into(),
            state: WorkspaceState::Started,
            created_at: 2.0,
            last_activity_at: 20.0,
            expires_at: Some(620.0),
            command_count: 1,
            service_count: 0,
            running_service_count: 0,
        }
    );
    // Only started workspaces expire.
    let a = s.list(&filtered(&["tier"])).unwrap().remove(0);
    assert_eq!(a.expires_at, None);
    assert!(a.labels.len() == 2 && a.command_count == 0);
}

#[test]
fn helpers_for_gc_find_states_and_idle_workspaces() {
    let (_d, s) = three();
    s.set_state(A, WorkspaceState::Started, None, None, Some(10.0))
        .unwrap();
    s.set_state(B, WorkspaceState::Started, None, None, Some(500.0))
        .unwrap();
    assert_eq!(s.ids_in_state(WorkspaceState::Started).unwrap(), [B, A]);
    assert_eq!(s.ids_in_state(WorkspaceState::Creating).unwrap(), [C]);
    assert!(s.ids_in_state(WorkspaceState::Stopped).unwrap().is_empty());
    // ttl 600: A expires at 610, B at 1100; C is not started.
    assert!(s.ids_idle_past_ttl(609.0).unwrap().is_empty());
    assert_eq!(s.ids_idle_past_ttl(610.0).unwrap(), [A]);
    assert_eq!(s.ids_idle_past_ttl(5000.0).unwrap(), [A, B]);
    assert_eq!(s.resolve(A).unwrap().expires_at, Some(610.0));
    // Reconciliation candidates: started or creating, or any runtime data.
    s.set_state(
        A,
        WorkspaceState::Stopped,
        None,
        Some(serde_json::json!({})),
        None,
    )
    .unwrap();
    let mut ids = s.ids_with_runtime().unwrap();
    ids.sort();
    assert_eq!(ids, [B, C]);
    s.set_state(
        A,
        WorkspaceState::Stopped,
        None,
        Some(serde_json::json!({"owner": 1})),
        None,
    )
    .unwrap();
    assert_eq!(s.ids_with_runtime().unwrap().len(), 3);
}

// ---- update ----------------------------------------------------------------

#[test]
fn update_without_effect_is_refused_and_writes_nothing() {
    let (dir, s) = open();
    s.insert(&new(A, Some("a"), &[("team", "x")]), 1.0).unwrap();
    let before = s.resolve(A).unwrap();
    let watcher = rusqlite::Connection::open(db(dir.path())).unwrap();
    let version = data_version(&watcher);
    for (name, set, clear) in [
        (NameChange::Keep, BTreeMap::new(), vec![]),
        (NameChange::Keep, labels(&[("team", "x")]), vec![]),
        (NameChange::Keep, labels(&[(" team ", " x ")]), vec![]),
        (NameChange::Set("a".into()), BTreeMap::new(), vec![]),
        (NameChange::Set(" a ".into()), BTreeMap::new(), vec![]),
        (
            NameChange::Keep,
            BTreeMap::new(),
            vec!["absent".to_string()],
        ),
        (
            NameChange::Set("a".into()),
            labels(&[("team", "x")]),
            vec!["absent".to_string()],
        ),
    ] {
        let err = s.update_metadata("a", name, set, clear, 50.0).unwrap_err();
        assert!(matches!(err, StoreError::NoChange), "{err:?}");
        assert_eq!(
            err.to_string(),
            "workspace update requested no effective metadata change"
        );
    }
    assert_eq!(data_version(&watcher), version, "a refused update wrote");
    assert_eq!(s.resolve(A).unwrap(), before);
    // Clearing the name of an unnamed workspace changes nothing either.
    s.insert(&new(B, None, &[]), 2.0).unwrap();
    assert!(matches!(
        s.update_metadata(B, NameChange::Clear, BTreeMap::new(), vec![], 50.0),
        Err(StoreError::NoChange)
    ));
    assert_eq!(activity(&s, B), 2.0);
}

#[test]
fn update_setting_and_clearing_one_key_is_invalid() {
    let (_d, s) = open();
    s.insert(&new(A, Some("a"), &[("team", "x")]), 1.0).unwrap();
    let before = s.resolve(A).unwrap();
    for (set, clear) in [
        (labels(&[("k", "v")]), vec!["k".to_string()]),
        (labels(&[("team", "y")]), vec![" team ".to_string()]),
    ] {
        let err = s
            .update_metadata("a", NameChange::Set("z".into()), set, clear, 50.0)
            .unwrap_err();
        assert!(
            matches!(
                &err,
                StoreError::Invalid {
                    field: "labels",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("cannot be both set and cleared"));
    }
    assert_eq!(s.resolve(A).unwrap(), before);
}

#[test]
fn update_with_invalid_input_writes_nothing() {
    let (_d, s) = open();
    s.insert(&new(A, Some("a"), &[("team", "x")]), 1.0).unwrap();
    let before = s.resolve(A).unwrap();
    let cases: Vec<(NameChange, BTreeMap<String, String>, Vec<String>)> = vec![
        (NameChange::Set("".into()), labels(&[("ok", "v")]), vec![]),
        (
            NameChange::Set("0123456789ab".into()),
            BTreeMap::new(),
            vec![],
        ),
        (
            NameChange::Set("x".into()),
            labels(&[("bad key", "v")]),
            vec![],
        ),
        (NameChange::Set("x".into()), labels(&[("k", "")]), vec![]),
        (
            NameChange::Set("x".into()),
            BTreeMap::new(),
            vec!["".into()],
        ),
        (
            NameChange::Set("x".into()),
            BTreeMap::new(),
            vec!["-k".into()],
        ),
    ];
    for (name, set, clear) in cases {
        let err = s.update_metadata(A, name, set, clear, 50.0).unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    }
    assert_eq!(s.resolve(A).unwrap(), before);
}

#[test]
fn update_applies_names_and_labels_and_touches_activity() {
    let (_d, s) = open();
    s.insert(&new(A, Some("a"), &[("team", "x"), ("keep", "1")]), 1.0)
        .unwrap();
    let r = s
        .update_metadata(
            "a",
            NameChange::Set(" b ".into()),
            labels(&[("owner", "me"), ("keep", "1")]),
            vec!["team".into(), "absent".into()],
            60.0,
        )
        .unwrap();
    assert_eq!(r.name.as_deref(), Some("b"));
    assert_eq!(r.labels, labels(&[("keep", "1"), ("owner", "me")]));
    assert_eq!(r.last_activity_at, 60.0);
    assert_eq!(r, s.resolve("b").unwrap());
    assert!(matches!(s.resolve("a"), Err(StoreError::NotFound { .. })));
    // Changing one label value is a change.
    let r = s
        .update_metadata(A, NameChange::Keep, labels(&[("keep", "2")]), vec![], 61.0)
        .unwrap();
    assert_eq!(r.labels["keep"], "2");
    assert_eq!(r.last_activity_at, 61.0);
    // The old name is free again.
    s.insert(&new(B, Some("a"), &[]), 62.0).unwrap();
}

#[test]
fn update_can_clear_the_name() {
    let (_d, s) = open();
    s.insert(&new(A, Some("a"), &[]), 1.0).unwrap();
    let r = s
        .update_metadata("a", NameChange::Clear, BTreeMap::new(), vec![], 70.0)
        .unwrap();
    assert_eq!(r.name, None);
    assert_eq!(r.last_activity_at, 70.0);
    assert!(matches!(s.resolve("a"), Err(StoreError::NotFound { .. })));
    assert_eq!(s.resolve(A).unwrap().name, None);
}

#[test]
fn duplicate_name_on_rename_is_refused() {
    let (_d, s) = open();
    s.insert(&new(A, Some("a"), &[]), 1.0).unwrap();
    s.insert(&new(B, Some("b"), &[("k", "v")]), 2.0).unwrap();
    let before = s.resolve(B).unwrap();
    let err = s
        .update_metadata(
            "b",
            NameChange::Set("a".into()),
            labels(&[("k", "w")]),
            vec![],
            3.0,
        )
        .unwrap_err();
    assert!(matches!(&err, StoreError::DuplicateName { name } if name == "a"));
    assert_eq!(s.resolve(B).unwrap(), before);
}

// ---- last_activity_at -------------------------------------------------------

#[test]
fn mutations_set_last_activity() {
    let (_d, s) = open();
    let r = s.insert(&new(A, Some("a"), &[]), 10.0).unwrap();
    assert_eq!((r.created_at, r.last_activity_at), (10.0, 10.0));
    s.record_command(A, "true", "/", 0, 1, "", "", 20.0)
        .unwrap();
    assert_eq!(activity(&s, A), 20.0);
    s.update_metadata(A, NameChange::Keep, labels(&[("k", "v")]), vec![], 30.0)
        .unwrap();
    assert_eq!(activity(&s, A), 30.0);
    s.set_state(A, WorkspaceState::Started, None, None, Some(40.0))
        .unwrap();
    assert_eq!(activity(&s, A), 40.0);
    s.touch(A, 50.0).unwrap();
    assert_eq!(activity(&s, A), 50.0);
    assert_eq!(s.resolve(A).unwrap().created_at, 10.0);
}

#[test]
fn reads_failed_updates_and_untouched_state_changes_leave_last_activity() {
    let (dir, s) = open();
    s.insert(&new(A, Some("a"), &[("k", "v")]), 10.0).unwrap();
    s.insert(&new(B, Some("b"), &[]), 11.0).unwrap();
    s.record_command(A, "true", "/", 0, 1, "out", "", 12.0)
        .unwrap();
    let watcher = rusqlite::Connection::open(db(dir.path())).unwrap();
    let version = data_version(&watcher);
    s.resolve(A).unwrap();
    s.resolve("a").unwrap();
    s.list(&ListQuery::default()).unwrap();
    s.list(&filtered(&["k=v"])).unwrap();
    s.commands(A).unwrap();
    s.ids_in_state(WorkspaceState::Creating).unwrap();
    s.ids_idle_past_ttl(1e9).unwrap();
    let _ = s.resolve("missing");
    assert_eq!(data_version(&watcher), version, "a read wrote");
    // (The watcher does see writes.)
    s.touch(B, 11.5).unwrap();
    assert_ne!(data_version(&watcher), version);
    for failed in [
        s.update_metadata(A, NameChange::Keep, labels(&[("k", "v")]), vec![], 99.0),
        s.update_metadata(
            A,
            NameChange::Set("b".into()),
            BTreeMap::new(),
            vec![],
            99.0,
        ),
        s.update_metadata(
            A,
            NameChange::Keep,
            labels(&[("k", "w")]),
            vec!["k".into()],
            99.0,
        ),
    ] {
        assert!(failed.is_err());
    }
    assert_eq!(activity(&s, A), 12.0);
    s.set_state(A, WorkspaceState::Stopped, None, None, None)
        .unwrap();
    assert_eq!(activity(&s, A), 12.0);
}

#[test]
fn last_activity_never_moves_backwards() {
    let (_d, s) = open();
    s.insert(&new(A, None, &[]), 100.0).unwrap();
    s.touch(A, 50.0).unwrap();
    s.set_state(A, WorkspaceState::Started, None, None, Some(60.0))
        .unwrap();
    s.record_command(A, "true", "/", 0, 1, "", "", 70.0)
        .unwrap();
    s.update_metadata(
        A,
        NameChange::Set("late".into()),
        BTreeMap::new(),
        vec![],
        80.0,
    )
    .unwrap();
    let r = s.resolve(A).unwrap();
    assert_eq!(r.last_activity_at, 100.0);
    assert_eq!(
        (r.state, r.name.as_deref(), r.command_count),
        (WorkspaceState::Started, Some("late"), 1)
    );
}

// ---- state, history, delete -------------------------------------------------

#[test]
fn set_state_replaces_error_and_runtime_when_given() {
    let (_d, s) = open();
    s.insert(&new(A, None, &[]), 1.0).unwrap();
    s.set_state(
        A,
        WorkspaceState::Started,
        None,
        Some(serde_json::json!({"vm": {"pid": 7}})),
        None,
    )
    .unwrap();
    let r = s.resolve(A).unwrap();
    assert_eq!(r.state, WorkspaceState::Started);
    assert_eq!(r.runtime, serde_json::json!({"vm": {"pid": 7}}));
    s.set_state(
        A,
        WorkspaceState::Stopped,
        Some("guest died".into()),
        None,
        None,
    )
    .unwrap();
    let r = s.resolve(A).unwrap();
    assert_eq!(r.state, WorkspaceState::Stopped);
    assert_eq!(r.last_error.as_deref(), Some("guest died"));
    assert_eq!(r.runtime, serde_json::json!({"vm": {"pid": 7}}));
    s.set_state(
        A,
        WorkspaceState::Started,
        None,
        Some(serde_json::json!({})),
        None,
    )
    .unwrap();
    let r = s.resolve(A).unwrap();
    assert_eq!((r.last_error, r.runtime), (None, serde_json::json!({})));
    assert_eq!(
        serde_json::to_value(WorkspaceState::Failed).unwrap(),
        "failed"
    );
    assert_eq!(
        "stopped".parse::<WorkspaceState>().unwrap(),
        WorkspaceState::Stopped
    );
    assert!("running".parse::<WorkspaceState>().is_err());
}

#[test]
fn history_is_numbered_in_order() {
    let (_d, s) = open();
    s.insert(&new(A, None, &[]), 1.0).unwrap();
    s.insert(&new(B, None, &[]), 1.0).unwrap();
    assert!(s.commands(A).unwrap().is_empty());
    assert_eq!(
        s.record_command(A, "echo 1", "/workspace", 0, 5, "1\n", "", 2.0)
            .unwrap(),
        1
    );
    assert_eq!(
        s.record_command(B, "other", "/", 0, 1, "", "", 2.5)
            .unwrap(),
        1
    );
    assert_eq!(
        s.record_command(A, "false", "/tmp", 1, 6, "", "e", 3.0)
            .unwrap(),
        2
    );
    let h = s.commands(A).unwrap();
    assert_eq!(h.iter().map(|c| c.sequence).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        (
            h[0].command.as_str(),
            h[0].cwd.as_str(),
            h[0].stdout.as_str()
        ),
        ("echo 1", "/workspace", "1\n")
    );
    assert_eq!(
        (h[1].exit_code, h[1].duration_ms, h[1].recorded_at),
        (1, 6, 3.0)
    );
    assert_eq!(h[1].stderr, "e");
    let r = s.resolve(A).unwrap();
    assert_eq!(r.command_count, 2);
    let last = r.last_command.unwrap();
    assert_eq!(
        (
            last.sequence,
            last.command.as_str(),
            last.cwd.as_str(),
            last.exit_code,
            last.duration_ms
        ),
        (2, "false", "/tmp", 1, 6)
    );
    assert!(s.commands("00000000000f").unwrap().is_empty());
}

#[test]
fn delete_cascades_to_labels_and_history() {
    let (dir, s) = open();
    s.insert(&new(A, Some("a"), &[("k", "v"), ("l", "w")]), 1.0)
        .unwrap();
    s.insert(&new(B, Some("b"), &[("k", "v")]), 1.0).unwrap();
    s.record_command(A, "true", "/", 0, 1, "", "", 2.0).unwrap();
    s.record_command(B, "true", "/", 0, 1, "", "", 2.0).unwrap();
    s.delete(A).unwrap();
    let raw = rusqlite::Connection::open(db(dir.path())).unwrap();
    let count = |sql: &str| -> i64 { raw.query_row(sql, [A], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM labels WHERE workspace_id = ?1"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM commands WHERE workspace_id = ?1"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM workspaces WHERE workspace_id = ?1"),
        0
    );
    assert_eq!(names(&s, &ListQuery::default()), ["b"]);
    assert_eq!(s.commands(B).unwrap().len(), 1);
    // The name is free again.
    s.insert(&new(C, Some("a"), &[]), 3.0).unwrap();
    assert!(matches!(s.delete(A), Err(StoreError::NotFound { .. })));
}

// ---- schema -----------------------------------------------------------------

#[test]
fn schema_is_versioned_and_reopening_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let s = Store::open(&path).unwrap();
    s.insert(&new(A, Some("kept"), &[("k", "v")]), 1.0).unwrap();
    assert_eq!(s.schema_version().unwrap(), 4);
    drop(s);
    let s = Store::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), 4);
    let r = s.resolve("kept").unwrap();
    assert_eq!(
        (r.workspace_id.as_str(), r.labels),
        (A, labels(&[("k", "v")]))
    );
    drop(s);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_newer_schema_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    drop(Store::open(&path).unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", 99).unwrap();
    drop(raw);
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(
        err,
        StoreError::SchemaTooNew {
            found: 99,
            known: 4
        }
    ));
    assert!(err.to_string().contains("upgrade pyro"), "{err}");
}

#[test]
fn a_file_that_is_not_a_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    std::fs::write(
        &path,
        b"this is not sqlite, not even close......................",
    )
    .unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Sqlite(_)), "{err:?}");
}

// ---- names never shadow ids -------------------------------------------------

#[test]
fn names_shaped_like_ids_are_refused_in_any_case() {
    let (_d, s) = open();
    s.insert(&new(A, Some("a"), &[]), 1.0).unwrap();
    for name in [
        "00000000000A",
        "00000000000b",
        "ABCDEF012345",
        " aBcDeF012345 ",
    ] {
        match s.insert(&new(B, Some(name), &[]), 2.0) {
            Err(StoreError::Invalid {
                field: "name",
                message,
            }) => {
                assert!(message.contains("looks like a workspace id"), "{message}")
            }
            other => panic!("{name:?}: {other:?}"),
        }
        let err = s
            .update_metadata(
                A,
                NameChange::Set(name.into()),
                BTreeMap::new(),
                vec![],
                3.0,
            )
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid { field: "name", .. }),
            "{err:?}"
        );
    }
    assert_eq!(s.resolve(A).unwrap().name.as_deref(), Some("a"));
}

#[test]
fn an_id_lookup_is_never_shadowed_by_a_name() {
    let (dir, s) = open();
    s.insert(&new(A, Some("a"), &[]), 1.0).unwrap();
    // A name stored before names shaped like ids were refused.
    let raw = rusqlite::Connection::open(db(dir.path())).unwrap();
    raw.execute(
        "UPDATE workspaces SET name = '00000000000B' WHERE workspace_id = ?1",
        [A],
    )
    .unwrap();
    // Looking up that string is an id lookup: nothing has id ...0b yet.
    for what in ["00000000000B", "00000000000b"] {
        assert!(
            matches!(s.resolve(what), Err(StoreError::NotFound { what: w }) if w == what),
            "{what}"
        );
    }
    s.insert(&new(B, Some("b"), &[]), 2.0).unwrap();
    for what in ["00000000000B", "00000000000b", " 00000000000B "] {
        assert_eq!(s.resolve(what).unwrap().workspace_id, B, "{what:?}");
    }
    // Ids resolve in any case; the legacy-named workspace by its id.
    assert_eq!(s.resolve("00000000000A").unwrap().workspace_id, A);
    assert_eq!(s.resolve(A).unwrap().name.as_deref(), Some("00000000000B"));
}

#[test]
fn names_with_invisible_characters_are_refused() {
    let (_d, s) = open();
    s.insert(&new(A, Some("web"), &[]), 1.0).unwrap();
    for (name, code) in [
        ("we\u{200B}b", "U+200B"),
        ("web\u{202E}", "U+202E"),
        ("\u{2066}web", "U+2066"),
        ("w\u{E0062}eb", "U+E0062"),
    ] {
        let err = s.insert(&new(B, Some(name), &[]), 2.0).unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid { field: "name", message } if message.contains(code)),
            "{name:?}: {err:?}"
        );
    }
    assert_eq!(names(&s, &ListQuery::default()), ["web"]);
}

// ---- label limits ------------------------------------------------------------

fn many(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("k{i:03}"), format!("v{i}")))
        .collect()
}

fn as_map(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs.iter().cloned().collect()
}

fn insert_with(s: &Store, id: &str, pairs: &[(String, String)]) -> Result<(), StoreError> {
    let mut req = new(id, None, &[]);
    req.labels = as_map(pairs);
    s.insert(&req, 1.0).map(drop)
}

#[test]
fn labels_are_capped_at_64_per_workspace() {
    let (_d, s) = open();
    let err = insert_with(&s, A, &many(65)).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "labels",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "a workspace can have at most 64 labels; this change would give it 65"
    );
    assert!(matches!(s.resolve(A), Err(StoreError::NotFound { .. })));
    insert_with(&s, A, &many(64)).unwrap();
    assert_eq!(s.resolve(A).unwrap().labels.len(), 64);
    // Adding one more is refused after merging, and writes nothing.
    let before = s.resolve(A).unwrap();
    let err = s
        .update_metadata(
            A,
            NameChange::Set("x".into()),
            labels(&[("extra", "1")]),
            vec![],
            5.0,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "a workspace can have at most 64 labels; this change would give it 65"
    );
    let err = s
        .update_metadata(A, NameChange::Keep, as_map(&many(70)[60..]), vec![], 5.0)
        .unwrap_err();
    assert!(err.to_string().ends_with("would give it 70"), "{err}");
    assert_eq!(s.resolve(A).unwrap(), before);
    // Replacing one label, or changing values, stays within the cap.
    let r = s
        .update_metadata(
            A,
            NameChange::Keep,
            labels(&[("extra", "1"), ("k000", "changed")]),
            vec!["k001".into()],
            6.0,
        )
        .unwrap();
    assert_eq!(r.labels.len(), 64);
    assert_eq!(
        (r.labels["extra"].as_str(), r.labels["k000"].as_str()),
        ("1", "changed")
    );
}

#[test]
fn a_workspace_over_the_label_cap_can_still_shrink_and_be_renamed() {
    let (dir, s) = open();
    insert_with(&s, A, &many(10)).unwrap();
    let raw = rusqlite::Connection::open(db(dir.path())).unwrap();
    for (k, v) in &many(70)[10..] {
        raw.execute(
            "INSERT INTO labels (workspace_id, key, value) VALUES (?1, ?2, ?3)",
            [A, k, v],
        )
        .unwrap();
    }
    s.update_metadata(
        A,
        NameChange::Set("legacy".into()),
        BTreeMap::new(),
        vec![],
        2.0,
    )
    .unwrap();
    s.update_metadata(
        A,
        NameChange::Keep,
        labels(&[("k000", "x")]),
        vec!["k001".into()],
        3.0,
    )
    .unwrap();
    assert_eq!(s.resolve(A).unwrap().labels.len(), 69);
    let err = s
        .update_metadata(A, NameChange::Keep, labels(&[("new", "1")]), vec![], 4.0)
        .unwrap_err();
    assert!(err.to_string().ends_with("would give it 70"), "{err}");
}

#[test]
fn label_keys_equal_once_stripped_are_refused() {
    let (_d, s) = open();
    let err = s
        .insert(&new(A, None, &[("k", "a"), (" k ", "b")]), 1.0)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { field: "label", .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("label 'k' is given twice"),
        "{err}"
    );
    s.insert(&new(A, None, &[("k", "a")]), 1.0).unwrap();
    let err = s
        .update_metadata(
            A,
            NameChange::Keep,
            labels(&[("j", "a"), ("j ", "b")]),
            vec![],
            2.0,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("label 'j' is given twice"),
        "{err}"
    );
}

#[test]
fn label_args_refuse_a_key_given_twice() {
    let args: Vec<String> = ["team=a", "tier=dev", "team=b"].map(String::from).to_vec();
    let err = pyro_store::parse_label_args(&args).unwrap_err();
    assert_eq!(
        err.to_string(),
        "label 'team' is given twice (values 'a' and 'b'); give each key once"
    );
    let args: Vec<String> = ["team=a", "tier=dev"].map(String::from).to_vec();
    assert_eq!(
        pyro_store::parse_label_args(&args).unwrap(),
        labels(&[("team", "a"), ("tier", "dev")])
    );
}

// ---- messages ------------------------------------------------------------------

#[test]
fn error_messages_carry_no_cli_syntax() {
    let (_d, s) = open();
    s.insert(&new(A, Some("a"), &[("k", "v")]), 1.0).unwrap();
    s.insert(&new(B, Some("b"), &[]), 1.0).unwrap();
    let errors = [
        s.resolve("missing").unwrap_err(),
        s.delete(C).unwrap_err(),
        s.insert(&new(C, Some("a"), &[]), 2.0).unwrap_err(),
        s.insert(&new(A, None, &[]), 2.0).unwrap_err(),
        s.insert(&new(C, Some(""), &[]), 2.0).unwrap_err(),
        s.insert(&new(C, None, &[("-k", "v")]), 2.0).unwrap_err(),
        s.update_metadata(A, NameChange::Keep, BTreeMap::new(), vec![], 2.0)
            .unwrap_err(),
        s.update_metadata(
            A,
            NameChange::Keep,
            labels(&[("k", "w")]),
            vec!["k".into()],
            2.0,
        )
        .unwrap_err(),
        pyro_store::parse_label_args(&["k=a".into(), "k=b".into()]).unwrap_err(),
        pyro_store::parse_label_arg("novalue").unwrap_err(),
        "running".parse::<WorkspaceState>().unwrap_err(),
    ];
    for err in errors {
        let msg = err.to_string();
        for cli in ["`", "pyro ", "--"] {
            assert!(!msg.contains(cli), "{msg:?} contains {cli:?}");
        }
    }
}

// ---- file permissions ------------------------------------------------------------

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn companion(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    p.into()
}

#[test]
fn the_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    let s = Store::open(&path).unwrap();
    s.insert(&new(A, None, &[]), 1.0).unwrap();
    for p in [
        path.clone(),
        companion(&path, "-wal"),
        companion(&path, "-shm"),
    ] {
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    drop(s);
    // Files left loose (by an older pyro, or by hand) are tightened.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.query_row("PRAGMA journal_mode", [], |_| Ok(()))
        .unwrap();
    raw.execute("UPDATE workspaces SET name = 'x'", []).unwrap();
    let all = [
        path.clone(),
        companion(&path, "-wal"),
        companion(&path, "-shm"),
    ];
    for p in &all {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let s = Store::open(&path).unwrap();
    for p in &all {
        assert_eq!(mode(p), 0o600, "{}", p.display());
    }
    assert_eq!(s.resolve("x").unwrap().workspace_id, A);
}

/// A database written by a pyro that knew only schema 1 opens with its
/// workspaces intact and gains resets and snapshots.
#[test]
fn schema_1_databases_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE workspaces (
                workspace_id TEXT PRIMARY KEY, name TEXT UNIQUE, environment TEXT NOT NULL,
                environment_version TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('creating','started','stopped','failed')),
                vcpu_count INTEGER NOT NULL, mem_mib INTEGER NOT NULL, ttl_seconds INTEGER,
                network_policy TEXT NOT NULL, created_at REAL NOT NULL,
                last_activity_at REAL NOT NULL, command_count INTEGER NOT NULL DEFAULT 0,
                last_command TEXT, last_error TEXT, runtime TEXT NOT NULL DEFAULT '{}',
                seed TEXT NOT NULL DEFAULT '{}');
             CREATE INDEX workspaces_by_activity ON workspaces
                (last_activity_at DESC, created_at DESC, workspace_id);
             CREATE TABLE labels (workspace_id TEXT NOT NULL REFERENCES workspaces(workspace_id)
                ON DELETE CASCADE, key TEXT NOT NULL, value TEXT NOT NULL,
                PRIMARY KEY (workspace_id, key));
             CREATE INDEX labels_by_key_value ON labels (key, value);
             CREATE TABLE commands (workspace_id TEXT NOT NULL REFERENCES
                workspaces(workspace_id) ON DELETE CASCADE, sequence INTEGER NOT NULL,
                command TEXT NOT NULL, cwd TEXT NOT NULL, exit_code INTEGER NOT NULL,
                duration_ms INTEGER NOT NULL, stdout TEXT NOT NULL, stderr TEXT NOT NULL,
                recorded_at REAL NOT NULL, PRIMARY KEY (workspace_id, sequence));
             INSERT INTO workspaces (workspace_id, name, environment, environment_version,
                state, vcpu_count, mem_mib, network_policy, created_at, last_activity_at)
                VALUES ('0123456789ab', 'old', 'debian:12', '1', 'stopped', 1, 512, 'off',
                1.0, 2.0);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), 4);
    let r = s.resolve("old").unwrap();
    assert_eq!((r.reset_count, r.last_reset_at), (0, None));
    assert!(s.snapshots("0123456789ab").unwrap().is_empty());
}

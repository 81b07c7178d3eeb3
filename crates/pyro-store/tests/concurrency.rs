//! Several OS processes writing one store at once. Each test re-executes
//! this test binary to run only itself with `PYRO_STORE_CHILD` set; the
//! children wait for a start file so they really overlap.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{db, labels, new, open};
use pyro_store::{ListQuery, NameChange, Store};

const PROCESSES: usize = 8;

/// In a child: `(database, child number)`.
fn child() -> Option<(PathBuf, usize)> {
    let db = std::env::var_os("PYRO_STORE_CHILD")?;
    let n = std::env::var("PYRO_STORE_CHILD_N").ok()?.parse().ok()?;
    let db = PathBuf::from(db);
    let go = db.with_extension("go");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !go.exists() {
        assert!(Instant::now() < deadline, "never told to start");
        std::thread::sleep(Duration::from_millis(1));
    }
    Some((db, n))
}

/// Runs `test` in `PROCESSES` children against `db`, all at once.
fn run_children(test: &str, db: &Path) {
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|n| {
            Command::new(&exe)
                .args(["--exact", test, "--nocapture", "--test-threads", "1"])
                .env("PYRO_STORE_CHILD", db)
                .env("PYRO_STORE_CHILD_N", n.to_string())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(db.with_extension("go"), b"").unwrap();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a child failed");
    }
}

/// Labels each process adds: together exactly the per-workspace cap.
const LABELS_EACH: usize = pyro_store::MAX_LABELS / PROCESSES;

/// 8 processes add 8 labels each to one workspace at once: none is lost.
#[test]
fn concurrent_label_updates_lose_nothing() {
    if let Some((db, me)) = child() {
        let s = Store::open(&db).unwrap();
        for i in 0..LABELS_EACH {
            let set = labels(&[(&format!("p{me}-{i}"), "v")]);
            s.update_metadata("shared", NameChange::Keep, set, vec![], 1.0 + i as f64)
                .unwrap();
        }
        return;
    }
    let (dir, s) = open();
    s.insert(&new("00000000000a", Some("shared"), &[]), 1.0)
        .unwrap();
    run_children("concurrent_label_updates_lose_nothing", &db(dir.path()));
    let r = s.resolve("shared").unwrap();
    assert_eq!(r.labels.len(), PROCESSES * LABELS_EACH);
    for me in 0..PROCESSES {
        for i in 0..LABELS_EACH {
            assert_eq!(r.labels[&format!("p{me}-{i}")], "v");
        }
    }
    assert_eq!(r.last_activity_at, LABELS_EACH as f64);
}

/// 8 processes record 10 commands each on one workspace: sequences 1..=80,
/// each once, and a matching command count.
#[test]
fn concurrent_commands_get_distinct_sequences() {
    if let Some((db, me)) = child() {
        let s = Store::open(&db).unwrap();
        for i in 0..10 {
            let cmd = format!("p{me} c{i}");
            s.record_command("00000000000a", &cmd, "/", 0, 1, "", "", 2.0)
                .unwrap();
        }
        return;
    }
    let (dir, s) = open();
    s.insert(&new("00000000000a", None, &[]), 1.0).unwrap();
    run_children(
        "concurrent_commands_get_distinct_sequences",
        &db(dir.path()),
    );
    let history = s.commands("00000000000a").unwrap();
    let n = PROCESSES as u64 * 10;
    assert_eq!(
        history.iter().map(|c| c.sequence).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );
    let commands: BTreeSet<_> = history.iter().map(|c| c.command.clone()).collect();
    assert_eq!(commands.len() as u64, n);
    let r = s.resolve("00000000000a").unwrap();
    assert_eq!(r.command_count, n);
    assert_eq!(r.last_command.unwrap().sequence, n);
}

/// 8 processes open a database file nobody has created yet, at once, and
/// each inserts workspaces: the schema is created once and nothing is lost.
#[test]
fn concurrent_first_opens_migrate_once() {
    if let Some((db, me)) = child() {
        let s = Store::open(&db).unwrap();
        for i in 0..5 {
            let id = format!("{:012x}", me * 100 + i);
            s.insert(&new(&id, Some(&format!("p{me}-{i}")), &[]), 1.0)
                .unwrap();
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    run_children("concurrent_first_opens_migrate_once", &path);
    let s = Store::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), 4);
    assert_eq!(s.list(&ListQuery::default()).unwrap().len(), PROCESSES * 5);
}

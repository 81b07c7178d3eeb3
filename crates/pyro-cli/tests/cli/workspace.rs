//! Persistent workspaces against real guests. Each test boots as few
//! guests as its checks need.

use std::process::Stdio;
use std::time::Duration;

use crate::util::{ensure_env, TestEnv, ENV};

fn ids(v: &serde_json::Value) -> Vec<String> {
    v["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w["name"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| w["workspace_id"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The flow: create → list → update → exec → list (on top) → delete,
/// in text and JSON.
#[test]
fn create_list_update_exec_delete_by_name() {
    ensure_env();
    let env = TestEnv::new();
    let run = env.run(&[
        "workspace",
        "create",
        ENV,
        "--name",
        "a",
        "--label",
        "team=x",
        "--json",
    ]);
    run.assert_code(0);
    let created = run.json();
    assert_eq!(created["name"], "a");
    assert_eq!(created["labels"]["team"], "x");
    assert_eq!(created["state"], "started");
    let id = created["workspace_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 12);
    assert_eq!(created["last_activity_at"], created["created_at"]);

    // A second, newer workspace without a name.
    let other = env.run(&["workspace", "create", ENV, "--id-only"]);
    other.assert_code(0);
    let other_id = other.stdout().trim().to_string();
    assert_eq!(other_id.len(), 12, "{}", other.context());

    let list = env.run(&["workspace", "list", "--json"]);
    list.assert_code(0);
    assert_eq!(ids(&list.json()), [other_id.clone(), "a".to_string()]);
    let text = env.run(&["workspace", "list"]);
    let first = text.stdout().lines().next().unwrap().to_string();
    assert!(
        first.starts_with(&format!(
            "[workspace] workspace_id={other_id} state=started"
        )),
        "{}",
        text.context()
    );
    assert!(
        text.stdout()
            .contains("name=\"a\" state=started environment=debian:12 labels=team=x"),
        "{}",
        text.context()
    );

    // status never touches activity.
    let before = env.run(&["workspace", "status", "a", "--json"]).json()["last_activity_at"]
        .as_f64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let after = env.run(&["workspace", "status", &id, "--json"]).json()["last_activity_at"]
        .as_f64()
        .unwrap();
    assert_eq!(before, after);

    let upd = env.run(&["workspace", "update", "a", "--label", "owner=me"]);
    upd.assert_code(0);
    assert!(
        upd.stdout().contains("Labels: owner=me, team=x"),
        "{}",
        upd.context()
    );
    // Nothing to change is an error and changes nothing.
    let same = env.run(&["workspace", "update", "a", "--label", "owner=me", "--json"]);
    same.assert_code(2);
    assert_eq!(same.json()["ok"], false);
    let both = env.run(&[
        "workspace",
        "update",
        "a",
        "--label",
        "k=v",
        "--clear-label",
        "k",
    ]);
    both.assert_code(2);
    assert!(both.stderr().starts_with("error: "), "{}", both.context());

    let exec = env.run(&[
        "workspace",
        "exec",
        "a",
        "--",
        "sh",
        "-c",
        "pwd; echo err >&2; exit 3",
    ]);
    exec.assert_code(3);
    assert_eq!(exec.stdout(), "/workspace\n", "{}", exec.context());
    assert!(exec.stderr().contains("err\n"), "{}", exec.context());
    assert!(
        exec.stderr().contains(&format!(
            "[workspace-exec] workspace_id={id} sequence=1 cwd=/workspace"
        )),
        "{}",
        exec.context()
    );
    let exec = env.run(&["workspace", "exec", &id, "--json", "--", "true"]);
    exec.assert_code(0);
    assert_eq!(exec.json()["sequence"], 2);

    let list = env.run(&["workspace", "list", "--json"]).json();
    assert_eq!(
        ids(&list),
        ["a".to_string(), other_id.clone()],
        "exec moves a workspace to the top"
    );
    assert_eq!(list["workspaces"][0]["command_count"], 2);
    let filtered = env
        .run(&["workspace", "list", "--label", "team=x", "--json"])
        .json();
    assert_eq!(ids(&filtered), ["a".to_string()]);

    let logs = env.run(&["workspace", "logs", "a"]);
    assert!(
        logs.stdout().contains("#1 exit_code=3"),
        "{}",
        logs.context()
    );
    assert!(
        logs.stdout()
            .contains("$ sh -c 'pwd; echo err >&2; exit 3'"),
        "{}",
        logs.context()
    );

    let del = env.run(&["workspace", "delete", "a"]);
    del.assert_code(0);
    assert_eq!(del.stdout(), format!("Deleted workspace: {id}\n"));
    let del = env.run(&["workspace", "delete", &other_id, "--json"]);
    assert_eq!(del.json()["deleted"], true);
    let gone = env.run(&["workspace", "status", "a"]);
    gone.assert_code(2);
    assert!(
        gone.stderr().contains("does not exist"),
        "{}",
        gone.context()
    );
    assert_eq!(env.run(&["workspace", "list"]).stdout(), "No workspaces.\n");
    env.assert_nothing_left();
}

#[test]
fn stop_start_keeps_files_and_stopped_workspaces_refuse_exec() {
    ensure_env();
    let env = TestEnv::new();
    let seed = tempfile::tempdir().unwrap();
    std::fs::create_dir(seed.path().join("src")).unwrap();
    std::fs::write(seed.path().join("src/app.sh"), "echo seeded\n").unwrap();
    std::os::unix::fs::symlink("src/app.sh", seed.path().join("run")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        seed.path().join("src/app.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let seed_arg = seed.path().to_string_lossy().into_owned();
    let created = env.run(&[
        "workspace",
        "create",
        ENV,
        "--name",
        "keep",
        "--seed-path",
        &seed_arg,
    ]);
    created.assert_code(0);
    assert!(
        created
            .stdout()
            .contains(&format!("Workspace seed: directory from {seed_arg}")),
        "{}",
        created.context()
    );
    let run = env.run(&["workspace", "exec", "keep", "--", "./run"]);
    run.assert_code(0);
    assert_eq!(run.stdout(), "seeded\n", "{}", run.context());
    env.run(&[
        "workspace",
        "exec",
        "keep",
        "--",
        "sh",
        "-c",
        "echo kept > /workspace/f; sync",
    ])
    .assert_code(0);
    let stop = env.run(&["workspace", "stop", "keep"]);
    stop.assert_code(0);
    assert!(
        stop.stdout().contains("State: stopped"),
        "{}",
        stop.context()
    );
    let refused = env.run(&["workspace", "exec", "keep", "--", "true"]);
    refused.assert_code(2);
    assert!(
        refused.stderr().contains("must be started"),
        "{}",
        refused.context()
    );
    // Metadata changes work while stopped.
    env.run(&["workspace", "update", "keep", "--label", "parked=yes"])
        .assert_code(0);
    let start = env.run(&["workspace", "start", "keep", "--json"]);
    start.assert_code(0);
    assert_eq!(start.json()["state"], "started");
    let cat = env.run(&["workspace", "exec", "keep", "--", "cat", "/workspace/f"]);
    cat.assert_code(0);
    assert_eq!(cat.stdout(), "kept\n", "{}", cat.context());
    env.run(&["workspace", "delete", "keep"]).assert_code(0);
    env.assert_nothing_left();
}

#[test]
fn bad_input_is_refused_before_anything_starts() {
    ensure_env();
    let env = TestEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("with-fifo");
    std::fs::create_dir(&fifo).unwrap();
    let fifo_path = std::ffi::CString::new(fifo.join("p").to_string_lossy().as_bytes()).unwrap();
    // SAFETY: valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo_path.as_ptr(), 0o644) }, 0);
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "x").unwrap();
    let corrupt = dir.path().join("broken.tar.gz");
    std::fs::write(&corrupt, [0x1f, 0x8b, 0, 1, 2, 3]).unwrap();
    let missing = dir.path().join("missing");
    let (fifo, text, corrupt, missing) = (
        fifo.to_string_lossy().into_owned(),
        text.to_string_lossy().into_owned(),
        corrupt.to_string_lossy().into_owned(),
        missing.to_string_lossy().into_owned(),
    );
    for (args, needle) in [
        (
            vec!["workspace", "create", ENV, "--seed-path", &fifo],
            "special files",
        ),
        (
            vec!["workspace", "create", ENV, "--seed-path", &text],
            "must be a directory or a .tar",
        ),
        (
            vec!["workspace", "create", ENV, "--seed-path", &corrupt],
            "corrupt",
        ),
        (
            vec!["workspace", "create", ENV, "--seed-path", &missing],
            "does not exist",
        ),
        (vec!["workspace", "create", ENV, "--name", ""], "name"),
        (
            vec!["workspace", "create", ENV, "--name", "0123456789ab"],
            "name",
        ),
        (
            vec!["workspace", "create", ENV, "--label", "novalue"],
            "KEY=VALUE",
        ),
        (
            vec!["workspace", "create", ENV, "--label", "bad key=v"],
            "label",
        ),
        (vec!["workspace", "create", "nope"], "unknown environment"),
        (
            vec!["workspace", "create", ENV, "--ttl-seconds", "5"],
            "ttl_seconds",
        ),
        (vec!["workspace", "status", "missing"], "does not exist"),
        (vec!["workspace", "list", "--state", "sleeping"], "state"),
    ] {
        let run = env.run(&args);
        run.assert_code(2);
        assert!(run.stderr().starts_with("error: "), "{}", run.context());
        assert!(
            run.stderr().contains(needle),
            "expected '{needle}'{}",
            run.context()
        );
        assert_eq!(
            run.stderr()
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count(),
            1
        );
    }
    assert_eq!(env.run(&["workspace", "list", "--json"]).json()["count"], 0);
    env.assert_nothing_left();
}

#[test]
fn duplicate_names_are_refused() {
    ensure_env();
    let env = TestEnv::new();
    env.run(&["workspace", "create", ENV, "--name", "dup"])
        .assert_code(0);
    let again = env.run(&["workspace", "create", ENV, "--name", "dup", "--json"]);
    again.assert_code(2);
    assert_eq!(again.json()["error"]["code"], "conflict");
    assert_eq!(env.run(&["workspace", "list", "--json"]).json()["count"], 1);
    env.run(&["workspace", "delete", "dup"]).assert_code(0);
    env.assert_nothing_left();
}

#[test]
fn killed_create_and_dead_guests_are_reported_and_collected() {
    ensure_env();
    let env = TestEnv::new();
    // kill -9 pyro while it boots the guest.
    let mut child = env
        .cmd(&["workspace", "create", ENV, "--name", "doomed"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let list = env.run(&["workspace", "list", "--json"]).json();
        if list["count"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "create never recorded the workspace"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let list = env.run(&["workspace", "list", "--json"]).json();
    let state = list["workspaces"][0]["state"].as_str().unwrap().to_string();
    // Either the boot finished before the kill (started), or it shows failed.
    assert!(state == "failed" || state == "started", "state {state}");
    env.run(&["workspace", "delete", "doomed"]).assert_code(0);

    // A guest that dies on its own is shown as stopped.
    env.run(&["workspace", "create", ENV, "--name", "mortal"])
        .assert_code(0);
    let _ = env.run(&[
        "workspace",
        "exec",
        "mortal",
        "--",
        "sh",
        "-c",
        "echo o > /proc/sysrq-trigger",
    ]);
    std::thread::sleep(Duration::from_secs(1));
    let status = env.run(&["workspace", "status", "mortal", "--json"]).json();
    assert_eq!(status["state"], "stopped", "{status}");
    let gc = env.run(&["workspace", "gc", "--json"]);
    gc.assert_code(0);
    env.run(&["workspace", "delete", "mortal"]).assert_code(0);
    env.assert_nothing_left();
}

/// An idle workspace is stopped (never deleted) and resumes with its files.
#[test]
fn idle_ttl_stops_but_keeps_the_workspace() {
    ensure_env();
    let env = TestEnv::new();
    env.run(&[
        "workspace",
        "create",
        ENV,
        "--name",
        "idle",
        "--ttl-seconds",
        "60",
    ])
    .assert_code(0);
    env.run(&[
        "workspace",
        "exec",
        "idle",
        "--",
        "sh",
        "-c",
        "echo still-here > /workspace/f; sync",
    ])
    .assert_code(0);
    // Pretend the last activity was long ago.
    let db = rusqlite::Connection::open(env.state_dir().join("pyro.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute(
        "UPDATE workspaces SET last_activity_at = last_activity_at - 3600 WHERE name = 'idle'",
        [],
    )
    .unwrap();
    drop(db);
    let gc = env.run(&["workspace", "gc", "--json"]);
    gc.assert_code(0);
    assert_eq!(
        gc.json()["idle_stopped"].as_array().unwrap().len(),
        1,
        "{}",
        gc.context()
    );
    let status = env.run(&["workspace", "status", "idle", "--json"]).json();
    assert_eq!(status["state"], "stopped");
    assert!(
        status["last_error"].as_str().unwrap().contains("idle"),
        "{status}"
    );
    env.run(&["workspace", "start", "idle"]).assert_code(0);
    let cat = env.run(&["workspace", "exec", "idle", "--", "cat", "/workspace/f"]);
    assert_eq!(cat.stdout(), "still-here\n", "{}", cat.context());
    env.run(&["workspace", "delete", "idle"]).assert_code(0);
    env.assert_nothing_left();
}

//! Shells against a real guest: state across calls, cursors, plain
//! rendering, signals, redaction, close.

use crate::util::{ensure_env, TestEnv, ENV};

#[test]
fn a_shell_keeps_state_across_calls() {
    ensure_env();
    let env = TestEnv::new();
    env.run(&[
        "workspace",
        "create",
        ENV,
        "--name",
        "sh",
        "--secret",
        "TOK=shell-s3cret",
    ])
    .assert_code(0);
    let open = env.run(&[
        "workspace",
        "shell",
        "open",
        "sh",
        "--secret-env",
        "TOK",
        "--json",
    ]);
    open.assert_code(0);
    let shell = open.json();
    assert_eq!(shell["state"], "running");
    assert_eq!(
        (shell["cols"].clone(), shell["rows"].clone()),
        (120.into(), 30.into())
    );
    let id = shell["shell_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 12);

    let write = |input: &str| {
        env.run(&["workspace", "shell", "write", "sh", &id, "--input", input])
            .assert_code(0);
    };
    let read = |cursor: u64| {
        let run = env.run(&[
            "workspace",
            "shell",
            "read",
            "sh",
            &id,
            "--cursor",
            &cursor.to_string(),
            "--plain",
            "--wait-for-idle-ms",
            "700",
            "--json",
        ]);
        run.assert_code(0);
        run.json()
    };
    write("cd /tmp && export X=21");
    write("echo \"v=$((X*2)) in $(pwd)\"; echo \"$TOK\"");
    let first = read(0);
    let out = first["output"].as_str().unwrap();
    assert!(out.contains("v=42 in /tmp"), "{out}");
    assert!(
        out.contains("[REDACTED]") && !out.contains("shell-s3cret"),
        "{out}"
    );
    assert!(
        !out.contains('\x1b'),
        "plain output has no escapes: {out:?}"
    );
    let next = first["next_cursor"].as_u64().unwrap();
    assert!(next > 0);

    // Reading on from the cursor gives only what is new.
    write("sleep 300");
    env.run(&["workspace", "shell", "signal", "sh", &id, "--signal", "INT"])
        .assert_code(0);
    write("echo after-interrupt");
    let second = read(next);
    let out = second["output"].as_str().unwrap();
    assert!(out.contains("after-interrupt"), "{out}");
    assert!(!out.contains("v=42"), "old output came back: {out}");
    assert_eq!(second["truncated"], false);

    // Activity: write counts, read does not.
    let at = || {
        env.run(&["workspace", "status", "sh", "--json"]).json()["last_activity_at"]
            .as_f64()
            .unwrap()
    };
    let before = at();
    read(0);
    assert_eq!(at(), before);

    let closed = env.run(&["workspace", "shell", "close", "sh", &id, "--json"]);
    closed.assert_code(0);
    assert_eq!(closed.json()["closed"], true);
    let gone = env.run(&["workspace", "shell", "read", "sh", &id, "--json"]);
    assert_eq!(gone.json()["error"]["code"], "not_found");
    assert!(gone
        .stdout()
        .contains(&format!("shell '{id}' does not exist")));
    let bad = env.run(&["workspace", "shell", "open", "sh", "--cols", "0", "--json"]);
    assert_eq!(bad.json()["error"]["code"], "invalid_argument");
    env.run(&["workspace", "delete", "sh"]).assert_code(0);
    env.assert_nothing_left();
}

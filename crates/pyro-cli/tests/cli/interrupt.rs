//! SIGINT/SIGTERM while a workspace command runs: the message says what
//! really happened, and what it says is true.

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use crate::util::{ensure_env, signal, wait_until, TestEnv, ENV};

#[test]
fn interrupted_create_exec_and_a_delete_racing_exec_tell_the_truth() {
    ensure_env();
    let env = TestEnv::new();

    // SIGTERM during create: the half-made workspace is removed, as said.
    let child = env
        .cmd(&["workspace", "create", ENV, "--name", "half", "--json"])
        // A cold boot: a create from a template ends before the signal.
        .env("PYRO_TEMPLATES", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(60), "the record appears", || {
        env.run(&["workspace", "list", "--json"]).json()["count"] == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    signal(child.id(), libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "interrupted", "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("was removed"),
        "{doc}"
    );
    assert_eq!(env.run(&["workspace", "list", "--json"]).json()["count"], 0);
    env.assert_nothing_left();

    // SIGINT during exec: the command stops, the workspace keeps running.
    env.run(&["workspace", "create", ENV, "--name", "w"])
        .assert_code(0);
    let mut child = env
        .cmd(&[
            "workspace",
            "exec",
            "w",
            "--",
            "sh",
            "-c",
            "echo go; sleep 60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 3];
    child.stdout.take().unwrap().read_exact(&mut buf).unwrap();
    signal(child.id(), libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("keeps running"), "{stderr}");
    assert!(!stderr.contains("files removed"), "{stderr}");
    let status = env.run(&["workspace", "status", "w", "--json"]).json();
    assert_eq!(status["state"], "started", "{status}");
    env.run(&["workspace", "exec", "w", "--", "true"])
        .assert_code(0);

    // delete racing exec: the exec user hears about the delete, not about
    // memory.
    let child = env
        .cmd(&["workspace", "exec", "w", "--json", "--", "sleep", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    env.run(&["workspace", "delete", "w"]).assert_code(0);
    let out = child.wait_with_output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = doc["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("deleted while the command was running"),
        "{doc}"
    );
    assert!(doc["error"].get("hint").is_none(), "{doc}");
    env.assert_nothing_left();
}

//! Records tell the truth about guests that died behind pyro's back, and
//! guest processes can be stopped politely.

use std::time::Duration;

use crate::util::{ensure_env, signal, wait_until, TestEnv, ENV};

fn names(v: &serde_json::Value) -> Vec<String> {
    v["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_string())
        .collect()
}

/// Gone or a zombie. A killed process loses its command line while it is
/// still tearing down its memory, before it has really exited.
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start())
                .unwrap_or("");
            state.starts_with('Z') || state.starts_with('X')
        }
    }
}

fn id_of(env: &TestEnv, name: &str) -> String {
    let run = env.run(&["workspace", "status", name, "--json"]);
    run.assert_code(0);
    run.json()["workspace_id"].as_str().unwrap().to_string()
}

#[test]
fn list_state_and_limit_are_exact_when_guests_die_behind_pyros_back() {
    ensure_env();
    let env = TestEnv::new();
    for name in ["dead", "alive"] {
        env.run(&["workspace", "create", ENV, "--name", name])
            .assert_code(0);
    }
    let dead = id_of(&env, "dead");
    // kill -9 the VMM only; the sidecar is left behind.
    let qemu = env
        .guest_pids(&dead)
        .into_iter()
        .find(|(_, p)| p.ends_with("qemu-system-x86_64"))
        .unwrap()
        .0;
    signal(qemu, libc::SIGKILL);
    wait_until(Duration::from_secs(20), "QEMU exits", || exited(qemu));

    let stopped = env.run(&["workspace", "list", "--state", "stopped", "--json"]);
    stopped.assert_code(0);
    assert_eq!(names(&stopped.json()), ["dead"], "{}", stopped.context());
    let w = &stopped.json()["workspaces"][0];
    assert_eq!(w["expires_at"], serde_json::Value::Null, "{w}");
    let started = env.run(&[
        "workspace",
        "list",
        "--state",
        "started",
        "--limit",
        "1",
        "--json",
    ]);
    assert_eq!(names(&started.json()), ["alive"], "{}", started.context());
    assert_eq!(started.json()["count"], 1);
    // Reconciling killed the orphaned sidecar too.
    assert!(
        env.guest_pids(&dead).is_empty(),
        "{:?}",
        env.guest_pids(&dead)
    );
    let status = env.run(&["workspace", "status", "dead", "--json"]).json();
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("QEMU exited"),
        "{status}"
    );
    env.assert_records_agree();

    // The sidecar dies, QEMU lives: unreachable, so stopped, and QEMU goes.
    let alive = id_of(&env, "alive");
    let sidecar = env
        .guest_pids(&alive)
        .into_iter()
        .find(|(_, p)| p.ends_with("vhost-device-vsock"))
        .unwrap()
        .0;
    signal(sidecar, libc::SIGKILL);
    wait_until(Duration::from_secs(20), "the sidecar exits", || {
        exited(sidecar)
    });
    let status = env.run(&["workspace", "status", "alive", "--json"]).json();
    assert_eq!(status["state"], "stopped", "{status}");
    assert!(
        status["last_error"].as_str().unwrap().contains("sidecar"),
        "{status}"
    );
    assert!(env.guest_pids(&alive).is_empty());
    env.assert_records_agree();

    // Started again, its processes take a polite SIGTERM: nothing blocked.
    env.run(&["workspace", "start", "alive"]).assert_code(0);
    for (pid, program) in env.guest_pids(&alive) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let blocked = status
            .lines()
            .find(|l| l.starts_with("SigBlk:"))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string();
        // QEMU blocks a few signals of its own (SIGBUS, SIGALRM, SIGIO);
        // SIGHUP, SIGINT and SIGTERM must reach it.
        let polite =
            (1u64 << (libc::SIGHUP - 1)) | (1 << (libc::SIGINT - 1)) | (1 << (libc::SIGTERM - 1));
        assert_eq!(
            u64::from_str_radix(&blocked, 16).unwrap() & polite,
            0,
            "{program} starts with SIGHUP/SIGINT/SIGTERM blocked ({blocked})"
        );
    }
    let qemu = env
        .guest_pids(&alive)
        .into_iter()
        .find(|(_, p)| p.ends_with("qemu-system-x86_64"))
        .unwrap()
        .0;
    signal(qemu, libc::SIGTERM);
    wait_until(Duration::from_secs(30), "QEMU obeys SIGTERM", || {
        exited(qemu)
    });
    let status = env.run(&["workspace", "status", "alive", "--json"]).json();
    assert_eq!(status["state"], "stopped", "{status}");
    env.assert_records_agree();

    // A missing disk is refused at start, never silently replaced.
    std::fs::remove_file(
        env.state_dir()
            .join(format!("workspaces/{alive}/disk.qcow2")),
    )
    .unwrap();
    let start = env.run(&["workspace", "start", "alive", "--json"]);
    start.assert_code(2);
    assert_eq!(
        start.json()["error"]["code"],
        "invalid_state",
        "{}",
        start.context()
    );
    assert!(
        start.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disk"),
        "{}",
        start.context()
    );
    assert!(env.guest_pids(&alive).is_empty());
    for name in ["dead", "alive"] {
        env.run(&["workspace", "delete", name]).assert_code(0);
    }
    env.assert_nothing_left();
}

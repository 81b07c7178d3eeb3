//! Lifecycle commands racing each other, and pyro killed with SIGKILL at
//! every phase: afterwards every record agrees with the processes on the
//! host, no guest runs that no record owns, and the workspace still works.

use std::process::{Child, Stdio};
use std::time::Duration;

use crate::util::{ensure_env, TestEnv, ENV};

fn spawn(env: &TestEnv, args: &[&str]) -> Child {
    env.cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn state(env: &TestEnv, name: &str) -> String {
    let run = env.run(&["workspace", "status", name, "--json"]);
    run.assert_code(0);
    run.json()["state"].as_str().unwrap().to_string()
}

/// `stop` issued while `start` (or `create`) is booting: stop waits for the
/// boot and stops what it made. Several delays cover every phase.
#[test]
fn stop_racing_start_and_create_never_orphans_a_guest() {
    ensure_env();
    let env = TestEnv::new();
    env.run(&["workspace", "create", ENV, "--name", "w"])
        .assert_code(0);
    env.run(&["workspace", "stop", "w"]).assert_code(0);
    for delay_ms in [0u64, 30, 200, 1000, 3000] {
        let start = spawn(&env, &["workspace", "start", "w", "--json"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let stop = env.run(&["workspace", "stop", "w", "--json"]);
        stop.assert_code(0);
        let started = start.wait_with_output().unwrap();
        assert!(
            started.status.success(),
            "start failed at delay {delay_ms}: {}",
            String::from_utf8_lossy(&started.stdout)
        );
        // Whichever order they ran in, the record and the host agree.
        let now = state(&env, "w");
        assert!(
            now == "stopped" || now == "started",
            "delay {delay_ms}: {now}"
        );
        env.assert_records_agree();
        if now == "started" {
            env.run(&["workspace", "stop", "w"]).assert_code(0);
        }
    }
    // Every later start still works (no stale QEMU holds the disk).
    env.run(&["workspace", "start", "w"]).assert_code(0);
    let exec = env.run(&["workspace", "exec", "w", "--", "true"]);
    exec.assert_code(0);

    for (i, delay_ms) in [50u64, 700, 2500].into_iter().enumerate() {
        let name = format!("c{i}");
        let create = spawn(&env, &["workspace", "create", ENV, "--name", &name]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        // The record may not exist yet at the earliest delays.
        let stop = env.run(&["workspace", "stop", &name, "--json"]);
        assert!(
            matches!(stop.code(), Some(0) | Some(2)),
            "{}",
            stop.context()
        );
        let created = create.wait_with_output().unwrap();
        assert!(created.status.success(), "create {name} failed");
        env.assert_records_agree();
        env.run(&["workspace", "delete", &name]).assert_code(0);
    }
    env.run(&["workspace", "delete", "w"]).assert_code(0);
    env.assert_nothing_left();
}

/// `kill -9` of pyro at each phase of `create` and of `start`.
#[test]
fn sigkill_at_every_phase_of_create_and_start_is_reclaimed() {
    ensure_env();
    let env = TestEnv::new();
    for (i, delay_ms) in [20u64, 150, 600, 1500, 3500].into_iter().enumerate() {
        let name = format!("k{i}");
        let mut create = spawn(&env, &["workspace", "create", ENV, "--name", &name]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        create.kill().unwrap();
        create.wait().unwrap();
        // Reading the list reconciles; gc reclaims what no record owns.
        env.assert_records_agree();
        let gc = env.run(&["workspace", "gc", "--json"]);
        gc.assert_code(0);
        env.assert_records_agree();
        let status = env.run(&["workspace", "status", &name, "--json"]);
        if status.code() == Some(0) {
            let s = status.json()["state"].as_str().unwrap().to_string();
            assert!(s == "failed" || s == "started", "{name}: {s}");
            env.run(&["workspace", "delete", &name]).assert_code(0);
        }
        env.assert_records_agree();
    }
    env.assert_nothing_left();

    env.run(&["workspace", "create", ENV, "--name", "s"])
        .assert_code(0);
    env.run(&[
        "workspace",
        "exec",
        "s",
        "--",
        "sh",
        "-c",
        "echo kept > /workspace/f; sync",
    ])
    .assert_code(0);
    env.run(&["workspace", "stop", "s"]).assert_code(0);
    for delay_ms in [20u64, 300, 1200, 3000] {
        let mut start = spawn(&env, &["workspace", "start", "s"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        start.kill().unwrap();
        start.wait().unwrap();
        env.assert_records_agree();
        let s = state(&env, "s");
        assert!(s == "stopped" || s == "started", "delay {delay_ms}: {s}");
        if s == "stopped" {
            let status = env.run(&["workspace", "status", "s", "--json"]).json();
            // A start cut short says so (unless it never got going).
            if let Some(e) = status["last_error"].as_str() {
                assert!(e.contains("interrupted"), "{status}");
            }
        }
        env.run(&["workspace", "stop", "s"]).assert_code(0);
        env.assert_records_agree();
    }
    env.run(&["workspace", "start", "s"]).assert_code(0);
    let cat = env.run(&["workspace", "exec", "s", "--", "cat", "/workspace/f"]);
    assert_eq!(cat.stdout(), "kept\n", "{}", cat.context());
    env.run(&["workspace", "delete", "s"]).assert_code(0);
    env.assert_nothing_left();
}

/// `reset` killed with SIGKILL at every phase (before, while and after the
/// new guest boots): the workspace ends stopped with its old disk put back,
/// or reset and started; never without its files, never with a stray guest.
#[test]
fn sigkill_at_every_phase_of_reset_loses_nothing() {
    ensure_env();
    let env = TestEnv::new();
    env.run(&["workspace", "create", ENV, "--name", "r"])
        .assert_code(0);
    env.run(&["workspace", "file", "write", "r", "f", "--text", "kept"])
        .assert_code(0);
    env.run(&["workspace", "snapshot", "create", "r", "cp"])
        .assert_code(0);
    for delay_ms in [30u64, 400, 1500, 3500] {
        let mut reset = spawn(&env, &["workspace", "reset", "r", "--snapshot", "cp"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        reset.kill().unwrap();
        reset.wait().unwrap();
        env.assert_records_agree();
        let s = state(&env, "r");
        assert!(s == "stopped" || s == "started", "delay {delay_ms}: {s}");
        if s == "stopped" {
            env.run(&["workspace", "start", "r"]).assert_code(0);
        }
        let read = env.run(&["workspace", "file", "read", "r", "f", "--content-only"]);
        assert_eq!(
            read.stdout(),
            "kept",
            "delay {delay_ms}: {}",
            read.context()
        );
        env.assert_records_agree();
    }
    env.run(&["workspace", "delete", "r"]).assert_code(0);
    env.assert_nothing_left();
}

/// `fork` killed with SIGKILL at every phase (before the copy, while the
/// source's vsock is unplugged, while it is copied, while the fork boots):
/// the source ends started or stopped with its files, the fork started,
/// failed or gone, and no guest runs that no record owns.
#[test]
fn sigkill_at_every_phase_of_fork_loses_nothing() {
    ensure_env();
    let env = TestEnv::new();
    env.run(&["workspace", "create", ENV, "--name", "src"])
        .assert_code(0);
    env.run(&["workspace", "file", "write", "src", "f", "--text", "kept"])
        .assert_code(0);
    for (i, delay_ms) in [30u64, 1500, 3300, 4200].into_iter().enumerate() {
        let name = format!("f{i}");
        let mut fork = spawn(&env, &["workspace", "fork", "src", "--name", &name]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        fork.kill().unwrap();
        fork.wait().unwrap();
        env.assert_records_agree();
        let gc = env.run(&["workspace", "gc", "--json"]);
        gc.assert_code(0);
        env.assert_records_agree();
        let s = state(&env, "src");
        assert!(s == "stopped" || s == "started", "delay {delay_ms}: {s}");
        if s == "stopped" {
            env.run(&["workspace", "start", "src"]).assert_code(0);
        }
        let read = env.run(&["workspace", "file", "read", "src", "f", "--content-only"]);
        assert_eq!(
            read.stdout(),
            "kept",
            "delay {delay_ms}: {}",
            read.context()
        );
        let status = env.run(&["workspace", "status", &name, "--json"]);
        if status.code() == Some(0) {
            let s = status.json()["state"].as_str().unwrap().to_string();
            assert!(s == "failed" || s == "started", "{name}: {s}");
            env.run(&["workspace", "delete", &name]).assert_code(0);
        }
        env.assert_records_agree();
    }
    env.run(&["workspace", "delete", "src"]).assert_code(0);
    env.assert_nothing_left();
}

//! Bad input: one clear line (or the JSON error object), a non-zero exit,
//! and nothing started.

use crate::util::TestEnv;

#[test]
fn unknown_environment_lists_the_valid_names() {
    let env = TestEnv::new();
    let run = env.run(&["run", "ubuntu:24.04", "--", "true"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr(),
        "error: unknown environment 'ubuntu:24.04'; expected one of: debian:12, debian:12-base, debian:12-build\n",
        "{}",
        run.context()
    );
    assert!(run.stdout().is_empty());
    env.assert_nothing_left();
}

#[test]
fn errors_in_json_mode_are_the_error_object() {
    let env = TestEnv::new();
    let run = env.run(&["run", "nope", "--json", "--", "true"]);
    run.assert_code(2);
    let v = run.json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "unknown_environment");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expected one of: debian:12"));
}

#[test]
fn out_of_range_resources_are_refused_before_anything_starts() {
    let env = TestEnv::new();
    let run = env.run(&["run", "debian:12", "--vcpu-count", "9", "--", "true"]);
    run.assert_code(2);
    assert!(
        run.stderr()
            .starts_with("error: vcpu_count must be between 1 and 8, got 9"),
        "{}",
        run.context()
    );
    let run = env.run(&[
        "run",
        "debian:12",
        "--mem-mib",
        "64",
        "--json",
        "--",
        "true",
    ]);
    run.assert_code(2);
    assert_eq!(run.json()["error"]["code"], "invalid_argument");
    let run = env.run(&["run", "debian:12", "--timeout-seconds", "0", "--", "true"]);
    run.assert_code(2);
    assert!(
        run.stderr()
            .contains("timeout_seconds must be greater than 0"),
        "{}",
        run.context()
    );
    assert!(
        !env.state_dir().join("vms").exists()
            || env
                .state_dir()
                .join("vms")
                .read_dir()
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn a_command_is_required() {
    let env = TestEnv::new();
    let run = env.run(&["run", "debian:12"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr(),
        "error: a command is required after `--`\n",
        "{}",
        run.context()
    );
}

#[test]
fn an_environment_that_is_not_pulled_says_how_to_pull_it() {
    let empty = tempfile::tempdir().unwrap();
    let env = TestEnv::with_cache(empty.path().to_path_buf());
    let run = env.run(&["run", "debian:12-base", "--", "true"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr(),
        "error: environment 'debian:12-base' is not installed\nhint: run `pyro env pull debian:12-base`\n",
        "{}",
        run.context()
    );
    let run = env.run(&["run", "debian:12-base", "--json", "--", "true"]);
    assert_eq!(run.json()["error"]["code"], "environment_not_installed");
    env.assert_nothing_left();
}

#[test]
fn unknown_flags_in_json_mode_are_json_too() {
    let env = TestEnv::new();
    let run = env.run(&["env", "list", "--json", "--bogus"]);
    run.assert_code(2);
    assert_eq!(run.json()["error"]["code"], "invalid_argument");
}

#[test]
fn doctor_rejects_unknown_platforms() {
    let env = TestEnv::new();
    let run = env.run(&["doctor", "--platform", "linux-arm64", "--json"]);
    run.assert_code(2);
    assert!(run.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unsupported platform"));
}

/// Doctor works when nothing else does: no QEMU, no sidecar, no
/// environment. It reports FAIL with the fixes and exits 1.
#[test]
fn doctor_reports_fail_with_fixes_when_tools_are_missing() {
    let empty = tempfile::tempdir().unwrap();
    let env = TestEnv::with_cache(empty.path().to_path_buf());
    let run = env
        .cmd(&["doctor", "--json"])
        .env("PATH", empty.path())
        .env("HOME", empty.path())
        .env("PYRO_AGENT_PATH", empty.path().join("no-agent"))
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(v["runtime_ok"], false);
    let issues = v["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "qemu-system-x86_64 is not installed",
        "vhost-device-vsock is not installed",
        "guest agent not found",
    ] {
        assert!(issues.contains(needle), "missing '{needle}' in:\n{issues}");
    }
    assert!(issues.contains("make setup"), "{issues}");
    assert_eq!(v["capabilities"]["vm_boot"], false);
    for key in ["exists", "readable", "writable", "boots"] {
        assert!(v["kvm"].get(key).is_some(), "kvm.{key}");
    }
    let human = env
        .cmd(&["doctor"])
        .env("PATH", empty.path())
        .env("HOME", empty.path())
        .output()
        .unwrap();
    assert_eq!(human.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&human.stdout).contains("Runtime: FAIL"));
}

/// Hostile input found by the adversarial pass, refused cleanly before
/// anything starts.
#[test]
fn hostile_input_is_refused_with_json_and_no_panic() {
    use std::os::unix::ffi::OsStrExt;
    let env = TestEnv::new();
    // Non-UTF-8 arguments: a clean error, never a panic (exit 101).
    let bad = std::ffi::OsStr::from_bytes(b"\xff");
    for args in [
        vec![
            std::ffi::OsStr::new("workspace"),
            std::ffi::OsStr::new("status"),
            bad,
            std::ffi::OsStr::new("--json"),
        ],
        vec![
            std::ffi::OsStr::new("run"),
            std::ffi::OsStr::new("debian:12"),
            std::ffi::OsStr::new("--json"),
            std::ffi::OsStr::new("--"),
            std::ffi::OsStr::new("echo"),
            bad,
        ],
    ] {
        let out = env.cmd(&[]).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["ok"], false);
        assert!(
            doc["error"]["message"].as_str().unwrap().contains("UTF-8"),
            "{doc}"
        );
    }
    // clap's message in JSON mode is whole, not its first line.
    let run = env.run(&["workspace", "create", "--json"]);
    run.assert_code(2);
    let message = run.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("<ENVIRONMENT>"), "{message}");
    // A label key given twice is an error, not a silent last-wins.
    let run = env.run(&[
        "workspace",
        "create",
        "debian:12",
        "--label",
        "k=a",
        "--label",
        "k=b",
        "--json",
    ]);
    run.assert_code(2);
    assert!(
        run.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("given twice"),
        "{}",
        run.context()
    );
    // Invisible characters and id-shaped names.
    for name in [
        "a\u{200b}b",
        "evil\u{202e}txt",
        "ABCDEF123456",
        "abcdef123456",
    ] {
        let run = env.run(&["workspace", "create", "debian:12", "--name", name, "--json"]);
        run.assert_code(2);
        assert_eq!(
            run.json()["error"]["code"],
            "invalid_argument",
            "{}",
            run.context()
        );
    }
    // A relative working directory would fail in the guest with 127.
    let run = env.run(&[
        "workspace",
        "exec",
        "nope",
        "--cwd",
        "rel",
        "--json",
        "--",
        "true",
    ]);
    run.assert_code(2);
    assert!(
        run.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("absolute"),
        "{}",
        run.context()
    );
    // 3.x's host_compat trapdoor is refused, not silently honoured.
    for args in [
        &[
            "run",
            "debian:12",
            "--allow-host-compat",
            "--json",
            "--",
            "true",
        ][..],
        &[
            "workspace",
            "create",
            "debian:12",
            "--allow-host-compat",
            "--json",
        ],
    ] {
        let run = env.run(args);
        run.assert_code(2);
        assert!(
            run.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("never runs commands on the host"),
            "{}",
            run.context()
        );
    }
    // Messages are for every surface: no CLI flags inside them; hints hold
    // the CLI wording.
    let run = env.run(&["workspace", "status", "nope", "--json"]);
    run.assert_code(2);
    let err = &run.json()["error"];
    assert_eq!(err["message"], "workspace 'nope' does not exist");
    assert!(err["hint"]
        .as_str()
        .unwrap()
        .contains("pyro workspace list"));
    env.assert_nothing_left();
}

/// State is private to its owner, even when the directory existed before.
#[test]
fn state_dir_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    std::fs::set_permissions(env.state_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.run(&["workspace", "list", "--json"]).assert_code(0);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(env.state_dir()), 0o700);
    assert_eq!(mode(&env.state_dir().join("pyro.db")), 0o600);
}

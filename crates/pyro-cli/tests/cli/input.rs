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
        "error: environment 'debian:12-base' is not installed; run `pyro env pull debian:12-base` first\n",
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

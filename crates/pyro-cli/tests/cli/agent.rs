//! The guest agent is checked before it goes into an initramfs: a
//! dynamically linked or foreign binary is refused with the JSON error
//! object, nothing boots and nothing is written to the environment cache.

use std::path::Path;
use std::process::Output;

use crate::util::{cache_dir, ensure_env, TestEnv, ENV};

/// The host's own `/bin/true`: dynamically linked, like a plain
/// `cargo build` of the agent.
const DYNAMIC: &str = "/bin/true";

fn context(args: &[&str], out: &Output) -> String {
    format!(
        "\n--- PYRO_AGENT_PATH=... pyro {}\n--- status: {}\n--- stdout:\n{}\n--- stderr:\n{}\n",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `pyro ARGS` with `PYRO_AGENT_PATH=agent`; expects a failure with
/// the JSON error object on stdout and returns its message.
fn refused(env: &TestEnv, agent: &Path, args: &[&str]) -> String {
    let out = env
        .cmd(args)
        .env("PYRO_AGENT_PATH", agent)
        .output()
        .expect("pyro starts");
    let ctx = context(args, &out);
    assert!(
        out.status.code().is_some_and(|c| c != 0),
        "expected a non-zero exit{ctx}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}){ctx}"));
    assert_eq!(v["ok"], false, "{ctx}");
    let message = v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.message{ctx}"))
        .to_string();
    assert!(
        message.contains(&*agent.to_string_lossy()),
        "the message names the file{ctx}"
    );
    message
}

/// The first 16 hex digits of a file's sha256 (coreutils' sha256sum).
fn short_sha256(path: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)[..16].to_string()
}

#[test]
fn run_refuses_a_dynamically_linked_agent_and_boots_nothing() {
    if !Path::new(DYNAMIC).is_file() {
        eprintln!("skipped: no {DYNAMIC}");
        return;
    }
    // Installed, so the run gets as far as choosing the initramfs.
    ensure_env();
    let install = cache_dir().join("environments").join("debian_12-1.0.0");
    let would_be = install.join(format!("initramfs-{}.cpio", short_sha256(DYNAMIC)));
    let manifest = std::fs::read(install.join("manifest.json")).unwrap();
    let base = std::fs::metadata(install.join("initramfs.cpio")).unwrap();

    let env = TestEnv::new();
    let message = refused(
        &env,
        Path::new(DYNAMIC),
        &["run", ENV, "--json", "--", "true"],
    );
    assert!(message.contains("dynamically linked"), "{message}");
    env.assert_nothing_left();

    // Nothing written for that agent, and the shared install untouched.
    assert!(!would_be.exists(), "{would_be:?} was written");
    assert_eq!(
        std::fs::read(install.join("manifest.json")).unwrap(),
        manifest
    );
    let after = std::fs::metadata(install.join("initramfs.cpio")).unwrap();
    assert_eq!(
        (after.len(), after.modified().unwrap()),
        (base.len(), base.modified().unwrap()),
        "the build's initramfs is never rewritten"
    );
}

#[test]
fn pull_refuses_bad_agents_before_building_anything() {
    let empty = tempfile::tempdir().unwrap();
    let env = TestEnv::with_cache(empty.path().to_path_buf());
    let args = ["env", "pull", ENV, "--json"];

    if Path::new(DYNAMIC).is_file() {
        let message = refused(&env, Path::new(DYNAMIC), &args);
        assert!(message.contains("dynamically linked"), "{message}");
    }

    let text = empty.path().join("agent.sh");
    std::fs::write(&text, "#!/bin/sh\nexec true\n").unwrap();
    let message = refused(&env, &text, &args);
    assert!(message.contains("not an ELF executable"), "{message}");

    // No partial build, no install: the check came first.
    let envs = empty.path().join("environments");
    let entries: Vec<_> = std::fs::read_dir(&envs)
        .map(|r| r.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        entries
            .iter()
            .all(|n| n.to_string_lossy().starts_with(".lock-")),
        "the cache holds {entries:?}"
    );
    env.assert_nothing_left();
}

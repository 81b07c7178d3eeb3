//! `pyro env ...` against the shared environment cache.

use crate::util::{cache_dir, ensure_env, TestEnv, ENV};

#[test]
fn list_shows_catalog_and_install_state() {
    ensure_env();
    let env = TestEnv::new();
    let run = env.run(&["env", "list"]);
    run.assert_code(0);
    let out = run.stdout();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("Catalog version: 1.0.0"));
    assert!(out.contains("debian:12 [installed] "), "{}", run.context());
    assert!(out.contains("debian:12-base ["), "{}", run.context());

    let v = env.run(&["env", "list", "--json"]).json();
    let names: Vec<_> = v["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["debian:12", "debian:12-base", "debian:12-build"]);
    assert_eq!(v["environments"][0]["installed"], true);
}

#[test]
fn pull_is_instant_when_installed_and_inspect_has_the_manifest() {
    ensure_env();
    let env = TestEnv::new();
    let started = std::time::Instant::now();
    let run = env.run(&["env", "pull", ENV]);
    run.assert_code(0);
    assert!(
        started.elapsed().as_secs() < 10,
        "a second pull should not rebuild{}",
        run.context()
    );
    assert!(
        run.stderr()
            .contains("[pull] phase=ready environment=debian:12"),
        "{}",
        run.context()
    );
    assert!(
        run.stdout().starts_with("Pulled: debian:12\n"),
        "{}",
        run.context()
    );
    for label in [
        "Kernel image: ",
        "Initramfs: ",
        "Rootfs image: ",
        "Install manifest: ",
    ] {
        assert!(
            run.stdout().contains(label),
            "missing {label}{}",
            run.context()
        );
    }

    let v = env.run(&["env", "inspect", ENV, "--json"]).json();
    assert_eq!(v["installed"], true);
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(v["install_manifest"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    for artifact in ["kernel", "initramfs", "rootfs"] {
        assert_eq!(manifest[artifact]["sha256"].as_str().unwrap().len(), 64);
    }
    assert_eq!(
        v["artifacts"]["kernel_sha256"],
        manifest["kernel"]["sha256"]
    );
}

#[test]
fn prune_removes_partial_and_unknown_entries_only() {
    ensure_env();
    let envs = cache_dir().join("environments");
    // A killed pull of an environment nobody is pulling, and an old version.
    std::fs::create_dir_all(envs.join(".partial-debian_12-base-1.0.0/tree")).unwrap();
    std::fs::create_dir_all(envs.join("debian_12-0.9.0")).unwrap();
    let env = TestEnv::new();
    let run = env.run(&["env", "prune", "--json"]);
    run.assert_code(0);
    let v = run.json();
    let deleted: Vec<_> = v["deleted_environment_dirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        deleted.contains(&".partial-debian_12-base-1.0.0"),
        "{}",
        run.context()
    );
    assert!(deleted.contains(&"debian_12-0.9.0"), "{}", run.context());
    assert!(!deleted.contains(&"debian_12-1.0.0"), "{}", run.context());
    assert_eq!(
        env.run(&["env", "inspect", ENV, "--json"]).json()["installed"],
        true
    );
}

#[test]
fn inspect_unknown_is_one_line() {
    let env = TestEnv::new();
    let run = env.run(&["env", "inspect", "arch"]);
    run.assert_code(2);
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.context());
}

//! Fast create from templates against real guests: clones are distinct
//! machines (randomness, clock, machine-id, hostname) with everything a
//! cold-booted workspace has (seed, secrets, stop/start, reset), and
//! `PYRO_TEMPLATES=off` boots cold and says why.

use crate::util::{ensure_env, TestEnv, ENV};

fn identity(env: &TestEnv, ws: &str) -> Vec<String> {
    let run = env.run(&[
        "workspace",
        "exec",
        ws,
        "--",
        "sh",
        "-c",
        "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; date +%s; hostname; cat /etc/machine-id",
    ]);
    run.assert_code(0);
    run.stdout().lines().map(str::to_string).collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn clones_are_distinct_machines_with_everything_a_cold_boot_has() {
    ensure_env();
    let env = TestEnv::new();
    let seed = tempfile::tempdir().unwrap();
    std::fs::write(seed.path().join("hello.txt"), "seeded\n").unwrap();
    let seed_arg = seed.path().to_string_lossy().into_owned();

    let a = env.run(&[
        "workspace",
        "create",
        ENV,
        "--name",
        "a",
        "--seed-path",
        &seed_arg,
        "--secret",
        "TOKEN=tok-from-the-host",
        "--json",
    ]);
    a.assert_code(0);
    assert_eq!(a.json()["boot"]["mode"], "template", "{}", a.context());
    let b = env.run(&["workspace", "create", ENV, "--name", "b", "--json"]);
    b.assert_code(0);
    assert_eq!(b.json()["boot"]["mode"], "template", "{}", b.context());
    assert!(env
        .run(&["workspace", "status", "b"])
        .stdout()
        .contains("Boot: template"));

    // Distinct machines: never the same random bytes, their own ids, and
    // the host's clock (not the template's).
    let ia = identity(&env, "a");
    let ib = identity(&env, "b");
    assert_eq!(ia.len(), 4, "{ia:?}");
    assert_ne!(ia[0], ib[0], "two clones printed the same random bytes");
    assert_eq!(ia[0].len(), 64, "{ia:?}");
    for i in [&ia, &ib] {
        let guest: i64 = i[1].parse().unwrap();
        assert!(
            (guest - now()).abs() <= 2,
            "guest clock {guest} vs host {}",
            now()
        );
    }
    assert_ne!(ia[2], ib[2], "same hostname");
    assert_ne!(ia[3], ib[3], "same machine-id");
    assert_eq!(ia[3].len(), 32);

    // Seed and secrets arrive after the resume, as on a cold boot.
    let run = env.run(&[
        "workspace",
        "exec",
        "a",
        "--",
        "sh",
        "-c",
        "cat /workspace/hello.txt && test \"$(cat /run/pyro-secrets/TOKEN)\" = tok-from-the-host && echo secret-ok",
    ]);
    run.assert_code(0);
    assert_eq!(run.stdout(), "seeded\nsecret-ok\n");

    // Stop and start: a cold boot from the clone's own disk keeps its files.
    env.run(&[
        "workspace",
        "file",
        "write",
        "a",
        "note.txt",
        "--text",
        "kept\n",
    ])
    .assert_code(0);
    env.run(&["workspace", "stop", "a"]).assert_code(0);
    let started = env.run(&["workspace", "start", "a", "--json"]);
    started.assert_code(0);
    assert_eq!(started.json()["boot"]["mode"], "cold");
    assert!(started.json()["boot"]["reason"]
        .as_str()
        .unwrap()
        .contains("own disk"));
    let run = env.run(&["workspace", "exec", "a", "--", "cat", "note.txt"]);
    run.assert_code(0);
    assert_eq!(run.stdout(), "kept\n");
    let again = identity(&env, "a");
    assert_eq!(again[3], ia[3], "the machine-id is the workspace's own");

    // Reset resumes the template again and restores the seed.
    let reset = env.run(&["workspace", "reset", "a", "--json"]);
    reset.assert_code(0);
    assert_eq!(
        reset.json()["boot"]["mode"],
        "template",
        "{}",
        reset.context()
    );
    let run = env.run(&[
        "workspace",
        "exec",
        "a",
        "--",
        "sh",
        "-c",
        "cat hello.txt; test -e note.txt && echo note-still-there; true",
    ]);
    run.assert_code(0);
    assert_eq!(run.stdout(), "seeded\n");

    // Off: a cold boot that says why.
    let out = env
        .cmd(&["workspace", "create", ENV, "--name", "c", "--json"])
        .env("PYRO_TEMPLATES", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["boot"]["mode"], "cold", "{c}");
    assert!(c["boot"]["reason"]
        .as_str()
        .unwrap()
        .contains("PYRO_TEMPLATES=off"));
    let doctor = env
        .cmd(&["doctor", "--json"])
        .env("PYRO_TEMPLATES", "off")
        .output()
        .unwrap();
    let d: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    assert_eq!(d["templates"]["enabled"], false, "{d}");

    env.assert_records_agree();
    for w in ["a", "b", "c"] {
        env.run(&["workspace", "delete", w]).assert_code(0);
    }
    env.assert_nothing_left();
}

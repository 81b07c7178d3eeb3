//! Fast create from templates against real guests: clones are distinct
//! machines (randomness, clock, machine-id, hostname) with everything a
//! cold-booted workspace has (seed, secrets, stop/start, reset), and
//! `PYRO_TEMPLATES=off` boots cold and says why. Forks copy a running
//! workspace (memory, processes, disk, host records) into a distinct
//! machine while the source runs on.

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

    // A cold-booted guest (QEMU's own memfd) forks as well as a clone.
    let c2 = env.run(&["workspace", "fork", "c", "--name", "c2", "--json"]);
    c2.assert_code(0);
    assert_eq!(c2.json()["boot"]["mode"], "fork", "{}", c2.context());
    for w in ["c", "c2"] {
        let run = env.run(&["workspace", "exec", w, "--", "true"]);
        run.assert_code(0);
    }

    env.assert_records_agree();
    for w in ["a", "b", "c", "c2"] {
        env.run(&["workspace", "delete", w]).assert_code(0);
    }
    env.assert_nothing_left();
}

#[test]
fn fork_copies_a_running_workspace_and_the_source_runs_on() {
    ensure_env();
    let env = TestEnv::new();
    let seed = tempfile::tempdir().unwrap();
    std::fs::write(seed.path().join("hello.txt"), "seeded\n").unwrap();
    let seed_arg = seed.path().to_string_lossy().into_owned();
    env.run(&[
        "workspace",
        "create",
        ENV,
        "--name",
        "src",
        "--label",
        "team=a",
        "--seed-path",
        &seed_arg,
        "--secret",
        "TOKEN=tok-from-the-host",
    ])
    .assert_code(0);
    // State only memory holds (tmpfs, a process), and state on disk.
    env.run(&[
        "workspace",
        "exec",
        "src",
        "--",
        "sh",
        "-c",
        "echo in-memory > /dev/shm/m; echo on-disk > /root/d; setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > /dev/shm/pid",
    ])
    .assert_code(0);
    env.run(&[
        "workspace",
        "service",
        "start",
        "src",
        "svc",
        "--",
        "sleep",
        "1000",
    ])
    .assert_code(0);
    let before = identity(&env, "src");

    // Bad input is refused before the source is touched.
    let taken = env.run(&["workspace", "fork", "src", "--name", "src"]);
    assert_ne!(taken.code(), Some(0));
    assert!(
        taken.stderr().contains("already exists"),
        "{}",
        taken.context()
    );
    let missing = env.run(&["workspace", "fork", "nope"]);
    assert_ne!(missing.code(), Some(0));
    assert!(
        missing.stderr().contains("does not exist"),
        "{}",
        missing.context()
    );

    // A command on the source while its copy is made waits for it (the
    // agent is out of reach for those seconds) instead of failing.
    let forking = env
        .cmd(&[
            "workspace",
            "fork",
            "src",
            "--name",
            "f",
            "--label",
            "who=fork",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let during = env.run(&["workspace", "exec", "src", "--", "echo", "waited"]);
    during.assert_code(0);
    assert_eq!(during.stdout(), "waited\n", "{}", during.context());
    let out = forking.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fj: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fj["boot"]["mode"], "fork", "{fj}");
    assert_eq!(fj["name"], "f");
    assert_eq!(fj["labels"]["team"], "a", "{fj}");
    assert_eq!(fj["labels"]["who"], "fork", "{fj}");
    assert_eq!(fj["secrets"][0]["name"], "TOKEN", "{fj}");
    assert_ne!(fj["workspace_id"], "src");

    // Both run what the source ran, memory and processes included.
    let check = "cat /dev/shm/m /root/d /workspace/hello.txt; kill -0 $(cat /dev/shm/pid) && echo process-alive; \
                 test \"$(cat /run/pyro-secrets/TOKEN)\" = tok-from-the-host && echo secret-ok";
    for w in ["src", "f"] {
        let run = env.run(&["workspace", "exec", w, "--", "sh", "-c", check]);
        run.assert_code(0);
        assert_eq!(
            run.stdout(),
            "in-memory\non-disk\nseeded\nprocess-alive\nsecret-ok\n",
            "{w}: {}",
            run.context()
        );
    }
    let services = env.run(&["workspace", "service", "list", "f", "--json"]);
    services.assert_code(0);
    assert!(
        services.stdout().contains("\"svc\""),
        "{}",
        services.context()
    );
    assert!(
        services.stdout().contains("\"running\""),
        "{}",
        services.context()
    );

    // A distinct machine: its own randomness, ids, and the host's clock.
    let after = identity(&env, "src");
    let forked = identity(&env, "f");
    assert_ne!(
        forked[0], after[0],
        "the fork printed its source's random bytes"
    );
    assert_ne!(forked[2], before[2], "same hostname");
    assert_ne!(forked[3], before[3], "same machine-id");
    assert_eq!(after[3], before[3], "the source keeps its machine-id");
    let guest: i64 = forked[1].parse().unwrap();
    assert!(
        (guest - now()).abs() <= 2,
        "fork clock {guest} vs host {}",
        now()
    );

    // A command running on the source when a fork starts is waited for,
    // never ended by the copy.
    let running = env
        .cmd(&[
            "workspace",
            "exec",
            "src",
            "--",
            "sh",
            "-c",
            "sleep 2; echo finished",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let f2 = env.run(&["workspace", "fork", "src", "--name", "f2", "--json"]);
    f2.assert_code(0);
    let out = running.wait_with_output().unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
        ),
        (Some(0), "finished\n".to_string()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.run(&["workspace", "delete", "f2"]).assert_code(0);

    // Independent from here on: the fork's changes are its own, against
    // the baseline it copied.
    env.run(&[
        "workspace",
        "file",
        "write",
        "f",
        "hello.txt",
        "--text",
        "forked\n",
    ])
    .assert_code(0);
    let src_file = env.run(&[
        "workspace",
        "file",
        "read",
        "src",
        "hello.txt",
        "--content-only",
    ]);
    assert_eq!(src_file.stdout(), "seeded\n");
    let diff = env.run(&["workspace", "diff", "f", "--json"]);
    diff.assert_code(0);
    assert_eq!(diff.json()["summary"]["modified"], 1, "{}", diff.context());

    // The fork stops and starts like any workspace; a stopped source is
    // refused with what to do.
    env.run(&["workspace", "stop", "f"]).assert_code(0);
    env.run(&["workspace", "start", "f"]).assert_code(0);
    let run = env.run(&[
        "workspace",
        "exec",
        "f",
        "--",
        "cat",
        "/root/d",
        "/workspace/hello.txt",
    ]);
    assert_eq!(run.stdout(), "on-disk\nforked\n", "{}", run.context());
    env.run(&["workspace", "stop", "src"]).assert_code(0);
    let stopped = env.run(&["workspace", "fork", "src"]);
    assert_ne!(stopped.code(), Some(0));
    assert!(
        stopped.stderr().contains("must be started"),
        "{}",
        stopped.context()
    );
    assert!(
        stopped.stderr().contains("workspace start"),
        "{}",
        stopped.context()
    );

    env.assert_records_agree();
    for w in ["src", "f"] {
        env.run(&["workspace", "delete", w]).assert_code(0);
    }
    env.assert_nothing_left();
}

//! Services against a real guest: readiness of each kind, a timeout that
//! fails the service, logs, stop, and their records across a stop/start.

use crate::util::{ensure_env, TestEnv, ENV};

#[test]
fn services_start_ready_fail_log_and_stop() {
    ensure_env();
    let env = TestEnv::new();
    env.run(&[
        "workspace",
        "create",
        ENV,
        "--name",
        "svc",
        "--secret",
        "TOKEN=s3cret-svc",
    ])
    .assert_code(0);
    let start = |args: &[&str]| {
        let mut all = vec!["workspace", "service", "start", "svc"];
        all.extend_from_slice(args);
        env.run(&all)
    };
    // The transcript's line, as written.
    let web = start(&[
        "web",
        "--ready-file",
        ".web-ready",
        "--secret-env",
        "TOKEN",
        "--json",
        "--",
        "sh",
        "-lc",
        "echo up; echo \"$TOKEN\"; touch .web-ready && while true; do sleep 60; done",
    ]);
    web.assert_code(0);
    let w = web.json();
    assert_eq!(w["state"], "running", "{}", web.context());
    assert!(w["ready_at"].as_f64().is_some());
    assert_eq!(w["readiness"]["type"], "file");

    let cmd = start(&[
        "cmd",
        "--ready-command",
        "test -e /tmp/go",
        "--ready-interval-ms",
        "100",
        "--",
        "sh",
        "-c",
        "sleep 1; touch /tmp/go; exec sleep 600",
    ]);
    cmd.assert_code(0);
    let tcp = start(&[
        "quick",
        "--ready-tcp",
        "127.0.0.1:9",
        "--ready-timeout-seconds",
        "5",
        "--json",
        "--",
        "sh",
        "-c",
        "echo bye >&2; exit 3",
    ]);
    assert_eq!(tcp.code(), Some(1), "{}", tcp.context());
    assert_eq!(tcp.json()["state"], "failed");
    assert_eq!(tcp.json()["stop_reason"], "process_exited_before_ready");
    assert_eq!(tcp.json()["exit_code"], 3);
    let slow = start(&[
        "slow",
        "--ready-file",
        "never",
        "--ready-timeout-seconds",
        "2",
        "--json",
        "--",
        "sleep",
        "600",
    ]);
    assert_eq!(slow.code(), Some(1), "{}", slow.context());
    assert_eq!(slow.json()["stop_reason"], "readiness_timeout");
    // Two readiness flags, a bad name, a second start of a running one.
    assert_eq!(
        start(&["x", "--ready-file", "a", "--ready-tcp", "h:1", "--", "true"]).code(),
        Some(2)
    );
    let bad = start(&["-bad", "--json", "--", "true"]);
    assert_ne!(bad.code(), Some(0));
    let again = start(&["web", "--json", "--", "true"]);
    assert_ne!(again.code(), Some(0), "{}", again.context());
    assert!(
        again.stdout().contains("already running"),
        "{}",
        again.context()
    );

    let list = env.run(&["workspace", "service", "list", "svc", "--json"]);
    let l = list.json();
    assert_eq!(l["count"], 4);
    assert_eq!(l["running_count"], 2);
    let status = env.run(&["workspace", "status", "svc", "--json"]).json();
    assert_eq!(
        (
            status["service_count"].clone(),
            status["running_service_count"].clone()
        ),
        (4.into(), 2.into())
    );

    // Logs: stdout and stderr, secrets redacted.
    let logs = env.run(&["workspace", "service", "logs", "svc", "web", "--json"]);
    assert_eq!(
        logs.json()["stdout"],
        "up\n[REDACTED]\n",
        "{}",
        logs.context()
    );
    let logs = env.run(&[
        "workspace",
        "service",
        "logs",
        "svc",
        "quick",
        "--all",
        "--json",
    ]);
    assert_eq!(logs.json()["stderr"], "bye\n");
    let missing = env.run(&["workspace", "service", "status", "svc", "nope", "--json"]);
    assert_eq!(missing.json()["error"]["code"], "not_found");

    // Stop: TERM to the group.
    let before = env.run(&["workspace", "status", "svc", "--json"]).json()["last_activity_at"]
        .as_f64()
        .unwrap();
    let stopped = env.run(&["workspace", "service", "stop", "svc", "cmd", "--json"]);
    stopped.assert_code(0);
    assert_eq!(stopped.json()["state"], "stopped");
    assert_eq!(stopped.json()["stop_reason"], "sigterm");
    let after = env.run(&["workspace", "status", "svc", "--json"]).json()["last_activity_at"]
        .as_f64()
        .unwrap();
    assert!(after > before, "service stop is activity");

    // The workspace stops: the running service stops with it and says so.
    env.run(&["workspace", "stop", "svc"]).assert_code(0);
    let l = env
        .run(&["workspace", "service", "list", "svc", "--json"])
        .json();
    let web = l["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service_name"] == "web")
        .unwrap()
        .clone();
    assert_eq!(web["state"], "stopped");
    assert_eq!(web["stop_reason"], "workspace_stopped");
    env.run(&["workspace", "start", "svc"]).assert_code(0);
    let l = env
        .run(&["workspace", "service", "list", "svc", "--json"])
        .json();
    assert_eq!(l["running_count"], 0, "{l}");
    env.run(&["workspace", "delete", "svc"]).assert_code(0);
    env.assert_nothing_left();
}

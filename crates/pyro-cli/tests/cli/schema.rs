//! Every command's `--json` output validates against the schema `pyro
//! schema` publishes (the one MCP and the SDK reuse), errors included.

use crate::util::{ensure_env, Run, TestEnv, ENV};

struct Schemas(serde_json::Value);

impl Schemas {
    fn load(env: &TestEnv) -> Schemas {
        let run = env.run(&["schema"]);
        run.assert_code(0);
        Schemas(run.json())
    }

    fn check(&self, schema: &serde_json::Value, what: &str, run: &Run) {
        let doc = run.json();
        let validator = jsonschema::validator_for(schema)
            .unwrap_or_else(|e| panic!("schema of {what} does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} output does not match its schema: {errors:#?}{}",
            run.context()
        );
    }

    /// A successful `--json` result of operation `op`.
    fn result(&self, op: &str, run: &Run) {
        let schema = &self.0["operations"][op]["result"];
        assert!(schema.is_object(), "no schema for {op}");
        self.check(schema, op, run);
    }

    /// A failed command's JSON.
    fn error(&self, run: &Run) {
        assert_ne!(run.code(), Some(0), "{}", run.context());
        self.check(&self.0["error"], "error envelope", run);
    }

    fn operations(&self) -> Vec<String> {
        self.0["operations"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }
}

#[test]
fn every_command_json_matches_the_published_schema() {
    ensure_env();
    let env = TestEnv::new();
    let s = Schemas::load(&env);
    let mut covered = Vec::new();
    let mut ok = |op: &str, args: &[&str]| -> Run {
        let run = env.run(args);
        assert!(run.code() == Some(0) || op == "doctor", "{}", run.context());
        s.result(op, &run);
        covered.push(op.to_string());
        run
    };

    ok("doctor", &["doctor", "--json"]);
    ok("env_list", &["env", "list", "--json"]);
    ok("env_inspect", &["env", "inspect", ENV, "--json"]);
    ok("env_pull", &["env", "pull", ENV, "--json"]);
    ok(
        "vm_run",
        &[
            "run",
            ENV,
            "--json",
            "--",
            "sh",
            "-c",
            "echo hi; printf '\\377' >&2",
        ],
    );
    let created = ok(
        "workspace_create",
        &[
            "workspace",
            "create",
            ENV,
            "--name",
            "s",
            "--label",
            "k=v",
            "--json",
        ],
    );
    assert_eq!(created.json()["workspace_seed"]["mode"], "empty");
    ok(
        "workspace_list",
        &["workspace", "list", "--label", "k", "--json"],
    );
    ok("workspace_status", &["workspace", "status", "s", "--json"]);
    ok(
        "workspace_update",
        &["workspace", "update", "s", "--label", "x=y", "--json"],
    );
    let exec = ok(
        "workspace_exec",
        &["workspace", "exec", "s", "--json", "--", "printf", "\\377"],
    );
    assert_eq!(exec.json()["stdout_lossy"], true, "{}", exec.context());
    ok("workspace_logs", &["workspace", "logs", "s", "--json"]);
    let fork = ok(
        "workspace_fork",
        &["workspace", "fork", "s", "--name", "s-fork", "--json"],
    );
    assert_eq!(fork.json()["boot"]["mode"], "fork", "{}", fork.context());
    env.run(&["workspace", "delete", "s-fork"]).assert_code(0);
    // Contents, while started.
    let host = tempfile::tempdir().unwrap();
    let src = host.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a.txt"), "one\n").unwrap();
    let src_arg = src.to_str().unwrap();
    ok(
        "workspace_sync_push",
        &["workspace", "sync", "push", "s", src_arg, "--json"],
    );
    ok(
        "workspace_file_write",
        &[
            "workspace",
            "file",
            "write",
            "s",
            "b.bin",
            "--text",
            "x",
            "--json",
        ],
    );
    ok(
        "workspace_file_list",
        &["workspace", "file", "list", "s", "--recursive", "--json"],
    );
    ok(
        "workspace_file_read",
        &["workspace", "file", "read", "s", "a.txt", "--json"],
    );
    ok(
        "workspace_patch_apply",
        &[
            "workspace",
            "patch",
            "apply",
            "s",
            "--patch",
            "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+two\n",
            "--json",
        ],
    );
    ok("workspace_diff", &["workspace", "diff", "s", "--json"]);
    ok(
        "service_start",
        &[
            "workspace",
            "service",
            "start",
            "s",
            "web",
            "--ready-file",
            ".up",
            "--json",
            "--",
            "sh",
            "-c",
            "touch .up; exec sleep 600",
        ],
    );
    ok(
        "service_list",
        &["workspace", "service", "list", "s", "--json"],
    );
    ok(
        "service_status",
        &["workspace", "service", "status", "s", "web", "--json"],
    );
    ok(
        "service_logs",
        &["workspace", "service", "logs", "s", "web", "--json"],
    );
    ok(
        "service_stop",
        &["workspace", "service", "stop", "s", "web", "--json"],
    );
    let shell = ok("shell_open", &["workspace", "shell", "open", "s", "--json"]);
    let sid = shell.json()["shell_id"].as_str().unwrap().to_string();
    ok(
        "shell_write",
        &[
            "workspace",
            "shell",
            "write",
            "s",
            &sid,
            "--input",
            "echo hi",
            "--json",
        ],
    );
    ok(
        "shell_read",
        &[
            "workspace",
            "shell",
            "read",
            "s",
            &sid,
            "--wait-for-idle-ms",
            "300",
            "--json",
        ],
    );
    ok(
        "shell_signal",
        &["workspace", "shell", "signal", "s", &sid, "--json"],
    );
    ok(
        "shell_close",
        &["workspace", "shell", "close", "s", &sid, "--json"],
    );
    let out = host.path().join("out.txt");
    ok(
        "workspace_export",
        &[
            "workspace",
            "export",
            "s",
            "a.txt",
            "--output",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    ok(
        "snapshot_create",
        &["workspace", "snapshot", "create", "s", "cp", "--json"],
    );
    ok(
        "snapshot_list",
        &["workspace", "snapshot", "list", "s", "--json"],
    );
    ok(
        "workspace_reset",
        &["workspace", "reset", "s", "--snapshot", "cp", "--json"],
    );
    ok(
        "snapshot_delete",
        &["workspace", "snapshot", "delete", "s", "cp", "--json"],
    );
    ok("workspace_stop", &["workspace", "stop", "s", "--json"]);
    ok(
        "workspace_disk_list",
        &["workspace", "disk", "list", "s", "--json"],
    );
    ok(
        "workspace_disk_read",
        &["workspace", "disk", "read", "s", "a.txt", "--json"],
    );
    let image = host.path().join("disk.ext4");
    ok(
        "workspace_disk_export",
        &[
            "workspace",
            "disk",
            "export",
            "s",
            "--output",
            image.to_str().unwrap(),
            "--json",
        ],
    );
    ok("workspace_start", &["workspace", "start", "s", "--json"]);
    ok("workspace_gc", &["workspace", "gc", "--json"]);
    ok("workspace_delete", &["workspace", "delete", "s", "--json"]);
    // Prune on a private, empty cache: the shared one is other tests'.
    let empty = tempfile::tempdir().unwrap();
    let private = TestEnv::with_cache(empty.path().to_path_buf());
    let prune = private.run(&["env", "prune", "--json"]);
    prune.assert_code(0);
    s.result("env_prune", &prune);
    covered.push("env_prune".into());

    // Operations with no CLI command (the in-memory `vm_*` of MCP and the
    // SDK) are checked by the Python tests.
    let mut missing: Vec<String> = s
        .operations()
        .into_iter()
        .filter(|op| !covered.contains(op))
        .filter(|op| {
            !s.0["operations"][op]["cli"]
                .as_str()
                .unwrap_or("")
                .starts_with('(')
        })
        .collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "operations without a checked command: {missing:?}"
    );

    // Errors, from the core, from argument parsing and from bad input.
    for args in [
        &["workspace", "status", "nope", "--json"][..],
        &["workspace", "create", "--json"],
        &["run", ENV, "--json", "--vcpu-count", "99", "--", "true"],
        &[
            "workspace",
            "exec",
            "nope",
            "--cwd",
            "relative",
            "--json",
            "--",
            "true",
        ],
        &["env", "inspect", "debian:99", "--json"],
    ] {
        s.error(&env.run(args));
    }
    env.assert_nothing_left();
}

#[test]
fn schema_lists_every_operation_with_params_and_results() {
    let env = TestEnv::new();
    let s = Schemas::load(&env);
    for op in s.operations() {
        let entry = &s.0["operations"][&op];
        assert!(
            entry["params"]["properties"].is_object() || entry["params"]["type"] == "object",
            "{op}"
        );
        assert!(entry["cli"].is_string(), "{op}");
        assert!(entry["summary"].as_str().unwrap().len() > 20, "{op}");
    }
    // Defaults are declared once and published.
    let create = &s.0["operations"]["workspace_create"]["params"]["properties"];
    assert_eq!(create["mem_mib"]["default"], 1024);
    assert_eq!(create["vcpu_count"]["default"], 1);
}

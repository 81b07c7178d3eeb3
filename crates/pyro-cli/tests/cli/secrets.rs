//! Workspace secrets against a real guest: stored for the owner only,
//! installed on every boot, mapped into one command, and never shown.

use crate::util::{ensure_env, TestEnv, ENV};

const VALUE: &str = "expected-s3cret-value";

#[test]
fn secrets_reach_the_guest_and_never_any_output() {
    ensure_env();
    let env = TestEnv::new();
    let host = tempfile::tempdir().unwrap();
    let token_file = host.path().join("token.txt");
    std::fs::write(&token_file, "from-a-file-9").unwrap();
    let file_arg = format!("PIP_TOKEN={}", token_file.display());
    let created = env.run(&[
        "workspace",
        "create",
        ENV,
        "--name",
        "sec",
        "--secret",
        &format!("API_TOKEN={VALUE}"),
        "--secret-file",
        &file_arg,
        "--json",
    ]);
    created.assert_code(0);
    let w = created.json();
    assert_eq!(
        w["secrets"],
        serde_json::json!([
            {"name": "API_TOKEN", "source_kind": "literal"},
            {"name": "PIP_TOKEN", "source_kind": "file"}
        ])
    );
    let id = w["workspace_id"].as_str().unwrap().to_string();

    // Host storage: owner-only files, nothing in the database.
    use std::os::unix::fs::PermissionsExt;
    let dir = env.state_dir().join("workspaces").join(&id).join("secrets");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let stored = dir.join("API_TOKEN.secret");
    assert_eq!(
        std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), VALUE);

    // The value is usable inside, and every output hides it, even split
    // across two writes and two processes.
    let script = format!(
        "test \"$API_TOKEN\" = {VALUE} && echo match; echo \"$API_TOKEN\"; \
         printf %s \"$API_TOKEN\" | head -c 7; printf '%s\\n' \"$API_TOKEN\" | tail -c +8; \
         cat /run/pyro-secrets/PIP_TOKEN; echo; echo \"$API_TOKEN\" >&2; \
         stat -c %a /run/pyro-secrets/API_TOKEN; echo {VALUE} > /workspace/leak.txt"
    );
    let text = env.run(&[
        "workspace",
        "exec",
        "sec",
        "--secret-env",
        "API_TOKEN",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    text.assert_code(0);
    assert_eq!(
        text.stdout(),
        "match\n[REDACTED]\n[REDACTED]\n[REDACTED]\n600\n",
        "{}",
        text.context()
    );
    assert!(text.stderr().contains("[REDACTED]"), "{}", text.context());
    let json = env.run(&[
        "workspace",
        "exec",
        "sec",
        "--secret-env",
        "API_TOKEN=TOKEN",
        "--json",
        "--",
        "sh",
        "-c",
        "echo \"$TOKEN\"",
    ]);
    json.assert_code(0);
    assert_eq!(json.json()["stdout"], "[REDACTED]\n");

    // Not in history, file read, diff, status, list or the database.
    for args in [
        &["workspace", "logs", "sec", "--json"][..],
        &["workspace", "file", "read", "sec", "leak.txt", "--json"],
        &["workspace", "diff", "sec", "--json"],
        &["workspace", "status", "sec", "--json"],
        &["workspace", "list", "--json"],
    ] {
        let run = env.run(args);
        run.assert_code(0);
        let all = format!("{}{}", run.stdout(), run.stderr());
        assert!(!all.contains(VALUE), "{args:?} leaked it: {all}");
        assert!(!all.contains("from-a-file-9"), "{args:?} leaked it: {all}");
    }
    // Nor in an error the guest sends back that echoes what it was given.
    let missing = format!("no-such-{VALUE}.txt");
    let err = env.run(&["workspace", "file", "read", "sec", &missing, "--json"]);
    assert_ne!(err.code(), Some(0), "{}", err.context());
    let all = format!("{}{}", err.stdout(), err.stderr());
    assert!(all.contains("[REDACTED]"), "{}", err.context());
    assert!(!all.contains(VALUE), "an error leaked it: {all}");
    for entry in std::fs::read_dir(env.state_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
                "{} holds the value",
                path.display()
            );
        }
    }

    // Bad mappings and specs are refused clearly.
    let unknown = env.run(&[
        "workspace",
        "exec",
        "sec",
        "--secret-env",
        "NOPE",
        "--json",
        "--",
        "true",
    ]);
    assert_eq!(unknown.json()["error"]["code"], "invalid_argument");
    assert!(unknown.stdout().contains("unknown workspace secret 'NOPE'"));
    for bad in [
        &["workspace", "create", ENV, "--secret", "1x=y", "--json"][..],
        &["workspace", "create", ENV, "--secret", "A=", "--json"],
        &["workspace", "create", ENV, "--secret", "nope", "--json"],
        &[
            "workspace",
            "create",
            ENV,
            "--secret",
            "A=x",
            "--secret",
            "A=y",
            "--json",
        ],
        &[
            "workspace",
            "create",
            ENV,
            "--secret-file",
            "A=/nonexistent",
            "--json",
        ],
    ] {
        let run = env.run(bad);
        assert_eq!(
            run.json()["error"]["code"],
            "invalid_argument",
            "{}",
            run.context()
        );
    }

    // Installed again on every boot (/run is a tmpfs).
    env.run(&["workspace", "stop", "sec"]).assert_code(0);
    env.run(&["workspace", "start", "sec"]).assert_code(0);
    let again = env.run(&[
        "workspace",
        "exec",
        "sec",
        "--",
        "sh",
        "-c",
        "wc -c < /run/pyro-secrets/API_TOKEN",
    ]);
    assert_eq!(again.stdout().trim(), VALUE.len().to_string());
    env.run(&["workspace", "delete", "sec"]).assert_code(0);
    env.assert_nothing_left();
}

//! A workspace booted by an older pyro (its agent knows fewer protocol
//! features) keeps answering a newer pyro, and a missing feature is a
//! clear error with its own code.

use crate::util::{ensure_env, TestEnv, ENV};

#[test]
fn a_workspace_from_an_older_agent_keeps_answering_exec() {
    ensure_env();
    let env = TestEnv::new();
    let old = env
        .cmd(&["workspace", "create", ENV, "--name", "old", "--json"])
        .env("PYRO_TEST_AGENT_DISABLE_FEATURES", "direct_output,extract")
        // A cold boot: its console shows what the agent left out.
        .env("PYRO_TEMPLATES", "off")
        .output()
        .unwrap();
    assert!(
        old.status.success(),
        "{}",
        String::from_utf8_lossy(&old.stdout)
    );
    let id = serde_json::from_slice::<serde_json::Value>(&old.stdout).unwrap()["workspace_id"]
        .as_str()
        .unwrap()
        .to_string();
    let console =
        std::fs::read_to_string(env.state_dir().join(format!("workspaces/{id}/console.log")))
            .unwrap_or_default();
    assert!(
        console.contains("direct_output"),
        "the agent did not disable it: {console}"
    );

    // This pyro knows direct output; the old agent does not.
    let exec = env.run(&[
        "workspace",
        "exec",
        "old",
        "--json",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    exec.assert_code(3);
    let doc = exec.json();
    assert_eq!(doc["stdout"], "out\n", "{}", exec.context());
    assert_eq!(doc["stderr"], "err\n");
    let text = env.run(&["workspace", "exec", "old", "--", "echo", "hi"]);
    text.assert_code(0);
    assert_eq!(text.stdout(), "hi\n", "{}", text.context());

    // A feature the old agent lacks: its own code, naming the feature.
    let seed = tempfile::tempdir().unwrap();
    std::fs::write(seed.path().join("a"), "x").unwrap();
    let seeded = env
        .cmd(&[
            "workspace",
            "create",
            ENV,
            "--name",
            "seeded",
            "--json",
            "--seed-path",
        ])
        .arg(seed.path())
        .env("PYRO_TEST_AGENT_DISABLE_FEATURES", "extract")
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&seeded.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "unsupported", "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("extract"),
        "{doc}"
    );
    for name in ["old", "seeded"] {
        let _ = env.run(&["workspace", "delete", name]);
    }
    env.assert_nothing_left();
}

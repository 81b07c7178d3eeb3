//! A workspace's contents against a real guest: sync push, file
//! list/read/write, patch apply, diff, export, snapshots, reset and the
//! stopped disk. One seeded workspace walks the whole editing loop (guests
//! are slow to boot under TCG); the reset and the restart boot it twice
//! more.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{ensure_env, Run, TestEnv, ENV};

/// Name of the workspace under test.
const WS: &str = "editing";

/// The seed's `src/app.py`: `line 1` .. `line 20`.
fn app_py() -> String {
    (1..=20).map(|i| format!("line {i}\n")).collect()
}

const DATA_BIN: &[u8] = b"\x00\x01\x02pyro\x00\xff\xfe\n";

/// Standard base64 with padding (what `file read --json` gives binary
/// files).
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A plain ustar archive of regular files, names written as given (so it
/// may hold `../x` or `/x`, which no well-behaved tool writes).
fn raw_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn gzip(path: &Path) -> std::path::PathBuf {
    let out = path.with_extension("tar.gz");
    let status = Command::new("gzip")
        .arg("-c")
        .arg(path)
        .stdout(std::fs::File::create(&out).unwrap())
        .status()
        .expect("gzip runs");
    assert!(status.success());
    out
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// One listed entry, everything a listing says about it.
type Row = (String, String, u64, Option<String>, u64);

fn rows(entries: &[Value]) -> Vec<Row> {
    entries
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["artifact_type"].as_str().unwrap().to_string(),
                e["size_bytes"].as_u64().unwrap(),
                e["link_target"].as_str().map(String::from),
                e["mode"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn paths(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

/// The workspace under test and the commands on it.
struct Ws<'a> {
    env: &'a TestEnv,
    id: String,
}

impl Ws<'_> {
    fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["workspace"];
        all.extend_from_slice(args);
        self.env.run(&all)
    }

    /// Runs with `--json`, expects success, returns the JSON.
    fn ok(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let run = self.run(&all);
        run.assert_code(0);
        let v = run.json();
        assert_ne!(v["ok"], false, "{}", run.context());
        v
    }

    /// Runs with `--json`, expects a usage failure (exit 2) with `code`;
    /// returns the error's message.
    fn fails(&self, args: &[&str], code: &str) -> String {
        let mut all = args.to_vec();
        all.push("--json");
        let run = self.run(&all);
        run.assert_code(2);
        let v = run.json();
        assert_eq!(v["ok"], false, "{}", run.context());
        assert_eq!(v["error"]["code"], code, "{}", run.context());
        v["error"]["message"].as_str().unwrap().to_string()
    }

    /// `sh -c script` in /workspace; expects exit 0; returns stdout.
    fn sh(&self, script: &str) -> String {
        let run = self.run(&["exec", WS, "--", "sh", "-c", script]);
        run.assert_code(0);
        run.stdout()
    }

    fn status(&self) -> Value {
        self.ok(&["status", WS])
    }

    fn activity(&self) -> f64 {
        self.status()["last_activity_at"].as_f64().unwrap()
    }

    /// Runs `f` and checks whether it moved `last_activity_at`.
    fn activity_after<R>(&self, what: &str, touches: bool, f: impl FnOnce() -> R) -> R {
        let before = self.activity();
        std::thread::sleep(Duration::from_millis(30));
        let r = f();
        let after = self.activity();
        if touches {
            assert!(after > before, "{what} must count as activity");
        } else {
            assert_eq!(after, before, "{what} must not count as activity");
        }
        r
    }

    fn list(&self, path: &str, recursive: bool) -> Vec<Value> {
        let mut args = vec!["file", "list", WS, path];
        if recursive {
            args.push("--recursive");
        }
        let v = self.ok(&args);
        assert_eq!(v["workspace_id"], self.id.as_str());
        assert_eq!(v["recursive"], recursive);
        assert_eq!(v["execution_mode"], "guest_vsock");
        v["entries"].as_array().unwrap().clone()
    }

    /// The raw bytes of a file (`--content-only`).
    fn read(&self, path: &str) -> Vec<u8> {
        let run = self.run(&["file", "read", WS, path, "--content-only"]);
        run.assert_code(0);
        assert!(run.stderr().is_empty(), "{}", run.context());
        run.output.stdout.clone()
    }

    fn read_text(&self, path: &str) -> String {
        String::from_utf8(self.read(path)).unwrap()
    }
}

/// The whole editing loop on one seeded workspace.
#[test]
fn editing_loop_on_a_seeded_workspace() {
    ensure_env();
    let env = TestEnv::new();
    let host = tempfile::tempdir().unwrap();
    let h = host.path();

    // The seed: text, an executable script, a subdirectory, a binary file
    // with NUL bytes and symlinks inside the tree.
    let seed = h.join("seed");
    std::fs::create_dir_all(seed.join("src")).unwrap();
    std::fs::write(seed.join("notes.txt"), "alpha\nbeta\ngamma\n").unwrap();
    std::fs::write(seed.join("run.sh"), "#!/bin/sh\necho seeded\n").unwrap();
    std::fs::set_permissions(seed.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(seed.join("src/app.py"), app_py()).unwrap();
    std::os::unix::fs::symlink("app.py", seed.join("src/rel")).unwrap();
    std::os::unix::fs::symlink("src/app.py", seed.join("link")).unwrap();
    std::fs::write(seed.join("data.bin"), DATA_BIN).unwrap();
    std::fs::write(seed.join("old.txt"), "delete me\n").unwrap();
    let seed_bytes = (17 + 22 + app_py().len() + DATA_BIN.len() + 10) as u64;

    let created = env.run(&[
        "workspace",
        "create",
        ENV,
        "--name",
        WS,
        "--seed-path",
        &s(&seed),
        "--json",
    ]);
    created.assert_code(0);
    let created = created.json();
    let id = created["workspace_id"].as_str().unwrap().to_string();
    assert_eq!(created["workspace_seed"]["entry_count"], 8, "{created}");
    assert_eq!(created["workspace_seed"]["bytes_written"], seed_bytes);
    let w = Ws { env: &env, id };

    // ---- file list ---------------------------------------------------------
    w.activity_after("file list", false, || {
        let top = w.list("/workspace", false);
        assert_eq!(
            rows(&top),
            vec![
                (
                    "/workspace/data.bin".into(),
                    "file".into(),
                    DATA_BIN.len() as u64,
                    None,
                    0o644
                ),
                (
                    "/workspace/link".into(),
                    "symlink".into(),
                    10,
                    Some("src/app.py".into()),
                    0o777
                ),
                (
                    "/workspace/notes.txt".into(),
                    "file".into(),
                    17,
                    None,
                    0o644
                ),
                ("/workspace/old.txt".into(), "file".into(), 10, None, 0o644),
                ("/workspace/run.sh".into(), "file".into(), 22, None, 0o755),
                ("/workspace/src".into(), "directory".into(), 0, None, 0o755),
            ]
        );
        // The default path is /workspace; relative paths are under it.
        assert_eq!(rows(&w.list(".", false)), rows(&top));
        let all = w.list("/workspace", true);
        assert_eq!(
            paths(&all),
            [
                "/workspace/data.bin",
                "/workspace/link",
                "/workspace/notes.txt",
                "/workspace/old.txt",
                "/workspace/run.sh",
                "/workspace/src",
                "/workspace/src/app.py",
                "/workspace/src/rel",
            ]
        );
        assert_eq!(all[7]["artifact_type"], "symlink");
        assert_eq!(all[7]["link_target"], "app.py");
        assert_eq!(paths(&w.list("src", false)), paths(&all[6..]));
        // A symlink lists itself and is never followed.
        let link = w.list("link", true);
        assert_eq!(link.len(), 1);
        assert_eq!(link[0]["path"], "/workspace/link");
        assert_eq!(link[0]["artifact_type"], "symlink");
        assert_eq!(link[0]["link_target"], "src/app.py");
        let file = w.list("/workspace/src/app.py", false);
        assert_eq!(file.len(), 1);
        assert_eq!(file[0]["size_bytes"], app_py().len());

        let text = w.run(&["file", "list", WS, "--recursive"]);
        text.assert_code(0);
        let out = text.stdout();
        assert!(
            out.starts_with("Workspace path: /workspace (recursive=yes)\n"),
            "{}",
            text.context()
        );
        for line in [
            "/workspace/link [symlink] size=10 -> src/app.py\n",
            "/workspace/run.sh [file] size=22\n",
            "/workspace/src [directory] size=0\n",
            "/workspace/src/rel [symlink] size=6 -> app.py\n",
        ] {
            assert!(out.contains(line), "missing {line:?}{}", text.context());
        }

        assert!(w
            .fails(&["file", "list", WS, "missing"], "not_found")
            .contains("/workspace/missing"));
        w.fails(&["file", "list", WS, "../x"], "invalid_argument");
        w.fails(&["file", "list", WS, "/etc"], "invalid_argument");
    });

    // ---- file read ---------------------------------------------------------
    w.activity_after("file read", false, || {
        let r = w.ok(&["file", "read", WS, "notes.txt"]);
        assert_eq!(r["path"], "/workspace/notes.txt");
        assert_eq!(r["content"], "alpha\nbeta\ngamma\n");
        assert_eq!(r["encoding"], "utf8");
        assert_eq!(r["binary"], false);
        assert_eq!(r["truncated"], false);
        assert_eq!(r["size_bytes"], 17);
        assert_eq!(r["max_bytes"], 65536);
        assert_eq!(r["execution_mode"], "guest_vsock");
        let text = w.run(&["file", "read", WS, "/workspace/notes.txt"]);
        text.assert_code(0);
        assert_eq!(text.stdout(), "alpha\nbeta\ngamma\n", "{}", text.context());
        assert_eq!(
            text.stderr(),
            format!(
                "[workspace-file-read] workspace_id={} path=/workspace/notes.txt size_bytes=17 truncated=no binary=no\n",
                w.id
            )
        );
        assert_eq!(w.read("notes.txt"), b"alpha\nbeta\ngamma\n");

        // Binary: base64 in JSON, raw bytes with --content-only, a note
        // (no bytes on the terminal) otherwise.
        let b = w.ok(&["file", "read", WS, "data.bin"]);
        assert_eq!(b["binary"], true);
        assert_eq!(b["encoding"], "base64");
        assert_eq!(b["content"], base64(DATA_BIN));
        assert_eq!(b["size_bytes"], DATA_BIN.len());
        assert_eq!(w.read("data.bin"), DATA_BIN);
        let text = w.run(&["file", "read", WS, "data.bin"]);
        text.assert_code(0);
        assert!(text.output.stdout.is_empty(), "{}", text.context());
        assert!(
            text.stderr().contains("is not text") && text.stderr().contains("binary=yes"),
            "{}",
            text.context()
        );

        // --max-bytes cuts and says so.
        let cut = w.ok(&["file", "read", WS, "notes.txt", "--max-bytes", "4"]);
        assert_eq!(cut["content"], "alph");
        assert_eq!(cut["truncated"], true);
        assert_eq!(cut["size_bytes"], 17);
        assert_eq!(cut["max_bytes"], 4);
        let run = w.run(&[
            "file",
            "read",
            WS,
            "data.bin",
            "--max-bytes",
            "3",
            "--content-only",
        ]);
        run.assert_code(0);
        assert_eq!(run.output.stdout, &DATA_BIN[..3]);
        let exact = w.ok(&["file", "read", WS, "notes.txt", "--max-bytes", "17"]);
        assert_eq!(exact["truncated"], false);
        w.fails(
            &["file", "read", WS, "notes.txt", "--max-bytes", "0"],
            "invalid_argument",
        );

        assert!(w
            .fails(&["file", "read", WS, "nope.txt"], "not_found")
            .contains("/workspace/nope.txt"));
        for bad in ["../x", "/etc/passwd", "/workspace/../etc/passwd", "/workspace"] {
            w.fails(&["file", "read", WS, bad], "invalid_argument");
        }
        // A symlink is not followed, a directory is not a file.
        w.fails(&["file", "read", WS, "link"], "invalid_argument");
        w.fails(&["file", "read", WS, "src"], "invalid_argument");
    });

    // ---- a symlinked parent pointing outside /workspace ----------------------
    w.sh("ln -s /etc /workspace/etclink");
    assert!(w
        .fails(&["file", "read", WS, "etclink/passwd"], "invalid_argument")
        .contains("symlink"));
    w.fails(
        &["file", "read", WS, "etclink/hostname"],
        "invalid_argument",
    );
    w.fails(&["file", "list", WS, "etclink/ssl"], "invalid_argument");
    let link = w.list("etclink", false);
    assert_eq!(link.len(), 1);
    assert_eq!(link[0]["link_target"], "/etc");
    w.fails(
        &["file", "write", WS, "etclink/pyro-written", "--text", "x"],
        "invalid_argument",
    );
    w.fails(
        &[
            "patch",
            "apply",
            WS,
            "--patch",
            "--- /dev/null\n+++ b/etclink/pyro-patched\n@@ -0,0 +1 @@\n+x\n",
        ],
        "invalid_argument",
    );
    w.fails(
        &[
            "export",
            WS,
            "etclink/passwd",
            "--output",
            &s(&h.join("passwd")),
        ],
        "invalid_argument",
    );
    assert!(!h.join("passwd").exists());
    assert_eq!(
        w.sh("ls /etc/pyro-written /etc/pyro-patched 2>/dev/null; true"),
        ""
    );
    w.sh("rm /workspace/etclink");

    // ---- file write --------------------------------------------------------
    let wr = w.activity_after("file write", true, || {
        w.ok(&[
            "file",
            "write",
            WS,
            "run.sh",
            "--text",
            "#!/bin/sh\necho written\n",
        ])
    });
    assert_eq!(wr["path"], "/workspace/run.sh");
    assert_eq!(wr["mode"], 0o755, "an existing file keeps its mode");
    assert_eq!(wr["bytes_written"], 23);
    assert_eq!(wr["size_bytes"], 23);
    assert_eq!(w.sh("stat -c %a run.sh; ./run.sh"), "755\nwritten\n");

    let text = w.run(&[
        "file",
        "write",
        WS,
        "made/deep/new.txt",
        "--text",
        "brand new\n",
    ]);
    text.assert_code(0);
    assert_eq!(
        text.stdout(),
        format!(
            "[workspace-file-write] workspace_id={} path=/workspace/made/deep/new.txt bytes_written=10 mode=0644 execution_mode=guest_vsock\n",
            w.id
        )
    );
    assert_eq!(
        w.sh("stat -c '%a %F' made/deep/new.txt made/deep made"),
        "644 regular file\n755 directory\n755 directory\n"
    );
    assert_eq!(w.read_text("made/deep/new.txt"), "brand new\n");

    let text_file = h.join("from-host.txt");
    std::fs::write(&text_file, "from a host file\nüñí\n").unwrap();
    let wr = w.ok(&[
        "file",
        "write",
        WS,
        "/workspace/fromfile.txt",
        "--text-file",
        &s(&text_file),
    ]);
    assert_eq!(wr["mode"], 0o644);
    assert_eq!(w.read_text("fromfile.txt"), "from a host file\nüñí\n");

    w.activity_after("a refused write", false, || {
        assert!(w
            .fails(
                &[
                    "file",
                    "write",
                    WS,
                    "never.txt",
                    "--text-file",
                    &s(&h.join("no-such-file")),
                ],
                "invalid_argument",
            )
            .contains("not found"));
        w.fails(&["file", "read", WS, "never.txt"], "not_found");
        for bad in ["/workspace", ".", "/workspace/", "../x", "/etc/x"] {
            w.fails(
                &["file", "write", WS, bad, "--text", "x"],
                "invalid_argument",
            );
        }
        // Only regular files are written: not a directory, not a symlink.
        w.fails(
            &["file", "write", WS, "src", "--text", "x"],
            "invalid_argument",
        );
        w.fails(
            &["file", "write", WS, "link", "--text", "x"],
            "invalid_argument",
        );
    });
    assert_eq!(w.list("link", false)[0]["link_target"], "src/app.py");
    assert_eq!(w.read_text("src/app.py"), app_py());

    // ---- sync push ---------------------------------------------------------
    let push = h.join("push");
    std::fs::create_dir_all(push.join("sub")).unwrap();
    std::fs::write(push.join("a.txt"), "aaa").unwrap();
    std::fs::write(push.join("sub/b.txt"), "bbbb").unwrap();
    let sync = w.activity_after("sync push", true, || w.ok(&["sync", "push", WS, &s(&push)]));
    let ws = &sync["workspace_sync"];
    assert_eq!(sync["execution_mode"], "guest_vsock");
    assert_eq!(ws["mode"], "directory");
    assert_eq!(ws["destination"], "/workspace");
    assert_eq!(ws["source_path"], s(&push));
    assert_eq!(ws["entry_count"], 3, "{sync}");
    assert_eq!(ws["bytes_written"], 7);
    assert_eq!(w.read_text("a.txt"), "aaa");
    assert_eq!(w.read_text("sub/b.txt"), "bbbb");

    let tree = h.join("tgz-tree");
    std::fs::create_dir_all(tree.join("deep")).unwrap();
    std::fs::write(tree.join("t1.txt"), "tgz1\n").unwrap();
    std::fs::write(tree.join("deep/t2.txt"), "tgz2\n").unwrap();
    let tgz = h.join("push.tgz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&tree)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let text = w.run(&["sync", "push", WS, &s(&tgz), "--dest", "pushed/tgz"]);
    text.assert_code(0);
    assert!(
        text.stdout().contains(&format!(
            "[workspace-sync] workspace_id={} mode=archive source={} destination=/workspace/pushed/tgz entry_count=3 bytes_written=10 execution_mode=guest_vsock",
            w.id,
            s(&tgz)
        )),
        "{}",
        text.context()
    );
    assert_eq!(w.read_text("pushed/tgz/t1.txt"), "tgz1\n");
    assert_eq!(w.read_text("/workspace/pushed/tgz/deep/t2.txt"), "tgz2\n");

    // Archives that climb out or name absolute paths are refused whole:
    // not even their harmless entries are written.
    let climbing = h.join("climb.tar");
    std::fs::write(
        &climbing,
        raw_tar(&[("ok.txt", b"ok\n"), ("../evil", b"evil\n")]),
    )
    .unwrap();
    let absolute = h.join("absolute.tar");
    std::fs::write(
        &absolute,
        raw_tar(&[("ok2.txt", b"ok\n"), ("/abs-evil.txt", b"evil\n")]),
    )
    .unwrap();
    let absolute_gz = gzip(&absolute);
    w.activity_after("a refused sync push", false, || {
        for (archive, needle) in [
            (&climbing, "../evil"),
            (&absolute, "/abs-evil.txt"),
            (&absolute_gz, "/abs-evil.txt"),
        ] {
            for dest in ["/workspace", "landing"] {
                let msg = w.fails(
                    &["sync", "push", WS, &s(archive), "--dest", dest],
                    "invalid_argument",
                );
                assert!(msg.contains(needle), "{msg}");
            }
        }
        w.fails(&["file", "list", WS, "landing"], "not_found");
        w.fails(&["file", "read", WS, "ok.txt"], "not_found");
        w.fails(&["file", "read", WS, "ok2.txt"], "not_found");
        w.fails(
            &["sync", "push", WS, &s(&push), "--dest", "../up"],
            "invalid_argument",
        );
        w.fails(
            &["sync", "push", WS, &s(&h.join("missing-dir"))],
            "invalid_argument",
        );
    });
    assert_eq!(
        w.sh("ls /evil /abs-evil.txt /workspace/evil 2>/dev/null; true"),
        ""
    );

    // ---- patch apply -------------------------------------------------------
    let good = "--- a/notes.txt\n+++ b/notes.txt\n@@ -1,3 +1,3 @@\n alpha\n-beta\n+BETA\n gamma\n\
                --- /dev/null\n+++ b/added/new.txt\n@@ -0,0 +1,2 @@\n+new 1\n+new 2\n\
                --- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-delete me\n";
    let patch_file = h.join("good.patch");
    std::fs::write(&patch_file, good).unwrap();
    let p = w.activity_after("patch apply", true, || {
        w.ok(&["patch", "apply", WS, "--patch-file", &s(&patch_file)])
    });
    assert_eq!(p["changed"], true);
    assert_eq!(p["summary"]["total"], 3, "{p}");
    assert_eq!(p["summary"]["added"], 1);
    assert_eq!(p["summary"]["modified"], 1);
    assert_eq!(p["summary"]["deleted"], 1);
    let entries: Vec<(String, String)> = p["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("/workspace/added/new.txt".into(), "added".into()),
            ("/workspace/notes.txt".into(), "modified".into()),
            ("/workspace/old.txt".into(), "deleted".into()),
        ]
    );
    assert_eq!(p["patch"], good);
    assert_eq!(w.read_text("notes.txt"), "alpha\nBETA\ngamma\n");
    assert_eq!(w.read_text("added/new.txt"), "new 1\nnew 2\n");
    w.fails(&["file", "read", WS, "old.txt"], "not_found");
    assert_eq!(w.sh("stat -c %a added/new.txt notes.txt"), "644\n644\n");

    let text = w.run(&[
        "patch",
        "apply",
        WS,
        "--patch",
        "--- a/src/app.py\n+++ b/src/app.py\n@@ -1,4 +1,4 @@\n-line 1\n+LINE 1\n line 2\n line 3\n line 4\n",
    ]);
    text.assert_code(0);
    assert_eq!(
        text.stdout(),
        format!(
            "[workspace-patch] workspace_id={} total=1 added=0 modified=1 deleted=0 execution_mode=guest_vsock\n",
            w.id
        )
    );
    let app_now = app_py().replacen("line 1\n", "LINE 1\n", 1);
    assert_eq!(w.read_text("src/app.py"), app_now);

    // The second hunk of src/app.py does not match: nothing changes, not
    // notes.txt (patched fine before it) nor the new file's directory.
    let failing = "--- a/notes.txt\n+++ b/notes.txt\n@@ -1,3 +1,3 @@\n-alpha\n+ALPHA\n BETA\n gamma\n\
                   --- a/src/app.py\n+++ b/src/app.py\n@@ -2,3 +2,3 @@\n line 2\n-line 3\n+LINE 3\n line 4\n\
                   @@ -14,3 +14,3 @@\n line 14\n-line 15 is not here\n+LINE 15\n line 16\n\
                   --- /dev/null\n+++ b/fresh/x.txt\n@@ -0,0 +1 @@\n+fresh\n";
    w.activity_after("a refused patch", false, || {
        let msg = w.fails(
            &["patch", "apply", WS, "--patch", failing],
            "invalid_argument",
        );
        assert!(
            msg.contains("hunk 2 of src/app.py") && msg.contains("does not apply"),
            "{msg}"
        );
        for malformed in [
            "this is not a patch\n",
            "--- a/notes.txt\n+++ b/notes.txt\n@@ -1,3 +1,3 @@\n alpha\n",
            "--- a/../x\n+++ b/../x\n@@ -1 +1 @@\n-a\n+b\n",
            "--- a/notes.txt\n+++ b/notes.txt\n@@ -1,3 +1,3 @@\n-alpha\n+ALPHA\n BETA\n gamma\n\
             --- a/notes.txt\n+++ b/notes.txt\n@@ -1,3 +1,3 @@\n-alpha\n+ALPHA\n BETA\n gamma\n",
        ] {
            w.fails(
                &["patch", "apply", WS, "--patch", malformed],
                "invalid_argument",
            );
        }
        // A patch that expects a missing file, or creates an existing one.
        w.fails(
            &[
                "patch",
                "apply",
                WS,
                "--patch",
                "--- a/nope.txt\n+++ b/nope.txt\n@@ -1 +1 @@\n-a\n+b\n",
            ],
            "invalid_argument",
        );
        w.fails(
            &[
                "patch",
                "apply",
                WS,
                "--patch",
                "--- /dev/null\n+++ b/notes.txt\n@@ -0,0 +1 @@\n+x\n",
            ],
            "invalid_argument",
        );
        // The binary file cannot be patched.
        w.fails(
            &[
                "patch",
                "apply",
                WS,
                "--patch",
                "--- a/data.bin\n+++ b/data.bin\n@@ -1 +1 @@\n-a\n+b\n",
            ],
            "invalid_argument",
        );
        w.fails(&["patch", "apply", WS, "--patch", ""], "invalid_argument");
        w.fails(
            &[
                "patch",
                "apply",
                WS,
                "--patch-file",
                &s(&h.join("no.patch")),
            ],
            "invalid_argument",
        );
    });
    assert_eq!(w.read_text("notes.txt"), "alpha\nBETA\ngamma\n");
    assert_eq!(w.read_text("src/app.py"), app_now);
    assert_eq!(w.read("data.bin"), DATA_BIN);
    w.fails(&["file", "list", WS, "fresh"], "not_found");
    assert_eq!(
        w.sh("find /workspace -name '*.pyro-*'"),
        "",
        "no staged files are left"
    );

    // ---- diff --------------------------------------------------------------
    // A binary change on top of the text ones.
    w.sh("printf 'A' | cat - data.bin > /tmp/d && cat /tmp/d > data.bin");
    let d = w.activity_after("diff", false, || w.ok(&["diff", WS]));
    assert_eq!(d["changed"], true);
    let got: Vec<(String, String, bool)> = d["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
                e["text_patch"].is_string(),
            )
        })
        .collect();
    let mut want: Vec<(String, String, bool)> = [
        ("a.txt", "added", true),
        ("added/new.txt", "added", true),
        ("data.bin", "modified", false),
        ("fromfile.txt", "added", true),
        ("made/deep/new.txt", "added", true),
        ("notes.txt", "modified", true),
        ("old.txt", "deleted", true),
        ("pushed/tgz/deep/t2.txt", "added", true),
        ("pushed/tgz/t1.txt", "added", true),
        ("run.sh", "modified", true),
        ("src/app.py", "modified", true),
        ("sub/b.txt", "added", true),
    ]
    .iter()
    .map(|(p, s, t)| (p.to_string(), s.to_string(), *t))
    .collect();
    want.sort();
    assert_eq!(got, want, "{d}");
    let sum = &d["summary"];
    assert_eq!(sum["total"], 12, "{d}");
    assert_eq!(sum["added"], 7);
    assert_eq!(sum["modified"], 4);
    assert_eq!(sum["deleted"], 1);
    assert_eq!(sum["type_changed"], 0);
    assert_eq!(sum["text_patched"], 11);
    assert_eq!(sum["non_text"], 1);
    let patch = d["patch"].as_str().unwrap();
    for piece in [
        "--- a/notes.txt\n+++ b/notes.txt\n",
        "-beta\n+BETA\n",
        "--- /dev/null\n+++ b/added/new.txt\n",
        "+new 1\n+new 2\n",
        "--- a/old.txt\n+++ /dev/null\n",
        "-delete me\n",
        "--- a/run.sh\n+++ b/run.sh\n",
        "-echo seeded\n+echo written\n",
        "-line 1\n+LINE 1\n",
    ] {
        assert!(patch.contains(piece), "missing {piece:?} in\n{patch}");
    }
    assert!(!patch.contains("data.bin"), "{patch}");
    let data_entry = d["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "data.bin")
        .unwrap()
        .clone();
    assert_eq!(data_entry["artifact_type"], "file");
    assert!(data_entry["text_patch"].is_null());
    let text = w.run(&["diff", WS]);
    text.assert_code(0);
    let out = text.stdout();
    assert!(
        out.starts_with(&format!(
            "[workspace-diff] workspace_id={} total=12 added=7 modified=4 deleted=1 type_changed=0 text_patched=11 non_text=1\n\
             modified data.bin [file] (no text patch)\n",
            w.id
        )),
        "{}",
        text.context()
    );
    assert!(out.ends_with(patch), "{}", text.context());

    // ---- export ------------------------------------------------------------
    let out_dir = h.join("out");
    let staging_left = |name: &str| -> Vec<String> {
        std::fs::read_dir(&out_dir)
            .map(|r| {
                r.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&format!(".{name}.pyro-export")))
                    .collect()
            })
            .unwrap_or_default()
    };
    w.activity_after("export", false, || {
        let f = w.ok(&[
            "export",
            WS,
            "notes.txt",
            "--output",
            &s(&out_dir.join("notes.txt")),
        ]);
        assert_eq!(f["workspace_path"], "/workspace/notes.txt");
        assert_eq!(f["output_path"], s(&out_dir.join("notes.txt")));
        assert_eq!(f["artifact_type"], "file");
        assert_eq!(f["entry_count"], 1);
        assert_eq!(f["bytes_written"], 17);
        assert_eq!(f["execution_mode"], "guest_vsock");
        assert_eq!(
            std::fs::read_to_string(out_dir.join("notes.txt")).unwrap(),
            "alpha\nBETA\ngamma\n"
        );
        let bin = w.ok(&[
            "export",
            WS,
            "data.bin",
            "--output",
            &s(&out_dir.join("data.bin")),
        ]);
        assert_eq!(bin["artifact_type"], "file");
        assert_eq!(std::fs::read(out_dir.join("data.bin")).unwrap(), w.read("data.bin"));

        let text = w.run(&["export", WS, "src", "--output", &s(&out_dir.join("src"))]);
        text.assert_code(0);
        assert!(
            text.stdout().contains(&format!(
                "[workspace-export] workspace_id={} workspace_path=/workspace/src output_path={} artifact_type=directory entry_count=2 bytes_written={} execution_mode=guest_vsock\n",
                w.id,
                s(&out_dir.join("src")),
                app_now.len()
            )),
            "{}",
            text.context()
        );
        assert_eq!(
            std::fs::read_to_string(out_dir.join("src/app.py")).unwrap(),
            app_now
        );
        assert_eq!(
            std::fs::read_link(out_dir.join("src/rel")).unwrap(),
            Path::new("app.py")
        );
        let mut names: Vec<String> = std::fs::read_dir(out_dir.join("src"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["app.py", "rel"]);
        // A symlink is exported as a symlink.
        let l = w.ok(&["export", WS, "link", "--output", &s(&out_dir.join("link"))]);
        assert_eq!(l["artifact_type"], "symlink");
        assert_eq!(
            std::fs::read_link(out_dir.join("link")).unwrap(),
            Path::new("src/app.py")
        );
        // A whole nested directory.
        let nested = w.ok(&[
            "export",
            WS,
            "/workspace/pushed",
            "--output",
            &s(&out_dir.join("deeper/pushed")),
        ]);
        assert_eq!(nested["entry_count"], 4, "{nested}");
        assert_eq!(nested["bytes_written"], 10);
        assert_eq!(
            std::fs::read_to_string(out_dir.join("deeper/pushed/tgz/deep/t2.txt")).unwrap(),
            "tgz2\n"
        );

        // An existing output is never replaced.
        std::fs::write(out_dir.join("exists"), "keep me").unwrap();
        w.fails(
            &[
                "export",
                WS,
                "notes.txt",
                "--output",
                &s(&out_dir.join("exists")),
            ],
            "conflict",
        );
        assert_eq!(
            std::fs::read_to_string(out_dir.join("exists")).unwrap(),
            "keep me"
        );
        w.fails(
            &["export", WS, "src", "--output", &s(&out_dir.join("src"))],
            "conflict",
        );
        w.fails(
            &["export", WS, "missing", "--output", &s(&out_dir.join("missing"))],
            "not_found",
        );
        w.fails(
            &["export", WS, "../x", "--output", &s(&out_dir.join("x"))],
            "invalid_argument",
        );
        assert!(!out_dir.join("missing").exists());
        assert!(!out_dir.join("x").exists());
    });

    // Symlinks pointing outside the tree are refused on the host; nothing
    // is left at the output or beside it.
    w.sh(
        "mkdir bad1 bad2 && echo fine > bad1/fine.txt && ln -s /etc/passwd bad1/pw \
         && echo fine > bad2/fine.txt && ln -s ../.. bad2/up",
    );
    w.activity_after("a refused export", false, || {
        for (path, name) in [
            ("bad1", "bad1"),
            ("bad2", "bad2"),
            ("bad1/pw", "pw"),
            ("/workspace", "whole"),
        ] {
            let msg = w.fails(
                &["export", WS, path, "--output", &s(&out_dir.join(name))],
                "invalid_argument",
            );
            assert!(msg.contains("symlink"), "{msg}");
            assert!(
                out_dir.join(name).symlink_metadata().is_err(),
                "{path}: something was left at the output"
            );
            assert_eq!(staging_left(name), Vec::<String>::new(), "{path}");
        }
    });
    w.sh("rm -r bad1 bad2");

    // ---- snapshots ---------------------------------------------------------
    let list = w.activity_after("snapshot list", false, || w.ok(&["snapshot", "list", WS]));
    assert_eq!(list["count"], 1);
    let base = &list["snapshots"][0];
    assert_eq!(base["snapshot_name"], "baseline");
    assert_eq!(base["kind"], "baseline");
    assert_eq!(base["deletable"], false);
    assert_eq!(base["entry_count"], 8);
    assert_eq!(base["bytes_written"], seed_bytes);

    let at_s1 = w.list("/workspace", true);
    let s1 = w.activity_after("snapshot create", true, || {
        w.ok(&["snapshot", "create", WS, "s1"])
    });
    assert_eq!(s1["snapshot_name"], "s1");
    assert_eq!(s1["kind"], "named");
    assert_eq!(s1["deletable"], true);
    assert_eq!(s1["workspace_id"], w.id.as_str());
    assert_eq!(s1["entry_count"], at_s1.len(), "{s1}");
    let file_bytes: u64 = at_s1
        .iter()
        .filter(|e| e["artifact_type"] == "file")
        .map(|e| e["size_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(s1["bytes_written"], file_bytes);
    let contents_at_s1: Vec<(String, Vec<u8>)> = at_s1
        .iter()
        .filter(|e| e["artifact_type"] == "file")
        .map(|e| {
            let p = e["path"].as_str().unwrap().to_string();
            let bytes = w.read(&p);
            (p, bytes)
        })
        .collect();

    w.activity_after("a refused snapshot change", false, || {
        assert!(w
            .fails(&["snapshot", "create", WS, "s1"], "conflict")
            .contains("s1"));
        w.fails(&["snapshot", "create", WS, "baseline"], "invalid_argument");
        w.fails(&["snapshot", "create", WS, "bad name"], "invalid_argument");
        w.fails(&["snapshot", "create", WS, "../x"], "invalid_argument");
        w.fails(&["snapshot", "delete", WS, "baseline"], "invalid_argument");
        w.fails(&["snapshot", "delete", WS, "nope"], "not_found");
    });
    std::thread::sleep(Duration::from_millis(20));
    w.ok(&["snapshot", "create", WS, "s2"]);
    let text = w.run(&["snapshot", "create", WS, "s3"]);
    text.assert_code(0);
    assert!(
        text.stdout().starts_with(&format!(
            "[workspace-snapshot-create] workspace_id={} snapshot_name=s3 kind=named entry_count={}",
            w.id,
            at_s1.len()
        )),
        "{}",
        text.context()
    );
    let names = |v: &Value| -> Vec<String> {
        v["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["snapshot_name"].as_str().unwrap().to_string())
            .collect()
    };
    let list = w.ok(&["snapshot", "list", WS]);
    assert_eq!(list["count"], 4);
    assert_eq!(names(&list), ["baseline", "s3", "s2", "s1"]);
    let text = w.run(&["snapshot", "list", WS]);
    text.assert_code(0);
    assert!(
        text.stdout().starts_with(&format!(
            "baseline [baseline] entry_count=8 bytes_written={seed_bytes} deletable=no\ns3 [named] entry_count="
        )),
        "{}",
        text.context()
    );
    let del = w.activity_after("snapshot delete", true, || {
        w.ok(&["snapshot", "delete", WS, "s2"])
    });
    assert_eq!(del["deleted"], true);
    assert_eq!(del["snapshot_name"], "s2");
    let text = w.run(&["snapshot", "delete", WS, "s3"]);
    text.assert_code(0);
    assert_eq!(text.stdout(), "Deleted workspace snapshot: s3\n");
    assert_eq!(names(&w.ok(&["snapshot", "list", WS])), ["baseline", "s1"]);
    w.fails(&["snapshot", "delete", WS, "s2"], "not_found");

    // ---- reset -------------------------------------------------------------
    w.ok(&["file", "write", WS, "notes.txt", "--text", "after s1\n"]);
    w.ok(&[
        "file",
        "write",
        WS,
        "after.txt",
        "--text",
        "only after s1\n",
    ]);
    w.sh("rm run.sh && chmod 600 src/app.py && rm -r sub && mkdir -p later/dir");
    assert!(w.status()["command_count"].as_u64().unwrap() > 0);
    let pids_before = w.env.guest_pids(&w.id);
    assert_eq!(pids_before.len(), 2);

    // An unknown snapshot changes nothing: same guest, same files.
    w.activity_after("a refused reset", false, || {
        w.fails(&["reset", WS, "--snapshot", "nope"], "not_found");
    });
    let st = w.status();
    assert_eq!(st["state"], "started");
    assert_eq!(st["reset_count"], 0);
    assert_eq!(w.env.guest_pids(&w.id), pids_before);
    assert_eq!(w.read_text("after.txt"), "only after s1\n");

    let reset = w.activity_after("reset", true, || w.ok(&["reset", WS, "--snapshot", "s1"]));
    assert_eq!(reset["workspace_id"], w.id.as_str());
    assert_eq!(reset["state"], "started");
    assert_eq!(reset["reset_count"], 1);
    assert_eq!(reset["command_count"], 0);
    assert!(reset["last_reset_at"].is_f64(), "{reset}");
    let wr = &reset["workspace_reset"];
    assert_eq!(wr["snapshot_name"], "s1");
    assert_eq!(wr["kind"], "named");
    assert_eq!(wr["destination"], "/workspace");
    assert_eq!(wr["entry_count"], at_s1.len());
    assert_eq!(wr["bytes_written"], file_bytes);
    let st = w.status();
    assert_eq!(st["reset_count"], 1);
    assert_eq!(st["command_count"], 0);
    assert!(st["last_command"].is_null());
    let logs = w.run(&["logs", WS]);
    logs.assert_code(0);
    assert_eq!(logs.stdout(), "No workspace logs found.\n");
    assert_eq!(w.ok(&["logs", WS])["count"], 0);
    let pids_after = w.env.guest_pids(&w.id);
    assert_eq!(pids_after.len(), 2);
    assert_ne!(pids_after, pids_before, "a reset boots a fresh guest");
    w.env.assert_records_agree();
    // /workspace is exactly what it was at s1.
    let now = w.list("/workspace", true);
    assert_eq!(rows(&now), rows(&at_s1));
    for (p, bytes) in &contents_at_s1 {
        assert_eq!(&w.read(p), bytes, "{p}");
    }
    assert_eq!(w.sh("./run.sh"), "written\n");
    // diff still compares with the create-time baseline.
    assert_eq!(w.ok(&["diff", WS])["summary"]["total"], 12);

    // ---- the stopped disk --------------------------------------------------
    let img = h.join("disk.img");
    for args in [
        vec!["disk", "list", WS],
        vec!["disk", "read", WS, "notes.txt"],
        vec!["disk", "export", WS, "--output", &s(&img)],
    ] {
        assert!(w.fails(&args, "invalid_state").contains("started"));
    }
    assert!(!img.exists());
    // A symlink to a directory inside the tree: never crossed, running or
    // stopped.
    w.sh("ln -s src /workspace/srclink");
    w.fails(&["file", "read", WS, "srclink/app.py"], "invalid_argument");
    let before_stop = w.list("/workspace", true);
    let data_now = w.read("data.bin");
    w.run(&["stop", WS]).assert_code(0);
    w.env.assert_records_agree();
    w.fails(&["file", "list", WS], "invalid_state");
    w.fails(&["file", "read", WS, "notes.txt"], "invalid_state");
    w.fails(&["diff", WS], "invalid_state");

    w.activity_after("disk commands", false, || {
        let l = w.ok(&["disk", "list", WS, "--recursive"]);
        assert_eq!(l["execution_mode"], "host_disk");
        assert_eq!(l["path"], "/workspace");
        assert_eq!(
            rows(l["entries"].as_array().unwrap()),
            rows(&before_stop),
            "the disk holds what the guest showed"
        );
        let l = w.ok(&["disk", "list", WS, "src"]);
        assert_eq!(
            paths(l["entries"].as_array().unwrap()),
            ["/workspace/src/app.py", "/workspace/src/rel"]
        );
        let text = w.run(&["disk", "list", WS]);
        text.assert_code(0);
        assert!(
            text.stdout()
                .starts_with("Workspace disk path: /workspace (recursive=no)\n"),
            "{}",
            text.context()
        );
        assert!(
            text.stdout()
                .contains("/workspace/link [symlink] size=10 -> src/app.py\n"),
            "{}",
            text.context()
        );

        let r = w.ok(&["disk", "read", WS, "notes.txt"]);
        assert_eq!(r["content"], "alpha\nBETA\ngamma\n");
        assert_eq!(r["execution_mode"], "host_disk");
        assert_eq!(r["binary"], false);
        let b = w.ok(&["disk", "read", WS, "/workspace/data.bin"]);
        assert_eq!(b["binary"], true);
        assert_eq!(b["encoding"], "base64");
        assert_eq!(b["content"], base64(&data_now));
        let raw = w.run(&["disk", "read", WS, "data.bin", "--content-only"]);
        raw.assert_code(0);
        assert_eq!(raw.output.stdout, data_now);
        let cut = w.ok(&["disk", "read", WS, "src/app.py", "--max-bytes", "6"]);
        assert_eq!(cut["content"], "LINE 1");
        assert_eq!(cut["truncated"], true);
        assert_eq!(cut["size_bytes"], app_now.len());
        let text = w.run(&["disk", "read", WS, "made/deep/new.txt"]);
        text.assert_code(0);
        assert_eq!(text.stdout(), "brand new\n");
        assert!(
            text.stderr().starts_with("[workspace-disk-read] "),
            "{}",
            text.context()
        );
        w.fails(&["disk", "read", WS, "nope"], "not_found");
        w.fails(&["disk", "read", WS, "../x"], "invalid_argument");
        w.fails(&["disk", "list", WS, "/etc"], "invalid_argument");
        w.fails(&["disk", "read", WS, "srclink/app.py"], "invalid_argument");
        w.fails(&["disk", "list", WS, "srclink/app.py"], "invalid_argument");
        w.fails(&["disk", "read", WS, "link"], "invalid_argument");
        let l = w.ok(&["disk", "list", WS, "srclink", "--recursive"]);
        assert_eq!(rows(l["entries"].as_array().unwrap()).len(), 1);
        assert_eq!(l["entries"][0]["link_target"], "src");

        let e = w.ok(&["disk", "export", WS, "--output", &s(&img)]);
        assert_eq!(e["disk_format"], "ext4");
        assert_eq!(e["output_path"], s(&img));
        let size = std::fs::metadata(&img).unwrap().len();
        assert!(size > 0);
        assert_eq!(e["bytes_written"], size);
        std::fs::write(h.join("taken.img"), "keep").unwrap();
        w.fails(
            &["disk", "export", WS, "--output", &s(&h.join("taken.img"))],
            "conflict",
        );
        assert_eq!(
            std::fs::read_to_string(h.join("taken.img")).unwrap(),
            "keep"
        );
    });
    let debugfs = ["/sbin/debugfs", "/usr/sbin/debugfs"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if let Some(debugfs) = debugfs {
        for (file, want) in [
            ("/workspace/notes.txt", b"alpha\nBETA\ngamma\n".to_vec()),
            ("/workspace/data.bin", data_now.clone()),
            ("/workspace/pushed/tgz/t1.txt", b"tgz1\n".to_vec()),
        ] {
            let out = Command::new(debugfs)
                .arg("-R")
                .arg(format!("cat {file}"))
                .arg(&img)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            assert_eq!(out.stdout, want, "{file} in the exported image");
        }
    }

    let start = w.ok(&["start", WS]);
    assert_eq!(start["state"], "started");
    w.env.assert_records_agree();
    assert_eq!(rows(&w.list("/workspace", true)), rows(&before_stop));
    assert_eq!(w.read_text("notes.txt"), "alpha\nBETA\ngamma\n");
    assert_eq!(w.read("data.bin"), data_now);
    assert_eq!(w.sh("./run.sh"), "written\n");

    // ---- refusals that must hold whatever /workspace contains ---------------
    // Collected rather than asserted one by one, so each is reported and
    // the workspace is still deleted.
    let mut broken: Vec<String> = Vec::new();

    // sync push never writes through a symlink (one already in /workspace
    // included): a destination below a symlink to /etc is refused.
    w.sh("ln -s /etc /workspace/etclink");
    let evil = h.join("evil-push");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::write(evil.join("pyro-sync-evil.txt"), "pwned\n").unwrap();
    for dest in ["etclink", "etclink/sub"] {
        let run = w.run(&["sync", "push", WS, &s(&evil), "--dest", dest, "--json"]);
        if run.code() != Some(2) || run.json()["error"]["code"] != "invalid_argument" {
            broken.push(format!(
                "sync push --dest {dest} (a symlink to /etc) should be refused with invalid_argument{}",
                run.context()
            ));
        }
    }
    let through = h.join("through.tar");
    std::fs::write(
        &through,
        raw_tar(&[("etclink/pyro-sync-evil.txt", b"pwned\n")]),
    )
    .unwrap();
    let run = w.run(&["sync", "push", WS, &s(&through), "--json"]);
    if run.code() != Some(2) || run.json()["error"]["code"] != "invalid_argument" {
        broken.push(format!(
            "sync push of an archive entry below /workspace/etclink should be refused{}",
            run.context()
        ));
    }
    let leaked = w.sh("ls /etc/pyro-sync-evil.txt /etc/sub 2>/dev/null; true");
    if !leaked.is_empty() {
        broken.push(format!(
            "sync push wrote outside /workspace through a symlink: {leaked}"
        ));
    }
    w.sh("rm -rf /etc/pyro-sync-evil.txt /etc/sub");

    // A snapshot of a workspace holding an absolute symlink (python venvs
    // make them) restores: snapshot create accepted it, so reset must too.
    let snap = w.run(&["snapshot", "create", WS, "with-abs-link", "--json"]);
    if snap.code() == Some(0) {
        let reset = w.run(&["reset", WS, "--snapshot", "with-abs-link", "--json"]);
        if reset.code() != Some(0) {
            broken.push(format!(
                "snapshot create took a snapshot that reset cannot restore{}{}",
                reset.context(),
                w.run(&["status", WS]).context()
            ));
            // Even then, a failed reset loses nothing: the disk from before
            // it boots again with every file.
            if w.status()["state"] != "started" {
                w.run(&["start", WS]).assert_code(0);
            }
            assert_eq!(w.read_text("notes.txt"), "alpha\nBETA\ngamma\n");
            let src_before: Vec<Value> = before_stop
                .iter()
                .filter(|e| e["path"].as_str().unwrap().starts_with("/workspace/src/"))
                .cloned()
                .collect();
            assert_eq!(rows(&w.list("src", false)), rows(&src_before));
            assert_eq!(w.list("etclink", false)[0]["link_target"], "/etc");
        } else {
            let l = w.list("etclink", false);
            if l.len() != 1 || l[0]["link_target"] != "/etc" {
                broken.push(format!("etclink not restored: {l:?}"));
            }
        }
    } else {
        // Refusing such a snapshot up front would be consistent too.
        if snap.json()["error"]["code"] != "invalid_argument" {
            broken.push(format!("snapshot create failed oddly{}", snap.context()));
        }
    }

    w.env.assert_records_agree();
    let del = env.run(&["workspace", "delete", WS]);
    del.assert_code(0);
    env.assert_nothing_left();
    assert!(broken.is_empty(), "{}", broken.join("\n\n"));
}

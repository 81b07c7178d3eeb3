//! Harness for CLI tests: an isolated state dir per test, the shared
//! environment cache built once per run, and assertions that print the
//! whole command context when they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const ENV: &str = "debian:12";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// Environments are built once and shared by every test (and every run).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("PYRO_TEST_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/pyro-test-cache"))
}

/// One test's private state directory and command factory.
pub struct TestEnv {
    state: tempfile::TempDir,
    cache: PathBuf,
}

impl TestEnv {
    /// Uses the shared environment cache.
    pub fn new() -> TestEnv {
        Self::with_cache(cache_dir())
    }

    /// Uses a given cache (e.g. an empty one).
    pub fn with_cache(cache: PathBuf) -> TestEnv {
        let root = workspace_root().join("target/pyro-test-state");
        std::fs::create_dir_all(&root).unwrap();
        let state = tempfile::Builder::new()
            .prefix("t")
            .tempdir_in(root)
            .unwrap();
        TestEnv { state, cache }
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pyro"));
        cmd.args(args)
            .env("PYRO_STATE_DIR", self.state.path())
            .env("PYRO_CACHE_DIR", &self.cache)
            .env_remove("PYRO_ACCEL")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        let output = self.cmd(args).output().expect("pyro starts");
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            output,
        }
    }

    /// No QEMU or sidecar process mentions this state dir, and no VM
    /// runtime directory (sockets, overlay) is left.
    pub fn assert_nothing_left(&self) {
        let needle = self.state.path().to_string_lossy().into_owned();
        let mut leftovers = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) && !cmdline.contains("CARGO_BIN") {
                leftovers.push(cmdline);
            }
        }
        assert!(
            leftovers.is_empty(),
            "processes outlived the command: {leftovers:#?}"
        );
        let vms = self.state.path().join("vms");
        let left: Vec<_> = std::fs::read_dir(&vms)
            .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "VM runtime dirs left behind: {left:?}");
    }
}

impl Drop for TestEnv {
    /// A failed test may leave guests running; never let them outlive it.
    fn drop(&mut self) {
        let needle = self.state.path().to_string_lossy().into_owned();
        let Ok(read) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in read.filter_map(Result::ok) {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains(&needle)
                && (cmdline.contains("qemu-system")
                    || cmdline.contains("vhost-device-vsock")
                    || cmdline.contains("publish-proxy"))
            {
                // SAFETY: signalling a process started for this test.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// A finished command with context-rich assertions.
pub struct Run {
    pub args: Vec<String>,
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    pub fn context(&self) -> String {
        format!(
            "\n--- pyro {}\n--- status: {}\n--- stdout:\n{}\n--- stderr:\n{}\n",
            self.args.join(" "),
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "unexpected exit status{}",
            self.context()
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}){}", self.context()))
    }
}

/// Builds the test environment once per test run (a locked, idempotent pull).
pub fn ensure_env() {
    static PULLED: OnceLock<()> = OnceLock::new();
    PULLED.get_or_init(|| {
        let env = TestEnv::new();
        let run = env.run(&["env", "pull", ENV]);
        run.assert_code(0);
    });
}

impl TestEnv {
    /// Pids of QEMU and sidecar processes started for workspace `id`.
    pub fn guest_pids(&self, id: &str) -> Vec<(u32, String)> {
        let needle = format!("{}/workspaces/{id}/", self.state.path().display());
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let program = cmdline.split(' ').next().unwrap_or_default().to_string();
            let ours =
                program.ends_with("qemu-system-x86_64") || program.ends_with("vhost-device-vsock");
            // Zombies have an empty cmdline and do not match.
            if ours && cmdline.contains(&needle) {
                found.push((pid, program));
            }
        }
        found
    }

    /// Every record agrees with the processes on the host: a started
    /// workspace has its VMM and sidecar, any other has none, and no guest
    /// runs for a workspace without a record.
    pub fn assert_records_agree(&self) {
        let list = self.run(&["workspace", "list", "--json"]);
        list.assert_code(0);
        let list = list.json();
        let mut known = Vec::new();
        for w in list["workspaces"].as_array().unwrap() {
            let id = w["workspace_id"].as_str().unwrap().to_string();
            let pids = self.guest_pids(&id);
            match w["state"].as_str().unwrap() {
                "started" => assert_eq!(
                    pids.len(),
                    2,
                    "started {id} should have 2 processes: {pids:?} {w}"
                ),
                "creating" => {}
                other => assert!(pids.is_empty(), "{other} {id} still has processes {pids:?}"),
            }
            known.push(id);
        }
        let root = self.state.path().join("workspaces");
        if let Ok(read) = std::fs::read_dir(root) {
            for item in read.filter_map(Result::ok) {
                let id = item.file_name().to_string_lossy().into_owned();
                if !known.contains(&id) {
                    let pids = self.guest_pids(&id);
                    assert!(pids.is_empty(), "no record owns {id} but {pids:?} run");
                }
            }
        }
    }
}

/// Sends `sig` to a process.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: plain syscall.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Waits until `f` holds (polling), or panics after `limit`.
pub fn wait_until(limit: std::time::Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

//! Real guests: every test here boots one (under TCG where KVM does not
//! really work) and checks that nothing outlives the command.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::{ensure_env, TestEnv, ENV};

#[test]
fn exit_code_and_separate_streams() {
    ensure_env();
    let env = TestEnv::new();
    let run = env.run(&[
        "run",
        ENV,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    run.assert_code(7);
    assert_eq!(run.stdout(), "out\n", "{}", run.context());
    let stderr = run.stderr();
    assert!(stderr.contains("err\n"), "{}", run.context());
    assert!(!stderr.contains("out\n"), "{}", run.context());
    for phase in [
        "[run] phase=create environment=debian:12",
        "[run] phase=start vm_id=",
        "[run] phase=execute vm_id=",
    ] {
        assert!(stderr.contains(phase), "missing {phase}{}", run.context());
    }
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with(
            "[run] environment=debian:12 execution_mode=guest_vsock exit_code=7 duration_ms="
        ),
        "{}",
        run.context()
    );
    env.assert_nothing_left();
}

#[test]
fn json_result_has_the_contract_fields() {
    ensure_env();
    let env = TestEnv::new();
    let run = env.run(&["run", ENV, "--json", "--", "git", "--version"]);
    run.assert_code(0);
    let v = run.json();
    for key in [
        "environment",
        "environment_version",
        "command",
        "stdout",
        "stderr",
        "exit_code",
        "duration_ms",
        "execution_mode",
        "vm_id",
        "cleanup",
    ] {
        assert!(v.get(key).is_some(), "missing {key}{}", run.context());
    }
    assert_eq!(v["environment"], ENV);
    assert_eq!(v["command"], "git --version");
    assert!(
        v["stdout"].as_str().unwrap().starts_with("git version "),
        "{}",
        run.context()
    );
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["execution_mode"], "guest_vsock");
    assert_eq!(v["cleanup"]["deleted"], true);
    assert_eq!(v["cleanup"]["vm_id"], v["vm_id"]);
    assert!(
        run.stderr().is_empty(),
        "--json prints nothing else{}",
        run.context()
    );
    env.assert_nothing_left();
}

#[test]
fn command_not_found_is_127_with_a_message() {
    ensure_env();
    let env = TestEnv::new();
    let run = env.run(&["run", ENV, "--", "no-such-program", "x"]);
    run.assert_code(127);
    assert!(
        run.stderr().contains("no-such-program: command not found"),
        "{}",
        run.context()
    );
    env.assert_nothing_left();
}

#[test]
fn timeout_kills_the_process_tree() {
    ensure_env();
    let env = TestEnv::new();
    let started = Instant::now();
    // A background child keeps stdout open: only killing the whole group
    // lets the run end.
    let run = env.run(&[
        "run",
        ENV,
        "--timeout-seconds",
        "3",
        "--",
        "sh",
        "-c",
        "sleep 300 & echo started; sleep 300; echo never",
    ]);
    run.assert_code(124);
    assert_eq!(run.stdout(), "started\n", "{}", run.context());
    assert!(
        run.stderr().contains("command timed out after 3s"),
        "{}",
        run.context()
    );
    assert!(
        started.elapsed() < Duration::from_secs(200),
        "{}",
        run.context()
    );
    env.assert_nothing_left();
}

/// Peak resident memory of a running process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn twenty_mib_of_output_stream_with_flat_memory() {
    ensure_env();
    let env = TestEnv::new();
    const BYTES: usize = 20 * 1024 * 1024;
    let mut child = env
        .cmd(&[
            "run",
            ENV,
            "--",
            "head",
            "-c",
            &BYTES.to_string(),
            "/dev/zero",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let mut got = 0usize;
    let mut peak = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(buf[..n].iter().all(|b| *b == 0));
        got += n;
        peak = peak.max(rss_kib(pid).unwrap_or(0));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        got,
        BYTES,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
    // Buffering the output would need 20 MiB on its own.
    assert!(
        peak < 16 * 1024,
        "pyro's RSS peaked at {peak} KiB while streaming"
    );
    env.assert_nothing_left();
}

#[test]
fn guest_dying_mid_exec_is_a_clear_error() {
    ensure_env();
    let env = TestEnv::new();
    // Crash the guest kernel from inside while the command runs.
    let run = env.run(&[
        "run",
        ENV,
        "--",
        "sh",
        "-c",
        "echo before; sleep 1; echo c > /proc/sysrq-trigger; sleep 60",
    ]);
    run.assert_code(1);
    assert_eq!(run.stdout(), "before\n", "{}", run.context());
    assert!(
        run.stderr()
            .contains("error: the guest stopped while the command was running"),
        "{}",
        run.context()
    );
    env.assert_nothing_left();
}

#[test]
fn sigint_tears_everything_down() {
    ensure_env();
    let env = TestEnv::new();
    let mut child = env
        .cmd(&["run", ENV, "--", "sleep", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("[run] phase=execute") {
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "pyro ended before executing: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    env.assert_nothing_left();
}

#[test]
fn demo_prints_git_version_json() {
    ensure_env();
    let env = TestEnv::new();
    let run = env.run(&["demo"]);
    run.assert_code(0);
    let v = run.json();
    assert_eq!(v["exit_code"], 0);
    assert!(
        v["stdout"].as_str().unwrap().contains("git version"),
        "{}",
        run.context()
    );
    env.assert_nothing_left();
}

#[test]
fn doctor_probes_for_real() {
    ensure_env();
    let env = TestEnv::new();
    let run = env.run(&["doctor", "--json"]);
    run.assert_code(0);
    let v = run.json();
    assert_eq!(v["runtime_ok"], true, "{}", run.context());
    for key in ["exists", "readable", "writable", "boots"] {
        assert!(
            v["kvm"].get(key).is_some(),
            "kvm.{key} missing{}",
            run.context()
        );
    }
    // The accelerator follows from the probe: KVM only if a KVM guest booted.
    let boots = v["kvm"]["boots"].as_bool().unwrap_or(false);
    assert_eq!(
        v["accelerator"],
        if boots { "kvm" } else { "tcg" },
        "{}",
        run.context()
    );
    if std::env::var("PYRO_TEST_EXPECT_KVM").as_deref() == Ok("no") {
        assert_eq!(v["kvm"]["boots"], false, "{}", run.context());
    }
    assert_eq!(v["capabilities"]["vm_boot"], true);
    assert_eq!(v["capabilities"]["guest_exec"], true);
    let human = env.run(&["doctor"]);
    human.assert_code(0);
    assert!(
        human.stdout().contains("Runtime: PASS"),
        "{}",
        human.context()
    );
    assert!(
        human.stdout().contains("KVM: exists="),
        "{}",
        human.context()
    );
    env.assert_nothing_left();
}

#[test]
fn run_network_never_reaches_the_host_loopback() {
    ensure_env();
    let env = TestEnv::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    // Plain QEMU user networking would map the gateway 10.0.2.2 to the
    // host's loopback; `--network` is the egress policy, which must not.
    let script = format!(
        "if echo hello-from-guest > /dev/tcp/10.0.2.2/{port}; then echo reached; else echo blocked; fi; \
         ls /sys/class/net | tr '\\n' ' '"
    );
    let on = env.run(&["run", ENV, "--network", "--", "bash", "-c", &script]);
    on.assert_code(0);
    assert!(on.stdout().contains("blocked"), "{}", on.context());
    assert!(
        on.stdout().contains("eth0"),
        "no NIC with --network{}",
        on.context()
    );
    assert!(
        listener.accept().is_err(),
        "a guest reached the host's loopback"
    );
    env.assert_nothing_left();
}

//! `make bench`: pyro's speed beside the raw parts it is built from, all
//! measured in the same run on the same host. Prints progress on stderr and
//! one JSON document on stdout (and to `--output`).
//!
//! Comparisons and their targets:
//! - `cold_run`: a cold `pyro run debian:12 -- true` (wall time of the whole
//!   process) vs a bare QEMU boot of the same kernel and initramfs to the
//!   agent's probe marker (≤ 1.3×); also reported against the first guest
//!   output;
//! - `exec_round_trip`: exec of `true` on a booted guest vs a raw vsock echo
//!   round trip on a fresh connection, plus the guest-side spawn time
//!   (exec ≤ 1.5 × raw-with-connect + spawn);
//! - `stdout_throughput`: `head -c N /dev/zero` streamed through exec vs raw
//!   vsock throughput of the same N bytes (≥ 0.7×);
//! - `workspace_list`: `pyro workspace list --json` on an empty store
//!   (≤ 20 ms), on 10,000 records (≤ 60 ms) and with `--limit 20` (≤ 10 ms);
//! - `workspace_exec`: `pyro workspace exec ID -- true` on a running
//!   workspace (reported, no target);
//! - `mcp`: `pyro mcp serve` driven over stdio by a minimal JSON-RPC client
//!   (figures only, no targets): process start to the `initialize`
//!   response (a fresh server per sample), `tools/list` round trips on one
//!   server (and the tool count), and a `workspace_list` tool call on a
//!   store of 1,000 workspaces beside `pyro workspace list --json` on the
//!   same store, interleaved;
//! - `sync_push` and `export` (one workspace, `--no-transfer` skips them
//!   and `file_read_rtt`): a 200 MiB host tree of 2,000 small files and 4
//!   large ones pushed into /workspace and exported back, through the
//!   Manager in-process, vs raw vsock copies of the same byte count to and
//!   from the same guest, alternating (≥ 0.7×). Host to guest has no raw
//!   sink: the raw figure there is a `RawEcho` (the bytes cross twice, at
//!   once), and the JSON says so;
//! - `file_read_rtt`: `workspace_file_read` of a 4 KiB file beside
//!   `workspace_exec` of `true` on the same workspace, interleaved
//!   (figures only), and the same two on the guest handle alone.
//!   `--transfer-profile` adds a breakdown of where transfer time goes.
//! - `interactive` (one workspace, created through the Manager in-process;
//!   figures only): a shell's write-to-read echo round trip, the time from
//!   `service_start` to ready for a file-readiness service, and HTTP GETs
//!   through a published port beside the same GETs inside the guest
//!   (skipped, with the reason, without a static /bin/busybox on the host
//!   or slirp4netns).
//! - `templates` (through the Manager in-process): create to first exec
//!   from a template vs cold, alternating (template / cold ≤ 0.1); host
//!   memory of an idle workspace from a template 30 s after its create
//!   (≤ 120 MiB, one cold-booted one beside it); `--templates-count N`
//!   idle workspaces from the template held at once (create rate, an exec
//!   in each, memory, delete time).
//!
//! Every sample is kept in the JSON (in the order taken), beside its
//! median, min and max. Series that are compared with each other are
//! interleaved so that background load drifts affect both alike.
//!
//! Exits non-zero, with a message on stderr, when something fails; unmet
//! targets are reported in the JSON (`met: false`), not as a failure.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use pyro_core::{InstalledEnv, Manager};
use pyro_proto::{Connection, ExecRequest, Message, Request, Response};
use pyro_vmm::probe::boot_probe;
use pyro_vmm::{qemu, Accel, OutputSink, Vm, VmHandle, VmSpec};
use serde_json::{json, Value};

mod interactive;
mod templates;

const ENV: &str = "debian:12";
const USAGE: &str = "usage: pyro-bench --pyro PATH [--output FILE] [--cold-runs N] [--execs N] \
[--echoes N] [--stream-mib N] [--stream-reps N] [--transfer-reps N] [--transfer-profile] \
[--templates-count N] [--no-cold-run] [--no-guest] [--no-workspace] [--no-mcp] [--no-transfer] \
[--no-interactive] [--no-templates] [--only SERIES[,SERIES...]] \
(series: cold_run, guest, workspace, mcp, transfer, interactive, templates)";

/// Boot deadline for the bench's own guests and bare boots (TCG on a
/// loaded 2-core host is slow).
const BOOT_DEADLINE: Duration = Duration::from_secs(180);
/// No single raw vsock read may block longer than this.
const RAW_IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Guest memory: `pyro run`'s default, used for every guest here.
const GUEST_MEM_MIB: u32 = 1024;

// ---------------------------------------------------------------------------
// Arguments

struct Args {
    pyro: PathBuf,
    output: Option<PathBuf>,
    /// Cold `pyro run`s (and bare boots, interleaved), after one warm-up.
    cold_runs: usize,
    /// Exec round trips (and raw echoes with connect, interleaved).
    execs: usize,
    /// Raw echo round trips on one open connection.
    echoes: usize,
    /// Bytes streamed per throughput sample, in MiB.
    stream_mib: u64,
    /// Throughput samples of each kind.
    stream_reps: usize,
    /// Transfer samples (sync push, export and their raw copies) of each
    /// kind.
    transfer_reps: usize,
    /// Also break the transfers down (host tar, guest-local copies, small
    /// vs large files): roughly two more minutes under TCG.
    transfer_profile: bool,
    /// Run the cold run benchmarks.
    cold_run: bool,
    /// Run the round trip and throughput benchmarks on a bare guest.
    guest: bool,
    /// Run the workspace benchmarks.
    workspace: bool,
    /// Run the MCP server benchmarks.
    mcp: bool,
    /// Run the transfer benchmarks (sync push, export, file read).
    transfer: bool,
    /// Run the interactive benchmarks (shell echo, service readiness,
    /// published port).
    interactive: bool,
    /// Run the template benchmarks (create from a template vs cold, idle
    /// memory, many workspaces held at once).
    templates: bool,
    /// Workspaces held at once in the template benchmarks.
    templates_count: usize,
}

/// Names accepted by `--only`, each the switch of one group of series.
const SERIES: [&str; 7] = [
    "cold_run",
    "guest",
    "workspace",
    "mcp",
    "transfer",
    "interactive",
    "templates",
];

fn parse_args() -> Result<Args, String> {
    let mut pyro = None;
    let mut args = Args {
        pyro: PathBuf::new(),
        output: None,
        cold_runs: 3,
        execs: 20,
        echoes: 200,
        stream_mib: 128,
        stream_reps: 3,
        transfer_reps: 2,
        transfer_profile: false,
        cold_run: true,
        guest: true,
        workspace: true,
        mcp: true,
        transfer: true,
        interactive: true,
        templates: true,
        templates_count: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value; {USAGE}"));
        fn count(name: &str, v: String) -> Result<usize, String> {
            match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{name} must be a positive integer, not '{v}'")),
            }
        }
        match a.as_str() {
            "--pyro" => pyro = Some(PathBuf::from(value("--pyro")?)),
            "--output" => args.output = Some(PathBuf::from(value("--output")?)),
            "--cold-runs" => args.cold_runs = count(&a, value(&a)?)?,
            "--execs" => args.execs = count(&a, value(&a)?)?,
            "--echoes" => args.echoes = count(&a, value(&a)?)?,
            "--stream-mib" => args.stream_mib = count(&a, value(&a)?)? as u64,
            "--stream-reps" => args.stream_reps = count(&a, value(&a)?)?,
            "--transfer-reps" => args.transfer_reps = count(&a, value(&a)?)?,
            "--transfer-profile" => args.transfer_profile = true,
            "--templates-count" => args.templates_count = count(&a, value(&a)?)?,
            "--no-cold-run" => args.cold_run = false,
            "--no-guest" => args.guest = false,
            "--no-workspace" => args.workspace = false,
            "--no-mcp" => args.mcp = false,
            "--no-transfer" => args.transfer = false,
            "--no-interactive" => args.interactive = false,
            "--no-templates" => args.templates = false,
            "--only" => {
                let list = value(&a)?;
                let names: Vec<&str> = list.split(',').map(str::trim).collect();
                if let Some(bad) = names.iter().find(|n| !SERIES.contains(n)) {
                    return Err(format!(
                        "--only: unknown series '{bad}' (known: {})",
                        SERIES.join(", ")
                    ));
                }
                let on = |name: &str| names.contains(&name);
                args.cold_run = on("cold_run");
                args.guest = on("guest");
                args.workspace = on("workspace");
                args.mcp = on("mcp");
                args.transfer = on("transfer");
                args.interactive = on("interactive");
                args.templates = on("templates");
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}'; {USAGE}")),
        }
    }
    let pyro = pyro.ok_or(format!("--pyro PATH is required; {USAGE}"))?;
    args.pyro = std::fs::canonicalize(&pyro).map_err(|e| {
        format!(
            "the pyro CLI {} is not there ({e}); run `make build` first",
            pyro.display()
        )
    })?;
    Ok(args)
}

// ---------------------------------------------------------------------------
// Small helpers

fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// A pyro-core error with its hint, if it has one.
fn core_err(what: &str) -> impl FnOnce(pyro_core::Error) -> String + '_ {
    move |e| match e.hint() {
        Some(h) => format!("{what}: {e} (hint: {})", h.render(pyro_core::Surface::Cli)),
        None => format!("{what}: {e}"),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Median, min, max and every sample (in the order taken).
fn stats(samples: &[f64]) -> Value {
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    json!({
        "n": samples.len(),
        "median": round(median(samples)),
        "min": round(min),
        "max": round(max),
        "samples": samples.iter().map(|v| round(*v)).collect::<Vec<_>>(),
    })
}

/// One comparison against its target, also printed as progress.
fn verdict(label: &str, value: f64, target: &str, met: bool, detail: Value) -> Value {
    progress(&format!(
        "{label}: {value:.3} (target {target}) -> {}",
        if met { "MET" } else { "NOT MET" }
    ));
    let mut v = json!({"value": round(value), "target": target, "met": met});
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), detail) {
        obj.extend(extra);
    }
    v
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn loadavg() -> Value {
    let text = read_trimmed("/proc/loadavg").unwrap_or_default();
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    json!(v)
}

/// QEMU processes on the host (other guests compete for the same cores).
fn qemu_processes() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .map(|c| c.starts_with("qemu-system"))
                .unwrap_or(false)
        })
        .count()
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A short id unique to this bench process.
fn bench_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{:06x}{:06x}",
        std::process::id() & 0xff_ffff,
        (nanos >> 8) & 0xff_ffff
    )
}

// ---------------------------------------------------------------------------
// Running the pyro CLI

struct Cli<'a> {
    pyro: &'a Path,
}

impl Cli<'_> {
    /// Runs pyro (with `state` as PYRO_STATE_DIR when given); returns its
    /// output and the wall time of the process in ms.
    fn run(
        &self,
        state: Option<&Path>,
        argv: &[&str],
    ) -> Result<(std::process::Output, f64), String> {
        let mut cmd = Command::new(self.pyro);
        cmd.args(argv).stdin(Stdio::null());
        if let Some(state) = state {
            cmd.env("PYRO_STATE_DIR", state);
        }
        // `cold_run` measures a boot; templates have their own series.
        if argv.first() == Some(&"run") {
            cmd.env("PYRO_TEMPLATES", "off");
        }
        let started = Instant::now();
        let out = cmd
            .output()
            .ctx(&format!("running {}", self.pyro.display()))?;
        Ok((out, ms(started.elapsed())))
    }

    /// Runs pyro with `--json` among `argv` and parses what it printed;
    /// fails on a non-zero exit or `"ok": false`.
    fn json(&self, state: Option<&Path>, argv: &[&str]) -> Result<(Value, f64), String> {
        let (out, wall) = self.run(state, argv)?;
        let shown = format!("`pyro {}`", argv.join(" "));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "{shown} printed no JSON ({e}; {}); stderr: {}",
                out.status,
                stderr.trim()
            )
        })?;
        if v["ok"] == false {
            return Err(format!(
                "{shown} failed: {} ({})",
                v["error"]["message"].as_str().unwrap_or("no message"),
                v["error"]["code"].as_str().unwrap_or("no code")
            ));
        }
        if !out.status.success() {
            return Err(format!(
                "{shown} exited with {}; stderr: {}",
                out.status,
                stderr.trim()
            ));
        }
        Ok((v, wall))
    }
}

// ---------------------------------------------------------------------------
// 1. Cold run vs bare boot

struct ColdSample {
    wall_ms: f64,
    duration_ms: f64,
    create_ms: f64,
    boot_ms: f64,
    exec_ms: f64,
    cleanup_ms: f64,
}

fn one_cold_run(cli: &Cli, accel: Accel) -> Result<ColdSample, String> {
    let (v, wall_ms) = cli.json(None, &["run", ENV, "--json", "--", "true"])?;
    if v["exit_code"] != 0 {
        return Err(format!(
            "`pyro run {ENV} -- true` exited with {}: {v}",
            v["exit_code"]
        ));
    }
    if v["accelerator"] != accel.as_str() {
        return Err(format!(
            "`pyro run` used accelerator {} but the bare boot would use {}; the comparison would be unfair",
            v["accelerator"],
            accel.as_str()
        ));
    }
    let num = |v: &Value, what: &str| {
        v.as_f64()
            .ok_or(format!("`pyro run --json` has no numeric {what}"))
    };
    let t = &v["timings"];
    Ok(ColdSample {
        wall_ms,
        duration_ms: num(&v["duration_ms"], "duration_ms")?,
        create_ms: num(&t["create_ms"], "timings.create_ms")?,
        boot_ms: num(&t["boot_ms"], "timings.boot_ms")?,
        exec_ms: num(&t["exec_ms"], "timings.exec_ms")?,
        cleanup_ms: num(&t["cleanup_ms"], "timings.cleanup_ms")?,
    })
}

fn cold_run(
    args: &Args,
    cli: &Cli,
    m: &Manager,
    env: &InstalledEnv,
    accel: Accel,
) -> Result<Value, String> {
    progress("cold run: warm-up `pyro run` (page cache; not counted)");
    let warm = one_cold_run(cli, accel)?;
    progress(&format!("cold run warm-up: {:.0} ms", warm.wall_ms));

    let mut runs = Vec::new();
    let mut boot = Vec::new();
    let mut first = Vec::new();
    for i in 1..=args.cold_runs {
        let s = one_cold_run(cli, accel)?;
        progress(&format!(
            "cold run {i}/{}: wall {:.0} ms (create {:.0}, agent ready {:.0}, exec {:.0}, cleanup {:.0})",
            args.cold_runs, s.wall_ms, s.create_ms, s.boot_ms, s.exec_ms, s.cleanup_ms
        ));
        runs.push(s);

        // Same memory size as the runs; no disk, no vsock.
        let p = boot_probe(
            m.tools(),
            accel,
            &env.kernel(),
            &env.initramfs(),
            GUEST_MEM_MIB,
            BOOT_DEADLINE,
        )
        .ctx("bare QEMU boot")?;
        let (Some(b), true) = (p.boot_ms, p.boots) else {
            return Err(format!(
                "bare QEMU boot ({}) did not reach the agent: {}",
                accel.as_str(),
                p.detail.unwrap_or_else(|| "no detail".into())
            ));
        };
        let f = p.first_output_ms.unwrap_or(b);
        progress(&format!(
            "bare boot {i}/{}: first output {f} ms, agent probe marker {b} ms",
            args.cold_runs
        ));
        boot.push(b as f64);
        first.push(f as f64);
    }

    let col = |f: fn(&ColdSample) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    let wall = col(|s| s.wall_ms);
    let duration = col(|s| s.duration_ms);
    // Inside `Manager::run` but outside the four phases: env check,
    // accelerator choice (cached probe), orphan collection.
    let setup = col(|s| s.duration_ms - s.create_ms - s.boot_ms - s.exec_ms - s.cleanup_ms);
    // Outside `Manager::run`: process start, argument parsing, printing, exit.
    let process = col(|s| s.wall_ms - s.duration_ms);
    let ratio_boot = median(&wall) / median(&boot);
    let ratio_first = median(&wall) / median(&first);
    Ok(json!({
        "command": format!("{} run {ENV} --json -- true", args.pyro.display()),
        "runs": args.cold_runs,
        "accelerator": accel.as_str(),
        "warmup_wall_ms": round(warm.wall_ms),
        "pyro_wall_ms": stats(&wall),
        "pyro_duration_ms": stats(&duration),
        "split_ms": {
            "setup": stats(&setup),
            "vm_start": stats(&col(|s| s.create_ms)),
            "agent_ready": stats(&col(|s| s.boot_ms)),
            "exec_done": stats(&col(|s| s.exec_ms)),
            "cleanup": stats(&col(|s| s.cleanup_ms)),
            "process_overhead": stats(&process),
        },
        "bare_boot": {
            "how": format!("pyro_vmm::probe::boot_probe: same kernel + initramfs, pyro.probe=1, 1 vCPU, {GUEST_MEM_MIB} MiB, no disk, no vsock"),
            "first_output_ms": stats(&first),
            "agent_marker_ms": stats(&boot),
        },
        "ratio_wall_vs_bare_boot": verdict(
            "cold run wall / bare boot to agent marker",
            ratio_boot,
            "<= 1.3",
            ratio_boot <= 1.3,
            json!({"numerator_ms": round(median(&wall)), "denominator_ms": round(median(&boot))}),
        ),
        "ratio_wall_vs_bare_first_output": verdict(
            "cold run wall / bare boot to first output",
            ratio_first,
            "<= 1.3",
            ratio_first <= 1.3,
            json!({"numerator_ms": round(median(&wall)), "denominator_ms": round(median(&first))}),
        ),
    }))
}

// ---------------------------------------------------------------------------
// 2 and 3. Round trips and throughput on one directly booted guest

/// Counts output bytes, keeps nothing.
#[derive(Default)]
struct Count {
    stdout: u64,
    stderr: Vec<u8>,
}

impl OutputSink for Count {
    fn stdout(&mut self, chunk: &[u8]) {
        self.stdout += chunk.len() as u64;
    }
    fn stderr(&mut self, chunk: &[u8]) {
        if self.stderr.len() < 4096 {
            self.stderr.extend_from_slice(chunk);
        }
    }
}

fn exec_req(argv: &[&str], timeout: Duration) -> ExecRequest {
    ExecRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        cwd: None,
        timeout_ms: Some(timeout.as_millis() as u64),
        direct_output: true,
        output_token: None,
    }
}

/// Runs argv, checks it exited 0; returns (host wall ms, guest duration
/// ms, stdout bytes).
fn exec_checked(
    vm: &VmHandle,
    argv: &[&str],
    timeout: Duration,
) -> Result<(f64, f64, u64), String> {
    let mut sink = Count::default();
    let started = Instant::now();
    let out = vm
        .exec(exec_req(argv, timeout), &mut sink)
        .ctx(&format!("exec {argv:?}"))?;
    let wall = ms(started.elapsed());
    if out.exit_code != 0 {
        return Err(format!(
            "exec {argv:?} exited with {}: {}",
            out.exit_code,
            String::from_utf8_lossy(&sink.stderr).trim()
        ));
    }
    Ok((wall, out.duration_ms as f64, sink.stdout))
}

/// Exec of `true` through the framed protocol (connect + `agent::exec`),
/// without `Vm::exec`'s watchdog thread or output connections; host wall ms.
fn exec_unwatched(vm: &mut Vm, timeout: Duration) -> Result<f64, String> {
    let mut sink = Count::default();
    let started = Instant::now();
    let conn = vm.connect().ctx("connecting to the agent")?;
    conn.get_ref()
        .set_read_timeout(Some(timeout + RAW_IO_TIMEOUT))
        .ctx("configuring the agent connection")?;
    // The framed protocol: output through agent pipes, no extra connections.
    let mut req = exec_req(&["true"], timeout);
    req.direct_output = false;
    let out = pyro_vmm::agent::exec(conn, req, &mut sink)
        .map_err(|e| format!("exec `true` (protocol only): {e:?}"))?;
    let wall = ms(started.elapsed());
    if out.exit_code != 0 {
        return Err(format!("exec `true` exited with {}", out.exit_code));
    }
    Ok(wall)
}

/// Sends a raw benchmark request on a handshaken connection and returns
/// the bare stream once the agent has answered `Done`.
fn raw_request(mut conn: Connection<UnixStream>, req: Request) -> Result<UnixStream, String> {
    conn.get_ref()
        .set_read_timeout(Some(RAW_IO_TIMEOUT))
        .ctx("configuring the agent connection")?;
    conn.send(&Message::Request(req))
        .ctx("sending a raw request")?;
    match conn.expect().ctx("waiting for the agent's answer")? {
        Message::Response(Response::Done) => Ok(conn.into_inner()),
        Message::Error(e) => Err(format!("the agent refused a raw request: {}", e.message)),
        other => Err(format!(
            "unexpected {} in answer to a raw request",
            other.name()
        )),
    }
}

const ECHO_PAYLOAD: usize = 1;

fn ping(s: &mut UnixStream) -> Result<(), String> {
    let out = [0x5au8; ECHO_PAYLOAD];
    s.write_all(&out).ctx("raw echo write")?;
    let mut back = [0u8; ECHO_PAYLOAD];
    s.read_exact(&mut back).ctx("raw echo read")?;
    if back != out {
        return Err("raw echo returned different bytes".into());
    }
    Ok(())
}

/// One raw echo round trip on a fresh connection; returns the phases in ms
/// (vsock connect + Hello handshake, RawEcho request, 1-byte ping-pong).
fn echo_with_connect(vm: &mut Vm) -> Result<[f64; 3], String> {
    let t0 = Instant::now();
    let conn = vm.connect().ctx("connecting to the agent")?;
    let t1 = Instant::now();
    let mut s = raw_request(conn, Request::RawEcho)?;
    let t2 = Instant::now();
    ping(&mut s)?;
    let t3 = Instant::now();
    Ok([ms(t1 - t0), ms(t2 - t1), ms(t3 - t2)])
}

/// Reads a `RawSource` of `bytes` to EOF; returns MB/s including connect.
fn raw_source(vm: &VmHandle, bytes: u64, buf: &mut [u8]) -> Result<f64, String> {
    let started = Instant::now();
    let conn = vm.connect().ctx("connecting to the agent")?;
    let mut s = raw_request(conn, Request::RawSource { bytes })?;
    let mut got = 0u64;
    loop {
        match s.read(buf) {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the raw source after {got} bytes: {e}")),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if got != bytes {
        return Err(format!("the raw source sent {got} of {bytes} bytes"));
    }
    Ok(bytes as f64 / 1e6 / secs)
}

fn guest_benches(
    args: &Args,
    m: &Manager,
    env: &InstalledEnv,
    accel: Accel,
    vm_id: &str,
    dir: &Path,
) -> Result<(Value, Value, Value), String> {
    std::fs::create_dir_all(dir).ctx(&format!("creating {}", dir.display()))?;
    let spec = VmSpec {
        vm_id: vm_id.to_string(),
        dir: dir.to_path_buf(),
        kernel: env.kernel(),
        initramfs: env.initramfs(),
        rootfs: env.rootfs(),
        disk: pyro_vmm::DiskMode::Create,
        kernel_args: Vec::new(),
        vcpus: 1,
        mem_mib: GUEST_MEM_MIB,
        network: false,
        accel,
        boot: pyro_vmm::BootSource::Kernel,
    };
    progress(&format!(
        "booting a guest ({}) for round trips and throughput",
        accel.as_str()
    ));
    let started = Instant::now();
    // From here on the Vm owns QEMU and the sidecar: dropping it (on any
    // return path) kills both and removes `dir`.
    let mut vm = match qemu::start(&spec, m.tools()) {
        Ok(vm) => vm,
        Err(e) => {
            let _ = std::fs::remove_dir_all(dir);
            return Err(format!("starting the bench guest: {e}"));
        }
    };
    let start_ms = ms(started.elapsed());
    let ready = vm
        .wait_ready(BOOT_DEADLINE)
        .ctx("booting the bench guest")?;
    progress(&format!(
        "guest ready: start {start_ms:.0} ms, agent ready {:.0} ms after QEMU start",
        ms(ready.agent_ready)
    ));

    // Warm-up: first exec pages `true` in; first connection warms the path.
    let rtt_timeout = Duration::from_secs(30);
    let mut warmup = Vec::new();
    for _ in 0..3 {
        warmup.push(exec_checked(vm.handle(), &["true"], rtt_timeout)?.0);
    }
    echo_with_connect(&mut vm)?;

    // (c) exec round trips interleaved with (b) raw echo + connect.
    progress(&format!(
        "exec round trips: {} x exec `true`, interleaved with {} x raw echo on a fresh connection",
        args.execs, args.execs
    ));
    let mut exec = Vec::new();
    let mut spawn = Vec::new();
    let mut unwatched = Vec::new();
    let (mut connect, mut request, mut pingpong, mut fresh) = (vec![], vec![], vec![], vec![]);
    for _ in 0..args.execs {
        let (wall, guest, _) = exec_checked(vm.handle(), &["true"], rtt_timeout)?;
        exec.push(wall);
        spawn.push(guest);
        unwatched.push(exec_unwatched(&mut vm, rtt_timeout)?);
        let [c, r, p] = echo_with_connect(&mut vm)?;
        connect.push(c);
        request.push(r);
        pingpong.push(p);
        fresh.push(c + r + p);
    }

    // (a) raw echo on one open connection.
    progress(&format!(
        "raw echo: {} round trips on one open connection",
        args.echoes
    ));
    let conn = vm.connect().ctx("connecting to the agent")?;
    let mut s = raw_request(conn, Request::RawEcho)?;
    for _ in 0..10 {
        ping(&mut s)?;
    }
    let mut open = Vec::with_capacity(args.echoes);
    for _ in 0..args.echoes {
        let t = Instant::now();
        ping(&mut s)?;
        open.push(ms(t.elapsed()));
    }
    drop(s);

    let exec_med = median(&exec);
    let budget = 1.5 * median(&fresh) + median(&spawn);
    let round_trip = json!({
        "guest": {"vcpus": 1, "mem_mib": GUEST_MEM_MIB, "accelerator": accel.as_str(),
                  "start_ms": round(start_ms), "agent_ready_ms": round(ms(ready.agent_ready))},
        "echo_payload_bytes": ECHO_PAYLOAD,
        "warmup_exec_ms": warmup.iter().map(|v| round(*v)).collect::<Vec<_>>(),
        "raw_echo_open_connection_ms": stats(&open),
        "raw_echo_with_connect_ms": stats(&fresh),
        "raw_echo_with_connect_split_ms": {
            "connect_and_handshake": stats(&connect),
            "raw_echo_request": stats(&request),
            "ping_pong": stats(&pingpong),
        },
        "exec_true_ms": stats(&exec),
        "exec_true_protocol_only_ms": {
            "note": "vm.connect() + pyro_vmm::agent::exec with framed output (pipes through the agent), no QEMU liveness watchdog; Vm::exec uses direct output (two extra connections)",
            "stats": stats(&unwatched),
        },
        "guest_spawn_ms": {
            "note": "ExitInfo.duration_ms: whole milliseconds measured by the agent",
            "stats": stats(&spawn),
        },
        "exec_vs_raw": verdict(
            "exec rtt (ms) vs 1.5 x raw echo with connect + spawn",
            exec_med,
            &format!("<= {budget:.3} ms (1.5 x {:.3} + {:.3})", median(&fresh), median(&spawn)),
            exec_med <= budget,
            json!({"limit_ms": round(budget), "ratio_to_limit": round(exec_med / budget)}),
        ),
    });

    // 3. Throughput, exec and raw alternating.
    let bytes = args.stream_mib * 1024 * 1024;
    let count = bytes.to_string();
    progress(&format!(
        "stdout throughput: {} x {} MiB via exec `head -c` and via raw vsock, alternating",
        args.stream_reps, args.stream_mib
    ));
    let mut buf = vec![0u8; 256 * 1024];
    let stream_timeout = Duration::from_secs(600);
    let (mut exec_mbs, mut raw_mbs, mut dd_mbs) = (Vec::new(), Vec::new(), Vec::new());
    // `head` writes 8 KiB at a time; `dd bs=64k` writes in the raw
    // source's 64 KiB chunks, which separates pyro's cost from the
    // command's write size (informational, not a target).
    let blocks = (bytes / 65536).to_string();
    let dd_count = format!("count={blocks}");
    for i in 1..=args.stream_reps {
        let (wall, _, got) = exec_checked(
            vm.handle(),
            &["head", "-c", &count, "/dev/zero"],
            stream_timeout,
        )?;
        if got != bytes {
            return Err(format!("exec `head -c {bytes}` streamed {got} bytes"));
        }
        exec_mbs.push(bytes as f64 / 1e6 / (wall / 1000.0));
        raw_mbs.push(raw_source(vm.handle(), bytes, &mut buf)?);
        let (dd_wall, _, dd_got) = exec_checked(
            vm.handle(),
            &["dd", "if=/dev/zero", "bs=64k", &dd_count, "status=none"],
            stream_timeout,
        )?;
        dd_mbs.push(dd_got as f64 / 1e6 / (dd_wall / 1000.0));
        progress(&format!(
            "throughput {i}/{}: exec head {:.1} MB/s, exec dd bs=64k {:.1} MB/s, raw {:.1} MB/s",
            args.stream_reps,
            exec_mbs[i - 1],
            dd_mbs[i - 1],
            raw_mbs[i - 1]
        ));
    }
    let ratio = median(&exec_mbs) / median(&raw_mbs);
    let throughput = json!({
        "bytes": bytes,
        "unit": "MB/s (10^6 bytes per second), connection set-up included",
        "exec_head_c_mb_per_s": stats(&exec_mbs),
        "raw_vsock_mb_per_s": stats(&raw_mbs),
        "exec_dd_bs64k_mb_per_s": stats(&dd_mbs),
        "ratio_dd_bs64k_vs_raw": round(median(&dd_mbs) / median(&raw_mbs)),
        "ratio_exec_vs_raw": verdict("exec throughput / raw throughput", ratio, ">= 0.7", ratio >= 0.7, json!({})),
    });

    let t = Instant::now();
    vm.destroy();
    let teardown_ms = ms(t.elapsed());
    progress(&format!("bench guest torn down in {teardown_ms:.0} ms"));
    if dir.exists() {
        return Err(format!(
            "the bench guest's runtime dir {} was not removed",
            dir.display()
        ));
    }
    Ok((
        round_trip,
        throughput,
        json!({"teardown_ms": round(teardown_ms)}),
    ))
}

// ---------------------------------------------------------------------------
// 4 and 5. Workspaces

fn list_bench(cli: &Cli, root: &Path) -> Result<Value, String> {
    const N: usize = 20;
    let runs = |state: &Path, argv: &[&str]| -> Result<Vec<f64>, String> {
        cli.json(Some(state), argv)?; // warm-up
        (0..N)
            .map(|_| cli.json(Some(state), argv).map(|r| r.1))
            .collect()
    };
    progress(&format!(
        "workspace list: {N} runs each on an empty store, 10,000 records, --limit 20"
    ));
    let empty = root.join("le");
    std::fs::create_dir_all(&empty).ctx("creating a state dir")?;
    let empty_runs = runs(&empty, &["workspace", "list", "--json"])?;
    let big = root.join("lb");
    std::fs::create_dir_all(&big).ctx("creating a state dir")?;
    // Creates the schema, then fills it directly (no guests needed).
    cli.json(Some(&big), &["workspace", "list", "--json"])?;
    let store = pyro_store::Store::open(&big.join("pyro.db")).ctx("opening the bench store")?;
    store
        .bulk_insert_for_bench(10_000, pyro_core::now())
        .ctx("filling the bench store")?;
    drop(store);
    let full = runs(&big, &["workspace", "list", "--json"])?;
    let limited = runs(&big, &["workspace", "list", "--json", "--limit", "20"])?;
    let (e, f, l) = (median(&empty_runs), median(&full), median(&limited));
    Ok(json!({
        "empty_ms": stats(&empty_runs),
        "records_10k_ms": stats(&full),
        "records_10k_limit_20_ms": stats(&limited),
        "empty_target": verdict("workspace list, empty store (ms)", e, "<= 20 ms", e <= 20.0, json!({})),
        "records_10k_target": verdict("workspace list, 10k records (ms)", f, "<= 60 ms", f <= 60.0, json!({})),
        "limit_20_target": verdict("workspace list --limit 20, 10k records (ms)", l, "<= 10 ms", l <= 10.0, json!({})),
    }))
}

/// Deletes the bench workspace however the bench leaves its scope.
struct WorkspaceGuard<'a> {
    cli: &'a Cli<'a>,
    state: PathBuf,
    id: String,
}

impl Drop for WorkspaceGuard<'_> {
    fn drop(&mut self) {
        match self
            .cli
            .run(Some(&self.state), &["workspace", "delete", &self.id])
        {
            Ok((out, _)) if out.status.success() => {}
            Ok((out, _)) => progress(&format!(
                "warning: deleting bench workspace {} failed: {}",
                self.id,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => progress(&format!(
                "warning: deleting bench workspace {}: {e}",
                self.id
            )),
        }
    }
}

fn workspace_exec_bench(args: &Args, cli: &Cli, root: &Path) -> Result<Value, String> {
    let state = root.join("ws");
    std::fs::create_dir_all(&state).ctx("creating a state dir")?;
    progress("workspace exec: creating a workspace");
    let (created, create_ms) = cli.json(
        Some(&state),
        &["workspace", "create", ENV, "--name", "bench", "--json"],
    )?;
    let id = created["workspace_id"]
        .as_str()
        .ok_or(format!(
            "`pyro workspace create --json` printed no workspace_id: {created}"
        ))?
        .to_string();
    let _guard = WorkspaceGuard {
        cli,
        state: state.clone(),
        id: id.clone(),
    };
    progress(&format!(
        "workspace {id} created in {create_ms:.0} ms; {} x exec `true`",
        args.execs.min(10)
    ));
    let argv = ["workspace", "exec", &id, "--json", "--", "true"];
    cli.json(Some(&state), &argv)?; // warm-up
    let mut walls = Vec::new();
    for _ in 0..args.execs.min(10) {
        let (v, w) = cli.json(Some(&state), &argv)?;
        if v["exit_code"] != 0 {
            return Err(format!("`pyro workspace exec {id} -- true` failed: {v}"));
        }
        walls.push(w);
    }
    Ok(json!({"create_ms": round(create_ms), "exec_true_wall_ms": stats(&walls)}))
}

// ---------------------------------------------------------------------------
// 6. The MCP server (`pyro mcp serve`)

/// The protocol version the bench's client asks for.
const MCP_PROTOCOL_VERSION: &str = "2025-06-18";
/// No answer from the MCP server may take longer than this.
const MCP_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit once its stdin is closed.
const MCP_EXIT_GRACE: Duration = Duration::from_secs(5);
/// Records in the store for the `workspace_list` tool vs CLI comparison.
const MCP_LIST_RECORDS: usize = 1_000;

/// A JSON-RPC response from the MCP server.
struct Reply {
    /// Its `result`.
    result: Value,
    /// The size of the response line in bytes.
    bytes: usize,
    /// When the line was read (before the bench parsed it).
    at: Instant,
}

/// A minimal MCP client for measuring: newline-delimited JSON-RPC over the
/// stdio of one `pyro mcp serve`. Dropping it closes stdin, waits briefly
/// for the server to exit and kills it if it does not.
struct McpClient {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    /// Lines the server wrote to stdout with the time each was read, read
    /// by a thread (so reads can time out); disconnected once stdout is
    /// closed.
    lines: std::sync::mpsc::Receiver<std::io::Result<(Instant, String)>>,
    next_id: u64,
    /// How long to wait for any one response.
    read_timeout: Duration,
    /// Where the server's stderr goes, quoted when something fails.
    stderr: PathBuf,
}

impl McpClient {
    /// Spawns `pyro mcp serve` with `state` as PYRO_STATE_DIR; its stderr
    /// goes to `stderr`.
    fn spawn(pyro: &Path, state: &Path, stderr: &Path) -> Result<McpClient, String> {
        let err_file =
            std::fs::File::create(stderr).ctx(&format!("creating {}", stderr.display()))?;
        let mut child = Command::new(pyro)
            .args(["mcp", "serve"])
            .env("PYRO_STATE_DIR", state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err_file))
            .spawn()
            .ctx(&format!("starting `{} mcp serve`", pyro.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("`pyro mcp serve` was started without pipes".into());
        };
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let failed = line.is_err();
                if tx.send(line.map(|l| (Instant::now(), l))).is_err() || failed {
                    break;
                }
            }
        });
        Ok(McpClient {
            child,
            stdin: Some(stdin),
            lines,
            next_id: 1,
            read_timeout: MCP_READ_TIMEOUT,
            stderr: stderr.to_path_buf(),
        })
    }

    /// The server's exit status (if it has exited) and the end of its stderr.
    fn died(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => format!("it exited with {s}"),
            Ok(None) => "it is still running".to_string(),
            Err(e) => format!("its status is unknown ({e})"),
        };
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let text = text.trim();
        let tail: String = {
            let chars: Vec<char> = text.chars().collect();
            chars[chars.len().saturating_sub(2000)..].iter().collect()
        };
        if tail.is_empty() {
            format!("{status}; no stderr")
        } else {
            format!("{status}; stderr: {tail}")
        }
    }

    /// Writes one message as one line.
    fn send(&mut self, msg: &Value) -> Result<(), String> {
        let mut line = msg.to_string();
        line.push('\n');
        let written = match self.stdin.as_mut() {
            Some(stdin) => stdin
                .write_all(line.as_bytes())
                .and_then(|()| stdin.flush()),
            None => Err(std::io::Error::other("stdin is closed")),
        };
        written.map_err(|e| {
            // Give a dying process a moment so its status is known.
            self.wait_exit(Duration::from_millis(500));
            format!("writing to `pyro mcp serve` failed ({e}); {}", self.died())
        })
    }

    /// Sends a request and waits for the response with its id (skipping
    /// notifications and anything else in between).
    fn request(&mut self, method: &str, params: Value) -> Result<Reply, String> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        let deadline = Instant::now() + self.read_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(Ok(read)) => read,
                Ok(Err(e)) => {
                    return Err(format!(
                        "reading `pyro mcp serve`'s answer to {method} failed ({e}); {}",
                        self.died()
                    ))
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "`pyro mcp serve` did not answer {method} within {:.1} s; {}",
                        self.read_timeout.as_secs_f64(),
                        self.died()
                    ))
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    // Give a dying process a moment so its status is known.
                    self.wait_exit(Duration::from_millis(500));
                    return Err(format!(
                        "`pyro mcp serve` closed its stdout before answering {method}; {}",
                        self.died()
                    ));
                }
            };
            let (at, line) = line;
            let msg: Value = serde_json::from_str(&line).map_err(|e| {
                format!(
                    "`pyro mcp serve` wrote a line that is not JSON ({e}): {}",
                    line.chars().take(500).collect::<String>()
                )
            })?;
            if msg.get("id") != Some(&json!(id)) || msg.get("method").is_some() {
                continue; // a notification, or a request from the server
            }
            if let Some(err) = msg.get("error") {
                return Err(format!(
                    "`pyro mcp serve` answered {method} with an error: {err}"
                ));
            }
            return match msg.get("result") {
                Some(result) => Ok(Reply {
                    result: result.clone(),
                    bytes: line.len(),
                    at,
                }),
                None => Err(format!(
                    "`pyro mcp serve` answered {method} without a result: {}",
                    line.chars().take(500).collect::<String>()
                )),
            };
        }
    }

    /// The `initialize` request and, once answered, `notifications/initialized`;
    /// returns the `initialize` result.
    fn initialize(&mut self) -> Result<Reply, String> {
        let reply = self.request(
            "initialize",
            json!({
                "protocolVersion": MCP_PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "pyro-bench", "version": env!("CARGO_PKG_VERSION")},
            }),
        )?;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        Ok(reply)
    }

    /// A `tools/call`; fails on a tool error.
    fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Reply, String> {
        let reply = self.request("tools/call", json!({"name": name, "arguments": arguments}))?;
        let result = &reply.result;
        if result["isError"] == true {
            return Err(format!(
                "the {name} tool failed: {}",
                result["content"][0]["text"]
                    .as_str()
                    .unwrap_or("no message")
            ));
        }
        Ok(reply)
    }

    /// Waits up to `grace` for the server to exit; true when it has.
    fn wait_exit(&mut self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return true,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => return false,
            }
        }
    }
}

impl Drop for McpClient {
    fn drop(&mut self) {
        // Closing stdin ends the session; the server should exit by itself.
        drop(self.stdin.take());
        if !self.wait_exit(MCP_EXIT_GRACE) {
            progress(&format!(
                "warning: `pyro mcp serve` (pid {}) did not exit within {} s of its stdin closing; killing it",
                self.child.id(),
                MCP_EXIT_GRACE.as_secs()
            ));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn mcp_bench(cli: &Cli, root: &Path) -> Result<Value, String> {
    const STARTS: usize = 10;
    const LISTS: usize = 20;
    const CALLS: usize = 15;
    let state = root.join("ms");
    std::fs::create_dir_all(&state).ctx("creating a state dir")?;
    let stderr = root.join("mcp.stderr");
    let start = |n: usize| -> Result<(f64, Value), String> {
        let t = Instant::now();
        let mut c = McpClient::spawn(cli.pyro, &state, &stderr)?;
        let init = c.initialize()?;
        let took = ms(init.at - t);
        if n == 0 {
            progress(&format!("mcp: warm-up start (not counted): {took:.1} ms"));
        }
        Ok((took, init.result))
    };

    // 1. Process start to `initialize` answered, a fresh server each time.
    progress(&format!(
        "mcp: {STARTS} x `pyro mcp serve` started, time to the `initialize` response"
    ));
    let (_, init) = start(0)?; // warm-up (page cache)
    let mut starts = Vec::with_capacity(STARTS);
    for i in 1..=STARTS {
        starts.push(start(i)?.0);
    }

    // 2. `tools/list` round trips on one initialized server.
    progress(&format!("mcp: {LISTS} x `tools/list` on one server"));
    let mut c = McpClient::spawn(cli.pyro, &state, &stderr)?;
    c.initialize()?;
    let listed = c.request("tools/list", json!({}))?; // warm-up
    let list_bytes = listed.bytes;
    let tools: Vec<&str> = listed.result["tools"]
        .as_array()
        .ok_or(format!(
            "`tools/list` returned no tools array: {}",
            listed.result
        ))?
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    if !tools.contains(&"workspace_list") {
        return Err(format!(
            "`pyro mcp serve` does not list the workspace_list tool (it lists: {})",
            tools.join(", ")
        ));
    }
    let mut lists = Vec::with_capacity(LISTS);
    for _ in 0..LISTS {
        let t = Instant::now();
        lists.push(ms(c.request("tools/list", json!({}))?.at - t));
    }
    drop(c);

    // 3. `workspace_list` as a tool call vs the CLI, same store, interleaved.
    progress(&format!(
        "mcp: {CALLS} x `workspace_list` tool call vs `pyro workspace list --json`, {MCP_LIST_RECORDS} records, interleaved"
    ));
    let big = root.join("mb");
    std::fs::create_dir_all(&big).ctx("creating a state dir")?;
    // Creates the schema, then fills it directly (no guests needed).
    cli.json(Some(&big), &["workspace", "list", "--json"])?;
    let store = pyro_store::Store::open(&big.join("pyro.db")).ctx("opening the bench store")?;
    store
        .bulk_insert_for_bench(MCP_LIST_RECORDS, pyro_core::now())
        .ctx("filling the bench store")?;
    drop(store);
    let mut c = McpClient::spawn(cli.pyro, &big, &stderr)?;
    c.initialize()?;
    let check = |what: &str, v: &Value| -> Result<(), String> {
        if v["count"] != MCP_LIST_RECORDS {
            return Err(format!(
                "{what} counted {} workspaces, expected {MCP_LIST_RECORDS}",
                v["count"]
            ));
        }
        Ok(())
    };
    let argv = ["workspace", "list", "--json"];
    // Warm-ups (page cache, the server's first call).
    let r = c.call_tool("workspace_list", json!({}))?;
    let tool_bytes = r.bytes;
    check("the workspace_list tool", &r.result["structuredContent"])?;
    let (v, _) = cli.json(Some(&big), &argv)?;
    check("`pyro workspace list --json`", &v)?;
    let cli_bytes = cli.run(Some(&big), &argv)?.0.stdout.len();
    let (mut tool, mut cli_ms) = (Vec::with_capacity(CALLS), Vec::with_capacity(CALLS));
    for _ in 0..CALLS {
        let t = Instant::now();
        let r = c.call_tool("workspace_list", json!({}))?;
        tool.push(ms(r.at - t));
        check("the workspace_list tool", &r.result["structuredContent"])?;
        let (v, wall) = cli.json(Some(&big), &argv)?;
        cli_ms.push(wall);
        check("`pyro workspace list --json`", &v)?;
    }
    drop(c);

    let (s, l, t, w) = (
        median(&starts),
        median(&lists),
        median(&tool),
        median(&cli_ms),
    );
    progress(&format!(
        "mcp: start to initialize {s:.1} ms, tools/list {l:.2} ms ({} tools), workspace_list tool {t:.1} ms vs CLI {w:.1} ms ({MCP_LIST_RECORDS} records)",
        tools.len()
    ));
    Ok(json!({
        "command": format!("{} mcp serve", cli.pyro.display()),
        "client": "the bench's own newline-delimited JSON-RPC over stdio",
        "how": {
            "server_start_to_initialize_ms": "spawn of `pyro mcp serve` until the `initialize` response line is read; a fresh process per sample, after one uncounted warm-up",
            "tools_list_ms": "`tools/list` request written until the response line is read, on one initialized server, after one uncounted warm-up",
            "workspace_list_tool_ms": "`tools/call` workspace_list with {} written until the response line is read (the bench's parsing excluded), on one initialized server; structuredContent.count checked",
            "cli_workspace_list_ms": "wall time of `pyro workspace list --json` on the same store, interleaved with the tool calls",
        },
        "protocol_version_requested": MCP_PROTOCOL_VERSION,
        "protocol_version": init["protocolVersion"],
        "server_info": init["serverInfo"],
        "server_start_to_initialize_ms": stats(&starts),
        "tools_list_ms": stats(&lists),
        "tools_count": tools.len(),
        "tools_list_response_bytes": list_bytes,
        "workspace_list_records": MCP_LIST_RECORDS,
        "workspace_list_tool_ms": stats(&tool),
        "workspace_list_tool_response_bytes": tool_bytes,
        "cli_workspace_list_ms": stats(&cli_ms),
        "cli_workspace_list_output_bytes": cli_bytes,
        "ratio_tool_vs_cli": round(t / w),
    }))
}

// ---------------------------------------------------------------------------
// 7. Transfers on one workspace: sync push, export and file read

/// File bytes in the transfer tree: 200 MiB.
const TREE_BYTES: u64 = 200 * 1024 * 1024;
/// Small files, spread over directories of `TREE_SMALL_PER_DIR`.
const TREE_SMALL_FILES: usize = 2000;
const TREE_SMALL_PER_DIR: usize = 100;
/// Small file sizes, uniformly random in this range (bytes).
const TREE_SMALL_MIN: u64 = 1024;
const TREE_SMALL_MAX: u64 = 16 * 1024;
/// Large files sharing what the small ones leave of `TREE_BYTES`.
const TREE_LARGE_FILES: u64 = 4;
/// The file `file_read_rtt` reads, relative to the tree (and /workspace).
const READ_FILE: &str = "read/4k.txt";
const READ_FILE_BYTES: usize = 4096;
/// `max_bytes` of every read (more than the file: never truncated).
const READ_MAX_BYTES: u64 = 64 * 1024;
/// File reads (and exec round trips, interleaved) after three warm-ups.
const FILE_READS: usize = 30;
const GUEST_WORKSPACE: &str = "/workspace";
/// Longest any single guest command of this series may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(900);

/// splitmix64: incompressible bytes, the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The host tree pushed and exported: small and large files of random
/// bytes, plus one 4 KiB text file.
struct Tree {
    dir: PathBuf,
    /// Every file, relative to `dir`, with its size.
    files: Vec<(PathBuf, u64)>,
    /// Directories below `dir`.
    dirs: u64,
    small_bytes: u64,
    large_bytes: u64,
    /// What `READ_FILE` holds.
    read_text: Vec<u8>,
    build_ms: f64,
}

impl Tree {
    fn entries(&self) -> u64 {
        self.files.len() as u64 + self.dirs
    }

    fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, n)| n).sum()
    }

    fn describe(&self) -> Value {
        let large = self
            .files
            .iter()
            .filter(|(p, _)| p.starts_with("large"))
            .map(|(_, n)| *n)
            .collect::<Vec<_>>();
        json!({
            "bytes": self.bytes(),
            "entries": self.entries(),
            "files": self.files.len(),
            "directories": self.dirs,
            "small_files": TREE_SMALL_FILES,
            "small_file_bytes": format!("uniform {TREE_SMALL_MIN}-{TREE_SMALL_MAX}, random bytes"),
            "small_bytes_total": self.small_bytes,
            "large_files": large.len(),
            "large_file_bytes": large,
            "large_bytes_total": self.large_bytes,
            "text_file": {"path": READ_FILE, "bytes": READ_FILE_BYTES},
            "content": "incompressible (splitmix64, fixed seed: the same tree every run)",
            "build_ms": round(self.build_ms),
        })
    }
}

/// Writes `size` random bytes to `path`.
fn random_file(path: &Path, size: u64, rng: &mut Rng, buf: &mut [u8]) -> Result<(), String> {
    let mut f = std::fs::File::create(path).ctx(&format!("creating {}", path.display()))?;
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n])
            .ctx(&format!("writing {}", path.display()))?;
        left -= n as u64;
    }
    Ok(())
}

fn build_tree(dir: &Path) -> Result<Tree, String> {
    let started = Instant::now();
    let mut rng = Rng(0x7079_726f_2d62_656e);
    let mut buf = vec![0u8; 1 << 20];
    let mut files = Vec::new();
    let mut dirs = 0u64;
    let mut mkdir = |rel: &str| -> Result<(), String> {
        let p = dir.join(rel);
        std::fs::create_dir_all(&p).ctx(&format!("creating {}", p.display()))?;
        dirs += 1;
        Ok(())
    };
    mkdir("small")?;
    let mut small_bytes = 0;
    for i in 0..TREE_SMALL_FILES {
        let sub = format!("small/d{:02}", i / TREE_SMALL_PER_DIR);
        if i % TREE_SMALL_PER_DIR == 0 {
            mkdir(&sub)?;
        }
        let rel = PathBuf::from(format!("{sub}/f{i:04}.bin"));
        let size = rng.between(TREE_SMALL_MIN, TREE_SMALL_MAX);
        random_file(&dir.join(&rel), size, &mut rng, &mut buf)?;
        small_bytes += size;
        files.push((rel, size));
    }
    mkdir("read")?;
    let read_text: Vec<u8> = (0..READ_FILE_BYTES)
        .map(|i| {
            if i % 64 == 63 {
                b'\n'
            } else {
                b'a' + (rng.next() % 26) as u8
            }
        })
        .collect();
    std::fs::write(dir.join(READ_FILE), &read_text).ctx("writing the 4 KiB text file")?;
    files.push((PathBuf::from(READ_FILE), READ_FILE_BYTES as u64));
    mkdir("large")?;
    let left = TREE_BYTES - small_bytes - READ_FILE_BYTES as u64;
    for i in 0..TREE_LARGE_FILES {
        let size = if i + 1 == TREE_LARGE_FILES {
            left - (TREE_LARGE_FILES - 1) * (left / TREE_LARGE_FILES)
        } else {
            left / TREE_LARGE_FILES
        };
        let rel = PathBuf::from(format!("large/l{i}.bin"));
        random_file(&dir.join(&rel), size, &mut rng, &mut buf)?;
        files.push((rel, size));
    }
    Ok(Tree {
        dir: dir.to_path_buf(),
        files,
        dirs,
        small_bytes,
        large_bytes: left,
        read_text,
        build_ms: ms(started.elapsed()),
    })
}

/// Checks that `out` holds exactly the tree: the same entries, every
/// file byte for byte.
fn verify_export(tree: &Tree, out: &Path) -> Result<(), String> {
    let mut a = vec![0u8; 1 << 20];
    let mut b = vec![0u8; 1 << 20];
    for (rel, size) in &tree.files {
        let (pa, pb) = (tree.dir.join(rel), out.join(rel));
        let mut fa = std::fs::File::open(&pa).ctx(&format!("opening {}", pa.display()))?;
        let mut fb =
            std::fs::File::open(&pb).ctx(&format!("the export lacks {}", rel.display()))?;
        let len = fb.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        if len != *size {
            return Err(format!(
                "exported {} has {len} bytes, not {size}",
                rel.display()
            ));
        }
        let mut left = *size;
        while left > 0 {
            let n = left.min(a.len() as u64) as usize;
            fa.read_exact(&mut a[..n]).ctx("reading the tree")?;
            fb.read_exact(&mut b[..n]).ctx("reading the export")?;
            if a[..n] != b[..n] {
                return Err(format!("exported {} differs from the tree", rel.display()));
            }
            left -= n as u64;
        }
    }
    let mut count = 0u64;
    let mut stack = vec![out.to_path_buf()];
    while let Some(d) = stack.pop() {
        for item in std::fs::read_dir(&d).ctx(&format!("listing {}", d.display()))? {
            let item = item.ctx("listing the export")?;
            count += 1;
            if item.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(item.path());
            }
        }
    }
    if count != tree.entries() {
        return Err(format!(
            "the export has {count} entries, the tree {}",
            tree.entries()
        ));
    }
    Ok(())
}

/// Host to guest over a `RawEcho`: a thread writes `bytes` while this one
/// reads them back. Returns (MB/s to the last echoed byte, MB/s to the
/// last byte written), both including connect. There is no raw host to
/// guest sink, so the echo figure is the honest one: every byte crossed
/// the vsock twice, concurrently.
fn raw_echo_stream(vm: &VmHandle, bytes: u64, buf: &mut [u8]) -> Result<(f64, f64), String> {
    let started = Instant::now();
    let conn = vm.connect().ctx("connecting to the agent")?;
    let mut s = raw_request(conn, Request::RawEcho)?;
    let mut w = s.try_clone().ctx("cloning the raw echo stream")?;
    w.set_write_timeout(Some(RAW_IO_TIMEOUT))
        .ctx("configuring the raw echo stream")?;
    let writer = std::thread::spawn(move || -> std::io::Result<Instant> {
        let mut chunk = vec![0u8; 256 * 1024];
        Rng(bytes).fill(&mut chunk);
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            w.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        Ok(Instant::now())
    });
    let mut got = 0u64;
    let read = loop {
        if got >= bytes {
            break Ok(());
        }
        let want = (bytes - got).min(buf.len() as u64) as usize;
        match s.read(&mut buf[..want]) {
            Ok(0) => break Err(format!("the raw echo closed after {got} of {bytes} bytes")),
            Ok(n) => got += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(format!("reading the raw echo after {got} bytes: {e}")),
        }
    };
    let end = started.elapsed().as_secs_f64();
    // Unblocks a writer stuck on a failed echo.
    let _ = s.shutdown(std::net::Shutdown::Both);
    let wrote = writer
        .join()
        .map_err(|_| "the raw echo writer panicked".to_string())?;
    read?;
    let wrote = wrote.ctx("writing the raw echo")?;
    let write_secs = (wrote - started).as_secs_f64();
    Ok((bytes as f64 / 1e6 / end, bytes as f64 / 1e6 / write_secs))
}

/// A `Write` that counts the time spent in the one it wraps.
struct TimedWrite<'a> {
    inner: &'a mut dyn Write,
    spent: Duration,
}

impl Write for TimedWrite<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let t = Instant::now();
        let r = self.inner.write(b);
        self.spent += t.elapsed();
        r
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let t = Instant::now();
        let r = self.inner.flush();
        self.spent += t.elapsed();
        r
    }
}

/// A `Read` that counts the time spent in the one it wraps.
struct TimedRead<'a> {
    inner: &'a mut dyn Read,
    spent: Duration,
}

impl Read for TimedRead<'_> {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        let t = Instant::now();
        let r = self.inner.read(b);
        self.spent += t.elapsed();
        r
    }
}

/// Counts what is written, keeps nothing.
#[derive(Default)]
struct CountWrite(u64);

impl Write for CountWrite {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `p`-quantile by nearest rank.
fn quantile(samples: &[f64], p: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let rank = (p * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// [`stats`] with the 90th percentile.
fn stats_p90(samples: &[f64]) -> Value {
    let mut v = stats(samples);
    v["p90"] = json!(round(quantile(samples, 0.9)));
    v
}

/// Deletes a workspace made through the Manager (transfer, interactive)
/// however its series leaves its scope.
struct OwnedWorkspace<'a> {
    m: &'a Manager,
    id: String,
}

impl Drop for OwnedWorkspace<'_> {
    fn drop(&mut self) {
        let r = self.m.workspace_delete(
            pyro_core::api::WorkspaceRef::new(self.id.clone()),
            &mut pyro_core::Quiet,
        );
        if let Err(e) = r {
            progress(&format!(
                "warning: deleting bench workspace {}: {e}",
                self.id
            ));
        }
    }
}

/// Runs a shell command in the guest; fails unless it exits 0. Returns
/// the host wall ms.
fn guest_sh(vm: &VmHandle, script: &str) -> Result<f64, String> {
    Ok(exec_checked(vm, &["sh", "-c", script], TRANSFER_TIMEOUT)?.0)
}

/// Removes the pushed tree from /workspace and flushes (not timed).
fn clear_workspace(vm: &VmHandle) -> Result<(), String> {
    guest_sh(
        vm,
        "rm -rf /workspace/small /workspace/large /workspace/read /workspace/p-small /workspace/p-large && sync",
    )
    .map(drop)
}

fn mbs(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// Sync push and export of the tree beside raw copies of the same bytes
/// over the same vsock, and file read round trips beside exec round
/// trips, all on one workspace. Returns (the shared setup and the
/// optional profile, `sync_push`, `export`, `file_read_rtt`).
fn transfer_bench(
    args: &Args,
    m: &Manager,
    root: &Path,
) -> Result<(Value, Value, Value, Value), String> {
    use pyro_core::api::{
        CommandSpec, WorkspaceCreateParams, WorkspaceExecParams, WorkspaceExportParams,
        WorkspaceFileReadParams, WorkspaceSyncPushParams,
    };
    let reps = args.transfer_reps;
    let tree_dir = root.join("tree");
    progress(&format!(
        "transfer: building a {} MiB tree ({TREE_SMALL_FILES} small files, {TREE_LARGE_FILES} large) in {}",
        TREE_BYTES >> 20,
        tree_dir.display()
    ));
    let tree = build_tree(&tree_dir)?;
    let bytes = tree.bytes();
    if bytes != TREE_BYTES {
        return Err(format!("the tree has {bytes} bytes, not {TREE_BYTES}"));
    }
    progress(&format!(
        "tree built in {:.0} ms: {} entries, {bytes} bytes",
        tree.build_ms,
        tree.entries()
    ));

    // Same store as `workspace_exec`, so `collect_stale` finds it too.
    let state = root.join("ws");
    std::fs::create_dir_all(&state).ctx("creating a state dir")?;
    let wm = Manager::new(pyro_core::Config {
        state_dir: state.clone(),
        ..m.config().clone()
    });
    let mut params = WorkspaceCreateParams::new(ENV);
    params.name = Some("transfer".into());
    // Longer than the series, so the idle stop never interferes.
    params.ttl_seconds = 3600;
    progress("transfer: creating a workspace");
    let t = Instant::now();
    let info = wm
        .workspace_create(params, &mut pyro_core::Quiet)
        .map_err(core_err("creating the transfer workspace"))?;
    let create_ms = ms(t.elapsed());
    let id = info.workspace_id.clone();
    let _owned = OwnedWorkspace {
        m: &wm,
        id: id.clone(),
    };
    let record = wm
        .store()
        .map_err(core_err("opening the bench store"))?
        .resolve(&id)
        .ctx("reading the transfer workspace record")?;
    // The raw copies need the same guest's vsock: its handle is in the
    // record's (internal) runtime data.
    let vm: VmHandle = serde_json::from_value(record.runtime["vm"].clone()).ctx(
        "the transfer workspace record has no guest handle (pyro_core's runtime format changed?)",
    )?;
    progress(&format!(
        "workspace {id} created in {create_ms:.0} ms ({} vCPU, {} MiB)",
        record.vcpu_count, record.mem_mib
    ));
    let workspace = json!({
        "workspace_id": id,
        "create_ms": round(create_ms),
        "vcpus": record.vcpu_count,
        "mem_mib": record.mem_mib,
        "accelerator": record.runtime["accelerator"],
    });
    // Warm-up: pages in the exec path and the agent's file code.
    exec_checked(&vm, &["true"], Duration::from_secs(30))?;

    // Sync push and export, each beside its raw copy, alternating.
    progress(&format!(
        "transfer: {reps} x (sync push, raw echo host->guest, export, raw source guest->host) of {bytes} bytes"
    ));
    let mut buf = vec![0u8; 256 * 1024];
    let (mut push, mut echo, mut echo_write, mut sync_ms) = (vec![], vec![], vec![], vec![]);
    let (mut export, mut source) = (vec![], vec![]);
    let mut push_entries = 0;
    let mut export_entries = 0;
    for i in 1..=reps {
        if i > 1 {
            clear_workspace(&vm)?;
        }
        let t = Instant::now();
        let r = wm
            .workspace_sync_push(
                WorkspaceSyncPushParams {
                    workspace_id: id.clone(),
                    source_path: tree.dir.clone(),
                    dest: GUEST_WORKSPACE.into(),
                },
                &mut pyro_core::Quiet,
            )
            .map_err(core_err("sync push"))?;
        let took = t.elapsed();
        let s = &r.workspace_sync;
        if s.bytes_written != bytes {
            return Err(format!(
                "sync push wrote {} bytes, not {bytes}",
                s.bytes_written
            ));
        }
        push_entries = s.entry_count;
        push.push(mbs(bytes, took));
        // The push returns once the agent has written into the guest's
        // page cache; flushing is reported, not counted.
        sync_ms.push(exec_checked(&vm, &["sync"], TRANSFER_TIMEOUT)?.0);
        let (e, w) = raw_echo_stream(&vm, bytes, &mut buf)?;
        echo.push(e);
        echo_write.push(w);

        let out = root.join(format!("export-{i}"));
        let t = Instant::now();
        let r = wm
            .workspace_export(
                WorkspaceExportParams {
                    workspace_id: id.clone(),
                    path: GUEST_WORKSPACE.into(),
                    output_path: out.clone(),
                },
                &mut pyro_core::Quiet,
            )
            .map_err(core_err("export"))?;
        let took = t.elapsed();
        if r.bytes_written != bytes {
            return Err(format!(
                "export wrote {} bytes, not {bytes}",
                r.bytes_written
            ));
        }
        export_entries = r.entry_count;
        export.push(mbs(bytes, took));
        if i == 1 {
            verify_export(&tree, &out)?;
        }
        std::fs::remove_dir_all(&out).ctx(&format!("removing {}", out.display()))?;
        source.push(raw_source(&vm, bytes, &mut buf)?);
        progress(&format!(
            "transfer {i}/{reps}: sync push {:.1} MB/s (then sync {:.0} ms), raw echo {:.1} MB/s (writer {:.1}); export {:.1} MB/s, raw source {:.1} MB/s",
            push[i - 1], sync_ms[i - 1], echo[i - 1], echo_write[i - 1], export[i - 1], source[i - 1]
        ));
    }

    // File read round trips beside exec round trips, interleaved; through
    // the Manager (what the CLI and MCP tools call) and on the guest
    // handle alone.
    progress(&format!(
        "file read: {FILE_READS} x workspace_file_read of a {READ_FILE_BYTES}-byte file, interleaved with workspace_exec `true` and the same two on the guest handle"
    ));
    let read_params = || WorkspaceFileReadParams {
        workspace_id: id.clone(),
        path: READ_FILE.into(),
        max_bytes: READ_MAX_BYTES,
    };
    let exec_params = || WorkspaceExecParams {
        workspace_id: id.clone(),
        command: CommandSpec::Argv(vec!["true".into()]),
        cwd: GUEST_WORKSPACE.into(),
        timeout_seconds: 30,
        secret_env: Default::default(),
    };
    let guest_read = format!("{GUEST_WORKSPACE}/{READ_FILE}");
    let rtt_timeout = Duration::from_secs(30);
    let expected = String::from_utf8_lossy(&tree.read_text).into_owned();
    let one_round = |reads: &mut [Vec<f64>; 4]| -> Result<(), String> {
        let t = Instant::now();
        let r = wm
            .workspace_file_read(read_params(), &mut pyro_core::Quiet)
            .map_err(core_err("file read"))?;
        reads[0].push(ms(t.elapsed()));
        if r.content != expected || r.truncated {
            return Err(format!(
                "file read returned {} bytes of other content (truncated: {})",
                r.content.len(),
                r.truncated
            ));
        }
        let t = Instant::now();
        let r = wm
            .workspace_exec(exec_params(), &mut pyro_core::Quiet)
            .map_err(core_err("workspace exec"))?;
        reads[1].push(ms(t.elapsed()));
        if r.output.exit_code != 0 {
            return Err(format!(
                "workspace exec `true` exited with {}",
                r.output.exit_code
            ));
        }
        let t = Instant::now();
        let (size, got) = vm
            .read_file(&guest_read, READ_MAX_BYTES)
            .ctx("reading the file on the guest handle")?;
        reads[2].push(ms(t.elapsed()));
        if size != READ_FILE_BYTES as u64 || got != tree.read_text {
            return Err(format!(
                "the guest handle read {} of {size} bytes, not the file",
                got.len()
            ));
        }
        reads[3].push(exec_checked(&vm, &["true"], rtt_timeout)?.0);
        Ok(())
    };
    let mut warm: [Vec<f64>; 4] = Default::default();
    for _ in 0..3 {
        one_round(&mut warm)?;
    }
    let mut rtt: [Vec<f64>; 4] = Default::default();
    for _ in 0..FILE_READS {
        one_round(&mut rtt)?;
    }
    let [m_read, m_exec, h_read, h_exec] = &rtt;
    progress(&format!(
        "file read {:.1} ms (p90 {:.1}) vs workspace exec `true` {:.1} ms; on the handle: read {:.1} ms vs exec {:.1} ms",
        median(m_read),
        quantile(m_read, 0.9),
        median(m_exec),
        median(h_read),
        median(h_exec)
    ));

    let profile = if args.transfer_profile {
        transfer_profile(&wm, &id, &vm, &tree, root)?
    } else {
        Value::Null
    };

    let unit = "MB/s (10^6 bytes per second) of file bytes; connection set-up included";
    let push_ratio = median(&push) / median(&echo);
    let sync_push = json!({
        "bytes": bytes,
        "unit": unit,
        "how": "Manager::workspace_sync_push of the host tree (a directory) into /workspace, in-process (no CLI process): host walk + check, tar, Data frames, agent unpack into the guest page cache; each push into an empty /workspace (the previous one removed, untimed)",
        "entry_count": push_entries,
        "mb_per_s": stats(&push),
        "raw_mb_per_s": stats(&echo),
        "raw_how": "RAW ECHO, not a one-way sink (the agent has no raw host->guest sink): a RawEcho connection to the same guest; one thread writes the same byte count while the bench reads it back; MB/s = bytes / time to the last echoed byte, so every byte crossed the vsock twice (both directions at once)",
        "raw_echo_writer_done_mb_per_s": {
            "note": "the same echoes, timed to the writer's last write (the host->guest direction alone, ahead of the echo by the socket buffers)",
            "stats": stats(&echo_write),
        },
        "guest_sync_after_ms": {
            "note": "`sync` in the guest right after each push (flushing what the push left dirty); not counted in mb_per_s",
            "stats": stats(&sync_ms),
        },
        "ratio": verdict(
            "sync push throughput / raw echo throughput",
            push_ratio,
            ">= 0.7",
            push_ratio >= 0.7,
            json!({"vs": "raw echo (see raw_how)", "ratio_vs_echo_writer_done": round(median(&push) / median(&echo_write))}),
        ),
    });
    let export_ratio = median(&export) / median(&source);
    let export = json!({
        "bytes": bytes,
        "unit": unit,
        "how": "Manager::workspace_export of /workspace (the pushed tree) to a fresh host directory, in-process: agent tar, Data frames, host unpack into a staging dir and rename; the first export is checked byte for byte against the tree",
        "entry_count": export_entries,
        "mb_per_s": stats(&export),
        "raw_mb_per_s": stats(&source),
        "raw_how": "RawSource of the same byte count from the same guest, read to EOF",
        "ratio": verdict(
            "export throughput / raw source throughput",
            export_ratio,
            ">= 0.7",
            export_ratio >= 0.7,
            json!({}),
        ),
    });
    let file_read = json!({
        "file_bytes": READ_FILE_BYTES,
        "max_bytes": READ_MAX_BYTES,
        "n": FILE_READS,
        "how": "each round: Manager::workspace_file_read, Manager::workspace_exec of `true` (argv, no shell), VmHandle::read_file, VmHandle::exec of `true`; in-process, interleaved, after 3 uncounted rounds",
        "file_read_ms": stats_p90(m_read),
        "exec_true_ms": stats_p90(m_exec),
        "ratio_read_vs_exec": round(median(m_read) / median(m_exec)),
        "guest_handle": {
            "note": "the same guest calls without the Manager (no store lookup, no history record)",
            "read_file_ms": stats_p90(h_read),
            "exec_true_ms": stats_p90(h_exec),
            "ratio_read_vs_exec": round(median(h_read) / median(h_exec)),
        },
    });
    let transfer = json!({
        "tree": tree.describe(),
        "workspace": workspace,
        "reps": reps,
        "profile": profile,
    });
    Ok((transfer, sync_push, export, file_read))
}

/// Where the transfer time goes (`--transfer-profile`): host tar encoding
/// and unpacking alone, the push and export split into time in the host's
/// tar code and time in the Data frame stream, guest-local copies without
/// vsock, and small vs large files.
fn transfer_profile(
    wm: &Manager,
    id: &str,
    vm: &VmHandle,
    tree: &Tree,
    root: &Path,
) -> Result<Value, String> {
    use pyro_core::api::WorkspaceSyncPushParams;
    let bytes = tree.bytes();
    progress("transfer profile: host tar encoding");
    let seed = pyro_archive::Seed::open(&tree.dir).ctx("opening the tree as a seed")?;
    let t = Instant::now();
    let mut count = CountWrite::default();
    seed.write_tar(&mut count).ctx("writing the tree as tar")?;
    let encode = t.elapsed();
    let tar_bytes = count.0;
    let t = Instant::now();
    let checked = seed.check().ctx("checking the tree")?;
    let check = t.elapsed();

    progress("transfer profile: host unpack of the tree's tar (from a file)");
    let tar_path = root.join("tree.tar");
    {
        let f = std::fs::File::create(&tar_path).ctx("creating tree.tar")?;
        seed.write_tar(std::io::BufWriter::new(f))
            .ctx("writing tree.tar")?;
    }
    let unpacked = root.join("unpack");
    let t = Instant::now();
    let f = std::fs::File::open(&tar_path).ctx("opening tree.tar")?;
    pyro_archive::unpack(std::io::BufReader::new(f), &unpacked).ctx("unpacking tree.tar")?;
    let unpack = t.elapsed();
    let _ = std::fs::remove_dir_all(&unpacked);
    let _ = std::fs::remove_file(&tar_path);

    // The push on the guest handle, the host's writes timed: time inside
    // the Data frame writer (framing + socket, blocked while the guest is
    // behind) vs the rest (tar reading the files).
    progress("transfer profile: push and export on the guest handle, split");
    clear_workspace(vm)?;
    let mut in_stream = Duration::ZERO;
    let mut tar_done = None;
    let t = Instant::now();
    let (entries, written) = vm
        .extract(GUEST_WORKSPACE, &mut |w| {
            let mut tw = TimedWrite {
                inner: w,
                spent: Duration::ZERO,
            };
            let r = seed.write_tar(&mut tw).map_err(std::io::Error::other);
            in_stream = tw.spent;
            tar_done = Some(Instant::now());
            r
        })
        .ctx("extract on the guest handle")?;
    let push_total = t.elapsed();
    let push_tail = tar_done.map(|d| d.elapsed()).unwrap_or_default();
    if written != bytes {
        return Err(format!(
            "extract wrote {written} of {bytes} bytes ({entries} entries)"
        ));
    }
    let sync_ms = exec_checked(vm, &["sync"], TRANSFER_TIMEOUT)?.0;

    // The export on the guest handle, the host's reads timed: waiting for
    // Data frames (the guest's tar + the stream) vs unpacking on the host.
    let out = root.join("export-profile");
    let mut in_reads = Duration::ZERO;
    let t = Instant::now();
    let ((), counts) = vm
        .archive(GUEST_WORKSPACE, |_, r: &mut dyn Read| {
            let mut tr = TimedRead {
                inner: r,
                spent: Duration::ZERO,
            };
            let res = pyro_archive::unpack(&mut tr, &out)
                .map(drop)
                .map_err(|e| pyro_vmm::VmmError::Agent(e.to_string()));
            in_reads = tr.spent;
            res
        })
        .ctx("archive on the guest handle")?;
    let export_total = t.elapsed();
    let _ = std::fs::remove_dir_all(&out);
    if counts.bytes != bytes {
        return Err(format!("archive sent {} of {bytes} bytes", counts.bytes));
    }

    // The guest alone: reading the tree as tar, and copying it through
    // tar into another directory (no vsock).
    progress("transfer profile: guest-local tar read and copy");
    let read_ms = guest_sh(vm, "tar -cf - -C /workspace . | cat >/dev/null")?;
    let copy_ms = guest_sh(
        vm,
        "rm -rf /var/tmp/pyro-bench-copy && mkdir /var/tmp/pyro-bench-copy && tar -cf - -C /workspace . | tar -xf - -C /var/tmp/pyro-bench-copy",
    )?;
    let copy_sync_ms = exec_checked(vm, &["sync"], TRANSFER_TIMEOUT)?.0;
    guest_sh(vm, "rm -rf /var/tmp/pyro-bench-copy && sync")?;
    let dd_64k = guest_sh(
        vm,
        "dd if=/dev/zero of=/dev/null bs=64k count=3200 status=none",
    )?;
    let dd_1m = guest_sh(
        vm,
        "dd if=/dev/zero of=/dev/null bs=1M count=200 status=none",
    )?;
    // Writing 200 MiB into one file: the guest's page cache and ext4
    // write path alone (no tar, no vsock), then its flush.
    let dd_write = guest_sh(
        vm,
        "dd if=/dev/zero of=/var/tmp/pyro-bench-dd bs=1M count=200 status=none",
    )?;
    let dd_write_sync = exec_checked(vm, &["sync"], TRANSFER_TIMEOUT)?.0;
    guest_sh(vm, "rm -f /var/tmp/pyro-bench-dd && sync")?;

    // Small files alone and large files alone, through the Manager.
    progress("transfer profile: small files alone, large files alone");
    clear_workspace(vm)?;
    let part = |sub: &str, dest: &str| -> Result<(f64, u64, u64), String> {
        let t = Instant::now();
        let r = wm
            .workspace_sync_push(
                WorkspaceSyncPushParams {
                    workspace_id: id.to_string(),
                    source_path: tree.dir.join(sub),
                    dest: dest.into(),
                },
                &mut pyro_core::Quiet,
            )
            .map_err(core_err("sync push"))?;
        let took = ms(t.elapsed());
        exec_checked(vm, &["sync"], TRANSFER_TIMEOUT)?;
        Ok((
            took,
            r.workspace_sync.entry_count,
            r.workspace_sync.bytes_written,
        ))
    };
    let (small_ms, small_entries, small_bytes) = part("small", "/workspace/p-small")?;
    let (large_ms, large_entries, large_bytes) = part("large", "/workspace/p-large")?;
    // GNU tar copying the same small files inside the guest: the guest's
    // per-file cost without vsock or the agent.
    let small_copy_ms = guest_sh(
        vm,
        "rm -rf /var/tmp/pyro-bench-small && mkdir /var/tmp/pyro-bench-small && tar -cf - -C /workspace/p-small . | tar -xf - -C /var/tmp/pyro-bench-small",
    )?;
    guest_sh(vm, "rm -rf /var/tmp/pyro-bench-small && sync")?;
    clear_workspace(vm)?;

    let mb = |b: u64, ms: f64| round(b as f64 / 1e6 / (ms / 1000.0));
    let d = |x: Duration| round(ms(x));
    Ok(json!({
        "note": "single samples, informational; MB/s of the tree's file bytes unless said otherwise",
        "host_tar_encode": {
            "how": "pyro_archive::Seed::write_tar of the tree into a counting sink (the host's part of a push)",
            "ms": d(encode), "mb_per_s": round(mbs(bytes, encode)), "tar_stream_bytes": tar_bytes,
            "tar_overhead_bytes": tar_bytes - bytes,
        },
        "host_seed_check": {
            "how": "Seed::check: the walk a push does before sending (every file opened, not read)",
            "ms": d(check), "entries": checked.entry_count,
        },
        "host_unpack": {
            "how": "pyro_archive::unpack of the tree's tar from a host file (the host's part of an export)",
            "ms": d(unpack), "mb_per_s": round(mbs(bytes, unpack)),
        },
        "push_on_handle": {
            "how": "VmHandle::extract with Seed::write_tar, the host's writes into the Data frame writer timed",
            "total_ms": d(push_total),
            "mb_per_s": round(mbs(bytes, push_total)),
            "in_frame_writer_ms": d(in_stream),
            "in_tar_code_ms": d(push_total.saturating_sub(in_stream).saturating_sub(push_tail)),
            "after_last_write_ms": {"note": "end marker sent until the agent's answer (the guest finishing the backlog)", "ms": d(push_tail)},
            "guest_sync_after_ms": round(sync_ms),
        },
        "export_on_handle": {
            "how": "VmHandle::archive into pyro_archive::unpack, the host's reads from the Data frame reader timed",
            "total_ms": d(export_total),
            "mb_per_s": round(mbs(bytes, export_total)),
            "waiting_for_frames_ms": d(in_reads),
            "host_unpack_ms": d(export_total.saturating_sub(in_reads)),
        },
        "guest_local": {
            "how": "commands in the guest (GNU tar, 1 vCPU), no vsock: the guest's share of the work",
            "tar_read_ms": round(read_ms),
            "tar_read_mb_per_s": mb(bytes, read_ms),
            "tar_read_command": "tar -cf - -C /workspace . | cat >/dev/null",
            "tar_copy_ms": round(copy_ms),
            "tar_copy_mb_per_s": mb(bytes, copy_ms),
            "tar_copy_command": "tar -cf - -C /workspace . | tar -xf - -C /var/tmp/pyro-bench-copy",
            "sync_after_copy_ms": round(copy_sync_ms),
            "dd_zero_to_null_200mib_bs64k_ms": round(dd_64k),
            "dd_zero_to_null_200mib_bs1m_ms": round(dd_1m),
            "dd_write_200mib_file_ms": round(dd_write),
            "dd_write_200mib_file_mb_per_s": mb(bytes, dd_write),
            "dd_write_command": "dd if=/dev/zero of=/var/tmp/pyro-bench-dd bs=1M count=200",
            "sync_after_dd_write_ms": round(dd_write_sync),
        },
        "small_vs_large": {
            "how": "Manager::workspace_sync_push of tree/small and of tree/large alone (each then synced, untimed)",
            "small": {"ms": round(small_ms), "entries": small_entries, "bytes": small_bytes,
                      "mb_per_s": mb(small_bytes, small_ms),
                      "entries_per_s": round(small_entries as f64 / (small_ms / 1000.0))},
            "large": {"ms": round(large_ms), "entries": large_entries, "bytes": large_bytes,
                      "mb_per_s": mb(large_bytes, large_ms)},
            "small_guest_local_tar_copy": {
                "how": "tar -cf - -C /workspace/p-small . | tar -xf - -C /var/tmp/pyro-bench-small, in the guest",
                "ms": round(small_copy_ms),
                "entries_per_s": round(small_entries as f64 / (small_copy_ms / 1000.0)),
            },
        },
    }))
}

// ---------------------------------------------------------------------------
// Bench directories

/// Removes bench dirs left by bench processes that are gone (killed), and
/// any workspace they left running.
fn collect_stale(cli: &Cli, bench_root: &Path) {
    let Ok(read) = std::fs::read_dir(bench_root) else {
        return;
    };
    for item in read.filter_map(Result::ok) {
        let dir = item.path();
        let owner = std::fs::read_to_string(dir.join("owner")).ok();
        let alive = owner
            .as_deref()
            .and_then(|o| o.trim().parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if alive {
            continue;
        }
        let ws = dir.join("ws");
        if ws.join("pyro.db").exists() {
            if let Ok((v, _)) = cli.json(Some(&ws), &["workspace", "list", "--json"]) {
                for w in v["workspaces"].as_array().into_iter().flatten() {
                    if let Some(id) = w["workspace_id"].as_str() {
                        let _ = cli.run(Some(&ws), &["workspace", "delete", id]);
                    }
                }
            }
        }
        if std::fs::remove_dir_all(&dir).is_ok() {
            progress(&format!("removed stale bench dir {}", dir.display()));
        }
    }
}

/// This run's directory under `$PYRO_STATE_DIR/bench`, removed on drop.
struct BenchDir(PathBuf);

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------

fn host_info(
    m: &Manager,
    env: &InstalledEnv,
    choice: &pyro_core::accel::AccelChoice,
    cli: &Cli,
) -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    let pyro_version = cli
        .run(None, &["--version"])
        .ok()
        .map(|(o, _)| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let tools = m.tools();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "kernel": read_trimmed("/proc/sys/kernel/osrelease"),
        "accelerator": choice.accelerator.as_str(),
        "accelerator_reason": choice.reason,
        "qemu": tools.qemu.version,
        "qemu_path": tools.qemu.path,
        "vhost_device_vsock": tools.vhost_device_vsock.version,
        "pyro": cli.pyro,
        "pyro_version": pyro_version,
        "environment": ENV,
        "environment_version": env.entry.version,
        "guest_kernel": env.manifest.kernel_release,
        "state_dir": m.config().state_dir,
        "cache_dir": m.config().cache_dir,
        "agent": m.config().agent_path,
    })
}

fn run(args: &Args) -> Result<Value, String> {
    let started = Instant::now();
    let began = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // The bench and the CLI must agree on the agent, or each would rebuild
    // the environment's initramfs for its own.
    if std::env::var_os("PYRO_AGENT_PATH").is_none() {
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf));
        if exe_dir.as_deref() != args.pyro.parent() {
            if let Some(dir) = args.pyro.parent() {
                std::env::set_var("PYRO_AGENT_PATH", dir.join("pyro-agent"));
            }
        }
    }
    let m = Manager::from_env().map_err(core_err("reading the pyro configuration"))?;
    let cli = Cli { pyro: &args.pyro };

    let info = m
        .env_inspect(
            pyro_core::api::EnvironmentParams {
                environment: ENV.into(),
            },
            &mut pyro_core::Quiet,
        )
        .map_err(core_err("looking up the environment"))?;
    if !info.installed {
        return Err(format!(
            "the {ENV} environment is not installed in {} (PYRO_CACHE_DIR); run `{} env pull {ENV}` first",
            m.config().cache_dir.display(),
            args.pyro.display()
        ));
    }
    let env = m
        .ready_env(ENV)
        .map_err(core_err("preparing the environment"))?;
    progress("choosing the accelerator (boot probe on first use, cached afterwards)");
    let choice = m
        .choose_accel(&env)
        .map_err(core_err("choosing the accelerator"))?;
    let accel = choice.accelerator;
    progress(&format!(
        "accelerator: {} ({})",
        accel.as_str(),
        choice.reason
    ));

    let bench_root = m.config().state_dir.join("bench");
    collect_stale(&cli, &bench_root);
    let id = bench_id();
    let root = BenchDir(bench_root.join(&id));
    std::fs::create_dir_all(&root.0).ctx(&format!("creating {}", root.0.display()))?;
    std::fs::write(root.0.join("owner"), format!("{}\n", std::process::id()))
        .ctx("writing the bench owner file")?;
    let vm_dir = root.0.join("vm");
    let longest = vm_dir.join(format!("v.sock_{}", pyro_proto::READY_PORT));
    if longest.as_os_str().len() > pyro_vmm::vsock::MAX_SOCKET_PATH {
        return Err(format!(
            "socket path {} is longer than {} bytes; use a shorter PYRO_STATE_DIR",
            longest.display(),
            pyro_vmm::vsock::MAX_SOCKET_PATH
        ));
    }

    let host = host_info(&m, &env, &choice, &cli);
    let load_start = loadavg();
    let other_qemu = qemu_processes();
    if other_qemu > 0 {
        progress(&format!(
            "warning: {other_qemu} other QEMU process(es) are running and compete for the CPU"
        ));
    }

    let cold = if args.cold_run {
        cold_run(args, &cli, &m, &env, accel)?
    } else {
        Value::Null
    };
    let (round_trip, throughput, guest) = if args.guest {
        guest_benches(args, &m, &env, accel, &id, &vm_dir)?
    } else {
        (Value::Null, Value::Null, Value::Null)
    };
    let (list, ws_exec) = if args.workspace {
        (
            list_bench(&cli, &root.0)?,
            workspace_exec_bench(args, &cli, &root.0)?,
        )
    } else {
        (Value::Null, Value::Null)
    };
    let mcp = if args.mcp {
        mcp_bench(&cli, &root.0)?
    } else {
        Value::Null
    };
    let (transfer, sync_push, export, file_read) = if args.transfer {
        transfer_bench(args, &m, &root.0)?
    } else {
        (Value::Null, Value::Null, Value::Null, Value::Null)
    };
    let interactive = if args.interactive {
        interactive::interactive_bench(&m, &root.0)?
    } else {
        Value::Null
    };
    let templates = if args.templates {
        templates::templates_bench(&m, &root.0, args.templates_count)?
    } else {
        Value::Null
    };

    let mut targets = Vec::new();
    for (section, v) in [
        ("cold_run", &cold),
        ("exec_round_trip", &round_trip),
        ("stdout_throughput", &throughput),
        ("workspace_list", &list),
        ("sync_push", &sync_push),
        ("export", &export),
        ("templates", &templates),
    ] {
        for (k, c) in v.as_object().into_iter().flatten() {
            if let Some(met) = c.get("met").and_then(Value::as_bool) {
                targets.push(json!({
                    "name": format!("{section}.{k}"),
                    "value": c["value"],
                    "target": c["target"],
                    "met": met,
                }));
            }
        }
    }
    let all_met = targets.iter().all(|t| t["met"] == true);
    let wall_s = started.elapsed().as_secs_f64();
    Ok(json!({
        "timestamp": began,
        "timestamp_utc": iso8601(began),
        "bench_wall_s": round(wall_s),
        "settings": {
            "cold_runs": args.cold_runs,
            "execs": args.execs,
            "echoes": args.echoes,
            "stream_mib": args.stream_mib,
            "stream_reps": args.stream_reps,
            "transfer_reps": args.transfer_reps,
            "transfer_profile": args.transfer_profile,
            "cold_run": args.cold_run,
            "guest": args.guest,
            "workspace": args.workspace,
            "mcp": args.mcp,
            "transfer": args.transfer,
            "interactive": args.interactive,
            "templates": args.templates,
            "templates_count": args.templates_count,
        },
        "host": host,
        "load": {
            "loadavg_start": load_start,
            "loadavg_end": loadavg(),
            "other_qemu_processes_at_start": other_qemu,
        },
        "targets": targets,
        "all_targets_met": all_met,
        "cold_run": cold,
        "exec_round_trip": round_trip,
        "stdout_throughput": throughput,
        "bench_guest": guest,
        "workspace_list": list,
        "workspace_exec": ws_exec,
        "mcp": mcp,
        "transfer": transfer,
        "sync_push": sync_push,
        "export": export,
        "file_read_rtt": file_read,
        "interactive": interactive,
        "templates": templates,
    }))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pyro-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match run(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pyro-bench: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    println!("{text}");
    if let Some(out) = &args.output {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(parent);
        }
        if let Err(e) = std::fs::write(out, format!("{text}\n")) {
            eprintln!("pyro-bench: error: writing {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
        progress(&format!("wrote {}", out.display()));
    }
    progress(&format!(
        "done in {:.1} s; all targets met: {}",
        report["bench_wall_s"].as_f64().unwrap_or(0.0),
        report["all_targets_met"]
    ));
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for `pyro` that runs `body` as a shell script.
    fn fake_pyro(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    // One test, so no other thread forks while a script is open for writing.
    #[test]
    fn mcp_client_reports_a_server_that_dies_or_hangs_and_skips_notifications() {
        let dir = std::env::temp_dir().join(format!("pyro-bench-test-{}", bench_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stderr = dir.join("stderr");

        let dies = fake_pyro(&dir, "dies", "read line; echo 'boom: no store' >&2; exit 3");
        let mut c = McpClient::spawn(&dies, &dir, &stderr).unwrap();
        let err = c.initialize().err().unwrap();
        assert!(
            err.contains("closed its stdout before answering initialize"),
            "{err}"
        );
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("boom: no store"), "{err}");
        drop(c);

        // Reads requests but never answers; exits when stdin closes.
        let hangs = fake_pyro(&dir, "hangs", "cat >/dev/null");
        let mut c = McpClient::spawn(&hangs, &dir, &stderr).unwrap();
        c.read_timeout = Duration::from_millis(300);
        let err = c.request("tools/list", json!({})).err().unwrap();
        assert!(
            err.contains("did not answer tools/list within 0.3 s"),
            "{err}"
        );
        assert!(err.contains("still running"), "{err}");
        let t = Instant::now();
        drop(c);
        assert!(
            t.elapsed() < MCP_EXIT_GRACE,
            "the server outlived its stdin"
        );

        // A notification first, then the answer (ids start at 1).
        let answers = fake_pyro(
            &dir,
            "answers",
            r#"read line
echo '{"jsonrpc":"2.0","method":"notifications/message","params":{}}'
echo '{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18"}}'
cat >/dev/null"#,
        );
        let mut c = McpClient::spawn(&answers, &dir, &stderr).unwrap();
        let reply = c.initialize().unwrap();
        assert_eq!(reply.result["protocolVersion"], "2025-06-18");
        drop(c);

        let errs = fake_pyro(
            &dir,
            "errs",
            r#"read line
echo '{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}'
cat >/dev/null"#,
        );
        let mut c = McpClient::spawn(&errs, &dir, &stderr).unwrap();
        let err = c.request("tools/call", json!({})).err().unwrap();
        assert!(err.contains("answered tools/call with an error"), "{err}");
        assert!(err.contains("bad"), "{err}");
        drop(c);

        std::fs::remove_dir_all(&dir).unwrap();
    }
}

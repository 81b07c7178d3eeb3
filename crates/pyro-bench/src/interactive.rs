//! The `interactive` series: what an agent driving a workspace by hand
//! waits for, on one workspace created through the Manager in-process:
//!
//! - `shell_echo`: `shell_write` of `echo MARK<n>` then `shell_read` from
//!   the cursor until `MARK<n>` is on an output line of its own;
//! - `service_ready`: `service_start` of a service whose readiness is a
//!   file it creates at once, to the answer that it is ready;
//! - `published_port`: HTTP/1.0 GETs from the host to a busybox httpd
//!   service through its published port, beside the same GETs made inside
//!   the guest (bash's /dev/tcp) to the same server. Skipped, with the
//!   reason, when the host has no static /bin/busybox (Debian package
//!   busybox-static) to seed the workspace with, or no slirp4netns (the
//!   egress+published-ports network policy needs it).
//!
//! Figures only, no targets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pyro_core::api::{
    CommandSpec, NetworkPolicy, PublishedPortSpec, ServiceInfo, ServiceRef, ServiceStartParams,
    ServiceState, ShellOpenParams, ShellReadParams, ShellRef, ShellWriteParams,
    WorkspaceCreateParams, WorkspaceExecParams,
};
use pyro_core::{Manager, Quiet};
use serde_json::{json, Value};

use super::{
    core_err, median, ms, progress, round, stats_p90, Ctx, OwnedWorkspace, ENV, GUEST_WORKSPACE,
};

/// Echo round trips before the counted ones.
const SHELL_WARMUP: usize = 3;
/// Counted echo round trips.
const SHELL_ROUNDS: usize = 20;
/// The longest one echo round trip may take.
const SHELL_TIMEOUT: Duration = Duration::from_secs(60);
/// `wait_for_idle_ms` of every `shell_read`: the agent answers once there
/// is output and none came for this long.
const SHELL_IDLE_MS: u64 = 1;

/// Service starts before the counted ones.
const READY_WARMUP: usize = 1;
/// Counted service starts.
const READY_ROUNDS: usize = 5;
/// Readiness probe interval of those services.
const READY_INTERVAL_MS: u64 = 50;

/// The host's busybox, copied into the seed.
const HOST_BUSYBOX: &str = "/bin/busybox";
/// Where httpd listens in the guest.
const HTTP_PORT: u16 = 8000;
/// GETs on each side before the counted ones.
const HTTP_WARMUP: usize = 3;
/// Counted GETs on each side.
const HTTP_REQUESTS: usize = 50;
/// No host GET may take longer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The page served (its last line is checked on both sides).
const INDEX_HTML: &str = "<!doctype html>\n<title>pyro bench</title>\n<p>pyro-bench-index</p>\n";
const HTTP_REQUEST: &str = "GET /index.html HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";

/// Why `published_port` cannot run on this host, if it cannot.
fn published_port_skip(m: &Manager) -> Option<String> {
    if !m.tools().slirp4netns.present() {
        return Some(
            "slirp4netns is not installed (Debian package slirp4netns); the egress+published-ports network policy needs it".into(),
        );
    }
    match std::fs::read(HOST_BUSYBOX) {
        Err(e) => Some(format!(
            "{HOST_BUSYBOX} is not readable ({e}); install the Debian package busybox-static"
        )),
        Ok(elf) => match elf_is_static(&elf) {
            Some(true) => None,
            Some(false) => Some(format!(
                "{HOST_BUSYBOX} is dynamically linked; install the Debian package busybox-static"
            )),
            None => Some(format!(
                "{HOST_BUSYBOX} is not a 64-bit little-endian ELF file"
            )),
        },
    }
}

/// Whether a 64-bit little-endian ELF file has no program interpreter
/// (`None` when it is not such a file).
fn elf_is_static(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        if u32_at(phoff.checked_add(i.checked_mul(phentsize)?)?)? == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

/// The seed: busybox and `www/index.html`.
fn build_seed(dir: &Path) -> Result<(), String> {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).ctx(&format!("creating {}", www.display()))?;
    // fs::copy keeps the permission bits (busybox stays executable).
    std::fs::copy(HOST_BUSYBOX, dir.join("busybox"))
        .ctx(&format!("copying {HOST_BUSYBOX} into the seed"))?;
    std::fs::write(www.join("index.html"), INDEX_HTML).ctx("writing the seed's index.html")?;
    Ok(())
}

/// Runs the `interactive` series; the workspace is deleted however it
/// ends.
pub(crate) fn interactive_bench(m: &Manager, root: &Path) -> Result<Value, String> {
    let skip = published_port_skip(m);
    if let Some(why) = &skip {
        progress(&format!(
            "interactive: published_port skipped: {why}; creating the workspace without network"
        ));
    }

    // Same store as `workspace_exec`, so `collect_stale` finds it too.
    let state = root.join("ws");
    std::fs::create_dir_all(&state).ctx("creating a state dir")?;
    let wm = Manager::new(pyro_core::Config {
        state_dir: state,
        ..m.config().clone()
    });
    let mut params = WorkspaceCreateParams::new(ENV);
    params.name = Some("interactive".into());
    // Longer than the series, so the idle stop never interferes.
    params.ttl_seconds = 3600;
    let mut seed: Option<PathBuf> = None;
    if skip.is_none() {
        let dir = root.join("interactive-seed");
        build_seed(&dir)?;
        params.network_policy = NetworkPolicy::EgressPublishedPorts;
        params.seed_path = Some(dir.clone());
        seed = Some(dir);
    }
    let policy = params.network_policy;
    progress(&format!(
        "interactive: creating a workspace (network policy {})",
        policy.as_str()
    ));
    let t = Instant::now();
    let info = wm
        .workspace_create(params, &mut Quiet)
        .map_err(core_err("creating the interactive workspace"))?;
    let create_ms = ms(t.elapsed());
    let id = info.workspace_id.clone();
    let _owned = OwnedWorkspace {
        m: &wm,
        id: id.clone(),
    };
    progress(&format!("workspace {id} created in {create_ms:.0} ms"));
    let workspace = json!({
        "workspace_id": id,
        "create_ms": round(create_ms),
        "network_policy": policy.as_str(),
        "seed": seed,
    });

    let shell = shell_echo(&wm, &id)?;
    let ready = service_ready(&wm, &id)?;
    let port = match skip {
        Some(reason) => json!({"skipped": true, "reason": reason}),
        None => published_port(&wm, &id)?,
    };
    Ok(json!({
        "workspace": workspace,
        "shell_echo": shell,
        "service_ready": ready,
        "published_port": port,
    }))
}

// ---------------------------------------------------------------------------
// Shell echo

fn shell_echo(m: &Manager, id: &str) -> Result<Value, String> {
    progress(&format!(
        "interactive: shell echo, {SHELL_WARMUP} + {SHELL_ROUNDS} x (shell_write `echo MARK<n>`, shell_read until MARK<n>)"
    ));
    let t = Instant::now();
    let shell = m
        .shell_open(
            ShellOpenParams {
                workspace_id: id.into(),
                cwd: GUEST_WORKSPACE.into(),
                cols: 120,
                rows: 30,
                secret_env: Default::default(),
            },
            &mut Quiet,
        )
        .map_err(core_err("opening a shell"))?;
    let open_ms = ms(t.elapsed());
    let shell_id = shell.shell_id;
    let mut cursor = 0;
    let (mut rtt, mut reads) = (Vec::new(), Vec::new());
    for n in 1..=SHELL_WARMUP + SHELL_ROUNDS {
        let (took, r) = echo_round(m, id, &shell_id, &mut cursor, &format!("MARK{n}"))?;
        if n > SHELL_WARMUP {
            rtt.push(took);
            reads.push(r as f64);
        }
    }
    m.shell_close(
        ShellRef {
            workspace_id: id.into(),
            shell_id,
        },
        &mut Quiet,
    )
    .map_err(core_err("closing the shell"))?;
    progress(&format!(
        "shell echo round trip {:.1} ms (p90 {:.1}), {:.1} shell_read calls each",
        median(&rtt),
        super::quantile(&rtt, 0.9),
        median(&reads)
    ));
    Ok(json!({
        "how": format!(
            "Manager::shell_open (cwd /workspace, 120x30), then per round: Manager::shell_write of `echo MARK<n>` with append_newline, then Manager::shell_read from the previous next_cursor (wait_for_idle_ms {SHELL_IDLE_MS}, a long poll: the agent waits for output, then answers once none came for {SHELL_IDLE_MS} ms, its wait loop adding up to 10 ms when output is still arriving; plain false), repeated until MARK<n> is a whole output line of its own (the terminal's echo of the typed line does not count); timed from before the write to the read that brought it; {SHELL_WARMUP} uncounted rounds first; in-process"
        ),
        "shell_open_ms": round(open_ms),
        "round_trip_ms": stats_p90(&rtt),
        "shell_reads_per_round": {
            "note": "shell_read calls each counted round needed",
            "median": round(median(&reads)),
            "max": reads.iter().copied().fold(0.0, f64::max),
        },
    }))
}

/// One echo round trip: (ms, shell_read calls).
fn echo_round(
    m: &Manager,
    id: &str,
    shell_id: &str,
    cursor: &mut u64,
    mark: &str,
) -> Result<(f64, usize), String> {
    let t = Instant::now();
    m.shell_write(
        ShellWriteParams {
            workspace_id: id.into(),
            shell_id: shell_id.into(),
            input: format!("echo {mark}"),
            append_newline: true,
        },
        &mut Quiet,
    )
    .map_err(core_err("shell write"))?;
    let mut seen = String::new();
    let mut reads = 0;
    loop {
        let r = m
            .shell_read(
                ShellReadParams {
                    workspace_id: id.into(),
                    shell_id: shell_id.into(),
                    cursor: *cursor,
                    max_chars: 65536,
                    plain: false,
                    wait_for_idle_ms: Some(SHELL_IDLE_MS),
                },
                &mut Quiet,
            )
            .map_err(core_err("shell read"))?;
        reads += 1;
        *cursor = r.next_cursor;
        seen.push_str(&r.output);
        if has_line(&seen, mark) {
            return Ok((ms(t.elapsed()), reads));
        }
        if r.shell.state != "running" {
            return Err(format!(
                "the shell ended (exit code {:?}) before printing {mark}; it printed: {seen:?}",
                r.shell.exit_code
            ));
        }
        if t.elapsed() > SHELL_TIMEOUT {
            return Err(format!(
                "the shell did not print {mark} within {} s; it printed: {seen:?}",
                SHELL_TIMEOUT.as_secs()
            ));
        }
    }
}

/// Whether `text` has a whole line (ended by a newline) that shows as
/// `line` on a terminal: control sequences (CSI) left out, and only what
/// follows the line's last carriage return (bash switches bracketed paste
/// off with `ESC [?2004l CR` just before a command's output).
fn has_line(text: &str, line: &str) -> bool {
    let mut parts: Vec<&str> = text.split('\n').collect();
    parts.pop(); // not ended yet
    parts.iter().any(|l| {
        let l = l.trim_end_matches('\r');
        let shown = l.rsplit('\r').next().unwrap_or(l);
        strip_csi(shown) == line
    })
}

/// `text` without its CSI sequences (`ESC [`, parameters, a final byte).
fn strip_csi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Service readiness

fn service_params(id: &str, name: &str, argv: Vec<String>) -> ServiceStartParams {
    ServiceStartParams {
        workspace_id: id.into(),
        service_name: name.into(),
        command: CommandSpec::Argv(argv),
        cwd: GUEST_WORKSPACE.into(),
        ready_file: None,
        ready_tcp: None,
        ready_http: None,
        ready_command: None,
        ready_timeout_seconds: 120,
        ready_interval_ms: READY_INTERVAL_MS,
        secret_env: Default::default(),
        published_ports: Vec::new(),
    }
}

/// Fails unless the service is running and ready; returns ready_at -
/// started_at in ms (guest clock).
fn check_ready(s: &ServiceInfo) -> Result<f64, String> {
    match (s.state, s.ready_at) {
        (ServiceState::Running, Some(ready)) => Ok((ready - s.started_at) * 1000.0),
        _ => Err(format!(
            "service '{}' did not become ready: state {:?}, stop reason {:?}",
            s.service_name, s.state, s.stop_reason
        )),
    }
}

fn stop_service(m: &Manager, id: &str, name: &str) -> Result<f64, String> {
    let t = Instant::now();
    m.service_stop(
        ServiceRef {
            workspace_id: id.into(),
            service_name: name.into(),
        },
        &mut Quiet,
    )
    .map_err(core_err("stopping a service"))?;
    Ok(ms(t.elapsed()))
}

fn service_ready(m: &Manager, id: &str) -> Result<Value, String> {
    progress(&format!(
        "interactive: service readiness, {READY_WARMUP} + {READY_ROUNDS} x service_start with ready_file (probe every {READY_INTERVAL_MS} ms)"
    ));
    let (mut wall, mut guest, mut stop) = (Vec::new(), Vec::new(), Vec::new());
    for n in 1..=READY_WARMUP + READY_ROUNDS {
        let name = format!("ready-{n}");
        let mut p = service_params(
            id,
            &name,
            vec![
                "sh".into(),
                "-c".into(),
                format!("touch /workspace/.r-{n}; exec sleep 600"),
            ],
        );
        p.ready_file = Some(format!(".r-{n}"));
        let t = Instant::now();
        let s = m
            .service_start(p, &mut Quiet)
            .map_err(core_err("starting a service"))?;
        let took = ms(t.elapsed());
        let g = check_ready(&s)?;
        let stopped = stop_service(m, id, &name)?;
        if n > READY_WARMUP {
            wall.push(took);
            guest.push(g);
            stop.push(stopped);
        }
    }
    progress(&format!(
        "service_start to ready {:.1} ms (guest ready_at - started_at {:.1} ms)",
        median(&wall),
        median(&guest)
    ));
    Ok(json!({
        "how": format!(
            "Manager::service_start of `sh -c 'touch /workspace/.r-<n>; exec sleep 600'` (argv, no login shell) with ready_file .r-<n> and ready_interval_ms {READY_INTERVAL_MS}, which returns once the agent saw the file; wall time of the call, and the result's ready_at - started_at (guest clock); each service then stopped with Manager::service_stop (timed apart); {READY_WARMUP} uncounted start first; in-process"
        ),
        "ready_interval_ms": READY_INTERVAL_MS,
        "service_start_ms": stats_p90(&wall),
        "guest_ready_at_minus_started_at_ms": stats_p90(&guest),
        "service_stop_ms": stats_p90(&stop),
    }))
}

// ---------------------------------------------------------------------------
// Published port

/// One GET from the host: connect, request, read to EOF; checked.
fn host_get(port: u16) -> Result<f64, String> {
    let t = Instant::now();
    let mut s =
        TcpStream::connect(("127.0.0.1", port)).ctx(&format!("connecting to 127.0.0.1:{port}"))?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))
        .ctx("setting a read timeout")?;
    s.write_all(HTTP_REQUEST.as_bytes())
        .ctx("sending the request")?;
    let mut got = Vec::new();
    s.read_to_end(&mut got).ctx("reading the answer")?;
    let took = ms(t.elapsed());
    let text = String::from_utf8_lossy(&got);
    let status = text.lines().next().unwrap_or("");
    let ok = status.starts_with("HTTP/1.") && status.contains(" 200") && text.ends_with(INDEX_HTML);
    if !ok {
        return Err(format!(
            "GET through the published port answered {} bytes, not the page: {:?}",
            got.len(),
            text.chars().take(200).collect::<String>()
        ));
    }
    Ok(took)
}

/// The guest side: the same GETs with bash's /dev/tcp (no fork for the
/// request itself), each timed with `date +%s%N` (as asked) and with
/// bash's $EPOCHREALTIME (no fork) inside that.
fn guest_script() -> String {
    let request = HTTP_REQUEST.replace('\r', "\\r").replace('\n', "\\n");
    format!(
        r#"req=$'{request}'
get() {{
  exec 3<>/dev/tcp/127.0.0.1/{HTTP_PORT} || return 1
  printf '%s' "$req" >&3
  IFS= read -r -d '' -u 3 resp
  exec 3<&-
  return 0
}}
check() {{
  case $resp in
    HTTP/1.?' 200'*'pyro-bench-index'*) return 0 ;;
    *) echo "request $1 answered: ${{resp:0:200}}" >&2; return 1 ;;
  esac
}}
for i in $(seq 1 {HTTP_WARMUP}); do get && check "warm-up $i" || exit 1; done
for i in $(seq 1 {HTTP_REQUESTS}); do
  s=$(date +%s%N); a=$EPOCHREALTIME
  get || exit 1
  b=$EPOCHREALTIME; e=$(date +%s%N)
  check "$i" || exit 1
  if [ -n "$a" ]; then us=$(( ${{b//[.,]/}} - ${{a//[.,]/}} )); else us=-; fi
  echo "R $((e - s)) $us"
done
"#
    )
}

/// Per-request (date ns, EPOCHREALTIME µs when bash has it) from the
/// script's output.
fn parse_guest(stdout: &str) -> Result<(Vec<f64>, Option<Vec<f64>>), String> {
    let (mut date, mut epoch) = (Vec::new(), Vec::new());
    let mut have_epoch = true;
    for line in stdout.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let ["R", ns, us] = f[..] else {
            return Err(format!("unexpected line from the guest loop: {line:?}"));
        };
        let ns: u64 = ns
            .parse()
            .ctx(&format!("a duration in ns from the guest loop: {line:?}"))?;
        date.push(ns as f64 / 1e6);
        match us.parse::<u64>() {
            Ok(us) => epoch.push(us as f64 / 1e3),
            Err(_) => have_epoch = false,
        }
    }
    if date.len() != HTTP_REQUESTS {
        return Err(format!(
            "the guest loop reported {} requests, not {HTTP_REQUESTS}: {stdout:?}",
            date.len()
        ));
    }
    Ok((date, have_epoch.then_some(epoch)))
}

fn published_port(m: &Manager, id: &str) -> Result<Value, String> {
    progress("interactive: starting busybox httpd with a published port");
    let name = "httpd";
    let mut p = service_params(
        id,
        name,
        [
            "/workspace/busybox",
            "httpd",
            "-f",
            "-p",
            &HTTP_PORT.to_string(),
            "-h",
            "/workspace/www",
        ]
        .map(String::from)
        .to_vec(),
    );
    p.ready_tcp = Some(format!("127.0.0.1:{HTTP_PORT}"));
    p.published_ports = vec![PublishedPortSpec {
        guest_port: HTTP_PORT,
        host_port: None,
    }];
    let t = Instant::now();
    let s = m
        .service_start(p, &mut Quiet)
        .map_err(core_err("starting busybox httpd"))?;
    let start_ms = ms(t.elapsed());
    let guest_ready_ms = check_ready(&s)?;
    let host_port = s
        .published_ports
        .first()
        .map(|p| p.host_port)
        .ok_or(format!("service_start published no port: {s:?}"))?;
    progress(&format!(
        "httpd ready in {start_ms:.0} ms, published on 127.0.0.1:{host_port}; {HTTP_WARMUP} + {HTTP_REQUESTS} GETs from the host, then the same in the guest"
    ));

    for _ in 0..HTTP_WARMUP {
        host_get(host_port)?;
    }
    let mut host = Vec::with_capacity(HTTP_REQUESTS);
    for _ in 0..HTTP_REQUESTS {
        host.push(host_get(host_port)?);
    }

    let t = Instant::now();
    let r = m
        .workspace_exec(
            WorkspaceExecParams {
                workspace_id: id.into(),
                command: CommandSpec::Argv(vec!["bash".into(), "-c".into(), guest_script()]),
                cwd: GUEST_WORKSPACE.into(),
                timeout_seconds: 600,
                secret_env: Default::default(),
            },
            &mut Quiet,
        )
        .map_err(core_err("running the in-guest GET loop"))?;
    let loop_ms = ms(t.elapsed());
    if r.output.exit_code != 0 {
        return Err(format!(
            "the in-guest GET loop exited with {}: {}",
            r.output.exit_code,
            r.output.stderr.trim()
        ));
    }
    let (guest, epoch) = parse_guest(&r.output.stdout)?;
    stop_service(m, id, name)?;

    let ratio = median(&host) / median(&guest);
    let epoch_part = match &epoch {
        Some(e) => json!({
            "note": "the same in-guest requests timed with bash's $EPOCHREALTIME just inside the two `date` calls (no fork): the request alone; the difference from in_guest_ms is what the `date +%s%N` timing adds",
            "ms": stats_p90(e),
            "ratio_published_vs_this": round(median(&host) / median(e)),
            "date_timing_overhead_ms_median": round(median(&guest) - median(e)),
        }),
        None => json!(null),
    };
    progress(&format!(
        "published port GET {:.1} ms (p90 {:.1}) vs in-guest {:.1} ms (date) / {} ms (EPOCHREALTIME): ratio {ratio:.2}",
        median(&host),
        super::quantile(&host, 0.9),
        median(&guest),
        epoch
            .as_ref()
            .map_or("n/a".into(), |e| format!("{:.1}", median(e)))
    ));
    Ok(json!({
        "how": format!(
            "busybox httpd (the host's static busybox, seeded into /workspace) as a service with ready_tcp 127.0.0.1:{HTTP_PORT} and guest port {HTTP_PORT} published on a free host port (network policy egress+published-ports); published: {HTTP_REQUESTS} sequential HTTP/1.0 GETs of /index.html ({} bytes) from the bench with std::net::TcpStream to 127.0.0.1:<host_port>, each timed from connect to EOF (host proxy, vsock, the agent's TCP connect in the guest); in guest: one Manager::workspace_exec of a bash loop making the same {HTTP_REQUESTS} GETs to 127.0.0.1:{HTTP_PORT} over bash's /dev/tcp (connect, printf, builtin read to EOF), each timed with `date +%s%N` around it (so each sample includes one `date` fork+exec); every answer checked on both sides; {HTTP_WARMUP} uncounted GETs first on each side; host GETs all before the guest loop (not interleaved)",
            INDEX_HTML.len()
        ),
        "host_port": host_port,
        "httpd_service_start_ms": round(start_ms),
        "httpd_guest_ready_at_minus_started_at_ms": round(guest_ready_ms),
        "published_ms": stats_p90(&host),
        "in_guest_ms": stats_p90(&guest),
        "ratio_published_vs_in_guest": round(ratio),
        "ratio_note": "published_ms median / in_guest_ms median; in_guest_ms samples include a `date` fork+exec (tens of ms under TCG), so in_guest_epochrealtime.ratio_published_vs_this is the like-for-like ratio",
        "in_guest_epochrealtime": epoch_part,
        "guest_loop_exec_ms": round(loop_ms),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_counts_only_on_a_whole_line_of_its_own() {
        assert!(!has_line("$ echo MARK1\r\n", "MARK1"));
        assert!(!has_line("$ echo MARK1\r\nMARK1", "MARK1"));
        assert!(has_line("$ echo MARK1\r\nMARK1\r\n$ ", "MARK1"));
        assert!(!has_line("MARK10\r\n", "MARK1"));
        // What bash printed in a debian:12 guest.
        let seen = "echo MARK1\r\n\u{1b}[?2004hpyro$ echo MARK1\r\n\u{1b}[?2004l\rMARK1\r\n\u{1b}[?2004hpyro$ ";
        assert!(has_line(seen, "MARK1"));
        assert!(!has_line(&seen[..seen.len() - 25], "MARK1"));
        assert!(has_line("\u{1b}[1;32mMARK1\u{1b}[0m\r\n", "MARK1"));
    }

    #[test]
    fn the_guest_loop_output_is_parsed() {
        let line = "R 2500000 1200\n";
        let (d, e) = parse_guest(&line.repeat(HTTP_REQUESTS)).unwrap();
        assert_eq!(d, vec![2.5; HTTP_REQUESTS]);
        assert_eq!(e, Some(vec![1.2; HTTP_REQUESTS]));
        let line = "R 2500000 -\n";
        let (_, e) = parse_guest(&line.repeat(HTTP_REQUESTS)).unwrap();
        assert_eq!(e, None);
        assert!(parse_guest("R 1 1\n").is_err());
        assert!(parse_guest("boom\n").is_err());
    }

    #[test]
    fn static_elf_is_told_from_dynamic() {
        // This test binary is dynamically linked (glibc target).
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(elf_is_static(&me), Some(false));
        assert_eq!(elf_is_static(b"#!/bin/sh\n"), None);
    }
}

//! The `templates` series: workspaces resumed from a copy of a booted
//! template against cold-booted ones, all through the Manager in-process,
//! in the bench store (`<bench dir>/ws`, where `collect_stale` finds them):
//!
//! - `create_to_first_exec`: `workspace_create` then the first
//!   `workspace_exec` of `true`, from the template and cold
//!   (`PYRO_TEMPLATES=off` in this process's environment around the call),
//!   alternating, after one uncounted create from the template (which
//!   builds it when missing). Every sample's `boot.mode` is checked: a
//!   template sample that booted cold fails the series, with its reason.
//!   Target: template / cold medians of create + first exec ≤ 0.1;
//! - `idle_memory`: host memory of a few idle workspaces 30 s after each
//!   was created from the template (and of one cold-booted one, for
//!   comparison): QEMU's anonymous memory, the guest RAM memfd's allocated
//!   size (once), and the vsock sidecar's and slirp4netns' own memory.
//!   Target: median ≤ 120 MiB;
//! - `held`: `--templates-count N` idle workspaces created one after
//!   another from the template and held at once: create rate, an exec of
//!   `true` in each, the host's MemAvailable drop and the sum of the
//!   `idle_memory` measure over all, then every one deleted (timed). A
//!   create that fails (admission by host memory, say) ends the creates;
//!   how many were held and the error are reported.
//!
//! Every workspace of the series is deleted however it ends.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use pyro_core::api::{
    BootMode, CommandSpec, WorkspaceCreateParams, WorkspaceExecParams, WorkspaceInfo, WorkspaceRef,
};
use pyro_core::{Manager, Quiet};
use pyro_vmm::process::ProcRef;
use pyro_vmm::VmHandle;
use serde_json::{json, Value};

use super::{core_err, median, ms, progress, round, stats, verdict, Ctx, ENV, GUEST_WORKSPACE};

/// Counted rounds of each mode in `create_to_first_exec`.
const ROUNDS: usize = 5;
/// Idle workspaces from the template measured in `idle_memory`.
const IDLE_TEMPLATE: usize = 3;
/// How long after its create an idle workspace is measured.
const IDLE_SETTLE: Duration = Duration::from_secs(30);
/// Longer than the series, so the idle stop never interferes.
const TTL_SECONDS: u64 = 3600;
/// Timeout of every `true`.
const EXEC_TIMEOUT_S: u64 = 120;
/// Target of template / cold (create + first exec, medians).
const RATIO_TARGET: f64 = 0.1;
/// Target of the idle memory median, MiB.
const IDLE_MIB_TARGET: f64 = 120.0;

const MIB: f64 = 1024.0 * 1024.0;

/// Runs the `templates` series with `held_count` workspaces held at once.
pub(crate) fn templates_bench(
    m: &Manager,
    root: &Path,
    held_count: usize,
) -> Result<Value, String> {
    let state = root.join("ws");
    std::fs::create_dir_all(&state).ctx("creating a state dir")?;
    let wm = Manager::new(pyro_core::Config {
        state_dir: state,
        ..m.config().clone()
    });
    let templates_dir = m.config().cache_dir.join("templates");
    let owned = Owned {
        m: &wm,
        ids: Vec::new(),
    };
    let mut s = Series { m: &wm, owned };

    let (rounds, ratio) = s.create_to_first_exec()?;
    let (idle, idle_verdict) = s.idle_memory()?;
    let held = s.held(held_count)?;
    let present = std::fs::read_dir(&templates_dir)
        .map(|r| {
            r.filter_map(Result::ok)
                .filter(|e| e.path().join("template.json").is_file())
                .count()
        })
        .unwrap_or(0);
    Ok(json!({
        "how": format!(
            "all through pyro_core::Manager in-process (no CLI), workspaces of {ENV} with the default shape (1 vCPU, 1024 MiB, network off, ttl {TTL_SECONDS} s) in the bench store; cold = PYRO_TEMPLATES=off set in this process's environment around the create (pyro-core reads it at each boot) and restored after; every sample's boot.mode from the create's WorkspaceInfo is kept"
        ),
        "templates_dir": templates_dir,
        "templates_present_at_end": present,
        "create_to_first_exec": rounds,
        "ratio_template_vs_cold": ratio,
        "idle_memory": idle,
        "idle_memory_mib": idle_verdict,
        "held": held,
    }))
}

// ---------------------------------------------------------------------------
// Workspaces owned by the series

/// Every workspace the series created and has not deleted yet; deleted on
/// drop, however the series ends.
struct Owned<'a> {
    m: &'a Manager,
    ids: Vec<String>,
}

impl Owned<'_> {
    /// Deletes one; returns the wall ms.
    fn delete(&mut self, id: &str) -> Result<f64, String> {
        self.ids.retain(|i| i != id);
        let t = Instant::now();
        self.m
            .workspace_delete(WorkspaceRef::new(id), &mut Quiet)
            .map_err(core_err(&format!("deleting workspace {id}")))?;
        Ok(ms(t.elapsed()))
    }
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        if !self.ids.is_empty() {
            progress(&format!(
                "templates: deleting {} workspace(s) left",
                self.ids.len()
            ));
        }
        for id in std::mem::take(&mut self.ids) {
            if let Err(e) = self
                .m
                .workspace_delete(WorkspaceRef::new(id.clone()), &mut Quiet)
            {
                progress(&format!("warning: deleting bench workspace {id}: {e}"));
            }
        }
    }
}

/// `PYRO_TEMPLATES=off` in this process's environment while it lives; the
/// previous value (or its absence) is put back on drop. pyro-core reads
/// the variable at each boot through std::env (whose lock makes this
/// safe against other Rust threads).
struct TemplatesOff(Option<OsString>);

impl TemplatesOff {
    fn set() -> TemplatesOff {
        let prev = std::env::var_os("PYRO_TEMPLATES");
        std::env::set_var("PYRO_TEMPLATES", "off");
        TemplatesOff(prev)
    }
}

impl Drop for TemplatesOff {
    fn drop(&mut self) {
        match self.0.take() {
            Some(v) => std::env::set_var("PYRO_TEMPLATES", v),
            None => std::env::remove_var("PYRO_TEMPLATES"),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Template,
    Cold,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Template => "template",
            Mode::Cold => "cold",
        }
    }
}

/// One create: the workspace, its wall ms, and how its guest started.
struct Created {
    id: String,
    create_ms: f64,
    mode: Option<BootMode>,
    reason: Option<String>,
    at: Instant,
}

impl Created {
    fn mode_str(&self) -> &'static str {
        self.mode.map_or("unknown", BootMode::as_str)
    }

    /// Fails unless the guest started the way it was asked to.
    fn check(&self, want: Mode) -> Result<(), String> {
        let got = match self.mode {
            Some(BootMode::Template) => Mode::Template,
            Some(BootMode::Cold) => Mode::Cold,
            Some(BootMode::Fork) => {
                return Err(format!("workspace {} reports a fork's boot", self.id))
            }
            None => {
                return Err(format!(
                    "workspace {} reports no boot mode (boot: null)",
                    self.id
                ))
            }
        };
        if got != want {
            return Err(format!(
                "workspace {} was asked to start {} but started {} (reason: {})",
                self.id,
                want.as_str(),
                got.as_str(),
                self.reason.as_deref().unwrap_or("none given")
            ));
        }
        Ok(())
    }

    fn sample(&self) -> Value {
        json!({"mode": self.mode_str(), "reason": self.reason})
    }
}

struct Series<'a> {
    m: &'a Manager,
    owned: Owned<'a>,
}

impl Series<'_> {
    /// Creates a workspace (cold: templates off for this call only).
    fn create(&mut self, name: &str, mode: Mode) -> Result<Created, pyro_core::Error> {
        let mut p = WorkspaceCreateParams::new(ENV);
        p.name = Some(name.into());
        p.ttl_seconds = TTL_SECONDS;
        let off = (mode == Mode::Cold).then(TemplatesOff::set);
        let t = Instant::now();
        let r = self.m.workspace_create(p, &mut Quiet);
        let create_ms = ms(t.elapsed());
        drop(off);
        let info: WorkspaceInfo = r?;
        self.owned.ids.push(info.workspace_id.clone());
        let (mode, reason) = match info.boot {
            Some(b) => (Some(b.mode), b.reason),
            None => (None, None),
        };
        Ok(Created {
            id: info.workspace_id,
            create_ms,
            mode,
            reason,
            at: t,
        })
    }

    /// Exec of `true` (argv); fails unless it exits 0. Returns wall ms.
    fn exec_true(&self, id: &str) -> Result<f64, String> {
        let t = Instant::now();
        let r = self
            .m
            .workspace_exec(
                WorkspaceExecParams {
                    workspace_id: id.into(),
                    command: CommandSpec::Argv(vec!["true".into()]),
                    cwd: GUEST_WORKSPACE.into(),
                    timeout_seconds: EXEC_TIMEOUT_S,
                    secret_env: Default::default(),
                },
                &mut Quiet,
            )
            .map_err(core_err(&format!("exec of `true` in workspace {id}")))?;
        let took = ms(t.elapsed());
        if r.output.exit_code != 0 {
            return Err(format!(
                "`true` in workspace {id} exited with {}: {}",
                r.output.exit_code,
                r.output.stderr.trim()
            ));
        }
        Ok(took)
    }

    // -----------------------------------------------------------------------
    // 1. create → first exec

    fn create_to_first_exec(&mut self) -> Result<(Value, Value), String> {
        progress("templates: uncounted create from the template (builds it when missing)");
        let c = self
            .create("tpl-warmup", Mode::Template)
            .map_err(core_err("creating the warm-up workspace"))?;
        c.check(Mode::Template)?;
        let warm_exec = self.exec_true(&c.id)?;
        let warm_delete = self.owned.delete(&c.id)?;
        progress(&format!(
            "warm-up: create {:.0} ms, first exec {warm_exec:.0} ms ({})",
            c.create_ms,
            c.mode_str()
        ));
        let warmup = json!({
            "create_ms": round(c.create_ms),
            "first_exec_ms": round(warm_exec),
            "delete_ms": round(warm_delete),
            "boot": c.sample(),
        });

        progress(&format!(
            "templates: {ROUNDS} rounds of create + first exec `true`, template and cold alternating"
        ));
        let mut by_mode: BTreeMap<&str, Samples> = BTreeMap::new();
        for n in 1..=ROUNDS {
            for mode in [Mode::Template, Mode::Cold] {
                let name = format!("tpl-{}-{n}", mode.as_str());
                let c = self.create(&name, mode).map_err(core_err(&format!(
                    "creating a workspace ({})",
                    mode.as_str()
                )))?;
                c.check(mode)?;
                let exec = self.exec_true(&c.id)?;
                let delete = self.owned.delete(&c.id)?;
                let s = by_mode.entry(mode.as_str()).or_default();
                s.create.push(c.create_ms);
                s.exec.push(exec);
                s.delete.push(delete);
                s.boots.push(c.sample());
            }
            let (t, c) = (&by_mode["template"], &by_mode["cold"]);
            progress(&format!(
                "round {n}: template {:.0} + {:.0} ms, cold {:.0} + {:.0} ms",
                t.create[n - 1],
                t.exec[n - 1],
                c.create[n - 1],
                c.exec[n - 1]
            ));
        }
        let (t, c) = (&by_mode["template"], &by_mode["cold"]);
        let (t_sum, c_sum) = (t.sums(), c.sums());
        let ratio = median(&t_sum) / median(&c_sum);
        let v = verdict(
            "templates: create + first exec, template / cold",
            ratio,
            &format!("≤ {RATIO_TARGET}"),
            ratio <= RATIO_TARGET,
            json!({
                "template_ms": round(median(&t_sum)),
                "cold_ms": round(median(&c_sum)),
                "create_only_ratio": round(median(&t.create) / median(&c.create)),
                "note": "medians of create_ms + first_exec_ms per sample",
            }),
        );
        Ok((
            json!({
                "how": format!(
                    "Manager::workspace_create (wall) then Manager::workspace_exec of argv [\"true\"] in /workspace (wall), then Manager::workspace_delete (timed apart, not in the sum); one uncounted create from the template first; then {ROUNDS} rounds each of a template create and a cold one (PYRO_TEMPLATES=off around the create); a sample whose boot.mode is not the one asked for fails the series"
                ),
                "rounds": ROUNDS,
                "warmup": warmup,
                "template": t.json(),
                "cold": c.json(),
            }),
            v,
        ))
    }

    // -----------------------------------------------------------------------
    // 2. Idle memory

    fn idle_memory(&mut self) -> Result<(Value, Value), String> {
        progress(&format!(
            "templates: idle memory of {IDLE_TEMPLATE} workspaces from the template and 1 cold, {} s after each create",
            IDLE_SETTLE.as_secs()
        ));
        let mut made = Vec::new();
        for n in 1..=IDLE_TEMPLATE {
            let c = self
                .create(&format!("tpl-idle-{n}"), Mode::Template)
                .map_err(core_err("creating an idle workspace"))?;
            c.check(Mode::Template)?;
            made.push((c, Mode::Template));
        }
        let c = self
            .create("tpl-idle-cold", Mode::Cold)
            .map_err(core_err("creating a cold idle workspace"))?;
        c.check(Mode::Cold)?;
        made.push((c, Mode::Cold));

        let (mut tpl, mut tpl_mib, mut cold) = (Vec::new(), Vec::new(), Vec::new());
        for (c, mode) in &made {
            if let Some(wait) = (c.at + IDLE_SETTLE).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let after = c.at.elapsed().as_secs_f64();
            let mem = workspace_memory(self.m, &c.id)?;
            let mut v = mem.json();
            v["workspace_id"] = json!(c.id);
            v["mode"] = json!(mode.as_str());
            v["create_ms"] = json!(round(c.create_ms));
            v["measured_s_after_create"] = json!(round(after));
            match mode {
                Mode::Template => {
                    tpl_mib.push(mem.total_mib());
                    tpl.push(v);
                }
                Mode::Cold => cold.push(v),
            }
            progress(&format!(
                "{} {}: {:.1} MiB (qemu anon {:.1}, guest RAM {:.1}, sidecar {:.1}, slirp {:.1})",
                mode.as_str(),
                c.id,
                mem.total_mib(),
                mem.qemu_anon as f64 / MIB,
                mem.ram_allocated as f64 / MIB,
                mem.sidecar as f64 / MIB,
                mem.net as f64 / MIB
            ));
        }
        for (c, _) in &made {
            self.owned.delete(&c.id)?;
        }
        let med = median(&tpl_mib);
        let v = verdict(
            "templates: idle workspace host memory (MiB, median)",
            med,
            &format!("≤ {IDLE_MIB_TARGET} MiB"),
            med <= IDLE_MIB_TARGET,
            json!({"samples_mib": tpl_mib.iter().map(|v| round(*v)).collect::<Vec<_>>()}),
        );
        Ok((
            json!({
                "how": format!(
                    "{IDLE_TEMPLATE} workspaces created from the template one after another, then 1 cold (PYRO_TEMPLATES=off), all held at once and left idle; each measured {} s after its create. Per workspace, bytes: QEMU's RssAnon (/proc/PID/status) + the allocated size of each memfd QEMU holds (st_blocks*512 of /proc/PID/fd/N whose link is /memfd:...: the guest RAM, counted once; 'pyro-ram' for a template clone, QEMU's own for a cold boot) + the vsock sidecar's RssAnon (its file pages are the program and libraries every sidecar shares in the page cache, like QEMU's RssFile; its shared memory is the guest RAM counted already) + the same for slirp4netns if any; QEMU runs without transparent huge pages (PR_SET_THP_DISABLE), so its TCG buffer is counted in the 4 KiB pages it touches; the pids are the workspace record's runtime.vm handle (checked alive and that QEMU's command line names the guest's directory). Shared files in the page cache (template RAM file, kernel, disk images) and kernel page tables are not counted",
                    IDLE_SETTLE.as_secs()
                ),
                "template": tpl,
                "template_mib": stats(&tpl_mib),
                "cold": cold,
            }),
            v,
        ))
    }

    // -----------------------------------------------------------------------
    // 3. Many held at once

    fn held(&mut self, count: usize) -> Result<Value, String> {
        progress(&format!(
            "templates: holding {count} idle workspaces from the template"
        ));
        let avail_before = mem_available()?;
        let every = (count / 10).max(1);
        let mut held: Vec<Created> = Vec::new();
        let mut create_error = None;
        let started = Instant::now();
        for n in 1..=count {
            match self.create(&format!("tpl-held-{n}"), Mode::Template) {
                Ok(c) => {
                    if c.mode != Some(BootMode::Template) {
                        progress(&format!(
                            "warning: create {n} started {} in {:.0} ms: {}",
                            c.mode_str(),
                            c.create_ms,
                            c.reason.as_deref().unwrap_or("no reason given")
                        ));
                    }
                    held.push(c);
                }
                Err(e) => {
                    let msg = core_err(&format!("create {n} of {count}"))(e);
                    progress(&format!("templates: {msg}; stopping at {} held", n - 1));
                    create_error = Some(msg);
                    break;
                }
            }
            if n % every == 0 || n == count {
                progress(&format!(
                    "{n} held, {:.1} s, MemAvailable {} MiB",
                    started.elapsed().as_secs_f64(),
                    mem_available().unwrap_or(0) >> 20
                ));
            }
        }
        let create_s = started.elapsed().as_secs_f64();
        let create_ms: Vec<f64> = held.iter().map(|c| c.create_ms).collect();
        let template_create_ms: Vec<f64> = held
            .iter()
            .filter(|c| c.mode == Some(BootMode::Template))
            .map(|c| c.create_ms)
            .collect();
        let mut modes: BTreeMap<&str, usize> = BTreeMap::new();
        for c in &held {
            *modes.entry(c.mode_str()).or_default() += 1;
        }
        let cold_reasons: Vec<Value> = held
            .iter()
            .filter(|c| c.mode != Some(BootMode::Template))
            .take(5)
            .map(|c| json!({"workspace_id": c.id, "boot": c.sample()}))
            .collect();

        let (mut exec_ms, mut exec_errors, mut exec_failed) = (Vec::new(), Vec::new(), 0usize);
        for c in &held {
            match self.exec_true(&c.id) {
                Ok(t) => exec_ms.push(t),
                Err(e) => {
                    exec_failed += 1;
                    if exec_errors.len() < 5 {
                        exec_errors.push(e);
                    }
                }
            }
        }
        let avail_after = mem_available()?;
        let (mut measured, mut measure_errors) = (Vec::new(), Vec::new());
        for c in &held {
            match workspace_memory(self.m, &c.id) {
                Ok(mem) => measured.push(mem.total_mib()),
                Err(e) => {
                    if measure_errors.len() < 5 {
                        measure_errors.push(e);
                    }
                }
            }
        }
        let drop_mib = avail_before.saturating_sub(avail_after) as f64 / MIB;
        let sum_mib: f64 = measured.iter().sum();
        let n_held = held.len();
        progress(&format!(
            "{n_held} held: {:.2} workspaces/s; {} answered `true`; MemAvailable dropped {drop_mib:.0} MiB ({:.1} per workspace), measured sum {sum_mib:.0} MiB",
            n_held as f64 / create_s,
            exec_ms.len(),
            drop_mib / n_held.max(1) as f64
        ));

        let t = Instant::now();
        let mut delete_ms = Vec::new();
        for c in &held {
            delete_ms.push(self.owned.delete(&c.id)?);
        }
        let delete_s = t.elapsed().as_secs_f64();
        let avail_end = mem_available()?;
        progress(&format!(
            "deleted {n_held} in {delete_s:.1} s; MemAvailable back to {} MiB (was {} MiB)",
            avail_end >> 20,
            avail_before >> 20
        ));
        Ok(json!({
            "how": "workspaces created one after another from the template (Manager::workspace_create; a create that fell back to a cold boot is kept, counted in boot_modes and listed with its reason in not_template), then Manager::workspace_exec of `true` in each, then MemAvailable (/proc/meminfo) read again and every workspace measured as in idle_memory (right after the execs, not 30 s after), then all deleted one after another (Manager::workspace_delete); create rate = workspaces held / wall time of all the creates; the first create that fails ends the creates",
            "requested": count,
            "held": n_held,
            "create_error": create_error,
            "create_wall_s": round(create_s),
            "creates_per_s": round(n_held as f64 / create_s),
            "create_ms": stats(&create_ms),
            "create_ms_template_only": stats(&template_create_ms),
            "boot_modes": modes,
            "not_template": cold_reasons,
            "exec_true": {
                "answered": exec_ms.len(),
                "failed": exec_failed,
                "errors": exec_errors,
                "ms": stats(&exec_ms),
            },
            "mem_available_mib": {
                "before": avail_before >> 20,
                "after_creates_and_execs": avail_after >> 20,
                "after_deletes": avail_end >> 20,
                "drop": round(drop_mib),
                "drop_per_workspace": round(drop_mib / n_held.max(1) as f64),
            },
            "measured_mib": {
                "note": "the idle_memory measure of each held workspace",
                "sum": round(sum_mib),
                "per_workspace": stats(&measured),
                "errors": measure_errors,
            },
            "delete_wall_s": round(delete_s),
            "delete_ms": stats(&delete_ms),
        }))
    }
}

/// Samples of one mode in `create_to_first_exec`.
#[derive(Default)]
struct Samples {
    create: Vec<f64>,
    exec: Vec<f64>,
    delete: Vec<f64>,
    boots: Vec<Value>,
}

impl Samples {
    fn sums(&self) -> Vec<f64> {
        self.create
            .iter()
            .zip(&self.exec)
            .map(|(c, e)| c + e)
            .collect()
    }

    fn json(&self) -> Value {
        json!({
            "create_ms": stats(&self.create),
            "first_exec_ms": stats(&self.exec),
            "create_plus_first_exec_ms": stats(&self.sums()),
            "delete_ms": stats(&self.delete),
            "boot": self.boots,
        })
    }
}

// ---------------------------------------------------------------------------
// Host memory

/// MemAvailable from /proc/meminfo, bytes.
fn mem_available() -> Result<u64, String> {
    let text = std::fs::read_to_string("/proc/meminfo").ctx("reading /proc/meminfo")?;
    meminfo_field(&text, "MemAvailable:").ok_or("/proc/meminfo has no MemAvailable".to_string())
}

/// A `Name:   N kB` field of /proc/meminfo or /proc/PID/status, in bytes.
fn meminfo_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// One process's memory from /proc/PID/status, bytes.
#[derive(Default)]
struct ProcMem {
    rss: u64,
    anon: u64,
    file: u64,
    shmem: u64,
}

impl ProcMem {
    fn of(pid: u32) -> Result<ProcMem, String> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ctx(&format!("reading /proc/{pid}/status"))?;
        Ok(parse_status(&text))
    }

    /// Its own memory: its anonymous pages. Its file pages (the
    /// program and libraries) are page cache every copy of it shares, like
    /// QEMU's, and its shared memory is the guest RAM counted already.
    fn own(&self) -> u64 {
        self.anon
    }

    fn json(&self, pid: u32) -> Value {
        let mib = |b: u64| round(b as f64 / MIB);
        json!({"pid": pid, "vm_rss_mib": mib(self.rss), "rss_anon_mib": mib(self.anon),
               "rss_file_mib": mib(self.file), "rss_shmem_mib": mib(self.shmem)})
    }
}

fn parse_status(text: &str) -> ProcMem {
    let f = |name| meminfo_field(text, name).unwrap_or(0);
    ProcMem {
        rss: f("VmRSS:"),
        anon: f("RssAnon:"),
        file: f("RssFile:"),
        shmem: f("RssShmem:"),
    }
}

/// A memfd QEMU holds.
struct Memfd {
    name: String,
    size: u64,
    allocated: u64,
}

/// The memfds a process holds, each once (by inode).
fn memfds(pid: u32) -> Result<Vec<Memfd>, String> {
    let dir = format!("/proc/{pid}/fd");
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir)
        .ctx(&format!("reading {dir}"))?
        .filter_map(Result::ok)
    {
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        let Some(name) = memfd_name(&target) else {
            continue;
        };
        // Follows the link: the memfd itself.
        let Ok(meta) = std::fs::metadata(e.path()) else {
            continue;
        };
        if seen.insert((meta.dev(), meta.ino())) {
            out.push(Memfd {
                name: name.to_string(),
                size: meta.size(),
                allocated: meta.blocks() * 512,
            });
        }
    }
    Ok(out)
}

/// `/memfd:NAME (deleted)` → NAME.
fn memfd_name(link: &str) -> Option<&str> {
    let rest = link.strip_prefix("/memfd:")?;
    Some(rest.strip_suffix(" (deleted)").unwrap_or(rest))
}

/// The idle memory measure of one workspace.
struct WorkspaceMem {
    qemu_pid: u32,
    qemu: ProcMem,
    qemu_anon: u64,
    memfds: Vec<Memfd>,
    ram_allocated: u64,
    sidecar_pid: Option<u32>,
    sidecar_mem: Option<ProcMem>,
    sidecar: u64,
    net_pid: Option<u32>,
    net_mem: Option<ProcMem>,
    net: u64,
}

impl WorkspaceMem {
    fn total(&self) -> u64 {
        self.qemu_anon + self.ram_allocated + self.sidecar + self.net
    }

    fn total_mib(&self) -> f64 {
        self.total() as f64 / MIB
    }

    fn json(&self) -> Value {
        let mib = |b: u64| round(b as f64 / MIB);
        json!({
            "total_mib": mib(self.total()),
            "qemu_anon_mib": mib(self.qemu_anon),
            "guest_ram_allocated_mib": mib(self.ram_allocated),
            "sidecar_own_mib": mib(self.sidecar),
            "slirp4netns_own_mib": mib(self.net),
            "qemu": self.qemu.json(self.qemu_pid),
            "memfds": self.memfds.iter().map(|m| json!({
                "name": m.name, "size_mib": mib(m.size), "allocated_mib": mib(m.allocated),
            })).collect::<Vec<_>>(),
            "sidecar": self.sidecar_mem.as_ref().zip(self.sidecar_pid).map(|(m, p)| m.json(p)),
            "slirp4netns": self.net_mem.as_ref().zip(self.net_pid).map(|(m, p)| m.json(p)),
        })
    }
}

/// The guest handle of a workspace, from its record's (internal) runtime.
fn handle_of(m: &Manager, id: &str) -> Result<VmHandle, String> {
    let record = m
        .store()
        .map_err(core_err("opening the bench store"))?
        .resolve(id)
        .ctx(&format!("reading the record of workspace {id}"))?;
    serde_json::from_value(record.runtime["vm"].clone()).ctx(&format!(
        "the record of workspace {id} has no guest handle (pyro_core's runtime format changed?)"
    ))
}

fn live(p: &ProcRef, what: &str, id: &str) -> Result<u32, String> {
    if p.alive() {
        Ok(p.pid)
    } else {
        Err(format!(
            "the {what} of workspace {id} (pid {}) is not running",
            p.pid
        ))
    }
}

fn workspace_memory(m: &Manager, id: &str) -> Result<WorkspaceMem, String> {
    let vm = handle_of(m, id)?;
    let qemu_pid = live(&vm.vmm, "QEMU", id)?;
    let cmdline = std::fs::read(format!("/proc/{qemu_pid}/cmdline")).unwrap_or_default();
    let dir = vm.dir.to_string_lossy();
    if !String::from_utf8_lossy(&cmdline).contains(dir.as_ref()) {
        return Err(format!(
            "process {qemu_pid} (the QEMU of workspace {id}) does not name {dir} on its command line"
        ));
    }
    let qemu = ProcMem::of(qemu_pid)?;
    let fds = memfds(qemu_pid)?;
    let ram_allocated = fds.iter().map(|f| f.allocated).sum();
    let (sidecar_pid, sidecar_mem) = match &vm.sidecar {
        Some(p) => {
            let pid = live(p, "vsock sidecar", id)?;
            (Some(pid), Some(ProcMem::of(pid)?))
        }
        None => (None, None),
    };
    let (net_pid, net_mem) = match &vm.net {
        Some(p) => {
            let pid = live(p, "slirp4netns", id)?;
            (Some(pid), Some(ProcMem::of(pid)?))
        }
        None => (None, None),
    };
    Ok(WorkspaceMem {
        qemu_pid,
        qemu_anon: qemu.anon,
        qemu,
        memfds: fds,
        ram_allocated,
        sidecar_pid,
        sidecar: sidecar_mem.as_ref().map_or(0, ProcMem::own),
        sidecar_mem,
        net_pid,
        net: net_mem.as_ref().map_or(0, ProcMem::own),
        net_mem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_bytes() {
        let text = "Name:\tqemu-system-x86\nVmRSS:\t  204800 kB\nRssAnon:\t   51200 kB\nRssFile:\t   20480 kB\nRssShmem:\t  133120 kB\n";
        let p = parse_status(text);
        assert_eq!(p.rss, 200 << 20);
        assert_eq!(p.anon, 50 << 20);
        assert_eq!(p.file, 20 << 20);
        assert_eq!(p.shmem, 130 << 20);
        assert_eq!(p.own(), 50 << 20);
        assert_eq!(
            meminfo_field("MemAvailable:   1024 kB\n", "MemAvailable:"),
            Some(1 << 20)
        );
        assert_eq!(meminfo_field("MemFree: 1 kB\n", "MemAvailable:"), None);
    }

    #[test]
    fn memfd_links_are_named() {
        assert_eq!(memfd_name("/memfd:pyro-ram (deleted)"), Some("pyro-ram"));
        assert_eq!(
            memfd_name("/memfd:memory-backend-memfd (deleted)"),
            Some("memory-backend-memfd")
        );
        assert_eq!(memfd_name("/dev/null"), None);
        assert_eq!(memfd_name("anon_inode:[eventfd]"), None);
    }

    #[test]
    fn this_process_memfds_are_found_with_their_allocation() {
        use std::os::fd::FromRawFd;
        // SAFETY: memfd_create with a static name (flags: MFD_CLOEXEC);
        // the fd is owned below.
        let fd = unsafe { memfd_create(c"pyro-bench-test".as_ptr(), 1) };
        assert!(fd >= 0);
        // SAFETY: a fresh fd nobody else owns.
        let f = unsafe { std::fs::File::from_raw_fd(fd) };
        f.set_len(8 << 20).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[1u8; 4096], 4096).unwrap();
        let found = memfds(std::process::id()).unwrap();
        let m = found
            .iter()
            .find(|m| m.name == "pyro-bench-test")
            .expect("the test memfd");
        assert_eq!(m.size, 8 << 20);
        assert!(
            m.allocated >= 4096 && m.allocated < (1 << 20),
            "{}",
            m.allocated
        );
    }

    extern "C" {
        fn memfd_create(name: *const std::ffi::c_char, flags: std::ffi::c_uint) -> std::ffi::c_int;
    }
}

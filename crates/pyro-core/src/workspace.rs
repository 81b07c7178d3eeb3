//! Persistent workspaces: guests that keep running between commands and
//! are found again by id, name or labels.
//!
//! No daemon: `create` and `start` boot a detached guest and record how to
//! reach it (pids with start times, socket paths) in the store; every later
//! command reconnects to the agent. VM-level operations on one workspace
//! (create, start, stop, delete) hold its flock, so two `pyro` processes
//! never boot or kill the same guest at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use pyro_archive::Seed;
use pyro_env::FileLock;
use pyro_proto::ExecRequest;
use pyro_store::{
    CommandEntry, LastCommand, ListQuery, NameChange, NewWorkspace, Store, WorkspaceRecord,
    WorkspaceState, WorkspaceSummary,
};
use pyro_vmm::process::ProcRef;
use pyro_vmm::{qemu, Accel, OutputSink, VmHandle, VmSpec};
use serde::{Deserialize, Serialize};

use crate::output::Collector;
use crate::run::{shell_join, validate_resources};
use crate::{ids, Error, Manager};

/// Path inside the guest where the workspace lives.
pub const WORKSPACE_PATH: &str = "/workspace";
/// Default idle TTL: a workspace idle this long is stopped (never deleted).
pub const DEFAULT_TTL_SECONDS: u64 = 600;
/// Accepted idle TTLs.
pub const TTL_RANGE: std::ops::RangeInclusive<u64> = 60..=7 * 24 * 3600;
/// Output kept per stream in the command history.
const HISTORY_CAP: usize = 1024 * 1024;
const BOOT_DEADLINE_KVM: std::time::Duration = std::time::Duration::from_secs(30);
const BOOT_DEADLINE_TCG: std::time::Duration = std::time::Duration::from_secs(180);

/// What the store keeps about a workspace's guest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Runtime {
    /// The pyro process creating it (while state is `creating`).
    #[serde(default)]
    owner: Option<ProcRef>,
    /// The running guest (while state is `started`).
    #[serde(default)]
    vm: Option<VmHandle>,
    /// Accelerator it was booted with.
    #[serde(default)]
    accelerator: Option<Accel>,
}

fn runtime_of(r: &WorkspaceRecord) -> Runtime {
    serde_json::from_value(r.runtime.clone()).unwrap_or_default()
}

fn to_value(r: &Runtime) -> serde_json::Value {
    serde_json::to_value(r).unwrap_or_default()
}

/// Inputs of `create`.
#[derive(Debug, Clone)]
pub struct CreateWorkspace {
    /// Environment name.
    pub environment: String,
    /// Unique human name.
    pub name: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// vCPUs.
    pub vcpu_count: u32,
    /// Memory.
    pub mem_mib: u32,
    /// Idle TTL.
    pub ttl_seconds: u64,
    /// Host directory or .tar/.tar.gz/.tgz to unpack into /workspace.
    pub seed_path: Option<PathBuf>,
}

impl CreateWorkspace {
    /// Documented defaults.
    pub fn new(environment: impl Into<String>) -> Self {
        CreateWorkspace {
            environment: environment.into(),
            name: None,
            labels: BTreeMap::new(),
            vcpu_count: 1,
            mem_mib: 1024,
            ttl_seconds: DEFAULT_TTL_SECONDS,
            seed_path: None,
        }
    }
}

/// The public workspace payload (create, status, update, stop, start).
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceInfo {
    /// 12 hex characters.
    pub workspace_id: String,
    /// Unique name, if set.
    pub name: Option<String>,
    /// Labels, sorted by key.
    pub labels: BTreeMap<String, String>,
    /// Environment name.
    pub environment: String,
    /// Environment version.
    pub environment_version: String,
    /// creating, started, stopped or failed.
    pub state: WorkspaceState,
    /// vCPUs.
    pub vcpu_count: u32,
    /// Memory.
    pub mem_mib: u32,
    /// Idle TTL.
    pub ttl_seconds: Option<u64>,
    /// Creation time (Unix seconds).
    pub created_at: f64,
    /// Last mutating activity (Unix seconds).
    pub last_activity_at: f64,
    /// When the idle TTL stops it, if started.
    pub expires_at: Option<f64>,
    /// Network policy.
    pub network_policy: String,
    /// Always guest_vsock.
    pub execution_mode: String,
    /// `/workspace`.
    pub workspace_path: String,
    /// Commands run so far.
    pub command_count: u64,
    /// The last one.
    pub last_command: Option<LastCommand>,
    /// Services (none yet).
    pub service_count: u64,
    /// Running services.
    pub running_service_count: u64,
    /// Why it is failed or stopped unexpectedly.
    pub last_error: Option<String>,
    /// What /workspace was seeded from.
    pub workspace_seed: serde_json::Value,
}

/// Result of `exec`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceExecResult {
    /// Workspace.
    pub workspace_id: String,
    /// Environment.
    pub environment: String,
    /// Sequence number in the history.
    pub sequence: u64,
    /// Shell-quoted command.
    pub command: String,
    /// Working directory.
    pub cwd: String,
    /// Captured stdout (empty unless captured).
    pub stdout: String,
    /// Captured stderr (empty unless captured).
    pub stderr: String,
    /// Exit code.
    pub exit_code: i32,
    /// Timeout fired.
    pub timed_out: bool,
    /// Duration.
    pub duration_ms: u64,
    /// Always guest_vsock.
    pub execution_mode: String,
}

/// `list` result.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceList {
    /// How many.
    pub count: usize,
    /// The workspaces, most recently active first.
    pub workspaces: Vec<WorkspaceSummary>,
}

/// `logs` result.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceLogs {
    /// Workspace.
    pub workspace_id: String,
    /// How many entries.
    pub count: usize,
    /// History entries, oldest first.
    pub entries: Vec<CommandEntry>,
}

/// `delete` result.
#[derive(Debug, Clone, Serialize)]
pub struct DeleteResult {
    /// Workspace.
    pub workspace_id: String,
    /// Deleted.
    pub deleted: bool,
    /// Why.
    pub reason: String,
}

/// `gc` result.
#[derive(Debug, Clone, Serialize)]
pub struct GcResult {
    /// Started workspaces whose guest had died, now marked stopped.
    pub marked_stopped: Vec<String>,
    /// Creating workspaces whose creator died, now marked failed.
    pub marked_failed: Vec<String>,
    /// Started workspaces idle past their TTL, now stopped.
    pub idle_stopped: Vec<String>,
    /// Runtime directories with no workspace record, removed.
    pub removed_dirs: Vec<String>,
}

fn now() -> f64 {
    crate::now()
}

fn info(r: &WorkspaceRecord) -> WorkspaceInfo {
    WorkspaceInfo {
        workspace_id: r.workspace_id.clone(),
        name: r.name.clone(),
        labels: r.labels.clone(),
        environment: r.environment.clone(),
        environment_version: r.environment_version.clone(),
        state: r.state,
        vcpu_count: r.vcpu_count,
        mem_mib: r.mem_mib,
        ttl_seconds: r.ttl_seconds,
        created_at: r.created_at,
        last_activity_at: r.last_activity_at,
        expires_at: expires_at(r),
        network_policy: r.network_policy.clone(),
        execution_mode: "guest_vsock".into(),
        workspace_path: WORKSPACE_PATH.into(),
        command_count: r.command_count,
        last_command: r.last_command.clone(),
        service_count: 0,
        running_service_count: 0,
        last_error: r.last_error.clone(),
        workspace_seed: r.seed.clone(),
    }
}

fn expires_at(r: &WorkspaceRecord) -> Option<f64> {
    match (r.state, r.ttl_seconds) {
        (WorkspaceState::Started, Some(ttl)) => Some(r.last_activity_at + ttl as f64),
        _ => None,
    }
}

impl Manager {
    /// The store, opened on first use.
    pub fn store(&self) -> Result<&Store, Error> {
        if let Some(s) = self.store_cell().get() {
            return Ok(s);
        }
        crate::runtime_dirs::ensure_state_dir(&self.config().state_dir)?;
        let store = Store::open(&self.config().state_dir.join("pyro.db"))?;
        Ok(self.store_cell().get_or_init(|| store))
    }

    fn workspace_dir(&self, id: &str) -> PathBuf {
        self.config().state_dir.join("workspaces").join(id)
    }

    fn lock_workspace(&self, id: &str) -> Result<FileLock, Error> {
        let dir = self.workspace_dir(id);
        std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        FileLock::acquire(&dir.join("lock")).map_err(Error::io("locking the workspace"))
    }

    /// The state a record really has: a started guest that died is stopped,
    /// a creation whose creator died is failed. Pure: writes nothing.
    fn observed_state(r: &WorkspaceRecord) -> (WorkspaceState, Option<&'static str>) {
        let rt = runtime_of(r);
        match r.state {
            WorkspaceState::Started if !rt.vm.as_ref().is_some_and(VmHandle::alive) => (
                WorkspaceState::Stopped,
                Some("the guest is no longer running"),
            ),
            WorkspaceState::Creating if !rt.owner.as_ref().is_some_and(ProcRef::alive) => {
                (WorkspaceState::Failed, Some("creation was interrupted"))
            }
            s => (s, None),
        }
    }

    /// Resolves and reconciles a record with reality (persisting a changed
    /// state, without touching activity).
    fn load(&self, id_or_name: &str) -> Result<WorkspaceRecord, Error> {
        let store = self.store()?;
        let r = store.resolve(id_or_name)?;
        let (state, why) = Self::observed_state(&r);
        if state == r.state {
            return Ok(r);
        }
        if let Some(vm) = runtime_of(&r).vm {
            vm.kill();
        }
        store.set_state(
            &r.workspace_id,
            state,
            why.map(String::from),
            Some(to_value(&Runtime::default())),
            None,
        )?;
        Ok(store.resolve(&r.workspace_id)?)
    }

    /// Stops started workspaces idle past their TTL. Never deletes.
    fn stop_idle(&self) -> Result<Vec<String>, Error> {
        let store = self.store()?;
        let t = now();
        let mut stopped = Vec::new();
        for id in store.ids_idle_past_ttl(t)? {
            let _lock = self.lock_workspace(&id)?;
            // Re-read under the lock: an exec may have just touched it.
            let Ok(r) = store.resolve(&id) else { continue };
            let Some(ttl) = r.ttl_seconds else { continue };
            if r.state != WorkspaceState::Started || r.last_activity_at + ttl as f64 > t {
                continue;
            }
            if let Some(vm) = runtime_of(&r).vm {
                vm.shutdown();
            }
            store.set_state(
                &r.workspace_id,
                WorkspaceState::Stopped,
                Some(format!(
                    "stopped after {ttl} s idle (ttl_seconds); `pyro workspace start` resumes it"
                )),
                Some(to_value(&Runtime::default())),
                None,
            )?;
            stopped.push(r.workspace_id);
        }
        Ok(stopped)
    }

    fn boot(
        &self,
        id: &str,
        environment: &str,
        vcpus: u32,
        mem_mib: u32,
        record_pids: &dyn Fn(Runtime) -> Result<(), Error>,
    ) -> Result<Runtime, Error> {
        let env = self.ready_env(environment)?;
        let choice = self.choose_accel(&env)?;
        let spec = VmSpec {
            vm_id: id.to_string(),
            dir: self.workspace_dir(id),
            kernel: env.kernel(),
            initramfs: env.initramfs(),
            rootfs: env.rootfs(),
            vcpus,
            mem_mib,
            network: false,
            accel: choice.accelerator,
        };
        let mut vm = qemu::start_detached(&spec, self.tools())?;
        record_pids(Runtime {
            owner: ProcRef::of(std::process::id()),
            vm: vm.handle(),
            accelerator: Some(choice.accelerator),
        })?;
        let deadline = match choice.accelerator {
            Accel::Kvm => BOOT_DEADLINE_KVM,
            Accel::Tcg => BOOT_DEADLINE_TCG,
        };
        vm.wait_ready(deadline)?;
        let handle = vm.detach()?;
        Ok(Runtime {
            owner: None,
            vm: Some(handle),
            accelerator: Some(choice.accelerator),
        })
    }

    /// Creates and boots a workspace.
    /// `progress` hears about the boot once the input has been accepted.
    pub fn workspace_create(
        &self,
        req: &CreateWorkspace,
        progress: &mut dyn FnMut(&str),
    ) -> Result<WorkspaceInfo, Error> {
        validate_resources(req.vcpu_count, req.mem_mib)?;
        if !TTL_RANGE.contains(&req.ttl_seconds) {
            return Err(Error::InvalidArgument(format!(
                "ttl_seconds must be between {} and {}, got {}",
                TTL_RANGE.start(),
                TTL_RANGE.end(),
                req.ttl_seconds
            )));
        }
        let env = self.ready_env(&req.environment)?;
        // Probing (once per host) happens before anything is recorded.
        let choice = self.choose_accel(&env)?;
        // The whole seed is checked before anything is recorded or booted.
        let seed = match &req.seed_path {
            Some(p) => {
                let abs = if p.is_absolute() {
                    p.clone()
                } else {
                    std::env::current_dir().unwrap_or_default().join(p)
                };
                let seed = Seed::open(&abs)?;
                let stats = seed.check()?;
                Some((seed, stats))
            }
            None => None,
        };
        let seed_info = match &seed {
            Some((s, stats)) => serde_json::json!({
                "mode": s.mode(),
                "seed_path": s.path(),
                "destination": WORKSPACE_PATH,
                "entry_count": stats.entry_count,
                "bytes_written": stats.bytes,
            }),
            None => {
                serde_json::json!({"mode": "empty", "seed_path": null, "destination": WORKSPACE_PATH, "entry_count": 0, "bytes_written": 0})
            }
        };
        let store = self.store()?;
        self.stop_idle()?;
        let id = ids::new_id();
        let owner = ProcRef::of(std::process::id());
        // INVARIANT: the record exists (state creating, owner = us) before
        // any guest does, so a crash leaves something `list` shows and
        // `delete` removes.
        let record = store.insert(
            &NewWorkspace {
                workspace_id: id.clone(),
                name: req.name.clone(),
                labels: req.labels.clone(),
                environment: req.environment.clone(),
                environment_version: env.entry.version.to_string(),
                vcpu_count: req.vcpu_count,
                mem_mib: req.mem_mib,
                ttl_seconds: Some(req.ttl_seconds),
                network_policy: "off".into(),
                runtime: to_value(&Runtime {
                    owner,
                    ..Default::default()
                }),
                seed: seed_info,
            },
            now(),
        )?;
        let _lock = self.lock_workspace(&id)?;
        if choice.accelerator == Accel::Tcg {
            progress(&format!("notice: {}", choice.reason));
        }
        progress(&format!(
            "phase=boot workspace_id={id} environment={} accelerator={}",
            req.environment,
            choice.accelerator.as_str()
        ));
        let record_pids = |rt: Runtime| -> Result<(), Error> {
            Ok(store.set_state(
                &id,
                WorkspaceState::Creating,
                None,
                Some(to_value(&rt)),
                None,
            )?)
        };
        let booted = self
            .boot(
                &id,
                &req.environment,
                req.vcpu_count,
                req.mem_mib,
                &record_pids,
            )
            .and_then(|rt| {
                if let (Some((seed, _)), Some(vm)) = (&seed, &rt.vm) {
                    let mut write = |w: &mut dyn std::io::Write| {
                        seed.write_tar(w).map_err(std::io::Error::other)
                    };
                    if let Err(e) = vm.extract(WORKSPACE_PATH, &mut write) {
                        vm.kill();
                        return Err(e.into());
                    }
                }
                Ok(rt)
            });
        match booted {
            Ok(rt) => {
                store.set_state(
                    &id,
                    WorkspaceState::Started,
                    None,
                    Some(to_value(&rt)),
                    None,
                )?;
                Ok(info(&store.resolve(&id)?))
            }
            Err(e) => {
                let _ = store.set_state(
                    &record.workspace_id,
                    WorkspaceState::Failed,
                    Some(e.to_string()),
                    Some(to_value(&Runtime::default())),
                    None,
                );
                Err(e)
            }
        }
    }

    /// Workspaces matching a query. Never contacts a guest, never writes.
    pub fn workspace_list(&self, query: &ListQuery) -> Result<WorkspaceList, Error> {
        let store = self.store()?;
        let mut workspaces = store.list(query)?;
        for w in &mut workspaces {
            if matches!(w.state, WorkspaceState::Started | WorkspaceState::Creating) {
                if let Ok(r) = store.resolve(&w.workspace_id) {
                    w.state = Self::observed_state(&r).0;
                }
            }
        }
        if let Some(state) = query.state {
            workspaces.retain(|w| w.state == state);
        }
        Ok(WorkspaceList {
            count: workspaces.len(),
            workspaces,
        })
    }

    /// One workspace. Does not touch activity.
    pub fn workspace_status(&self, id_or_name: &str) -> Result<WorkspaceInfo, Error> {
        Ok(info(&self.load(id_or_name)?))
    }

    /// Renames and relabels; works in any state.
    pub fn workspace_update(
        &self,
        id_or_name: &str,
        name: NameChange,
        set_labels: BTreeMap<String, String>,
        clear_labels: Vec<String>,
    ) -> Result<WorkspaceInfo, Error> {
        let store = self.store()?;
        let r = store.update_metadata(id_or_name, name, set_labels, clear_labels, now())?;
        Ok(info(&r))
    }

    /// Runs a command in a started workspace, streaming to `forward` when
    /// given; `capture` keeps the whole output in the result.
    pub fn workspace_exec(
        &self,
        id_or_name: &str,
        argv: Vec<String>,
        cwd: Option<String>,
        timeout_seconds: u64,
        capture: bool,
        forward: Option<&mut dyn OutputSink>,
    ) -> Result<WorkspaceExecResult, Error> {
        if argv.is_empty() {
            return Err(Error::InvalidArgument(
                "a command is required after `--`".into(),
            ));
        }
        if timeout_seconds == 0 {
            return Err(Error::InvalidArgument(
                "timeout_seconds must be greater than 0".into(),
            ));
        }
        self.stop_idle()?;
        let r = self.load(id_or_name)?;
        let vm = self.require_started(&r, "exec")?;
        let cwd = cwd.unwrap_or_else(|| WORKSPACE_PATH.to_string());
        // Keep everything for a JSON result; the history keeps a capped copy.
        let mut sink = Collector::new(forward, if capture { usize::MAX } else { HISTORY_CAP });
        let started = Instant::now();
        let req = ExecRequest {
            argv: argv.clone(),
            env: Vec::new(),
            cwd: Some(cwd.clone()),
            timeout_ms: Some(timeout_seconds.saturating_mul(1000)),
            direct_output: true,
            output_token: None,
        };
        let outcome = vm.exec(req, &mut sink)?;
        if outcome.timed_out {
            sink.stderr(format!("command timed out after {timeout_seconds}s\n").as_bytes());
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        let command = shell_join(&argv);
        let keep = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(HISTORY_CAP)]).into_owned();
        let sequence = self.store()?.record_command(
            &r.workspace_id,
            &command,
            &cwd,
            outcome.exit_code,
            duration_ms,
            &keep(&sink.stdout),
            &keep(&sink.stderr),
            now(),
        )?;
        Ok(WorkspaceExecResult {
            workspace_id: r.workspace_id.clone(),
            environment: r.environment.clone(),
            sequence,
            command,
            cwd,
            stdout: if capture {
                String::from_utf8_lossy(&sink.stdout).into_owned()
            } else {
                String::new()
            },
            stderr: if capture {
                String::from_utf8_lossy(&sink.stderr).into_owned()
            } else {
                String::new()
            },
            exit_code: outcome.exit_code,
            timed_out: outcome.timed_out,
            duration_ms,
            execution_mode: "guest_vsock".into(),
        })
    }

    fn require_started(&self, r: &WorkspaceRecord, op: &str) -> Result<VmHandle, Error> {
        let handle = runtime_of(r).vm;
        match (r.state, handle) {
            (WorkspaceState::Started, Some(vm)) => Ok(vm),
            (state, _) => Err(Error::InvalidArgument(format!(
                "workspace {} is {} and must be started before {op}; run `pyro workspace start {}`",
                r.workspace_id,
                state.as_str(),
                r.name.as_deref().unwrap_or(&r.workspace_id)
            ))),
        }
    }

    /// Command history. Read-only.
    pub fn workspace_logs(&self, id_or_name: &str) -> Result<WorkspaceLogs, Error> {
        let store = self.store()?;
        let r = store.resolve(id_or_name)?;
        let entries = store.commands(&r.workspace_id)?;
        Ok(WorkspaceLogs {
            workspace_id: r.workspace_id,
            count: entries.len(),
            entries,
        })
    }

    /// Flushes and powers the guest off; the disk is kept.
    pub fn workspace_stop(&self, id_or_name: &str) -> Result<WorkspaceInfo, Error> {
        let r = self.load(id_or_name)?;
        let _lock = self.lock_workspace(&r.workspace_id)?;
        if let Some(vm) = runtime_of(&r).vm {
            vm.shutdown();
        }
        let store = self.store()?;
        let state = if r.state == WorkspaceState::Failed {
            WorkspaceState::Failed
        } else {
            WorkspaceState::Stopped
        };
        store.set_state(
            &r.workspace_id,
            state,
            r.last_error.clone(),
            Some(to_value(&Runtime::default())),
            Some(now()),
        )?;
        Ok(info(&store.resolve(&r.workspace_id)?))
    }

    /// Boots a stopped workspace again on the same disk.
    pub fn workspace_start(&self, id_or_name: &str) -> Result<WorkspaceInfo, Error> {
        self.stop_idle()?;
        let r = self.load(id_or_name)?;
        let _lock = self.lock_workspace(&r.workspace_id)?;
        let store = self.store()?;
        match r.state {
            WorkspaceState::Started => {
                store.touch(&r.workspace_id, now())?;
                return Ok(info(&store.resolve(&r.workspace_id)?));
            }
            WorkspaceState::Failed | WorkspaceState::Creating => {
                return Err(Error::InvalidArgument(format!(
                    "workspace {} failed to be created and cannot be started; delete it with `pyro workspace delete {}`",
                    r.workspace_id, r.workspace_id
                )))
            }
            WorkspaceState::Stopped => {
                // A start killed mid-boot may have left its guest running;
                // never boot twice on one disk.
                if let Some(vm) = runtime_of(&r).vm {
                    vm.kill();
                }
            }
        }
        let record_pids = |rt: Runtime| -> Result<(), Error> {
            Ok(store.set_state(
                &r.workspace_id,
                WorkspaceState::Stopped,
                None,
                Some(to_value(&rt)),
                None,
            )?)
        };
        match self.boot(
            &r.workspace_id,
            &r.environment,
            r.vcpu_count,
            r.mem_mib,
            &record_pids,
        ) {
            Ok(rt) => {
                store.set_state(
                    &r.workspace_id,
                    WorkspaceState::Started,
                    None,
                    Some(to_value(&rt)),
                    Some(now()),
                )?;
                Ok(info(&store.resolve(&r.workspace_id)?))
            }
            Err(e) => {
                store.set_state(
                    &r.workspace_id,
                    WorkspaceState::Stopped,
                    Some(e.to_string()),
                    None,
                    Some(now()),
                )?;
                Err(e)
            }
        }
    }

    /// Kills the guest and removes the workspace and its disk.
    pub fn workspace_delete(&self, id_or_name: &str) -> Result<DeleteResult, Error> {
        let store = self.store()?;
        let r = store.resolve(id_or_name)?;
        let _lock = self.lock_workspace(&r.workspace_id)?;
        if let Some(vm) = runtime_of(&r).vm {
            vm.kill();
        }
        let dir = self.workspace_dir(&r.workspace_id);
        // A create killed between spawning the guest and recording its pids
        // leaves processes only their command lines lead to.
        kill_orphan_processes(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        store.delete(&r.workspace_id)?;
        Ok(DeleteResult {
            workspace_id: r.workspace_id,
            deleted: true,
            reason: "explicit_delete".into(),
        })
    }

    /// Reconciles records with reality and removes orphaned directories.
    pub fn workspace_gc(&self) -> Result<GcResult, Error> {
        let store = self.store()?;
        let idle_stopped = self.stop_idle()?;
        let mut result = GcResult {
            marked_stopped: vec![],
            marked_failed: vec![],
            idle_stopped,
            removed_dirs: vec![],
        };
        for s in store.list(&ListQuery::default())? {
            let Ok(r) = store.resolve(&s.workspace_id) else {
                continue;
            };
            let (state, _) = Self::observed_state(&r);
            if state != r.state {
                self.load(&r.workspace_id)?;
                match state {
                    WorkspaceState::Failed => result.marked_failed.push(r.workspace_id),
                    _ => result.marked_stopped.push(r.workspace_id),
                }
            }
        }
        if let Ok(read) = std::fs::read_dir(self.config().state_dir.join("workspaces")) {
            for item in read.filter_map(Result::ok) {
                let id = item.file_name().to_string_lossy().into_owned();
                if matches!(
                    store.resolve(&id),
                    Err(pyro_store::StoreError::NotFound { .. })
                ) {
                    kill_orphan_processes(&item.path());
                    if std::fs::remove_dir_all(item.path()).is_ok() {
                        result.removed_dirs.push(id);
                    }
                }
            }
        }
        crate::runtime_dirs::collect_orphans(&self.config().state_dir);
        Ok(result)
    }
}

/// Kills QEMU or sidecar processes started for a directory that no longer
/// has a record (their command lines name its sockets).
fn kill_orphan_processes(dir: &std::path::Path) {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(read) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in read.filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        let ours = cmdline.starts_with("qemu-system")
            || cmdline.contains("vhost-device-vsock")
            || cmdline.contains("/qemu-system");
        if ours && cmdline.contains(&needle) {
            if let Some(p) = ProcRef::of(pid) {
                p.kill();
            }
        }
    }
}

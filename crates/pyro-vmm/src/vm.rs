//! A running guest: waiting for its agent, connecting to it, tearing down.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use pyro_proto::{Connection, ExecRequest, Message, AGENT_PORT, READY_PORT};

use crate::agent::{self, ExecOutcome, OutputSink};
use crate::process::{kill_and_reap, ProcRef};
use crate::qemu::Lifetime;
use crate::{live, vsock, VmmError};

/// Extra time the host waits past a command's timeout for the agent's
/// answer before declaring the guest hung.
const EXEC_GRACE: Duration = Duration::from_secs(15);

/// Files of one VM inside its runtime directory. Names are short because
/// unix socket paths are limited to 107 bytes.
#[derive(Debug, Clone)]
pub struct VmFiles {
    /// The directory itself.
    pub dir: PathBuf,
    /// Hybrid vsock socket (host → guest).
    pub vsock: PathBuf,
    /// Where the agent's ready notice arrives (guest → host, port 1025).
    pub ready: PathBuf,
    /// vhost-user socket between QEMU and the sidecar.
    pub vhost_user: PathBuf,
    /// qcow2 overlay.
    pub disk: PathBuf,
    /// Guest serial console.
    pub console: PathBuf,
    /// QEMU's own stderr.
    pub qemu_log: PathBuf,
    /// The sidecar's stderr.
    pub sidecar_log: PathBuf,
    /// slirp4netns's output (egress guests).
    pub net_log: PathBuf,
    /// QEMU's QMP socket.
    pub qmp: PathBuf,
}

impl VmFiles {
    fn remove_sockets(&self) {
        for p in [&self.vsock, &self.ready, &self.vhost_user, &self.qmp] {
            let _ = std::fs::remove_file(p);
        }
    }

    /// File layout under `dir`.
    pub fn new(dir: &Path) -> VmFiles {
        VmFiles {
            dir: dir.to_path_buf(),
            vsock: dir.join("v.sock"),
            ready: dir.join(format!("v.sock_{READY_PORT}")),
            vhost_user: dir.join("u.sock"),
            disk: dir.join("disk.qcow2"),
            console: dir.join("console.log"),
            qemu_log: dir.join("qemu.log"),
            sidecar_log: dir.join("vsock.log"),
            net_log: dir.join("net.log"),
            qmp: dir.join("q.sock"),
        }
    }
}

/// A guest this process started. Dropping it kills the guest and, for a
/// one-shot guest, removes its runtime directory. Everything that talks to
/// the agent goes through its [`VmHandle`], the same path later processes
/// use for a detached guest.
#[derive(Debug)]
pub struct Vm {
    handle: VmHandle,
    vmm: Child,
    sidecar: Option<Child>,
    net: Option<Child>,
    ready: Option<UnixListener>,
    started: Instant,
    lifetime: Lifetime,
    detached: bool,
}

/// Longest wait for a resumed guest's agent.
const RESUME_DEADLINE: Duration = Duration::from_secs(5);

/// Milestones of a boot, for progress and benchmarks.
#[derive(Debug, Clone, Copy)]
pub struct BootTimes {
    /// From VMM start to the agent's ready notice.
    pub agent_ready: Duration,
}

impl Vm {
    pub(crate) fn new(
        id: String,
        files: VmFiles,
        vmm: Child,
        sidecar: Option<Child>,
        net: Option<Child>,
        ready: Option<UnixListener>,
        lifetime: Lifetime,
    ) -> Result<Vm, VmmError> {
        let mut pids = vec![vmm.id()];
        pids.extend(sidecar.as_ref().map(Child::id));
        pids.extend(net.as_ref().map(Child::id));
        live::add_pids(&id, &pids);
        let gone = || VmmError::BootFailed {
            reason: "the VMM exited at once".into(),
            console: String::new(),
        };
        let handle = VmHandle {
            vm_id: id,
            dir: files.dir.clone(),
            backend: crate::BackendKind::Qemu,
            vmm: ProcRef::of(vmm.id()).ok_or_else(gone)?,
            sidecar: sidecar.as_ref().and_then(|c| ProcRef::of(c.id())),
            net: net.as_ref().and_then(|c| ProcRef::of(c.id())),
        };
        Ok(Vm {
            handle,
            vmm,
            sidecar,
            net,
            ready,
            started: Instant::now(),
            lifetime,
            detached: false,
        })
    }

    /// How later processes reach and kill this guest (pids with start
    /// times); record it before waiting for boot so a crash mid-boot leaves
    /// nothing unaccounted for.
    pub fn handle(&self) -> &VmHandle {
        &self.handle
    }

    /// Lets a detached-lifetime guest keep running after this process
    /// exits; returns what later processes need to reach and stop it.
    pub fn detach(mut self) -> Result<VmHandle, VmmError> {
        if self.lifetime != Lifetime::Detached {
            return Err(VmmError::Agent(
                "only a detached-lifetime guest can be detached".into(),
            ));
        }
        if let VmStatus::Gone(reason) = self.handle.status() {
            return Err(VmmError::GuestLost {
                reason,
                console: self.console_tail(),
            });
        }
        self.detached = true;
        live::unregister(&self.handle.vm_id);
        Ok(self.handle.clone())
    }

    /// The VM id.
    pub fn id(&self) -> &str {
        &self.handle.vm_id
    }

    /// Its runtime files.
    pub fn files(&self) -> VmFiles {
        self.handle.files()
    }

    /// Waits for the agent's ready notice, failing fast if the VMM exits.
    /// A guest resumed from a template has no notice to give: its agent
    /// answers as soon as its vsock device is back.
    pub fn wait_ready(&mut self, limit: Duration) -> Result<BootTimes, VmmError> {
        let Some(listener) = self.ready.take() else {
            return self.wait_answering(limit);
        };
        let deadline = self.started + limit;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    read_ready(stream)?;
                    let _ = std::fs::remove_file(&self.files().ready);
                    return Ok(BootTimes {
                        agent_ready: self.started.elapsed(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(VmmError::io("waiting for the guest agent")(e)),
            }
            if let Ok(Some(status)) = self.vmm.try_wait() {
                return Err(VmmError::BootFailed {
                    reason: format!("QEMU exited during boot ({status}){}", self.vmm_error()),
                    console: self.console_tail(),
                });
            }
            if let VmStatus::Gone(reason) = self.handle.status() {
                return Err(VmmError::BootFailed {
                    reason,
                    console: self.console_tail(),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(VmmError::BootFailed {
                    reason: format!("the guest agent was not ready after {} s", limit.as_secs()),
                    console: self.console_tail(),
                });
            }
            poll_readable(
                listener.as_raw_fd(),
                (deadline - now).min(Duration::from_millis(50)),
            );
        }
    }

    fn wait_answering(&mut self, limit: Duration) -> Result<BootTimes, VmmError> {
        // A resume that works answers in about a second even under load;
        // one that does not is better replaced by a cold boot soon.
        let limit = limit.min(RESUME_DEADLINE);
        let deadline = self.started + limit;
        let last = match await_agent(&self.handle, deadline) {
            Ok(()) => {
                return Ok(BootTimes {
                    agent_ready: self.started.elapsed(),
                })
            }
            Err(e) => e,
        };
        if let Ok(Some(status)) = self.vmm.try_wait() {
            return Err(VmmError::BootFailed {
                reason: format!("QEMU exited while resuming ({status}){}", self.vmm_error()),
                console: self.console_tail(),
            });
        }
        // Kept for a post-mortem: the cold boot that follows reuses the
        // directory.
        let files = self.files();
        for (log, kept) in [
            (&files.sidecar_log, "vsock-resume.log"),
            (&files.console, "console-resume.log"),
            (&files.qemu_log, "qemu-resume.log"),
        ] {
            let _ = std::fs::copy(log, files.dir.join(kept));
        }
        Err(VmmError::BootFailed {
            reason: format!(
                "the resumed guest's agent did not answer within {} s ({last})",
                limit.as_secs()
            ),
            console: self.console_tail(),
        })
    }

    /// Freezes a guest started with [`crate::BootSource::ForTemplate`]
    /// into its directory (RAM file, device state, disk) and ends it.
    pub fn freeze(mut self) -> Result<crate::TemplateFiles, VmmError> {
        let files = self.files();
        let t = crate::TemplateFiles::new(&files.dir);
        let frozen = crate::template::freeze(&files.qmp, &t.state());
        // QEMU quits after saving; wait a little for it, then make sure.
        let deadline = Instant::now() + Duration::from_secs(10);
        while frozen.is_ok() && Instant::now() < deadline {
            if let Ok(Some(_)) = self.vmm.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        kill_and_reap(&mut self.vmm);
        if let Some(s) = self.sidecar.as_mut() {
            kill_and_reap(s);
        }
        if let Some(s) = self.net.as_mut() {
            kill_and_reap(s);
        }
        files.remove_sockets();
        live::unregister(&self.handle.vm_id);
        // Nothing left for Drop to do (the directory is the template).
        self.detached = true;
        frozen?;
        crate::template::punch_zero_pages(&t.ram())?;
        Ok(t)
    }

    /// Opens a fresh, handshaken connection to the agent.
    pub fn connect(&self) -> Result<Connection<UnixStream>, VmmError> {
        self.handle.connect()
    }

    /// Runs a command, streaming output into `sink`.
    pub fn exec(
        &self,
        req: ExecRequest,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome, VmmError> {
        self.handle.exec(req, sink)
    }

    fn vmm_error(&self) -> String {
        let text = std::fs::read_to_string(&self.files().qemu_log).unwrap_or_default();
        let text = text.trim();
        if text.is_empty() {
            String::new()
        } else {
            format!(": {}", text.lines().last().unwrap_or_default())
        }
    }

    /// Last lines the guest printed on its console.
    pub fn console_tail(&self) -> String {
        tail_lines(&self.files().console, 6)
    }

    /// Kills the VMM and the sidecar; a one-shot guest's directory goes too.
    pub fn destroy(mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        if self.detached {
            return;
        }
        kill_and_reap(&mut self.vmm);
        if let Some(s) = self.sidecar.as_mut() {
            kill_and_reap(s);
        }
        if let Some(s) = self.net.as_mut() {
            kill_and_reap(s);
        }
        let files = self.files();
        match self.lifetime {
            Lifetime::BoundToCaller => {
                let _ = std::fs::remove_dir_all(&files.dir);
            }
            // The directory holds the workspace's disk.
            Lifetime::Detached => files.remove_sockets(),
        }
        live::unregister(&self.handle.vm_id);
    }
}

/// One short try at the agent of a guest whose vsock device was just
/// plugged in: a request sent while the device is still being probed is
/// lost, not refused, hence the short waits.
fn answers(files: &VmFiles) -> Result<(), String> {
    let stream =
        pyro_proto::hybrid::connect_within(&files.vsock, AGENT_PORT, Duration::from_millis(300))
            .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    Connection::new(stream)
        .client_handshake(crate::PEER)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Waits until the agent behind a freshly plugged vsock device answers
/// (a resumed clone's, or a fork's source's), or `deadline`, or the
/// guest's processes are gone.
pub(crate) fn await_agent(vm: &VmHandle, deadline: Instant) -> Result<(), String> {
    loop {
        match answers(&vm.files()) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) if !vm.alive() => return Err("QEMU or the vsock sidecar exited".into()),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn read_ready(stream: UnixStream) -> Result<(), VmmError> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(VmmError::io("reading the ready notice"))?;
    let mut conn = Connection::new(stream);
    match conn.expect() {
        Ok(Message::Hello(h)) => pyro_proto::check_peer_hello(&h).map_err(|e| {
            VmmError::Agent(format!(
                "the guest agent cannot talk to this pyro ({e}); rebuild the environment's agent"
            ))
        }),
        Ok(other) => Err(VmmError::Agent(format!(
            "unexpected {} as ready notice",
            other.name()
        ))),
        Err(e) => Err(VmmError::Agent(format!("bad ready notice: {e}"))),
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// One exec on a handshaken connection: bounds the wait (the agent
/// enforces the timeout; this only catches a hung guest), watches QEMU, and
/// maps failures; `lost` explains a vanished guest.
fn exec_on(
    files: &VmFiles,
    conn: Connection<UnixStream>,
    alive: Box<dyn Fn() -> bool + Send>,
    req: ExecRequest,
    sink: &mut dyn OutputSink,
    lost: &mut dyn FnMut(String) -> VmmError,
) -> Result<ExecOutcome, VmmError> {
    let host_limit = req
        .timeout_ms
        .map(|ms| Duration::from_millis(ms) + EXEC_GRACE);
    conn.get_ref()
        .set_read_timeout(host_limit)
        .map_err(VmmError::io("configuring the agent connection"))?;
    match exec_watched(files, conn, alive, req, sink) {
        Ok(outcome) => Ok(outcome),
        Err(agent::ExecError::ConnectionLost(detail)) => Err(lost(detail)),
        Err(agent::ExecError::Timeout) => Err(VmmError::AgentTimeout(
            host_limit.map(|d| d.as_secs()).unwrap_or_default(),
        )),
        Err(agent::ExecError::Protocol(detail)) => Err(VmmError::Agent(detail)),
        Err(agent::ExecError::Remote(e)) => Err(VmmError::Remote(e)),
    }
}

/// How often an exec checks that QEMU is still there.
const LIVENESS_POLL: Duration = Duration::from_millis(100);

/// A fresh agent connection, before the handshake (the exec paths send
/// their `Hello` together with the first request).
fn open_raw(files: &VmFiles) -> std::io::Result<Connection<UnixStream>> {
    Ok(Connection::new(vsock::connect(&files.vsock, AGENT_PORT)?))
}

/// Runs an exec while a watchdog checks the guest's processes: if one
/// exits, every socket of the exec is shut down so reads fail at once
/// instead of waiting on a sidecar that may keep them open.
fn exec_watched(
    files: &VmFiles,
    conn: Connection<UnixStream>,
    alive: Box<dyn Fn() -> bool + Send>,
    req: ExecRequest,
    sink: &mut dyn OutputSink,
) -> Result<ExecOutcome, agent::ExecError> {
    let sockets: std::sync::Arc<std::sync::Mutex<Vec<UnixStream>>> = Default::default();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = {
        let sockets = sockets.clone();
        std::thread::spawn(move || loop {
            // Wakes at once when the exec ends (sender dropped).
            match finished.recv_timeout(LIVENESS_POLL) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if !alive() => {
                    for s in sockets.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                        let _ = s.shutdown(std::net::Shutdown::Both);
                    }
                    return;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        })
    };
    let mut watch = |s: &UnixStream| {
        if let Ok(c) = s.try_clone() {
            sockets.lock().unwrap_or_else(|e| e.into_inner()).push(c);
        }
    };
    let result = if req.direct_output {
        let open = || open_raw(files).map_err(|e| agent::ExecError::ConnectionLost(e.to_string()));
        agent::exec_direct(conn, req, sink, &open, &mut watch)
    } else {
        watch(conn.get_ref());
        let mut conn = conn;
        match conn.client_handshake(crate::PEER) {
            Ok(_) => agent::exec(conn, req, sink),
            Err(e) => Err(agent::ExecError::Protocol(e.to_string())),
        }
    };
    drop(done);
    let _ = watchdog.join();
    result
}

fn poll_readable(fd: i32, wait: Duration) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, wait.as_millis() as i32) };
}

/// Last `n` non-empty lines of a text file, at most 4 KiB read.
pub fn tail_lines(path: &Path, n: usize) -> String {
    use std::io::Seek;
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(std::io::SeekFrom::Start(len.saturating_sub(4096)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How long a guest gets to power off cleanly before it is killed.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(15);

/// Whether a guest's processes are all still there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmStatus {
    /// The VMM and its helpers run.
    Running,
    /// Something is gone; the reason says what. A guest whose sidecar died
    /// is unreachable even if the VMM runs, so it counts as gone.
    Gone(String),
}

/// A guest as recorded between commands: enough to reconnect to its
/// agent, check it is alive, and stop it. Serializable for the store
/// (internal: never shown to users as is).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VmHandle {
    /// VM id.
    pub vm_id: String,
    /// Runtime directory (sockets, disk, console).
    pub dir: PathBuf,
    /// Which backend started it.
    #[serde(default)]
    pub backend: crate::BackendKind,
    /// The VMM process.
    #[serde(alias = "qemu")]
    pub vmm: ProcRef,
    /// The vsock sidecar, if the backend uses one.
    pub sidecar: Option<ProcRef>,
    /// slirp4netns, for a guest with egress (it also exits with the VMM).
    #[serde(default)]
    pub net: Option<ProcRef>,
}

impl VmHandle {
    /// The runtime files.
    pub fn files(&self) -> VmFiles {
        VmFiles::new(&self.dir)
    }

    /// Every process of the guest, VMM first.
    pub fn processes(&self) -> Vec<ProcRef> {
        std::iter::once(self.vmm)
            .chain(self.sidecar)
            .chain(self.net)
            .collect()
    }

    /// Whether the VMM and the sidecar both still run.
    pub fn status(&self) -> VmStatus {
        if !self.vmm.alive() {
            return VmStatus::Gone("QEMU exited".into());
        }
        if self.sidecar.is_some_and(|s| !s.alive()) {
            return VmStatus::Gone("the vsock sidecar exited".into());
        }
        VmStatus::Running
    }

    /// The guest is running and reachable.
    pub fn alive(&self) -> bool {
        self.status() == VmStatus::Running
    }

    fn lost(&self, detail: String) -> VmmError {
        let reason = match self.status() {
            VmStatus::Gone(reason) => reason,
            VmStatus::Running => format!("lost the agent connection: {detail}"),
        };
        VmmError::GuestLost {
            reason,
            console: tail_lines(&self.files().console, 6),
        }
    }

    /// Opens a fresh, handshaken connection to the agent.
    pub fn connect(&self) -> Result<Connection<UnixStream>, VmmError> {
        self.connect_with_hello().map(|(conn, _)| conn)
    }

    /// [`VmHandle::connect`], also returning the agent's `Hello` (its
    /// features).
    pub fn connect_with_hello(
        &self,
    ) -> Result<(Connection<UnixStream>, pyro_proto::Hello), VmmError> {
        if !self.alive() {
            return Err(self.lost(String::new()));
        }
        let stream = vsock::connect(&self.files().vsock, AGENT_PORT)
            .map_err(|e| self.lost(e.to_string()))?;
        let mut conn = Connection::new(stream);
        let hello = conn
            .client_handshake(crate::PEER)
            .map_err(|e| VmmError::Agent(e.to_string()))?;
        Ok((conn, hello))
    }

    /// The error for a connection that broke: the guest's fate if it is
    /// gone, else the detail.
    pub(crate) fn lost_agent(&self, detail: String) -> VmmError {
        self.lost(detail)
    }

    /// Runs a command, streaming output into `sink`. An agent without
    /// direct output (a guest booted by an older pyro) refuses before
    /// running anything, and the command then runs with framed output.
    pub fn exec(
        &self,
        req: ExecRequest,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome, VmmError> {
        self.exec_cancellable(req, sink, None)
    }

    /// [`VmHandle::exec`] that ends early (connections shut, so the agent
    /// kills the command) once `cancel` is set.
    pub fn exec_cancellable(
        &self,
        req: ExecRequest,
        sink: &mut dyn OutputSink,
        cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ) -> Result<ExecOutcome, VmmError> {
        match self.exec_once(req.clone(), sink, cancel.clone()) {
            Err(VmmError::Remote(e))
                if req.direct_output
                    && e.code == pyro_proto::ErrorCode::Unsupported
                    && e.feature.as_deref() == Some(pyro_proto::features::DIRECT_OUTPUT) =>
            {
                let framed = ExecRequest {
                    direct_output: false,
                    output_token: None,
                    ..req
                };
                self.exec_once(framed, sink, cancel)
            }
            other => other,
        }
    }

    fn exec_once(
        &self,
        req: ExecRequest,
        sink: &mut dyn OutputSink,
        cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ) -> Result<ExecOutcome, VmmError> {
        if !self.alive() {
            return Err(self.lost(String::new()));
        }
        let conn = open_raw(&self.files()).map_err(|e| self.lost(e.to_string()))?;
        let watched = self.clone();
        exec_on(
            &self.files(),
            conn,
            Box::new(move || {
                let cancelled = cancel
                    .as_ref()
                    .is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst));
                !cancelled && watched.alive()
            }),
            req,
            sink,
            &mut |detail| {
                // Give QEMU a moment to finish exiting so the cause is known.
                std::thread::sleep(Duration::from_millis(200));
                self.lost(detail)
            },
        )
    }

    /// Streams a tar archive (written by `write_tar`) into `dest` in the
    /// guest, where the agent unpacks it safely. Returns (entries, bytes).
    pub fn extract(
        &self,
        dest: &str,
        write_tar: &mut dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<(u64, u64), VmmError> {
        self.extract_with(dest, false, write_tar)
    }

    /// [`VmHandle::extract`]; `any_link_targets` lets the archive hold
    /// symlinks to anywhere (a snapshot the guest made of itself).
    pub fn extract_with(
        &self,
        dest: &str,
        any_link_targets: bool,
        write_tar: &mut dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<(u64, u64), VmmError> {
        let mut conn = self.connect()?;
        conn.send(&Message::Request(pyro_proto::Request::Extract {
            dest: dest.to_string(),
            any_link_targets,
        }))
        .map_err(|e| self.lost(e.to_string()))?;
        let mut writer = pyro_proto::DataWriter::new(&mut conn);
        let written = write_tar(&mut writer);
        let finished = writer.finish();
        if let Some(e) = written.err().or(finished.err()) {
            // An agent that refused the request (an unsafe entry, or an
            // older agent without the feature) may close without reading
            // the rest: its answer says why better than a broken pipe.
            let _ = conn
                .get_ref()
                .set_read_timeout(Some(Duration::from_secs(5)));
            if let Ok(Message::Error(remote)) = conn.expect() {
                return Err(VmmError::Remote(remote));
            }
            return Err(VmmError::io("sending the archive")(e));
        }
        match conn.expect() {
            Ok(Message::Response(pyro_proto::Response::Extracted {
                entry_count,
                bytes_written,
            })) => Ok((entry_count, bytes_written)),
            Ok(Message::Error(e)) => Err(VmmError::Remote(e)),
            Ok(other) => Err(VmmError::Agent(format!(
                "unexpected {} after an upload",
                other.name()
            ))),
            Err(e) => Err(self.lost(e.to_string())),
        }
    }

    /// Asks the guest to flush and power off; kills it if it does not
    /// within the limit. Always ends with the VMM and the sidecar gone.
    pub fn shutdown(&self) {
        if self.alive() {
            if let Ok(mut conn) = self.connect() {
                let _ = conn
                    .get_ref()
                    .set_read_timeout(Some(Duration::from_secs(10)));
                let _ = conn.send(&Message::Request(pyro_proto::Request::Shutdown));
                let _ = conn.recv();
            }
            let deadline = Instant::now() + SHUTDOWN_WAIT;
            while self.vmm.alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }

    /// Kills the VMM and the sidecar (only if they are still the same
    /// processes) and removes the sockets. The disk stays.
    pub fn kill(&self) {
        self.vmm.kill();
        if let Some(s) = &self.sidecar {
            s.kill();
        }
        self.files().remove_sockets();
    }
}

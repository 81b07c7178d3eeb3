//! Long-running processes ("services") with typed readiness.
//!
//! A service is a process group started like an exec, whose stdout and
//! stderr go to bounded log files outside /workspace
//! (`/var/lib/pyro/services/<name>.{stdout,stderr}`, each rotated once at
//! [`LOG_ROTATE_BYTES`]). The agent keeps every service it started in a
//! registry; a service's state changes when its process ends (exited),
//! when it is stopped (TERM to the group, KILL after [`STOP_GRACE`]), or
//! when it never becomes ready (failed, and killed).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use pyro_proto::{
    paths, ErrorCode, Readiness, RemoteError, ServiceStartRequest, ServiceState, ServiceStatus,
};

use crate::files::bad;
use crate::spawn::spawn;

/// Where service logs live.
const LOG_DIR: &str = "/var/lib/pyro/services";
/// A log file is rotated (to `.1`, replacing the previous one) here.
pub const LOG_ROTATE_BYTES: u64 = 1024 * 1024;
/// How long a stopped service gets between TERM and KILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

static LOG_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Keeps logs in `dir` instead (host-side tests).
pub fn set_log_dir(dir: PathBuf) {
    let _ = LOG_ROOT.set(dir);
}

fn log_dir() -> &'static PathBuf {
    LOG_ROOT.get_or_init(|| PathBuf::from(LOG_DIR))
}

struct Entry {
    status: ServiceStatus,
    /// Set by stop, so the exit is recorded as stopped, not exited.
    stopping: Option<&'static str>,
}

type Registry = Mutex<BTreeMap<String, Arc<Mutex<Entry>>>>;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Default::default)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn check_name(name: &str) -> Result<(), RemoteError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "service name '{name}' must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$"
        )))
    }
}

fn not_found(name: &str) -> RemoteError {
    RemoteError::new(
        ErrorCode::NotFound,
        format!("service '{name}' does not exist"),
    )
}

fn log_path(name: &str, stream: &str) -> PathBuf {
    log_dir().join(format!("{name}.{stream}"))
}

/// Appends a pipe to a log file, rotating it once it is large.
fn pump(mut pipe: File, path: PathBuf) {
    std::thread::spawn(move || {
        let open = |p: &PathBuf| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode_0600()
                .open(p)
        };
        let Ok(mut out) = open(&path) else { return };
        let mut written = out.metadata().map(|m| m.len()).unwrap_or(0);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if written + n as u64 > LOG_ROTATE_BYTES {
                let _ = fs::rename(&path, path.with_extension(rotated_ext(&path)));
                match open(&path) {
                    Ok(f) => out = f,
                    Err(_) => return,
                }
                written = 0;
            }
            if out.write_all(&buf[..n]).is_err() {
                return;
            }
            written += n as u64;
        }
    });
}

fn rotated_ext(path: &std::path::Path) -> String {
    format!(
        "{}.1",
        path.extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default()
    )
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

fn signal_group(pid: i32, sig: i32) {
    // SAFETY: plain syscall on our child's process group.
    unsafe {
        libc::kill(-pid, sig);
    }
}

fn decode(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        -1
    }
}

/// Starts a service and waits for it to be ready (or to fail).
pub fn start(req: ServiceStartRequest) -> Result<ServiceStatus, RemoteError> {
    check_name(&req.name)?;
    if req.argv.is_empty() {
        return Err(bad("a service needs a command"));
    }
    let entry = {
        let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = reg.get(&req.name) {
            let e = e.lock().unwrap_or_else(|e| e.into_inner());
            if e.status.state == ServiceState::Running {
                return Err(RemoteError::new(
                    ErrorCode::BadRequest,
                    format!("service '{}' is already running", req.name),
                ));
            }
        }
        let entry = Arc::new(Mutex::new(Entry {
            status: ServiceStatus {
                name: req.name.clone(),
                command: req.command.clone(),
                cwd: req.cwd.clone(),
                state: ServiceState::Running,
                pid: None,
                started_at_ms: now_ms(),
                ready_at_ms: None,
                ended_at_ms: None,
                exit_code: None,
                stop_reason: None,
                readiness: req.readiness.clone(),
            },
            stopping: None,
        }));
        // An exited service of that name is replaced.
        reg.insert(req.name.clone(), entry.clone());
        entry
    };
    let fail_start = |e: RemoteError| {
        let mut g = entry.lock().unwrap_or_else(|e| e.into_inner());
        g.status.state = ServiceState::Failed;
        g.status.ended_at_ms = Some(now_ms());
        g.status.stop_reason = Some("start_failed".into());
        e
    };
    fs::create_dir_all(log_dir()).map_err(|e| {
        fail_start(RemoteError::new(
            ErrorCode::Internal,
            format!("creating {}: {e}", log_dir().display()),
        ))
    })?;
    for stream in ["stdout", "stderr"] {
        let p = log_path(&req.name, stream);
        let _ = fs::remove_file(p.with_extension(rotated_ext(&p)));
        let _ = fs::remove_file(&p);
    }
    let child = spawn(&req.argv, &req.env, Some(&req.cwd), None).map_err(|e| {
        fail_start(RemoteError::new(
            ErrorCode::SpawnFailed,
            format!("service '{}' could not start: {e}", req.name),
        ))
    })?;
    let pid = child.pid;
    entry.lock().unwrap_or_else(|e| e.into_inner()).status.pid = Some(pid);
    if let Some(out) = child.stdout {
        pump(out, log_path(&req.name, "stdout"));
    }
    if let Some(err) = child.stderr {
        pump(err, log_path(&req.name, "stderr"));
    }
    // The waiter records the end, whoever caused it.
    {
        let entry = entry.clone();
        let status_rx = child.status;
        std::thread::spawn(move || {
            let status = status_rx.recv().unwrap_or(-1);
            let mut g = entry.lock().unwrap_or_else(|e| e.into_inner());
            g.status.exit_code = Some(decode(status));
            g.status.ended_at_ms = Some(now_ms());
            match g.stopping {
                Some(reason) => {
                    if g.status.state == ServiceState::Running {
                        g.status.state = ServiceState::Stopped;
                    }
                    if g.status.stop_reason.is_none() {
                        g.status.stop_reason = Some(reason.into());
                    }
                }
                None if g.status.state == ServiceState::Running => {
                    if g.status.ready_at_ms.is_some() || g.status.readiness.is_none() {
                        g.status.state = ServiceState::Exited;
                    } else {
                        g.status.state = ServiceState::Failed;
                        g.status.stop_reason = Some("process_exited_before_ready".into());
                    }
                }
                None => {}
            }
        });
    }
    wait_ready(&req, &entry, pid);
    let status = entry
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .status
        .clone();
    Ok(status)
}

/// Probes until ready, the process ends, or the timeout (then the group
/// is killed and the service failed).
fn wait_ready(req: &ServiceStartRequest, entry: &Arc<Mutex<Entry>>, pid: i32) {
    let Some(readiness) = &req.readiness else {
        let mut g = entry.lock().unwrap_or_else(|e| e.into_inner());
        if g.status.state == ServiceState::Running {
            g.status.ready_at_ms = Some(now_ms());
        }
        return;
    };
    let deadline = Instant::now() + Duration::from_millis(req.ready_timeout_ms);
    let interval = Duration::from_millis(req.ready_interval_ms.max(10));
    loop {
        if entry.lock().unwrap_or_else(|e| e.into_inner()).status.state != ServiceState::Running {
            return;
        }
        if probe(readiness, &req.cwd) {
            let mut g = entry.lock().unwrap_or_else(|e| e.into_inner());
            if g.status.state == ServiceState::Running {
                g.status.ready_at_ms = Some(now_ms());
            }
            return;
        }
        if Instant::now() >= deadline {
            {
                let mut g = entry.lock().unwrap_or_else(|e| e.into_inner());
                g.stopping = Some("readiness_timeout");
                g.status.state = ServiceState::Failed;
                g.status.stop_reason = Some("readiness_timeout".into());
            }
            signal_group(pid, libc::SIGKILL);
            // Let the waiter record the end.
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until
                && entry
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .status
                    .ended_at_ms
                    .is_none()
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        std::thread::sleep(interval.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// One readiness probe.
fn probe(r: &Readiness, cwd: &str) -> bool {
    match r {
        Readiness::File { path } => match paths::resolve(path) {
            Ok(p) => crate::files::target(&p)
                .map(|t| fs::symlink_metadata(&t.local).is_ok())
                .unwrap_or(false),
            Err(_) => false,
        },
        Readiness::Tcp { address } => connect(address, Duration::from_secs(1)).is_some(),
        Readiness::Http { url } => http_ok(url),
        Readiness::Command { command } => {
            let argv = vec!["sh".to_string(), "-lc".to_string(), command.clone()];
            match spawn(&argv, &[], Some(cwd), None) {
                Ok(child) => {
                    let pid = child.pid;
                    match child.status.recv_timeout(Duration::from_secs(10)) {
                        Ok(status) => decode(status) == 0,
                        Err(_) => {
                            signal_group(pid, libc::SIGKILL);
                            false
                        }
                    }
                }
                Err(_) => false,
            }
        }
    }
}

fn connect(address: &str, timeout: Duration) -> Option<TcpStream> {
    let addrs = address.to_socket_addrs().ok()?;
    for a in addrs {
        if let Ok(s) = TcpStream::connect_timeout(&a, timeout) {
            return Some(s);
        }
    }
    None
}

/// `GET` over plain HTTP/1.0; ready on a 2xx or 3xx status within 2 s.
fn http_ok(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let timeout = Duration::from_secs(2);
    let Some(mut s) = connect(&address, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let req = format!("GET {path} HTTP/1.0\r\nHost: {hostport}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 32];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let line = String::from_utf8_lossy(&head[..got]);
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok());
    matches!(code, Some(200..=399))
}

/// Every service, by name.
pub fn list() -> Vec<ServiceStatus> {
    let reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    reg.values()
        .map(|e| e.lock().unwrap_or_else(|e| e.into_inner()).status.clone())
        .collect()
}

/// Stops a service: TERM to its group, KILL after the grace period.
pub fn stop(name: &str) -> Result<ServiceStatus, RemoteError> {
    let entry = registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(name)
        .cloned()
        .ok_or_else(|| not_found(name))?;
    let pid = {
        let mut g = entry.lock().unwrap_or_else(|e| e.into_inner());
        if g.status.state != ServiceState::Running {
            return Ok(g.status.clone());
        }
        g.stopping = Some("sigterm");
        g.status.pid
    };
    let ended = |entry: &Arc<Mutex<Entry>>| {
        entry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .status
            .ended_at_ms
            .is_some()
    };
    let wait = |limit: Duration| {
        let until = Instant::now() + limit;
        while Instant::now() < until && !ended(&entry) {
            std::thread::sleep(Duration::from_millis(20));
        }
        ended(&entry)
    };
    if let Some(pid) = pid {
        signal_group(pid, libc::SIGTERM);
        if !wait(STOP_GRACE) {
            entry.lock().unwrap_or_else(|e| e.into_inner()).stopping = Some("sigkill");
            signal_group(pid, libc::SIGKILL);
            wait(STOP_GRACE);
        }
    }
    let mut g = entry.lock().unwrap_or_else(|e| e.into_inner());
    if g.status.state == ServiceState::Running {
        g.status.state = ServiceState::Stopped;
    }
    if g.status.stop_reason.is_none() {
        g.status.stop_reason = g.stopping.map(String::from);
    }
    Ok(g.status.clone())
}

/// Most of one stream an answer carries: with JSON escaping (at most six
/// bytes a character) both streams stay under the frame limit.
const ANSWER_BYTES: usize = 80 * 1024;

/// Keeps the end of a text within [`ANSWER_BYTES`] (on a character
/// boundary).
fn cap((text, cut): (String, bool)) -> (String, bool) {
    if text.len() <= ANSWER_BYTES {
        return (text, cut);
    }
    let mut start = text.len() - ANSWER_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    (text[start..].to_string(), true)
}

/// The kept end of a service's output (`tail_lines` per stream, or all),
/// and whether anything was cut.
pub fn logs(name: &str, tail_lines: Option<u64>) -> Result<(String, String, bool), RemoteError> {
    if !registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(name)
    {
        return Err(not_found(name));
    }
    let read = |stream: &str| -> (String, bool) {
        let p = log_path(name, stream);
        let rotated = p.with_extension(rotated_ext(&p));
        let mut bytes = fs::read(&rotated).unwrap_or_default();
        let was_rotated = !bytes.is_empty();
        bytes.extend(fs::read(&p).unwrap_or_default());
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match tail_lines {
            Some(n) => {
                let lines: Vec<&str> = text.split_inclusive('\n').collect();
                let cut = lines.len() > n as usize;
                let keep = lines[lines.len().saturating_sub(n as usize)..].concat();
                (keep, cut || was_rotated)
            }
            None => (text, was_rotated),
        }
    };
    let (stdout, a) = cap(read("stdout"));
    let (stderr, b) = cap(read("stderr"));
    Ok((stdout, stderr, a || b))
}

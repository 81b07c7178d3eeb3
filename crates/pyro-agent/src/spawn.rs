//! Starting a program in its own session with piped output.
//!
//! `fork`/`execve` by hand rather than `std::process::Command`: the reaper
//! owns `waitpid`, and std's spawn waits on its child itself when exec fails.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};

use crate::reaper;

/// Default search path for programs, also given to children.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a program could not be started.
#[derive(Debug)]
pub enum SpawnError {
    /// argv was empty.
    EmptyArgv,
    /// An argument, variable or path held a NUL byte.
    Nul,
    /// The program is not on PATH or does not exist.
    NotFound(String),
    /// The working directory could not be entered.
    Cwd(String, std::io::Error),
    /// `execve` failed.
    Exec(String, std::io::Error),
    /// A pipe or fork failed.
    Os(std::io::Error),
}

impl SpawnError {
    /// Shell-style exit status for a command that never ran.
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::NotFound(_) => 127,
            SpawnError::Exec(_, e) if e.raw_os_error() == Some(libc::ENOENT) => 127,
            SpawnError::Exec(..) => 126,
            _ => 127,
        }
    }
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::EmptyArgv => write!(f, "no command given"),
            SpawnError::Nul => write!(f, "command, environment or cwd contains a NUL byte"),
            SpawnError::NotFound(p) => write!(f, "{p}: command not found"),
            SpawnError::Cwd(d, e) => write!(f, "cannot change directory to {d}: {e}"),
            SpawnError::Exec(p, e) => write!(f, "{p}: {e}"),
            SpawnError::Os(e) => write!(f, "cannot start process: {e}"),
        }
    }
}

/// A running child: its pid (also its process group), output pipes (unless
/// it writes straight to given descriptors), and the channel its raw wait
/// status arrives on.
pub struct Child {
    pub pid: i32,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    pub status: Receiver<i32>,
}

/// Environment every command starts from; PID 1 itself starts with none.
pub fn base_env() -> Vec<(String, String)> {
    [
        ("PATH", DEFAULT_PATH),
        ("HOME", "/root"),
        ("USER", "root"),
        ("LOGNAME", "root"),
        ("LANG", "C.UTF-8"),
        ("SHELL", "/bin/sh"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn merged_env(extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = base_env();
    for (k, v) in extra {
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

fn resolve(program: &str, path_var: &str, cwd: Option<&str>) -> Result<PathBuf, SpawnError> {
    if program.contains('/') {
        let p = Path::new(program);
        let p = match (p.is_relative(), cwd) {
            (true, Some(c)) => Path::new(c).join(p),
            _ => p.to_path_buf(),
        };
        return Ok(p);
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
        .ok_or_else(|| SpawnError::NotFound(program.to_string()))
}

fn cstr(s: &str) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| SpawnError::Nul)
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let mut fds = [0; 2];
    // SAFETY: fds points at two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SpawnError::Os(std::io::Error::last_os_error()));
    }
    // SAFETY: pipe2 just returned these two fresh descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Starts `argv` in a new session with stdin on /dev/null; stdout goes to
/// `stdout` when given (a socket to the host), else to a new pipe; stderr
/// always to a new pipe.
pub fn spawn(
    argv: &[String],
    env: &[(String, String)],
    cwd: Option<&str>,
    stdout: Option<OwnedFd>,
) -> Result<Child, SpawnError> {
    spawn_with(argv, env, cwd, Io::Pipes { stdout })
}

/// Starts `argv` in a new session whose controlling terminal is `tty` (a
/// pty's slave side), which is also its stdin, stdout and stderr.
pub fn spawn_on_tty(
    argv: &[String],
    env: &[(String, String)],
    cwd: Option<&str>,
    tty: OwnedFd,
) -> Result<Child, SpawnError> {
    spawn_with(argv, env, cwd, Io::Tty(tty))
}

/// Where a child's standard streams go.
enum Io {
    /// stdin /dev/null; stdout to the given descriptor or a new pipe;
    /// stderr to a new pipe.
    Pipes { stdout: Option<OwnedFd> },
    /// All three on a terminal, which becomes the controlling one.
    Tty(OwnedFd),
}

fn spawn_with(
    argv: &[String],
    env: &[(String, String)],
    cwd: Option<&str>,
    io: Io,
) -> Result<Child, SpawnError> {
    use std::os::fd::AsRawFd;

    let program = argv.first().ok_or(SpawnError::EmptyArgv)?;
    let env = merged_env(env);
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(DEFAULT_PATH);
    let path = resolve(program, path_var, cwd)?;

    // Everything the child touches is prepared before fork: after fork only
    // async-signal-safe calls are allowed.
    let c_path = cstr(&path.to_string_lossy())?;
    let c_argv: Vec<CString> = argv.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?;
    let c_env: Vec<CString> = env
        .iter()
        .map(|(k, v)| cstr(&format!("{k}={v}")))
        .collect::<Result<_, _>>()?;
    let c_cwd = cwd.map(cstr).transpose()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = c_argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = c_env.iter().map(|c| c.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // Like execvp: a file without a #! line is a shell script.
    let c_sh = cstr("/bin/sh")?;
    let mut sh_ptrs: Vec<*const libc::c_char> = vec![c_sh.as_ptr(), c_path.as_ptr()];
    sh_ptrs.extend(c_argv.iter().skip(1).map(|c| c.as_ptr()));
    sh_ptrs.push(std::ptr::null());

    let (stdin, out_r, out_w, err_r, err_w, tty) = match io {
        Io::Pipes { stdout } => {
            let devnull: OwnedFd = File::open("/dev/null").map_err(SpawnError::Os)?.into();
            let (out_r, out_w) = match stdout {
                Some(fd) => (None, fd),
                None => {
                    let (r, w) = pipe()?;
                    (Some(r), w)
                }
            };
            let (err_r, err_w) = pipe()?;
            (devnull, out_r, out_w, Some(err_r), err_w, false)
        }
        Io::Tty(t) => {
            let out = t.try_clone().map_err(SpawnError::Os)?;
            let err = t.try_clone().map_err(SpawnError::Os)?;
            (t, None, out, None, err, true)
        }
    };
    let (fail_r, fail_w) = pipe()?;
    let (tx, rx) = channel();

    let mut registry = reaper::registry();
    // SAFETY: the child branch only makes async-signal-safe calls and ends
    // in execve or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SpawnError::Os(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: child side of fork; see above.
        unsafe {
            libc::setsid();
            libc::dup2(stdin.as_raw_fd(), 0);
            libc::dup2(out_w.as_raw_fd(), 1);
            libc::dup2(err_w.as_raw_fd(), 2);
            if tty {
                libc::ioctl(0, libc::TIOCSCTTY, 0);
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if let Some(dir) = &c_cwd {
                if libc::chdir(dir.as_ptr()) != 0 {
                    report_and_exit(fail_w.as_raw_fd(), b'C');
                }
            }
            libc::execve(c_path.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr());
            if *libc::__errno_location() == libc::ENOEXEC {
                libc::execve(c_sh.as_ptr(), sh_ptrs.as_ptr(), env_ptrs.as_ptr());
            }
            report_and_exit(fail_w.as_raw_fd(), b'E');
        }
    }
    registry
        .get_or_insert_with(Default::default)
        .insert(pid, tx);
    drop(registry);
    drop((out_w, err_w, fail_w, stdin));

    let mut report = [0u8; 5];
    let mut got = 0;
    let mut fail = File::from(fail_r);
    while got < report.len() {
        match fail.read(&mut report[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    if got == report.len() {
        let errno = i32::from_ne_bytes([report[1], report[2], report[3], report[4]]);
        let err = std::io::Error::from_raw_os_error(errno);
        return Err(match report[0] {
            b'C' => SpawnError::Cwd(cwd.unwrap_or_default().to_string(), err),
            _ => SpawnError::Exec(program.clone(), err),
        });
    }
    Ok(Child {
        pid,
        stdout: out_r.map(File::from),
        stderr: err_r.map(File::from),
        status: rx,
    })
}

/// Child side: report errno with a tag byte and exit without unwinding.
unsafe fn report_and_exit(fd: i32, tag: u8) -> ! {
    let errno = *libc::__errno_location();
    let b = errno.to_ne_bytes();
    let msg = [tag, b[0], b[1], b[2], b[3]];
    libc::write(fd, msg.as_ptr().cast(), msg.len());
    libc::_exit(127);
}

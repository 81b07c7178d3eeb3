//! PID 1 duties: bring the guest up, switch into the environment's root,
//! serve forever.

use std::ffi::CString;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::features::{self, Features};
use crate::log::log;
use crate::{modules, net, reaper, server, vsock};

/// How long to wait for the root disk to appear after loading virtio_blk.
const ROOT_DEVICE_WAIT: Duration = Duration::from_secs(15);
const NEW_ROOT: &str = "/newroot";

/// Kernel command line options the host passes (`pyro.*`).
#[derive(Debug, Default)]
struct BootOptions {
    root: Option<String>,
    probe: bool,
    net: bool,
    /// `pyro.disable_features=a,b`: act like an agent without them.
    disabled_features: Vec<String>,
}

fn boot_options() -> BootOptions {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let mut opts = BootOptions {
        disabled_features: features::disabled_in_cmdline(&cmdline),
        ..BootOptions::default()
    };
    for word in cmdline.split_whitespace() {
        match word.split_once('=') {
            Some(("pyro.root", v)) => opts.root = Some(v.to_string()),
            Some(("pyro.probe", v)) => opts.probe = v == "1",
            Some(("pyro.net", v)) => opts.net = v == "1",
            _ => {}
        }
    }
    opts
}

fn mount(
    src: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> std::io::Result<()> {
    let _ = std::fs::create_dir_all(target);
    let c = |s: &str| CString::new(s).unwrap_or_default();
    let (src, target, fstype, data) = (c(src), c(target), c(fstype), c(data));
    // SAFETY: valid NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn ensure_std_fds() {
    for fd in 0..3 {
        // SAFETY: fcntl on a possibly closed fd just reports EBADF.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            let path = CString::new("/dev/console").unwrap_or_default();
            // SAFETY: valid path; the new fd takes the lowest free number.
            unsafe { libc::open(path.as_ptr(), libc::O_RDWR) };
        }
    }
}

/// Powers the guest off (the host runs QEMU with `-no-reboot`).
pub fn power_off() -> ! {
    // Every other process ends first, so the root file system can be
    // remounted read-only: that commits its journal and marks it clean,
    // and the stopped disk then reads on the host (pyro-disk) without a
    // journal to replay.
    // SAFETY: plain syscalls; kill(-1) spares PID 1 (us); reboot does not
    // return on success.
    unsafe {
        libc::sync();
        libc::kill(-1, libc::SIGKILL);
    }
    let start = std::time::Instant::now();
    let root = CString::new("/").unwrap_or_default();
    loop {
        // SAFETY: valid path; a null source, type and data are allowed for
        // a remount.
        let ret = unsafe {
            libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_RDONLY,
                std::ptr::null(),
            )
        };
        // Busy while killed processes are still closing their files.
        if ret == 0 || start.elapsed() > Duration::from_secs(3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn fail(what: &str, e: std::io::Error) -> ! {
    log!("fatal: {what}: {e}");
    power_off()
}

fn switch_root() -> std::io::Result<()> {
    for dir in ["/dev", "/proc", "/sys"] {
        mount(dir, &format!("{NEW_ROOT}{dir}"), "", libc::MS_MOVE, "")?;
    }
    std::env::set_current_dir(NEW_ROOT)?;
    mount(".", "/", "", libc::MS_MOVE, "")?;
    let dot = CString::new(".").unwrap_or_default();
    // SAFETY: valid path.
    if unsafe { libc::chroot(dot.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    std::env::set_current_dir("/")
}

fn wait_for(path: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if Path::new(path).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// Runs as PID 1. Never returns.
pub fn run_as_init() -> ! {
    let _ = mount("devtmpfs", "/dev", "devtmpfs", 0, "");
    let _ = mount("proc", "/proc", "proc", 0, "");
    let _ = mount("sysfs", "/sys", "sysfs", 0, "");
    ensure_std_fds();
    log!("started at {}", uptime());
    reaper::start();
    let opts = boot_options();
    if opts.probe {
        // Boot probe: reaching this line proves the guest boots.
        log!("probe ok");
        power_off();
    }
    modules::load_all(opts.net);
    log!("modules loaded at {}", uptime());

    let root = opts.root.as_deref().unwrap_or("/dev/vda");
    if !wait_for(root, ROOT_DEVICE_WAIT) {
        fail(
            "waiting for the root disk",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
    }
    if let Err(e) = mount(root, NEW_ROOT, "ext4", 0, "") {
        fail("mounting the root file system", e);
    }
    if let Err(e) = switch_root() {
        fail("switching to the root file system", e);
    }
    log!("root mounted at {}", uptime());
    let _ = mount(
        "devpts",
        "/dev/pts",
        "devpts",
        0,
        "gid=5,mode=620,ptmxmode=666",
    );
    let _ = mount("tmpfs", "/dev/shm", "tmpfs", 0, "mode=1777");
    let _ = mount("tmpfs", "/run", "tmpfs", 0, "mode=755");
    let hostname = b"pyro";
    // SAFETY: valid buffer and length.
    unsafe { libc::sethostname(hostname.as_ptr().cast(), hostname.len()) };
    net::bring_up_loopback();
    if opts.net {
        if let Err(e) = net::configure_user_network() {
            log!("network setup failed: {e}");
        }
    }

    let features = std::sync::Arc::new(Features::without(&opts.disabled_features));
    if !features.disabled().is_empty() {
        log!("features disabled: {}", features.disabled().join(","));
    }
    let listener = match vsock::Listener::bind(pyro_proto::AGENT_PORT) {
        Ok(l) => l,
        Err(e) => fail("listening on vsock", e),
    };
    announce_ready(&features);
    loop {
        match listener.accept() {
            Ok(stream) => {
                let features = features.clone();
                std::thread::spawn(move || server::handle_connection(stream, &features));
            }
            Err(e) => {
                log!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Tells the host the agent is serving by connecting back once.
fn announce_ready(features: &Features) {
    match vsock::connect(vsock::HOST_CID, pyro_proto::READY_PORT) {
        Ok(mut stream) => {
            if let Err(e) = server::ready_message(features).encode(&mut stream) {
                log!("ready notice failed: {e}");
            }
        }
        // The host may poll instead (kernel vhost-vsock); not fatal.
        Err(e) => log!("ready notice not delivered: {e}"),
    }
    log!("ready at {}", uptime());
}

/// Seconds since the guest kernel started, for boot timing in the console.
fn uptime() -> String {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next().map(|s| format!("{s}s")))
        .unwrap_or_default()
}

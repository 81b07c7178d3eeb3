//! Network policies against real guests: egress reaches a server in a
//! network namespace this test makes for itself and never the host's
//! loopback (neither through the gateway nor by routing 127.0.0.1 out of
//! the NIC as root); published ports reach a guest server from the host's
//! 127.0.0.1 only; `off` reaches nothing. No traffic leaves the machine.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::util::{ensure_env, wait_until, TestEnv, ENV};

/// A network namespace joined to the host by a veth pair, with an HTTP
/// server on its (non-loopback) address. Removed on drop.
struct TestNet {
    ns: String,
    host_if: String,
    addr: String,
    server: Child,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestNet {
    fn new() -> TestNet {
        let id = std::process::id();
        let (ns, host_if, peer) = (
            format!("pyro-t{id}"),
            format!("pyh{id}"),
            format!("pyp{id}"),
        );
        let net = 10 + id % 240;
        let (host_addr, addr) = (format!("10.213.{net}.1"), format!("10.213.{net}.2"));
        ip(&["netns", "add", &ns]);
        let mut t = TestNet {
            ns: ns.clone(),
            host_if: host_if.clone(),
            addr: addr.clone(),
            server: Command::new("true").spawn().unwrap(),
        };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["link", "set", &peer, "netns", &ns]);
        ip(&["addr", "add", &format!("{host_addr}/24"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            &peer,
        ]);
        ip(&["-n", &ns, "link", "set", &peer, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        let root = tempfile::tempdir().unwrap().keep();
        std::fs::write(root.join("index.html"), "from-the-test-namespace\n").unwrap();
        t.server = Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-m", "http.server", "8080"])
            .args(["--bind", &addr, "--directory"])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 starts");
        let target = format!("{addr}:8080");
        wait_until(Duration::from_secs(10), "the namespace's server", || {
            TcpStream::connect(&target).is_ok()
        });
        t
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// An HTTP server on the host's 127.0.0.1 that counts its connections.
fn loopback_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            counted.fetch_add(1, Ordering::SeqCst);
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\nhost-loopback-secret\n");
        }
    });
    (port, hits)
}

fn get(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// Bash in the guest: `try NAME HOST PORT WORD` prints NAME=reached when
/// an HTTP GET answers with WORD in it, else NAME=blocked.
const TRY: &str = r#"try() { if timeout 6 bash -c "exec 3<>/dev/tcp/$2/$3 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3" 2>/dev/null | grep -q "$4"; then echo "$1=reached"; else echo "$1=blocked"; fi; }"#;

fn probe(env: &TestEnv, ws: &str, body: &str) -> String {
    let script = format!("{TRY}\n{body}");
    let run = env.run(&["workspace", "exec", ws, "--", "bash", "-c", &script]);
    run.assert_code(0);
    run.stdout()
}

fn is_root() -> bool {
    // SAFETY: plain syscall.
    unsafe { libc::geteuid() == 0 }
}

/// slirp4netns processes attached to `qemu_pid`'s namespace.
fn slirps_of(qemu_pid: u32) -> usize {
    let needle = format!("/proc/{qemu_pid}/ns/user");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("slirp4netns") && c.contains(&needle))
        .count()
}

fn proxies_of(env: &TestEnv) -> usize {
    let needle = env.state_dir().to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("publish-proxy") && c.contains(&needle))
        .count()
}

fn port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

#[test]
fn egress_published_ports_and_off() {
    ensure_env();
    if !is_root() {
        eprintln!("skipped: making the test's network namespace needs root");
        return;
    }
    let net = TestNet::new();
    let (lo_port, lo_hits) = loopback_server();
    let env = TestEnv::new();
    let seed = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", seed.path().join("busybox"))
        .expect("busybox-static (make setup)");
    std::fs::create_dir(seed.path().join("www")).unwrap();
    std::fs::write(seed.path().join("www/index.html"), "hello-from-the-guest\n").unwrap();
    let seed_arg = seed.path().to_string_lossy().into_owned();

    let created = env.run(&[
        "workspace",
        "create",
        ENV,
        "--name",
        "net",
        "--network-policy",
        "egress+published-ports",
        "--seed-path",
        &seed_arg,
        "--json",
    ]);
    created.assert_code(0);
    assert_eq!(created.json()["network_policy"], "egress+published-ports");
    let status = env.run(&["workspace", "status", "net"]);
    assert!(
        status
            .stdout()
            .contains("Network policy: egress+published-ports"),
        "{}",
        status.context()
    );

    // Egress: out to the namespace, never to the host's loopback through
    // QEMU's gateway or slirp4netns's.
    let addr = net.addr.clone();
    let out = probe(
        &env,
        "net",
        &format!(
            "try testns {addr} 8080 from-the-test-namespace\n\
             try gateway 10.0.2.2 {lo_port} host-loopback-secret\n\
             try outer 10.0.3.2 {lo_port} host-loopback-secret\n"
        ),
    );
    for want in ["testns=reached", "gateway=blocked", "outer=blocked"] {
        assert!(out.contains(want), "{want} expected in:\n{out}");
    }

    // Published ports: refused forms first.
    let start = |name: &str, publish: &[&str]| {
        let mut args = vec!["workspace", "service", "start", "net", name];
        for p in publish {
            args.extend_from_slice(&["--publish", p]);
        }
        args.extend_from_slice(&[
            "--ready-tcp",
            "127.0.0.1:8000",
            "--json",
            "--",
            "/workspace/busybox",
            "httpd",
            "-f",
            "-p",
            "8000",
            "-h",
            "/workspace/www",
        ]);
        env.run(&args)
    };
    for (bad, says) in [
        ("0", "GUEST_PORT or HOST_PORT:GUEST_PORT"),
        ("x:80", "GUEST_PORT or HOST_PORT:GUEST_PORT"),
        ("80:8000", "1025-65535"),
    ] {
        let r = start("bad", &[bad]);
        assert_ne!(r.code(), Some(0), "{}", r.context());
        // With --json the error is the JSON on stdout.
        assert!(r.stdout().contains(says), "{}", r.context());
    }
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    let r = start("bad", &[&format!("{taken_port}:8000")]);
    assert_ne!(r.code(), Some(0), "{}", r.context());
    assert!(r.stdout().contains("already in use"), "{}", r.context());
    assert_eq!(r.json()["error"]["code"], "conflict", "{}", r.context());
    drop(taken);

    let fixed = {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let fixed_spec = format!("{fixed}:8000");
    let web = start("web", &["8000", &fixed_spec]);
    web.assert_code(0);
    let w = web.json();
    assert_eq!(w["state"], "running", "{}", web.context());
    let ports = w["published_ports"].as_array().unwrap().clone();
    assert_eq!(ports.len(), 2, "{w}");
    let host_ports: Vec<u16> = ports
        .iter()
        .map(|p| {
            assert_eq!(p["host"], "127.0.0.1");
            assert_eq!(p["guest_port"], 8000);
            assert_eq!(p["protocol"], "tcp");
            p["host_port"].as_u64().unwrap() as u16
        })
        .collect();
    assert_eq!(host_ports[1], fixed);
    for &p in &host_ports {
        let body = get(p).unwrap();
        assert!(body.contains("hello-from-the-guest"), "{body}");
        // Bound to 127.0.0.1 only: /proc/net/tcp lists it as 0100007F.
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let local = format!("0100007F:{p:04X} 00000000:0000 0A");
        assert!(
            tcp.contains(&local),
            "port {p} not listening on 127.0.0.1 only"
        );
        let any = format!("00000000:{p:04X} 00000000:0000 0A");
        assert!(!tcp.contains(&any), "port {p} listens on every address");
    }
    let list = env.run(&["workspace", "service", "list", "net"]);
    assert!(
        list.stdout()
            .contains(&format!("published=127.0.0.1:{}->8000/tcp", host_ports[0])),
        "{}",
        list.context()
    );
    assert_eq!(proxies_of(&env), 2);

    // Stop releases the ports and ends the proxies.
    env.run(&["workspace", "service", "stop", "net", "web"])
        .assert_code(0);
    assert_eq!(proxies_of(&env), 0);
    assert!(host_ports.iter().all(|&p| port_free(p)));

    // kill -9 of the guest's QEMU takes slirp4netns and the proxies along.
    // Again, ready by HTTP this time (probed by the agent in the guest).
    let again = env.run(&[
        "workspace",
        "service",
        "start",
        "net",
        "web",
        "--publish",
        &fixed_spec,
        "--ready-http",
        "http://127.0.0.1:8000/index.html",
        "--json",
        "--",
        "/workspace/busybox",
        "httpd",
        "-f",
        "-p",
        "8000",
        "-h",
        "/workspace/www",
    ]);
    again.assert_code(0);
    assert_eq!(
        again.json()["readiness"]["type"],
        "http",
        "{}",
        again.context()
    );
    assert_eq!(again.json()["state"], "running", "{}", again.context());
    assert!(get(fixed).unwrap().contains("hello-from-the-guest"));

    // Root in the guest routes 127.0.0.1 out of its NIC (this breaks the
    // guest's own loopback, so it comes last before the guest is killed).
    let out = probe(
        &env,
        "net",
        &format!(
            "B=/workspace/busybox\n\
             $B sysctl -w net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.eth0.route_localnet=1 >/dev/null\n\
             $B ip route del 127.0.0.0/8 dev lo table local\n\
             $B ip route del 127.0.0.1 dev lo table local\n\
             $B ip route add 127.0.0.1/32 via 10.0.2.2 dev eth0\n\
             echo route=$($B ip route get 127.0.0.1)\n\
             try routed 127.0.0.1 {lo_port} host-loopback-secret\n"
        ),
    );
    assert!(out.contains("routed=blocked"), "{out}");
    assert!(
        out.contains("route=127.0.0.1 via 10.0.2.2 dev eth0"),
        "the attack route was not in place:\n{out}"
    );
    assert_eq!(
        lo_hits.load(Ordering::SeqCst),
        0,
        "host loopback was reached"
    );

    let id = created.json()["workspace_id"].as_str().unwrap().to_string();
    let qemu = env
        .guest_pids(&id)
        .into_iter()
        .find(|(_, p)| p.ends_with("qemu-system-x86_64"))
        .expect("QEMU runs")
        .0;
    assert_eq!(slirps_of(qemu), 1);
    crate::util::signal(qemu, libc::SIGKILL);
    wait_until(
        Duration::from_secs(10),
        "slirp4netns and the proxies to exit",
        || slirps_of(qemu) == 0 && proxies_of(&env) == 0 && port_free(fixed),
    );
    env.assert_records_agree();

    // The policy survives a restart.
    env.run(&["workspace", "start", "net"]).assert_code(0);
    let out = probe(
        &env,
        "net",
        &format!("try testns {addr} 8080 from-the-test-namespace"),
    );
    assert!(out.contains("testns=reached"), "{out}");
    env.run(&["workspace", "delete", "net"]).assert_code(0);

    // Off: no interface, nothing reached, nothing published.
    env.run(&[
        "workspace",
        "create",
        ENV,
        "--name",
        "off",
        "--seed-path",
        &seed_arg,
    ])
    .assert_code(0);
    let out = probe(
        &env,
        "off",
        &format!(
            "try testns {addr} 8080 from-the-test-namespace\n\
             try gateway 10.0.2.2 {lo_port} host-loopback-secret\n\
             ls /sys/class/net | tr '\\n' ' '; echo"
        ),
    );
    assert!(out.contains("testns=blocked"), "{out}");
    assert!(out.contains("gateway=blocked"), "{out}");
    assert!(!out.contains("eth0"), "an off workspace has a NIC: {out}");
    let r = env.run(&[
        "workspace",
        "service",
        "start",
        "off",
        "web",
        "--publish",
        "8000",
        "--",
        "sleep",
        "60",
    ]);
    assert_ne!(r.code(), Some(0), "{}", r.context());
    assert!(
        r.stderr().contains("egress+published-ports"),
        "{}",
        r.context()
    );
    env.run(&["workspace", "delete", "off"]).assert_code(0);
    assert_eq!(
        lo_hits.load(Ordering::SeqCst),
        0,
        "host loopback was reached"
    );
    env.assert_nothing_left();
}

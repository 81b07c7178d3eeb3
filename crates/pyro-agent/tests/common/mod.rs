//! The real agent binary serving on a unix socket on the host, shared by
//! the integration tests.
#![allow(dead_code)]

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pyro_proto::{Connection, ExecRequest, ExitInfo, Message, Request};

/// A `pyro-agent --listen-unix` process, killed on drop.
pub struct Agent {
    child: Child,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// Starts the agent with every feature.
    pub fn start() -> Agent {
        Agent::start_with(&[])
    }

    /// Starts the agent with extra arguments after `--listen-unix PATH`.
    pub fn start_with(args: &[&str]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_pyro-agent"))
            .arg("--listen-unix")
            .arg(&socket)
            .args(args)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "agent did not listen");
            std::thread::sleep(Duration::from_millis(5));
        }
        Agent {
            child,
            socket,
            _dir: dir,
        }
    }

    /// A handshaken connection.
    pub fn connect(&self) -> Connection<UnixStream> {
        let mut conn = Connection::new(UnixStream::connect(&self.socket).unwrap());
        conn.client_handshake("test").unwrap();
        conn
    }

    pub fn exec(&self, argv: &[&str], timeout_ms: Option<u64>) -> (Vec<u8>, Vec<u8>, ExitInfo) {
        self.exec_req(ExecRequest {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![],
            cwd: None,
            timeout_ms,
            direct_output: false,
            output_token: None,
        })
    }

    pub fn exec_req(&self, req: ExecRequest) -> (Vec<u8>, Vec<u8>, ExitInfo) {
        let mut conn = self.connect();
        conn.send(&Message::Request(Request::Exec(req))).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        loop {
            match conn.expect().unwrap() {
                Message::Stdout(b) => out.extend(b),
                Message::Stderr(b) => err.extend(b),
                Message::Exit(info) => return (out, err, info),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The real agent binary serving on a unix socket on the host: the exec
//! handler's contract without booting a guest. (The guest tests in
//! pyro-cli cover the same paths over vsock.)

mod common;

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::Agent;
use pyro_proto::{
    features, Connection, ErrorCode, ExecRequest, Hello, Message, Request, PROTOCOL_VERSION,
};

#[test]
fn exit_codes_and_separate_streams() {
    let agent = Agent::start();
    let (out, err, info) = agent.exec(&["sh", "-c", "echo out; echo err >&2; exit 7"], None);
    assert_eq!(out, b"out\n");
    assert_eq!(err, b"err\n");
    assert_eq!(info.exit_code, 7);
    assert!(!info.timed_out);
}

#[test]
fn argv_is_not_passed_through_a_shell_and_env_cwd_apply() {
    let agent = Agent::start();
    let (out, _, _) = agent.exec(&["echo", "$HOME", "a b"], None);
    assert_eq!(out, b"$HOME a b\n");
    let (out, _, info) = agent.exec_req(ExecRequest {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "echo $GREETING; pwd; echo $PATH".into(),
        ],
        env: vec![("GREETING".into(), "hi".into())],
        cwd: Some("/usr".into()),
        timeout_ms: None,
        direct_output: false,
        output_token: None,
    });
    assert_eq!(info.exit_code, 0);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines[0], "hi");
    assert_eq!(lines[1], "/usr");
    assert!(lines[2].contains("/usr/bin"));
}

#[test]
fn missing_programs_and_bad_cwd_are_reported() {
    let agent = Agent::start();
    let (_, err, info) = agent.exec(&["definitely-not-a-program"], None);
    assert_eq!(info.exit_code, 127);
    assert_eq!(
        String::from_utf8_lossy(&err),
        "pyro-agent: definitely-not-a-program: command not found\n"
    );
    let (_, err, info) = agent.exec_req(ExecRequest {
        argv: vec!["true".into()],
        env: vec![],
        cwd: Some("/no/such/dir".into()),
        timeout_ms: None,
        direct_output: false,
        output_token: None,
    });
    assert_eq!(info.exit_code, 127);
    assert!(String::from_utf8_lossy(&err).contains("cannot change directory to /no/such/dir"));
}

#[test]
fn signals_are_reported_as_128_plus_n() {
    let agent = Agent::start();
    let (_, _, info) = agent.exec(&["sh", "-c", "kill -TERM $$"], None);
    assert_eq!(info.exit_code, 128 + 15);
    assert_eq!(info.signal, Some(15));
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let agent = Agent::start();
    let started = Instant::now();
    let (out, _, info) = agent.exec(&["sh", "-c", "sleep 100 & echo $!; sleep 100"], Some(500));
    assert!(info.timed_out);
    assert_eq!(info.exit_code, 124);
    assert!(started.elapsed() < Duration::from_secs(10));
    let bg: u32 = String::from_utf8(out).unwrap().trim().parse().unwrap();
    // The background child was in the group and is gone (or a zombie
    // waiting for the host's init to reap it).
    std::thread::sleep(Duration::from_millis(200));
    let state = std::fs::read_to_string(format!("/proc/{bg}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z"),
        "background child survived: {state}"
    );
}

#[test]
fn requests_run_concurrently() {
    let agent = std::sync::Arc::new(Agent::start());
    let started = Instant::now();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let agent = agent.clone();
            std::thread::spawn(move || {
                agent.exec(&["sh", "-c", &format!("sleep 1; echo {i}")], None)
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let (out, _, info) = h.join().unwrap();
        assert_eq!(info.exit_code, 0);
        assert_eq!(String::from_utf8(out).unwrap().trim(), i.to_string());
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "8 one-second commands took {:?}",
        started.elapsed()
    );
}

#[test]
fn large_output_arrives_whole_and_in_chunks() {
    let agent = Agent::start();
    let (out, _, info) = agent.exec(&["head", "-c", "5000000", "/dev/zero"], None);
    assert_eq!(info.exit_code, 0);
    assert_eq!(out.len(), 5_000_000);
}

#[test]
fn bad_requests_get_errors_and_the_agent_keeps_serving() {
    let agent = Agent::start();
    // Wrong protocol version.
    let mut conn = Connection::new(UnixStream::connect(&agent.socket).unwrap());
    let mut future = Hello::new("future", features::ALL);
    future.protocol_version = PROTOCOL_VERSION + 1;
    conn.send(&Message::Hello(future)).unwrap();
    match conn.expect().unwrap() {
        Message::Error(e) => assert_eq!(e.code, ErrorCode::VersionMismatch),
        other => panic!("unexpected {other:?}"),
    }
    // Malformed request JSON: a known op without its fields. (An unknown
    // op is `unsupported`, see tests/negotiation.rs.)
    let mut stream = UnixStream::connect(&agent.socket).unwrap();
    let mut conn = Connection::new(stream.try_clone().unwrap());
    conn.client_handshake("test").unwrap();
    pyro_proto::write_frame(
        &mut stream,
        pyro_proto::FrameKind::Request,
        b"{\"op\":\"exec\",\"env\":[]}",
    )
    .unwrap();
    match conn.expect().unwrap() {
        Message::Error(e) => assert_eq!(e.code, ErrorCode::BadRequest),
        other => panic!("unexpected {other:?}"),
    }
    // Garbage instead of a frame, then a hang-up.
    let mut stream = UnixStream::connect(&agent.socket).unwrap();
    std::io::Write::write_all(&mut stream, &[0xff; 64]).unwrap();
    drop(stream);
    // Empty argv.
    let mut conn = agent.connect();
    conn.send(&Message::Request(Request::Exec(ExecRequest {
        argv: vec![],
        env: vec![],
        cwd: None,
        timeout_ms: None,
        direct_output: false,
        output_token: None,
    })))
    .unwrap();
    assert!(matches!(conn.expect().unwrap(), Message::Error(_)));
    // Still serving.
    let (out, _, _) = agent.exec(&["echo", "alive"], None);
    assert_eq!(out, b"alive\n");
}

fn upload(agent: &Agent, dest: &std::path::Path, tar: &[u8]) -> Message {
    let mut conn = agent.connect();
    conn.send(&Message::Request(Request::Extract {
        dest: dest.to_string_lossy().into_owned(),
        any_link_targets: false,
    }))
    .unwrap();
    let mut w = pyro_proto::DataWriter::new(&mut conn);
    std::io::Write::write_all(&mut w, tar).unwrap();
    w.finish().unwrap();
    conn.expect().unwrap()
}

#[test]
fn uploads_unpack_safely() {
    let agent = Agent::start();
    let dest = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o755);
    b.append_data(&mut h, "bin/run.sh", &b"#!/bin/sh"[..6])
        .unwrap();
    let good = b.into_inner().unwrap();
    match upload(&agent, dest.path(), &good) {
        Message::Response(pyro_proto::Response::Extracted {
            entry_count,
            bytes_written,
        }) => {
            assert_eq!((entry_count, bytes_written), (1, 6));
        }
        other => panic!("unexpected {other:?}"),
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dest.path().join("bin/run.sh"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o755);

    // A symlink pointing out of the tree is refused, and the agent stays up.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "escape", "/etc").unwrap();
    match upload(&agent, dest.path(), &b.into_inner().unwrap()) {
        Message::Error(e) => assert!(e.message.contains("symlink"), "{}", e.message),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!dest.path().join("escape").exists());
    let (out, _, _) = agent.exec(&["echo", "alive"], None);
    assert_eq!(out, b"alive\n");
}

/// Direct output: stdout goes straight into its own connection, which may
/// attach before the exec arrives; stderr and the exit come as frames.
#[test]
fn direct_stdout_meets_its_exec_by_token() {
    use std::io::Read;
    let agent = Agent::start();
    let (mut conn, mut out) =
        direct_exec(&agent, 0x5eed, "echo hi; echo err >&2; sleep 100 & exit 4");
    let mut err = Vec::new();
    let info = loop {
        match conn.expect().unwrap() {
            Message::Stderr(b) => err.extend(b),
            Message::Exit(info) => break info,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(info.exit_code, 4);
    assert_eq!(err, b"err\n");
    // The background sleep still holds stdout: ask the agent to end it.
    conn.send(&Message::Request(Request::KillGroup)).unwrap();
    let mut got = Vec::new();
    out.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hi\n");
}

fn direct_exec(agent: &Agent, token: u64, script: &str) -> (Connection<UnixStream>, UnixStream) {
    let mut out = agent.connect();
    out.send(&Message::Request(Request::AttachOutput {
        token,
        stream: pyro_proto::OutputStream::Stdout,
    }))
    .unwrap();
    assert!(matches!(
        out.expect().unwrap(),
        Message::Response(pyro_proto::Response::Done)
    ));
    let mut conn = agent.connect();
    let req = ExecRequest {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![],
        cwd: None,
        timeout_ms: None,
        direct_output: true,
        output_token: Some(token),
    };
    conn.send(&Message::Request(Request::Exec(req))).unwrap();
    (conn, out.into_inner())
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
}

/// A host that hangs up mid-exec (an interrupted `pyro`) takes the command
/// with it; one that hangs up after the exit leaves background work alone.
#[test]
fn hanging_up_kills_a_running_command_but_not_finished_work() {
    use std::io::{BufRead, BufReader};
    let agent = Agent::start();
    let (conn, out) = direct_exec(&agent, 7, "echo $$; sleep 100");
    let mut line = String::new();
    BufReader::new(&out).read_line(&mut line).unwrap();
    let pid: u32 = line.trim().parse().unwrap();
    assert!(alive(pid));
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "command survived the host hanging up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let (mut conn, out) = direct_exec(&agent, 8, "sleep 100 >/dev/null 2>&1 & echo $!");
    let mut line = String::new();
    BufReader::new(&out).read_line(&mut line).unwrap();
    let bg: u32 = line.trim().parse().unwrap();
    loop {
        if let Message::Exit(info) = conn.expect().unwrap() {
            assert_eq!(info.exit_code, 0);
            break;
        }
    }
    drop(conn);
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(bg), "background work was killed after a normal exit");
    libc_kill(bg as i32);
}

fn libc_kill(pid: i32) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
}

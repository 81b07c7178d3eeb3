//! Protocol negotiation against the real agent binary: hosts and agents of
//! the same major version talk whatever their feature lists, and what an
//! agent lacks is answered `unsupported`, naming the feature.

mod common;

use std::os::unix::net::UnixStream;

use common::Agent;
use pyro_proto::{
    features, write_frame, Connection, ErrorCode, ExecRequest, FrameKind, Hello, Message,
    RemoteError, Request, Response,
};

/// Sends `hello` and the request payload `request` (raw JSON) back to back,
/// as a host does, and returns the connection after the agent's `Hello`.
fn raw_request(agent: &Agent, hello: &[u8], request: &[u8]) -> (Connection<UnixStream>, Hello) {
    let mut stream = UnixStream::connect(&agent.socket).unwrap();
    write_frame(&mut stream, FrameKind::Hello, hello).unwrap();
    write_frame(&mut stream, FrameKind::Request, request).unwrap();
    let mut conn = Connection::new(stream);
    match conn.expect().unwrap() {
        Message::Hello(h) => (conn, h),
        other => panic!("unexpected {other:?}"),
    }
}

/// The answer must be `unsupported` naming `feature`, and then the agent
/// must close the connection without anything else.
fn assert_unsupported(conn: &mut Connection<UnixStream>, feature: &str) {
    match conn.expect().unwrap() {
        Message::Error(RemoteError {
            code: ErrorCode::Unsupported,
            message,
            feature: Some(f),
        }) => {
            assert_eq!(f, feature);
            assert!(
                message.starts_with(&format!("this guest agent does not support '{feature}'; ")),
                "{message}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(conn.recv().unwrap(), None, "the connection did not end");
}

fn exec_json(argv: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&Request::Exec(ExecRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        cwd: None,
        timeout_ms: None,
        direct_output: false,
        output_token: None,
    }))
    .unwrap()
}

fn exec_output(conn: &mut Connection<UnixStream>) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        match conn.expect().unwrap() {
            Message::Stdout(b) => out.extend(b),
            Message::Stderr(_) => {}
            Message::Exit(info) => {
                assert_eq!(info.exit_code, 0);
                return out;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A newer host (one feature more than the agent) still gets its exec
/// answered, and learns the agent's features from its `Hello`.
#[test]
fn a_host_with_more_features_still_gets_exec_answered() {
    let agent = Agent::start();
    let mut ours: Vec<&str> = features::ALL.to_vec();
    ours.push("teleport");
    let hello = serde_json::to_vec(&Hello::new("newer host", &ours)).unwrap();
    let (mut conn, theirs) = raw_request(&agent, &hello, &exec_json(&["echo", "hi"]));
    assert_eq!(theirs.features, features::ALL);
    assert!(theirs.supports(features::EXEC));
    assert!(!theirs.supports("teleport"));
    assert_eq!(exec_output(&mut conn), b"hi\n");

    // A host whose Hello has no feature list at all is served too.
    let (mut conn, _) = raw_request(
        &agent,
        br#"{"protocol_version":1,"peer":"older host"}"#,
        &exec_json(&["echo", "old"]),
    );
    assert_eq!(exec_output(&mut conn), b"old\n");
}

/// An operation the agent does not know is `unsupported` with its name
/// (not `bad_request`), the connection ends cleanly, and the agent serves on.
#[test]
fn an_unknown_op_is_unsupported_and_the_connection_ends_cleanly() {
    let agent = Agent::start();
    let hello = serde_json::to_vec(&Hello::new("newer host", features::ALL)).unwrap();
    let (mut conn, _) = raw_request(&agent, &hello, br#"{"op":"open_pty","rows":24,"cols":80}"#);
    assert_unsupported(&mut conn, "open_pty");

    // A known op with broken fields is still a bad request.
    let (mut conn, _) = raw_request(&agent, &hello, br#"{"op":"extract"}"#);
    match conn.expect().unwrap() {
        Message::Error(e) => {
            assert_eq!(e.code, ErrorCode::BadRequest);
            assert_eq!(e.feature, None);
        }
        other => panic!("unexpected {other:?}"),
    }

    let (out, _, _) = agent.exec(&["echo", "alive"], None);
    assert_eq!(out, b"alive\n");
}

/// `--disable-features` (the `pyro.disable_features=` test hook): the agent
/// neither advertises nor serves those features, answering like an agent
/// that never had them, and serves everything else.
#[test]
fn disabled_features_are_refused_and_not_advertised() {
    let agent = Agent::start_with(&["--disable-features", "extract,direct_output"]);
    let mut conn = Connection::new(UnixStream::connect(&agent.socket).unwrap());
    let hello = conn.client_handshake("test").unwrap();
    assert!(!hello.supports(features::EXTRACT));
    assert!(!hello.supports(features::DIRECT_OUTPUT));
    assert!(hello.supports(features::EXEC));
    assert_eq!(hello.features.len(), features::ALL.len() - 2);

    conn.send(&Message::Request(Request::Extract {
        dest: "/tmp".into(),
        any_link_targets: false,
    }))
    .unwrap();
    assert_unsupported(&mut conn, features::EXTRACT);

    let mut conn = agent.connect();
    conn.send(&Message::Request(Request::AttachOutput {
        token: 1,
        stream: pyro_proto::OutputStream::Stdout,
    }))
    .unwrap();
    assert_unsupported(&mut conn, features::DIRECT_OUTPUT);

    // An exec asking for direct output is refused at once (not left
    // waiting for a stdout connection), so the host can fall back.
    let mut conn = agent.connect();
    conn.send(&Message::Request(Request::Exec(ExecRequest {
        argv: vec!["true".into()],
        env: vec![],
        cwd: None,
        timeout_ms: None,
        direct_output: true,
        output_token: Some(5),
    })))
    .unwrap();
    assert_unsupported(&mut conn, features::DIRECT_OUTPUT);

    let mut conn = agent.connect();
    conn.send(&Message::Request(Request::Ping)).unwrap();
    assert!(matches!(
        conn.expect().unwrap(),
        Message::Response(Response::Pong { .. })
    ));
    let (out, _, _) = agent.exec(&["echo", "alive"], None);
    assert_eq!(out, b"alive\n");
}

/// On a direct-output exec's connection the agent only listens for
/// `KillGroup`; a request it does not know (a newer host's) is ignored and
/// must not be taken for a hang-up that kills the command.
#[test]
fn an_unknown_op_during_a_direct_exec_does_not_kill_it() {
    use std::io::Read;
    let agent = Agent::start();
    let mut out = agent.connect();
    out.send(&Message::Request(Request::AttachOutput {
        token: 77,
        stream: pyro_proto::OutputStream::Stdout,
    }))
    .unwrap();
    assert!(matches!(
        out.expect().unwrap(),
        Message::Response(Response::Done)
    ));
    let mut conn = agent.connect();
    conn.send(&Message::Request(Request::Exec(ExecRequest {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "echo start; sleep 0.3; echo end".into(),
        ],
        env: vec![],
        cwd: None,
        timeout_ms: None,
        direct_output: true,
        output_token: Some(77),
    })))
    .unwrap();
    // Once the command runs (its first line arrived), a newer host's request.
    let mut out = out.into_inner();
    let mut first = [0u8; 6];
    out.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"start\n");
    let mut raw = conn.get_ref();
    write_frame(&mut raw, FrameKind::Request, br#"{"op":"resize","rows":1}"#).unwrap();
    let info = loop {
        match conn.expect().unwrap() {
            Message::Exit(info) => break info,
            Message::Stderr(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(info.exit_code, 0, "{info:?}");
    let mut rest = Vec::new();
    out.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"end\n");
}

//! Accepting connections and dispatching requests, one thread each.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pyro_proto::{
    check_peer_hello, Connection, ErrorCode, Message, OutputStream, ProtoError, RemoteError,
    Request, Response,
};

use crate::exec::{self, SharedWriter};
use crate::features::Features;
use crate::log::log;
use crate::{files, patch, services, shells};

static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// A bidirectional byte stream the agent can serve.
pub trait Stream: Read + Write + Send + 'static {
    /// A second handle to the same stream, for the output threads.
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Write + Send>>;
    /// The socket itself, to hand to a command as stdout or stderr.
    fn into_fd(self) -> std::os::fd::OwnedFd;
}

impl Stream for std::os::unix::net::UnixStream {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Write + Send>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn into_fd(self) -> std::os::fd::OwnedFd {
        self.into()
    }
}

impl Stream for std::fs::File {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Write + Send>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn into_fd(self) -> std::os::fd::OwnedFd {
        self.into()
    }
}

/// Message the agent sends when it connects back to say it is ready.
pub fn ready_message(features: &Features) -> Message {
    features.hello()
}

/// Serves one connection: handshake, one request, answer. Only `features`
/// are advertised and served.
pub fn handle_connection<S: Stream>(stream: S, features: &Features) {
    STARTED.get_or_init(Instant::now);
    if let Err(e) = serve_one(stream, features) {
        // A host that disconnects mid-request is routine; note it and move on.
        log!("connection ended: {e}");
    }
}

fn serve_one<S: Stream>(stream: S, features: &Features) -> Result<(), ProtoError> {
    let writer: SharedWriter = Arc::new(Mutex::new(stream.try_clone_box()?));
    let mut conn = Connection::new(stream);
    match conn.expect()? {
        Message::Hello(h) => match check_peer_hello(&h) {
            Ok(()) => conn.send(&features.hello())?,
            Err(e) => {
                let message = match e {
                    ProtoError::VersionMismatch { ours, theirs } => format!(
                        "the host speaks protocol {theirs}, this guest agent speaks {ours}; \
                         restart the workspace so it boots the host's own agent"
                    ),
                    e => e.to_string(),
                };
                conn.send(&Message::Error(RemoteError::new(
                    ErrorCode::VersionMismatch,
                    message,
                )))?;
                return Ok(());
            }
        },
        other => return Err(ProtoError::Unexpected(other.name())),
    }
    let request = match conn.expect() {
        Ok(Message::Request(r)) => r,
        Ok(other) => return Err(ProtoError::Unexpected(other.name())),
        // A newer host asking for something this agent never had.
        Err(ProtoError::UnsupportedOp(op)) => {
            conn.send(&Message::Error(RemoteError::unsupported(&op)))?;
            return Ok(());
        }
        Err(e @ ProtoError::Malformed { .. }) => {
            conn.send(&Message::Error(RemoteError::new(
                ErrorCode::BadRequest,
                e.to_string(),
            )))?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    // Answered exactly like an unknown operation, so a disabled feature
    // reproduces an older agent.
    if let Some(feature) = features.missing(&request) {
        conn.send(&Message::Error(RemoteError::unsupported(feature)))?;
        return Ok(());
    }
    match request {
        Request::Ping => {
            let uptime_ms = STARTED
                .get()
                .map(|s| s.elapsed().as_millis() as u64)
                .unwrap_or(0);
            conn.send(&Message::Response(Response::Pong { uptime_ms }))?;
        }
        Request::Exec(req) if req.output_token.is_some() && !req.argv.is_empty() => {
            let Some(stdout) = exec::await_stdout(req.output_token.unwrap_or_default()) else {
                conn.send(&Message::Error(RemoteError::new(
                    ErrorCode::BadRequest,
                    "the stdout connection did not arrive",
                )))?;
                return Ok(());
            };
            // The first connection stays with a watcher: the host may ask
            // to end background processes still holding stdout
            // (`KillGroup`), and a host that hangs up before the exit
            // (interrupted `pyro`) takes the command with it.
            let pid = Arc::new(std::sync::atomic::AtomicI32::new(0));
            let exited = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let kill_group = features.supports(pyro_proto::features::KILL_GROUP);
            let watcher = {
                let (pid, exited) = (pid.clone(), exited.clone());
                std::thread::spawn(move || loop {
                    let msg = conn.recv();
                    let group = pid.load(std::sync::atomic::Ordering::SeqCst);
                    match msg {
                        Ok(Some(Message::Request(Request::KillGroup)))
                            if group > 0 && kill_group =>
                        {
                            exec::kill_rest(group)
                        }
                        Ok(Some(_)) => {}
                        // A whole frame this agent cannot use (from a newer
                        // host): ignore it; the connection is still in step.
                        Err(ProtoError::UnsupportedOp(_) | ProtoError::Malformed { .. }) => {}
                        _ => {
                            // The host hung up. The command may have run
                            // before its pid was published: wait for one
                            // or the other, never leave it running.
                            let seq = std::sync::atomic::Ordering::SeqCst;
                            let mut group = group;
                            while group == 0 && !exited.load(seq) {
                                std::thread::sleep(std::time::Duration::from_millis(5));
                                group = pid.load(seq);
                            }
                            if group > 0 && !exited.load(seq) {
                                exec::kill_rest(group);
                            }
                            return;
                        }
                    }
                })
            };
            let publish = |p: i32| pid.store(p, std::sync::atomic::Ordering::SeqCst);
            // INVARIANT: marked before the Exit frame goes out, so a host
            // that hangs up right after reading it kills nothing.
            let exiting = || exited.store(true, std::sync::atomic::Ordering::SeqCst);
            let result = exec::handle(req, writer, Some(stdout), &publish, &exiting);
            exiting();
            let _ = watcher.join();
            result?;
        }
        Request::AttachOutput {
            token,
            stream: OutputStream::Stdout,
        } => {
            conn.send(&Message::Response(Response::Done))?;
            exec::attach_stdout(token, conn.into_inner().into_fd());
        }
        Request::AttachOutput {
            stream: OutputStream::Stderr,
            ..
        } => {
            conn.send(&Message::Error(RemoteError::new(
                ErrorCode::BadRequest,
                "only stdout can be attached; stderr travels as frames",
            )))?;
        }
        Request::KillGroup => {
            conn.send(&Message::Error(RemoteError::new(
                ErrorCode::BadRequest,
                "KillGroup is only valid after a direct-output exec",
            )))?;
        }
        Request::Exec(req) => {
            if req.argv.is_empty() {
                conn.send(&Message::Error(RemoteError::new(
                    ErrorCode::BadRequest,
                    "exec needs a non-empty argv",
                )))?;
            } else {
                exec::handle(req, writer, None, &|_| {}, &|| {})?;
            }
        }
        Request::Extract {
            dest,
            any_link_targets,
        } => {
            let mut reader = pyro_proto::DataReader::new(&mut conn);
            // A destination in the workspace is reached without following
            // symlinks, like every other file operation.
            let local = match files::extract_dest(&dest) {
                Ok(local) => local,
                Err(e) => {
                    let _ = reader.drain();
                    conn.send(&Message::Error(e))?;
                    return Ok(());
                }
            };
            let links = if any_link_targets {
                pyro_archive::LinkTargets::Any
            } else {
                pyro_archive::LinkTargets::Contained
            };
            let result = pyro_archive::unpack_with(&mut reader, &local, links);
            // Read the rest of the upload so the answer is not lost in it.
            let drained = reader.drain();
            let answer = match (result, drained) {
                (Ok(stats), Ok(())) => Message::Response(Response::Extracted {
                    entry_count: stats.entry_count,
                    bytes_written: stats.bytes,
                }),
                (Err(e), _) => {
                    Message::Error(RemoteError::new(ErrorCode::BadRequest, e.to_string()))
                }
                (Ok(_), Err(e)) => {
                    Message::Error(RemoteError::new(ErrorCode::Internal, e.to_string()))
                }
            };
            conn.send(&answer)?;
        }
        Request::ListFiles { path, recursive } => match files::list(&path, recursive) {
            Ok(entries) => {
                let mut batches = entries.chunks(files::LIST_BATCH).peekable();
                if batches.peek().is_none() {
                    conn.send(&Message::Response(Response::Entries {
                        entries: Vec::new(),
                        more: false,
                    }))?;
                }
                while let Some(batch) = batches.next() {
                    conn.send(&Message::Response(Response::Entries {
                        entries: batch.to_vec(),
                        more: batches.peek().is_some(),
                    }))?;
                }
            }
            Err(e) => conn.send(&Message::Error(e))?,
        },
        Request::ReadFile { path, max_bytes } => match files::open_for_read(&path) {
            Ok((file, size_bytes)) => {
                conn.send(&Message::Response(Response::FileHead { size_bytes }))?;
                let mut w = pyro_proto::DataWriter::new(&mut conn);
                std::io::copy(&mut file.take(max_bytes), &mut w)?;
                w.finish()?;
            }
            Err(e) => conn.send(&Message::Error(e))?,
        },
        Request::WriteFile {
            path,
            new_file_mode,
        } => {
            let mut reader = pyro_proto::DataReader::new(&mut conn);
            let result = files::write(&path, &mut reader, new_file_mode);
            let drained = reader.drain();
            let answer = match (result, drained) {
                (Ok((bytes_written, mode)), Ok(())) => Message::Response(Response::Written {
                    bytes_written,
                    mode,
                }),
                (Err(e), _) => Message::Error(e),
                (Ok(_), Err(e)) => {
                    Message::Error(RemoteError::new(ErrorCode::Internal, e.to_string()))
                }
            };
            conn.send(&answer)?;
        }
        Request::ApplyPatch { root } => {
            let mut reader = pyro_proto::DataReader::new(&mut conn);
            let result = patch::apply(&root, &mut reader);
            let drained = reader.drain();
            let answer = match (result, drained) {
                (Ok(files), Ok(())) => Message::Response(Response::Patched { files }),
                (Err(e), _) => Message::Error(e),
                (Ok(_), Err(e)) => {
                    Message::Error(RemoteError::new(ErrorCode::Internal, e.to_string()))
                }
            };
            conn.send(&answer)?;
        }
        Request::Archive { path } => match files::archive_kind(&path) {
            Ok((target, kind)) => {
                conn.send(&Message::Response(Response::ArchiveHead { kind }))?;
                let mut w = pyro_proto::DataWriter::new(&mut conn);
                match files::archive(&target, kind, &mut w) {
                    Ok((entry_count, bytes)) => {
                        w.finish()?;
                        conn.send(&Message::Response(Response::Archived {
                            entry_count,
                            bytes,
                        }))?;
                    }
                    // The host sees the stream end without its empty frame
                    // and an error instead.
                    Err(e) => {
                        drop(w);
                        conn.send(&Message::Error(RemoteError::new(
                            ErrorCode::Internal,
                            format!("archiving {path}: {e}"),
                        )))?;
                    }
                }
            }
            Err(e) => conn.send(&Message::Error(e))?,
        },
        Request::ServiceStart(req) => {
            let answer = match services::start(req) {
                Ok(service) => Message::Response(Response::Service { service }),
                Err(e) => Message::Error(e),
            };
            conn.send(&answer)?;
        }
        Request::ServiceList => {
            conn.send(&Message::Response(Response::Services {
                services: services::list(),
            }))?;
        }
        Request::ServiceStop { name } => {
            let answer = match services::stop(&name) {
                Ok(service) => Message::Response(Response::Service { service }),
                Err(e) => Message::Error(e),
            };
            conn.send(&answer)?;
        }
        Request::ServiceLogs { name, tail_lines } => {
            let answer = match services::logs(&name, tail_lines) {
                Ok((stdout, stderr, truncated)) => Message::Response(Response::ServiceLogs {
                    stdout,
                    stderr,
                    truncated,
                }),
                Err(e) => Message::Error(e),
            };
            conn.send(&answer)?;
        }
        Request::ShellOpen {
            shell_id,
            cwd,
            cols,
            rows,
            env,
        } => {
            let answer = match shells::open(shell_id, cwd, cols, rows, env) {
                Ok(shell) => Message::Response(Response::Shell { shell }),
                Err(e) => Message::Error(e),
            };
            conn.send(&answer)?;
        }
        Request::ShellRead {
            shell_id,
            cursor,
            max_bytes,
            idle_ms,
        } => {
            let answer = match shells::read(&shell_id, cursor, max_bytes, idle_ms) {
                Ok((shell, cursor, next_cursor, output, truncated)) => {
                    Message::Response(Response::ShellOutput {
                        shell,
                        cursor,
                        next_cursor,
                        output,
                        truncated,
                    })
                }
                Err(e) => Message::Error(e),
            };
            conn.send(&answer)?;
        }
        Request::ShellWrite { shell_id, input } => {
            let answer = match shells::write(&shell_id, &input) {
                Ok(shell) => Message::Response(Response::Shell { shell }),
                Err(e) => Message::Error(e),
            };
            conn.send(&answer)?;
        }
        Request::ShellSignal { shell_id, signal } => {
            let answer = match shells::signal(&shell_id, signal) {
                Ok(shell) => Message::Response(Response::Shell { shell }),
                Err(e) => Message::Error(e),
            };
            conn.send(&answer)?;
        }
        Request::ShellClose { shell_id } => {
            let answer = match shells::close(&shell_id) {
                Ok(shell) => Message::Response(Response::Shell { shell }),
                Err(e) => Message::Error(e),
            };
            conn.send(&answer)?;
        }
        Request::InstallSecret { name, value } => {
            let answer = match files::install_secret(&name, &value) {
                Ok(()) => Message::Response(Response::Done),
                Err(e) => Message::Error(e),
            };
            conn.send(&answer)?;
        }
        Request::SetIdentity {
            unix_time_ms,
            entropy_hex,
            machine_id,
            hostname,
        } => {
            let answer =
                match crate::identity::set(unix_time_ms, &entropy_hex, &machine_id, &hostname) {
                    Ok(()) => Message::Response(Response::Done),
                    Err(e) => Message::Error(e),
                };
            conn.send(&answer)?;
        }
        Request::TcpConnect { port } => match crate::relay::connect_local(port) {
            Ok(tcp) => {
                conn.send(&Message::Response(Response::Done))?;
                crate::relay::splice(conn.into_inner().into_fd(), tcp, crate::relay::Server::Tcp)?;
            }
            Err(e) => conn.send(&Message::Error(e))?,
        },
        Request::RawEcho => {
            conn.send(&Message::Response(Response::Done))?;
            raw_echo(conn.into_inner())?;
        }
        Request::RawSource { bytes } => {
            conn.send(&Message::Response(Response::Done))?;
            raw_source(conn.into_inner(), bytes)?;
        }
        Request::Shutdown => {
            // SAFETY: plain syscall.
            unsafe { libc::sync() };
            conn.send(&Message::Response(Response::Done))?;
            if std::process::id() == 1 {
                crate::init::power_off();
            }
        }
    }
    Ok(())
}

fn raw_echo<S: Read + Write>(mut stream: S) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

fn raw_source<S: Write>(mut stream: S, bytes: u64) -> std::io::Result<()> {
    let buf = vec![0u8; pyro_proto::OUTPUT_CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        stream.write_all(&buf[..n])?;
        left -= n as u64;
    }
    stream.flush()
}

/// Serves on a unix socket (host-side testing of the handler).
pub fn serve_unix(path: &str, features: Features) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    let features = Arc::new(features);
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                let features = features.clone();
                std::thread::spawn(move || handle_connection(s, &features));
            }
            Err(e) => {
                log!("accept failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
    Ok(())
}

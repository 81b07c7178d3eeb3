//! Host side of the file operations: list, read, write, patch and archive
//! on a running guest. Every transfer is streamed in `Data` frames, so
//! memory stays bounded whatever the size.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use pyro_proto::{
    Connection, DataReader, DataWriter, FileEntry, FileKind, Message, PatchedFile, RemoteError,
    Request, Response,
};

use crate::{VmHandle, VmmError};

/// Frames of an archive stream in flight between the reader thread and
/// the consumer (64 KiB each).
const ARCHIVE_QUEUE: usize = 32;

/// What the reader thread of an archive passes on.
enum Item {
    Data(Vec<u8>),
    End,
    Answer(Result<Response, VmmError>),
}

/// `Read` over the queue of an archive stream.
struct QueueReader<'a> {
    rx: &'a std::sync::mpsc::Receiver<Item>,
    chunk: Vec<u8>,
    pos: usize,
    end: bool,
    failed: Option<VmmError>,
}

impl Read for QueueReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.end {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Item::Data(b)) => {
                    self.chunk = b;
                    self.pos = 0;
                }
                Ok(Item::End) => self.end = true,
                Ok(Item::Answer(Err(e))) => {
                    let msg = e.to_string();
                    self.failed = Some(e);
                    return Err(std::io::Error::other(msg));
                }
                Ok(Item::Answer(Ok(r))) => {
                    let e = VmmError::Agent(format!("unexpected {r:?} in an archive stream"));
                    let msg = e.to_string();
                    self.failed = Some(e);
                    return Err(std::io::Error::other(msg));
                }
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the archive stream ended early",
                    ))
                }
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// What an archive held, as the agent counted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArchiveCounts {
    /// Entries archived.
    pub entry_count: u64,
    /// File bytes archived.
    pub bytes: u64,
}

impl VmHandle {
    /// Connects, checks the agent serves what `request` needs (an older
    /// agent is refused here exactly as it would refuse itself) and sends
    /// it.
    fn request(&self, request: Request) -> Result<Connection<UnixStream>, VmmError> {
        let mut conn = self.connect_with_hello().map(|(conn, hello)| {
            let missing = request
                .required_features()
                .iter()
                .find(|f| !hello.supports(f))
                .copied();
            (conn, missing)
        })?;
        if let Some(feature) = conn.1 {
            return Err(VmmError::Remote(RemoteError::unsupported(feature)));
        }
        conn.0
            .send(&Message::Request(request))
            .map_err(|e| self.lost_agent(e.to_string()))?;
        Ok(conn.0)
    }

    fn answer(&self, conn: &mut Connection<UnixStream>) -> Result<Response, VmmError> {
        match conn.expect() {
            Ok(Message::Response(r)) => Ok(r),
            Ok(Message::Error(e)) => Err(VmmError::Remote(e)),
            Ok(other) => Err(VmmError::Agent(format!(
                "unexpected {} answer",
                other.name()
            ))),
            Err(e) => Err(self.lost_agent(e.to_string())),
        }
    }

    /// Entries at `path` (see [`Request::ListFiles`]).
    pub fn list_files(&self, path: &str, recursive: bool) -> Result<Vec<FileEntry>, VmmError> {
        let mut conn = self.request(Request::ListFiles {
            path: path.to_string(),
            recursive,
        })?;
        let mut all = Vec::new();
        loop {
            match self.answer(&mut conn)? {
                Response::Entries { entries, more } => {
                    all.extend(entries);
                    if !more {
                        return Ok(all);
                    }
                }
                other => {
                    return Err(VmmError::Agent(format!(
                        "unexpected answer to a listing: {other:?}"
                    )))
                }
            }
        }
    }

    /// Up to `max_bytes` of the regular file `path`, and its full size.
    pub fn read_file(&self, path: &str, max_bytes: u64) -> Result<(u64, Vec<u8>), VmmError> {
        let mut conn = self.request(Request::ReadFile {
            path: path.to_string(),
            max_bytes,
        })?;
        let size = match self.answer(&mut conn)? {
            Response::FileHead { size_bytes } => size_bytes,
            other => {
                return Err(VmmError::Agent(format!(
                    "unexpected answer to a read: {other:?}"
                )))
            }
        };
        let mut content = Vec::with_capacity(size.min(max_bytes).min(1 << 20) as usize);
        let mut reader = DataReader::new(&mut conn);
        let got = (&mut reader).take(max_bytes).read_to_end(&mut content);
        if let Some(e) = reader.take_remote_error() {
            return Err(VmmError::Remote(e));
        }
        got.map_err(|e| self.lost_agent(e.to_string()))?;
        Ok((size, content))
    }

    /// Replaces (or creates) the file `path` with `data`, atomically in
    /// the guest. Returns the bytes written and the file's mode.
    pub fn write_file(
        &self,
        path: &str,
        data: &mut dyn Read,
        new_file_mode: u32,
    ) -> Result<(u64, u32), VmmError> {
        let mut conn = self.request(Request::WriteFile {
            path: path.to_string(),
            new_file_mode,
        })?;
        self.upload(&mut conn, &mut |w| std::io::copy(data, w).map(drop))?;
        match self.answer(&mut conn)? {
            Response::Written {
                bytes_written,
                mode,
            } => Ok((bytes_written, mode)),
            other => Err(VmmError::Agent(format!(
                "unexpected answer to a write: {other:?}"
            ))),
        }
    }

    /// Applies a unified diff under `root`, all or nothing.
    pub fn apply_patch(&self, root: &str, patch: &str) -> Result<Vec<PatchedFile>, VmmError> {
        let mut conn = self.request(Request::ApplyPatch {
            root: root.to_string(),
        })?;
        self.upload(&mut conn, &mut |w| w.write_all(patch.as_bytes()))?;
        match self.answer(&mut conn)? {
            Response::Patched { files } => Ok(files),
            other => Err(VmmError::Agent(format!(
                "unexpected answer to a patch: {other:?}"
            ))),
        }
    }

    /// Streams `path` as a tar archive into `consume`, which gets what the
    /// path is and the stream. When `consume` fails, the transfer is
    /// abandoned (the connection closed) and its error returned.
    pub fn archive<R, E: From<VmmError>>(
        &self,
        path: &str,
        consume: impl FnOnce(FileKind, &mut dyn Read) -> Result<R, E>,
    ) -> Result<(R, ArchiveCounts), E> {
        let mut conn = self.request(Request::Archive {
            path: path.to_string(),
        })?;
        let kind = match self.answer(&mut conn)? {
            Response::ArchiveHead { kind } => kind,
            other => {
                return Err(VmmError::Agent(format!(
                    "unexpected answer to an archive request: {other:?}"
                ))
                .into())
            }
        };
        // A reader thread keeps the socket drained while `consume` works
        // (unpacking on the host overlaps the guest's sending); the queue
        // is bounded, so memory stays flat.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Item>(ARCHIVE_QUEUE);
        let lost = self.clone();
        // To end the reader thread at once when the transfer is abandoned.
        let socket = conn
            .get_ref()
            .try_clone()
            .map_err(|e| self.lost_agent(e.to_string()))?;
        let abandon = move || {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        };
        let pump = std::thread::spawn(move || {
            let mut done = false;
            loop {
                let item = match conn.expect() {
                    Ok(Message::Data(b)) if b.is_empty() => {
                        done = true;
                        Item::End
                    }
                    Ok(Message::Data(b)) if !done => Item::Data(b),
                    Ok(Message::Response(r)) if done => Item::Answer(Ok(r)),
                    Ok(Message::Error(e)) => Item::Answer(Err(VmmError::Remote(e))),
                    Ok(other) => Item::Answer(Err(VmmError::Agent(format!(
                        "unexpected {} in an archive stream",
                        other.name()
                    )))),
                    Err(e) => Item::Answer(Err(lost.lost_agent(e.to_string()))),
                };
                let last = matches!(item, Item::Answer(_));
                if tx.send(item).is_err() || last {
                    return;
                }
            }
        });
        let mut reader = QueueReader {
            rx: &rx,
            chunk: Vec::new(),
            pos: 0,
            end: false,
            failed: None,
        };
        let result = consume(kind, &mut reader);
        if let Some(e) = reader.failed.take() {
            abandon();
            drop(reader);
            drop(rx);
            let _ = pump.join();
            return Err(e.into());
        }
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                // Abandon the transfer: the socket is shut, so the reader
                // thread's read fails and it ends.
                abandon();
                drop(reader);
                drop(rx);
                let _ = pump.join();
                return Err(e);
            }
        };
        // The consumer may stop at the tar's end marker; the rest is
        // padding, then the answer.
        let mut answer = None;
        while !reader.end || answer.is_none() {
            match reader.rx.recv() {
                Ok(Item::Data(_)) => {}
                Ok(Item::End) => reader.end = true,
                Ok(Item::Answer(a)) => {
                    answer = Some(a);
                    break;
                }
                Err(_) => break,
            }
        }
        let _ = pump.join();
        match answer {
            Some(Ok(Response::Archived { entry_count, bytes })) => {
                Ok((value, ArchiveCounts { entry_count, bytes }))
            }
            Some(Ok(other)) => Err(VmmError::Agent(format!(
                "unexpected answer after an archive: {other:?}"
            ))
            .into()),
            Some(Err(e)) => Err(e.into()),
            None => Err(self
                .lost_agent("the archive stream ended early".into())
                .into()),
        }
    }

    /// Starts a service and waits for its readiness (the agent's own
    /// timeout applies; the connection waits for it).
    pub fn service_start(
        &self,
        req: pyro_proto::ServiceStartRequest,
    ) -> Result<pyro_proto::ServiceStatus, VmmError> {
        let mut conn = self.request(Request::ServiceStart(req))?;
        match self.answer(&mut conn)? {
            Response::Service { service } => Ok(service),
            other => Err(VmmError::Agent(format!(
                "unexpected answer to a service start: {other:?}"
            ))),
        }
    }

    /// Every service the guest knows.
    pub fn service_list(&self) -> Result<Vec<pyro_proto::ServiceStatus>, VmmError> {
        let mut conn = self.request(Request::ServiceList)?;
        match self.answer(&mut conn)? {
            Response::Services { services } => Ok(services),
            other => Err(VmmError::Agent(format!(
                "unexpected answer to a service list: {other:?}"
            ))),
        }
    }

    /// Stops a service (TERM, then KILL).
    pub fn service_stop(&self, name: &str) -> Result<pyro_proto::ServiceStatus, VmmError> {
        let mut conn = self.request(Request::ServiceStop {
            name: name.to_string(),
        })?;
        match self.answer(&mut conn)? {
            Response::Service { service } => Ok(service),
            other => Err(VmmError::Agent(format!(
                "unexpected answer to a service stop: {other:?}"
            ))),
        }
    }

    /// The end of a service's output: (stdout, stderr, truncated).
    pub fn service_logs(
        &self,
        name: &str,
        tail_lines: Option<u64>,
    ) -> Result<(String, String, bool), VmmError> {
        let mut conn = self.request(Request::ServiceLogs {
            name: name.to_string(),
            tail_lines,
        })?;
        match self.answer(&mut conn)? {
            Response::ServiceLogs {
                stdout,
                stderr,
                truncated,
            } => Ok((stdout, stderr, truncated)),
            other => Err(VmmError::Agent(format!(
                "unexpected answer to service logs: {other:?}"
            ))),
        }
    }

    /// Sends a shell request and returns the agent's answer.
    pub fn shell_request(&self, request: Request) -> Result<Response, VmmError> {
        let mut conn = self.request(request)?;
        self.answer(&mut conn)
    }

    /// Gives the guest fresh randomness, the host's clock, a machine-id and
    /// a hostname (a guest resumed from a template has the template's).
    pub fn set_identity(
        &self,
        entropy: &[u8],
        machine_id: &str,
        hostname: &str,
    ) -> Result<(), VmmError> {
        let unix_time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut conn = self.request(Request::SetIdentity {
            unix_time_ms,
            entropy_hex: entropy.iter().map(|b| format!("{b:02x}")).collect(),
            machine_id: machine_id.to_string(),
            hostname: hostname.to_string(),
        })?;
        match self.answer(&mut conn)? {
            Response::Done => Ok(()),
            other => Err(VmmError::Agent(format!(
                "unexpected answer to an identity: {other:?}"
            ))),
        }
    }

    /// Installs a secret at /run/pyro-secrets/<name> in the guest.
    pub fn install_secret(&self, name: &str, value: &str) -> Result<(), VmmError> {
        let mut conn = self.request(Request::InstallSecret {
            name: name.to_string(),
            value: value.to_string(),
        })?;
        match self.answer(&mut conn)? {
            Response::Done => Ok(()),
            other => Err(VmmError::Agent(format!(
                "unexpected answer to a secret: {other:?}"
            ))),
        }
    }

    /// Sends an upload; when the agent refused early (and closed), its
    /// answer says why better than the broken pipe.
    fn upload(
        &self,
        conn: &mut Connection<UnixStream>,
        write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), VmmError> {
        let mut writer = DataWriter::new(conn);
        let written = write(&mut writer);
        let finished = writer.finish();
        if let Some(e) = written.err().or(finished.err()) {
            let _ = conn
                .get_ref()
                .set_read_timeout(Some(std::time::Duration::from_secs(5)));
            if let Ok(Message::Error(remote)) = conn.expect() {
                return Err(VmmError::Remote(remote));
            }
            return Err(VmmError::io("sending data to the guest")(e));
        }
        Ok(())
    }
}

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
        let mut reader = DataReader::new(&mut conn);
        let result = consume(kind, &mut reader);
        if let Some(e) = reader.take_remote_error() {
            return Err(VmmError::Remote(e).into());
        }
        let value = result?;
        // The consumer may stop at the tar's end marker; the rest is
        // padding.
        reader.drain().map_err(|e| self.lost_agent(e.to_string()))?;
        if let Some(e) = reader.take_remote_error() {
            return Err(VmmError::Remote(e).into());
        }
        match self.answer(&mut conn)? {
            Response::Archived { entry_count, bytes } => {
                Ok((value, ArchiveCounts { entry_count, bytes }))
            }
            other => Err(
                VmmError::Agent(format!("unexpected answer after an archive: {other:?}")).into(),
            ),
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

//! Streaming uploads: `Data` frames as `Write` on one side and `Read` on
//! the other, so archives pass through without being held in memory.

use std::io::{self, Read, Write};

use crate::{Connection, Message, ProtoError, OUTPUT_CHUNK};

/// Turns writes into `Data` frames of at most [`OUTPUT_CHUNK`] bytes.
/// [`DataWriter::finish`] sends the empty frame that ends the upload.
pub struct DataWriter<'a, S: Read + Write> {
    conn: &'a mut Connection<S>,
    buf: Vec<u8>,
    /// Bytes sent so far.
    pub sent: u64,
}

impl<'a, S: Read + Write> DataWriter<'a, S> {
    /// Starts an upload on `conn`.
    pub fn new(conn: &'a mut Connection<S>) -> Self {
        DataWriter {
            conn,
            buf: Vec::with_capacity(OUTPUT_CHUNK),
            sent: 0,
        }
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.buf);
        self.sent += chunk.len() as u64;
        self.conn
            .send(&Message::Data(chunk))
            .map_err(io::Error::other)
    }

    /// Sends what is buffered and the end marker.
    pub fn finish(mut self) -> io::Result<u64> {
        self.flush_buf()?;
        self.conn
            .send(&Message::Data(Vec::new()))
            .map_err(io::Error::other)?;
        Ok(self.sent)
    }
}

impl<S: Read + Write> Write for DataWriter<'_, S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(OUTPUT_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == OUTPUT_CHUNK {
            self.flush_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()
    }
}

/// Reads the payloads of `Data` frames until the empty one.
pub struct DataReader<'a, S: Read + Write> {
    conn: &'a mut Connection<S>,
    chunk: Vec<u8>,
    pos: usize,
    done: bool,
    remote: Option<crate::RemoteError>,
}

impl<'a, S: Read + Write> DataReader<'a, S> {
    /// Reads an upload from `conn`.
    pub fn new(conn: &'a mut Connection<S>) -> Self {
        DataReader {
            conn,
            chunk: Vec::new(),
            pos: 0,
            done: false,
            remote: None,
        }
    }

    /// The peer's `Error`, when it ended the stream with one instead of
    /// the empty `Data` frame (reads then fail).
    pub fn take_remote_error(&mut self) -> Option<crate::RemoteError> {
        self.remote.take()
    }

    /// Whether the stream ended properly (its empty `Data` frame arrived).
    pub fn finished(&self) -> bool {
        self.done
    }

    /// Consumes the rest of the upload (e.g. after an early error), so the
    /// connection is ready for the answer.
    pub fn drain(&mut self) -> io::Result<()> {
        let mut sink = [0u8; 8192];
        while self.read(&mut sink)? > 0 {}
        Ok(())
    }
}

impl<S: Read + Write> Read for DataReader<'_, S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            match self.conn.expect() {
                Ok(Message::Data(b)) if b.is_empty() => self.done = true,
                Ok(Message::Data(b)) => {
                    self.chunk = b;
                    self.pos = 0;
                }
                Ok(Message::Error(e)) => {
                    let err = io::Error::other(e.message.clone());
                    self.remote = Some(e);
                    return Err(err);
                }
                Ok(other) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        ProtoError::Unexpected(other.name()).to_string(),
                    ))
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string())),
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback "connection": writes go into a buffer that reads return.
    struct Loop(std::io::Cursor<Vec<u8>>);
    impl Read for Loop {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.0.read(b)
        }
    }
    impl Write for Loop {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let pos = self.0.position();
            self.0.get_mut().extend_from_slice(b);
            self.0.set_position(pos);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn upload_roundtrips_in_chunks() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut conn = Connection::new(Loop(std::io::Cursor::new(Vec::new())));
        let mut w = DataWriter::new(&mut conn);
        w.write_all(&data).unwrap();
        assert_eq!(w.finish().unwrap(), data.len() as u64);
        let mut got = Vec::new();
        DataReader::new(&mut conn).read_to_end(&mut got).unwrap();
        assert_eq!(got, data);
    }
}

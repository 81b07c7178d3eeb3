//! Length-prefixed frames: the only thing read from or written to a socket.

use std::io::{self, Read, Write};

use crate::ProtoError;

/// Bytes in a frame header: `u32` big-endian payload length, then the kind.
pub const HEADER_LEN: usize = 5;
/// Largest payload accepted. Output is chunked well below this.
pub const MAX_FRAME_PAYLOAD: usize = 1024 * 1024;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// JSON [`crate::Hello`].
    Hello = 0x01,
    /// JSON [`crate::Request`].
    Request = 0x02,
    /// JSON [`crate::Response`].
    Response = 0x03,
    /// Raw bytes of the command's stdout.
    Stdout = 0x10,
    /// Raw bytes of the command's stderr.
    Stderr = 0x11,
    /// Raw bytes of an upload (an archive); an empty one ends it.
    Data = 0x12,
    /// JSON [`crate::ExitInfo`]: the command finished.
    Exit = 0x20,
    /// JSON [`crate::RemoteError`].
    Error = 0x7f,
}

impl FrameKind {
    /// Parses a kind byte.
    pub fn from_byte(byte: u8) -> Result<Self, ProtoError> {
        Ok(match byte {
            0x01 => Self::Hello,
            0x02 => Self::Request,
            0x03 => Self::Response,
            0x10 => Self::Stdout,
            0x11 => Self::Stderr,
            0x12 => Self::Data,
            0x20 => Self::Exit,
            0x7f => Self::Error,
            other => return Err(ProtoError::UnknownKind(other)),
        })
    }
}

/// One frame as read from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload is.
    pub kind: FrameKind,
    /// The payload, at most [`MAX_FRAME_PAYLOAD`] bytes.
    pub payload: Vec<u8>,
}

/// Writes one frame with a single `write_all` of header and payload, so
/// frames from several threads sharing a locked writer never interleave.
pub fn write_frame<W: Write + ?Sized>(
    w: &mut W,
    kind: FrameKind,
    payload: &[u8],
) -> io::Result<()> {
    if payload.len() > MAX_FRAME_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame payload of {} bytes exceeds the limit", payload.len()),
        ));
    }
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.push(kind as u8);
    buf.extend_from_slice(payload);
    w.write_all(&buf)?;
    w.flush()
}

/// Reads one frame. `Ok(None)` means the peer closed cleanly between frames.
pub fn read_frame<R: Read + ?Sized>(r: &mut R) -> Result<Option<Frame>, ProtoError> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(r, &mut header)?;
    if got == 0 {
        return Ok(None);
    }
    if got < HEADER_LEN {
        return Err(ProtoError::Truncated {
            expected: HEADER_LEN,
            got,
        });
    }
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    // INVARIANT: the length is checked before anything is allocated for it.
    if len > MAX_FRAME_PAYLOAD {
        return Err(ProtoError::Oversized {
            len,
            max: MAX_FRAME_PAYLOAD,
        });
    }
    let kind = FrameKind::from_byte(header[4])?;
    let mut payload = vec![0u8; len];
    let got = read_full(r, &mut payload)?;
    if got < len {
        return Err(ProtoError::Truncated { expected: len, got });
    }
    Ok(Some(Frame { kind, payload }))
}

/// Reads until `buf` is full or EOF; returns how many bytes arrived.
fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, FrameKind::Stdout, b"hello").unwrap();
        let frame = read_frame(&mut buf.as_slice()).unwrap().unwrap();
        assert_eq!(frame.kind, FrameKind::Stdout);
        assert_eq!(frame.payload, b"hello");
    }

    #[test]
    fn clean_eof_is_none() {
        assert!(read_frame(&mut [].as_slice()).unwrap().is_none());
    }

    #[test]
    fn truncated_header() {
        let err = read_frame(&mut [0u8, 0, 0].as_slice()).unwrap_err();
        assert!(matches!(
            err,
            ProtoError::Truncated {
                expected: 5,
                got: 3
            }
        ));
    }

    #[test]
    fn truncated_payload() {
        let mut buf = Vec::new();
        write_frame(&mut buf, FrameKind::Stderr, b"0123456789").unwrap();
        buf.truncate(buf.len() - 4);
        let err = read_frame(&mut buf.as_slice()).unwrap_err();
        assert!(matches!(
            err,
            ProtoError::Truncated {
                expected: 10,
                got: 6
            }
        ));
    }

    #[test]
    fn oversized_is_refused_without_allocating() {
        let header = [0xff, 0xff, 0xff, 0xff, FrameKind::Stdout as u8];
        let err = read_frame(&mut header.as_slice()).unwrap_err();
        assert!(matches!(err, ProtoError::Oversized { .. }));
    }

    #[test]
    fn unknown_kind() {
        let header = [0, 0, 0, 0, 0x55];
        assert!(matches!(
            read_frame(&mut header.as_slice()).unwrap_err(),
            ProtoError::UnknownKind(0x55)
        ));
    }

    #[test]
    fn write_refuses_oversized() {
        let big = vec![0u8; MAX_FRAME_PAYLOAD + 1];
        assert!(write_frame(&mut Vec::new(), FrameKind::Stdout, &big).is_err());
    }
}

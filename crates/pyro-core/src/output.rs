//! Command output on its way to the caller: forwarded as it arrives and
//! kept up to a limit, so text mode streams in constant memory while JSON
//! results and the history get the bytes they need.

use pyro_vmm::OutputSink;

/// Forwards output and keeps at most `limit` bytes per stream.
pub(crate) struct Collector<'a> {
    forward: Option<&'a mut dyn OutputSink>,
    limit: usize,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(forward: Option<&'a mut dyn OutputSink>, limit: usize) -> Self {
        Collector {
            forward,
            limit,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// Kept output as text (invalid UTF-8 replaced).
    pub(crate) fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

fn keep(buf: &mut Vec<u8>, chunk: &[u8], limit: usize) {
    let room = limit.saturating_sub(buf.len());
    buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
}

impl OutputSink for Collector<'_> {
    fn stdout(&mut self, chunk: &[u8]) {
        if let Some(f) = self.forward.as_mut() {
            f.stdout(chunk);
        }
        keep(&mut self.stdout, chunk, self.limit);
    }
    fn stderr(&mut self, chunk: &[u8]) {
        if let Some(f) = self.forward.as_mut() {
            f.stderr(chunk);
        }
        keep(&mut self.stderr, chunk, self.limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_limit_and_forwards_everything() {
        struct Count(usize);
        impl OutputSink for Count {
            fn stdout(&mut self, c: &[u8]) {
                self.0 += c.len();
            }
            fn stderr(&mut self, c: &[u8]) {
                self.0 += c.len();
            }
        }
        let mut seen = Count(0);
        let mut c = Collector::new(Some(&mut seen), 5);
        c.stdout(b"abc");
        c.stdout(b"defg");
        c.stderr(b"xy");
        assert_eq!(c.stdout, b"abcde");
        assert_eq!(c.stderr, b"xy");
        drop(c);
        assert_eq!(seen.0, 9);
    }
}

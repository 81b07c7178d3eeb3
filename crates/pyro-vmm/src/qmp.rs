//! A small QMP client: what templates need (hot-unplug, stop, migrate to a
//! file, incoming migration, hot-plug) and nothing more.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::VmmError;

/// A QMP session in command mode.
pub(crate) struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: Vec<Value>,
}

fn qmp_err(what: &str, detail: impl std::fmt::Display) -> VmmError {
    VmmError::Template(format!("QMP {what}: {detail}"))
}

impl Qmp {
    /// Connects (waiting up to `limit` for QEMU to create the socket) and
    /// leaves the greeting behind.
    pub fn connect(path: &Path, limit: Duration) -> Result<Qmp, VmmError> {
        let deadline = Instant::now() + limit;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => return Err(qmp_err("connect", e)),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| qmp_err("connect", e))?;
        let writer = stream.try_clone().map_err(|e| qmp_err("connect", e))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            events: Vec::new(),
        };
        let greeting = qmp.read()?;
        if greeting.get("QMP").is_none() {
            return Err(qmp_err("greeting", greeting));
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn read(&mut self) -> Result<Value, VmmError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| qmp_err("read", e))?;
        if n == 0 {
            return Err(qmp_err("read", "QEMU closed the connection"));
        }
        serde_json::from_str(&line).map_err(|e| qmp_err("read", e))
    }

    /// Runs a command; its `return` value, or its error as a VmmError.
    pub fn execute(&mut self, name: &str, args: Value) -> Result<Value, VmmError> {
        let mut msg = json!({ "execute": name });
        if args.as_object().is_some_and(|o| !o.is_empty()) {
            msg["arguments"] = args;
        }
        let mut text = msg.to_string();
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .map_err(|e| qmp_err(name, e))?;
        loop {
            let reply = self.read()?;
            if reply.get("event").is_some() {
                self.events.push(reply);
                continue;
            }
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            let desc = reply["error"]["desc"].as_str().unwrap_or("unknown error");
            return Err(qmp_err(name, desc));
        }
    }

    /// Waits for an event (it may have arrived already).
    pub fn wait_event(&mut self, name: &str, limit: Duration) -> Result<Value, VmmError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(i) = self.events.iter().position(|e| e["event"] == name) {
                return Ok(self.events.remove(i));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(qmp_err(name, "timed out waiting for the event"));
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(|e| qmp_err(name, e))?;
            let msg = self.read()?;
            if msg.get("event").is_some() {
                self.events.push(msg);
            }
        }
    }

    /// Polls `query-migrate` until the migration completes or fails.
    pub fn wait_migration(&mut self, limit: Duration) -> Result<(), VmmError> {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.execute("query-migrate", json!({}))?;
            match status["status"].as_str() {
                Some("completed") => return Ok(()),
                Some("failed") | Some("cancelled") => {
                    let why = status["error-desc"].as_str().unwrap_or("no reason given");
                    return Err(qmp_err("migrate", why));
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(qmp_err("migrate", "did not complete in time"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

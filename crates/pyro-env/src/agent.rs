//! Checking the guest agent binary before it goes into an initramfs.
//!
//! The agent runs as `/init`, PID 1 of a guest whose initramfs holds no
//! shared libraries and no dynamic loader: a dynamically linked agent makes
//! the guest kernel panic. So before any initramfs is written the binary is
//! read once and its ELF header and program headers are parsed here (no
//! ELF library): it must be a 64-bit little-endian x86_64 executable
//! (`ET_EXEC`, or `ET_DYN` for static-pie) with at least one loadable
//! segment, no `PT_INTERP` (a dynamic loader) and no `DT_NEEDED` entry
//! (shared libraries) in its dynamic section.
//!
//! The bytes that were checked are the bytes that get hashed and embedded
//! ([`AgentBinary`] keeps them), so a binary replaced on disk between the
//! check and the write (a concurrent `cargo build`) can never slip in
//! unchecked or under another binary's hash.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::EnvError;

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SHDR_SIZE: usize = 64;
/// `e_phnum` value meaning "the count is in section header 0's `sh_info`".
const PN_XNUM: u16 = 0xffff;
/// The kernel refuses program header tables larger than this.
const MAX_PHDR_TABLE: usize = 65536;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;

/// How a checked agent is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentLinkage {
    /// `ET_EXEC` without a dynamic loader.
    Static,
    /// `ET_DYN` without a dynamic loader or shared libraries (what
    /// `-C target-feature=+crt-static` produces on the gnu target).
    StaticPie,
}

/// A guest agent binary that passed [`check_agent`], with the exact bytes
/// that were checked.
#[derive(Clone)]
pub struct AgentBinary {
    /// Where it was read from.
    pub path: PathBuf,
    /// Hex sha256 of its content.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// How it is linked.
    pub linkage: AgentLinkage,
    bytes: Arc<[u8]>,
}

impl AgentBinary {
    /// The checked content.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The first 16 hex digits of the sha256: the name of this agent's
    /// initramfs in each install.
    pub fn short_sha(&self) -> &str {
        &self.sha256[..16]
    }
}

impl fmt::Debug for AgentBinary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentBinary")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("size_bytes", &self.size_bytes)
            .field("linkage", &self.linkage)
            .finish_non_exhaustive()
    }
}

/// Reads `path` and checks that it can be PID 1 of a guest: a statically
/// linked (or static-pie) x86_64 ELF64 executable.
///
/// Errors: [`EnvError::AgentMissing`] when it cannot be read,
/// [`EnvError::AgentForeign`] when it is not an x86_64 ELF64 executable
/// (including a truncated or malformed one), [`EnvError::AgentNotStatic`]
/// when it asks for a dynamic loader or shared libraries.
pub fn check_agent(path: &Path) -> Result<AgentBinary, EnvError> {
    let bytes = read_agent(path)?;
    let linkage = match inspect(&bytes) {
        Ok(l) => l,
        Err(Problem::Foreign(reason)) => {
            return Err(EnvError::AgentForeign {
                path: path.to_path_buf(),
                reason,
            })
        }
        Err(Problem::Dynamic) => {
            return Err(EnvError::AgentNotStatic {
                path: path.to_path_buf(),
            })
        }
    };
    let sha256 = hex(&Sha256::digest(&bytes));
    Ok(AgentBinary {
        path: path.to_path_buf(),
        sha256,
        size_bytes: bytes.len() as u64,
        linkage,
        bytes: bytes.into(),
    })
}

/// Larger than any agent (a static release build is a few MiB, a debug
/// one some tens); guards against reading a device or a huge file whole.
const MAX_AGENT_BYTES: u64 = 1 << 30;

/// The file's content, read through one descriptor (so the type and size
/// checked are those of the file read).
fn read_agent(path: &Path) -> Result<Vec<u8>, EnvError> {
    let missing = |_| EnvError::AgentMissing(path.to_path_buf());
    let foreign = |reason: &str| EnvError::AgentForeign {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    // Non-blocking so a FIFO cannot hang the open; no effect on files.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(missing)?;
    let meta = file.metadata().map_err(missing)?;
    if !meta.is_file() {
        return Err(foreign("not a regular file"));
    }
    if meta.len() > MAX_AGENT_BYTES {
        return Err(foreign("larger than 1 GiB"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_AGENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(missing)?;
    if bytes.len() as u64 > MAX_AGENT_BYTES {
        return Err(foreign("larger than 1 GiB"));
    }
    Ok(bytes)
}

enum Problem {
    Foreign(String),
    Dynamic,
}

fn foreign<T>(reason: impl Into<String>) -> Result<T, Problem> {
    Err(Problem::Foreign(reason.into()))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// `len` bytes at file offset `off`, if the file holds them.
fn range(b: &[u8], off: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(off).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    b.get(start..end)
}

fn machine_name(machine: u16) -> String {
    match machine {
        3 => "x86 (32-bit)".into(),
        8 => "MIPS".into(),
        20 => "PowerPC".into(),
        21 => "PowerPC 64".into(),
        22 => "s390".into(),
        40 => "ARM".into(),
        183 => "AArch64".into(),
        243 => "RISC-V".into(),
        258 => "LoongArch".into(),
        other => format!("machine {other}"),
    }
}

fn inspect(b: &[u8]) -> Result<AgentLinkage, Problem> {
    if b.len() < 4 || &b[..4] != ELF_MAGIC {
        return foreign("not an ELF executable");
    }
    if b.len() < EHDR_SIZE {
        return foreign("truncated ELF header");
    }
    match b[4] {
        ELFCLASS64 => {}
        ELFCLASS32 => return foreign("32-bit ELF; a 64-bit x86_64 executable is needed"),
        c => return foreign(format!("unknown ELF class {c}")),
    }
    if b[5] != ELFDATA2LSB {
        return foreign("big-endian ELF; a little-endian x86_64 executable is needed");
    }
    // Inside the 64 bytes checked above.
    let field16 = |off| u16_at(b, off).unwrap_or_default();
    let e_type = field16(16);
    let e_machine = field16(18);
    if e_machine != EM_X86_64 {
        return foreign(format!("built for {}, not x86_64", machine_name(e_machine)));
    }
    let linkage = match e_type {
        ET_EXEC => AgentLinkage::Static,
        ET_DYN => AgentLinkage::StaticPie,
        1 => return foreign("a relocatable object file, not an executable"),
        4 => return foreign("a core dump, not an executable"),
        t => return foreign(format!("ELF type {t}, not an executable")),
    };
    let e_phoff = u64_at(b, 32).unwrap_or_default();
    let e_shoff = u64_at(b, 40).unwrap_or_default();
    let e_phentsize = field16(54);
    let mut phnum = usize::from(field16(56));
    if field16(56) == PN_XNUM {
        // The real count is in section header 0.
        if e_shoff == 0 {
            return foreign("program header count is in section headers the file lacks");
        }
        let sh0 = range(b, e_shoff, SHDR_SIZE as u64)
            .ok_or_else(|| Problem::Foreign("truncated section headers".into()))?;
        phnum = u32_at(sh0, 44).unwrap_or_default() as usize;
    }
    if phnum == 0 {
        return foreign("no program headers");
    }
    if usize::from(e_phentsize) != PHDR_SIZE {
        return foreign(format!(
            "program header size {e_phentsize}, expected {PHDR_SIZE}"
        ));
    }
    let table_len = phnum.saturating_mul(PHDR_SIZE);
    if table_len > MAX_PHDR_TABLE {
        return foreign(format!("{phnum} program headers is too many"));
    }
    let table = range(b, e_phoff, table_len as u64).ok_or_else(|| {
        Problem::Foreign("truncated: program headers lie outside the file".into())
    })?;
    let mut loads = 0;
    let mut dynamic = None;
    for ph in table.chunks_exact(PHDR_SIZE) {
        match u32_at(ph, 0).unwrap_or_default() {
            PT_INTERP => return Err(Problem::Dynamic),
            PT_LOAD => loads += 1,
            PT_DYNAMIC => {
                let off = u64_at(ph, 8).unwrap_or_default();
                let filesz = u64_at(ph, 32).unwrap_or_default();
                dynamic = Some((off, filesz));
            }
            _ => {}
        }
    }
    if loads == 0 {
        return foreign("no loadable segments");
    }
    if let Some((off, filesz)) = dynamic {
        // A static-pie has a dynamic section for its own relocations but
        // names no shared library.
        let section = range(b, off, filesz).ok_or_else(|| {
            Problem::Foreign("truncated: the dynamic section lies outside the file".into())
        })?;
        for entry in section.chunks_exact(16) {
            match u64_at(entry, 0).unwrap_or_default() {
                DT_NULL => break,
                DT_NEEDED => return Err(Problem::Dynamic),
                _ => {}
            }
        }
    }
    Ok(linkage)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal x86_64 ELF64 executable image: header, program headers
    /// (one `PT_LOAD`, plus whatever `extra` asks for), then `tail`.
    pub(crate) fn elf(e_type: u16, extra: &[(u32, u64, u64)], tail: &[u8]) -> Vec<u8> {
        let phnum = 1 + extra.len();
        let mut b = vec![0u8; EHDR_SIZE];
        b[..4].copy_from_slice(ELF_MAGIC);
        b[4] = ELFCLASS64;
        b[5] = ELFDATA2LSB;
        b[6] = 1; // EV_CURRENT
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[24..32].copy_from_slice(&0x401000u64.to_le_bytes()); // e_entry
        b[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes()); // e_phoff
        b[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
        b[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        b[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        let data_off = (EHDR_SIZE + phnum * PHDR_SIZE) as u64;
        let mut phdr = |p_type: u32, off: u64, size: u64| {
            let mut ph = vec![0u8; PHDR_SIZE];
            ph[..4].copy_from_slice(&p_type.to_le_bytes());
            ph[8..16].copy_from_slice(&off.to_le_bytes());
            ph[32..40].copy_from_slice(&size.to_le_bytes());
            ph[40..48].copy_from_slice(&size.to_le_bytes());
            b.extend_from_slice(&ph);
        };
        phdr(PT_LOAD, 0, data_off + tail.len() as u64);
        for &(t, off, size) in extra {
            phdr(t, off, size);
        }
        b.extend_from_slice(tail);
        b
    }

    /// A valid static executable whose content differs with `tail`.
    pub(crate) fn static_elf(tail: &[u8]) -> Vec<u8> {
        elf(ET_EXEC, &[], tail)
    }

    /// A dynamically linked one (asks for the x86_64 loader).
    pub(crate) fn dynamic_elf() -> Vec<u8> {
        let interp = b"/lib64/ld-linux-x86-64.so.2\0";
        let off = (EHDR_SIZE + 2 * PHDR_SIZE) as u64;
        elf(ET_DYN, &[(PT_INTERP, off, interp.len() as u64)], interp)
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn reason(err: EnvError) -> String {
        match err {
            EnvError::AgentForeign { reason, .. } => reason,
            other => panic!("expected AgentForeign, got {other:?}"),
        }
    }

    #[test]
    fn hand_made_static_elf_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "agent", &elf(ET_EXEC, &[], b"code"));
        let agent = check_agent(&path).unwrap();
        assert_eq!(agent.linkage, AgentLinkage::Static);
        assert_eq!(agent.path, path);
        assert_eq!(
            agent.sha256,
            crate::digest::sha256_file(&path).unwrap(),
            "the hash is of the file's content"
        );
        assert_eq!(agent.size_bytes, std::fs::metadata(&path).unwrap().len());
        assert_eq!(agent.bytes(), std::fs::read(&path).unwrap());
        assert_eq!(agent.short_sha(), &agent.sha256[..16]);
    }

    #[test]
    fn static_pie_with_a_dynamic_section_and_no_needed_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        // DT_RELA (7) then DT_NULL: what a static-pie's dynamic section has.
        let mut dynsec = Vec::new();
        for (tag, val) in [(7u64, 0x1000u64), (DT_NULL, 0)] {
            dynsec.extend_from_slice(&tag.to_le_bytes());
            dynsec.extend_from_slice(&val.to_le_bytes());
        }
        let off = (EHDR_SIZE + 2 * PHDR_SIZE) as u64;
        let bytes = elf(ET_DYN, &[(PT_DYNAMIC, off, dynsec.len() as u64)], &dynsec);
        let path = write(dir.path(), "agent", &bytes);
        assert_eq!(check_agent(&path).unwrap().linkage, AgentLinkage::StaticPie);
    }

    #[test]
    fn pt_interp_is_not_static() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "agent", &dynamic_elf());
        let err = check_agent(&path).unwrap_err();
        assert!(
            matches!(&err, EnvError::AgentNotStatic { path: p } if p == &path),
            "{err:?}"
        );
    }

    #[test]
    fn needed_libraries_without_interp_are_not_static() {
        let dir = tempfile::tempdir().unwrap();
        let mut dynsec = Vec::new();
        for (tag, val) in [(DT_NEEDED, 1u64), (DT_NULL, 0)] {
            dynsec.extend_from_slice(&tag.to_le_bytes());
            dynsec.extend_from_slice(&val.to_le_bytes());
        }
        let off = (EHDR_SIZE + 2 * PHDR_SIZE) as u64;
        let bytes = elf(ET_DYN, &[(PT_DYNAMIC, off, dynsec.len() as u64)], &dynsec);
        let path = write(dir.path(), "agent", &bytes);
        assert!(matches!(
            check_agent(&path),
            Err(EnvError::AgentNotStatic { .. })
        ));
    }

    #[test]
    fn system_true_is_dynamic() {
        let path = Path::new("/bin/true");
        if !path.is_file() {
            return;
        }
        let err = check_agent(path).unwrap_err();
        assert!(matches!(err, EnvError::AgentNotStatic { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("/bin/true"), "{msg}");
        assert!(msg.contains("dynamically linked"), "{msg}");
        assert!(!msg.contains('`'), "no CLI syntax in messages: {msg}");
        assert!(!msg.contains("--"), "no CLI syntax in messages: {msg}");
    }

    #[test]
    fn text_file_is_foreign() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "agent", b"#!/bin/sh\nexec true\n");
        let err = check_agent(&path).unwrap_err();
        let msg = err.to_string();
        assert_eq!(reason(err), "not an ELF executable");
        assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
        assert!(!msg.contains('`'), "{msg}");
        // Empty files too.
        let path = write(dir.path(), "empty", b"");
        assert_eq!(
            reason(check_agent(&path).unwrap_err()),
            "not an ELF executable"
        );
    }

    #[test]
    fn truncated_elf_is_foreign_at_every_length() {
        let dir = tempfile::tempdir().unwrap();
        let full = elf(ET_EXEC, &[], b"");
        // Every prefix that cuts into the header or the program headers.
        for len in 4..full.len() {
            let path = write(dir.path(), "agent", &full[..len]);
            let err = check_agent(&path).unwrap_err();
            assert!(reason(err).contains("truncated"), "len {len}");
        }
        // The real agent cut short, when it is built.
        if let Some(agent) = real_agent() {
            let bytes = std::fs::read(agent).unwrap();
            let path = write(dir.path(), "agent", &bytes[..200.min(bytes.len())]);
            assert!(matches!(
                check_agent(&path),
                Err(EnvError::AgentForeign { .. })
            ));
        }
    }

    #[test]
    fn malformed_headers_are_foreign_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let base = elf(ET_EXEC, &[], b"x");
        type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|b| b[4] = ELFCLASS32), "32-bit"),
            (Box::new(|b| b[5] = 2), "big-endian"),
            (
                Box::new(|b| b[18..20].copy_from_slice(&183u16.to_le_bytes())),
                "AArch64",
            ),
            (
                Box::new(|b| b[16..18].copy_from_slice(&1u16.to_le_bytes())),
                "relocatable",
            ),
            (
                Box::new(|b| b[56..58].copy_from_slice(&0u16.to_le_bytes())),
                "no program headers",
            ),
            (
                Box::new(|b| b[54..56].copy_from_slice(&32u16.to_le_bytes())),
                "program header size",
            ),
            (
                Box::new(|b| b[32..40].copy_from_slice(&u64::MAX.to_le_bytes())),
                "truncated",
            ),
            (
                Box::new(|b| b[56..58].copy_from_slice(&2000u16.to_le_bytes())),
                "too many",
            ),
            // PN_XNUM with no section headers, or ones outside the file.
            (
                Box::new(|b| b[56..58].copy_from_slice(&PN_XNUM.to_le_bytes())),
                "section headers",
            ),
            (
                Box::new(|b| {
                    b[56..58].copy_from_slice(&PN_XNUM.to_le_bytes());
                    b[40..48].copy_from_slice(&4096u64.to_le_bytes());
                }),
                "truncated section headers",
            ),
            // The only program header is not PT_LOAD.
            (
                Box::new(|b| b[EHDR_SIZE..EHDR_SIZE + 4].copy_from_slice(&6u32.to_le_bytes())),
                "no loadable",
            ),
        ];
        for (i, (mutate, want)) in cases.iter().enumerate() {
            let mut bytes = base.clone();
            mutate(&mut bytes);
            let path = write(dir.path(), &format!("agent{i}"), &bytes);
            let got = reason(check_agent(&path).unwrap_err());
            assert!(got.contains(want), "case {i}: {got:?} lacks {want:?}");
        }
    }

    #[test]
    fn dynamic_section_outside_the_file_is_foreign() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = elf(ET_DYN, &[(PT_DYNAMIC, 1 << 40, 16)], b"");
        let path = write(dir.path(), "agent", &bytes);
        assert!(reason(check_agent(&path).unwrap_err()).contains("dynamic section"));
    }

    #[test]
    fn missing_or_unreadable_is_agent_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope");
        assert!(matches!(check_agent(&path), Err(EnvError::AgentMissing(p)) if p == path));
        // Unreadable (when not root, who reads anything).
        let locked = dir.path().join("locked");
        std::fs::write(&locked, static_elf(b"x")).unwrap();
        std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .unwrap();
        if std::fs::read(&locked).is_err() {
            assert!(matches!(
                check_agent(&locked),
                Err(EnvError::AgentMissing(_))
            ));
        }
    }

    #[test]
    fn directories_and_devices_are_foreign_and_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        for path in [dir.path(), Path::new("/dev/zero"), &fifo] {
            if !path.exists() {
                continue;
            }
            assert_eq!(reason(check_agent(path).unwrap_err()), "not a regular file");
        }
    }

    /// The static agent `make agent` builds, when present.
    pub(crate) fn real_agent() -> Option<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2)?;
        let path = root.join("target/x86_64-unknown-linux-gnu/release/pyro-agent");
        path.is_file().then_some(path)
    }

    #[test]
    fn real_static_agent_is_accepted() {
        let Some(path) = real_agent() else {
            eprintln!("skipped: no static agent built");
            return;
        };
        let agent = check_agent(&path).unwrap();
        assert_eq!(agent.sha256, crate::digest::sha256_file(&path).unwrap());
    }

    /// Agrees with binutils' readelf on the host's own binaries (Debian's
    /// ldconfig is static-pie, /bin/true is dynamic), when readelf exists.
    #[test]
    fn agrees_with_readelf_on_host_binaries() {
        for candidate in ["/sbin/ldconfig", "/bin/true", "/bin/sh", "/usr/bin/env"] {
            let path = Path::new(candidate);
            if !path.is_file() {
                continue;
            }
            let Ok(out) = std::process::Command::new("readelf")
                .args(["-ldW"])
                .arg(path)
                .output()
            else {
                return;
            };
            let text = String::from_utf8_lossy(&out.stdout);
            let dynamic = text.contains("INTERP") || text.contains("(NEEDED)");
            match check_agent(path) {
                Ok(_) => assert!(!dynamic, "{candidate} accepted but readelf says:\n{text}"),
                Err(EnvError::AgentNotStatic { .. }) => {
                    assert!(dynamic, "{candidate} refused but readelf says:\n{text}")
                }
                Err(e) => panic!("{candidate}: {e}"),
            }
        }
    }
}

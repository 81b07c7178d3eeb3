//! The file operations of the real agent binary, serving on a unix socket
//! with a temporary directory playing `/workspace`
//! (`--workspace-root`): list, read, write, patch and archive, without a
//! guest. (The guest tests in pyro-cli cover the same paths over vsock.)

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Component, Path, PathBuf};

use common::Agent;
use pyro_proto::{
    Connection, DataReader, DataWriter, ErrorCode, FileEntry, FileKind, Message, PatchStatus,
    PatchedFile, RemoteError, Request, Response,
};

/// An agent serving `/workspace` from `root`, and a directory `outside`
/// beside it that no request may reach.
struct Ws {
    agent: Agent,
    root: PathBuf,
    outside: PathBuf,
    _dir: tempfile::TempDir,
}

impl Ws {
    fn new() -> Ws {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        let outside = dir.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        let agent = Agent::start_with(&["--workspace-root", root.to_str().unwrap()]);
        Ws {
            agent,
            root,
            outside,
            _dir: dir,
        }
    }

    fn send(&self, request: Request) -> Connection<UnixStream> {
        let mut conn = self.agent.connect();
        conn.send(&Message::Request(request)).unwrap();
        conn
    }

    fn list(&self, path: &str, recursive: bool) -> Result<Vec<FileEntry>, RemoteError> {
        self.list_frames(path, recursive).map(|f| f.concat())
    }

    /// The entries of each `Entries` frame.
    fn list_frames(&self, path: &str, recursive: bool) -> Result<Vec<Vec<FileEntry>>, RemoteError> {
        let mut conn = self.send(Request::ListFiles {
            path: path.into(),
            recursive,
        });
        let mut frames = Vec::new();
        loop {
            match answer(&mut conn)? {
                Response::Entries { entries, more } => {
                    frames.push(entries);
                    if !more {
                        return Ok(frames);
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn read(&self, path: &str, max_bytes: u64) -> Result<(u64, Vec<u8>), RemoteError> {
        let mut conn = self.send(Request::ReadFile {
            path: path.into(),
            max_bytes,
        });
        let size = match answer(&mut conn)? {
            Response::FileHead { size_bytes } => size_bytes,
            other => panic!("unexpected {other:?}"),
        };
        let mut data = Vec::new();
        let mut reader = DataReader::new(&mut conn);
        reader.read_to_end(&mut data).unwrap();
        assert!(reader.finished());
        Ok((size, data))
    }

    /// Sends `data` as the upload of `request` and returns the answer.
    fn upload(&self, request: Request, data: &[u8]) -> Result<Response, RemoteError> {
        let mut conn = self.send(request);
        let mut w = DataWriter::new(&mut conn);
        w.write_all(data).unwrap();
        w.finish().unwrap();
        answer(&mut conn)
    }

    fn write(
        &self,
        path: &str,
        data: &[u8],
        new_file_mode: u32,
    ) -> Result<(u64, u32), RemoteError> {
        match self.upload(
            Request::WriteFile {
                path: path.into(),
                new_file_mode,
            },
            data,
        )? {
            Response::Written {
                bytes_written,
                mode,
            } => Ok((bytes_written, mode)),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn patch_at(&self, root: &str, patch: &[u8]) -> Result<Vec<PatchedFile>, RemoteError> {
        match self.upload(Request::ApplyPatch { root: root.into() }, patch)? {
            Response::Patched { files } => Ok(files),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn patch(&self, patch: &str) -> Result<Vec<PatchedFile>, RemoteError> {
        self.patch_at("/workspace", patch.as_bytes())
    }

    /// What `path` is, the tar stream, and the agent's counts.
    fn archive(&self, path: &str) -> Result<(FileKind, Vec<u8>, u64, u64), RemoteError> {
        let mut conn = self.send(Request::Archive { path: path.into() });
        let kind = match answer(&mut conn)? {
            Response::ArchiveHead { kind } => kind,
            other => panic!("unexpected {other:?}"),
        };
        let mut tar = Vec::new();
        let mut reader = DataReader::new(&mut conn);
        reader.read_to_end(&mut tar).unwrap();
        assert!(reader.finished());
        match answer(&mut conn)? {
            Response::Archived { entry_count, bytes } => Ok((kind, tar, entry_count, bytes)),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Everything under the root and outside: path → (kind, mode,
    /// content or link target). Staged files and new directories show up
    /// here.
    fn tree(&self) -> BTreeMap<String, (char, u32, Vec<u8>)> {
        let mut out = BTreeMap::new();
        let base = self.root.parent().unwrap().to_path_buf();
        walk(&base, &base, &mut out);
        out
    }
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (char, u32, Vec<u8>)>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
        let mode = m.mode() & 0o7777;
        if m.file_type().is_symlink() {
            let t = fs::read_link(&p).unwrap();
            out.insert(rel, ('l', 0, t.to_string_lossy().as_bytes().to_vec()));
        } else if m.is_dir() {
            out.insert(rel, ('d', mode, Vec::new()));
            walk(base, &p, out);
        } else if m.is_file() {
            out.insert(rel, ('f', mode, fs::read(&p).unwrap()));
        } else {
            out.insert(rel, ('o', mode, Vec::new()));
        }
    }
}

fn answer(conn: &mut Connection<UnixStream>) -> Result<Response, RemoteError> {
    match conn.expect().unwrap() {
        Message::Response(r) => Ok(r),
        Message::Error(e) => Err(e),
        other => panic!("unexpected {other:?}"),
    }
}

#[track_caller]
fn bad_request<T: std::fmt::Debug>(r: Result<T, RemoteError>) -> String {
    match r {
        Err(e) if e.code == ErrorCode::BadRequest => e.message,
        other => panic!("expected bad_request, got {other:?}"),
    }
}

#[track_caller]
fn not_found<T: std::fmt::Debug>(r: Result<T, RemoteError>) -> String {
    match r {
        Err(e) if e.code == ErrorCode::NotFound => e.message,
        other => panic!("expected not_found, got {other:?}"),
    }
}

fn write_mode(path: &Path, data: &str, mode: u32) {
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn numbered(n: usize) -> String {
    (1..=n).map(|i| format!("line {i}\n")).collect()
}

/// Names in `dir` that look like staged writes (`.NAME.pyro-PID-SEQ`).
fn staged_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".pyro-"))
        .collect()
}

/// A symlinked parent is never followed, whether it points outside with
/// an absolute target, climbs with `..`, or sits deeper in the tree; the
/// outside files stay exactly as they were.
#[test]
fn symlinked_parents_are_refused_and_the_outside_is_untouched() {
    let ws = Ws::new();
    write_mode(&ws.outside.join("secret.txt"), "secret\n", 0o600);
    std::os::unix::fs::symlink(&ws.outside, ws.root.join("out")).unwrap();
    std::os::unix::fs::symlink("../outside", ws.root.join("rel-out")).unwrap();
    fs::create_dir(ws.root.join("real")).unwrap();
    std::os::unix::fs::symlink("../../outside", ws.root.join("real/inner")).unwrap();
    std::os::unix::fs::symlink(ws.outside.join("secret.txt"), ws.root.join("direct")).unwrap();
    let before = ws.tree();

    for parent in ["out", "rel-out", "real/inner"] {
        let secret = format!("/workspace/{parent}/secret.txt");
        let msg = bad_request(ws.read(&secret, 100));
        assert!(msg.contains("symlink"), "{msg}");
        bad_request(ws.write(&secret, b"pwned\n", 0o644));
        bad_request(ws.write(&format!("/workspace/{parent}/new.txt"), b"x", 0o644));
        bad_request(ws.write(&format!("/workspace/{parent}/deeper/new.txt"), b"x", 0o644));
        bad_request(ws.list(&format!("/workspace/{parent}/secret.txt"), false));
        bad_request(ws.archive(&secret));
        bad_request(ws.patch(&format!(
            "--- a/{parent}/secret.txt\n+++ b/{parent}/secret.txt\n@@ -1 +1 @@\n-secret\n+pwned\n"
        )));
        bad_request(ws.patch(&format!(
            "--- /dev/null\n+++ b/{parent}/planted.txt\n@@ -0,0 +1 @@\n+x\n"
        )));
        // The symlink itself lists as a symlink; nothing behind it shows.
        let listed = ws.list(&format!("/workspace/{parent}"), true).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].kind, FileKind::Symlink);
        assert_eq!(listed[0].path, format!("/workspace/{parent}"));
    }

    // A path that is itself a symlink is neither read nor written through.
    bad_request(ws.read("/workspace/direct", 100));
    let msg = bad_request(ws.write("/workspace/direct", b"pwned\n", 0o644));
    assert!(msg.contains("symlink"), "{msg}");
    bad_request(ws.patch("--- a/direct\n+++ b/direct\n@@ -1 +1 @@\n-secret\n+pwned\n"));
    let all = ws.list("/workspace", true).unwrap();
    let names: Vec<&str> = all.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        names,
        [
            "/workspace/direct",
            "/workspace/out",
            "/workspace/real",
            "/workspace/real/inner",
            "/workspace/rel-out",
        ]
    );
    assert_eq!(
        all[0].link_target.as_deref(),
        Some(ws.outside.join("secret.txt").to_str().unwrap())
    );

    assert_eq!(ws.tree(), before, "nothing changed, inside or outside");
}

/// A write goes to a new file renamed over the old one: readers see the
/// old or the new content, never a mix; the file keeps its mode and owner.
#[test]
fn writes_replace_atomically_keeping_mode_and_owner() {
    let ws = Ws::new();
    let tool = ws.root.join("tool.sh");
    write_mode(&tool, "old\n", 0o750);
    // SAFETY: plain syscall.
    let root_user = unsafe { libc::geteuid() } == 0;
    if root_user {
        std::os::unix::fs::chown(&tool, Some(4321), Some(8765)).unwrap();
    }
    let old_meta = fs::metadata(&tool).unwrap();
    let mut old_handle = fs::File::open(&tool).unwrap();

    let (written, mode) = ws
        .write("/workspace/tool.sh", b"new content\n", 0o644)
        .unwrap();
    assert_eq!((written, mode), (12, 0o750));
    let meta = fs::metadata(&tool).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o750);
    assert_eq!((meta.uid(), meta.gid()), (old_meta.uid(), old_meta.gid()));
    if root_user {
        assert_eq!((meta.uid(), meta.gid()), (4321, 8765));
    }
    assert_ne!(meta.ino(), old_meta.ino(), "replaced, not written in place");
    assert_eq!(fs::read_to_string(&tool).unwrap(), "new content\n");
    let mut old = String::new();
    old_handle.read_to_string(&mut old).unwrap();
    assert_eq!(old, "old\n", "the old file was never modified");
    assert_eq!(staged_in(&ws.root), Vec::<String>::new());

    // New files get new_file_mode; missing parents are created 0755.
    let (written, mode) = ws.write("/workspace/a/b/c.txt", b"c", 0o600).unwrap();
    assert_eq!((written, mode), (1, 0o600));
    assert_eq!(
        fs::metadata(ws.root.join("a/b/c.txt")).unwrap().mode() & 0o7777,
        0o600
    );
    for d in ["a", "a/b"] {
        let m = fs::symlink_metadata(ws.root.join(d)).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.mode() & 0o7777, 0o755, "{d}");
    }
    assert_eq!(
        ws.write("/workspace/empty.txt", b"", 0o644).unwrap(),
        (0, 0o644)
    );
    assert_eq!(fs::read(ws.root.join("empty.txt")).unwrap(), b"");

    // Not the root, not a directory, not under a file.
    bad_request(ws.write("/workspace", b"x", 0o644));
    bad_request(ws.write("/workspace/a", b"x", 0o644));
    assert!(ws.root.join("a/b/c.txt").is_file());
    bad_request(ws.write("/workspace/tool.sh/x", b"x", 0o644));

    // Several data frames, read concurrently from the side: always one
    // whole version.
    const N: usize = 300 * 1024;
    let big = ws.root.join("big.txt");
    fs::write(&big, vec![b'a'; N]).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (big, stop) = (big.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let data = fs::read(&big).unwrap();
                assert_eq!(data.len(), N, "a partial file was visible");
                assert!(
                    data.iter().all(|&b| b == data[0]),
                    "a mixed file was visible"
                );
                reads += 1;
            }
            reads
        })
    };
    for i in 0..12 {
        let byte = if i % 2 == 0 { b'b' } else { b'a' };
        let (written, _) = ws
            .write("/workspace/big.txt", &vec![byte; N], 0o644)
            .unwrap();
        assert_eq!(written, N as u64);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(fs::read(&big).unwrap(), vec![b'a'; N]);
    assert_eq!(staged_in(&ws.root), Vec::<String>::new());
}

/// Every file's new content is computed before anything is replaced: a
/// hunk that does not apply, or a file that cannot be staged, leaves the
/// tree exactly as it was.
#[test]
fn a_patch_applies_whole_or_not_at_all() {
    let ws = Ws::new();
    write_mode(&ws.root.join("one.txt"), "1\n2\n3\n", 0o600);
    fs::write(ws.root.join("two.txt"), numbered(20)).unwrap();
    fs::write(ws.root.join("gone.txt"), "bye\n").unwrap();
    fs::write(ws.root.join("bin.dat"), b"a\0b\n").unwrap();
    std::os::unix::fs::symlink(&ws.outside, ws.root.join("out")).unwrap();
    let before = ws.tree();

    let one = "--- a/one.txt\n+++ b/one.txt\n@@ -1,3 +1,3 @@\n 1\n-2\n+TWO\n 3\n";
    let add = "--- /dev/null\n+++ b/newdir/sub/three.txt\n@@ -0,0 +1,2 @@\n+3a\n+3b\n";
    let gone = "--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n";
    let two_hunk1 =
        "--- a/two.txt\n+++ b/two.txt\n@@ -2,3 +2,3 @@\n line 2\n-line 3\n+LINE 3\n line 4\n";
    let two_bad_hunk2 = "@@ -15,3 +15,3 @@\n line 15\n-line 16 was changed\n+LINE 16\n line 17\n";
    let two_good_hunk2 = "@@ -15,3 +15,3 @@\n line 15\n-line 16\n+LINE 16\n line 17\n";

    let msg = bad_request(ws.patch(&format!("{one}{add}{gone}{two_hunk1}{two_bad_hunk2}")));
    assert!(msg.contains("hunk 2 of two.txt"), "{msg}");
    assert_eq!(ws.tree(), before, "a failed patch changed something");

    // The second file would be staged under a symlink: refused before the
    // first is replaced.
    bad_request(ws.patch(&format!(
        "{one}--- /dev/null\n+++ b/out/x.txt\n@@ -0,0 +1 @@\n+x\n"
    )));
    // A file that is not text; a path that climbs; not UTF-8; not a patch.
    bad_request(ws.patch(&format!(
        "{one}--- a/bin.dat\n+++ b/bin.dat\n@@ -1 +1 @@\n-a\n+b\n"
    )));
    bad_request(ws.patch(&format!(
        "{one}--- a/../x\n+++ b/../x\n@@ -1 +1 @@\n-a\n+b\n"
    )));
    bad_request(ws.patch_at(
        "/workspace",
        b"--- a/one.txt\n+++ b/one.txt\n@@ -1 +1 @@\n-\xff\n+x\n",
    ));
    bad_request(ws.patch("not a patch\n"));
    bad_request(ws.patch(""));
    // Patches apply under /workspace only.
    for root in ["/etc", "/workspace/..", "/", "/workspace/newdir"] {
        bad_request(ws.patch_at(root, one.as_bytes()));
    }
    assert_eq!(ws.tree(), before, "a refused patch changed something");

    let files = ws
        .patch(&format!("{one}{add}{gone}{two_hunk1}{two_good_hunk2}"))
        .unwrap();
    let got: Vec<(&str, PatchStatus)> = files.iter().map(|f| (f.path.as_str(), f.status)).collect();
    assert_eq!(
        got,
        [
            ("/workspace/gone.txt", PatchStatus::Deleted),
            ("/workspace/newdir/sub/three.txt", PatchStatus::Added),
            ("/workspace/one.txt", PatchStatus::Modified),
            ("/workspace/two.txt", PatchStatus::Modified),
        ]
    );
    assert_eq!(
        fs::read_to_string(ws.root.join("one.txt")).unwrap(),
        "1\nTWO\n3\n"
    );
    assert_eq!(
        fs::metadata(ws.root.join("one.txt")).unwrap().mode() & 0o7777,
        0o600,
        "a patched file keeps its mode"
    );
    assert_eq!(
        fs::read_to_string(ws.root.join("two.txt")).unwrap(),
        numbered(20)
            .replace("line 3\n", "LINE 3\n")
            .replace("line 16\n", "LINE 16\n")
    );
    let three = ws.root.join("newdir/sub/three.txt");
    assert_eq!(fs::read_to_string(&three).unwrap(), "3a\n3b\n");
    assert_eq!(fs::metadata(&three).unwrap().mode() & 0o7777, 0o644);
    assert!(!ws.root.join("gone.txt").exists());
    for dir in [&ws.root, &ws.root.join("newdir/sub")] {
        assert_eq!(staged_in(dir), Vec::<String>::new());
    }
    assert_eq!(fs::read_dir(&ws.outside).unwrap().count(), 0);
}

/// A directory streams as a tar of relative entries; symlinks are kept as
/// symlinks (whatever they point at), never followed; special files are
/// left out.
#[test]
fn archives_are_relative_and_keep_symlinks() {
    let ws = Ws::new();
    let dir = ws.root.join("dir");
    fs::create_dir_all(dir.join("sub/empty")).unwrap();
    fs::write(dir.join("a.txt"), "aaa").unwrap();
    write_mode(&dir.join("sub/b.txt"), "bb", 0o755);
    std::os::unix::fs::symlink("a.txt", dir.join("rel")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("abs")).unwrap();
    std::os::unix::fs::symlink("../..", dir.join("up")).unwrap();
    let fifo = std::ffi::CString::new(dir.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);

    let (kind, tar, count, bytes) = ws.archive("/workspace/dir").unwrap();
    assert_eq!(kind, FileKind::Directory);
    let mut seen = BTreeMap::new();
    for e in tar::Archive::new(tar.as_slice()).entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().into_owned();
        assert!(
            path.components().all(|c| matches!(c, Component::Normal(_))),
            "entry {path:?} is not a plain relative path"
        );
        let kind = e.header().entry_type();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let mode = e.header().mode().unwrap() & 0o777;
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        seen.insert(
            path.to_string_lossy().into_owned(),
            (kind, link, mode, data),
        );
    }
    let names: Vec<&str> = seen.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["a.txt", "abs", "rel", "sub", "sub/b.txt", "sub/empty", "up"]
    );
    assert_eq!((count, bytes), (7, 5));
    assert_eq!(seen["a.txt"].0, tar::EntryType::Regular);
    assert_eq!(seen["a.txt"].3, b"aaa");
    assert_eq!(seen["sub/b.txt"].2, 0o755);
    assert_eq!(seen["sub"].0, tar::EntryType::Directory);
    for (name, target) in [("rel", "a.txt"), ("abs", "/etc/passwd"), ("up", "../..")] {
        let (kind, link, _, data) = &seen[name];
        assert_eq!(*kind, tar::EntryType::Symlink, "{name}");
        assert_eq!(link.as_deref(), Some(target), "{name}");
        assert!(data.is_empty(), "{name} was followed");
    }

    // A file or a symlink is one entry named after it.
    let (kind, tar, count, bytes) = ws.archive("/workspace/dir/a.txt").unwrap();
    assert_eq!((kind, count, bytes), (FileKind::File, 1, 3));
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut entries = archive.entries().unwrap();
    let mut e = entries.next().unwrap().unwrap();
    assert_eq!(e.path().unwrap(), Path::new("a.txt"));
    let mut data = String::new();
    e.read_to_string(&mut data).unwrap();
    assert_eq!(data, "aaa");
    drop(e);
    assert!(entries.next().is_none());

    let (kind, tar, count, _) = ws.archive("/workspace/dir/abs").unwrap();
    assert_eq!((kind, count), (FileKind::Symlink, 1));
    let mut archive = tar::Archive::new(tar.as_slice());
    let e = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(e.path().unwrap(), Path::new("abs"));
    assert_eq!(e.header().entry_type(), tar::EntryType::Symlink);
    assert_eq!(e.size(), 0);

    // The whole workspace: paths relative to it.
    let (_, tar, _, _) = ws.archive("/workspace").unwrap();
    let mut archive = tar::Archive::new(tar.as_slice());
    let whole: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(whole.contains(&"dir/a.txt".to_string()), "{whole:?}");
    assert!(whole.iter().all(|p| !p.starts_with('/')), "{whole:?}");
    assert!(!whole.iter().any(|p| p.ends_with("fifo")), "{whole:?}");

    bad_request(ws.archive("/workspace/dir/fifo"));
    not_found(ws.archive("/workspace/dir/missing"));
}

/// Requests carry absolute, normalized paths under /workspace; anything
/// else is a bad request, whatever the operation.
#[test]
fn paths_outside_the_workspace_are_bad_requests() {
    let ws = Ws::new();
    fs::write(ws.root.join("a"), "a\n").unwrap();
    let planted = format!("/etc/pyro-agent-files-test-{}", std::process::id());
    let before = ws.tree();
    for path in [
        "/etc/passwd",
        planted.as_str(),
        "/workspace/../etc",
        "/workspace/../etc/passwd",
        "/workspace/..",
        "/workspacex",
        "/",
        "",
        "a",
        "workspace/a",
        "/workspace/./a",
        "/workspace//a",
        "/workspace/a/",
        "/workspace/a\0b",
    ] {
        bad_request(ws.list(path, true));
        bad_request(ws.read(path, 10));
        bad_request(ws.write(path, b"x", 0o644));
        bad_request(ws.archive(path));
        assert!(!Path::new(&planted).exists());
    }
    assert_eq!(ws.tree(), before);
    assert_eq!(ws.read("/workspace/a", 10).unwrap(), (2, b"a\n".to_vec()));

    not_found(ws.list("/workspace/missing", false));
    not_found(ws.read("/workspace/missing", 10));
    not_found(ws.archive("/workspace/missing"));
    bad_request(ws.read("/workspace", 10));
    bad_request(ws.read("/workspace/a/b", 10));
}

/// Long listings come in several frames, sorted across them; reads stop at
/// `max_bytes` but report the full size.
#[test]
fn listings_batch_and_reads_stop_at_max_bytes() {
    let ws = Ws::new();
    assert_eq!(ws.list_frames("/workspace", false).unwrap(), vec![vec![]]);
    fs::create_dir(ws.root.join("d")).unwrap();
    for i in 0..600 {
        fs::write(ws.root.join(format!("d/f{i:04}")), i.to_string()).unwrap();
    }
    let frames = ws.list_frames("/workspace", true).unwrap();
    assert!(frames.len() >= 3, "{} frames", frames.len());
    let all: Vec<FileEntry> = frames.concat();
    assert_eq!(all.len(), 601);
    assert_eq!(all[0].path, "/workspace/d");
    assert_eq!(all[0].kind, FileKind::Directory);
    assert_eq!(all[0].size_bytes, 0);
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(all, sorted);
    assert_eq!(all[600].path, "/workspace/d/f0599");
    assert_eq!(all[600].size_bytes, 3);
    assert_eq!(ws.list("/workspace", false).unwrap().len(), 1);

    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(ws.root.join("big.bin"), &body).unwrap();
    let (size, data) = ws.read("/workspace/big.bin", 100_000).unwrap();
    assert_eq!(size, 200_000);
    assert_eq!(data, &body[..100_000]);
    let (size, data) = ws.read("/workspace/big.bin", 1 << 20).unwrap();
    assert_eq!(size, 200_000);
    assert_eq!(data, body);
}

/// A tar of regular files.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Uploads (`Extract`, as `sync push` and seeds use) into the workspace
/// are mapped onto it like every other operation and never write through
/// a symlink: not one named as the destination, not one above it, not one
/// already in the destination.
#[test]
fn uploads_never_write_through_symlinks() {
    // Without the mapping onto the workspace root, the agent would unpack
    // into this host's real /workspace: only run where there is none, and
    // say so if one appears.
    if Path::new("/workspace").exists() {
        eprintln!("skipped: this host has a /workspace");
        return;
    }
    let ws = Ws::new();
    std::os::unix::fs::symlink(&ws.outside, ws.root.join("out")).unwrap();
    std::os::unix::fs::symlink("../outside", ws.root.join("rel-out")).unwrap();
    fs::create_dir(ws.root.join("real")).unwrap();
    std::os::unix::fs::symlink("../../outside", ws.root.join("real/inner")).unwrap();
    let extract = |dest: &str, tar: &[u8]| {
        ws.upload(
            Request::Extract {
                dest: dest.into(),
                any_link_targets: false,
            },
            tar,
        )
    };
    let tar = tar_of(&[("planted.txt", b"pwned\n")]);
    let before = ws.tree();
    for dest in [
        "/workspace/out",
        "/workspace/out/sub",
        "/workspace/rel-out",
        "/workspace/real/inner",
        "/workspace/real/inner/deeper",
    ] {
        bad_request(extract(dest, &tar));
    }
    // An entry below a symlink already in the destination.
    bad_request(extract(
        "/workspace",
        &tar_of(&[("out/planted.txt", b"pwned\n")]),
    ));
    bad_request(extract(
        "/workspace/real",
        &tar_of(&[("inner/planted.txt", b"x")]),
    ));
    assert_eq!(ws.tree(), before, "an upload went through a symlink");
    assert_eq!(fs::read_dir(&ws.outside).unwrap().count(), 0);

    // A plain destination works, mapped onto the workspace root.
    match extract(
        "/workspace/new/dir",
        &tar_of(&[("a.txt", b"abc"), ("b/c.txt", b"de")]),
    ) {
        Ok(Response::Extracted {
            entry_count,
            bytes_written,
        }) => assert_eq!((entry_count, bytes_written), (2, 5)),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(fs::read(ws.root.join("new/dir/a.txt")).unwrap(), b"abc");
    assert_eq!(fs::read(ws.root.join("new/dir/b/c.txt")).unwrap(), b"de");
    assert!(
        !Path::new("/workspace").exists(),
        "the upload went to the host's /workspace"
    );
}

use super::*;

use std::os::unix::fs::symlink;

fn tar_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().unwrap()
}

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h
}

/// One raw entry (header and padded data), the name and link written into
/// the header as given, bypassing the builder's checks.
fn block(
    kind: tar::EntryType,
    name: &[u8],
    link: Option<&[u8]>,
    data: &[u8],
    mode: u32,
) -> Vec<u8> {
    let mut h = header(kind, data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(1_700_000_000);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.name[..name.len()].copy_from_slice(name);
    if let Some(l) = link {
        gnu.linkname[..l.len()].copy_from_slice(l);
    }
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// A PAX extended header giving the next entry these records.
fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    for (key, value) in records {
        let body = 1 + key.len() + 1 + value.len() + 1;
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        data.extend_from_slice(format!("{len} {key}=").as_bytes());
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    block(tar::EntryType::XHeader, b"pax", None, &data, 0o644)
}

/// Concatenated raw entries plus the end-of-archive marker.
fn raw_tar(blocks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = blocks.concat();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Writes a raw name into the header, bypassing the builder's checks.
fn raw(kind: tar::EntryType, name: &str, link: Option<&str>) -> Vec<u8> {
    raw_tar(&[block(
        kind,
        name.as_bytes(),
        link.map(str::as_bytes),
        b"",
        0o644,
    )])
}

fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
    let mut h = header(tar::EntryType::Regular, data.len() as u64);
    h.set_mode(mode);
    b.append_data(&mut h, path, data).unwrap();
}

fn dir(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) {
    let mut h = header(tar::EntryType::Directory, 0);
    h.set_mode(mode);
    b.append_data(&mut h, path, &[][..]).unwrap();
}

fn link(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = header(tar::EntryType::Symlink, 0);
    b.append_link(&mut h, path, target).unwrap();
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

// ---- the host check refuses exactly what unpack refuses ----------------------

/// What a hostile fixture must do.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Passes the check and unpacks.
    Ok,
    /// Refused by both, each message containing this text (the entry).
    Refused(&'static str),
    /// Refused by both as corrupt (no entry to name).
    Corrupt,
}

enum Src {
    Tar(Vec<u8>),
    /// Builds a directory seed in the given (empty) directory.
    Dir(Box<dyn Fn(&Path)>),
}

struct Fixture {
    name: String,
    src: Src,
    want: Want,
}

fn tar_fixture(name: &str, want: Want, data: Vec<u8>) -> Fixture {
    Fixture {
        name: name.into(),
        src: Src::Tar(data),
        want,
    }
}

fn dir_fixture(name: &str, want: Want, build: impl Fn(&Path) + 'static) -> Fixture {
    Fixture {
        name: name.into(),
        src: Src::Dir(Box::new(build)),
        want,
    }
}

/// `n` components of 255 `c`s joined by `/`, then `tail`.
fn deep(n: usize, tail: &str) -> String {
    let mut parts = vec!["c".repeat(255); n];
    if !tail.is_empty() {
        parts.push(tail.to_string());
    }
    parts.join("/")
}

/// Creates `rel` (directories, then a final file `x`) below `root` one
/// component at a time, so the absolute path may exceed PATH_MAX.
fn mkdirs_at(root: &Path, rel: &str) {
    let mut cur: OwnedFd = File::open(root).unwrap().into();
    for c in rel.split('/') {
        mkdir_at(cur.as_fd(), OsStr::new(c), 0o755).unwrap();
        cur = open_dir_at(cur.as_fd(), OsStr::new(c)).unwrap();
    }
    drop(create_at(cur.as_fd(), OsStr::new("x")).unwrap());
}

fn fixtures() -> Vec<Fixture> {
    use tar::EntryType as T;
    let long_target = vec!["t"; 2100].join("/");
    let mut v = vec![
        // Plain good ones.
        tar_fixture(
            "good tree",
            Want::Ok,
            tar_with(|b| {
                dir(b, "./", 0o755);
                dir(b, "src", 0o755);
                file(b, "src/a.txt", b"hello", 0o644);
                link(b, "link", "src/a.txt");
                file(b, "./x/./y//z", b"deep", 0o600);
            }),
        ),
        tar_fixture(
            "component of 255 bytes",
            Want::Ok,
            tar_with(|b| file(b, &"n".repeat(255), b"", 0o644)),
        ),
        tar_fixture(
            "path of 4095 bytes",
            Want::Ok,
            tar_with(|b| file(b, &deep(16, ""), b"x", 0o644)),
        ),
        tar_fixture(
            "symlink loop",
            Want::Ok,
            tar_with(|b| {
                link(b, "a", "b");
                link(b, "b", "a");
                link(b, "self", "self");
                link(b, "dot", ".");
            }),
        ),
        tar_fixture(
            "file replaced by a later file and a symlink",
            Want::Ok,
            tar_with(|b| {
                file(b, "f", b"one", 0o644);
                file(b, "f", b"two", 0o644);
                file(b, "g", b"three", 0o644);
                link(b, "g", "f");
            }),
        ),
        tar_fixture(
            "special mode bits",
            Want::Ok,
            tar_with(|b| {
                dir(b, "sticky", 0o1777);
                file(b, "sticky/suid", b"#!", 0o4755);
                file(b, "sgid", b"", 0o2755);
            }),
        ),
        tar_fixture(
            "unwritable directories still receive their entries",
            Want::Ok,
            tar_with(|b| {
                dir(b, "ro", 0o555);
                dir(b, "ro/none", 0o000);
                file(b, "ro/none/f", b"x", 0o000);
                file(b, "ro/g", b"x", 0o444);
            }),
        ),
        tar_fixture(
            "pax global header",
            Want::Ok,
            raw_tar(&[
                block(T::XGlobalHeader, b"g", None, b"14 comment=x\n", 0o644),
                block(T::Regular, b"f", None, b"x", 0o644),
            ]),
        ),
        tar_fixture(
            "non-UTF-8 name",
            Want::Ok,
            raw_tar(&[block(T::Regular, b"caf\xe9", None, b"x", 0o644)]),
        ),
        tar_fixture(
            "trailing slash on a file",
            Want::Ok,
            raw_tar(&[block(T::Regular, b"f/", None, b"x", 0o644)]),
        ),
        // Path shape.
        tar_fixture(
            "absolute path",
            Want::Refused("/etc/passwd"),
            raw(T::Regular, "/etc/passwd", None),
        ),
        tar_fixture(
            "dot-dot",
            Want::Refused("a/../../x"),
            raw(T::Regular, "a/../../x", None),
        ),
        tar_fixture(
            "dot-dot through pax",
            Want::Refused("../up"),
            raw_tar(&[
                pax(&[("path", b"../up")]),
                block(T::Regular, b"fine", None, b"", 0o644),
            ]),
        ),
        tar_fixture(
            "component of 256 bytes",
            Want::Refused("nnnnnnnnnn"),
            tar_with(|b| file(b, &format!("ok/{}", "n".repeat(256)), b"", 0o644)),
        ),
        tar_fixture(
            "component of 300 bytes",
            Want::Refused("nnnnnnnnnn"),
            tar_with(|b| file(b, &"n".repeat(300), b"", 0o644)),
        ),
        tar_fixture(
            "path of 4096 bytes",
            Want::Refused("cccccccccc"),
            tar_with(|b| file(b, &format!("{}/x", deep(15, &"d".repeat(254))), b"", 0o644)),
        ),
        tar_fixture(
            "path of 5119 bytes",
            Want::Refused("cccccccccc"),
            tar_with(|b| file(b, &deep(20, ""), b"", 0o644)),
        ),
        tar_fixture(
            "NUL in a name",
            Want::Refused("bad"),
            raw_tar(&[
                pax(&[("path", b"bad\0name")]),
                block(T::Regular, b"fine", None, b"", 0o644),
            ]),
        ),
        tar_fixture(
            "root as a file",
            Want::Refused("'.'"),
            raw(T::Regular, ".", None),
        ),
        // Types.
        tar_fixture(
            "hard link",
            Want::Refused("'h'"),
            raw(T::Link, "h", Some("a")),
        ),
        tar_fixture(
            "char device",
            Want::Refused("'null'"),
            raw(T::Char, "null", None),
        ),
        tar_fixture(
            "block device",
            Want::Refused("'sda'"),
            raw(T::Block, "sda", None),
        ),
        tar_fixture("fifo", Want::Refused("'pipe'"), raw(T::Fifo, "pipe", None)),
        tar_fixture("sparse", Want::Refused("'holes'"), {
            let mut h = header(T::GNUSparse, 0);
            h.as_gnu_mut().unwrap().set_real_size(0);
            tar_with(|b| b.append_data(&mut h, "holes", &[][..]).unwrap())
        }),
        // Symlink targets.
        tar_fixture(
            "absolute symlink",
            Want::Refused("'s'"),
            raw(T::Symlink, "s", Some("/etc")),
        ),
        tar_fixture(
            "escaping symlink",
            Want::Refused("'s'"),
            raw(T::Symlink, "s", Some("../x")),
        ),
        tar_fixture(
            "empty symlink",
            Want::Refused("'s'"),
            raw(T::Symlink, "s", None),
        ),
        tar_fixture(
            "symlink target over 4095 bytes",
            Want::Refused("'s'"),
            tar_with(|b| link(b, "s", &long_target)),
        ),
        tar_fixture(
            "NUL in a symlink target",
            Want::Refused("'s'"),
            raw_tar(&[
                pax(&[("linkpath", b"a\0b")]),
                block(T::Symlink, b"s", Some(b"fine"), b"", 0o777),
            ]),
        ),
        // Entries against each other.
        tar_fixture(
            "file then a child of it",
            Want::Refused("a/b"),
            tar_with(|b| {
                file(b, "a", b"x", 0o644);
                file(b, "a/b", b"y", 0o644);
            }),
        ),
        tar_fixture(
            "file then a grandchild of it",
            Want::Refused("'a/b'"),
            tar_with(|b| {
                file(b, "a", b"x", 0o644);
                dir(b, "a/b", 0o755);
                file(b, "a/b/c", b"y", 0o644);
            }),
        ),
        tar_fixture(
            "symlink then a child of it",
            Want::Refused("a/x"),
            tar_with(|b| {
                dir(b, "b", 0o755);
                link(b, "a", "b");
                file(b, "a/x", b"y", 0o644);
            }),
        ),
        tar_fixture(
            "symlink loop then a child of it",
            Want::Refused("a/c"),
            tar_with(|b| {
                link(b, "a", "b");
                link(b, "b", "a");
                file(b, "a/c", b"y", 0o644);
            }),
        ),
        tar_fixture(
            "directory then a file",
            Want::Refused("'a'"),
            tar_with(|b| {
                dir(b, "a", 0o755);
                file(b, "a", b"x", 0o644);
            }),
        ),
        tar_fixture(
            "implied directory then a file",
            Want::Refused("'a'"),
            tar_with(|b| {
                file(b, "a/b", b"x", 0o644);
                file(b, "a", b"x", 0o644);
            }),
        ),
        tar_fixture(
            "file then a directory",
            Want::Refused("'a'"),
            tar_with(|b| {
                file(b, "a", b"x", 0o644);
                dir(b, "a", 0o755);
            }),
        ),
        tar_fixture(
            "symlink then a directory",
            Want::Refused("'a'"),
            tar_with(|b| {
                link(b, "a", "b");
                dir(b, "a", 0o755);
            }),
        ),
        tar_fixture(
            "directory then a symlink",
            Want::Refused("'a'"),
            tar_with(|b| {
                dir(b, "a", 0o755);
                link(b, "a", "b");
            }),
        ),
        // Not a tar archive.
        tar_fixture("garbage", Want::Corrupt, vec![b'x'; 1024]),
        tar_fixture(
            "truncated",
            Want::Corrupt,
            tar_with(|b| file(b, "big", &[1u8; 3000], 0o644))[..1000].to_vec(),
        ),
    ];
    v.extend([
        dir_fixture("dir: empty", Want::Ok, |_| {}),
        dir_fixture("dir: plain tree", Want::Ok, |d| {
            std::fs::create_dir_all(d.join("src/sub")).unwrap();
            std::fs::write(d.join("src/a.txt"), "hello").unwrap();
            std::fs::write(d.join("src/sub/b"), "").unwrap();
            std::fs::set_permissions(d.join("src/a.txt"), Permissions::from_mode(0o4755)).unwrap();
        }),
        dir_fixture("dir: symlink loop", Want::Ok, |d| {
            symlink("b", d.join("a")).unwrap();
            symlink("a", d.join("b")).unwrap();
            symlink("self", d.join("self")).unwrap();
            symlink(".", d.join("dot")).unwrap();
        }),
        dir_fixture("dir: symlink to a directory is kept", Want::Ok, |d| {
            std::fs::create_dir(d.join("sub")).unwrap();
            std::fs::write(d.join("sub/f"), "x").unwrap();
            symlink("sub", d.join("link")).unwrap();
        }),
        dir_fixture("dir: non-UTF-8 name", Want::Ok, |d| {
            std::fs::write(d.join(OsStr::from_bytes(b"caf\xe9")), "x").unwrap();
        }),
        dir_fixture("dir: absolute symlink", Want::Refused("'etc'"), |d| {
            symlink("/etc", d.join("etc")).unwrap();
        }),
        dir_fixture("dir: escaping symlink", Want::Refused("sub/up"), |d| {
            std::fs::create_dir(d.join("sub")).unwrap();
            symlink("../../outside", d.join("sub/up")).unwrap();
        }),
        dir_fixture("dir: socket", Want::Refused("'sock'"), |d| {
            // Leaked on purpose: the socket file must outlive the listener
            // value (the file stays when it is dropped anyway).
            std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
        }),
        dir_fixture("dir: fifo", Want::Refused("'pipe'"), |d| {
            let p = CString::new(d.join("pipe").as_os_str().as_bytes()).unwrap();
            // SAFETY: NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(p.as_ptr(), 0o644) }, 0);
        }),
        dir_fixture(
            "dir: path over 4095 bytes",
            Want::Refused("cccccccccc"),
            |d| {
                mkdirs_at(d, &deep(17, ""));
            },
        ),
    ]);
    v
}

/// Runs `fixture` through the host check and through unpack into an empty
/// directory; returns both outcomes (messages on failure).
fn run(fixture: &Fixture) -> (Result<ArchiveStats, String>, Result<ArchiveStats, String>) {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("sentinel"), "untouched").unwrap();
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let (check, unpacked) = match &fixture.src {
        Src::Tar(data) => (validate(&data[..]), unpack(&data[..], &dest)),
        Src::Dir(build) => {
            let seed_dir = tmp.path().join("seed");
            std::fs::create_dir(&seed_dir).unwrap();
            build(&seed_dir);
            let seed = Seed::open(&seed_dir).unwrap();
            let check = seed.check();
            let mut data = Vec::new();
            let unpacked = seed
                .write_tar(&mut data)
                .and_then(|()| unpack(&data[..], &dest));
            (check, unpacked)
        }
    };
    // Nothing was written outside the destination.
    let mut top: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    top.retain(|n| n != "seed");
    assert_eq!(top, ["dest", "outside"], "{}", fixture.name);
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        1,
        "{}",
        fixture.name
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("sentinel")).unwrap(),
        "untouched"
    );
    loosen(&dest);
    (
        check.map_err(|e| e.to_string()),
        unpacked.map_err(|e| e.to_string()),
    )
}

/// Makes every directory below `dir` writable again (never following a
/// symlink), so a non-root test run can clean up.
fn loosen(dir: &Path) {
    std::fs::set_permissions(dir, Permissions::from_mode(0o755)).unwrap();
    for item in std::fs::read_dir(dir).unwrap() {
        let item = item.unwrap();
        if item.file_type().unwrap().is_dir() {
            loosen(&item.path());
        }
    }
}

#[test]
fn host_check_refuses_everything_unpack_refuses() {
    for fixture in fixtures() {
        let name = &fixture.name;
        let (check, unpacked) = run(&fixture);
        // The property: check OK ⇒ unpack OK (with the same counts), and
        // unpack refused ⇒ check refused, naming the entry.
        if let Ok(stats) = &check {
            assert_eq!(unpacked.as_ref(), Ok(stats), "{name}: check passed");
        }
        if let Err(why) = &unpacked {
            assert!(
                check.is_err(),
                "{name}: unpack refused ({why}), check passed"
            );
        }
        // And each fixture does what it is there for.
        match fixture.want {
            Want::Ok => assert!(check.is_ok(), "{name}: {check:?}"),
            Want::Refused(entry) => {
                // A directory seed unpack may already fail in write_tar,
                // whose messages are the tar crate's.
                let both = [("check", &check), ("unpack", &unpacked)];
                let named = match fixture.src {
                    Src::Tar(_) => &both[..],
                    Src::Dir(_) => &both[..1],
                };
                assert!(unpacked.is_err(), "{name}: unpacked");
                for (what, msg) in named {
                    let msg = msg.as_ref().expect_err(name);
                    assert!(
                        msg.contains(entry) && msg.contains("refused"),
                        "{name}: {what} said {msg:?}, which does not name {entry:?}"
                    );
                    assert!(msg.len() < 600, "{name}: {what} message is too long");
                }
            }
            Want::Corrupt => {
                for msg in [&check, &unpacked] {
                    assert!(
                        msg.as_ref().expect_err(name).contains("corrupt"),
                        "{name}: {msg:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn refusal_messages_say_why() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            tar_with(|b| file(b, &"n".repeat(300), b"", 0o644)),
            "a path component is 300 bytes long; at most 255 are allowed",
        ),
        (
            tar_with(|b| file(b, &deep(20, ""), b"", 0o644)),
            "the path is 5119 bytes long; at most 4095 are allowed",
        ),
        (
            tar_with(|b| {
                file(b, "a", b"x", 0o644);
                file(b, "a/b", b"y", 0o644);
            }),
            "archive entry 'a/b' refused: its parent 'a' is a file earlier in the archive",
        ),
        (
            tar_with(|b| {
                link(b, "a", "b");
                file(b, "a/b", b"y", 0o644);
            }),
            "its parent 'a' is a symlink earlier in the archive; unpacking never writes through symlinks",
        ),
        (
            tar_with(|b| {
                file(b, "a/b", b"x", 0o644);
                file(b, "a", b"x", 0o644);
            }),
            "archive entry 'a' refused: it is a file but an earlier entry made it a directory",
        ),
    ];
    for (data, want) in cases {
        let err = validate(&data[..]).unwrap_err().to_string();
        assert!(err.contains(want), "{err:?} lacks {want:?}");
    }
}

// ---- unpack against what the destination already holds ----------------------

#[test]
fn unpack_never_writes_through_a_symlink_in_the_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("etc");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("passwd"), "root:x:0:0").unwrap();
    let dest = tmp.path().join("workspace");
    std::fs::create_dir_all(dest.join("d")).unwrap();
    symlink(&outside, dest.join("link")).unwrap();
    symlink(&outside, dest.join("d/link")).unwrap();
    symlink(outside.join("new"), dest.join("dangling")).unwrap();
    std::fs::write(dest.join("plain"), "x").unwrap();
    symlink("d", dest.join("inner")).unwrap();
    let outside_untouched = |case: &str| {
        assert_eq!(
            std::fs::read_to_string(outside.join("passwd")).unwrap(),
            "root:x:0:0",
            "{case}"
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1, "{case}");
        assert_eq!(mode_of(&outside), 0o755, "{case}");
        assert_eq!(
            std::fs::read_dir(dest.join("d")).unwrap().count(),
            1,
            "{case}"
        );
    };
    for (data, entry, why) in [
        (
            tar_with(|b| file(b, "link/passwd", b"pwned", 0o644)),
            "link/passwd",
            "its parent 'link' is a symlink in the destination",
        ),
        (
            tar_with(|b| file(b, "d/link/x/y", b"pwned", 0o644)),
            "d/link/x/y",
            "its parent 'd/link' is a symlink in the destination",
        ),
        (
            tar_with(|b| dir(b, "link", 0o777)),
            "link",
            "a symlink of that name exists in the destination",
        ),
        (
            tar_with(|b| file(b, "dangling/x", b"pwned", 0o644)),
            "dangling/x",
            "its parent 'dangling' is a symlink in the destination",
        ),
        (
            tar_with(|b| file(b, "inner/x", b"y", 0o644)),
            "inner/x",
            "its parent 'inner' is a symlink in the destination",
        ),
        (
            tar_with(|b| file(b, "plain/x", b"y", 0o644)),
            "plain/x",
            "its parent 'plain' exists in the destination and is not a directory",
        ),
        (
            tar_with(|b| file(b, "d", b"y", 0o644)),
            "d",
            "a directory of that name exists in the destination",
        ),
    ] {
        // The host cannot know what the destination holds.
        validate(&data[..]).unwrap();
        let result = unpack(&data[..], &dest);
        outside_untouched(entry);
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains(&format!("'{entry}' refused")) && err.contains(why),
            "{err:?}"
        );
    }
    // Replacing a symlink (or a file) unlinks it; nothing is written
    // through it.
    let data = tar_with(|b| {
        file(b, "link", b"now a file", 0o644);
        link(b, "plain", "d");
    });
    unpack(&data[..], &dest).unwrap();
    assert_eq!(
        std::fs::read_to_string(dest.join("link")).unwrap(),
        "now a file"
    );
    assert!(std::fs::symlink_metadata(dest.join("plain"))
        .unwrap()
        .file_type()
        .is_symlink());
    outside_untouched("replacing");
}

#[test]
fn unpack_drops_setuid_setgid_and_sticky_bits() {
    let data = tar_with(|b| {
        dir(b, "sticky", 0o1777);
        dir(b, "sgid", 0o2750);
        file(b, "sticky/suid", b"#!", 0o4755);
        file(b, "sgid/f", b"", 0o2640);
        file(b, "all", b"", 0o7777);
        file(b, "plain", b"", 0o640);
    });
    let dir = tempfile::tempdir().unwrap();
    unpack(&data[..], dir.path()).unwrap();
    for (path, mode) in [
        ("sticky", 0o777),
        ("sgid", 0o750),
        ("sticky/suid", 0o755),
        ("sgid/f", 0o640),
        ("all", 0o777),
        ("plain", 0o640),
    ] {
        assert_eq!(mode_of(&dir.path().join(path)), mode, "{path}");
    }
}

#[test]
fn unpack_keeps_modes_and_contents_exactly() {
    let data = tar_with(|b| {
        dir(b, "ro", 0o555);
        file(b, "ro/f", b"data", 0o600);
        file(b, "x", b"1", 0o644);
        file(b, "x", b"22", 0o751);
    });
    let dir = tempfile::tempdir().unwrap();
    let stats = unpack(&data[..], dir.path()).unwrap();
    assert_eq!(
        stats,
        ArchiveStats {
            entry_count: 4,
            bytes: 7
        }
    );
    assert_eq!(mode_of(&dir.path().join("ro")), 0o555);
    assert_eq!(mode_of(&dir.path().join("ro/f")), 0o600);
    assert_eq!(std::fs::read(dir.path().join("ro/f")).unwrap(), b"data");
    assert_eq!(mode_of(&dir.path().join("x")), 0o751);
    assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), b"22");
    // Let the temp dir clean up.
    std::fs::set_permissions(dir.path().join("ro"), Permissions::from_mode(0o755)).unwrap();
}

// ---- the original cases ------------------------------------------------------

#[test]
fn good_archives_pass_and_unpack() {
    let data = tar_with(|b| {
        dir(b, "src", 0o755);
        file(b, "src/a.txt", b"hello", 0o644);
        link(b, "link", "src/a.txt");
    });
    assert_eq!(
        validate(&data[..]).unwrap(),
        ArchiveStats {
            entry_count: 3,
            bytes: 5
        }
    );
    let dir = tempfile::tempdir().unwrap();
    unpack(&data[..], dir.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("link")).unwrap(),
        "hello"
    );
}

#[test]
fn unsafe_entries_are_refused() {
    use tar::EntryType as T;
    for (data, why) in [
        (raw(T::Regular, "/etc/passwd", None), "absolute"),
        (raw(T::Regular, "a/../../x", None), ".."),
        (raw(T::Link, "h", Some("a")), "hard links"),
        (raw(T::Char, "null", None), "device"),
        (raw(T::Fifo, "pipe", None), "FIFOs"),
        (raw(T::Symlink, "s", Some("/etc")), "symlink"),
        (raw(T::Symlink, "s", Some("../x")), "symlink"),
    ] {
        let err = validate(&data[..]).unwrap_err().to_string();
        assert!(err.contains(why), "{err} should mention {why}");
        let dir = tempfile::tempdir().unwrap();
        assert!(unpack(&data[..], dir.path()).is_err());
    }
}

#[test]
fn corrupt_archives_are_errors() {
    let mut data = tar_with(|b| file(b, "big", &[1u8; 3000], 0o644));
    data.truncate(1000);
    assert!(matches!(validate(&data[..]), Err(ArchiveError::Corrupt(_))));
}

#[test]
fn a_gzip_seed_with_a_bad_checksum_is_refused() {
    let data = tar_with(|b| file(b, "f", b"hello", 0o644));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).unwrap();
    let mut gz = gz.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.tgz");
    std::fs::write(&path, &gz).unwrap();
    assert_eq!(Seed::open(&path).unwrap().check().unwrap().entry_count, 1);
    // The CRC32 sits 8 bytes from the end.
    let at = gz.len() - 8;
    gz[at] ^= 0xff;
    std::fs::write(&path, &gz).unwrap();
    let err = Seed::open(&path).unwrap().check().unwrap_err();
    assert!(matches!(err, ArchiveError::Corrupt(_)), "{err:?}");
}

#[test]
fn seeds_are_classified() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), "x").unwrap();
    std::fs::write(dir.path().join("a.TGZ"), "x").unwrap();
    assert!(matches!(
        Seed::open(dir.path()).unwrap(),
        Seed::Directory(_)
    ));
    assert!(matches!(
        Seed::open(&dir.path().join("a.TGZ")).unwrap(),
        Seed::Archive(_)
    ));
    assert!(matches!(
        Seed::open(&dir.path().join("f.txt")),
        Err(ArchiveError::WrongKind(_))
    ));
    assert!(matches!(
        Seed::open(&dir.path().join("nope")),
        Err(ArchiveError::Missing(_))
    ));
    assert_eq!(
        Seed::open(dir.path()).unwrap().check().unwrap().entry_count,
        2
    );
    assert!(Seed::open(&dir.path().join("a.TGZ"))
        .unwrap()
        .check()
        .is_err());
}

/// A guest restoring its own snapshot keeps absolute and climbing links
/// (a venv's `bin/python -> /usr/bin/python3`), still never writing
/// through them; the default policy refuses them.
#[test]
fn any_link_targets_are_stored_only_when_asked() {
    let mut b = tar::Builder::new(Vec::new());
    for (name, target) in [("py", "/usr/bin/python3"), ("up", "../..")] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, name, target).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(unpack(tar.as_slice(), dir.path()).is_err());
    let dir = tempfile::tempdir().unwrap();
    let stats = unpack_with(tar.as_slice(), dir.path(), LinkTargets::Any).unwrap();
    assert_eq!(stats.entry_count, 2);
    assert_eq!(
        std::fs::read_link(dir.path().join("py")).unwrap(),
        std::path::Path::new("/usr/bin/python3")
    );
    assert_eq!(
        std::fs::read_link(dir.path().join("up")).unwrap(),
        std::path::Path::new("../..")
    );
}

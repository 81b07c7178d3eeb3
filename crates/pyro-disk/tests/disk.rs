//! Disk reading on real images: raw, qcow2 (v2, v3, small clusters),
//! overlays over a raw base, chains, export, and error cases.

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;
use pyro_disk::{Disk, DiskEntry, DiskError, EntryKind, Image, ImageFormat};

fn names(entries: &[DiskEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.path.as_str()).collect()
}

fn find<'a>(entries: &'a [DiskEntry], path: &str) -> &'a DiskEntry {
    entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} not listed in {:?}", names(entries)))
}

/// What both trees share.
fn check_common(disk: &Disk) {
    let root = disk.list("/", false).unwrap();
    assert_eq!(names(&root), ["/etc", "/lost+found", "/workspace"]);
    assert!(root.iter().all(|e| e.kind == EntryKind::Directory));

    let ws = disk.list("/workspace", false).unwrap();
    let link = find(&ws, "/workspace/link");
    assert_eq!(link.kind, EntryKind::Symlink);
    assert_eq!(link.link_target.as_deref(), Some("src/main.rs"));
    assert_eq!(link.size_bytes, 11);
    let long = find(&ws, "/workspace/long_link");
    assert_eq!(long.link_target.as_deref(), Some("t".repeat(100).as_str()));
    assert_eq!(find(&ws, "/workspace/srclink").kind, EntryKind::Symlink);
    assert_eq!(find(&ws, "/workspace/exec.sh").mode, 0o755);
    assert_eq!(find(&ws, "/workspace/empty").kind, EntryKind::Directory);
    assert!(ws
        .iter()
        .all(|e| e.link_target.is_some() == (e.kind == EntryKind::Symlink)));

    assert!(disk.list("/workspace/empty", true).unwrap().is_empty());
    assert!(disk.list("/workspace/empty/", false).unwrap().is_empty());

    // A file or symlink lists as itself.
    let one = disk.list("/workspace/src/main.rs", false).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].path, "/workspace/src/main.rs");
    assert_eq!(one[0].kind, EntryKind::File);
    assert_eq!(one[0].size_bytes, 13);
    assert_eq!(one[0].mode, 0o640);
    let one = disk.list("/workspace/srclink", true).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].link_target.as_deref(), Some("src"));

    let r = disk.read("/workspace/src/main.rs", 1 << 20).unwrap();
    assert_eq!(r.content, b"fn main() {}\n");
    assert!(!r.truncated);
    assert_eq!(disk.read("/etc/hostname", 100).unwrap().content, b"ws\n");
}

fn check_tree1(disk: &Disk) {
    check_common(disk);
    let ws = disk.list("/workspace", false).unwrap();
    assert_eq!(
        names(&ws),
        [
            "/workspace/README.md",
            "/workspace/big.bin",
            "/workspace/empty",
            "/workspace/exec.sh",
            "/workspace/link",
            "/workspace/long_link",
            "/workspace/src",
            "/workspace/srclink",
        ]
    );
    let all = disk.list("/workspace", true).unwrap();
    assert_eq!(
        names(&all),
        [
            "/workspace/README.md",
            "/workspace/big.bin",
            "/workspace/empty",
            "/workspace/exec.sh",
            "/workspace/link",
            "/workspace/long_link",
            "/workspace/src",
            "/workspace/src/lib",
            "/workspace/src/lib/deep.txt",
            "/workspace/src/main.rs",
            "/workspace/srclink",
        ]
    );
    let big = find(&all, "/workspace/big.bin");
    assert_eq!(
        (big.kind, big.size_bytes),
        (EntryKind::File, BIG_SIZE as u64)
    );
    assert_eq!(
        disk.read("/workspace/README.md", 1 << 20).unwrap().content,
        b"hello from tree one\n"
    );
    assert_eq!(
        disk.read("/workspace/src/lib/deep.txt", 100)
            .unwrap()
            .content,
        b"deep\n"
    );
    let r = disk.read("/workspace/big.bin", u64::MAX).unwrap();
    assert_eq!(r.size_bytes, BIG_SIZE as u64);
    assert!(!r.truncated);
    assert!(r.content == big_v1(), "big.bin differs");

    // Recursive from the root reaches everything, in tree order.
    let everything = disk.list("/", true).unwrap();
    let paths = names(&everything);
    let i = paths.iter().position(|p| *p == "/workspace/src").unwrap();
    assert_eq!(paths[i + 1], "/workspace/src/lib");
    assert!(paths.contains(&"/etc/hostname"));
}

fn check_tree2(disk: &Disk) {
    check_common(disk);
    let all = disk.list("/workspace", true).unwrap();
    assert_eq!(
        names(&all),
        [
            "/workspace/README.md",
            "/workspace/big.bin",
            "/workspace/empty",
            "/workspace/exec.sh",
            "/workspace/link",
            "/workspace/long_link",
            "/workspace/new.txt",
            "/workspace/src",
            "/workspace/src/lib",
            "/workspace/src/main.rs",
            "/workspace/srclink",
        ]
    );
    assert_eq!(
        disk.read("/workspace/README.md", 1 << 20).unwrap().content,
        b"hello from tree two, changed\n"
    );
    assert_eq!(
        disk.read("/workspace/new.txt", 100).unwrap().content,
        b"a new file\n"
    );
    assert!(matches!(
        disk.read("/workspace/src/lib/deep.txt", 100),
        Err(DiskError::NotFound(p)) if p == "/workspace/src/lib/deep.txt"
    ));
    assert!(disk.read("/workspace/big.bin", u64::MAX).unwrap().content == big_v2());
}

#[test]
fn raw_image_lists_and_reads() {
    let Some(f) = Fixture::new() else { return };
    let image = Image::open(&f.path("a.raw")).unwrap();
    assert_eq!(image.format(), ImageFormat::Raw);
    assert_eq!(image.size(), IMAGE_SIZE);
    let disk = Disk::open(&f.path("a.raw")).unwrap();
    check_tree1(&disk);
    check_tree2(&Disk::open(&f.path("b.raw")).unwrap());
}

#[test]
fn full_qcow2_images_read_like_raw() {
    let Some(f) = Fixture::new() else { return };
    for (name, opts) in [
        ("v3.qcow2", "compat=1.1"),
        ("v2.qcow2", "compat=0.10"),
        ("small.qcow2", "cluster_size=4096"),
        ("tiny.qcow2", "cluster_size=512"),
        ("huge.qcow2", "cluster_size=2M"),
    ] {
        f.qemu_img(&[
            "convert", "-f", "raw", "-O", "qcow2", "-o", opts, "a.raw", name,
        ]);
        let image = Image::open(&f.path(name)).unwrap();
        assert_eq!(image.format(), ImageFormat::Qcow2, "{name}");
        assert_eq!(image.size(), IMAGE_SIZE, "{name}");
        assert!(image.backing_chain().is_empty());
        check_tree1(&Disk::open(&f.path(name)).unwrap());
    }
}

/// `b.qcow2`: tree two's image as an overlay over `a.raw` holding only
/// the clusters that differ. An empty overlay over `b.raw`, safely rebased
/// onto `a.raw` (which copies in the clusters where the two differ).
fn make_overlay(f: &Fixture) {
    f.qemu_img(&[
        "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "b.raw", "b.qcow2",
    ]);
    f.qemu_img(&[
        "rebase", "-f", "qcow2", "-b", "a.raw", "-F", "raw", "b.qcow2",
    ]);
}

#[test]
fn overlay_combines_with_its_raw_backing_file() {
    let Some(f) = Fixture::new() else { return };
    f.qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        "b.raw",
        "b_full.qcow2",
    ]);
    make_overlay(&f);
    let full = std::fs::metadata(f.path("b_full.qcow2")).unwrap().len();
    let overlay = std::fs::metadata(f.path("b.qcow2")).unwrap().len();
    assert!(
        overlay < full / 2,
        "the overlay ({overlay} bytes) should hold much less than the full image ({full})"
    );

    let image = Image::open(&f.path("b.qcow2")).unwrap();
    assert_eq!(image.backing_chain(), [f.path("a.raw")]);
    let disk = Disk::open(&f.path("b.qcow2")).unwrap();
    check_tree2(&disk);

    // Every byte matches tree two's image.
    let b = std::fs::read(f.path("b.raw")).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    for (i, want) in b.chunks(1 << 20).enumerate() {
        image.read_at((i << 20) as u64, &mut buf).unwrap();
        assert!(buf == want, "MiB {i} differs");
    }
    // Unaligned reads across cluster boundaries.
    let mut odd = vec![0u8; 200_000];
    image.read_at(65_536 - 77, &mut odd).unwrap();
    assert!(odd[..] == b[65_536 - 77..65_536 - 77 + 200_000]);
    assert!(image.read_at(IMAGE_SIZE - 10, &mut [0u8; 11]).is_err());

    // An empty qcow2 overlay on top (relative backing name): a chain.
    f.qemu_img(&[
        "create", "-f", "qcow2", "-F", "qcow2", "-b", "b.qcow2", "c.qcow2",
    ]);
    let image = Image::open(&f.path("c.qcow2")).unwrap();
    assert_eq!(image.backing_chain(), [f.path("b.qcow2"), f.path("a.raw")]);
    check_tree2(&Disk::open(&f.path("c.qcow2")).unwrap());
}

#[test]
fn backing_file_shorter_than_overlay_reads_zeros_past_its_end() {
    let Some(f) = Fixture::new() else { return };
    let small: Vec<u8> = (0..(1 << 20) + 100).map(|i| (i % 200 + 1) as u8).collect();
    std::fs::write(f.path("small.raw"), &small).unwrap();
    f.qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-F",
        "raw",
        "-b",
        "small.raw",
        "grow.qcow2",
        "3M",
    ]);
    let image = Image::open(&f.path("grow.qcow2")).unwrap();
    assert_eq!(image.size(), 3 << 20);
    let mut buf = vec![0xffu8; 3 << 20];
    image.read_at(0, &mut buf).unwrap();
    assert!(buf[..small.len()] == small[..]);
    assert!(buf[small.len()..].iter().all(|&b| b == 0));

    // No file system in it: a clear error.
    let err = Disk::open(&f.path("grow.qcow2")).unwrap_err();
    assert!(err.to_string().contains("no ext4 file system"), "{err}");
}

#[test]
fn zero_clusters_read_as_zeros() {
    let Some(f) = Fixture::new() else { return };
    let Some(qemu_io) = tool("qemu-io") else {
        eprintln!("NOTICE: skipping: qemu-io not found");
        return;
    };
    f.qemu_img(&[
        "create", "-f", "qcow2", "-F", "raw", "-b", "a.raw", "z.qcow2",
    ]);
    // Zero the first MiB (superblock included) with zero-flag clusters.
    run(
        &qemu_io,
        &["-f", "qcow2", "-c", "write -z 0 1M", "z.qcow2"],
        f.dir.path(),
    );
    let image = Image::open(&f.path("z.qcow2")).unwrap();
    let a = std::fs::read(f.path("a.raw")).unwrap();
    let mut buf = vec![0xffu8; 2 << 20];
    image.read_at(0, &mut buf).unwrap();
    assert!(buf[..1 << 20].iter().all(|&b| b == 0));
    assert!(buf[1 << 20..] == a[1 << 20..2 << 20]);
    assert!(a[1024..2048].iter().any(|&b| b != 0));
    let err = Disk::open(&f.path("z.qcow2")).unwrap_err();
    assert!(matches!(err, DiskError::Corrupt(_)), "{err}");
}

#[test]
fn export_writes_a_sparse_standalone_raw_image() {
    let Some(f) = Fixture::new() else { return };
    make_overlay(&f);
    let disk = Disk::open(&f.path("b.qcow2")).unwrap();
    let out = f.path("export.raw");
    assert_eq!(disk.export_raw(&out).unwrap(), IMAGE_SIZE);
    assert!(same_content(&out, &f.path("b.raw")));
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.len(), IMAGE_SIZE);
    assert!(
        meta.blocks() * 512 < IMAGE_SIZE / 4,
        "export is not sparse: {} bytes allocated",
        meta.blocks() * 512
    );
    // The export stands alone.
    check_tree2(&Disk::open(&out).unwrap());

    // An existing path is refused and left alone.
    let err = disk.export_raw(&out).unwrap_err();
    match &err {
        DiskError::Io { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists)
        }
        _ => panic!("{err}"),
    }
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(same_content(&out, &f.path("b.raw")));

    // From a raw image, and from an overlay with nothing behind its
    // unallocated clusters.
    let out2 = f.path("export2.raw");
    Disk::open(&f.path("a.raw"))
        .unwrap()
        .export_raw(&out2)
        .unwrap();
    assert!(same_content(&out2, &f.path("a.raw")));
    f.qemu_img(&["convert", "-f", "raw", "-O", "qcow2", "a.raw", "a.qcow2"]);
    let out3 = f.path("export3.raw");
    Disk::open(&f.path("a.qcow2"))
        .unwrap()
        .export_raw(&out3)
        .unwrap();
    assert!(same_content(&out3, &f.path("a.raw")));

    // A failed export leaves nothing behind.
    let err = disk.export_raw(&f.path("no/such/dir/x.raw")).unwrap_err();
    assert!(matches!(err, DiskError::Io { .. }), "{err}");
}

#[test]
fn reads_stop_at_max_bytes() {
    let Some(f) = Fixture::new() else { return };
    let disk = Disk::open(&f.path("a.raw")).unwrap();
    let r = disk.read("/workspace/README.md", 5).unwrap();
    assert_eq!(r.path, "/workspace/README.md");
    assert_eq!(r.content, b"hello");
    assert_eq!(r.size_bytes, 20);
    assert!(r.truncated);
    let r = disk.read("/workspace/README.md", 0).unwrap();
    assert!(r.content.is_empty() && r.truncated);
    let r = disk.read("/workspace/README.md", 20).unwrap();
    assert!(!r.truncated && r.content.len() == 20);
    // Across the hole of a sparse file.
    let r = disk.read("/workspace/big.bin", (3 << 19) + 10).unwrap();
    assert!(r.truncated);
    assert!(r.content[..] == big_v1()[..(3 << 19) + 10]);
}

#[test]
fn symlinks_are_never_followed() {
    let Some(f) = Fixture::new() else { return };
    let disk = Disk::open(&f.path("a.raw")).unwrap();
    match disk.read("/workspace/srclink/main.rs", 100) {
        Err(DiskError::CrossesSymlink {
            path,
            symlink,
            target,
        }) => {
            assert_eq!(path, "/workspace/srclink/main.rs");
            assert_eq!(symlink, "/workspace/srclink");
            assert_eq!(target, "src");
        }
        other => panic!("{other:?}"),
    }
    let err = disk.list("/workspace/srclink/lib", true).unwrap_err();
    assert!(matches!(err, DiskError::CrossesSymlink { .. }), "{err}");
    assert!(err.to_string().contains("not followed"), "{err}");
    match disk.read("/workspace/link", 100) {
        Err(DiskError::NotAFile { kind, .. }) => assert!(kind.contains("src/main.rs"), "{kind}"),
        other => panic!("{other:?}"),
    }
    // Recursion does not descend into symlinked directories.
    let all = disk.list("/workspace", true).unwrap();
    assert!(!all
        .iter()
        .any(|e| e.path.starts_with("/workspace/srclink/")));
}

#[test]
fn errors_for_missing_and_wrong_paths() {
    let Some(f) = Fixture::new() else { return };
    let disk = Disk::open(&f.path("a.raw")).unwrap();
    let err = disk.read("/workspace/nope.txt", 10).unwrap_err();
    assert!(
        matches!(&err, DiskError::NotFound(p) if p == "/workspace/nope.txt"),
        "{err}"
    );
    assert!(err.to_string().contains("no such file"), "{err}");
    let err = disk.list("/nope/deeper", false).unwrap_err();
    assert!(
        matches!(&err, DiskError::NotFound(p) if p == "/nope/deeper"),
        "{err}"
    );
    let err = disk.read("/workspace/README.md/x", 10).unwrap_err();
    assert!(
        matches!(&err, DiskError::NotADirectory(p) if p == "/workspace/README.md"),
        "{err}"
    );
    let err = disk.read("/workspace", 10).unwrap_err();
    assert!(matches!(&err, DiskError::NotAFile { .. }), "{err}");
    for bad in [
        "workspace",
        "/workspace/../etc",
        "/workspace//src",
        "/./workspace",
        "",
    ] {
        assert!(
            matches!(disk.list(bad, false), Err(DiskError::InvalidPath { .. })),
            "{bad}"
        );
        assert!(
            matches!(disk.read(bad, 1), Err(DiskError::InvalidPath { .. })),
            "{bad}"
        );
    }
    let err = Disk::open(&f.path("missing.qcow2")).unwrap_err();
    assert!(matches!(err, DiskError::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing.qcow2"), "{err}");
}

#[test]
fn compressed_qcow2_is_refused_clearly() {
    let Some(f) = Fixture::new() else { return };
    f.qemu_img(&[
        "convert", "-c", "-f", "raw", "-O", "qcow2", "a.raw", "c.qcow2",
    ]);
    let err = Disk::open(&f.path("c.qcow2")).unwrap_err();
    assert!(matches!(err, DiskError::Unsupported(_)), "{err}");
    assert!(
        err.to_string()
            .contains("compressed qcow2 clusters are not supported"),
        "{err}"
    );
}

#[test]
fn missing_backing_file_is_a_clear_error() {
    let Some(f) = Fixture::new() else { return };
    f.qemu_img(&[
        "create", "-f", "qcow2", "-F", "raw", "-b", "a.raw", "o.qcow2",
    ]);
    std::fs::rename(f.path("a.raw"), f.path("moved.raw")).unwrap();
    let err = Disk::open(&f.path("o.qcow2")).unwrap_err();
    assert!(matches!(err, DiskError::Io { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("backing file") && msg.contains("a.raw"),
        "{msg}"
    );
}

//! Damaged and hostile images: errors, never panics.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;
use pyro_disk::{Disk, DiskError, EntryKind, Image};

/// An error that means the reader panicked (caught by the crate).
fn assert_not_internal(err: &DiskError, what: &str) {
    let msg = err.to_string();
    assert!(!msg.contains("internal error"), "{what}: {msg}");
    assert!(!msg.is_empty());
}

/// Opens the image and does everything a caller might; returns how many
/// operations failed. Panics only if the crate itself panicked.
fn exercise(path: &Path, export_to: Option<&Path>) -> usize {
    let disk = match Disk::open(path) {
        Ok(d) => d,
        Err(e) => {
            assert_not_internal(&e, "open");
            return 1;
        }
    };
    let mut failures = 0;
    let mut note = |r: Result<(), DiskError>, what: &str| {
        if let Err(e) = r {
            assert_not_internal(&e, what);
            failures += 1;
        }
    };
    for dir in ["/", "/workspace", "/workspace/src"] {
        note(disk.list(dir, false).map(drop), "list");
    }
    match disk.list("/", true) {
        Ok(entries) => {
            for e in entries.iter().take(120) {
                match e.kind {
                    EntryKind::File => note(disk.read(&e.path, 1 << 20).map(drop), "read"),
                    EntryKind::Directory => note(disk.list(&e.path, false).map(drop), "list"),
                    _ => note(disk.list(&e.path, false).map(drop), "list one"),
                }
            }
        }
        Err(e) => note(Err(e), "list -r"),
    }
    for file in ["/workspace/README.md", "/workspace/d3/f7", "/etc/hostname"] {
        note(disk.read(file, u64::MAX).map(drop), "read");
    }
    if let Some(out) = export_to {
        note(disk.export_raw(out).map(drop), "export");
        let _ = fs::remove_file(out);
    }
    failures
}

/// `PYRO_DISK_FUZZ_ROUNDS` and `PYRO_DISK_FUZZ_SEED` override the rounds
/// and seed for a longer run.
fn fuzz_ext4(metadata_csum: bool, seed: u64, rounds: usize) {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let rounds = env("PYRO_DISK_FUZZ_ROUNDS").map_or(rounds, |r| r as usize);
    let seed = env("PYRO_DISK_FUZZ_SEED").map_or(seed, |s| s ^ seed);
    let Some(t) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    make_tree(&tree, 1);
    // Mostly metadata: many directories (one with enough entries for an
    // htree index), small files, symlinks.
    fs::remove_file(tree.join("workspace/big.bin")).unwrap();
    for d in 0..12 {
        let sub = tree.join(format!("workspace/d{d}"));
        fs::create_dir_all(&sub).unwrap();
        for i in 0..8 {
            fs::write(
                sub.join(format!("f{i}")),
                format!("file {d}/{i}\n").repeat(i * 40),
            )
            .unwrap();
        }
        std::os::unix::fs::symlink(format!("../d{}", (d + 1) % 12), sub.join("next")).unwrap();
    }
    let wide = tree.join("workspace/wide");
    fs::create_dir_all(&wide).unwrap();
    for i in 0..300 {
        fs::write(wide.join(format!("entry-with-a-long-name-{i:04}")), "w").unwrap();
    }
    let img = dir.path().join("fuzz.raw");
    let size = 8 << 20;
    if metadata_csum {
        mkfs(&t, &tree, &img, size, None);
    } else {
        let size_arg = format!("{}k", size / 1024);
        run(
            &t.mkfs,
            &[
                "-q",
                "-F",
                "-O",
                "^metadata_csum",
                "-d",
                tree.to_str().unwrap(),
                img.to_str().unwrap(),
                &size_arg,
            ],
            dir.path(),
        );
    }
    assert_eq!(
        exercise(&img, None),
        0,
        "the pristine image must read cleanly"
    );

    // Flip bytes where the image is not zero: metadata, directory blocks,
    // small files.
    let pristine = fs::read(&img).unwrap();
    let live: Vec<u64> = pristine
        .chunks(1024)
        .enumerate()
        .skip(1)
        .filter(|(_, b)| b.iter().any(|&x| x != 0))
        .map(|(i, _)| i as u64 * 1024)
        .collect();
    drop(pristine);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let mut rng = Rng(seed);
    let mut failing_rounds = 0;
    for _ in 0..rounds {
        // Flip a few bytes, then restore them.
        let flips = 1 + rng.below(8) as usize;
        let mut saved = Vec::new();
        for _ in 0..flips {
            let at = live[rng.below(live.len() as u64) as usize] + rng.below(1024);
            let mut b = [0u8];
            file.read_exact_at(&mut b, at).unwrap();
            saved.push((at, b[0]));
            let x = b[0] ^ (1 + rng.below(255) as u8);
            file.write_all_at(&[x], at).unwrap();
        }
        if exercise(&img, None) > 0 {
            failing_rounds += 1;
        }
        for (at, b) in saved.into_iter().rev() {
            file.write_all_at(&[b], at).unwrap();
        }
    }
    eprintln!("fuzz (metadata_csum={metadata_csum}): {failing_rounds}/{rounds} rounds saw errors");
    assert_eq!(exercise(&img, None), 0);
}

#[test]
fn random_byte_flips_in_ext4_metadata_give_errors_not_panics() {
    fuzz_ext4(true, 0x9e37_79b9_7f4a_7c15, 40);
}

#[test]
fn random_byte_flips_without_checksums_give_errors_not_panics() {
    fuzz_ext4(false, 0xd1b5_4a32_d192_ed03, 60);
}

fn patch(path: &Path, at: u64, bytes: &[u8]) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, at).unwrap();
}

#[test]
fn hostile_superblock_geometry_is_refused_before_loading() {
    let Some(t) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("f"), "x").unwrap();
    let img = dir.path().join("sb.raw");
    mkfs(&t, &tree, &img, 8 << 20, None);
    let pristine = fs::read(&img).unwrap();
    let cases: [(u64, &[u8], &str); 4] = [
        (1024 + 0x38, &[0, 0], "no ext4 file system"),
        // 2^32-1 blocks on an 8 MiB disk.
        (1024 + 0x04, &[0xff; 4], "disk holds only"),
        (1024 + 0x18, &[30, 0, 0, 0], "block size"),
        (1024 + 0x20, &[0; 4], "blocks per group"),
    ];
    for (at, bytes, want) in cases {
        fs::write(&img, &pristine).unwrap();
        patch(&img, at, bytes);
        let err = Disk::open(&img).unwrap_err();
        assert!(matches!(err, DiskError::Corrupt(_)), "{err}");
        assert!(err.to_string().contains(want), "{want}: {err}");
    }
    // Tiny files are not file systems.
    fs::write(&img, [0u8; 100]).unwrap();
    assert!(Disk::open(&img)
        .unwrap_err()
        .to_string()
        .contains("too small"));
    fs::write(&img, []).unwrap();
    assert!(Disk::open(&img).is_err());
}

#[test]
fn truncated_qcow2_gives_errors_not_panics() {
    let Some(f) = Fixture::new() else { return };
    f.qemu_img(&["convert", "-f", "raw", "-O", "qcow2", "a.raw", "full.qcow2"]);
    let full = fs::read(f.path("full.qcow2")).unwrap();
    let len = full.len();
    let cut = f.path("cut.qcow2");
    let out = f.path("out.raw");
    for keep in [
        0,
        4,
        50,
        71,
        100,
        200,
        70_000,
        200_000,
        len / 2,
        len - 65_536,
        len - 1,
    ] {
        fs::write(&cut, &full[..keep]).unwrap();
        let failures = exercise(&cut, Some(&out));
        if keep < len - 65_536 {
            assert!(
                failures > 0,
                "truncated to {keep} of {len} bytes yet nothing failed"
            );
        }
    }
    fs::write(&cut, &full[..50]).unwrap();
    let err = Image::open(&cut).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    fs::write(&cut, &full[..len / 2]).unwrap();
    let err = Disk::open(&cut)
        .and_then(|d| d.export_raw(&out))
        .unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(!out.exists(), "a failed export must not leave a file");
}

/// A fresh empty v3 qcow2 of 64 MiB with 64 KiB clusters.
fn fresh_qcow2(f: &Fixture, name: &str) -> std::path::PathBuf {
    let _ = fs::remove_file(f.path(name));
    f.qemu_img(&["create", "-q", "-f", "qcow2", name, "64M"]);
    f.path(name)
}

#[test]
fn hostile_qcow2_headers_are_refused() {
    let Some(f) = Fixture::new() else { return };
    let p = fresh_qcow2(&f, "h.qcow2");
    Image::open(&p).unwrap();

    type Case<'a> = (u64, &'a [u8], bool, &'a str);
    let cases: &[Case] = &[
        // (offset, bytes, Corrupt (else Unsupported), message part)
        (4, &[0, 0, 0, 4], false, "version 4"),
        (20, &[0, 0, 0, 40], true, "cluster_bits"),
        (20, &[0, 0, 0, 8], true, "cluster_bits"),
        (32, &[0, 0, 0, 1], false, "encrypted"),
        (72, &[0, 0, 0, 0, 0, 0, 0, 2], true, "qemu-img check"),
        (72, &[0, 0, 0, 0, 0, 0, 0, 4], false, "external data file"),
        (72, &[0, 0, 0, 0, 0, 0, 0, 16], false, "subclusters"),
        (72, &[0, 0, 1, 0, 0, 0, 0, 0], false, "unknown incompatible"),
        // Virtual size 2^62 with one L1 entry.
        (24, &[0x40, 0, 0, 0, 0, 0, 0, 0], true, "L1 table has"),
        // L1 table offset unaligned, or far past the end of the file.
        (
            40,
            &[0, 0, 0, 0, 0, 0, 0x12, 0x34],
            true,
            "not cluster aligned",
        ),
        (40, &[0, 0, 1, 0, 0, 0, 0, 0], true, "truncated"),
        // Backing file name longer than allowed.
        (
            8,
            &[0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x10, 0],
            true,
            "backing file name",
        ),
        (100, &[0, 0, 0, 20], true, "header_length"),
    ];
    for (at, bytes, corrupt, want) in cases {
        let p = fresh_qcow2(&f, "h.qcow2");
        patch(&p, *at, bytes);
        let err = Image::open(&p).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(want), "patch at {at}: want {want:?} in {msg}");
        if *corrupt {
            assert!(matches!(err, DiskError::Corrupt(_)), "{msg}");
        } else {
            assert!(matches!(err, DiskError::Unsupported(_)), "{msg}");
        }
    }

    // A huge L1 table is refused without being allocated: 2^23 entries
    // (64 MiB) for a 4 PiB disk.
    let p = fresh_qcow2(&f, "h.qcow2");
    patch(&p, 24, &(1u64 << 52).to_be_bytes());
    patch(&p, 36, &(1u32 << 23).to_be_bytes());
    let err = Image::open(&p).unwrap_err();
    assert!(err.to_string().contains("32 MiB"), "{err}");

    // The dirty bit (lazy refcounts) does not matter for reading.
    let p = fresh_qcow2(&f, "h.qcow2");
    patch(&p, 72, &[0, 0, 0, 0, 0, 0, 0, 1]);
    let image = Image::open(&p).unwrap();
    let mut buf = vec![1u8; 4096];
    image.read_at(0, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
}

#[test]
fn damaged_l1_and_l2_entries_are_errors() {
    let Some(f) = Fixture::new() else { return };
    f.qemu_img(&["convert", "-f", "raw", "-O", "qcow2", "a.raw", "d.qcow2"]);
    let p = f.path("d.qcow2");
    let pristine = fs::read(&p).unwrap();
    let be64 = |at: usize| u64::from_be_bytes(pristine[at..at + 8].try_into().unwrap());
    let l1_offset = be64(40) as usize;
    let l2_offset = (be64(l1_offset) & 0x00ff_ffff_ffff_fe00) as usize;
    assert!(l2_offset > 0);
    let cases: [(usize, u64, &str); 4] = [
        // L1 entry pointing to an unaligned L2 table.
        (l1_offset, (1 << 63) | 0x1_0200, "unaligned L2"),
        // L1 entry pointing past the end of the file.
        (l1_offset, (1 << 63) | (1 << 40), "truncated"),
        // L2 entry: data cluster past the end, then a compressed cluster.
        (l2_offset, (1 << 63) | (1 << 40), "truncated"),
        (
            l2_offset,
            1 << 62,
            "compressed qcow2 clusters are not supported",
        ),
    ];
    for (at, value, want) in cases {
        fs::write(&p, &pristine).unwrap();
        patch(&p, at as u64, &value.to_be_bytes());
        let image = Image::open(&p).unwrap();
        let err = image.read_at(0, &mut [0u8; 4096]).unwrap_err();
        assert!(err.to_string().contains(want), "{want}: {err}");
        assert_not_internal(&err, want);
    }
}

#[test]
fn backing_loops_stop_at_the_depth_limit() {
    let Some(f) = Fixture::new() else { return };
    fresh_qcow2(&f, "x.qcow2");
    f.qemu_img(&[
        "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "x.qcow2", "y.qcow2",
    ]);
    f.qemu_img(&[
        "rebase", "-u", "-f", "qcow2", "-F", "qcow2", "-b", "y.qcow2", "x.qcow2",
    ]);
    let err = Image::open(&f.path("y.qcow2")).unwrap_err();
    assert!(err.to_string().contains("deeper than"), "{err}");
}

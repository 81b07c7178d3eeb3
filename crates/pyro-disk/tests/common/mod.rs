//! Builds real ext4 images (mkfs.ext4 -d) and qcow2 files (qemu-img) in
//! temporary directories.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const IMAGE_SIZE: u64 = 64 << 20;
pub const BIG_SIZE: usize = 3 << 20;

/// Finds an external tool on PATH or in the sbin directories.
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The tools, or `None` (with a notice) when one is missing.
pub struct Tools {
    pub mkfs: PathBuf,
    pub qemu_img: PathBuf,
}

pub fn tools() -> Option<Tools> {
    match (tool("mkfs.ext4"), tool("qemu-img")) {
        (Some(mkfs), Some(qemu_img)) => Some(Tools { mkfs, qemu_img }),
        _ => {
            eprintln!(
                "NOTICE: skipping: mkfs.ext4 or qemu-img not found (apt-get install -y \
                 e2fsprogs qemu-utils)"
            );
            None
        }
    }
}

pub fn run(program: &Path, args: &[&str], cwd: &Path) {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {:?} failed: {}{}",
        program.display(),
        args,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Byte `i` of big.bin's data regions.
pub fn pattern(i: usize) -> u8 {
    ((i * 7 + i / 4096) % 251) as u8
}

/// big.bin of the first tree: 1 MiB of data, a 1 MiB hole, 1 MiB of data.
pub fn big_v1() -> Vec<u8> {
    let mut v: Vec<u8> = (0..BIG_SIZE).map(pattern).collect();
    v[1 << 20..2 << 20].fill(0);
    v
}

/// big.bin of the second tree: 4 KiB of 0xab written at 2.5 MiB.
pub fn big_v2() -> Vec<u8> {
    let mut v = big_v1();
    let at = (5 << 20) / 2;
    v[at..at + 4096].fill(0xab);
    v
}

fn write_sparse(path: &Path, content: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = fs::File::create(path).unwrap();
    // Leave zero-filled 64 KiB stretches as holes.
    for (i, chunk) in content.chunks(64 << 10).enumerate() {
        if chunk.iter().any(|&b| b != 0) {
            f.write_all_at(chunk, (i * (64 << 10)) as u64).unwrap();
        }
    }
    f.set_len(content.len() as u64).unwrap();
}

/// The first tree (variant 1) or the changed one (variant 2).
pub fn make_tree(root: &Path, variant: u8) {
    let ws = root.join("workspace");
    fs::create_dir_all(ws.join("src/lib")).unwrap();
    fs::create_dir_all(ws.join("empty")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/hostname"), "ws\n").unwrap();
    fs::write(ws.join("src/main.rs"), "fn main() {}\n").unwrap();
    symlink("src/main.rs", ws.join("link")).unwrap();
    symlink("src", ws.join("srclink")).unwrap();
    symlink("t".repeat(100), ws.join("long_link")).unwrap();
    fs::write(ws.join("exec.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(ws.join("exec.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(ws.join("src/main.rs"), fs::Permissions::from_mode(0o640)).unwrap();
    if variant == 1 {
        fs::write(ws.join("README.md"), "hello from tree one\n").unwrap();
        fs::write(ws.join("src/lib/deep.txt"), "deep\n").unwrap();
        write_sparse(&ws.join("big.bin"), &big_v1());
    } else {
        fs::write(ws.join("README.md"), "hello from tree two, changed\n").unwrap();
        fs::write(ws.join("new.txt"), "a new file\n").unwrap();
        write_sparse(&ws.join("big.bin"), &big_v2());
    }
}

/// `mkfs.ext4 -d tree` into a raw image of `size` bytes, deterministic
/// (fixed UUID, hash seed and time) so that two images of similar trees
/// share most of their blocks.
pub fn mkfs(t: &Tools, tree: &Path, img: &Path, size: u64, block_size: Option<u32>) {
    let size = format!("{}k", size / 1024);
    let uuid = "0c0ffee0-1234-4567-89ab-0123456789ab";
    let e_opts = format!("hash_seed={uuid}");
    let bs;
    let mut args = vec![
        "-q",
        "-F",
        "-U",
        uuid,
        "-E",
        &e_opts,
        "-d",
        tree.to_str().unwrap(),
    ];
    if let Some(b) = block_size {
        bs = b.to_string();
        args.extend(["-b", bs.as_str()]);
    }
    args.extend([img.to_str().unwrap(), size.as_str()]);
    run(&t.mkfs, &args, img.parent().unwrap());
}

/// A temp dir with tree one as `a.raw` and tree two as `b.raw`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub tools: Tools,
}

impl Fixture {
    pub fn new() -> Option<Fixture> {
        let tools = tools()?;
        let dir = tempfile::tempdir().unwrap();
        let f = Fixture { dir, tools };
        for v in [1u8, 2] {
            let tree = f.path(&format!("tree{v}"));
            make_tree(&tree, v);
            let img = f.path(if v == 1 { "a.raw" } else { "b.raw" });
            mkfs(&f.tools, &tree, &img, IMAGE_SIZE, Some(4096));
        }
        Some(f)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs qemu-img in the fixture's directory.
    pub fn qemu_img(&self, args: &[&str]) {
        run(&self.tools.qemu_img, args, self.dir.path());
    }
}

/// Whether two files have the same bytes (streamed).
pub fn same_content(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (mut fa, mut fb) = (fs::File::open(a).unwrap(), fs::File::open(b).unwrap());
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba).unwrap();
        if n == 0 {
            return true;
        }
        fb.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

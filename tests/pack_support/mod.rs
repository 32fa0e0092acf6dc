//! Helpers shared by the pack_* and boot_* integration tests: scratch projects, a sample tree
//! with every kind of entry, the test assets, and prerequisites that fail loudly when missing.
#![allow(dead_code)] // each test binary uses a different subset

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const SETUP_HINT: &str = "run scripts/setup.sh";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn ovm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ovm"))
}

/// Runs `ovm -C project ARGS`, returning its output.
pub fn ovm_in(project: &Path, args: &[&str]) -> Output {
    ovm().arg("-C").arg(project).args(args).output().expect("running the ovm binary")
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Fails (never skips) when a host tool is missing.
pub fn require_tool(name: &str) {
    #[allow(clippy::disallowed_methods)] // The test's own PATH, not ovm's settings.
    let found =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file())).unwrap_or(false);
    assert!(found, "`{name}` is not installed: {SETUP_HINT}");
}

/// Owners and device nodes need root; CI runs the suite as root.
pub fn require_root(why: &str) {
    assert!(nix::unistd::geteuid().is_root(), "this test must run as root ({why}); CI runs scripts/test.sh as root");
}

/// A file fetched by scripts/fetch-test-assets.sh, e.g. `asset("aarch64", "busybox")`.
pub fn asset(arch: &str, name: &str) -> PathBuf {
    let p = repo_root().join(".cache/test-assets").join(arch).join(name);
    assert!(p.is_file(), "{} is missing: {SETUP_HINT} (it calls scripts/fetch-test-assets.sh)", p.display());
    p
}

/// An empty project: recipes/, config/ with the repository's device table.
pub fn new_project() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("ovm-test-proj.").tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("recipes")).unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::copy(repo_root().join("config/device_table.txt"), dir.path().join("config/device_table.txt")).unwrap();
    dir
}

pub fn write(path: &Path, content: &[u8], mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Pseudo-random bytes from a seed (xorshift), so trees are the same on every run.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Text-like bytes: compressible, but not trivially.
pub fn prose(seed: u64, len: usize) -> Vec<u8> {
    let words = ["init", "mount", "proc", "sysfs", "busybox", "console", "kernel", "panic", "root", "overlay"];
    let r = noise(seed, len / 4 + 1);
    let mut out = Vec::with_capacity(len + 16);
    for (i, b) in r.iter().enumerate() {
        out.extend_from_slice(words[*b as usize % words.len()].as_bytes());
        out.push(if i % 11 == 10 { b'\n' } else { b' ' });
        if out.len() >= len {
            break;
        }
    }
    out.truncate(len);
    out
}

/// A tree with every kind of entry the packer handles: nested and empty directories, text and
/// binary files (one spanning several gzip blocks), executables, a name with a space, relative,
/// absolute, dangling and looping symlinks, a symlink to a directory, and a three-name hard link.
pub fn sample_tree(root: &Path) {
    write(&root.join("init"), b"#!/bin/sh\necho hello\n", 0o755);
    write(&root.join("bin/tool"), &noise(1, 70_000), 0o700);
    write(&root.join("etc/motd"), b"welcome\n", 0o600);
    write(&root.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\nsvc:x:101:102::/srv:/bin/false\n", 0o644);
    write(&root.join("etc/group"), b"root:x:0:\nsvc:x:102:\n", 0o644);
    write(&root.join("usr/share/doc/big.txt"), &prose(2, 600_000), 0o644);
    write(&root.join("usr/share/doc/with space.txt"), b"spaced\n", 0o664);
    write(&root.join("usr/lib/empty-file"), b"", 0o644);
    write(&root.join("srv/data/a.txt"), b"a\n", 0o640);
    std::fs::create_dir_all(root.join("var/empty/deeper")).unwrap();
    std::fs::create_dir_all(root.join("mnt")).unwrap();
    symlink("tool", root.join("bin/sh")).unwrap();
    symlink("/usr/share/doc/big.txt", root.join("etc/absolute-link")).unwrap();
    symlink("../nowhere/at/all", root.join("etc/dangling")).unwrap();
    symlink("loop-b", root.join("etc/loop-a")).unwrap();
    symlink("loop-a", root.join("etc/loop-b")).unwrap();
    symlink("usr/lib", root.join("lib")).unwrap();
    write(&root.join("usr/bin/multi"), &noise(3, 5_000), 0o755);
    std::fs::hard_link(root.join("usr/bin/multi"), root.join("usr/bin/alias-one")).unwrap();
    std::fs::hard_link(root.join("usr/bin/multi"), root.join("usr/bin/zz-alias")).unwrap();
}

/// Copies with `cp -a` (owners, modes, times and hard links kept; new inodes).
pub fn copy_tree(from: &Path, to: &Path) {
    run(Command::new("cp").arg("-a").arg(from).arg(to));
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", text(&out));
    out
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let data = std::fs::read(path).unwrap();
    ovm::pack::hex(&Sha256::digest(&data))
}

//! The hostile-archive corpus: every case is a clear error (or, for setuid bits, a dropped bit),
//! and nothing outside the destination changes. Each test snapshots the whole scratch directory
//! (which holds a sentinel directory next to the destination's parent) before and after.

use crate::unpack_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ovm::unpack::{unpack, UnpackError};
use unpack_support::{snapshot, write_archive, write_zip, Entry};

struct Scene {
    dir: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path();
        fs::create_dir_all(s.join("sentinel/sub")).unwrap();
        fs::write(s.join("sentinel/keep"), b"do not touch").unwrap();
        fs::write(s.join("sentinel/sub/inner"), b"nor this").unwrap();
        fs::create_dir_all(s.join("work")).unwrap();
        Scene { dir }
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn sentinel(&self) -> PathBuf {
        self.root().join("sentinel")
    }
    fn dest(&self) -> PathBuf {
        self.root().join("work/src")
    }

    /// Unpacks `archive` (strip 1) expecting failure; asserts the scratch tree is unchanged.
    fn reject(&self, archive: &Path) -> UnpackError {
        let before = snapshot(self.root());
        let err = unpack(archive, &self.dest(), 1).expect_err("hostile archive was accepted");
        assert_eq!(before, snapshot(self.root()), "unpacking a rejected archive changed the file system: {err}");
        assert!(!self.dest().exists());
        err
    }
}

/// Most cases: a legitimate-looking prefix, then the hostile entry.
fn tar_case<'a>(scene: &Scene, name: &str, hostile: Vec<Entry<'a>>) -> UnpackError {
    let archive = scene.root().join("archives").join(name);
    let mut entries: Vec<Entry<'a>> =
        vec![Entry::Dir("pkg-1.0/", 0o755), Entry::File("pkg-1.0/README", b"hello\n", 0o644)];
    entries.extend(hostile);
    write_archive(&archive, &entries);
    scene.reject(&archive)
}

#[test]
fn path_traversal_is_rejected() {
    let s = Scene::new();
    let err = tar_case(&s, "t.tar.gz", vec![Entry::File("pkg-1.0/../../sentinel/pwned", b"x", 0o644)]);
    assert!(matches!(err, UnpackError::UnsafePath { .. }), "{err}");
    assert!(err.to_string().contains("path contains a `..` component"), "{err}");
    assert!(err.to_string().contains("pkg-1.0/../../sentinel/pwned"), "{err}");
}

#[test]
fn absolute_path_is_rejected() {
    let s = Scene::new();
    let target = format!("{}/pwned", s.sentinel().display());
    let err = tar_case(&s, "t.tar", vec![Entry::File(&target, b"x", 0o644)]);
    assert!(err.to_string().contains("absolute path"), "{err}");
}

#[test]
fn symlink_escape_then_write_through_it_is_rejected() {
    let s = Scene::new();
    let err = tar_case(
        &s,
        "t.tar.xz",
        vec![Entry::Symlink("pkg-1.0/link", "../../sentinel"), Entry::File("pkg-1.0/link/pwned", b"x", 0o644)],
    );
    assert!(matches!(err, UnpackError::LinkEscapes { .. }), "{err}");
    assert!(err.to_string().contains("symlink `pkg-1.0/link` -> `../../sentinel` points outside"), "{err}");
}

#[test]
fn absolute_symlink_is_rejected() {
    let s = Scene::new();
    let target = s.sentinel().display().to_string();
    let err = tar_case(
        &s,
        "t.tar.bz2",
        vec![Entry::Symlink("pkg-1.0/link", &target), Entry::File("pkg-1.0/link/pwned", b"x", 0o644)],
    );
    assert!(matches!(err, UnpackError::LinkEscapes { .. }), "{err}");
}

#[test]
fn symlink_escaping_through_another_symlink_is_rejected() {
    // `a/up -> ..` is harmless on its own (it points at the tree root), and `l -> a/up/..` looks
    // like `a` to a purely textual check; resolved as the kernel would, it is the tree's parent.
    let s = Scene::new();
    let err = tar_case(
        &s,
        "t.tar.zst",
        vec![
            Entry::Dir("pkg-1.0/a/", 0o755),
            Entry::Symlink("pkg-1.0/a/up", ".."),
            Entry::Symlink("pkg-1.0/l", "a/up/.."),
        ],
    );
    assert!(matches!(err, UnpackError::LinkEscapes { .. }), "{err}");
    assert!(err.to_string().contains("`pkg-1.0/l` -> `a/up/..`"), "{err}");
}

#[test]
fn writing_through_an_in_tree_symlink_is_rejected() {
    let s = Scene::new();
    let err = tar_case(
        &s,
        "t.tgz",
        vec![
            Entry::Dir("pkg-1.0/real/", 0o755),
            Entry::Symlink("pkg-1.0/alias", "real"),
            Entry::File("pkg-1.0/alias/x", b"x", 0o644),
        ],
    );
    assert!(matches!(err, UnpackError::ThroughSymlink { .. }), "{err}");
}

#[test]
fn hardlink_escape_is_rejected() {
    let s = Scene::new();
    let err = tar_case(&s, "t.tar.gz", vec![Entry::Hardlink("pkg-1.0/h", "pkg-1.0/../../sentinel/keep")]);
    assert!(matches!(err, UnpackError::BadHardlink { .. }), "{err}");
    let target = format!("{}/keep", s.sentinel().display());
    let err = tar_case(&s, "t2.tar.gz", vec![Entry::Hardlink("pkg-1.0/h", &target)]);
    assert!(err.to_string().contains("absolute path"), "{err}");
}

#[test]
fn hardlink_to_a_symlink_is_rejected() {
    let s = Scene::new();
    let err =
        tar_case(&s, "t.tar", vec![Entry::Symlink("pkg-1.0/s", "README"), Entry::Hardlink("pkg-1.0/h", "pkg-1.0/s")]);
    assert!(err.to_string().contains("is or passes through a symlink"), "{err}");
}

#[test]
fn character_device_is_rejected() {
    let s = Scene::new();
    let err = tar_case(&s, "t.tar.gz", vec![Entry::Char("pkg-1.0/null")]);
    assert!(err.to_string().contains("entry `pkg-1.0/null` is a character device"), "{err}");
}

#[test]
fn block_device_is_rejected() {
    let s = Scene::new();
    let err = tar_case(&s, "t.tar.gz", vec![Entry::Block("pkg-1.0/sda")]);
    assert!(err.to_string().contains("is a block device"), "{err}");
}

#[test]
fn fifo_is_rejected() {
    let s = Scene::new();
    let err = tar_case(&s, "t.tar.gz", vec![Entry::Fifo("pkg-1.0/pipe")]);
    assert!(err.to_string().contains("is a fifo"), "{err}");
}

#[test]
fn setuid_and_setgid_bits_are_dropped() {
    let s = Scene::new();
    let archive = s.root().join("archives/suid.tar.gz");
    write_archive(
        &archive,
        &[
            Entry::Dir("pkg-1.0/", 0o755),
            Entry::Dir("pkg-1.0/sgid/", 0o2775),
            Entry::File("pkg-1.0/su", b"#!/bin/sh\n", 0o4755),
        ],
    );
    let before = snapshot(&s.sentinel());
    let got = unpack(&archive, &s.dest(), 1).unwrap();
    assert_eq!(before, snapshot(&s.sentinel()));
    assert_eq!(got.dropped_special_bits, 2);
    let mode = |p: &str| fs::metadata(s.dest().join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("su"), 0o755);
    assert_eq!(mode("sgid"), 0o775);
}

#[test]
fn truncated_gzip_stream_is_rejected() {
    let s = Scene::new();
    let archive = s.root().join("archives/trunc.tar.gz");
    let big: Vec<u8> = (0..400_000u32).flat_map(|i| i.to_le_bytes()).collect();
    write_archive(&archive, &[Entry::Dir("pkg-1.0/", 0o755), Entry::File("pkg-1.0/big", &big, 0o644)]);
    let bytes = fs::read(&archive).unwrap();
    fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
    let err = s.reject(&archive);
    assert!(matches!(err, UnpackError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("corrupt or truncated archive"), "{err}");
}

#[test]
fn truncated_tail_after_the_tar_end_is_noticed() {
    // Cut only the last bytes (the gzip trailer): every tar entry is intact, only the CRC and
    // length check at the end of the stream can tell.
    let s = Scene::new();
    let archive = s.root().join("archives/tail.tar.gz");
    write_archive(&archive, &[Entry::Dir("pkg-1.0/", 0o755), Entry::File("pkg-1.0/a", b"abc", 0o644)]);
    let bytes = fs::read(&archive).unwrap();
    fs::write(&archive, &bytes[..bytes.len() - 4]).unwrap();
    let err = s.reject(&archive);
    assert!(matches!(err, UnpackError::Corrupt { .. }), "{err}");
}

#[test]
fn corrupt_xz_bz2_and_zstd_streams_are_rejected() {
    let s = Scene::new();
    let big: Vec<u8> = (0..300_000u32).flat_map(|i| (i * 7919).to_le_bytes()).collect();
    for name in ["c.tar.xz", "c.tar.bz2", "c.tar.zst"] {
        let archive = s.root().join("archives").join(name);
        write_archive(&archive, &[Entry::Dir("pkg-1.0/", 0o755), Entry::File("pkg-1.0/big", &big, 0o644)]);
        let mut bytes = fs::read(&archive).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 16] {
            *b ^= 0x5a;
        }
        fs::write(&archive, &bytes).unwrap();
        let err = s.reject(&archive);
        assert!(matches!(err, UnpackError::Corrupt { .. }), "{name}: {err}");
        // And simply cut short.
        fs::write(&archive, &bytes[..mid]).unwrap();
        let err = s.reject(&archive);
        assert!(matches!(err, UnpackError::Corrupt { .. }), "{name} truncated: {err}");
    }
}

#[test]
fn zip_slip_is_rejected() {
    let s = Scene::new();
    let archive = s.root().join("archives/slip.whl");
    write_zip(&archive, &[Entry::File("pkg/ok", b"x", 0o644), Entry::File("pkg/../../sentinel/pwned", b"x", 0o644)]);
    let err = s.reject(&archive);
    assert!(err.to_string().contains("`..`"), "{err}");
}

#[test]
fn zip_symlink_escape_is_rejected() {
    let s = Scene::new();
    let archive = s.root().join("archives/link.zip");
    write_zip(&archive, &[Entry::File("pkg/ok", b"x", 0o644), Entry::Symlink("pkg/l", "../../../sentinel")]);
    let err = s.reject(&archive);
    assert!(matches!(err, UnpackError::LinkEscapes { .. }), "{err}");
}

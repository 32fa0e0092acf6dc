//! Unpacking good archives: every supported format, strip, links, modes, times, merging into an
//! existing tree, and placing a source as the recipe says.

use crate::unpack_support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use ovm::recipe::{Artifact, Source};
use ovm::unpack::{place_source, unpack, ArchiveFormat, UnpackError};
use unpack_support::{snapshot, write_archive, write_zip, Entry, MTIME};

fn sample() -> Vec<Entry<'static>> {
    vec![
        Entry::Dir("pkg-1.0/", 0o755),
        Entry::Dir("pkg-1.0/src/", 0o755),
        Entry::File("pkg-1.0/src/main.c", b"int main(void) { return 0; }\n", 0o644),
        Entry::File("pkg-1.0/configure", b"#!/bin/sh\necho configured\n", 0o755),
        Entry::Symlink("pkg-1.0/src/entry.c", "main.c"),
        Entry::Hardlink("pkg-1.0/configure.hard", "pkg-1.0/configure"),
        Entry::Dir("pkg-1.0/empty/", 0o755),
        // A read-only directory with content: the owner keeps write access so builds and
        // `ovm clean` can work in it.
        Entry::Dir("pkg-1.0/ro/", 0o555),
        Entry::File("pkg-1.0/ro/file", b"ro\n", 0o444),
    ]
}

fn check_tree(dest: &Path, with_times: bool) {
    assert_eq!(fs::read_to_string(dest.join("src/main.c")).unwrap(), "int main(void) { return 0; }\n");
    assert_eq!(fs::read_link(dest.join("src/entry.c")).unwrap(), Path::new("main.c"));
    let configure = fs::metadata(dest.join("configure")).unwrap();
    assert_eq!(configure.permissions().mode() & 0o777, 0o755);
    assert!(dest.join("empty").is_dir());
    assert_eq!(fs::metadata(dest.join("ro")).unwrap().permissions().mode() & 0o777, 0o755);
    assert_eq!(fs::metadata(dest.join("ro/file")).unwrap().permissions().mode() & 0o777, 0o644);
    assert_eq!(fs::metadata(dest).unwrap().permissions().mode() & 0o777, 0o755);
    if with_times {
        assert_eq!(configure.mtime() as u64, MTIME, "tar mtimes are kept (make compares them)");
        assert_eq!(fs::metadata(dest.join("src")).unwrap().mtime() as u64, MTIME);
        let hard = fs::metadata(dest.join("configure.hard")).unwrap();
        assert_eq!((hard.ino(), hard.nlink()), (configure.ino(), 2));
    }
}

#[test]
fn every_tar_format_unpacks_with_strip() {
    for name in ["a.tar", "a.tar.gz", "a.tgz", "a.tar.xz", "a.tar.bz2", "a.tar.zst"] {
        let t = tempfile::tempdir().unwrap();
        let archive = t.path().join(name);
        write_archive(&archive, &sample());
        let dest = t.path().join("work/x86_64/pkg/src");
        let got = unpack(&archive, &dest, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((got.files, got.symlinks, got.hardlinks, got.dirs), (3, 1, 1, 3), "{name}");
        check_tree(&dest, true);
        // Only the destination appeared next to it: no staging directory left behind.
        let siblings: Vec<_> = fs::read_dir(dest.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(siblings, ["src"], "{name}");
    }
}

#[test]
fn zip_and_wheel_unpack_with_modes_and_symlinks() {
    for name in ["a.zip", "a.whl"] {
        let t = tempfile::tempdir().unwrap();
        let archive = t.path().join(name);
        let entries = sample().into_iter().filter(|e| !matches!(e, Entry::Hardlink(..))).collect::<Vec<_>>();
        write_zip(&archive, &entries);
        let dest = t.path().join("tc/zig");
        unpack(&archive, &dest, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_tree(&dest, false);
    }
}

#[test]
fn strip_zero_keeps_the_top_directory_and_two_drops_more() {
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("a.tar.gz");
    write_archive(&archive, &sample());
    unpack(&archive, &t.path().join("s0"), 0).unwrap();
    assert!(t.path().join("s0/pkg-1.0/src/main.c").is_file());
    unpack(&archive, &t.path().join("s2"), 2).unwrap();
    assert!(t.path().join("s2/main.c").is_file());
    assert!(t.path().join("s2/file").is_file());
}

#[test]
fn a_second_archive_merges_into_an_existing_tree_without_overwriting() {
    let t = tempfile::tempdir().unwrap();
    let main = t.path().join("main.tar.gz");
    write_archive(&main, &sample());
    let gmp = t.path().join("gmp.tar.xz");
    write_archive(&gmp, &[Entry::Dir("gmp-6.2.1/", 0o755), Entry::File("gmp-6.2.1/gmp.h", b"/* gmp */\n", 0o644)]);
    let src = t.path().join("src");
    unpack(&main, &src, 1).unwrap();
    unpack(&gmp, &src.join("gmp"), 1).unwrap();
    assert!(src.join("gmp/gmp.h").is_file());

    // Adding the main archive again into the same tree would overwrite: refused, tree unchanged.
    let before = snapshot(t.path());
    let err = unpack(&main, &src, 1).unwrap_err();
    assert!(matches!(err, UnpackError::DestExists { .. }), "{err}");
    assert_eq!(before, snapshot(t.path()));
}

#[test]
fn duplicate_entries_replace_earlier_ones_without_following_links() {
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("dup.tar");
    write_archive(
        &archive,
        &[
            Entry::Dir("p/", 0o755),
            Entry::File("p/target", b"original\n", 0o644),
            Entry::Symlink("p/f", "target"),
            // Same name again as a regular file: replaces the link, does not write through it.
            Entry::File("p/f", b"new\n", 0o644),
        ],
    );
    let dest = t.path().join("d");
    unpack(&archive, &dest, 1).unwrap();
    assert_eq!(fs::read_to_string(dest.join("target")).unwrap(), "original\n");
    assert_eq!(fs::read_to_string(dest.join("f")).unwrap(), "new\n");
    assert!(!fs::symlink_metadata(dest.join("f")).unwrap().file_type().is_symlink());
}

#[test]
fn formats_are_told_by_name() {
    assert_eq!(ArchiveFormat::from_file_name("busybox-1.35.0.tar.bz2"), Some(ArchiveFormat::TarBz2));
    assert_eq!(ArchiveFormat::from_file_name("make-dfsg_4.3.orig.tar.gz"), Some(ArchiveFormat::TarGz));
    assert_eq!(ArchiveFormat::from_file_name("x.TGZ"), Some(ArchiveFormat::TarGz));
    assert_eq!(ArchiveFormat::from_file_name("ziglang-0.14.1-py3-none-any.whl"), Some(ArchiveFormat::Zip));
    assert_eq!(ArchiveFormat::from_file_name("x.tar.zst"), Some(ArchiveFormat::TarZst));
    assert_eq!(ArchiveFormat::from_file_name("fix.patch"), None);
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("x.rar"), b"").unwrap();
    let err = unpack(&t.path().join("x.rar"), &t.path().join("d"), 1).unwrap_err();
    assert!(matches!(err, UnpackError::UnknownFormat { .. }), "{err}");
}

fn source(unpack: bool, dest: &str) -> Source {
    Source {
        recipe: "pkg".into(),
        primary: Artifact { file: "x".into(), sha256: "0".repeat(64), urls: vec![], debian: None, pypi: None },
        alternatives: vec![],
        dest: dest.into(),
        strip: 1,
        unpack,
    }
}

#[test]
fn place_source_unpacks_or_copies_as_the_recipe_says() {
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("gmp-6.2.1.tar.xz");
    write_archive(&archive, &[Entry::Dir("gmp-6.2.1/", 0o755), Entry::File("gmp-6.2.1/gmp.h", b"h\n", 0o644)]);
    let plain = t.path().join("config.sub");
    fs::write(&plain, b"#!/bin/sh\n").unwrap();
    let tree = t.path().join("src");
    fs::create_dir_all(&tree).unwrap();

    place_source(&source(true, "gmp"), &archive, &tree).unwrap();
    assert!(tree.join("gmp/gmp.h").is_file());
    place_source(&source(false, "build-aux"), &plain, &tree).unwrap();
    assert_eq!(fs::read(tree.join("build-aux/config.sub")).unwrap(), b"#!/bin/sh\n");
    let err = place_source(&source(false, "build-aux"), &plain, &tree).unwrap_err();
    assert!(matches!(err, UnpackError::DestExists { .. }), "{err}");
}

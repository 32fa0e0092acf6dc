//! Patch series: a good series applies (quilt- and git-style patches, several files each, hunks at
//! an offset, created/deleted/executable files); a bad hunk fails naming the patch, file and hunk,
//! and the tree is then exactly as before — also when earlier patches of the series applied.

use crate::copy_dir;
use crate::unpack_support as support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ovm::patch::{apply_series, PatchError};
use support::snapshot;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/patches")
}

/// A fresh copy of the fixture tree.
fn tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("tree"), t.path());
    t
}

fn good_series() -> Vec<PathBuf> {
    vec![fixtures().join("series/0001-greeting.patch"), fixtures().join("series/0002-exclaim.patch")]
}

#[test]
fn good_series_applies() {
    let t = tree();
    apply_series(t.path(), &good_series()).unwrap();
    let read = |p: &str| fs::read_to_string(t.path().join(p)).unwrap();
    assert_eq!(
        read("hello.c"),
        "/* hello: a tiny program for the patch tests */\n#include <stdio.h>\n\nstatic const char *greeting(void)\n{\n\
         \treturn \"hello, world\";\n}\n\nint main(void)\n{\n\tprintf(\"%s!\\n\", greeting());\n\treturn 0;\n}\n"
    );
    assert!(read("Makefile").contains("\t$(CC) $(CFLAGS) -o $@ hello.c\n"));
    assert_eq!(read("docs/NEWS"), "NEWS\n====\n1.1: says hello, world\n", "diff -N creation");
    assert!(!t.path().join("obsolete.txt").exists(), "diff -N deletion");
    assert_eq!(read("scripts/run.sh"), "#!/bin/sh\nexec ./hello \"$@\"\n");
    let mode = fs::metadata(t.path().join("scripts/run.sh")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755, "git's `new file mode 100755`");
    // No temporary files are left next to the patched ones.
    let names: Vec<String> = snapshot(t.path()).into_keys().collect();
    assert!(names.iter().all(|n| !n.contains(".ovm-patch-")), "{names:?}");
}

#[test]
fn bad_hunk_names_patch_file_and_hunk_and_leaves_the_tree_unchanged() {
    let t = tree();
    let before = snapshot(t.path());
    let mut series = good_series();
    series.push(fixtures().join("bad-hunk.patch"));
    let err = apply_series(t.path(), &series).unwrap_err();
    match &err {
        PatchError::HunkFailed { patch, file, hunk, header } => {
            assert!(patch.ends_with("bad-hunk.patch"));
            assert_eq!((file.as_str(), *hunk, header.as_str()), ("hello.c", 2, "@@ -9,5 +9,5 @@"));
        }
        other => panic!("expected a failed hunk, got: {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("bad-hunk.patch: hunk #2 (@@ -9,5 +9,5 @@) of `hello.c` does not apply"), "{msg}");
    assert_eq!(before, snapshot(t.path()), "the first two patches and the good hunks must not be left applied");
}

fn write_patch(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

/// Applies one patch written from `text` and expects an error; the tree must be unchanged.
fn reject(t: &Path, text: &str) -> PatchError {
    let scratch = tempfile::tempdir().unwrap();
    let patch = write_patch(scratch.path(), "p.patch", text);
    let before = snapshot(t);
    let err = apply_series(t, &[patch]).unwrap_err();
    assert_eq!(before, snapshot(t), "{err}");
    err
}

#[test]
fn paths_leaving_the_tree_are_rejected() {
    let t = tree();
    let outside = t.path().join("../escaped");
    let err = reject(t.path(), "--- a/../escaped\n+++ b/../escaped\n@@ -0,0 +1 @@\n+x\n");
    assert!(matches!(err, PatchError::UnsafePath { .. }), "{err}");
    assert!(err.to_string().contains("path contains `..`"), "{err}");
    assert!(!outside.exists());
    let err = reject(t.path(), "--- /dev/null\n+++ /tmp/abs\n@@ -0,0 +1 @@\n+x\n");
    assert!(err.to_string().contains("`/tmp/abs`: absolute path"), "{err}");
}

#[test]
fn symlinks_are_not_patched_through() {
    let t = tree();
    std::os::unix::fs::symlink("hello.c", t.path().join("link.c")).unwrap();
    let err = reject(
        t.path(),
        "--- a/link.c\n+++ b/link.c\n@@ -1 +1 @@\n-/* hello: a tiny program for the patch tests */\n+/* x */\n",
    );
    assert!(err.to_string().contains("symlink"), "{err}");
}

#[test]
fn missing_target_existing_creation_and_garbage_are_errors() {
    let t = tree();
    let err = reject(t.path(), "--- a/nope.c\n+++ b/nope.c\n@@ -1 +1 @@\n-a\n+b\n");
    assert!(matches!(err, PatchError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("`nope.c` does not exist"), "{err}");
    let err = reject(t.path(), "--- /dev/null\n+++ b/Makefile\n@@ -0,0 +1 @@\n+all:\n");
    assert!(matches!(err, PatchError::AlreadyExists { .. }), "{err}");
    let err = reject(t.path(), "this is not a patch\n");
    assert!(matches!(err, PatchError::Parse { .. }), "{err}");
}

#[test]
fn a_missing_patch_file_is_named() {
    let t = tree();
    let err = apply_series(t.path(), &[PathBuf::from("/nonexistent/x.patch")]).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x.patch"), "{err}");
}

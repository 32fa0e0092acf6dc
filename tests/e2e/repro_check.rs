//! `scripts/repro-check.sh` itself: it must say "identical" (exit 0) only for equal images, and for
//! different ones exit 1 naming the first difference. Cheap: the projects are packed from
//! `rootfs/` alone (`ovm pack`), nothing is compiled.

use crate::build_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use build_support::{repo_root, require_tool, text, TestProject};

/// `ovm pack` of `rootfs/` alone: these projects hold the repository's recipes, none built, which
/// pack refuses without `--allow-empty` (an image nobody can boot); here that image is the point.
fn pack(p: &TestProject, args: &[&str]) {
    let mut all = vec!["pack", "x86_64", "--allow-empty"];
    all.extend_from_slice(args);
    p.ok(&all);
}

fn check(a: &Path, b: &Path) -> (i32, String) {
    let out = Command::new(repo_root().join("scripts/repro-check.sh")).arg("x86_64").arg(a).arg(b).output().unwrap();
    (out.status.code().unwrap_or(-1), text(&out))
}

/// Packs `a` plainly and `b` with `b_args`, then compares them with the script.
fn pack_and_check(a: &TestProject, b: &TestProject, b_args: &[&str]) -> (i32, String) {
    pack(a, &[]);
    pack(b, b_args);
    check(a.path(), b.path())
}

fn two_projects() -> (TestProject, TestProject) {
    let a = TestProject::from_repo();
    let b = TestProject::from_repo();
    for p in [&a, &b] {
        p.write("rootfs/etc/repro-note", "same\n");
        p.write("rootfs/usr/share/zz-last", "same\n");
    }
    (a, b)
}

#[test]
fn equal_images_are_reported_identical() {
    require_tool("cpio");
    let (a, b) = two_projects();
    let (code, out) = pack_and_check(&a, &b, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("repro-check: x86_64: identical"), "{out}");
}

#[test]
fn the_first_differing_file_is_named() {
    require_tool("cpio");
    let (a, b) = two_projects();
    // Two differences: the script must name the first in path order, with both hashes.
    b.write("rootfs/etc/repro-note", "other\n");
    b.write("rootfs/usr/share/zz-last", "other\n");
    let (code, out) = pack_and_check(&a, &b, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the images DIFFER"), "{out}");
    assert!(out.contains("first differing file: /etc/repro-note\n"), "{out}");
    assert!(!out.contains("first differing file: /usr/share/zz-last"), "{out}");
}

#[test]
fn a_mode_difference_is_shown_in_the_entry_list() {
    require_tool("cpio");
    let (a, b) = two_projects();
    let note = b.path().join("rootfs/etc/repro-note");
    fs::set_permissions(&note, fs::Permissions::from_mode(0o755)).unwrap();
    let (code, out) = pack_and_check(&a, &b, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("first difference in the entry list"), "{out}");
    assert!(out.contains("> -rwxr-xr-x 1 0 0 5 "), "the mode change is not shown:\n{out}");
    assert!(out.contains("every file's content is identical"), "{out}");
}

#[test]
fn a_compression_only_difference_is_named() {
    require_tool("cpio");
    require_tool("xz");
    let (a, b) = two_projects();
    let (code, out) = pack_and_check(&a, &b, &["--compress", "xz"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("first difference: the compression (A: gzip, B: xz)"), "{out}");
    assert!(out.contains("the compressed bytes only; the cpio archives are identical"), "{out}");
}

#[test]
fn a_project_without_an_image_is_a_usage_error() {
    let (a, b) = two_projects();
    pack(&a, &[]);
    let (code, out) = check(a.path(), b.path());
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("output/x86_64/manifest.txt is missing"), "{out}");
}

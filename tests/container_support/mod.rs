//! Helpers of the container tests (container_podman, container_docker): the base rootfs that
//! scripts/container-base.sh debootstraps (no registry is reachable here), the image's build
//! context, the project copy a container builds in, and the host build both compare against.
//!
//! The host build is made once per `cargo test` run: the first container test of the run builds
//! the x86_64 initrd outside any container (offline, zig toolchain) and records its sha256 next to
//! the run's sstate dir; a later container test of the same run reads the record instead of
//! building the same inputs again (or, in the same test binary, waits for the one building it).
//! A test run alone finds no record and builds, so each passes alone.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Instant;

use crate::build_support::{self, copy_tree, mirror, repo_root, text, TestProject, SETUP_HINT};
use crate::e2e_support;

/// What every container test builds, inside and outside: the command line of docs/containers.md.
pub const BUILD_ARGS: &[&str] = &["build", "--sandbox", "x86_64", "--toolchain", "zig"];
/// The image that build makes, relative to the project.
pub const INITRD: &str = "output/x86_64/initrd.cpio.gz";

/// scripts/container-base.sh's debootstrap'd Debian rootfs.
pub fn base_tarball() -> PathBuf {
    let t = repo_root().join(".cache/container/ovm-base-bookworm.tar");
    assert!(t.is_file(), "{} is missing: {SETUP_HINT} (it calls scripts/container-base.sh)", t.display());
    t
}

/// The tag of the base image imported from `tarball`: its content's sha256 (16 hex digits), so an
/// image is imported once per tarball and a new debootstrap gets a new one.
pub fn base_tag(tarball: &Path) -> String {
    let sha = ovm::signature::sha256_hex(&fs::read(tarball).expect("reading the base tarball"));
    sha[..16].to_string()
}

pub fn run(mut cmd: Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e} ({SETUP_HINT})"))
}

/// Runs `cmd`, asserts success, returns stdout+stderr.
pub fn ok(cmd: Command, what: &str) -> String {
    let out = run(cmd);
    let t = text(&out);
    assert!(out.status.success(), "{what} failed ({:?}):\n{t}", out.status);
    t
}

/// Fills `dir` with the image's build context: the repository's Containerfile and this build's ovm
/// (named `ovm`, passed as `--build-arg OVM_BIN=ovm`). Returns the Containerfile's path.
pub fn image_context(dir: &Path) -> PathBuf {
    let file = dir.join("Containerfile");
    fs::copy(repo_root().join("Containerfile"), &file).expect("copy Containerfile");
    fs::copy(build_support::ovm_bin(), dir.join("ovm")).expect("copy ovm");
    file
}

/// Fills `dir` with what a container builds from: the repository's recipes, config, patches and
/// rootfs (its config as is: the command line picks the zig toolchain) and the offline mirror as
/// the project's own `sources/`, so the build needs no network.
pub fn fill_project(dir: &Path) {
    for d in ["recipes", "config", "patches", "rootfs"] {
        copy_tree(&repo_root().join(d), &dir.join(d));
    }
    copy_tree(mirror(), &dir.join("sources"));
}

pub fn sha256_of(path: &Path) -> String {
    ovm::digest::sha256_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The sha256 of the x86_64 initrd built outside any container (see the module comment).
pub fn host_initrd_sha256() -> String {
    // The container tests share one binary and may run at the same time: the second waits here
    // for the first one's build and then reads its record, instead of building the same initrd
    // alongside it (and racing it to the record's rename).
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let record = build_support::run_record("host-initrd-x86_64.sha256");
    if let Ok(sha) = fs::read_to_string(&record) {
        let sha = sha.trim();
        if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            eprintln!("container tests: the host initrd of this run was built already: {sha}");
            return sha.to_string();
        }
    }
    let outside = TestProject::from_repo();
    e2e_support::offline_ok(&outside, BUILD_ARGS);
    let sha = sha256_of(&outside.path().join(INITRD));
    // Written whole under another name, then renamed: a reader never sees half a record.
    let partial = record.with_extension("partial");
    fs::write(&partial, &sha).expect("writing the host initrd's record");
    fs::rename(&partial, &record).expect("renaming the host initrd's record");
    sha
}

/// Prints how far a test has come (`cargo test -- --nocapture` shows it; CI logs keep it).
pub struct Laps {
    name: &'static str,
    started: Instant,
}

impl Laps {
    pub fn start(name: &'static str) -> Laps {
        Laps { name, started: Instant::now() }
    }

    pub fn lap(&self, what: &str) {
        eprintln!("{}: {what} at {:.0} s", self.name, self.started.elapsed().as_secs_f64());
    }
}

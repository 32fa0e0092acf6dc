//! ovm inside rootless Podman, for real: the image is built from the repository's `Containerfile`
//! (on a base imported from scripts/container-base.sh's debootstrap'd rootfs: no registry is
//! reachable here), then
//! 1. with Podman's defaults, `ovm doctor` fails and names the flag that is missing;
//! 2. with seccomp unconfined but /proc still masked, it names `systempaths=unconfined` and reports
//!    that the degraded `OVM_SANDBOX_PROC=host-ro` would work, and with that variable it passes;
//! 3. with the documented flags, `ovm build --sandbox x86_64 --toolchain zig` of a copy of the
//!    project (with its offline `sources/`, `--network none`) gives the same initrd sha256 as the
//!    same build outside the container (made once per `cargo test` run for both container tests,
//!    see container_support).
//!
//! Rootless means a normal user: the test creates `ovm-podman` (with a home for Podman's storage and
//! the subordinate ids `useradd` assigns) and runs podman as that user, so it needs root, like CI.
//! The base image is imported once per tarball (tagged by its sha256); everything else is per run.
//! Podman, uidmap, runc and the base tarball come from scripts/setup.sh; a missing one fails the test.

use crate::build_support;
use crate::container_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use build_support::{repo_root, require_tool, text, SETUP_HINT};
use container_support::{base_tag, base_tarball, fill_project, image_context, ok, run, sha256_of, BUILD_ARGS, INITRD};

const USER: &str = "ovm-podman";
const IMAGE: &str = "localhost/ovm-test:latest";
/// What this host's rootless Podman needs in any case: runc (crun is not installed, and Debian's
/// default for rootless is crun) and no network (slirp4netns is not installed, and a build needs none).
const BASE_FLAGS: &[&str] = &["--rm", "--runtime", "runc", "--network", "none"];
/// The flags docs/containers.md gives for a strict sandbox in rootless Podman.
const SANDBOX_FLAGS: &[&str] = &["--security-opt", "seccomp=unconfined", "--security-opt", "systempaths=unconfined"];

/// The rootless user, created on first use.
fn podman_user() -> (u32, PathBuf) {
    assert!(nix::unistd::geteuid().is_root(), "the Podman test creates its rootless user: run it as root (CI does)");
    if nix::unistd::User::from_name(USER).expect("reading passwd").is_none() {
        let out = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", USER])
            .output()
            .unwrap_or_else(|e| panic!("useradd: {e}"));
        assert!(out.status.success(), "useradd {USER}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let user = nix::unistd::User::from_name(USER).expect("passwd").expect("the user just created");
    for file in ["/etc/subuid", "/etc/subgid"] {
        let ids = fs::read_to_string(file).unwrap_or_default();
        assert!(
            ids.lines().any(|l| l.starts_with(&format!("{USER}:"))),
            "{file} has no range for {USER}: rootless Podman needs one (useradd adds it when uidmap is installed; \
             {SETUP_HINT})"
        );
    }
    (user.uid.as_raw(), user.dir)
}

/// `podman ARGS` as the rootless user, with a clean environment and the settings this host needs
/// without a systemd user session (cgroupfs manager, file event log).
fn podman(args: &[&str]) -> Command {
    let (_, home) = podman_user();
    let mut cmd = Command::new("setpriv");
    cmd.args([&format!("--reuid={USER}"), &format!("--regid={USER}"), "--init-groups", "--"])
        .args(["env", "-i"])
        .arg(format!("HOME={}", home.display()))
        .arg(format!("USER={USER}"))
        .arg("PATH=/usr/sbin:/usr/bin:/sbin:/bin")
        .args(["podman", "--cgroup-manager", "cgroupfs", "--events-backend", "file"])
        .args(args)
        .current_dir(&home);
    cmd
}

/// A scratch directory the rootless user owns (Podman maps container root to it).
fn user_dir(name: &str) -> tempfile::TempDir {
    let (uid, _) = podman_user();
    let dir = tempfile::Builder::new().prefix(name).tempdir().expect("scratch dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    chown_tree(dir.path(), uid);
    dir
}

fn chown_tree(path: &Path, uid: u32) {
    let out = Command::new("chown").arg("-R").arg(format!("{uid}:{uid}")).arg(path).output().expect("chown");
    assert!(out.status.success(), "chown {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
}

/// Brings the rootless user's Podman back to a usable state after an earlier run was killed with
/// its container up (a machine restart, CI's timeout): /tmp is not a tmpfs here, so Podman does not
/// see the reboot, its database still lists the container as running with a dead conmon, and every
/// command fails with "invalid internal status". `podman system migrate` is Podman's own remedy
/// (it restarts the pause process and stops what it believed was running); the remains of the
/// killed runs are then removed. The user exists only for this test, so nothing else is lost.
fn recover_stale_podman() {
    let probe = run(podman(&["ps", "--all", "--quiet"]));
    let t = text(&probe);
    if probe.status.success() {
        return;
    }
    assert!(t.contains("system migrate"), "podman ps failed for a reason other than stale state:\n{t}");
    eprintln!("container_podman: Podman's state is stale (an earlier run was killed): podman system migrate");
    ok(podman(&["system", "migrate"]), "podman system migrate");
    ok(podman(&["rm", "--all", "--force"]), "removing the containers of killed runs");
}

/// Imports the base rootfs (once per tarball content) and builds the test image from the
/// repository's Containerfile with this build's ovm; returns the base image's name.
fn build_image() -> String {
    recover_stale_podman();
    let tarball = base_tarball();
    let base = format!("localhost/ovm-base:{}", base_tag(&tarball));
    if !run(podman(&["image", "exists", &base])).status.success() {
        let (uid, _) = podman_user();
        // The tarball sits under the (root-only traversable?) checkout: hand podman a readable copy.
        let staging = user_dir("ovm-base-");
        let copy = staging.path().join("base.tar");
        fs::copy(&tarball, &copy).expect("copying the base tarball");
        chown_tree(&copy, uid);
        ok(podman(&["import", copy.to_str().expect("utf-8"), &base]), "podman import of the base rootfs");
        // Each checkout debootstraps its own tarball (different mtimes, so a different tag): the
        // bases of earlier checkouts would pile up at ~200 MB each.
        let tags =
            ok(podman(&["images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/ovm-base"]), "podman images");
        for old in tags.lines().map(str::trim).filter(|t| t.starts_with("localhost/ovm-base:") && *t != base) {
            ok(podman(&["rmi", "--force", old]), "removing a superseded base image");
        }
    }
    let ctx = user_dir("ovm-image-");
    let file = image_context(ctx.path());
    chown_tree(ctx.path(), podman_user().0);
    let ctx_path = ctx.path().to_str().expect("utf-8 path");
    let file = file.to_str().expect("utf-8 path");
    ok(
        podman(&[
            "build",
            "--runtime",
            "runc",
            "--network",
            "none",
            "--from",
            &base,
            "--build-arg",
            "OVM_BIN=ovm",
            "-t",
            IMAGE,
            "-f",
            file,
            ctx_path,
        ]),
        "podman build -f Containerfile",
    );
    // Each run's image replaces the last one's tag; drop the untagged remains (a debug ovm each).
    ok(podman(&["image", "prune", "-f"]), "podman image prune");
    base
}

/// `podman run` of the test image with `flags`, the project at /project, then ovm's `args`.
fn run_ovm(flags: &[&str], project: &Path, args: &[&str]) -> Output {
    let volume = format!("{}:/project", project.display());
    let mut all: Vec<&str> = vec!["run"];
    all.extend(BASE_FLAGS);
    all.extend(flags);
    all.extend(["-v", &volume, IMAGE]);
    all.extend(args);
    run(podman(&all))
}

/// The zig compiler cache of the builds inside the container, kept across runs as the outside
/// builds keep `.cache/test-build-cache`: compiled objects keyed by their inputs (musl, compiler-rt),
/// which saves minutes per run and none of ovm's tasks. Owned by the rootless user, who writes it.
fn inside_zig_cache() -> PathBuf {
    let dir = repo_root().join(".cache/container/zig-cache");
    fs::create_dir_all(&dir).expect("creating the container's zig cache");
    chown_tree(&dir, podman_user().0);
    dir
}

#[test]
fn rootless_podman_builds_the_same_initrd_and_doctor_names_missing_flags() {
    for tool in ["podman", "newuidmap", "runc", "setpriv"] {
        require_tool(tool);
    }
    let laps = container_support::Laps::start("container_podman");
    let lap = |what: &str| laps.lap(what);
    build_image();
    lap("image built");

    // 1-2. What doctor says under Podman's defaults, and with only seccomp relaxed.
    let empty = user_dir("ovm-doctor-");
    let out = run_ovm(&[], empty.path(), &["doctor"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "doctor under Podman's defaults must fail:\n{t}");
    assert!(t.contains("[info] container: found /run/.containerenv"), "container not detected:\n{t}");
    assert!(t.contains("looks like podman (rootless)"), "the engine is not named:\n{t}");
    assert!(t.contains("[FAIL] trial sandbox"), "{t}");
    assert!(t.contains("--security-opt seccomp=unconfined"), "the seccomp flag is not named:\n{t}");

    let seccomp_only = &SANDBOX_FLAGS[..2];
    let out = run_ovm(seccomp_only, empty.path(), &["doctor"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "doctor with masked /proc must fail:\n{t}");
    assert!(t.contains("[FAIL] trial sandbox: mounting a new /proc on /proc failed: EPERM"), "{t}");
    assert!(t.contains("--security-opt systempaths=unconfined"), "the /proc flag is not named:\n{t}");
    assert!(t.contains("degraded /proc mode: a trial with OVM_SANDBOX_PROC=host-ro works"), "{t}");

    let mut degraded = seccomp_only.to_vec();
    degraded.extend(["-e", "OVM_SANDBOX_PROC=host-ro"]);
    let out = run_ovm(&degraded, empty.path(), &["doctor"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "doctor with the degraded mode chosen must pass:\n{t}");
    assert!(t.contains("WARN") && t.contains("/proc mode: host-ro"), "the degraded mode is not announced:\n{t}");

    let out = run_ovm(SANDBOX_FLAGS, empty.path(), &["doctor"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "doctor with the documented flags must pass:\n{t}");
    lap("doctor checks done");

    // 3. The same initrd outside (or this run's record of it, see container_support) and inside.
    let want = container_support::host_initrd_sha256();
    lap("outside build done");

    let inside = user_dir("ovm-container-project-");
    fill_project(inside.path());
    chown_tree(inside.path(), podman_user().0);
    let cache = format!("{}:/zig-cache", inside_zig_cache().display());
    let mut flags = SANDBOX_FLAGS.to_vec();
    flags.extend(["-v", &cache, "-e", "OVM_BUILD_CACHE_DIR=/zig-cache"]);
    let out = run_ovm(&flags, inside.path(), BUILD_ARGS);
    let t = text(&out);
    assert!(out.status.success(), "ovm build inside rootless Podman failed ({:?}):\n{t}", out.status);
    let got = sha256_of(&inside.path().join(INITRD));
    lap("inside build done");
    assert_eq!(got, want, "the initrd built inside Podman differs from the one built outside");
    eprintln!("container_podman: initrd sha256 {got} inside and outside");
}

//! ovm inside Docker, for real. The image is built the documented way (`docker build -f Containerfile
//! .` in the checkout) on a base imported with `docker import` from scripts/container-base.sh's
//! debootstrap'd rootfs (no registry is reachable here; the import is kept per tarball sha256). Docker's daemon runs as root and this
//! one has no userns-remap, so the container's root is the host's root and a sandbox started there
//! runs as that root; the test also runs ovm as an unprivileged user in the container (`--user`).
//!
//! 1. With Docker's default security options `ovm doctor` fails, names Docker and the exact flag:
//!    the default seccomp profile refuses `unshare(CLONE_NEWUSER)` without CAP_SYS_ADMIN;
//! 2. relaxed one flag at a time: with `seccomp=unconfined` it fails at the new /proc (Docker masks
//!    /proc paths) and names `systempaths=unconfined` and the degraded mode, which then passes; with
//!    `systempaths=unconfined` too it passes (AppArmor, when the daemon uses it, is relaxed too, and
//!    the test says so; this machine has none);
//! 3. with the Docker flags of docs/containers.md, `ovm build --sandbox x86_64 --toolchain zig` of a copy of the
//!    project (its offline `sources/`, `--network none`) gives the same initrd sha256 as the same
//!    build outside any container (the one container_podman compares with, when the same
//!    `cargo test` run made it first: see container_support).
//!
//! Needs root (CI runs the suite as root): the Docker socket is root's, and the outside build runs
//! under `unshare --net`. Docker and its daemon come from scripts/setup.sh; a missing one fails.

use crate::build_support;
use crate::container_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use build_support::{repo_root, require_tool, text, SETUP_HINT};
use container_support::{
    base_tag, base_tarball, fill_project, image_context, ok, run, sha256_of, Laps, BUILD_ARGS, INITRD,
};

/// Every run: removed when it ends, and no network (a build needs none once `sources/` is filled).
const BASE_FLAGS: &[&str] = &["--rm", "--network", "none"];
const SECCOMP: &[&str] = &["--security-opt", "seccomp=unconfined"];
const SYSTEMPATHS: &[&str] = &["--security-opt", "systempaths=unconfined"];
const APPARMOR: &[&str] = &["--security-opt", "apparmor=unconfined"];
/// An unprivileged user of the container (none of the image's accounts; Docker needs no passwd
/// entry for a numeric id).
const UNPRIVILEGED: &[&str] = &["--user", "1000:1000"];

/// `docker ARGS`. The classic builder: BuildKit needs the buildx plugin, which Debian's docker.io
/// does not ship (and which is not installed here).
fn docker(args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(args).env("DOCKER_BUILDKIT", "0");
    cmd
}

/// The daemon answers, as root.
fn require_docker() {
    require_tool("docker");
    assert!(
        nix::unistd::geteuid().is_root(),
        "the Docker test talks to root's daemon and builds offline under `unshare --net`: run it as root (CI does)"
    );
    let out = run(docker(&["info", "--format", "{{.ServerVersion}}"]));
    assert!(
        out.status.success(),
        "the Docker daemon does not answer `docker info` ({SETUP_HINT}: it starts one):\n{}",
        text(&out)
    );
}

/// Whether the daemon confines containers with AppArmor (`docker info` lists it among its
/// security options): then the relaxed runs need `apparmor=unconfined` as well.
fn daemon_uses_apparmor() -> bool {
    let out = ok(docker(&["info", "--format", "{{json .SecurityOptions}}"]), "docker info");
    out.contains("apparmor")
}

/// This checkout's name on the daemon: its image is `ovm-test:<checkout>` and its containers carry
/// the label `ovm-test=<checkout>`, so two checkouts testing on one daemon at the same time neither
/// run each other's ovm nor remove each other's containers.
fn checkout() -> String {
    let root = repo_root();
    let path = root.to_str().expect("utf-8 repository path");
    ovm::signature::sha256_hex(path.as_bytes())[..12].to_string()
}

/// The image of this checkout, built once per test binary.
fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let name = format!("ovm-test:{}", checkout());
        remove_stale_containers();
        build_image(&name);
        name
    })
}

/// `docker run --rm` removes a container when it ends, but a killed test (CI's timeout) leaves its
/// container running: the client's death does not stop it. Before this binary starts any, the
/// containers an earlier run of this checkout left are removed.
fn remove_stale_containers() {
    let label = format!("label=ovm-test={}", checkout());
    let ids = ok(docker(&["ps", "--all", "--quiet", "--filter", &label]), "docker ps");
    for id in ids.split_whitespace() {
        eprintln!("container_docker: removing container {id}, left running by a killed earlier run");
        ok(docker(&["rm", "--force", id]), "removing a container of a killed run");
    }
}

fn image_id(name: &str) -> Option<String> {
    let out = run(docker(&["image", "inspect", "--format", "{{.Id}}", name]));
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Imports the base rootfs (once per tarball content) and builds `name` from the repository's
/// Containerfile on it with this build's ovm — the documented way, `docker build -f Containerfile .`
/// in the checkout (its .dockerignore lets only ovm binaries through), with `OVM_BIN` naming this
/// build's ovm; when cargo's target dir lies outside the checkout, from a context of its own.
fn build_image(name: &str) {
    require_docker();
    let tarball = base_tarball();
    let base = format!("ovm-base:{}", base_tag(&tarball));
    if image_id(&base).is_none() {
        ok(docker(&["import", tarball.to_str().expect("utf-8 path"), &base]), "docker import of the base rootfs");
        // Each checkout debootstraps its own tarball (a different tag): the bases of earlier
        // ones would pile up at ~200 MB each. One still in use by an image is left (rmi refuses).
        let tags = ok(docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", "ovm-base"]), "docker images");
        for old in tags.lines().map(str::trim).filter(|t| t.starts_with("ovm-base:") && *t != base) {
            let _ = run(docker(&["rmi", old]));
        }
    }
    let root = repo_root();
    let scratch = tempfile::Builder::new().prefix("ovm-docker-image-").tempdir().expect("scratch dir");
    let (ctx, file, bin) = match Path::new(build_support::ovm_bin()).strip_prefix(&root) {
        Ok(rel) => (root.clone(), root.join("Containerfile"), rel.to_path_buf()),
        Err(_) => (scratch.path().to_path_buf(), image_context(scratch.path()), PathBuf::from("ovm")),
    };
    let previous = image_id(name);
    let out = ok(
        docker(&[
            "build",
            "--network",
            "none",
            "--build-arg",
            &format!("BASE={base}"),
            "--build-arg",
            &format!("OVM_BIN={}", bin.display()),
            "-t",
            name,
            "-f",
            file.to_str().expect("utf-8 path"),
            ctx.to_str().expect("utf-8 path"),
        ]),
        "docker build -f Containerfile",
    );
    // The context is the ovm binary alone (tens of MB), not the checkout (gigabytes with target/).
    let sent = out.lines().find(|l| l.starts_with("Sending build context")).unwrap_or("");
    assert!(!sent.ends_with("GB"), "the build context is not limited by .dockerignore: {sent}");
    // The last run's image (a debug ovm each) lost its tag to this one: remove it, and only it
    // (a daemon-wide prune would also take other users' images).
    if let Some(old) = previous.filter(|old| image_id(name).as_ref() != Some(old)) {
        let _ = run(docker(&["rmi", &old]));
    }
}

/// `docker run` of the test image with `flags`, `project` at /project, then ovm's `args`.
fn run_ovm(flags: &[&str], project: &Path, args: &[&str]) -> Output {
    let volume = format!("{}:/project", project.display());
    let label = format!("ovm-test={}", checkout());
    let mut all: Vec<&str> = vec!["run", "--label", &label];
    all.extend(BASE_FLAGS);
    all.extend(flags);
    all.extend(["-v", &volume, image()]);
    all.extend(args);
    run(docker(&all))
}

/// `ovm doctor` in the container with `flags`; asserts its exit status, returns its output.
fn doctor(flags: &[&str], project: &Path, want: i32, what: &str) -> String {
    let out = run_ovm(flags, project, &["doctor"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(want), "ovm doctor {what}: exit status {:?}, not {want}:\n{t}", out.status);
    t
}

/// `flags` plus `apparmor=unconfined` where the daemon uses AppArmor.
fn with_apparmor(flags: &[&'static str], apparmor: bool) -> Vec<&'static str> {
    let mut all = flags.to_vec();
    if apparmor {
        all.extend(APPARMOR);
    }
    all
}

/// An empty directory for /project: doctor needs no project.
fn empty_project() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("ovm-docker-doctor-").tempdir().expect("scratch dir")
}

#[test]
fn docker_defaults_fail_and_doctor_names_each_flag_until_it_passes() {
    let laps = Laps::start("container_docker doctor");
    image();
    laps.lap("image ready");
    let apparmor = daemon_uses_apparmor();
    eprintln!("container_docker: the daemon {} AppArmor", if apparmor { "uses" } else { "does not use" });
    let empty = empty_project();
    let dir = empty.path();

    // 1. Docker's defaults, as the container's root (the host's root) and as an unprivileged user.
    for user in [&[][..], UNPRIVILEGED] {
        let who = if user.is_empty() { "as root" } else { "as uid 1000" };
        let t = doctor(user, dir, 1, &format!("under Docker's defaults {who}"));
        assert!(t.contains("[info] container: found /.dockerenv"), "{who}: Docker's marker not reported:\n{t}");
        assert!(
            t.contains("cgroup path with docker: looks like docker (rootful: the container's root is the host's root)"),
            "{who}: the engine or its mode is not named:\n{t}"
        );
        assert!(
            t.contains(
                "a sandbox inside needs `docker run --security-opt seccomp=unconfined --security-opt \
                 systempaths=unconfined"
            ),
            "{who}: the container line does not name Docker's flags:\n{t}"
        );
        assert!(t.contains("[info] seccomp: mode 2: a filter is active"), "{who}: the filter not reported:\n{t}");
        assert!(
            t.contains("[FAIL] trial sandbox: creating the sandbox's user and pid namespaces (unshare) failed: EPERM"),
            "{who}: the failing step is not named:\n{t}"
        );
        assert!(
            t.contains(
                "as Docker's default profile does; it blocks unshare(CLONE_NEWUSER). Fix: run the container \
                 with --security-opt seccomp=unconfined"
            ),
            "{who}: the seccomp flag is not named as the fix:\n{t}"
        );
    }
    laps.lap("defaults checked");

    // 2. seccomp relaxed: the masked /proc is next; the degraded mode is offered and works.
    let seccomp_only = with_apparmor(SECCOMP, apparmor);
    let t = doctor(&seccomp_only, dir, 1, "with seccomp=unconfined");
    assert!(t.contains("[ok  ] seccomp: no filter on this process"), "{t}");
    assert!(t.contains("[info] /proc: over-mounts /proc/"), "the masked /proc paths are not listed:\n{t}");
    assert!(t.contains("[FAIL] trial sandbox: mounting a new /proc on /proc failed: EPERM"), "{t}");
    assert!(t.contains("Fix: start the container with --security-opt systempaths=unconfined"), "{t}");
    assert!(t.contains("[info] degraded /proc mode: a trial with OVM_SANDBOX_PROC=host-ro works"), "{t}");
    let mut degraded = seccomp_only.clone();
    degraded.extend(["-e", "OVM_SANDBOX_PROC=host-ro"]);
    let t = doctor(&degraded, dir, 0, "with seccomp=unconfined and OVM_SANDBOX_PROC=host-ro");
    assert!(t.contains("WARN") && t.contains("/proc mode: host-ro"), "the degraded mode is not announced:\n{t}");
    assert!(t.contains("[ok  ] trial sandbox"), "{t}");

    // 3. and systempaths relaxed: the strict sandbox works, as root and as an unprivileged user.
    let readme = with_apparmor(&[SECCOMP, SYSTEMPATHS].concat(), apparmor);
    for user in [&[][..], UNPRIVILEGED] {
        let who = if user.is_empty() { "as root" } else { "as uid 1000" };
        let flags = [&readme[..], user].concat();
        let t = doctor(&flags, dir, 0, &format!("with the documented flags {who}"));
        assert!(t.contains("[ok  ] /proc: nothing mounted over parts of /proc"), "{who}:\n{t}");
        assert!(t.contains("[ok  ] trial sandbox: user, mount, pid, net, uts and ipc namespaces; new /proc"), "{t}");
    }
    laps.lap("doctor checks done");
}

/// The zig compiler cache of the build inside: the host builds' own (`.cache/test-build-cache`).
/// Docker's root is the host's root, who owns it, and zig keys its entries by their inputs and
/// locks them while it writes, so the two builds can share it: the inside build then compiles
/// musl and compiler-rt once per machine, not once more per container.
fn zig_cache() -> PathBuf {
    build_support::build_cache()
}

#[test]
fn docker_builds_the_same_initrd_as_the_host() {
    let laps = Laps::start("container_docker build");
    image();
    laps.lap("image ready");
    let want = container_support::host_initrd_sha256();
    laps.lap("outside build done");

    let inside = tempfile::Builder::new().prefix("ovm-docker-project-").tempdir().expect("scratch project");
    fill_project(inside.path());
    let cache = format!("{}:/zig-cache", zig_cache().display());
    // The Docker line of docs/containers.md, with AppArmor relaxed whether or not the daemon uses it (Docker
    // accepts the option either way).
    let mut flags = [SECCOMP, APPARMOR, SYSTEMPATHS].concat();
    flags.extend(["-v", &cache, "-e", "OVM_BUILD_CACHE_DIR=/zig-cache"]);
    let out = run_ovm(&flags, inside.path(), BUILD_ARGS);
    let t = text(&out);
    assert!(out.status.success(), "ovm build inside Docker failed ({:?}):\n{t}", out.status);
    let got = sha256_of(&inside.path().join(INITRD));
    laps.lap("inside build done");
    assert_eq!(got, want, "the initrd built inside Docker differs from the one built outside");
    eprintln!("container_docker: initrd sha256 {got} inside and outside");
}

//! Shared helpers of the sandbox integration tests: the compiled probe fixtures, the ovm binary in
//! a place every user can reach, and running it as root or as the unprivileged test user.
//!
//! Prerequisites (busybox-static, a C compiler with static libc, util-linux's setpriv/script,
//! runc) come from `scripts/setup.sh`; a missing one fails the test with that instruction.
#![allow(dead_code)] // each test binary uses a different subset

/// Generates `NAME::as_root` and `NAME::as_unprivileged` from one body taking [`As`]: every
/// isolation case runs as both (the group's main.rs declares `#[macro_use] mod sandbox_support;`).
#[allow(unused_macros)]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn as_root() {
                ($body)(As::Root)
            }
            #[test]
            fn as_unprivileged() {
                ($body)(As::Unprivileged)
            }
        }
    };
}

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

pub const TEST_USER: &str = "ovmtest";
pub const BUSYBOX: &str = "/bin/busybox";

/// Who runs ovm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    Root,
    /// The `ovmtest` user when the tests run as root (CI), else the invoking user.
    Unprivileged,
}

pub struct Fixtures {
    /// World-readable directory holding everything the unprivileged user must reach.
    pub dir: PathBuf,
    pub ovm: PathBuf,
    pub probe: PathBuf,
    pub deny_userns: PathBuf,
}

fn setup_hint(what: &str) -> String {
    format!("{what}: run scripts/setup.sh (as root) to install the sandbox test prerequisites")
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let busybox = fs::read(BUSYBOX).unwrap_or_else(|e| panic!("{}", setup_hint(&format!("{BUSYBOX}: {e}"))));
        assert!(
            !busybox.windows(b"/lib64/ld-linux".len()).any(|w| w == b"/lib64/ld-linux"),
            "{}",
            setup_hint(&format!("{BUSYBOX} is dynamically linked; the tests need Debian's busybox-static"))
        );

        // One directory per test binary and process, outside the (possibly mode 700) checkout, in
        // $TMPDIR (default /tmp) so a machine with a noexec /tmp can point it elsewhere.
        let base_dir = std::env::temp_dir().join("ovm-sandbox-tests");
        let base = base_dir.as_path();
        fs::create_dir_all(base).unwrap();
        fs::set_permissions(base, fs::Permissions::from_mode(0o755)).unwrap();
        let prefix = format!("{}-", env!("CARGO_CRATE_NAME"));
        for entry in fs::read_dir(base).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = name
                .strip_prefix(&prefix)
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists());
            if stale {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        let dir = base.join(format!("{prefix}{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();

        let ovm = dir.join("ovm");
        let built = Path::new(env!("CARGO_BIN_EXE_ovm"));
        if fs::hard_link(built, &ovm).is_err() {
            fs::copy(built, &ovm).unwrap();
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sandbox");
        let probe = dir.join("probe");
        compile(&src.join("probe.c"), &probe, true);
        let deny_userns = dir.join("deny-userns");
        compile(&src.join("deny-userns.c"), &deny_userns, false);
        Fixtures { dir, ovm, probe, deny_userns }
    })
}

fn compile(src: &Path, out: &Path, static_link: bool) {
    let mut cc = Command::new("cc");
    if static_link {
        cc.arg("-static");
    }
    let result = cc.args(["-O2", "-Wall", "-o"]).arg(out).arg(src).output();
    match result {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("{}", setup_hint(&format!("cc {}: {}", src.display(), String::from_utf8_lossy(&o.stderr)))),
        Err(e) => panic!("{}", setup_hint(&format!("cc: {e}"))),
    }
}

/// The unprivileged user's name, creating `ovmtest` when running as root.
pub fn unprivileged_user() -> String {
    if !is_root() {
        return nix::unistd::User::from_uid(nix::unistd::geteuid()).unwrap().unwrap().name;
    }
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap();
    if nix::unistd::User::from_name(TEST_USER).unwrap().is_none() {
        let out = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER])
            .output()
            .unwrap_or_else(|e| panic!("useradd: {e}"));
        assert!(out.status.success(), "useradd {TEST_USER}: {}", String::from_utf8_lossy(&out.stderr));
    }
    TEST_USER.to_string()
}

pub fn uid_of(who: As) -> u32 {
    match who {
        As::Root => 0,
        As::Unprivileged => nix::unistd::User::from_name(&unprivileged_user()).unwrap().unwrap().uid.as_raw(),
    }
}

/// A command running `program` as `who`.
pub fn command_as(who: As, program: &Path) -> Command {
    match who {
        As::Root => {
            assert!(is_root(), "this test runs ovm as root: run the tests as root (scripts/test.sh in CI does)");
            Command::new(program)
        }
        As::Unprivileged if !is_root() => Command::new(program),
        As::Unprivileged => {
            let user = unprivileged_user();
            let mut cmd = Command::new("setpriv");
            cmd.arg(format!("--reuid={user}"))
                .arg(format!("--regid={user}"))
                .arg("--init-groups")
                .arg("--")
                .arg(program)
                .current_dir(&fixtures().dir);
            cmd
        }
    }
}

/// `ovm ARGS…` as `who`.
pub fn ovm(who: As, args: &[&str]) -> Command {
    let mut cmd = command_as(who, &fixtures().ovm);
    cmd.args(args);
    cmd
}

pub fn run(mut cmd: Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Run the probe in a strict sandbox with `extra` ovm options: the probe is bound at /probe,
/// busybox at /bin/busybox.
pub fn probe(who: As, extra: &[&str], probe_args: &[&str]) -> Output {
    let f = fixtures();
    let probe_bind = format!("{}:/probe", f.probe.display());
    let busybox_bind = format!("{BUSYBOX}:{BUSYBOX}");
    let mut args = vec!["sandbox", "--ro", &probe_bind, "--ro", &busybox_bind];
    args.extend_from_slice(extra);
    args.push("--");
    args.push("/probe");
    args.extend_from_slice(probe_args);
    run(ovm(who, &args))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The probe's line for `what` (e.g. "read"), or a panic showing the whole output.
pub fn line(out: &Output, what: &str) -> String {
    let text = stdout(out);
    text.lines()
        .find(|l| l.starts_with(&format!("{what}:")))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no {what:?} line from the probe; stdout:\n{text}\nstderr:\n{}", stderr(out)))
}

/// Assert the probe reported `what` as denied; `leak` says what it means if it was not.
pub fn assert_denied(out: &Output, what: &str, leak: &str) {
    let l = line(out, what);
    assert!(l.contains(": DENIED"), "ISOLATION BROKEN: {leak}\nprobe said: {l}\nstderr: {}", stderr(out));
}

pub fn assert_allowed(out: &Output, what: &str, context: &str) {
    let l = line(out, what);
    assert!(l.contains(": ALLOWED"), "positive control failed ({context}): {l}\nstderr: {}", stderr(out));
}

/// A directory under the fixtures dir owned by `who`, for rw binds.
pub fn owned_dir(who: As, name: &str) -> PathBuf {
    let dir = fixtures().dir.join(format!("{name}-{who:?}-{}", unique()));
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let uid = uid_of(who);
    if is_root() {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid_of(who))).unwrap();
    }
    dir
}

pub fn gid_of(who: As) -> u32 {
    match who {
        As::Root => 0,
        As::Unprivileged => nix::unistd::User::from_name(&unprivileged_user()).unwrap().unwrap().gid.as_raw(),
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

//! The container case without a container: ovm run inside a user + mount + pid namespace whose /proc
//! has a path over-mounted by its parent, the way Podman and Docker mask /proc/kcore, /proc/keys …
//! Entering ovm's own user namespace locks that over-mount, and the kernel then refuses a fresh
//! procfs (it would reveal what the mask hides). What must happen:
//! - by default the sandbox fails, naming the container flag and the `OVM_SANDBOX_PROC=host-ro` option;
//! - with the option it runs, warns, and still has no host /usr or /etc, no network but loopback,
//!   its own pid namespace, and a read-only /proc (a write to `/proc/self/comm` fails with EROFS,
//!   where the same write succeeds in a default sandbox's fresh procfs: the test's control run);
//! - `ovm doctor` fails the strict trial and reports that the degraded mode would work;
//! - on a kernel that allows a fresh procfs under such a mask (some do: asked of the kernel first,
//!   with util-linux alone), the strict sandbox runs and doctor passes, still naming the over-mount;
//! - the spec records the choice (annotation `org.ovm.proc`, a read-only bind of /proc).
//!
//! Needs util-linux's `unshare` and Debian's busybox-static: `scripts/setup.sh` installs both.

use std::path::Path;
use std::process::{Command, Output};

const SETUP_HINT: &str = "run scripts/setup.sh";
const BUSYBOX: &str = "/bin/busybox";
/// Files container runtimes mask with /dev/null; the first one this kernel has is masked.
const MASK_CANDIDATES: &[&str] = &["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"];

fn ovm_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ovm")
}

fn require(path: &str) {
    assert!(Path::new(path).exists(), "{path} is missing: {SETUP_HINT}");
}

fn masked_path() -> &'static str {
    MASK_CANDIDATES
        .iter()
        .copied()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("none of {MASK_CANDIDATES:?} exists in /proc: cannot imitate a container's mask"))
}

/// `ovm ARGS` inside a fresh user+mount+pid namespace with a proc of its own, one of whose files is
/// hidden under /dev/null by that namespace's creator, as a container runtime does.
fn ovm_in_masked_proc(proc_mode: Option<&str>, args: &[&str]) -> Output {
    require("/usr/bin/unshare");
    require(BUSYBOX);
    let mask = masked_path();
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--mount", "--pid", "--fork", "--mount-proc", "--", "/bin/sh", "-ec"])
        .arg(format!("mount --bind /dev/null {mask}; exec \"$@\""))
        .arg("sh")
        .arg(ovm_bin())
        .args(args)
        .current_dir("/")
        .env_remove("OVM_SANDBOX_PROC");
    if let Some(mode) = proc_mode {
        cmd.env("OVM_SANDBOX_PROC", mode);
    }
    cmd.output().unwrap_or_else(|e| panic!("running unshare: {e} ({SETUP_HINT})"))
}

/// Whether this kernel refuses a fresh procfs under the imitated container mask, asked of the kernel
/// with util-linux alone (no ovm): one more user + mount + pid namespace inside the masked one, and
/// `--mount-proc` there. Kernels differ here (machines of this workplace have run both kinds), and
/// ovm must do the right thing on each: fail with the fix named where the kernel refuses, and run the
/// strict sandbox where it does not.
fn kernel_refuses_masked_proc() -> bool {
    let mask = masked_path();
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "--pid", "--fork", "--mount-proc", "--", "/bin/sh", "-ec"])
        .arg(format!(
            "mount --bind /dev/null {mask}; exec unshare --user --map-root-user --mount --pid --fork --mount-proc true"
        ))
        .current_dir("/")
        .output()
        .unwrap_or_else(|e| panic!("running unshare: {e} ({SETUP_HINT})"));
    let refused = !out.status.success();
    if !refused {
        eprintln!("note: this kernel ({}) allows a fresh /proc under a mask of {mask}", kernel_release());
    }
    refused
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default()
}

fn sandbox_sh(proc_mode: Option<&str>, script: &str) -> Output {
    ovm_in_masked_proc(
        proc_mode,
        &["sandbox", "--ro", &format!("{BUSYBOX}:{BUSYBOX}"), "--", BUSYBOX, "sh", "-c", script],
    )
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_refused_fresh_proc_fails_naming_the_flag_and_the_degraded_mode() {
    let out = sandbox_sh(None, "echo ran");
    let (stdout, stderr) = text(&out);
    if !kernel_refuses_masked_proc() {
        // Nothing to refuse: the strict sandbox runs, and nothing talks of a degraded mode.
        assert_eq!(out.status.code(), Some(0), "the kernel allows a fresh /proc here:\n{stdout}{stderr}");
        assert!(has_line(&stdout, "ran"), "{stdout}");
        assert!(!stderr.contains("WARN") && !stderr.contains("OVM_SANDBOX_PROC"), "{stderr}");
        return;
    }
    assert_eq!(out.status.code(), Some(125), "the sandbox must not start:\n{stdout}{stderr}");
    assert!(!stdout.contains("ran"), "the command ran although /proc could not be made:\n{stdout}");
    assert!(stderr.contains("mounting a new /proc on /proc failed: EPERM"), "{stderr}");
    assert!(stderr.contains("--security-opt systempaths=unconfined"), "the container flag is not named:\n{stderr}");
    assert!(stderr.contains("OVM_SANDBOX_PROC=host-ro"), "the degraded mode is not named:\n{stderr}");
    assert!(stderr.contains(&format!("over-mounts found: {}", masked_path())), "{stderr}");
    assert!(!stderr.contains("WARN"), "no degraded mode without the option:\n{stderr}");
}

/// Each line is one isolation fact; the script prints what it sees, the tests judge.
///
/// `/proc/self/comm` is the write probe of `/proc` itself: its owner may rewrite it on any procfs
/// that is mounted read-write (a process renaming itself needs no privilege), so it separates a
/// writable /proc from a read-only one, which a file that procfs never lets anyone create cannot.
/// `/proc/sys` is read-only in both modes (the fresh one marks it so, as runc does).
const ISOLATION_PROBE: &str = r#"
    echo "pid=$$"
    [ -e /usr ] && echo "usr=visible" || echo "usr=absent"
    [ -e /etc ] && echo "etc=visible" || echo "etc=absent"
    echo x > /proc/sys/kernel/domainname 2>/dev/null && echo "procsys=writable" || echo "procsys=readonly"
    if err=$(echo ovm-probe 2>&1 >/proc/self/comm); then echo "proc=writable"; else echo "proc=readonly"; echo "proc-error=$err"; fi
    echo "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ',')"
    grep CapEff /proc/self/status
"#;

fn has_line(stdout: &str, want: &str) -> bool {
    stdout.lines().any(|l| l.trim() == want)
}

#[test]
fn the_degraded_mode_warns_and_still_hides_usr_etc_and_the_network() {
    let out = sandbox_sh(Some("host-ro"), ISOLATION_PROBE);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "the degraded sandbox failed:\n{stdout}{stderr}");
    assert!(
        stderr.contains("WARN") && stderr.contains("OVM_SANDBOX_PROC=host-ro"),
        "the degraded mode must be announced:\n{stderr}"
    );
    for want in ["pid=2", "usr=absent", "etc=absent", "procsys=readonly", "proc=readonly", "ifaces=lo,"] {
        assert!(has_line(&stdout, want), "expected `{want}` in the sandbox:\n{stdout}");
    }
    // Refused by the read-only mount, not by a permission the probe happens to lack.
    assert!(
        stdout.lines().any(|l| l.starts_with("proc-error=") && l.contains("Read-only file system")),
        "writing /proc/self/comm must fail with EROFS:\n{stdout}"
    );
    assert!(stdout.contains("CapEff:\t0000000000000000"), "capabilities left:\n{stdout}");

    // Control: the same probe in a sandbox with a fresh, read-write procfs (no container mask
    // around ovm, the default mode) finds /proc writable — so `proc=readonly` above is the
    // degraded mode's read-only bind at work, and the probe can tell the two apart.
    let out = Command::new(ovm_bin())
        .args(["sandbox", "--ro", &format!("{BUSYBOX}:{BUSYBOX}"), "--", BUSYBOX, "sh", "-c", ISOLATION_PROBE])
        .env_remove("OVM_SANDBOX_PROC")
        .current_dir("/")
        .output()
        .expect("ovm sandbox");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "the control sandbox failed:\n{stdout}{stderr}");
    for want in ["proc=writable", "procsys=readonly", "usr=absent"] {
        assert!(has_line(&stdout, want), "control (fresh /proc): expected `{want}`:\n{stdout}");
    }
}

#[test]
fn doctor_fails_the_strict_trial_and_offers_the_degraded_mode() {
    let out = ovm_in_masked_proc(None, &["doctor"]);
    let (stdout, stderr) = text(&out);
    if kernel_refuses_masked_proc() {
        assert_eq!(out.status.code(), Some(1), "doctor must fail:\n{stdout}{stderr}");
        assert!(stdout.contains("[FAIL] trial sandbox: mounting a new /proc on /proc failed: EPERM"), "{stdout}");
        assert!(stdout.contains("--security-opt systempaths=unconfined"), "{stdout}");
        assert!(
            stdout.contains("[info] degraded /proc mode: a trial with OVM_SANDBOX_PROC=host-ro works"),
            "doctor must say the degraded mode would work:\n{stdout}"
        );
    } else {
        // The mask is still reported (it may matter on another kernel), but the strict trial passes.
        assert_eq!(out.status.code(), Some(0), "the kernel allows a fresh /proc here:\n{stdout}{stderr}");
        assert!(stdout.contains(&format!("[info] /proc: over-mounts {}", masked_path())), "{stdout}");
        assert!(stdout.contains("[ok  ] trial sandbox:") && stdout.contains("new /proc"), "{stdout}");
        assert!(!stdout.contains("[FAIL]") && !stdout.contains("[info] degraded /proc mode"), "{stdout}");
    }

    // Chosen explicitly, doctor judges the chosen sandbox, and says it is degraded.
    let out = ovm_in_masked_proc(Some("host-ro"), &["doctor"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "doctor with the degraded mode chosen:\n{stdout}{stderr}");
    assert!(stdout.contains("[info] /proc mode: host-ro (OVM_SANDBOX_PROC): degraded"), "{stdout}");
    assert!(stdout.contains("[ok  ] trial sandbox:") && stdout.contains("read-only (degraded mode)"), "{stdout}");
}

#[test]
fn the_spec_records_the_mode_and_bad_values_are_refused() {
    let out = Command::new(ovm_bin())
        .args(["sandbox", "--print-spec", "--", "/bin/true"])
        .env("OVM_SANDBOX_PROC", "host-ro")
        .output()
        .expect("ovm sandbox --print-spec");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let spec: serde_json::Value = serde_json::from_slice(&out.stdout).expect("spec JSON");
    assert_eq!(spec["annotations"]["org.ovm.proc"], "host-ro");
    let proc = spec["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/proc").unwrap();
    assert_eq!(proc["type"], "bind");
    assert_eq!(proc["source"], "/proc");
    assert!(proc["options"].as_array().unwrap().iter().any(|o| o == "ro"), "{proc}");

    let out = Command::new(ovm_bin())
        .args(["sandbox", "--print-spec", "--", "/bin/true"])
        .env_remove("OVM_SANDBOX_PROC")
        .output()
        .expect("ovm sandbox --print-spec");
    let spec: serde_json::Value = serde_json::from_slice(&out.stdout).expect("spec JSON");
    assert_eq!(spec["annotations"]["org.ovm.proc"], "fresh", "the default is a fresh procfs");

    let out = Command::new(ovm_bin())
        .args(["sandbox", "--", "/bin/true"])
        .env("OVM_SANDBOX_PROC", "host")
        .output()
        .expect("ovm sandbox");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("OVM_SANDBOX_PROC=\"host\" is not a /proc mode"), "{stderr}");
}

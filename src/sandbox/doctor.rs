//! `ovm doctor`: can this host build in the strict sandbox, and if not, what exactly fixes it.
//!
//! Static checks read the settings that commonly block user namespaces (see `hints`); they fail only
//! where they decide the outcome for the invoking user (an AppArmor restriction does not apply to
//! root). Facts that merely *might* matter — a seccomp filter, container marker files (this very
//! machine has `/.dockerenv` although it is a VM), over-mounts in /proc — are reported as
//! information. The verdict comes from a real trial: a strict sandbox is built in a forked child
//! exactly as for a build, and a probe inside checks the isolation (pid 2 under our init, no
//! capabilities, no host /usr or /etc, read-only root, /proc/sys and binds). Exit status 0 means
//! that trial passed and no check failed.
//!
//! Inside a container the usual failure is the fresh /proc mount (masked /proc paths). Then doctor
//! runs a second trial in the degraded /proc mode and says whether `OVM_SANDBOX_PROC=host-ro` would
//! work, next to the container flag that avoids it. When that variable is already set, the trial runs
//! in that mode, the report says so, and the verdict is about the sandbox the user chose.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sys::statvfs::{statvfs, FsFlags};
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;

use super::error::SandboxError;
use super::hints::{self, HostFacts};
use super::limits::{Limits, Mechanism};
use super::plan::Plan;
use super::reaper::status_code;
use super::runtime::{run_plan, Payload};
use super::spec::{ProcMode, SandboxBuilder, PROC_MODE_ENV};
use crate::settings::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Info,
    Fail,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    /// The exact fix, for failures.
    pub fix: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no check failed (the trial sandbox is one of them).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let tag = match c.status {
                Status::Ok => "ok  ",
                Status::Info => "info",
                Status::Fail => "FAIL",
            };
            out.push_str(&format!("[{tag}] {}: {}\n", c.name, c.detail));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("       fix: {fix}\n"));
            }
        }
        out.push_str(if self.passed() {
            "ovm doctor: this host can build in the strict sandbox\n"
        } else {
            "ovm doctor: the strict sandbox does not work here; see the fixes above\n"
        });
        out
    }
}

fn check(name: &'static str, status: Status, detail: impl Into<String>, fix: Option<String>) -> Check {
    Check { name, status, detail: detail.into(), fix }
}

/// Run every check, including the trial sandbox (which forks; call from a single-threaded process).
/// `settings` are this process's: the `/proc` mode chosen and the `container` variable.
pub fn diagnose(settings: &Settings) -> Report {
    hints::remember(settings);
    let facts = HostFacts::read(settings);
    let mut checks = vec![
        kernel_check(),
        max_userns_check(&facts),
        userns_clone_check(&facts),
        apparmor_check(&facts),
        seccomp_check(&facts),
        container_check(&facts),
        proc_check(&facts),
    ];
    let chosen = ProcMode::chosen(settings);
    if let Ok(ProcMode::HostReadOnly) = chosen {
        checks.push(check(
            "/proc mode",
            Status::Info,
            format!(
                "host-ro ({PROC_MODE_ENV}): degraded, the sandbox gets this system's /proc read-only and can read its \
                 other processes; without masked /proc paths (--security-opt systempaths=unconfined) it can have its own"
            ),
            None,
        ));
    }
    let proc_detail = match chosen {
        Ok(ProcMode::HostReadOnly) => "this system's /proc read-only (degraded mode)",
        _ => "new /proc with read-only /proc/sys",
    };
    let outcome = match chosen {
        Ok(mode) => trial(mode),
        Err(err) => Err(TrialFailure::Setup(err)),
    };
    let proc_refused = matches!(
        &outcome,
        Err(TrialFailure::Setup(SandboxError::Proc {
            errno: nix::errno::Errno::EPERM | nix::errno::Errno::EACCES,
            ..
        }))
    );
    checks.push(match outcome {
        Ok(()) => check(
            "trial sandbox",
            Status::Ok,
            format!(
                "user, mount, pid, net, uts and ipc namespaces; {proc_detail}; read-only bind; pivot_root; no \
                 capabilities"
            ),
            None,
        ),
        Err(TrialFailure::Setup(err)) => {
            let fix = fix_of(&err);
            let message = err.to_string();
            // The error's message ends with its hint; the hint is shown once, as the fix.
            let detail = match &fix {
                Some(hint) => message.strip_suffix(hint.as_str()).map_or(message.clone(), |m| {
                    m.trim_end_matches(|c: char| c == ':' || c.is_whitespace()).to_string()
                }),
                None => message,
            };
            check("trial sandbox", Status::Fail, detail, fix)
        }
        Err(TrialFailure::Isolation(what)) => check(
            "trial sandbox",
            Status::Fail,
            format!("the sandbox started but its isolation is incomplete: {what}"),
            Some("report this as an ovm bug, with the output of `ovm doctor`".into()),
        ),
    });
    if proc_refused {
        checks.push(match trial(ProcMode::HostReadOnly) {
            Ok(()) => check(
                "degraded /proc mode",
                Status::Info,
                format!(
                    "a trial with {PROC_MODE_ENV}=host-ro works: with it ovm builds here, the sandbox still without \
                     host /usr and network but with this system's /proc read-only"
                ),
                None,
            ),
            Err(TrialFailure::Setup(err)) => {
                check("degraded /proc mode", Status::Info, format!("does not work here either: {err}"), None)
            }
            Err(TrialFailure::Isolation(what)) => {
                check("degraded /proc mode", Status::Info, format!("does not isolate here: {what}"), None)
            }
        });
    }
    checks.push(limits_check(&super::limits::detect(), nix::unistd::geteuid().is_root()));
    checks.push(disk_check());
    Report { checks }
}

/// Which mechanism enforces the sandboxes' resource limits here, and the defaults.
fn limits_check(mechanism: &Mechanism, root: bool) -> Check {
    let defaults = Limits::defaults();
    let settings: Vec<String> = mechanism.settings(&defaults).into_iter().map(|(_, s)| s).collect();
    let detail = format!(
        "{}; build steps get {} by default ([sandbox] pids_max / memory_max in config/ovm.toml and a recipe's [limits] override them)",
        mechanism.describe(),
        settings.join(", ")
    );
    match mechanism {
        Mechanism::CgroupV1 { .. } | Mechanism::CgroupV2 { .. } => check("resource limits", Status::Ok, detail, None),
        Mechanism::Rlimits { .. } => {
            let caveat = if root {
                "; RLIMIT_NPROC does not bind root, so as root only the memory limit holds"
            } else {
                "; RLIMIT_DATA is per process, not the sandbox's total"
            };
            check(
                "resource limits",
                Status::Info,
                format!("{detail}{caveat}"),
                Some(
                    "for per-sandbox totals, run ovm as root on a host with cgroup v1 pids/memory hierarchies, or in \
                     a cgroup v2 subtree delegated to you with pids and memory in its cgroup.subtree_control"
                        .into(),
                ),
            )
        }
    }
}

/// The fix sentence of a setup error (the hint after the errno), if the error carries one.
fn fix_of(err: &SandboxError) -> Option<String> {
    let hint = match err {
        SandboxError::UserNamespace { hint, .. }
        | SandboxError::IdMap { hint, .. }
        | SandboxError::Namespaces { hint, .. }
        | SandboxError::MakePrivate { hint, .. }
        | SandboxError::RootTmpfs { hint, .. }
        | SandboxError::Proc { hint, .. }
        | SandboxError::Hostname { hint, .. }
        | SandboxError::PivotRoot { hint, .. } => hint,
        _ => return None,
    };
    (!hint.is_empty()).then(|| hint.clone())
}

fn kernel_check() -> Check {
    let release = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version >= (5, 12) {
        check("kernel", Status::Ok, format!("{release} (>= 5.12: open_tree, move_mount, mount_setattr)"), None)
    } else {
        check(
            "kernel",
            Status::Fail,
            format!("{release}: ovm's sandbox needs Linux >= 5.12 (mount_setattr)"),
            Some("boot a newer kernel (Debian 12 ships 6.1, Ubuntu 22.04 5.15)".into()),
        )
    }
}

fn max_userns_check(facts: &HostFacts) -> Check {
    let name = "user.max_user_namespaces";
    match facts.max_user_namespaces {
        None => check(name, Status::Info, "not readable (/proc/sys/user/max_user_namespaces)", None),
        Some(0) => check(
            name,
            Status::Fail,
            "0: no user namespaces can be created",
            Some("sudo sysctl -w user.max_user_namespaces=15000".into()),
        ),
        Some(n) => check(name, Status::Ok, n.to_string(), None),
    }
}

fn userns_clone_check(facts: &HostFacts) -> Check {
    let name = "kernel.unprivileged_userns_clone";
    match facts.unprivileged_userns_clone {
        None => check(name, Status::Ok, "not present (the upstream kernel allows unprivileged user namespaces)", None),
        Some(0) if facts.euid == 0 => {
            check(name, Status::Ok, "0, but ovm runs as root, which it does not restrict", None)
        }
        Some(0) => check(name, Status::Fail, "0", Some(hints::FIX_USERNS_CLONE.into())),
        Some(n) => check(name, Status::Ok, n.to_string(), None),
    }
}

fn apparmor_check(facts: &HostFacts) -> Check {
    let name = "kernel.apparmor_restrict_unprivileged_userns";
    match facts.apparmor_restrict_userns {
        None => check(name, Status::Ok, "not present", None),
        Some(0) => check(name, Status::Ok, "0", None),
        Some(_) if facts.euid == 0 => {
            check(name, Status::Ok, "1, but ovm runs as root, which it does not restrict", None)
        }
        Some(n) => check(name, Status::Fail, n.to_string(), Some(hints::FIX_APPARMOR.into())),
    }
}

fn seccomp_check(facts: &HostFacts) -> Check {
    match facts.seccomp_mode {
        Some(0) => check("seccomp", Status::Ok, "no filter on this process", None),
        Some(mode) => check(
            "seccomp",
            Status::Info,
            format!(
                "mode {mode}: a filter is active; if the trial below fails with EPERM it is the cause ({})",
                hints::FIX_SECCOMP
            ),
            None,
        ),
        None => check("seccomp", Status::Info, "unknown (no Seccomp: line in /proc/self/status)", None),
    }
}

fn container_check(facts: &HostFacts) -> Check {
    if let Some(c) = &facts.container {
        let mode = match c.rootless {
            Some(true) => " (rootless)",
            Some(false) => " (rootful: the container's root is the host's root)",
            None => "",
        };
        // Docker and Podman need the same two flags (tests/container/container_docker.rs and
        // container_podman.rs try them), and AppArmor relaxed where it confines the container;
        // other engines, see docs/containers.md.
        let apparmor = match &facts.apparmor_profile {
            Some(profile) => format!(" --security-opt apparmor=unconfined` (AppArmor profile {profile})"),
            None => "`".into(),
        };
        let flags = match c.engine.as_str() {
            "docker" | "podman" => format!(
                "a sandbox inside needs `{} run --security-opt seccomp=unconfined --security-opt \
                 systempaths=unconfined{apparmor}",
                c.engine
            ),
            _ => "a sandbox inside needs the flags in ovm's docs/containers.md (\"Running inside Podman or Docker\")"
                .into(),
        };
        check(
            "container",
            Status::Info,
            format!(
                "found {}: looks like {}{mode}; {flags}; only a problem if the trial fails",
                c.evidence.join(", "),
                c.engine
            ),
            None,
        )
    } else if facts.container_markers.is_empty() {
        check("container", Status::Ok, "no container marker files", None)
    } else {
        check(
            "container",
            Status::Info,
            format!(
                "found {}: possibly a container (or a VM image built from one); only a problem if the trial fails",
                facts.container_markers.join(", ")
            ),
            None,
        )
    }
}

fn proc_check(facts: &HostFacts) -> Check {
    if facts.proc_overmounts.is_empty() {
        check("/proc", Status::Ok, "nothing mounted over parts of /proc", None)
    } else {
        check(
            "/proc",
            Status::Info,
            format!(
                "over-mounts {}: a new /proc may be refused; if the trial fails at /proc: {}",
                facts.proc_overmounts.join(", "),
                hints::FIX_PROC
            ),
            None,
        )
    }
}

fn disk_check() -> Check {
    let dir = std::env::current_dir().unwrap_or_else(|_| Path::new("/").to_path_buf());
    match statvfs(&dir) {
        Ok(st) => {
            let free = st.blocks_available() * st.fragment_size();
            let gib = free as f64 / (1u64 << 30) as f64;
            let status = if gib < 5.0 { Status::Info } else { Status::Ok };
            check("disk", status, format!("{gib:.1} GiB free in {} (a full build needs ~5 GiB)", dir.display()), None)
        }
        Err(e) => check("disk", Status::Info, format!("cannot stat {}: {e}", dir.display()), None),
    }
}

enum TrialFailure {
    Setup(SandboxError),
    Isolation(&'static str),
}

/// What the probe's exit code means.
const PROBE_FAILURES: &[(i32, &str)] = &[
    (1, "the command is not pid 2 under the sandbox's own init (no pid namespace?)"),
    (2, "the command still has capabilities (CapEff != 0)"),
    (3, "host /usr or /etc is visible"),
    (4, "the root directory is writable"),
    (5, "/proc/sys is writable"),
    (6, "a read-only bind is writable"),
    (7, "/proc/self/status is unreadable (no working /proc)"),
];

const TRIAL_BIND: &str = "/ovm/trial";

/// Runs inside the finished trial sandbox; 0 when isolation holds, else a PROBE_FAILURES code.
fn trial_probe() -> i32 {
    if std::process::id() != 2 {
        return 1;
    }
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return 7 };
    let cap_eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).map(str::trim);
    if cap_eff.and_then(|hex| u64::from_str_radix(hex, 16).ok()) != Some(0) {
        return 2;
    }
    if Path::new("/usr").exists() || Path::new("/etc").exists() {
        return 3;
    }
    if std::fs::create_dir("/ovm-doctor-write-test").is_ok() {
        return 4;
    }
    if std::fs::OpenOptions::new().write(true).open("/proc/sys/kernel/domainname").is_ok() {
        return 5;
    }
    if !statvfs(TRIAL_BIND).is_ok_and(|st| st.flags().contains(FsFlags::ST_RDONLY)) {
        return 6;
    }
    0
}

/// Build a real strict sandbox with `proc_mode` in a forked child and run [`trial_probe`] in it.
fn trial(proc_mode: ProcMode) -> Result<(), TrialFailure> {
    // Forking a multi-threaded process could leave the child stuck on another thread's lock.
    if let Some(threads) = super::sys::thread_count().filter(|&n| n > 1) {
        return Err(TrialFailure::Setup(SandboxError::MultiThreaded { threads }));
    }
    let exe = std::env::current_exe()
        .map_err(|e| TrialFailure::Setup(SandboxError::io("finding", Path::new("/proc/self/exe"), &e)))?;
    // With a build step's default limits, so the trial also makes (and removes) its cgroup.
    let spec = SandboxBuilder::new(["ovm-doctor-probe"])
        .ro_bind(&exe, TRIAL_BIND)
        .limits(Limits::defaults())
        .proc_mode(proc_mode)
        .build()
        .map_err(TrialFailure::Setup)?;
    let plan = Plan::from_spec(&spec).map_err(TrialFailure::Setup)?;
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| TrialFailure::Setup(SandboxError::process("pipe", e)))?;
    // SAFETY: `ovm doctor` is single-threaded; the child leaves only through _exit.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(TrialFailure::Setup(SandboxError::process("fork", e))),
        Ok(ForkResult::Child) => {
            drop(read_end);
            let code = match run_plan(&plan, Payload::Probe(trial_probe)) {
                Ok(code) => code,
                Err(err) => {
                    if let Ok(json) = serde_json::to_vec(&err) {
                        let _ = nix::unistd::write(&write_end, &json);
                    }
                    err.exit_code()
                }
            };
            // SAFETY: ends the forked child without the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(write_end);
            let report = read_all(read_end);
            let status = waitpid(child, None).map_err(|e| TrialFailure::Setup(SandboxError::process("waitpid", e)))?;
            if !report.is_empty() {
                let err = serde_json::from_slice(&report).unwrap_or_else(|e| SandboxError::Protocol {
                    reason: format!("{e}: {}", String::from_utf8_lossy(&report)),
                });
                return Err(TrialFailure::Setup(err));
            }
            match status_code(status) {
                Some(0) => Ok(()),
                Some(code) => Err(TrialFailure::Isolation(
                    PROBE_FAILURES.iter().find(|(c, _)| *c == code).map_or("the probe failed unexpectedly", |(_, m)| m),
                )),
                None => Err(TrialFailure::Isolation("the trial did not exit normally")),
            }
        }
    }
}

fn read_all(fd: OwnedFd) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = std::fs::File::from(fd).read_to_end(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts { euid: 1000, seccomp_mode: Some(0), max_user_namespaces: Some(100), ..Default::default() }
    }

    #[test]
    fn apparmor_restriction_fails_only_for_unprivileged_users() {
        let mut f = facts();
        f.apparmor_restrict_userns = Some(1);
        let c = apparmor_check(&f);
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("apparmor_restrict_unprivileged_userns=0"));
        f.euid = 0;
        assert_eq!(apparmor_check(&f).status, Status::Ok);
    }

    #[test]
    fn container_markers_are_information_not_failure() {
        let mut f = facts();
        f.container_markers = vec!["/.dockerenv".into()];
        assert_eq!(container_check(&f).status, Status::Info);
    }

    #[test]
    fn a_detected_engine_is_named() {
        let mut f = facts();
        f.container = Some(super::super::hints::ContainerInfo {
            engine: "podman".into(),
            rootless: Some(true),
            evidence: vec!["/run/.containerenv".into()],
        });
        let c = container_check(&f);
        assert_eq!(c.status, Status::Info);
        assert!(c.detail.starts_with("found /run/.containerenv: looks like podman (rootless);"), "{}", c.detail);
        assert!(
            c.detail
                .contains("needs `podman run --security-opt seccomp=unconfined --security-opt systempaths=unconfined`"),
            "{}",
            c.detail
        );
        f.container = Some(super::super::hints::ContainerInfo {
            engine: "docker".into(),
            rootless: Some(false),
            evidence: vec!["/.dockerenv".into(), "cgroup path with docker".into()],
        });
        let c = container_check(&f);
        assert!(
            c.detail.starts_with(
                "found /.dockerenv, cgroup path with docker: looks like docker (rootful: the container's root is the \
                 host's root); a sandbox inside needs `docker run --security-opt seccomp=unconfined --security-opt \
                 systempaths=unconfined`; only"
            ),
            "{}",
            c.detail
        );
        f.apparmor_profile = Some("docker-default".into());
        let c = container_check(&f);
        assert!(
            c.detail.contains(
                "systempaths=unconfined --security-opt apparmor=unconfined` (AppArmor profile docker-default); only"
            ),
            "{}",
            c.detail
        );
    }

    #[test]
    fn zero_user_namespaces_fails_with_the_sysctl() {
        let mut f = facts();
        f.max_user_namespaces = Some(0);
        let c = max_userns_check(&f);
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("user.max_user_namespaces="));
    }

    #[test]
    fn limits_line_names_the_mechanism_and_root_caveat() {
        let v1 = Mechanism::CgroupV1 { pids: "/sys/fs/cgroup/pids".into(), memory: "/sys/fs/cgroup/memory".into() };
        let c = limits_check(&v1, true);
        assert_eq!(c.status, Status::Ok);
        assert!(c.detail.starts_with("cgroup v1") && c.detail.contains("pids.max=4096"), "{}", c.detail);
        let r = limits_check(&Mechanism::Rlimits { why: "no cgroup v1 pids and memory hierarchies".into() }, true);
        assert_eq!(r.status, Status::Info);
        assert!(r.detail.contains("RLIMIT_NPROC=4096") && r.detail.contains("does not bind root"), "{}", r.detail);
    }

    #[test]
    fn report_fails_when_any_check_fails() {
        let ok = Report { checks: vec![check("a", Status::Ok, "x", None), check("b", Status::Info, "y", None)] };
        assert!(ok.passed());
        assert!(ok.render().contains("can build"));
        let bad = Report { checks: vec![check("a", Status::Fail, "x", Some("do y".into()))] };
        assert!(!bad.passed());
        assert!(bad.render().contains("fix: do y"));
    }

    #[test]
    fn setup_errors_carry_their_fix() {
        let err = SandboxError::UserNamespace { errno: nix::errno::Errno::ENOSPC, hint: "sysctl x".into() };
        assert_eq!(fix_of(&err).as_deref(), Some("sysctl x"));
    }
}

//! What usually makes a sandbox step fail on a given host, and the exact fix.
//!
//! Sandbox failures are nearly always the environment, not ovm: Docker's default seccomp profile
//! blocks `unshare(CLONE_NEWUSER)`, Ubuntu ≥ 23.10 restricts unprivileged user namespaces with
//! AppArmor (`unshare` succeeds but writing the uid map fails), old Debian kernels gate them behind
//! `kernel.unprivileged_userns_clone`, `user.max_user_namespaces` can be 0, and Podman/Docker mask
//! parts of `/proc` with over-mounts so the kernel refuses a fresh proc mount in a user namespace.
//! [`HostFacts`] reads the few `/proc` values that tell these apart; the `*_hint` functions turn an
//! errno plus those facts into one sentence naming the cause and the command that fixes it. `ovm
//! doctor` shows the same facts and the same fixes.

use std::fs;
use std::sync::OnceLock;

use nix::errno::Errno;

use crate::settings::Settings;

pub(crate) const FIX_SECCOMP: &str = "a seccomp filter is active on this process (Seccomp: 2 in /proc/self/status), \
     as Docker's default profile does; it blocks unshare(CLONE_NEWUSER). Fix: run the container with \
     --security-opt seccomp=unconfined";
pub(crate) const FIX_APPARMOR: &str = "AppArmor restricts unprivileged user namespaces \
     (kernel.apparmor_restrict_unprivileged_userns=1, Ubuntu >= 23.10). Fix: sudo sysctl -w \
     kernel.apparmor_restrict_unprivileged_userns=0 (persist it in /etc/sysctl.d/), or inside a container \
     --security-opt apparmor=unconfined";
pub(crate) const FIX_USERNS_CLONE: &str = "unprivileged user namespaces are disabled \
     (kernel.unprivileged_userns_clone=0). Fix: sudo sysctl -w kernel.unprivileged_userns_clone=1";
pub(crate) const FIX_PROC: &str = "the kernel refuses a new /proc in a user namespace while parts of the \
     existing /proc are hidden by over-mounts (Podman and Docker mask /proc/kcore, /proc/keys, ... this way). \
     Fix: start the container with --security-opt systempaths=unconfined (podman and docker; podman also \
     --security-opt unmask=ALL; --privileged works too but grants far more), or accept the degraded mode, \
     OVM_SANDBOX_PROC=host-ro: the existing /proc bound read-only (still no host /usr and no network, but the \
     container's other processes become readable)";

/// Which container engine (if any) ovm appears to run under, and the evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// `podman`, `docker`, `containerd`, `kubernetes`, `lxc`, or `unknown engine`.
    pub engine: String,
    /// Whether the container's root is not the host's root: from Podman's /run/.containerenv
    /// (`rootless=1`, written only for --privileged containers), else from /proc/self/uid_map (uid 0
    /// mapped from a non-zero id: rootless, or a remapped user namespace; the identity map: rootful,
    /// but only when more than a marker file says "container", see [`detect_container`]). `None`
    /// when unknown.
    pub rootless: Option<bool>,
    /// What gave it away: marker files, the `container` variable, cgroup paths.
    pub evidence: Vec<String>,
}

/// Decide from the traces container engines leave: `/.dockerenv` (Docker), `/run/.containerenv`
/// (Podman, whose content names the engine and rootless mode), the `container=` variable that
/// Podman, LXC and systemd-nspawn set for pid 1 and its children, and engine names in the cgroup
/// path. Marker files alone are weak (VM images made from container images keep `/.dockerenv`),
/// which is why doctor reports the result as information and lets the trial sandbox decide.
pub(crate) fn detect_container(
    markers: &[String],
    containerenv: Option<&str>,
    container_var: Option<&str>,
    cgroup: &str,
    uid_map: &str,
) -> Option<ContainerInfo> {
    let mut info = ContainerInfo::default();
    let mut engine: Option<&str> = None;
    // Evidence a plain host does not carry: the `container` variable, an engine's cgroup path.
    let mut beyond_markers = false;
    for m in markers {
        info.evidence.push(m.clone());
        if m == "/run/.containerenv" {
            engine = Some("podman");
        } else if m == "/.dockerenv" {
            engine = engine.or(Some("docker"));
        }
    }
    if let Some(text) = containerenv {
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("engine=") {
                // Podman writes engine="podman-VERSION"; buildah's RUN containers, engine="buildah-VERSION".
                let v = v.trim_matches('"');
                if v.starts_with("podman") || v.starts_with("buildah") {
                    engine = Some("podman");
                }
            } else if let Some(v) = line.strip_prefix("rootless=") {
                info.rootless = Some(v.trim_matches('"') == "1");
            }
        }
    }
    if let Some(var) = container_var.filter(|v| !v.is_empty()) {
        beyond_markers = true;
        info.evidence.push(format!("container={var}"));
        engine = match var {
            "podman" => Some("podman"),
            "docker" => Some("docker"),
            "lxc" | "lxc-libvirt" => Some("lxc"),
            _ => engine.or(Some("unknown engine")),
        };
    }
    const CGROUP_HINTS: &[(&str, &str)] =
        &[("libpod", "podman"), ("docker", "docker"), ("kubepods", "kubernetes"), ("containerd", "containerd")];
    for (needle, name) in CGROUP_HINTS {
        if cgroup.lines().any(|l| l.contains(needle)) {
            beyond_markers = true;
            info.evidence.push(format!("cgroup path with {needle}"));
            engine = engine.or(Some(name));
        }
    }
    let engine = engine?;
    info.engine = engine.to_string();
    if info.rootless.is_none() {
        // "inside outside count": the line that maps uid 0.
        let outside_of_root = uid_map.lines().find_map(|l| {
            let mut f = l.split_whitespace().map(|n| n.parse::<u64>().ok());
            match (f.next().flatten(), f.next().flatten()) {
                (Some(0), Some(outside)) => Some(outside),
                _ => None,
            }
        });
        // The identity map alone says nothing: rootful containers and plain hosts look alike (this
        // very VM carries /.dockerenv). With a container variable or an engine's cgroup path it
        // means a rootful container: its root is the host's root (Docker without userns-remap).
        info.rootless = match outside_of_root {
            Some(0) if beyond_markers => Some(false),
            Some(0) | None => None,
            Some(_) => Some(true),
        };
    }
    Some(info)
}

/// The host settings that decide whether a sandbox can be made. Missing files are `None`
/// (e.g. `kernel.unprivileged_userns_clone` exists only on Debian/Ubuntu kernels).
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub euid: u32,
    /// 0 = none, 1 = strict, 2 = filter (from `/proc/self/status`).
    pub seccomp_mode: Option<u32>,
    pub max_user_namespaces: Option<u64>,
    pub unprivileged_userns_clone: Option<u64>,
    pub apparmor_restrict_userns: Option<u64>,
    /// The AppArmor profile enforced on this process (Docker's `docker-default`, Podman's
    /// `containers-default-…`), `None` when unconfined or without AppArmor.
    pub apparmor_profile: Option<String>,
    /// Container marker files that exist (`/.dockerenv`, `/run/.containerenv`).
    pub container_markers: Vec<String>,
    /// The container engine, when the traces name one (see [`detect_container`]).
    pub container: Option<ContainerInfo>,
    /// Mount points below `/proc` (other than binfmt_misc): over-mounts that block a fresh proc mount.
    pub proc_overmounts: Vec<String>,
}

/// The `container` variable of this process's settings, for the hints made deep in a sandbox's
/// setup, where no settings travel: [`remember`]ed at the runtime's entry (`run`, the doctor). Not
/// remembered, it counts as unset; the other traces of a container still count.
static CONTAINER_VAR: OnceLock<Option<String>> = OnceLock::new();

/// Records what the hints need of `settings`, once per process (a later call changes nothing).
pub(crate) fn remember(settings: &Settings) {
    let _ = CONTAINER_VAR.set(settings.container.clone());
}

impl HostFacts {
    /// The facts of this host, with `settings`' `container` variable.
    pub fn read(settings: &Settings) -> Self {
        HostFacts::read_with(settings.container.as_deref())
    }

    /// The facts of this host, with the `container` variable [`remember`]ed for the process.
    fn remembered() -> Self {
        HostFacts::read_with(CONTAINER_VAR.get().and_then(|v| v.as_deref()))
    }

    fn read_with(container_var: Option<&str>) -> Self {
        let container_markers: Vec<String> = ["/.dockerenv", "/run/.containerenv"]
            .iter()
            .filter(|p| fs::symlink_metadata(p).is_ok())
            .map(|p| p.to_string())
            .collect();
        let containerenv = fs::read_to_string("/run/.containerenv").ok();
        let cgroup = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let uid_map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        let container = detect_container(&container_markers, containerenv.as_deref(), container_var, &cgroup, &uid_map);
        HostFacts {
            euid: nix::unistd::geteuid().as_raw(),
            seccomp_mode: status_field("Seccomp:"),
            max_user_namespaces: read_number("/proc/sys/user/max_user_namespaces"),
            unprivileged_userns_clone: read_number("/proc/sys/kernel/unprivileged_userns_clone"),
            apparmor_restrict_userns: read_number("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
            apparmor_profile: ["/proc/self/attr/apparmor/current", "/proc/self/attr/current"]
                .iter()
                .find_map(|p| fs::read_to_string(p).ok())
                .and_then(|label| enforced_apparmor_profile(&label)),
            container_markers,
            container,
            proc_overmounts: proc_overmounts(),
        }
    }

    fn unprivileged(&self) -> bool {
        self.euid != 0
    }
}

fn read_number(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn status_field(name: &str) -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok())
}

/// The profile name of an AppArmor label that is enforced: `docker-default (enforce)` gives
/// `docker-default`; `unconfined`, a complain-mode profile, or another LSM's label (SELinux's
/// `system_u:system_r:container_t:s0`, which shares /proc/self/attr/current) give `None`.
pub(crate) fn enforced_apparmor_profile(label: &str) -> Option<String> {
    let name = label.trim_end_matches(['\n', '\0']).strip_suffix(" (enforce)")?;
    (!name.is_empty()).then(|| name.to_string())
}

fn proc_overmounts() -> Vec<String> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| mp.starts_with("/proc/") && !mp.starts_with("/proc/sys/fs/binfmt_misc"))
        .map(str::to_string)
        .collect()
}

/// Why creating the user (and pid) namespace failed.
pub(crate) fn userns_hint(errno: Errno) -> String {
    let facts = HostFacts::remembered();
    match errno {
        Errno::ENOSPC => format!(
            "the user namespace limit is reached (user.max_user_namespaces = {}). Fix: sudo sysctl -w \
             user.max_user_namespaces=15000",
            facts.max_user_namespaces.map_or("?".to_string(), |n| n.to_string())
        ),
        Errno::EPERM | Errno::EACCES => policy_hint(&facts, "creating user namespaces"),
        Errno::EUSERS => "user namespaces are nested 32 deep already; run ovm from a less nested sandbox".into(),
        Errno::EINVAL => "the calling process is multi-threaded or chrooted, where the kernel refuses a new user \
                          namespace"
            .into(),
        _ => String::new(),
    }
}

/// Why writing `/proc/self/{setgroups,uid_map,gid_map}` failed.
pub(crate) fn idmap_hint(errno: Errno) -> String {
    let facts = HostFacts::remembered();
    if facts.unprivileged() && facts.apparmor_restrict_userns == Some(1) {
        return FIX_APPARMOR.to_string();
    }
    match errno {
        Errno::EPERM => "the kernel refused the id mapping; ovm maps only the invoking uid/gid (no setuid helper), \
                         so a security policy (LSM or seccomp) is the likely cause"
            .into(),
        _ => String::new(),
    }
}

/// Why an ordinary mount step (rprivate, the root tmpfs) failed.
pub(crate) fn mount_hint(errno: Errno) -> String {
    match errno {
        Errno::EPERM | Errno::EACCES => policy_hint(&HostFacts::remembered(), "mounting in a user namespace"),
        _ => String::new(),
    }
}

/// Why the fresh `/proc` could not be mounted.
pub(crate) fn proc_hint(errno: Errno) -> String {
    let facts = HostFacts::remembered();
    match errno {
        Errno::EPERM | Errno::EACCES if !facts.proc_overmounts.is_empty() => {
            format!("{FIX_PROC} (over-mounts found: {})", facts.proc_overmounts.join(", "))
        }
        Errno::EPERM | Errno::EACCES => {
            format!("{FIX_PROC}; or a security policy forbids it: {}", policy_hint(&facts, "mounting proc"))
        }
        _ => String::new(),
    }
}

pub(crate) const FIX_SECCOMP_HOSTNAME: &str = "a seccomp filter forbids sethostname even in the sandbox's own \
     UTS namespace: Podman's default profile allows it only to containers holding CAP_SYS_ADMIN. Fix: start the \
     container with --security-opt seccomp=unconfined (rootless Podman: --cap-add SYS_ADMIN also works; that \
     capability then holds only in the container's user namespace)";

/// Why setting the sandbox's hostname (in its new UTS namespace, where it holds CAP_SYS_ADMIN) failed.
pub(crate) fn hostname_hint(errno: Errno) -> String {
    let facts = HostFacts::remembered();
    match errno {
        Errno::EPERM if facts.seccomp_mode == Some(2) => FIX_SECCOMP_HOSTNAME.to_string(),
        Errno::EPERM | Errno::EACCES => policy_hint(&facts, "setting the hostname"),
        _ => String::new(),
    }
}

/// Why joining a new session keyring failed.
pub(crate) fn keyring_hint(errno: Errno) -> String {
    match errno {
        Errno::EDQUOT => ": the key quota of this user is used up (kernel.keys.maxkeys / maxbytes; every running \
                          sandbox holds one keyring). Fix: sudo sysctl -w kernel.keys.maxkeys=2000 \
                          kernel.keys.maxbytes=200000"
            .into(),
        _ => String::new(),
    }
}

/// Why ovm's seccomp filter could not be installed.
pub(crate) fn seccomp_hint(errno: Errno) -> String {
    match errno {
        Errno::EINVAL | Errno::ENOSYS => ": the kernel has no seccomp filter support (CONFIG_SECCOMP_FILTER); ovm \
                                           refuses to run without the wall against terminal injection"
            .into(),
        Errno::EACCES | Errno::EPERM => ": a security policy forbids seccomp filters here".into(),
        _ => String::new(),
    }
}

/// Why `pivot_root` failed.
pub(crate) fn pivot_hint(errno: Errno) -> String {
    match errno {
        Errno::EINVAL => "the host's / is probably an initramfs (rootfs), where pivot_root is impossible; run ovm \
                          on a system with a real root filesystem"
            .into(),
        _ => String::new(),
    }
}

/// Why a mount destination could not be opened or created beneath the sandbox root.
pub(crate) fn mountpoint_hint(errno: Errno) -> String {
    match errno {
        Errno::ELOOP => ": a path component is a symlink (possibly planted in a read-write bind); ovm never follows \
                         symlinks in mount destinations, so that no mount can be redirected"
            .into(),
        Errno::EXDEV => ": the path escapes the sandbox root".into(),
        Errno::EROFS => ": it lies inside a read-only mount, where the mount point cannot be created; create it on \
                         the host or order the mounts differently"
            .into(),
        _ => String::new(),
    }
}

/// EPERM from a namespace or mount call: pick the policy that explains it on this host.
fn policy_hint(facts: &HostFacts, what: &str) -> String {
    if facts.seccomp_mode == Some(2) {
        FIX_SECCOMP.to_string()
    } else if facts.unprivileged() && facts.unprivileged_userns_clone == Some(0) {
        FIX_USERNS_CLONE.to_string()
    } else if facts.unprivileged() && facts.apparmor_restrict_userns == Some(1) {
        FIX_APPARMOR.to_string()
    } else if let Some(profile) = &facts.apparmor_profile {
        format!(
            "the AppArmor profile {profile} confines this process (Docker's docker-default and Podman's \
             containers-default deny mount); it may forbid {what}. Fix: start the container with --security-opt \
             apparmor=unconfined"
        )
    } else if let Some(c) = &facts.container {
        format!(
            "a security policy forbids {what}; this looks like a {} container ({}): run it with --security-opt \
             seccomp=unconfined --security-opt apparmor=unconfined",
            c.engine,
            c.evidence.join(", ")
        )
    } else if !facts.container_markers.is_empty() {
        format!(
            "a security policy forbids {what}; this looks like a container ({}): run it with --security-opt \
             seccomp=unconfined --security-opt apparmor=unconfined",
            facts.container_markers.join(", ")
        )
    } else {
        format!("a security policy (seccomp filter or LSM such as AppArmor/SELinux) forbids {what}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_is_recognised_with_its_rootless_flag() {
        let env = "engine=\"podman-4.3.1\"\nname=\"x\"\nrootless=1\n";
        let c = detect_container(&["/run/.containerenv".into()], Some(env), Some("podman"), "0::/", "").unwrap();
        assert_eq!(c.engine, "podman");
        assert_eq!(c.rootless, Some(true));
        assert!(c.evidence.contains(&"container=podman".to_string()));
        // Unprivileged Podman leaves .containerenv empty: the uid map tells.
        let rootless_map = "         0       1001          1\n         1     100000      65536\n";
        let c = detect_container(&["/run/.containerenv".into()], Some(""), None, "0::/", rootless_map).unwrap();
        assert_eq!((c.engine.as_str(), c.rootless), ("podman", Some(true)));
        let c = detect_container(&["/run/.containerenv".into()], Some(""), None, "0::/", "0 0 4294967295").unwrap();
        assert_eq!(c.rootless, None);
    }

    #[test]
    fn docker_is_recognised_by_marker_or_cgroup() {
        let c = detect_container(&["/.dockerenv".into()], None, None, "0::/", "").unwrap();
        assert_eq!((c.engine.as_str(), c.rootless), ("docker", None));
        let c = detect_container(&[], None, None, "12:pids:/docker/0123abcd\n0::/", "").unwrap();
        assert_eq!(c.engine, "docker");
        // Docker as root (no userns-remap): its cgroup path and the identity map.
        let c = detect_container(&["/.dockerenv".into()], None, None, "12:pids:/docker/0123abcd", "0 0 4294967295")
            .unwrap();
        assert_eq!((c.engine.as_str(), c.rootless), ("docker", Some(false)));
        // The marker file alone (a VM image made from a container image) decides nothing.
        let c = detect_container(&["/.dockerenv".into()], None, None, "0::/", "0 0 4294967295").unwrap();
        assert_eq!(c.rootless, None);
        let c = detect_container(&[], None, None, "0::/kubepods/besteffort/pod1", "").unwrap();
        assert_eq!(c.engine, "kubernetes");
    }

    #[test]
    fn no_traces_no_container() {
        assert_eq!(detect_container(&[], None, None, "0::/user.slice/session-1.scope", "0 0 4294967295"), None);
        assert_eq!(detect_container(&[], None, Some(""), "0::/", ""), None);
    }

    #[test]
    fn the_proc_fix_names_the_flag_and_the_degraded_mode() {
        assert!(FIX_PROC.contains("--security-opt systempaths=unconfined"));
        assert!(FIX_PROC.contains("OVM_SANDBOX_PROC=host-ro"));
    }

    #[test]
    fn policy_hint_names_seccomp_first() {
        let facts =
            HostFacts { euid: 1000, seccomp_mode: Some(2), apparmor_restrict_userns: Some(1), ..Default::default() };
        assert!(policy_hint(&facts, "x").contains("seccomp=unconfined"));
    }

    #[test]
    fn policy_hint_names_apparmor_for_unprivileged_users_only() {
        let mut facts = HostFacts { euid: 1000, apparmor_restrict_userns: Some(1), ..Default::default() };
        assert!(policy_hint(&facts, "x").contains("apparmor_restrict_unprivileged_userns=0"));
        facts.euid = 0;
        assert!(!policy_hint(&facts, "x").contains("apparmor_restrict"));
    }

    #[test]
    fn an_enforced_apparmor_profile_is_named_after_seccomp() {
        assert_eq!(enforced_apparmor_profile("docker-default (enforce)\n").as_deref(), Some("docker-default"));
        assert_eq!(enforced_apparmor_profile("unconfined\n"), None);
        assert_eq!(enforced_apparmor_profile("docker-default (complain)\n"), None);
        assert_eq!(enforced_apparmor_profile("system_u:system_r:container_t:s0\0"), None);
        let mut facts = HostFacts {
            euid: 0,
            seccomp_mode: Some(2),
            apparmor_profile: Some("docker-default".into()),
            ..Default::default()
        };
        assert!(policy_hint(&facts, "mounting").contains("seccomp=unconfined"));
        facts.seccomp_mode = Some(0);
        let hint = policy_hint(&facts, "mounting");
        assert!(hint.contains("AppArmor profile docker-default"), "{hint}");
        assert!(hint.ends_with("Fix: start the container with --security-opt apparmor=unconfined"), "{hint}");
    }

    #[test]
    fn policy_hint_names_the_debian_sysctl() {
        let facts = HostFacts { euid: 1000, unprivileged_userns_clone: Some(0), ..Default::default() };
        assert!(policy_hint(&facts, "x").contains("kernel.unprivileged_userns_clone=1"));
    }

    #[test]
    fn symlinked_mount_points_are_explained() {
        assert!(mountpoint_hint(Errno::ELOOP).contains("symlink"));
    }
}

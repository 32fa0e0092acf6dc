//! Building the OCI runtime spec that describes a sandbox.
//!
//! Every ovm sandbox — a package build, `ovm shell`, `ovm sandbox` on the command line, the doctor's
//! trial — is one [`oci_spec::runtime::Spec`]. [`SandboxBuilder`] writes it with the strict defaults
//! (fresh read-only tmpfs root, new user/mount/pid/net/uts/ipc namespaces, the invoking
//! uid/gid mapped to root, a minimal `/dev`, a new `/proc` with `/proc/sys` read-only, tmpfs `/tmp`,
//! no capabilities, `no_new_privileges`, a fixed environment, hostname `ovm`), and callers only add
//! what differs: binds, tmpfs mounts, environment, working directory.
//!
//! What the OCI schema has no field for travels in `annotations` under `org.ovm.`, so the spec stays
//! the only carrier of configuration: [`ANNOTATION_ROOT`] (the root is a fresh tmpfs rather than the
//! bundle's `root.path`) and [`ANNOTATION_PRESERVE_FDS`] (inherited fds the command keeps, e.g. a GNU
//! make jobserver pipe). Two more only state what the runtime always does, so a reader of the spec
//! sees it: [`ANNOTATION_SECCOMP`] (ovm's built-in seccomp filter; `linux.seccomp` is refused) and
//! [`ANNOTATION_SESSION_KEYRING`] (a new session keyring). The same spec, written as a bundle, runs
//! under runc (see `bundle`), which gives a new session keyring too but not the seccomp filter.
//!
//! `/proc` comes in two modes ([`ProcMode`]). The default mounts a new procfs for the sandbox's pid
//! namespace. The kernel refuses that inside a container whose runtime hid parts of its /proc with
//! over-mounts (Podman's and Docker's masked paths) unless the container is started with
//! `--security-opt systempaths=unconfined`. Where that flag cannot be given, `OVM_SANDBOX_PROC=host-ro`
//! selects the degraded mode: the container's existing /proc is bound recursively read-only. The
//! sandbox keeps its own pid namespace, no host `/usr` and no network, but can *read* the container's
//! other processes' entries. It is never chosen automatically: the refusal's error names the variable,
//! and choosing it logs a warning and marks the spec (annotation [`ANNOTATION_PROC`]).

use std::collections::{HashMap, HashSet};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxCapabilities, LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceType, Mount, PosixRlimit,
    PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec, User,
};

use super::error::SandboxError;
use super::limits::Limits;
use crate::settings::Settings;

/// `"tmpfs"`: the sandbox root is a fresh tmpfs (made read-only once the mount points exist);
/// `root.path` is used only when the spec is written as a bundle for another runtime.
pub const ANNOTATION_ROOT: &str = "org.ovm.root";
/// Comma-separated inherited file descriptors (≥ 3) the command keeps open; every other inherited
/// descriptor is closed before anything runs in the sandbox.
pub const ANNOTATION_PRESERVE_FDS: &str = "org.ovm.preserve-fds";

/// ovm's built-in seccomp filter, always installed by its runtime right before `execve` (the spec's
/// own `linux.seccomp` is refused): the value names what it refuses.
pub const ANNOTATION_SECCOMP: &str = "org.ovm.seccomp";
pub const SECCOMP_BUILTIN: &str =
    "builtin: ioctl TIOCSTI and TIOCLINUX fail with EPERM; add_key, request_key, keyctl fail with ENOSYS";
/// The sandbox's session keyring: always a new, empty, anonymous one (the caller's keys stay out of
/// reach); the user keyring `@u` inside is the user namespace's own, also empty.
pub const ANNOTATION_SESSION_KEYRING: &str = "org.ovm.session-keyring";
pub const SESSION_KEYRING_NEW: &str = "new";

/// `"fresh"` or `"host-ro"`: which [`ProcMode`] built the spec's `/proc` mount.
pub const ANNOTATION_PROC: &str = "org.ovm.proc";
/// The environment variable that selects the [`ProcMode`] of every sandbox ovm makes.
pub const PROC_MODE_ENV: &str = crate::settings::SANDBOX_PROC;

/// How a sandbox gets its `/proc` (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcMode {
    /// A new procfs for the sandbox's pid namespace: only the sandbox's own processes are visible.
    #[default]
    Fresh,
    /// The caller's /proc, bound recursively read-only: for containers that refuse a new procfs.
    /// The sandbox then sees (read-only) the processes of the container it runs in.
    HostReadOnly,
}

impl ProcMode {
    pub fn name(self) -> &'static str {
        match self {
            ProcMode::Fresh => "fresh",
            ProcMode::HostReadOnly => "host-ro",
        }
    }

    /// Parse a mode name (`fresh`, `host-ro`); `var` names where it came from, for the error.
    pub fn parse(value: &str, var: &str) -> Result<ProcMode, SandboxError> {
        match value.trim() {
            "" | "fresh" => Ok(ProcMode::Fresh),
            "host-ro" => Ok(ProcMode::HostReadOnly),
            _ => Err(SandboxError::ProcMode { var: var.to_string(), value: value.to_string() }),
        }
    }

    /// The mode the user chose with [`PROC_MODE_ENV`] (in `settings`); unset means
    /// [`ProcMode::Fresh`]. Choosing the degraded mode is announced, once per process: it is the
    /// user's choice, but one whose cost (other processes readable) must stay visible in every
    /// run's output.
    pub fn chosen(settings: &Settings) -> Result<ProcMode, SandboxError> {
        let mode = match &settings.sandbox_proc {
            Some(value) => ProcMode::parse(value, PROC_MODE_ENV)?,
            None => ProcMode::Fresh,
        };
        if mode == ProcMode::HostReadOnly {
            warn_degraded_proc();
        }
        Ok(mode)
    }
}

/// Says once per process that sandboxes run in the degraded /proc mode.
fn warn_degraded_proc() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "{PROC_MODE_ENV}=host-ro: sandboxes get the existing /proc bound read-only instead of their own; they \
             still have no host /usr and no network, but can read the other processes of this container. Start \
             the container with --security-opt systempaths=unconfined to build with a private /proc"
        );
    });
}

/// The environment every sandbox starts from; [`SandboxBuilder::env`] overrides entries.
pub const DEFAULT_ENV: &[(&str, &str)] = &[("PATH", "/usr/bin:/bin"), ("HOME", "/tmp"), ("LC_ALL", "C"), ("TZ", "UTC")];
pub const DEFAULT_HOSTNAME: &str = "ovm";

/// Parts of /proc a sandbox may not write: with the invoking uid mapped to root, a sandbox started
/// by root would otherwise write host sysctls and /proc/sysrq-trigger (the same list runc uses).
pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];
/// Parts of /proc hidden entirely (kernel memory, keyrings, timers), as runc does.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
];

/// Builds the [`Spec`] of one sandbox. Methods take and return the builder; [`build`](Self::build)
/// reports the first invalid input.
///
/// ```
/// use ovm::sandbox::SandboxBuilder;
/// let spec = SandboxBuilder::new(["/bin/sh", "-c", "make"])
///     .ro_bind("/usr/lib/ovm/busybox", "/bin/sh")
///     .rw_bind("/tmp/work/build", "/ovm/build")
///     .env("JOBS", "2")
///     .cwd("/ovm/build")
///     .build()
///     .unwrap();
/// assert_eq!(spec.hostname().as_deref(), Some("ovm"));
/// ```
#[derive(Debug, Clone)]
pub struct SandboxBuilder {
    args: Vec<String>,
    mounts: Vec<Mount>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
    share_net: bool,
    hostname: String,
    terminal: bool,
    preserve_fds: Vec<RawFd>,
    rlimits: Vec<(PosixRlimitType, u64, u64)>,
    uid: u32,
    gid: u32,
    proc_mode: ProcMode,
    limits: Limits,
}

impl SandboxBuilder {
    /// A strict sandbox that will run `args` (`args[0]` is searched in the sandbox's `PATH` when it
    /// has no `/`). Maps the calling process's effective uid/gid to root inside.
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        SandboxBuilder {
            args: args.into_iter().map(Into::into).collect(),
            mounts: Vec::new(),
            env: DEFAULT_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            cwd: PathBuf::from("/"),
            share_net: false,
            hostname: DEFAULT_HOSTNAME.to_string(),
            terminal: false,
            preserve_fds: Vec::new(),
            rlimits: vec![(PosixRlimitType::RlimitCore, 0, 0)],
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            proc_mode: ProcMode::Fresh,
            limits: Limits::default(),
        }
    }

    /// The most processes and memory the sandbox may use (`linux.resources`); `None` in a field
    /// means no limit, which is where a builder starts. Limits cost a sandbox's start-up a cgroup
    /// migration on hosts where they are cgroups (an RCU grace period: milliseconds, see
    /// `limits`), so they are for sandboxes that run builds — the engine sets them on every
    /// step (with [`Limits::defaults`] unless configured) — and for `ovm sandbox` when asked.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Processes alive at once (see [`Limits::pids`]); `None`: no limit.
    pub fn pids_limit(mut self, pids: Option<u64>) -> Self {
        self.limits.pids = pids;
        self
    }

    /// Bytes of memory (see [`Limits::memory`]); `None`: no limit.
    pub fn memory_limit(mut self, bytes: Option<u64>) -> Self {
        self.limits.memory = bytes;
        self
    }

    /// How `/proc` is provided; [`ProcMode::Fresh`] unless this is called. Every sandbox ovm makes
    /// for a user takes the mode the user chose ([`ProcMode::chosen`]).
    pub fn proc_mode(mut self, mode: ProcMode) -> Self {
        self.proc_mode = mode;
        self
    }

    /// Bind `host` (file or directory, recursively) read-only at `dst`.
    pub fn ro_bind(self, host: impl AsRef<Path>, dst: impl AsRef<Path>) -> Self {
        self.bind(host.as_ref(), dst.as_ref(), true)
    }

    /// Bind `host` (file or directory, recursively) read-write at `dst`; always nosuid, nodev.
    pub fn rw_bind(self, host: impl AsRef<Path>, dst: impl AsRef<Path>) -> Self {
        self.bind(host.as_ref(), dst.as_ref(), false)
    }

    fn bind(mut self, host: &Path, dst: &Path, readonly: bool) -> Self {
        let mode = if readonly { "ro" } else { "rw" };
        self.mounts.push(mount(dst, "bind", host, &["rbind", mode, "nosuid", "nodev"]));
        self
    }

    /// A fresh, empty, writable tmpfs at `dst`.
    pub fn tmpfs(mut self, dst: impl AsRef<Path>) -> Self {
        self.mounts.push(mount(dst.as_ref(), "tmpfs", Path::new("tmpfs"), &["nosuid", "nodev", "mode=1777"]));
        self
    }

    /// Set (or replace) one environment variable of the command.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.env.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.env.push((key, value)),
        }
        self
    }

    /// Working directory of the command, a path inside the sandbox.
    pub fn cwd(mut self, dst: impl Into<PathBuf>) -> Self {
        self.cwd = dst.into();
        self
    }

    /// Share the host's network namespace instead of an empty one with only loopback.
    pub fn share_net(mut self, share: bool) -> Self {
        self.share_net = share;
        self
    }

    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = hostname.into();
        self
    }

    /// Give the command a terminal of its own (interactive shells with job control): a new pty
    /// whose other end the caller relays to its terminal. The caller's terminal itself never
    /// reaches the sandbox; without this the command runs in a new session with no controlling
    /// terminal. Either way it cannot inject input into the caller's (TIOCSTI).
    pub fn terminal(mut self, terminal: bool) -> Self {
        self.terminal = terminal;
        self
    }

    /// Inherited file descriptors the command keeps (e.g. a jobserver pipe); all others are closed.
    pub fn preserve_fds(mut self, fds: &[RawFd]) -> Self {
        self.preserve_fds.extend_from_slice(fds);
        self.preserve_fds.sort_unstable();
        self.preserve_fds.dedup();
        self
    }

    /// Set a resource limit (replacing the default `RLIMIT_CORE` 0 when `typ` is that).
    pub fn rlimit(mut self, typ: PosixRlimitType, soft: u64, hard: u64) -> Self {
        self.rlimits.retain(|r| r.0 != typ);
        self.rlimits.push((typ, soft, hard));
        self
    }

    pub fn build(self) -> Result<Spec, SandboxError> {
        let proc_mount = match self.proc_mode {
            ProcMode::Fresh => mount(Path::new("/proc"), "proc", Path::new("proc"), &["nosuid", "noexec", "nodev"]),
            ProcMode::HostReadOnly => {
                mount(Path::new("/proc"), "bind", Path::new("/proc"), &["rbind", "ro", "nosuid", "noexec", "nodev"])
            }
        };
        let mut mounts = vec![
            proc_mount,
            mount(
                Path::new("/dev"),
                "tmpfs",
                Path::new("tmpfs"),
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            ),
        ];
        if !self.mounts.iter().any(|m| m.destination() == Path::new("/tmp")) {
            mounts.push(mount(Path::new("/tmp"), "tmpfs", Path::new("tmpfs"), &["nosuid", "nodev", "mode=1777"]));
        }
        mounts.extend(self.mounts);

        let mut process = Process::default();
        let mut user = User::default();
        user.set_uid(0);
        user.set_gid(0);
        user.set_umask(Some(0o022));
        process.set_user(user);
        process.set_args(Some(self.args));
        process.set_env(Some(self.env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()));
        process.set_cwd(self.cwd);
        process.set_terminal(Some(self.terminal));
        process.set_no_new_privileges(Some(true));
        process.set_rlimits(Some(self.rlimits.iter().map(|&(t, s, h)| rlimit(t, s, h)).collect::<Result<_, _>>()?));
        process.set_capabilities(Some(no_capabilities()));

        let mut namespaces = vec![LinuxNamespaceType::User, LinuxNamespaceType::Mount, LinuxNamespaceType::Pid];
        if !self.share_net {
            namespaces.push(LinuxNamespaceType::Network);
        }
        namespaces.extend([LinuxNamespaceType::Uts, LinuxNamespaceType::Ipc]);

        let mut linux = oci_spec::runtime::Linux::default();
        linux.set_resources(resources(&self.limits)?);
        linux.set_namespaces(Some(
            namespaces
                .into_iter()
                .map(|typ| {
                    let mut ns = LinuxNamespace::default();
                    ns.set_typ(typ);
                    ns
                })
                .collect(),
        ));
        linux.set_uid_mappings(Some(vec![id_mapping(self.uid)?]));
        linux.set_gid_mappings(Some(vec![id_mapping(self.gid)?]));
        // No linux.devices: the OCI default devices (null, zero, full, random, urandom, tty) are
        // implied, by runc and by our runtime alike; listing them again trips runc's cgroup setup.
        linux.set_devices(None);
        linux.set_readonly_paths(Some(READONLY_PATHS.iter().map(|p| p.to_string()).collect()));
        linux.set_masked_paths(Some(MASKED_PATHS.iter().map(|p| p.to_string()).collect()));

        let mut root = Root::default();
        root.set_path(PathBuf::from("rootfs"));
        root.set_readonly(Some(true));

        let mut annotations = HashMap::from([
            (ANNOTATION_ROOT.to_string(), "tmpfs".to_string()),
            (ANNOTATION_PROC.to_string(), self.proc_mode.name().to_string()),
            (ANNOTATION_SECCOMP.to_string(), SECCOMP_BUILTIN.to_string()),
            (ANNOTATION_SESSION_KEYRING.to_string(), SESSION_KEYRING_NEW.to_string()),
        ]);
        if !self.preserve_fds.is_empty() {
            let fds: Vec<String> = self.preserve_fds.iter().map(|fd| fd.to_string()).collect();
            annotations.insert(ANNOTATION_PRESERVE_FDS.to_string(), fds.join(","));
        }

        let mut spec = Spec::default();
        spec.set_version("1.0.2".to_string());
        spec.set_root(Some(root));
        spec.set_mounts(Some(mounts));
        spec.set_process(Some(process));
        spec.set_hostname(Some(self.hostname));
        spec.set_linux(Some(linux));
        spec.set_annotations(Some(annotations));

        // Validate now, so a bad builder call is reported where it was made, not when the sandbox runs.
        super::plan::Plan::from_spec(&spec)?;
        Ok(spec)
    }
}

/// The spec as pretty JSON with keys in a stable order (annotations are a hash map), so printing
/// the same sandbox twice gives the same text.
pub fn to_json(spec: &Spec) -> Result<String, SandboxError> {
    let value = serde_json::to_value(spec).map_err(|e| SandboxError::InvalidSpec(e.to_string()))?;
    serde_json::to_string_pretty(&value).map_err(|e| SandboxError::InvalidSpec(e.to_string()))
}

fn mount(dst: &Path, typ: &str, source: &Path, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(dst.to_path_buf());
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(source.to_path_buf()));
    m.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

fn rlimit(typ: PosixRlimitType, soft: u64, hard: u64) -> Result<PosixRlimit, SandboxError> {
    PosixRlimitBuilder::default().typ(typ).soft(soft).hard(hard).build().map_err(oci_error)
}

fn id_mapping(host_id: u32) -> Result<LinuxIdMapping, SandboxError> {
    LinuxIdMappingBuilder::default().container_id(0u32).host_id(host_id).size(1u32).build().map_err(oci_error)
}

fn oci_error(e: oci_spec::OciSpecError) -> SandboxError {
    SandboxError::InvalidSpec(e.to_string())
}

fn no_capabilities() -> LinuxCapabilities {
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(HashSet::new()));
    caps.set_effective(Some(HashSet::new()));
    caps.set_inheritable(Some(HashSet::new()));
    caps.set_permitted(Some(HashSet::new()));
    caps.set_ambient(Some(HashSet::new()));
    caps
}

/// `linux.resources` holding just the pids and memory limits (none when both are lifted).
fn resources(limits: &Limits) -> Result<Option<oci_spec::runtime::LinuxResources>, SandboxError> {
    if limits.is_empty() {
        return Ok(None);
    }
    let too_large = |what: &str| SandboxError::InvalidSpec(format!("the {what} limit is too large"));
    let mut resources = oci_spec::runtime::LinuxResources::default();
    if let Some(pids) = limits.pids {
        let mut p = oci_spec::runtime::LinuxPids::default();
        p.set_limit(i64::try_from(pids).map_err(|_| too_large("pids"))?);
        resources.set_pids(Some(p));
    }
    if let Some(bytes) = limits.memory {
        let mut m = oci_spec::runtime::LinuxMemory::default();
        m.set_limit(Some(i64::try_from(bytes).map_err(|_| too_large("memory"))?));
        resources.set_memory(Some(m));
    }
    Ok(Some(resources))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(spec: &Spec) -> Vec<String> {
        spec.process().as_ref().unwrap().env().clone().unwrap()
    }

    #[test]
    fn defaults_are_the_strict_profile() {
        let spec = SandboxBuilder::new(["/bin/true"]).build().unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let ns: Vec<_> = linux.namespaces().as_ref().unwrap().iter().map(|n| n.typ()).collect();
        for want in [
            LinuxNamespaceType::User,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Ipc,
        ] {
            assert!(ns.contains(&want), "{want:?} missing from {ns:?}");
        }
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.no_new_privileges(), Some(true));
        assert!(process.capabilities().as_ref().unwrap().bounding().as_ref().unwrap().is_empty());
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        assert_eq!(spec.annotations().as_ref().unwrap()[ANNOTATION_ROOT], "tmpfs");
        assert_eq!(spec.annotations().as_ref().unwrap()[ANNOTATION_SECCOMP], SECCOMP_BUILTIN);
        assert_eq!(spec.annotations().as_ref().unwrap()[ANNOTATION_SESSION_KEYRING], SESSION_KEYRING_NEW);
        let dests: Vec<_> = spec.mounts().as_ref().unwrap().iter().map(|m| m.destination().clone()).collect();
        assert_eq!(dests, [PathBuf::from("/proc"), PathBuf::from("/dev"), PathBuf::from("/tmp")]);
        assert!(linux.readonly_paths().as_ref().unwrap().contains(&"/proc/sys".to_string()));
        assert_eq!(env_of(&spec), ["PATH=/usr/bin:/bin", "HOME=/tmp", "LC_ALL=C", "TZ=UTC"]);
    }

    #[test]
    fn env_replaces_and_appends() {
        let spec = SandboxBuilder::new(["x"]).env("PATH", "/ovm/tools/bin").env("JOBS", "4").build().unwrap();
        let env = env_of(&spec);
        assert_eq!(env[0], "PATH=/ovm/tools/bin");
        assert!(env.contains(&"JOBS=4".to_string()));
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
    }

    #[test]
    fn binds_keep_their_order_after_the_standard_mounts() {
        let spec = SandboxBuilder::new(["x"])
            .ro_bind("/usr/bin/busybox", "/bin/sh")
            .rw_bind("/tmp/b", "/ovm/build")
            .tmpfs("/tmp")
            .build()
            .unwrap();
        let mounts = spec.mounts().as_ref().unwrap();
        let dests: Vec<_> = mounts.iter().map(|m| m.destination().display().to_string()).collect();
        assert_eq!(dests, ["/proc", "/dev", "/bin/sh", "/ovm/build", "/tmp"], "explicit /tmp replaces the default");
        assert!(mounts[2].options().as_ref().unwrap().contains(&"ro".to_string()));
        let rw = mounts[3].options().as_ref().unwrap();
        assert!(
            rw.contains(&"rw".to_string()) && rw.contains(&"nosuid".to_string()) && rw.contains(&"nodev".to_string())
        );
    }

    #[test]
    fn share_net_drops_the_network_namespace() {
        let spec = SandboxBuilder::new(["x"]).share_net(true).build().unwrap();
        let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
    }

    #[test]
    fn preserved_fds_travel_in_an_annotation() {
        let spec = SandboxBuilder::new(["x"]).preserve_fds(&[5, 4, 5]).build().unwrap();
        assert_eq!(spec.annotations().as_ref().unwrap()[ANNOTATION_PRESERVE_FDS], "4,5");
    }

    #[test]
    fn bad_builder_input_is_reported_by_build() {
        let err = SandboxBuilder::new(["x"]).ro_bind("/usr", "relative/dst").build().unwrap_err();
        assert!(err.to_string().contains("relative/dst"), "{err}");
        let err = SandboxBuilder::new(Vec::<String>::new()).build().unwrap_err();
        assert!(err.to_string().contains("args"), "{err}");
        let err = SandboxBuilder::new(["x"]).preserve_fds(&[1]).build().unwrap_err();
        assert!(err.to_string().contains("preserve"), "{err}");
    }

    #[test]
    fn json_is_stable_and_round_trips() {
        let spec = SandboxBuilder::new(["x"]).preserve_fds(&[3]).build().unwrap();
        let a = to_json(&spec).unwrap();
        assert_eq!(a, to_json(&spec).unwrap());
        let back: Spec = serde_json::from_str(&a).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn proc_modes_parse_and_unknown_ones_are_refused() {
        assert_eq!(ProcMode::parse("fresh", "V").unwrap(), ProcMode::Fresh);
        assert_eq!(ProcMode::parse("", "V").unwrap(), ProcMode::Fresh);
        assert_eq!(ProcMode::parse("host-ro", "V").unwrap(), ProcMode::HostReadOnly);
        let err = ProcMode::parse("host", "V").unwrap_err().to_string();
        assert!(err.starts_with("V=\"host\" is not a /proc mode"), "{err}");
    }

    #[test]
    fn the_chosen_proc_mode_comes_from_the_settings() {
        let with = |v: Option<&str>| Settings { sandbox_proc: v.map(str::to_string), ..Settings::default() };
        assert_eq!(ProcMode::chosen(&with(None)).unwrap(), ProcMode::Fresh);
        assert_eq!(ProcMode::chosen(&with(Some("host-ro"))).unwrap(), ProcMode::HostReadOnly);
        let err = ProcMode::chosen(&with(Some("host"))).unwrap_err().to_string();
        assert!(err.starts_with("OVM_SANDBOX_PROC=\"host\" is not a /proc mode"), "{err}");
    }

    #[test]
    fn the_degraded_proc_mode_binds_the_existing_proc_read_only_and_says_so() {
        let spec = SandboxBuilder::new(["true"]).proc_mode(ProcMode::HostReadOnly).build().unwrap();
        let proc = &spec.mounts().as_ref().unwrap()[0];
        assert_eq!(proc.destination(), Path::new("/proc"));
        assert_eq!(proc.typ().as_deref(), Some("bind"));
        assert_eq!(proc.source().as_deref(), Some(Path::new("/proc")));
        assert!(proc.options().as_ref().unwrap().iter().any(|o| o == "ro"));
        assert_eq!(spec.annotations().as_ref().unwrap()[ANNOTATION_PROC], "host-ro");
        // The rest of the strict profile is unchanged: own pid and network namespaces, masks.
        let plan = crate::sandbox::plan::Plan::from_spec(&spec).unwrap();
        assert!(plan.new_net && plan.masked_paths.contains(&PathBuf::from("/proc/kcore")));
        assert!(plan.mounts[0].attrs.readonly && plan.mounts[0].attrs.noexec);

        let spec = SandboxBuilder::new(["true"]).proc_mode(ProcMode::Fresh).build().unwrap();
        assert_eq!(spec.mounts().as_ref().unwrap()[0].typ().as_deref(), Some("proc"));
        assert_eq!(spec.annotations().as_ref().unwrap()[ANNOTATION_PROC], "fresh");
    }
}

//! From an OCI [`Spec`] to the runtime's [`Plan`]: every decision the runtime makes, validated and
//! pre-computed before any process is forked.
//!
//! The runtime executes specs it fully understands and refuses the rest: a field it does not
//! implement (seccomp, hooks, cgroup resources other than the pids and memory limits, joining
//! existing namespaces, capabilities to keep)
//! is an error, never silently ignored, because an ignored security setting is a weaker sandbox
//! than its author asked for. Doing all parsing here also keeps the forked processes simple: they
//! only walk a list of prepared steps, and the steps' order is unit-testable without privileges.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::{Component, Path, PathBuf};

use nix::sys::resource::Resource;
use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, Mount, PosixRlimitType, Spec};

use super::error::SandboxError;
use super::limits::Limits;
use super::spec::{ANNOTATION_PRESERVE_FDS, ANNOTATION_ROOT};

/// Mount flags the runtime sets on a mount (all others are inherited or cleared by the kernel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Attrs {
    pub readonly: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
    pub strictatime: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountKind {
    /// Recursive bind of a host file or directory.
    Bind { source: PathBuf },
    /// A fresh tmpfs; `data` are its fs options (`mode=1777,size=…`).
    Tmpfs { data: String },
    /// A new procfs for the sandbox's pid namespace.
    Proc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountOp {
    /// Absolute, normalized path inside the sandbox.
    pub dest: PathBuf,
    pub kind: MountKind,
    pub attrs: Attrs,
}

/// A host device node bound at the same path inside the sandbox (a user namespace cannot mknod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceOp {
    pub path: PathBuf,
    pub major: i64,
    pub minor: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    /// `PATH` from the command's environment, for finding `args[0]` when it has no `/`.
    pub search_path: String,
    pub cwd: PathBuf,
    /// Host uid and gid mapped to root inside.
    pub uid: u32,
    pub gid: u32,
    pub new_net: bool,
    pub new_uts: bool,
    pub new_ipc: bool,
    pub new_cgroup: bool,
    pub hostname: Option<String>,
    pub root_readonly: bool,
    pub mounts: Vec<MountOp>,
    pub devices: Vec<DeviceOp>,
    /// /dev is its own mount: give it the symlinks runc makes (fd, stdin, stdout, stderr, ptmx, core).
    pub dev_links: bool,
    pub readonly_paths: Vec<PathBuf>,
    pub masked_paths: Vec<PathBuf>,
    pub rlimits: Vec<(Resource, u64, u64)>,
    pub umask: u32,
    pub terminal: bool,
    pub preserve_fds: Vec<RawFd>,
    /// `linux.resources`' pids and memory limits; `limits` decides how they are enforced.
    pub limits: Limits,
}

/// The devices every OCI runtime provides without being asked (runtime-spec, "Default Devices"):
/// (name under /dev, major, minor). `/dev/console` and `/dev/ptmx` are omitted: no console is
/// allocated and there is no devpts.
pub(crate) const DEFAULT_DEVICES: &[(&str, i64, i64)] =
    &[("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

fn invalid(msg: impl Into<String>) -> SandboxError {
    SandboxError::InvalidSpec(msg.into())
}

impl Plan {
    pub fn from_spec(spec: &Spec) -> Result<Plan, SandboxError> {
        refuse_unsupported(spec)?;
        let process = spec.process().as_ref().ok_or_else(|| invalid("no process section"))?;
        let linux = spec.linux().as_ref().ok_or_else(|| invalid("no linux section"))?;

        let args = process.args().as_ref().filter(|a| !a.is_empty()).ok_or_else(|| invalid("process.args is empty"))?;
        let args = args.iter().map(|a| cstring(a, "process.args")).collect::<Result<Vec<_>, _>>()?;
        let env_strings = process.env().clone().unwrap_or_default();
        if let Some(bad) = env_strings.iter().find(|e| !e.contains('=') || e.starts_with('=')) {
            return Err(invalid(format!("process.env entry {bad:?} is not KEY=VALUE")));
        }
        let search_path =
            env_strings.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or("/usr/bin:/bin").to_string();
        let env = env_strings.iter().map(|e| cstring(e, "process.env")).collect::<Result<Vec<_>, _>>()?;
        let cwd = normalize(process.cwd(), "process.cwd")?;

        let user = process.user();
        if user.uid() != 0 || user.gid() != 0 {
            return Err(invalid("process.user must be uid 0 / gid 0 (the invoking user mapped to root)"));
        }
        if user.additional_gids().as_ref().is_some_and(|g| !g.is_empty()) {
            return Err(invalid("process.user.additionalGids is not supported (setgroups is denied)"));
        }
        if let Some(caps) = process.capabilities() {
            let sets = [caps.bounding(), caps.effective(), caps.inheritable(), caps.permitted(), caps.ambient()];
            if sets.iter().any(|s| s.as_ref().is_some_and(|s| !s.is_empty())) {
                return Err(invalid("process.capabilities must be empty: ovm sandboxes drop every capability"));
            }
        }
        if process.no_new_privileges() != Some(true) {
            return Err(invalid("process.noNewPrivileges must be true"));
        }
        let rlimits = process
            .rlimits()
            .iter()
            .flatten()
            .map(|r| Ok((resource(r.typ())?, r.soft(), r.hard())))
            .collect::<Result<Vec<_>, SandboxError>>()?;

        let namespaces = linux.namespaces().as_ref().ok_or_else(|| invalid("linux.namespaces is missing"))?;
        let mut types = HashSet::new();
        for ns in namespaces {
            if ns.path().is_some() {
                return Err(invalid(format!("joining an existing {:?} namespace is not supported", ns.typ())));
            }
            if ns.typ() == LinuxNamespaceType::Time {
                return Err(invalid("time namespaces are not supported"));
            }
            types.insert(ns.typ());
        }
        for required in [LinuxNamespaceType::User, LinuxNamespaceType::Mount, LinuxNamespaceType::Pid] {
            if !types.contains(&required) {
                return Err(invalid(format!("linux.namespaces must include {required:?}")));
            }
        }
        let uid = single_mapping(linux.uid_mappings(), "uidMappings")?;
        let gid = single_mapping(linux.gid_mappings(), "gidMappings")?;

        let new_uts = types.contains(&LinuxNamespaceType::Uts);
        if spec.hostname().is_some() && !new_uts {
            return Err(invalid("hostname needs a uts namespace"));
        }

        let annotations = spec.annotations().clone().unwrap_or_default();
        if annotations.get(ANNOTATION_ROOT).map(String::as_str) != Some("tmpfs") {
            return Err(invalid(format!(
                "only fresh tmpfs roots are supported: set annotation {ANNOTATION_ROOT}=tmpfs"
            )));
        }
        let preserve_fds = match annotations.get(ANNOTATION_PRESERVE_FDS) {
            None => Vec::new(),
            Some(list) => parse_fds(list)?,
        };

        let mounts = spec.mounts().iter().flatten().map(mount_op).collect::<Result<Vec<_>, _>>()?;
        let dev_links = mounts.iter().any(|m| m.dest == Path::new("/dev"));
        let mut devices: Vec<DeviceOp> = DEFAULT_DEVICES
            .iter()
            .map(|(name, major, minor)| DeviceOp { path: Path::new("/dev").join(name), major: *major, minor: *minor })
            .collect();
        let extra = linux
            .devices()
            .iter()
            .flatten()
            .map(|d| {
                if d.typ() != LinuxDeviceType::C {
                    return Err(invalid(format!(
                        "device {}: only character devices are supported",
                        d.path().display()
                    )));
                }
                let path = normalize(d.path(), "linux.devices")?;
                if !path.starts_with("/dev") || path == Path::new("/dev") {
                    return Err(invalid(format!("device {} must lie under /dev", d.path().display())));
                }
                Ok(DeviceOp { path, major: d.major(), minor: d.minor() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for dev in extra {
            match devices.iter_mut().find(|d| d.path == dev.path) {
                Some(existing) => *existing = dev,
                None => devices.push(dev),
            }
        }
        let paths = |list: &Option<Vec<String>>, what: &str| {
            list.iter().flatten().map(|p| normalize(Path::new(p), what)).collect::<Result<Vec<_>, _>>()
        };

        Ok(Plan {
            args,
            env,
            search_path,
            cwd,
            uid,
            gid,
            new_net: types.contains(&LinuxNamespaceType::Network),
            new_uts,
            new_ipc: types.contains(&LinuxNamespaceType::Ipc),
            new_cgroup: types.contains(&LinuxNamespaceType::Cgroup),
            hostname: spec.hostname().clone(),
            root_readonly: spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false),
            mounts,
            devices,
            dev_links,
            readonly_paths: paths(linux.readonly_paths(), "linux.readonlyPaths")?,
            masked_paths: paths(linux.masked_paths(), "linux.maskedPaths")?,
            rlimits,
            umask: user.umask().unwrap_or(0o022),
            terminal: process.terminal().unwrap_or(false),
            preserve_fds,
            limits: limits(linux.resources())?,
        })
    }

    /// `args[0]` for messages.
    pub fn program(&self) -> String {
        self.args.first().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

/// Fields whose settings the runtime would otherwise drop on the floor.
fn refuse_unsupported(spec: &Spec) -> Result<(), SandboxError> {
    let mut unsupported: Vec<&str> = Vec::new();
    let mut check = |present: bool, field: &'static str| {
        if present {
            unsupported.push(field);
        }
    };
    check(spec.hooks().is_some(), "hooks");
    check(spec.domainname().is_some(), "domainname");
    check(
        spec.solaris().is_some() || spec.windows().is_some() || spec.vm().is_some() || spec.zos().is_some(),
        "non-Linux platform sections",
    );
    if let Some(p) = spec.process() {
        check(p.apparmor_profile().is_some(), "process.apparmorProfile");
        check(p.selinux_label().is_some(), "process.selinuxLabel");
        check(p.oom_score_adj().is_some(), "process.oomScoreAdj");
        check(p.scheduler().is_some(), "process.scheduler");
        check(p.io_priority().is_some(), "process.ioPriority");
        check(p.exec_cpu_affinity().is_some(), "process.execCPUAffinity");
        check(p.command_line().is_some(), "process.commandLine");
    }
    if let Some(l) = spec.linux() {
        check(l.seccomp().is_some(), "linux.seccomp");
        if let Some(r) = l.resources() {
            check(
                r.devices().as_ref().is_some_and(|d| !d.is_empty())
                    || r.cpu().is_some()
                    || r.block_io().is_some()
                    || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
                    || r.network().is_some()
                    || r.rdma().is_some()
                    || r.unified().as_ref().is_some_and(|u| !u.is_empty()),
                "linux.resources other than pids.limit and memory.limit",
            );
            if let Some(m) = r.memory() {
                let mut only_limit = oci_spec::runtime::LinuxMemory::default();
                only_limit.set_limit(m.limit());
                check(*m != only_limit, "linux.resources.memory fields other than limit");
            }
        }
        check(l.cgroups_path().is_some(), "linux.cgroupsPath");
        check(l.sysctl().as_ref().is_some_and(|s| !s.is_empty()), "linux.sysctl");
        check(l.net_devices().as_ref().is_some_and(|d| !d.is_empty()), "linux.netDevices");
        check(l.rootfs_propagation().is_some(), "linux.rootfsPropagation");
        check(l.mount_label().is_some(), "linux.mountLabel");
        check(l.intel_rdt().is_some(), "linux.intelRdt");
        check(l.memory_policy().is_some(), "linux.memoryPolicy");
        check(l.personality().is_some(), "linux.personality");
        check(l.time_offsets().is_some(), "linux.timeOffsets");
    }
    if unsupported.is_empty() {
        Ok(())
    } else {
        Err(invalid(format!(
            "not supported by ovm's runtime (refused rather than ignored): {}",
            unsupported.join(", ")
        )))
    }
}

/// The limits of `linux.resources`; zero or negative (runc's "no limit") means none.
fn limits(resources: &Option<oci_spec::runtime::LinuxResources>) -> Result<Limits, SandboxError> {
    let Some(r) = resources else { return Ok(Limits::default()) };
    let positive = |v: i64| u64::try_from(v).ok().filter(|&v| v > 0);
    Ok(Limits {
        pids: r.pids().as_ref().and_then(|p| positive(p.limit())),
        memory: r.memory().as_ref().and_then(|m| m.limit()).and_then(positive),
    })
}

fn cstring(s: &str, what: &str) -> Result<CString, SandboxError> {
    CString::new(s).map_err(|_| invalid(format!("{what} entry {s:?} contains a NUL byte")))
}

/// An absolute path inside the sandbox with no `.`/`..`, so resolving it beneath the root is exact.
pub(crate) fn normalize(path: &Path, what: &str) -> Result<PathBuf, SandboxError> {
    if !path.is_absolute() {
        return Err(invalid(format!("{what}: {} is not an absolute path", path.display())));
    }
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(invalid(format!("{what}: {} must not contain '..'", path.display())))
            }
        }
    }
    Ok(out)
}

fn single_mapping(mappings: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>, what: &str) -> Result<u32, SandboxError> {
    match mappings.as_deref() {
        Some([m]) if m.container_id() == 0 && m.size() == 1 => Ok(m.host_id()),
        _ => Err(invalid(format!("linux.{what} must map exactly one host id to container id 0 (size 1)"))),
    }
}

fn parse_fds(list: &str) -> Result<Vec<RawFd>, SandboxError> {
    let mut fds = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<RawFd>() {
            Ok(fd) if fd >= 3 => fds.push(fd),
            _ => {
                return Err(invalid(format!(
                "annotation {ANNOTATION_PRESERVE_FDS}: {part:?} is not a descriptor number >= 3 (stdio always passes)"
            )))
            }
        }
    }
    fds.sort_unstable();
    fds.dedup();
    Ok(fds)
}

fn mount_op(m: &Mount) -> Result<MountOp, SandboxError> {
    let dest = normalize(m.destination(), "mount destination")?;
    if dest == Path::new("/") {
        return Err(invalid("a mount on / is not supported (the root is a fresh tmpfs)"));
    }
    let options = m.options().clone().unwrap_or_default();
    let typ = m.typ().as_deref().unwrap_or("");
    let is_bind = typ == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
    let mut attrs = Attrs::default();
    let mut data = Vec::new();
    for opt in &options {
        match opt.as_str() {
            "ro" => attrs.readonly = true,
            "rw" => attrs.readonly = false,
            "nosuid" => attrs.nosuid = true,
            "nodev" => attrs.nodev = true,
            "noexec" => attrs.noexec = true,
            "exec" => attrs.noexec = false,
            "strictatime" => attrs.strictatime = true,
            "bind" | "rbind" | "relatime" | "noatime" | "rprivate" | "private" => {}
            "suid" | "dev" => return Err(invalid(format!("mount {}: option {opt:?} is not allowed", dest.display()))),
            other if other.contains('=') && !is_bind => data.push(other.to_string()),
            other => return Err(invalid(format!("mount {}: unsupported option {other:?}", dest.display()))),
        }
    }
    let kind = if is_bind {
        let source = m.source().as_ref().ok_or_else(|| invalid(format!("bind {} has no source", dest.display())))?;
        if !source.is_absolute() {
            return Err(invalid(format!("bind {}: source {} is not absolute", dest.display(), source.display())));
        }
        // Binds never carry set-uid bits or device nodes in, whatever the options say.
        attrs.nosuid = true;
        attrs.nodev = true;
        MountKind::Bind { source: source.clone() }
    } else {
        match typ {
            "tmpfs" => MountKind::Tmpfs { data: data.join(",") },
            "proc" => {
                attrs.nosuid = true;
                attrs.nodev = true;
                attrs.noexec = true;
                MountKind::Proc
            }
            other => return Err(invalid(format!("mount {}: type {other:?} is not supported", dest.display()))),
        }
    };
    Ok(MountOp { dest, kind, attrs })
}

fn resource(typ: PosixRlimitType) -> Result<Resource, SandboxError> {
    Ok(match typ {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::SandboxBuilder;

    fn spec() -> Spec {
        SandboxBuilder::new(["sh", "-c", "true"])
            .ro_bind("/opt/tc", "/ovm/toolchain")
            .rw_bind("/w/build", "/ovm//build/.")
            .build()
            .unwrap()
    }

    #[test]
    fn builder_spec_becomes_the_expected_plan() {
        let plan = Plan::from_spec(&spec()).unwrap();
        assert!(plan.new_net && plan.new_uts && plan.new_ipc && !plan.new_cgroup);
        assert!(plan.root_readonly && plan.dev_links && !plan.terminal);
        assert_eq!(plan.search_path, "/usr/bin:/bin");
        assert_eq!(plan.hostname.as_deref(), Some("ovm"));
        let tc = &plan.mounts[3];
        assert_eq!(tc.dest, Path::new("/ovm/toolchain"));
        assert!(tc.attrs.readonly && tc.attrs.nosuid && tc.attrs.nodev);
        let build = &plan.mounts[4];
        assert_eq!(build.dest, Path::new("/ovm/build"), "destinations are normalized");
        assert!(!build.attrs.readonly && build.attrs.nosuid && build.attrs.nodev);
        assert_eq!(plan.mounts[0].kind, MountKind::Proc);
        assert_eq!(plan.mounts[1].kind, MountKind::Tmpfs { data: "mode=755,size=65536k".into() });
        assert_eq!(plan.devices.len(), 6);
        assert!(plan.readonly_paths.contains(&PathBuf::from("/proc/sys")));
        assert_eq!(plan.rlimits, [(Resource::RLIMIT_CORE, 0, 0)]);
        assert_eq!(plan.umask, 0o022);
    }

    #[test]
    fn dotdot_destinations_are_refused() {
        let mut s = spec();
        s.mounts_mut().as_mut().unwrap()[3].set_destination(PathBuf::from("/ovm/../etc"));
        assert!(Plan::from_spec(&s).unwrap_err().to_string().contains("'..'"));
    }

    #[test]
    fn unsupported_settings_are_refused_not_ignored() {
        let mut s = spec();
        s.linux_mut().as_mut().unwrap().set_seccomp(Some(Default::default()));
        assert!(Plan::from_spec(&s).unwrap_err().to_string().contains("seccomp"));

        let mut s = spec();
        let mut caps = s.process().as_ref().unwrap().capabilities().clone().unwrap();
        caps.set_effective(Some([oci_spec::runtime::Capability::SysAdmin].into()));
        s.process_mut().as_mut().unwrap().set_capabilities(Some(caps));
        assert!(Plan::from_spec(&s).unwrap_err().to_string().contains("capabilities"));

        let mut s = spec();
        s.mounts_mut().as_mut().unwrap()[3].set_options(Some(vec!["rbind".into(), "suid".into()]));
        assert!(Plan::from_spec(&s).unwrap_err().to_string().contains("suid"));

        let mut s = spec();
        s.mounts_mut().as_mut().unwrap()[3].set_typ(Some("overlay".into()));
        s.mounts_mut().as_mut().unwrap()[3].set_options(None);
        assert!(Plan::from_spec(&s).unwrap_err().to_string().contains("overlay"));

        let mut s = spec();
        s.process_mut().as_mut().unwrap().set_oom_score_adj(Some(500));
        s.set_domainname(Some("example".into()));
        let err = Plan::from_spec(&s).unwrap_err().to_string();
        assert!(err.contains("process.oomScoreAdj") && err.contains("domainname"), "{err}");

        let mut s = spec();
        s.annotations_mut().as_mut().unwrap().clear();
        assert!(Plan::from_spec(&s).unwrap_err().to_string().contains(ANNOTATION_ROOT));
    }

    #[test]
    fn binds_are_always_nosuid_nodev() {
        let mut s = spec();
        s.mounts_mut().as_mut().unwrap()[3].set_options(Some(vec!["rbind".into(), "ro".into()]));
        let plan = Plan::from_spec(&s).unwrap();
        assert!(plan.mounts[3].attrs.nosuid && plan.mounts[3].attrs.nodev);
    }

    #[test]
    fn path_of_the_spec_env_finds_commands() {
        let s = SandboxBuilder::new(["make"]).env("PATH", "/ovm/tools/bin:/ovm/toolchain/bin").build().unwrap();
        assert_eq!(Plan::from_spec(&s).unwrap().search_path, "/ovm/tools/bin:/ovm/toolchain/bin");
    }

    #[test]
    fn id_mappings_must_be_single_root_entries() {
        let mut s = spec();
        let linux = s.linux_mut().as_mut().unwrap();
        let m: Vec<oci_spec::runtime::LinuxIdMapping> =
            serde_json::from_str(r#"[{"containerID": 0, "hostID": 100000, "size": 65536}]"#).unwrap();
        linux.set_uid_mappings(Some(m));
        assert!(Plan::from_spec(&s).unwrap_err().to_string().contains("uidMappings"));
    }
}

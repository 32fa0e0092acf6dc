//! The sandbox's file system view: a fresh tmpfs root with only what the plan lists, then
//! `pivot_root` into it.
//!
//! Order is the security argument, so it lives in one function, [`build_root`], written against the
//! [`MountSys`] trait and unit-tested with a recording fake:
//! 1. `/` becomes rprivate, so nothing we mount propagates back to the host.
//! 2. Every host path (bind sources, device nodes) is opened *before* anything is mounted; after
//!    that, host paths are never resolved again, so covering `/tmp` with the new root (or a source
//!    living under `/tmp`) changes nothing.
//! 3. The root tmpfs is mounted on `/tmp` of the (private copy of the) host tree.
//! 4. Each mount point is opened or created beneath the new root with `openat2(RESOLVE_BENEATH |
//!    RESOLVE_NO_SYMLINKS)`, one component at a time: a symlink planted in a read-write bind cannot
//!    redirect a later mount to a host path — the step fails instead.
//! 5. Binds are cloned from the pinned source (`open_tree`), get their flags while detached
//!    (`mount_setattr`: read-only, nosuid, nodev — the kernel keeps the locked flags of inherited
//!    mounts, where a classic `MS_REMOUNT` must repeat them exactly or fail), are checked read-only
//!    with `fstatvfs`, and only then attached (`move_mount`). A read-only bind is never visible writable.
//! 6. Devices are host nodes bound onto empty files (a user namespace cannot mknod); `/dev` gets the
//!    same symlinks runc makes, so a bundle of the spec shows the same files under runc.
//! 7. `/proc` paths are protected after proc exists: read-only binds of themselves (`/proc/sys`, …),
//!    masks for the rest (`/dev/null` over files, empty read-only tmpfs over directories).
//! 8. The root tmpfs becomes read-only (all mount points exist by now), then `pivot_root(".", ".")`
//!    and a lazy unmount detach the host's tree entirely.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fstat, mkdirat, mknodat, Mode, SFlag};
use nix::sys::statvfs::{fstatvfs, FsFlags};

use super::error::SandboxError;
use super::hints;
use super::plan::{Attrs, MountKind, Plan};
use super::sys;

/// Where the new root is mounted before `pivot_root`. Any existing directory works (sources are
/// already pinned by descriptor); /tmp exists on every Linux system.
pub(crate) const ROOT_BASE: &str = "/tmp";

/// Symlinks in /dev, as runc creates them.
const DEV_LINKS: &[(&str, &str)] = &[
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/ptmx", "pts/ptmx"),
];

/// What a path turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    CharDevice { major: i64, minor: i64 },
    Other,
}

/// The steps of building the root, one method per system-level operation.
pub(crate) trait MountSys {
    type Fd;
    fn make_private(&mut self) -> Result<(), SandboxError>;
    /// Open a host path (following symlinks: it is the caller's own path).
    fn open_source(&mut self, path: &Path) -> Result<(Self::Fd, Kind), SandboxError>;
    fn root_tmpfs(&mut self) -> Result<Self::Fd, SandboxError>;
    /// Open `rel` beneath `base`, creating a directory (or an empty file) where it is missing;
    /// never follows symlinks. `shown` is the path inside the sandbox, for messages.
    fn mount_point(&mut self, base: &Self::Fd, rel: &Path, dir: bool, shown: &Path) -> Result<Self::Fd, SandboxError>;
    /// Open `path` beneath `root` if it exists.
    fn existing(&mut self, root: &Self::Fd, path: &Path) -> Result<Option<(Self::Fd, Kind)>, SandboxError>;
    fn bind(
        &mut self,
        source: &Self::Fd,
        target: &Self::Fd,
        attrs: Attrs,
        from: &Path,
        dest: &Path,
    ) -> Result<(), SandboxError>;
    fn mount_fs(&mut self, kind: &MountKind, target: &Self::Fd, attrs: Attrs, dest: &Path) -> Result<(), SandboxError>;
    /// Make the existing tree at `target` read-only by binding it onto itself.
    fn readonly_in_place(&mut self, target: &Self::Fd, path: &Path) -> Result<(), SandboxError>;
    fn symlink(&mut self, dir: &Self::Fd, target: &str, link: &Path) -> Result<(), SandboxError>;
    fn root_readonly(&mut self, root: &Self::Fd) -> Result<(), SandboxError>;
    fn pivot(&mut self, root: Self::Fd) -> Result<(), SandboxError>;
}

const MASK_ATTRS: Attrs = Attrs { readonly: true, nosuid: true, nodev: true, noexec: true, strictatime: false };
const DEVICE_ATTRS: Attrs = Attrs { readonly: false, nosuid: true, nodev: false, noexec: true, strictatime: false };

/// Build the sandbox root described by `plan` and pivot into it (see the module comment for why
/// in this order).
pub(crate) fn build_root<S: MountSys>(plan: &Plan, sys: &mut S) -> Result<(), SandboxError> {
    sys.make_private()?;

    let mut sources = Vec::with_capacity(plan.mounts.len());
    for m in &plan.mounts {
        sources.push(match &m.kind {
            MountKind::Bind { source } => Some(sys.open_source(source)?),
            _ => None,
        });
    }
    let mut devices = Vec::with_capacity(plan.devices.len());
    for dev in &plan.devices {
        match sys.open_source(&dev.path)? {
            (fd, Kind::CharDevice { major, minor }) if major == dev.major && minor == dev.minor => devices.push(fd),
            _ => {
                return Err(SandboxError::DeviceMismatch {
                    path: dev.path.display().to_string(),
                    major: dev.major,
                    minor: dev.minor,
                })
            }
        }
    }
    let null_index = plan.devices.iter().position(|d| d.path == Path::new("/dev/null"));
    let extra_null = match null_index {
        None if !plan.masked_paths.is_empty() => Some(sys.open_source(Path::new("/dev/null"))?.0),
        _ => None,
    };

    let root = sys.root_tmpfs()?;

    let mut has_proc = false;
    for (m, source) in plan.mounts.iter().zip(&sources) {
        match (&m.kind, source) {
            (MountKind::Bind { source: path }, Some((fd, kind))) => {
                let target = sys.mount_point(&root, relative(&m.dest), *kind == Kind::Dir, &m.dest)?;
                sys.bind(fd, &target, m.attrs, path, &m.dest)?;
            }
            (kind, _) => {
                has_proc |= *kind == MountKind::Proc;
                let target = sys.mount_point(&root, relative(&m.dest), true, &m.dest)?;
                sys.mount_fs(kind, &target, m.attrs, &m.dest)?;
            }
        }
    }

    // Opened now, after any /dev mount: device nodes and links go into that mount.
    let dev = sys.mount_point(&root, Path::new("dev"), true, Path::new("/dev"))?;
    for (op, fd) in plan.devices.iter().zip(&devices) {
        let target = sys.mount_point(&dev, op.path.strip_prefix("/dev").unwrap_or(&op.path), false, &op.path)?;
        sys.bind(fd, &target, DEVICE_ATTRS, &op.path, &op.path)?;
    }
    if plan.dev_links {
        for (link, target) in DEV_LINKS {
            sys.symlink(&dev, target, Path::new(link))?;
        }
        if has_proc && sys.existing(&root, Path::new("/proc/kcore"))?.is_some() {
            sys.symlink(&dev, "/proc/kcore", Path::new("/dev/core"))?;
        }
    }

    for path in &plan.readonly_paths {
        if let Some((target, _)) = sys.existing(&root, path)? {
            sys.readonly_in_place(&target, path)?;
        }
    }
    let null = null_index.map(|i| &devices[i]).or(extra_null.as_ref());
    for path in &plan.masked_paths {
        match (sys.existing(&root, path)?, null) {
            (Some((target, Kind::Dir)), _) => {
                sys.mount_fs(&MountKind::Tmpfs { data: String::new() }, &target, MASK_ATTRS, path)?
            }
            (Some((target, _)), Some(null)) => sys.bind(null, &target, MASK_ATTRS, Path::new("/dev/null"), path)?,
            (Some(_), None) | (None, _) => {}
        }
    }

    if plan.root_readonly {
        sys.root_readonly(&root)?;
    }
    sys.pivot(root)
}

/// [`MountSys`] on the real kernel; runs in the sandbox's init process, inside its namespaces.
pub(crate) struct Kernel;

fn beneath() -> OpenHow {
    OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// `dest` without its leading `/`, for resolution relative to the root descriptor.
fn relative(dest: &Path) -> &Path {
    dest.strip_prefix("/").unwrap_or(dest)
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn attr_bits(attrs: Attrs) -> u64 {
    let mut bits = 0;
    if attrs.readonly {
        bits |= sys::MOUNT_ATTR_RDONLY;
    }
    if attrs.nosuid {
        bits |= sys::MOUNT_ATTR_NOSUID;
    }
    if attrs.nodev {
        bits |= sys::MOUNT_ATTR_NODEV;
    }
    if attrs.noexec {
        bits |= sys::MOUNT_ATTR_NOEXEC;
    }
    bits
}

fn ms_flags(attrs: Attrs) -> MsFlags {
    let mut flags = MsFlags::empty();
    flags.set(MsFlags::MS_RDONLY, attrs.readonly);
    flags.set(MsFlags::MS_NOSUID, attrs.nosuid);
    flags.set(MsFlags::MS_NODEV, attrs.nodev);
    flags.set(MsFlags::MS_NOEXEC, attrs.noexec);
    flags.set(MsFlags::MS_STRICTATIME, attrs.strictatime);
    flags
}

fn is_readonly(fd: &OwnedFd) -> Result<bool, Errno> {
    Ok(fstatvfs(fd)?.flags().contains(FsFlags::ST_RDONLY))
}

fn kind(fd: &OwnedFd) -> Result<Kind, Errno> {
    let st = fstat(fd)?;
    Ok(match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFDIR => Kind::Dir,
        SFlag::S_IFCHR => {
            Kind::CharDevice { major: libc::major(st.st_rdev) as i64, minor: libc::minor(st.st_rdev) as i64 }
        }
        _ => Kind::Other,
    })
}

impl Kernel {
    /// Create the missing part of `rel` one component at a time, each opened without following
    /// symlinks, so that nothing but real directories beneath the root is ever traversed.
    fn create_beneath(root: &OwnedFd, rel: &Path, dir: bool) -> Result<OwnedFd, Errno> {
        let parts: Vec<&OsStr> = rel.iter().collect();
        let mut current: Option<OwnedFd> = None;
        for (i, part) in parts.iter().enumerate() {
            let parent = current.as_ref().unwrap_or(root);
            let last = i + 1 == parts.len();
            let made = if last && !dir {
                mknodat(parent, *part, SFlag::S_IFREG, Mode::from_bits_truncate(0o644), 0)
            } else {
                mkdirat(parent, *part, Mode::from_bits_truncate(0o755))
            };
            match made {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
            current = Some(openat2(parent, *part, beneath())?);
        }
        current.ok_or(Errno::EINVAL)
    }
}

impl MountSys for Kernel {
    type Fd = OwnedFd;

    fn make_private(&mut self) -> Result<(), SandboxError> {
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
            .map_err(|errno| SandboxError::MakePrivate { errno, hint: hints::mount_hint(errno) })
    }

    fn open_source(&mut self, path: &Path) -> Result<(OwnedFd, Kind), SandboxError> {
        let err = |errno| SandboxError::BindSource { path: display(path), errno };
        let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).map_err(err)?;
        let kind = kind(&fd).map_err(err)?;
        Ok((fd, kind))
    }

    fn root_tmpfs(&mut self) -> Result<OwnedFd, SandboxError> {
        let err = |errno| SandboxError::RootTmpfs { base: ROOT_BASE.into(), errno, hint: hints::mount_hint(errno) };
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        mount(Some("tmpfs"), ROOT_BASE, Some("tmpfs"), flags, Some("mode=755,size=1m")).map_err(err)?;
        let open = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
        nix::fcntl::open(ROOT_BASE, open, Mode::empty()).map_err(err)
    }

    fn mount_point(&mut self, base: &OwnedFd, rel: &Path, dir: bool, shown: &Path) -> Result<OwnedFd, SandboxError> {
        let err = |errno| SandboxError::MountPoint { dest: display(shown), errno, hint: hints::mountpoint_hint(errno) };
        if rel.as_os_str().is_empty() {
            return nix::unistd::dup(base).map_err(err);
        }
        match openat2(base, rel, beneath()) {
            Ok(fd) => Ok(fd),
            Err(Errno::ENOENT) => Self::create_beneath(base, rel, dir).map_err(err),
            Err(errno) => Err(err(errno)),
        }
    }

    fn existing(&mut self, root: &OwnedFd, path: &Path) -> Result<Option<(OwnedFd, Kind)>, SandboxError> {
        let err = |errno| SandboxError::MountPoint { dest: display(path), errno, hint: hints::mountpoint_hint(errno) };
        match openat2(root, relative(path), beneath()) {
            Ok(fd) => {
                let kind = kind(&fd).map_err(err)?;
                Ok(Some((fd, kind)))
            }
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(err(errno)),
        }
    }

    fn bind(
        &mut self,
        source: &OwnedFd,
        target: &OwnedFd,
        attrs: Attrs,
        from: &Path,
        dest: &Path,
    ) -> Result<(), SandboxError> {
        let err = |step: &str| {
            let step = step.to_string();
            move |errno| SandboxError::BindMount { from: display(from), dest: display(dest), step, errno }
        };
        let tree = sys::clone_tree(source.as_fd()).map_err(err("open_tree"))?;
        sys::set_mount_attrs(tree.as_fd(), attr_bits(attrs), true).map_err(err("mount_setattr"))?;
        if attrs.readonly && !is_readonly(&tree).map_err(err("fstatvfs"))? {
            return Err(SandboxError::NotReadOnly { dest: display(dest) });
        }
        sys::attach(tree.as_fd(), target.as_fd()).map_err(err("move_mount"))
    }

    fn mount_fs(&mut self, kind: &MountKind, target: &OwnedFd, attrs: Attrs, dest: &Path) -> Result<(), SandboxError> {
        let (fstype, data) = match kind {
            MountKind::Tmpfs { data } => ("tmpfs", data.as_str()),
            MountKind::Proc => ("proc", ""),
            MountKind::Bind { .. } => return Err(SandboxError::InvalidSpec("bind passed as a file system".into())),
        };
        let data = (!data.is_empty()).then_some(data);
        let path = sys::fd_path(target.as_fd());
        mount(Some(fstype), path.as_c_str(), Some(fstype), ms_flags(attrs), data).map_err(|errno| match kind {
            MountKind::Proc => SandboxError::Proc { dest: display(dest), errno, hint: hints::proc_hint(errno) },
            _ => SandboxError::Filesystem { fstype: fstype.into(), dest: display(dest), errno },
        })
    }

    fn readonly_in_place(&mut self, target: &OwnedFd, path: &Path) -> Result<(), SandboxError> {
        let err = |errno| SandboxError::ProtectPath { path: display(path), how: "read-only bind".into(), errno };
        let tree = sys::clone_tree(target.as_fd()).map_err(err)?;
        sys::set_mount_attrs(tree.as_fd(), attr_bits(MASK_ATTRS), true).map_err(err)?;
        if !is_readonly(&tree).map_err(err)? {
            return Err(SandboxError::NotReadOnly { dest: display(path) });
        }
        sys::attach(tree.as_fd(), target.as_fd()).map_err(err)
    }

    fn symlink(&mut self, dir: &OwnedFd, target: &str, link: &Path) -> Result<(), SandboxError> {
        let name = link.file_name().unwrap_or(link.as_os_str());
        match nix::unistd::symlinkat(target, dir, name) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(errno) => Err(SandboxError::Symlink { link: display(link), errno }),
        }
    }

    fn root_readonly(&mut self, root: &OwnedFd) -> Result<(), SandboxError> {
        let err = |errno| SandboxError::RootReadOnly { errno };
        sys::set_mount_attrs(root.as_fd(), sys::MOUNT_ATTR_RDONLY, false).map_err(err)?;
        if !is_readonly(root).map_err(err)? {
            return Err(SandboxError::NotReadOnly { dest: "/".into() });
        }
        Ok(())
    }

    fn pivot(&mut self, root: OwnedFd) -> Result<(), SandboxError> {
        let pivot_err = |errno| SandboxError::PivotRoot { errno, hint: hints::pivot_hint(errno) };
        nix::unistd::fchdir(&root).map_err(pivot_err)?;
        // pivot_root(".", ".") stacks the old root on top of the new one; unmounting "." then
        // removes it, with no directory for the old root needed in the (read-only) new root.
        nix::unistd::pivot_root(".", ".").map_err(pivot_err)?;
        umount2(".", MntFlags::MNT_DETACH).map_err(|errno| SandboxError::DetachOldRoot { errno })?;
        nix::unistd::chdir("/").map_err(pivot_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::plan::Plan;
    use crate::sandbox::SandboxBuilder;

    /// Records every step; "exists" decides which protected /proc paths are present.
    struct Fake {
        log: Vec<String>,
        exists: Vec<(&'static str, bool)>,
        /// A default device whose host node is not the expected character device.
        wrong_device: &'static str,
    }

    impl MountSys for Fake {
        type Fd = String;
        fn make_private(&mut self) -> Result<(), SandboxError> {
            self.log.push("private".into());
            Ok(())
        }
        fn open_source(&mut self, path: &Path) -> Result<(String, Kind), SandboxError> {
            self.log.push(format!("open {}", path.display()));
            let p = path.to_string_lossy();
            let device = crate::sandbox::plan::DEFAULT_DEVICES.iter().find(|(name, _, _)| p == format!("/dev/{name}"));
            let kind = match device {
                Some((name, _, _)) if *name == self.wrong_device => Kind::Other,
                Some((_, major, minor)) => Kind::CharDevice { major: *major, minor: *minor },
                None if p.ends_with(".bin") => Kind::Other,
                None => Kind::Dir,
            };
            Ok((format!("host:{}", path.display()), kind))
        }
        fn root_tmpfs(&mut self) -> Result<String, SandboxError> {
            self.log.push("root".into());
            Ok("root".into())
        }
        fn mount_point(&mut self, _: &String, _: &Path, dir: bool, shown: &Path) -> Result<String, SandboxError> {
            self.log.push(format!("point {} {}", shown.display(), if dir { "dir" } else { "file" }));
            Ok(shown.display().to_string())
        }
        fn existing(&mut self, _: &String, path: &Path) -> Result<Option<(String, Kind)>, SandboxError> {
            let found = self.exists.iter().find(|(p, _)| Path::new(p) == path);
            Ok(found.map(|(p, dir)| (p.to_string(), if *dir { Kind::Dir } else { Kind::Other })))
        }
        fn bind(&mut self, s: &String, t: &String, a: Attrs, _: &Path, _: &Path) -> Result<(), SandboxError> {
            self.log.push(format!("bind {s} {t} ro={} nosuid={} nodev={}", a.readonly, a.nosuid, a.nodev));
            Ok(())
        }
        fn mount_fs(&mut self, k: &MountKind, t: &String, a: Attrs, _: &Path) -> Result<(), SandboxError> {
            let kind = if *k == MountKind::Proc { "proc" } else { "tmpfs" };
            self.log.push(format!("{kind} {t} ro={}", a.readonly));
            Ok(())
        }
        fn readonly_in_place(&mut self, t: &String, _: &Path) -> Result<(), SandboxError> {
            self.log.push(format!("readonly {t}"));
            Ok(())
        }
        fn symlink(&mut self, _: &String, target: &str, link: &Path) -> Result<(), SandboxError> {
            self.log.push(format!("symlink {} -> {target}", link.display()));
            Ok(())
        }
        fn root_readonly(&mut self, _: &String) -> Result<(), SandboxError> {
            self.log.push("root-readonly".into());
            Ok(())
        }
        fn pivot(&mut self, _: String) -> Result<(), SandboxError> {
            self.log.push("pivot".into());
            Ok(())
        }
    }

    fn run(exists: Vec<(&'static str, bool)>) -> Vec<String> {
        let spec = SandboxBuilder::new(["x"])
            .ro_bind("/opt/busybox.bin", "/bin/sh")
            .rw_bind("/tmp/build", "/ovm/build")
            .build()
            .unwrap();
        let plan = Plan::from_spec(&spec).unwrap();
        assert_eq!(plan.mounts.len(), 5);
        let mut fake = Fake { log: Vec::new(), exists, wrong_device: "" };
        build_root(&plan, &mut fake).unwrap();
        fake.log
    }

    fn pos(log: &[String], prefix: &str) -> usize {
        log.iter().position(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix:?} in {log:#?}"))
    }

    #[test]
    fn host_paths_are_pinned_before_the_root_covers_tmp() {
        let log = run(vec![]);
        assert_eq!(log[0], "private");
        let root = pos(&log, "root");
        let last_open = log.iter().rposition(|l| l.starts_with("open ")).unwrap();
        assert!(last_open < root, "a host path was opened after the root tmpfs was mounted: {log:#?}");
        assert!(pos(&log, "open /tmp/build") < root);
    }

    #[test]
    fn binds_follow_spec_order_with_their_flags() {
        let log = run(vec![]);
        let sh = pos(&log, "bind host:/opt/busybox.bin /bin/sh");
        let build = pos(&log, "bind host:/tmp/build /ovm/build");
        assert!(pos(&log, "proc /proc") < pos(&log, "tmpfs /dev") && pos(&log, "tmpfs /dev") < sh && sh < build);
        assert!(log[sh].ends_with("ro=true nosuid=true nodev=true"), "{}", log[sh]);
        assert!(log[build].ends_with("ro=false nosuid=true nodev=true"), "{}", log[build]);
        assert!(log.contains(&"point /bin/sh file".to_string()), "file sources get file mount points: {log:#?}");
        assert!(log.contains(&"point /ovm/build dir".to_string()));
    }

    #[test]
    fn devices_are_bound_without_nodev_after_dev_exists() {
        let log = run(vec![]);
        let null = pos(&log, "bind host:/dev/null /dev/null");
        assert!(log[null].ends_with("nodev=false"), "{}", log[null]);
        assert!(pos(&log, "tmpfs /dev") < null);
        assert!(pos(&log, "symlink /dev/fd -> /proc/self/fd") > null);
    }

    #[test]
    fn a_host_node_that_is_not_the_device_is_refused() {
        let plan = Plan::from_spec(&SandboxBuilder::new(["x"]).build().unwrap()).unwrap();
        let mut fake = Fake { log: Vec::new(), exists: vec![], wrong_device: "urandom" };
        let err = build_root(&plan, &mut fake).unwrap_err();
        assert!(
            matches!(err, SandboxError::DeviceMismatch { ref path, major: 1, minor: 9 } if path == "/dev/urandom"),
            "{err}"
        );
        assert!(!fake.log.contains(&"root".to_string()), "nothing may be mounted after a bad device: {:#?}", fake.log);
    }

    #[test]
    fn proc_is_protected_after_it_is_mounted_and_the_root_sealed_last() {
        let log = run(vec![
            ("/proc/sys", true),
            ("/proc/sysrq-trigger", false),
            ("/proc/kcore", false),
            ("/proc/acpi", true),
        ]);
        let proc_mount = pos(&log, "proc /proc");
        assert!(proc_mount < pos(&log, "readonly /proc/sys"));
        assert!(proc_mount < pos(&log, "readonly /proc/sysrq-trigger"));
        assert!(
            log.contains(&"bind host:/dev/null /proc/kcore ro=true nosuid=true nodev=true".to_string()),
            "{log:#?}"
        );
        assert!(log.contains(&"tmpfs /proc/acpi ro=true".to_string()), "{log:#?}");
        assert!(log.contains(&"symlink /dev/core -> /proc/kcore".to_string()));
        assert!(!log.iter().any(|l| l.contains("/proc/keys")), "missing paths are skipped");
        let sealed = pos(&log, "root-readonly");
        let last_point = log.iter().rposition(|l| l.starts_with("point ") || l.starts_with("symlink ")).unwrap();
        assert!(last_point < sealed, "a mount point was created after the root was made read-only");
        assert_eq!(log.last().map(String::as_str), Some("pivot"));
        assert_eq!(sealed + 1, log.len() - 1);
    }
}

//! Resource limits of a sandbox: how many processes it may run and how much memory it may use, so
//! a runaway build (a fork bomb, a leak) ends with an error naming the limit while the host stays
//! responsive.
//!
//! The spec carries the limits as OCI `linux.resources` (`pids.limit`, `memory.limit`); the caller
//! enforces them with the best mechanism this host gives it, chosen per sandbox by [`detect`]:
//!
//! 1. **cgroup v2**, where a v2 group with the `pids` and `memory` controllers is delegated to us:
//!    our own group (or, for root, the hierarchy's root) lists both in `cgroup.subtree_control` and
//!    is writable. A systemd user session delegates such a subtree to `user@UID.service`.
//! 2. **cgroup v1**, where the `pids` and `memory` hierarchies are mounted and our groups in them
//!    are writable (root on a hybrid or legacy host).
//! 3. **rlimits** otherwise: `RLIMIT_NPROC` for processes and `RLIMIT_DATA` for memory, set in the
//!    command before it runs. Their caveats: `RLIMIT_DATA` is per process, not a total;
//!    `RLIMIT_NPROC` counts the processes of the sandbox's user in its user namespace (Linux 5.14
//!    and later; older kernels count every process of the real uid) and does not bind root; and
//!    nothing records that one was hit, so a failure can only be reported as "may have".
//!
//! With a cgroup, the caller creates `ovm/<pid>` below its own group, writes the limits, and moves
//! *itself* in before it forks init, so everything of the sandbox is inside from its first
//! instruction (no round trip with init is needed). When the sandbox is over the caller reads
//! whether a limit was hit (`pids.events` `max`, `memory.oom_control` / `memory.events`
//! `oom_kill`), moves itself back, kills whatever is left (nothing, normally: init's exit takes
//! its pid namespace down) and removes the group. Every file operation goes through [`CgroupFs`],
//! so the sequence is unit-tested against a recording fake.
//!
//! The price of a cgroup is its join: moving a process between groups takes the kernel's
//! threadgroup lock for writing, which waits for an RCU grace period — 10 to 50 ms measured on
//! this project's (busy, 2-core) CI machine, against a sandbox start-up of ~3 ms. So limits are
//! opt-in per sandbox: every build step has them (a step runs for seconds), `ovm sandbox` when
//! asked with `--pids-max`/`--memory-max`, and a sandbox without limits pays nothing. (cgroup v2's
//! `clone3(CLONE_INTO_CGROUP)` would start init in the group without a migration; not used yet.)

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::resource::Resource;

use super::error::SandboxError;
use crate::size::ByteSize;

/// The most a sandbox may use; `None` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Processes (and threads) alive at once, ovm's own caller and init included.
    pub pids: Option<u64>,
    /// Bytes of memory (cgroup: the whole sandbox, swap included; rlimits: each process's data).
    pub memory: Option<u64>,
}

/// Processes a sandbox may run at once unless configured otherwise: far above any build (a
/// `make -j64` of gcc stays below a few hundred) and far below what would starve the host.
pub const DEFAULT_PIDS: u64 = 4096;

impl Limits {
    /// The limits every sandbox gets unless told otherwise: [`DEFAULT_PIDS`] processes and
    /// [`default_memory`] bytes.
    pub fn defaults() -> Limits {
        Limits { pids: Some(DEFAULT_PIDS), memory: Some(default_memory()) }
    }

    pub fn is_empty(&self) -> bool {
        self.pids.is_none() && self.memory.is_none()
    }
}

/// Three quarters of the host's RAM (at least 1 GiB): gcc's own build peaks at ~1.4 GB per
/// process, so a real build never meets it, and the quarter left keeps the host usable when a
/// build runs away. Read once per process.
pub fn default_memory() -> u64 {
    static MEMORY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MEMORY.get_or_init(|| {
        let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| mem_total(&t)).unwrap_or(8 << 30);
        // Whole MiB, so messages can say it plainly (`17654M`).
        ((total / 4 * 3) & !((1 << 20) - 1)).max(1 << 30)
    })
}

fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// How the limits of the next sandbox are enforced on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// Groups are made under `parent` (a cgroup v2 directory).
    CgroupV2 { parent: PathBuf },
    /// Groups are made under these cgroup v1 directories.
    CgroupV1 { pids: PathBuf, memory: PathBuf },
    /// No usable cgroup; `why` says what was missing for each.
    Rlimits { why: String },
}

impl Mechanism {
    pub fn name(&self) -> &'static str {
        match self {
            Mechanism::CgroupV2 { .. } => "cgroup v2",
            Mechanism::CgroupV1 { .. } => "cgroup v1",
            Mechanism::Rlimits { .. } => "rlimits",
        }
    }

    /// One line for `ovm doctor`: the mechanism and where (or why no cgroup).
    pub fn describe(&self) -> String {
        match self {
            Mechanism::CgroupV2 { parent } => format!("cgroup v2, a group per sandbox under {}/ovm", parent.display()),
            Mechanism::CgroupV1 { pids, memory } => {
                format!("cgroup v1, a group per sandbox under {}/ovm and {}/ovm", pids.display(), memory.display())
            }
            Mechanism::Rlimits { why } => format!("rlimits (RLIMIT_NPROC, RLIMIT_DATA per process); no cgroup: {why}"),
        }
    }

    /// How `limits` reads under this mechanism, for messages: `pids.max=512, memory.max=4G`.
    pub fn settings(&self, limits: &Limits) -> Vec<(LimitKind, String)> {
        let mut out = Vec::new();
        for kind in [LimitKind::Pids, LimitKind::Memory] {
            if let Some(value) = kind.of(limits) {
                out.push((kind, format!("{}={}", self.setting_name(kind), kind.show(value))));
            }
        }
        out
    }

    fn setting_name(&self, kind: LimitKind) -> &'static str {
        match (self, kind) {
            (Mechanism::CgroupV2 { .. } | Mechanism::CgroupV1 { .. }, LimitKind::Pids) => "pids.max",
            (Mechanism::CgroupV2 { .. }, LimitKind::Memory) => "memory.max",
            (Mechanism::CgroupV1 { .. }, LimitKind::Memory) => "memory.limit_in_bytes",
            (Mechanism::Rlimits { .. }, LimitKind::Pids) => "RLIMIT_NPROC",
            (Mechanism::Rlimits { .. }, LimitKind::Memory) => "RLIMIT_DATA",
        }
    }
}

/// The two limits, for messages and configuration keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LimitKind {
    Pids,
    Memory,
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl LimitKind {
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::Pids => "pids",
            LimitKind::Memory => "memory",
        }
    }

    fn of(self, limits: &Limits) -> Option<u64> {
        match self {
            LimitKind::Pids => limits.pids,
            LimitKind::Memory => limits.memory,
        }
    }

    fn show(self, value: u64) -> String {
        match self {
            LimitKind::Pids => value.to_string(),
            LimitKind::Memory => ByteSize(value).to_string(),
        }
    }
}

/// Where the phrase naming a hit limit starts in [`SandboxError::LimitHit`]'s message; callers
/// that only see a sandbox's stderr (the engine reads it from the step's log) find it with
/// [`hit_in_text`].
const HIT_PHRASE: &str = "hit the sandbox's ";

/// The limit a sandbox's error output says was hit: its kind and setting (`pids.max=64`).
pub fn hit_in_text(text: &str) -> Option<(LimitKind, String)> {
    let rest = &text[text.rfind(HIT_PHRASE)? + HIT_PHRASE.len()..];
    let (kind, rest) = rest.split_once(" limit (")?;
    let kind = match kind {
        "pids" => LimitKind::Pids,
        "memory" => LimitKind::Memory,
        _ => return None,
    };
    let setting = rest.split([',', ')']).next()?.trim().to_string();
    Some((kind, setting))
}

/// What a build prints when a fork or an allocation fails (busybox, bash, make, gcc, glibc and
/// musl wordings): under rlimits the only sign that one was hit.
const EXHAUSTION: &[(LimitKind, &str)] = &[
    (LimitKind::Pids, "can't fork"),
    (LimitKind::Pids, "Cannot fork"),
    (LimitKind::Pids, "fork: Resource temporarily unavailable"),
    (LimitKind::Pids, "fork: retry"),
    (LimitKind::Memory, "Cannot allocate memory"),
    (LimitKind::Memory, "Out of memory"),
    (LimitKind::Memory, "out of memory"),
    (LimitKind::Memory, "memory exhausted"),
];

/// The last sign of a failed fork or allocation in a build's output, with its wording.
pub fn exhaustion_in_text(text: &str) -> Option<(LimitKind, &'static str)> {
    EXHAUSTION.iter().filter_map(|&(kind, sign)| Some((text.rfind(sign)?, kind, sign))).max().map(|(_, k, s)| (k, s))
}

/// The few file operations a cgroup needs, so their order can be tested without privileges.
pub(crate) trait CgroupFs {
    fn read(&mut self, path: &Path) -> Result<String, Errno>;
    /// Write `value` to an existing (kernel) file.
    fn write(&mut self, path: &Path, value: &str) -> Result<(), Errno>;
    fn mkdir(&mut self, path: &Path) -> Result<(), Errno>;
    fn rmdir(&mut self, path: &Path) -> Result<(), Errno>;
    fn exists(&mut self, path: &Path) -> bool;
    /// May this process create groups in the directory `path`?
    fn writable(&mut self, path: &Path) -> bool;
    fn kill(&mut self, pid: i32);
    /// Wait a little before asking the kernel again (a group empties asynchronously).
    fn pause(&mut self);
}

/// The real file system.
pub(crate) struct Kernel;

impl CgroupFs for Kernel {
    fn read(&mut self, path: &Path) -> Result<String, Errno> {
        std::fs::read_to_string(path).map_err(|e| errno_of(&e))
    }
    fn write(&mut self, path: &Path, value: &str) -> Result<(), Errno> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| errno_of(&e))?;
        file.write_all(value.as_bytes()).map_err(|e| errno_of(&e))
    }
    fn mkdir(&mut self, path: &Path) -> Result<(), Errno> {
        std::fs::create_dir(path).map_err(|e| errno_of(&e))
    }
    fn rmdir(&mut self, path: &Path) -> Result<(), Errno> {
        std::fs::remove_dir(path).map_err(|e| errno_of(&e))
    }
    fn exists(&mut self, path: &Path) -> bool {
        path.exists()
    }
    fn writable(&mut self, path: &Path) -> bool {
        nix::unistd::access(path, nix::unistd::AccessFlags::W_OK).is_ok()
    }
    fn kill(&mut self, pid: i32) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    fn pause(&mut self) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn errno_of(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// The mechanism this process would use now (see the module comment).
pub fn detect() -> Mechanism {
    detect_with(&mut Kernel)
}

/// One line of `/proc/self/mountinfo` that mounts a cgroup file system.
#[derive(Debug)]
struct CgroupMount {
    /// The group of the hierarchy that is the mount's root (`/` unless bound from a subgroup).
    root: String,
    mount_point: PathBuf,
    /// `None` for cgroup2; otherwise the v1 controllers of the hierarchy.
    controllers: Option<Vec<String>>,
}

fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next()?;
            let options = right.next().unwrap_or("");
            let controllers = match fstype {
                "cgroup2" => None,
                "cgroup" => Some(options.split(',').map(str::to_string).collect()),
                _ => return None,
            };
            Some(CgroupMount {
                root: unescape(left.get(3)?),
                mount_point: PathBuf::from(unescape(left.get(4)?)),
                controllers,
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash in paths as octal escapes.
fn unescape(field: &str) -> String {
    field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// The directory of our group in a hierarchy: its mount point plus our path below the mount's root.
fn group_dir(mount: &CgroupMount, path: &str) -> Option<PathBuf> {
    let root = mount.root.trim_end_matches('/');
    let below = path.strip_prefix(root)?;
    if !below.is_empty() && !below.starts_with('/') {
        return None;
    }
    let below = below.trim_start_matches('/');
    Some(if below.is_empty() { mount.mount_point.clone() } else { mount.mount_point.join(below) })
}

/// Which of our groups to use, from `/proc/self/cgroup` and `/proc/self/mountinfo`.
pub(crate) fn detect_with(fs: &mut dyn CgroupFs) -> Mechanism {
    let (cgroup, mountinfo) =
        match (fs.read(Path::new("/proc/self/cgroup")), fs.read(Path::new("/proc/self/mountinfo"))) {
            (Ok(c), Ok(m)) => (c, m),
            (Err(e), _) | (_, Err(e)) => return Mechanism::Rlimits { why: format!("cannot read /proc/self: {e}") },
        };
    let mounts = cgroup_mounts(&mountinfo);
    let mut why = Vec::new();

    // cgroup v2: the line `0::/path`.
    let v2_path = cgroup.lines().find_map(|l| l.strip_prefix("0::"));
    match (v2_path, mounts.iter().find(|m| m.controllers.is_none())) {
        (Some(path), Some(mount)) => {
            let mut candidates: Vec<PathBuf> = group_dir(mount, path).into_iter().collect();
            // Root may start groups at the top of the hierarchy, which, unlike our own group, may
            // delegate controllers while it has processes.
            if nix::unistd::geteuid().is_root() && !candidates.contains(&mount.mount_point) {
                candidates.push(mount.mount_point.clone());
            }
            for dir in candidates {
                match v2_usable(fs, &dir) {
                    Ok(()) => return Mechanism::CgroupV2 { parent: dir },
                    Err(reason) => why.push(format!("cgroup v2 {}: {reason}", dir.display())),
                }
            }
        }
        _ => why.push("no cgroup v2 hierarchy".to_string()),
    }

    // cgroup v1: a `N:pids:/path` and a `N:memory:/path` line, each with its hierarchy mounted.
    let v1_dir = |controller: &str| -> Option<PathBuf> {
        let path = cgroup.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
            list.split(',').any(|c| c == controller).then_some(path)
        })?;
        let mount =
            mounts.iter().find(|m| m.controllers.as_ref().is_some_and(|c| c.iter().any(|c| c == controller)))?;
        group_dir(mount, path)
    };
    match (v1_dir("pids"), v1_dir("memory")) {
        (Some(pids), Some(memory)) => {
            let unwritable: Vec<String> =
                [&pids, &memory].into_iter().filter(|d| !fs.writable(d)).map(|d| d.display().to_string()).collect();
            if unwritable.is_empty() {
                return Mechanism::CgroupV1 { pids, memory };
            }
            why.push(format!("cgroup v1 {} not writable by this user", unwritable.join(" and ")));
        }
        _ => why.push("no cgroup v1 pids and memory hierarchies".to_string()),
    }
    Mechanism::Rlimits { why: why.join("; ") }
}

fn v2_usable(fs: &mut dyn CgroupFs, dir: &Path) -> Result<(), String> {
    let has_both = |text: &str| {
        let words: Vec<&str> = text.split_whitespace().collect();
        words.contains(&"pids") && words.contains(&"memory")
    };
    let controllers = fs.read(&dir.join("cgroup.controllers")).map_err(|e| format!("cgroup.controllers: {e}"))?;
    if !has_both(&controllers) {
        return Err(format!(
            "the pids and memory controllers are not available (cgroup.controllers: {:?})",
            controllers.trim()
        ));
    }
    let subtree = fs.read(&dir.join("cgroup.subtree_control")).map_err(|e| format!("cgroup.subtree_control: {e}"))?;
    if !has_both(&subtree) {
        return Err(format!(
            "pids and memory are not enabled for its sub-groups (cgroup.subtree_control: {:?})",
            subtree.trim()
        ));
    }
    if !fs.writable(dir) {
        return Err("not delegated to this user (not writable)".into());
    }
    Ok(())
}

/// Name of the sandbox's group: the caller's pid, unique among live processes; a group left by a
/// killed earlier caller with the same pid is empty and is replaced.
fn group_name() -> String {
    std::process::id().to_string()
}

/// What the caller set up for one sandbox, from before the fork of init until [`Enforced::finish`].
#[derive(Debug)]
pub(crate) struct Enforced {
    pub mechanism: Mechanism,
    pub limits: Limits,
    /// The sandbox's groups and, for each, the group the caller came from (v1: one per hierarchy).
    groups: Vec<Joined>,
}

#[derive(Debug)]
struct Joined {
    dir: PathBuf,
    home: PathBuf,
}

/// A limit the kernel enforced during the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Hits {
    /// Forks refused (`pids.events` `max`).
    pub pids: u64,
    /// Processes killed for want of memory (`oom_kill`).
    pub oom_kills: u64,
}

impl Enforced {
    /// Chooses the mechanism and, for a cgroup, creates the group, writes the limits and moves this
    /// process in. Nothing to do (and no cost) when `limits` is empty.
    pub fn enter(limits: &Limits, fs: &mut dyn CgroupFs) -> Result<Option<Enforced>, SandboxError> {
        if limits.is_empty() {
            return Ok(None);
        }
        let mechanism = detect_with(fs);
        let mut enforced = Enforced { mechanism: mechanism.clone(), limits: *limits, groups: Vec::new() };
        let result = match &mechanism {
            Mechanism::Rlimits { .. } => Ok(()),
            Mechanism::CgroupV1 { pids, memory } => enforced.enter_v1(fs, pids, memory),
            Mechanism::CgroupV2 { parent } => enforced.enter_v2(fs, parent),
        };
        match result {
            Ok(()) => Ok(Some(enforced)),
            Err(err) => {
                enforced.leave(fs);
                Err(err)
            }
        }
    }

    fn enter_v1(&mut self, fs: &mut dyn CgroupFs, pids: &Path, memory: &Path) -> Result<(), SandboxError> {
        let pids_group = make_group(fs, pids)?;
        self.groups.push(Joined { dir: pids_group.clone(), home: pids.to_path_buf() });
        let memory_group = make_group(fs, memory)?;
        self.groups.push(Joined { dir: memory_group.clone(), home: memory.to_path_buf() });
        if let Some(n) = self.limits.pids {
            set(fs, &pids_group.join("pids.max"), &n.to_string())?;
        }
        if let Some(bytes) = self.limits.memory {
            set(fs, &memory_group.join("memory.limit_in_bytes"), &bytes.to_string())?;
            // Memory plus swap, where swap is accounted: a limit that a build could get round by
            // swapping would not keep the host responsive.
            let memsw = memory_group.join("memory.memsw.limit_in_bytes");
            if fs.exists(&memsw) {
                set(fs, &memsw, &bytes.to_string())?;
            }
        }
        for group in [&pids_group, &memory_group] {
            join(fs, group)?;
        }
        Ok(())
    }

    fn enter_v2(&mut self, fs: &mut dyn CgroupFs, parent: &Path) -> Result<(), SandboxError> {
        let base = parent.join("ovm");
        match fs.mkdir(&base) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(errno) => return Err(SandboxError::CgroupCreate { path: base.display().to_string(), errno }),
        }
        // ovm/ holds no process, so the controllers can always be passed on to its sub-groups.
        let control = base.join("cgroup.subtree_control");
        let enabled = fs.read(&control).unwrap_or_default();
        if !(enabled.contains("pids") && enabled.contains("memory")) {
            set(fs, &control, "+pids +memory")?;
        }
        let group = make_group(fs, parent)?;
        self.groups.push(Joined { dir: group.clone(), home: parent.to_path_buf() });
        if let Some(n) = self.limits.pids {
            set(fs, &group.join("pids.max"), &n.to_string())?;
        }
        if let Some(bytes) = self.limits.memory {
            set(fs, &group.join("memory.max"), &bytes.to_string())?;
            let swap = group.join("memory.swap.max");
            if fs.exists(&swap) {
                set(fs, &swap, "0")?;
            }
        }
        join(fs, &group)
    }

    /// Resource limits the command sets on itself (rlimits only), each capped by the hard limit
    /// this process already has, which an unprivileged process cannot raise.
    pub fn rlimits(&self) -> Vec<(Resource, u64, u64)> {
        if !matches!(self.mechanism, Mechanism::Rlimits { .. }) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (resource, value) in
            [(Resource::RLIMIT_NPROC, self.limits.pids), (Resource::RLIMIT_DATA, self.limits.memory)]
        {
            if let Some(value) = value {
                let hard = nix::sys::resource::getrlimit(resource).map_or(value, |(_, hard)| hard);
                let value = value.min(hard);
                out.push((resource, value, value));
            }
        }
        out
    }

    /// Whether a cgroup holds the sandbox (then the caller waits for init's exit before
    /// [`finish`](Self::finish), since a group cannot be removed while anything is in it).
    pub fn has_group(&self) -> bool {
        !self.groups.is_empty()
    }

    fn hits(&self, fs: &mut dyn CgroupFs) -> Hits {
        let mut hits = Hits::default();
        for g in &self.groups {
            hits.pids += counter(fs, &g.dir.join("pids.events"), "max");
            hits.oom_kills += counter(fs, &g.dir.join("memory.events"), "oom_kill");
            hits.oom_kills += counter(fs, &g.dir.join("memory.oom_control"), "oom_kill");
        }
        hits
    }

    /// Moves this process back, empties and removes the groups. Failures are logged, not
    /// returned: the sandbox is over either way, and an empty group left behind holds nothing.
    fn leave(&mut self, fs: &mut dyn CgroupFs) {
        for g in &self.groups {
            if let Err(errno) = fs.write(&g.home.join("cgroup.procs"), "0") {
                tracing::warn!("moving ovm back to {} failed: {errno}", g.home.display());
            }
        }
        for g in self.groups.drain(..) {
            remove_group(fs, &g.dir);
        }
    }

    /// After the sandbox: the outcome, turned into [`SandboxError::LimitHit`] when the command
    /// failed and a limit was hit, and the groups removed.
    pub fn finish(mut self, fs: &mut dyn CgroupFs, outcome: Result<i32, SandboxError>) -> Result<i32, SandboxError> {
        let hits = self.hits(fs);
        self.leave(fs);
        match outcome {
            Ok(status) if status != 0 => {
                let kind = if hits.oom_kills > 0 {
                    LimitKind::Memory
                } else if hits.pids > 0 {
                    LimitKind::Pids
                } else {
                    return Ok(status);
                };
                let setting = self
                    .mechanism
                    .settings(&self.limits)
                    .into_iter()
                    .find(|(k, _)| *k == kind)
                    .map(|(_, s)| s)
                    .unwrap_or_default();
                Err(SandboxError::LimitHit {
                    kind: kind.name().to_string(),
                    setting,
                    mechanism: self.mechanism.name().to_string(),
                    status,
                })
            }
            other => other,
        }
    }
}

/// `N` from the line `key N` of a flat-keyed cgroup file; 0 when absent.
fn counter(fs: &mut dyn CgroupFs, file: &Path, key: &str) -> u64 {
    let Ok(text) = fs.read(file) else { return 0 };
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0)
}

/// Creates `<parent>/ovm/<pid>`, replacing an empty one a dead earlier caller left.
fn make_group(fs: &mut dyn CgroupFs, parent: &Path) -> Result<PathBuf, SandboxError> {
    let base = parent.join("ovm");
    match fs.mkdir(&base) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(errno) => return Err(SandboxError::CgroupCreate { path: base.display().to_string(), errno }),
    }
    let group = base.join(group_name());
    let created = match fs.mkdir(&group) {
        Err(Errno::EEXIST) => fs.rmdir(&group).and_then(|()| fs.mkdir(&group)),
        other => other,
    };
    created.map_err(|errno| SandboxError::CgroupCreate { path: group.display().to_string(), errno })?;
    Ok(group)
}

fn set(fs: &mut dyn CgroupFs, file: &Path, value: &str) -> Result<(), SandboxError> {
    fs.write(file, value).map_err(|errno| SandboxError::CgroupLimit {
        file: file.display().to_string(),
        value: value.to_string(),
        errno,
    })
}

fn join(fs: &mut dyn CgroupFs, group: &Path) -> Result<(), SandboxError> {
    fs.write(&group.join("cgroup.procs"), "0")
        .map_err(|errno| SandboxError::CgroupJoin { path: group.display().to_string(), errno })
}

/// How long [`remove_group`] waits for a group to empty: far longer than a process takes to exit.
const REMOVE_ATTEMPTS: usize = 2000;

/// Kills what is left in `group` and removes it. Normally nothing is left: init's exit kills its
/// whole pid namespace, and the caller waits for it. The group empties asynchronously after a
/// SIGKILL, hence the retries (bounded: about ten seconds).
fn remove_group(fs: &mut dyn CgroupFs, group: &Path) {
    for attempt in 0..REMOVE_ATTEMPTS {
        match fs.rmdir(group) {
            Ok(()) | Err(Errno::ENOENT) => return,
            Err(Errno::EBUSY) => {
                if attempt % 100 == 0 {
                    let procs = fs.read(&group.join("cgroup.procs")).unwrap_or_default();
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        fs.kill(pid);
                    }
                }
                fs.pause();
            }
            Err(errno) => {
                tracing::warn!("removing the sandbox's cgroup {} failed: {errno}", group.display());
                return;
            }
        }
    }
    tracing::warn!("the sandbox's cgroup {} did not empty; left in place", group.display());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// A recording fake of the cgroup file system.
    #[derive(Default)]
    struct Fake {
        files: HashMap<PathBuf, String>,
        dirs: HashSet<PathBuf>,
        writable: HashSet<PathBuf>,
        fail: HashMap<PathBuf, Errno>,
        /// rmdir answers EBUSY this many times first.
        busy: usize,
        log: Vec<String>,
    }

    impl Fake {
        fn file(mut self, path: &str, text: &str) -> Self {
            self.files.insert(PathBuf::from(path), text.to_string());
            self
        }
        fn writable(mut self, path: &str) -> Self {
            self.writable.insert(PathBuf::from(path));
            self
        }
    }

    impl CgroupFs for Fake {
        fn read(&mut self, path: &Path) -> Result<String, Errno> {
            self.files.get(path).cloned().ok_or(Errno::ENOENT)
        }
        fn write(&mut self, path: &Path, value: &str) -> Result<(), Errno> {
            self.log.push(format!("write {} {value}", path.display()));
            match self.fail.get(path) {
                Some(errno) => Err(*errno),
                None => Ok(()),
            }
        }
        fn mkdir(&mut self, path: &Path) -> Result<(), Errno> {
            self.log.push(format!("mkdir {}", path.display()));
            if let Some(errno) = self.fail.get(path) {
                return Err(*errno);
            }
            if !self.dirs.insert(path.to_path_buf()) {
                return Err(Errno::EEXIST);
            }
            Ok(())
        }
        fn rmdir(&mut self, path: &Path) -> Result<(), Errno> {
            self.log.push(format!("rmdir {}", path.display()));
            if self.busy > 0 {
                self.busy -= 1;
                return Err(Errno::EBUSY);
            }
            self.dirs.remove(path);
            Ok(())
        }
        fn exists(&mut self, path: &Path) -> bool {
            self.files.contains_key(path)
        }
        fn writable(&mut self, path: &Path) -> bool {
            self.writable.contains(path)
        }
        fn kill(&mut self, pid: i32) {
            self.log.push(format!("kill {pid}"));
        }
        fn pause(&mut self) {}
    }

    const HYBRID_MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
";
    const HYBRID_CGROUP: &str = "8:pids:/\n4:memory:/job/7\n1:cpu,cpuacct:/\n0::/\n";

    fn hybrid() -> Fake {
        Fake::default()
            .file("/proc/self/cgroup", HYBRID_CGROUP)
            .file("/proc/self/mountinfo", HYBRID_MOUNTINFO)
            .file("/sys/fs/cgroup/unified/cgroup.controllers", "\n")
            .file("/sys/fs/cgroup/unified/cgroup.subtree_control", "\n")
    }

    fn v1() -> Mechanism {
        Mechanism::CgroupV1 { pids: "/sys/fs/cgroup/pids".into(), memory: "/sys/fs/cgroup/memory/job/7".into() }
    }

    #[test]
    fn hybrid_host_uses_v1_when_writable_else_rlimits() {
        let mut fake = hybrid().writable("/sys/fs/cgroup/pids").writable("/sys/fs/cgroup/memory/job/7");
        assert_eq!(detect_with(&mut fake), v1());

        let Mechanism::Rlimits { why } = detect_with(&mut hybrid()) else { panic!("no writable group: rlimits") };
        assert!(why.contains("not available") && why.contains("not writable"), "{why}");
    }

    const V2_MOUNTINFO: &str = "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
    const USER_SLICE: &str = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/ovm.slice";

    fn v2(subtree: &str) -> Fake {
        Fake::default()
            .file("/proc/self/cgroup", "0::/user.slice/user-1000.slice/user@1000.service/ovm.slice\n")
            .file("/proc/self/mountinfo", V2_MOUNTINFO)
            .file(&format!("{USER_SLICE}/cgroup.controllers"), "cpu memory pids\n")
            .file(&format!("{USER_SLICE}/cgroup.subtree_control"), subtree)
            // The hierarchy's root is the systemd's, never writable by a user.
            .file("/sys/fs/cgroup/cgroup.controllers", "cpu memory pids io\n")
            .file("/sys/fs/cgroup/cgroup.subtree_control", "cpu memory pids io\n")
    }

    #[test]
    fn a_delegated_v2_subtree_is_used_only_with_both_controllers_passed_down() {
        // (Run as root, detection would also try the hierarchy's root, which the fake keeps unwritable.)
        let mut delegated = v2("memory pids\n").writable(USER_SLICE);
        assert_eq!(detect_with(&mut delegated), Mechanism::CgroupV2 { parent: USER_SLICE.into() });

        let Mechanism::Rlimits { why } = detect_with(&mut v2("pids\n").writable(USER_SLICE)) else {
            panic!("memory not passed down: no v2")
        };
        assert!(why.contains("not enabled for its sub-groups"), "{why}");

        let Mechanism::Rlimits { why } = detect_with(&mut v2("memory pids\n")) else { panic!("not delegated: no v2") };
        assert!(why.contains("not delegated"), "{why}");
    }

    #[test]
    fn a_bind_mounted_subgroup_is_resolved_below_its_root() {
        let mountinfo = "40 30 0:28 /docker/abc /sys/fs/cgroup/pids ro - cgroup cgroup rw,pids\n";
        let mount = &cgroup_mounts(mountinfo)[0];
        assert_eq!(group_dir(mount, "/docker/abc"), Some(PathBuf::from("/sys/fs/cgroup/pids")));
        assert_eq!(group_dir(mount, "/docker/abc/x"), Some(PathBuf::from("/sys/fs/cgroup/pids/x")));
        assert_eq!(group_dir(mount, "/docker/abcd"), None);
        let top = &cgroup_mounts(HYBRID_MOUNTINFO)[1];
        assert_eq!(group_dir(top, "/"), Some(PathBuf::from("/sys/fs/cgroup/pids")), "no trailing slash");
    }

    fn limits() -> Limits {
        Limits { pids: Some(64), memory: Some(64 << 20) }
    }

    #[test]
    fn v1_group_is_made_limited_and_joined_before_the_sandbox_then_removed() {
        let me = std::process::id();
        let mut fake = hybrid()
            .writable("/sys/fs/cgroup/pids")
            .writable("/sys/fs/cgroup/memory/job/7")
            .file(&format!("/sys/fs/cgroup/memory/job/7/ovm/{me}/memory.memsw.limit_in_bytes"), "");
        let enforced = Enforced::enter(&limits(), &mut fake).unwrap().unwrap();
        assert!(enforced.has_group() && enforced.rlimits().is_empty());
        let p = format!("/sys/fs/cgroup/pids/ovm/{me}");
        let m = format!("/sys/fs/cgroup/memory/job/7/ovm/{me}");
        let expected = [
            "mkdir /sys/fs/cgroup/pids/ovm".to_string(),
            format!("mkdir {p}"),
            "mkdir /sys/fs/cgroup/memory/job/7/ovm".into(),
            format!("mkdir {m}"),
            format!("write {p}/pids.max 64"),
            format!("write {m}/memory.limit_in_bytes 67108864"),
            format!("write {m}/memory.memsw.limit_in_bytes 67108864"),
            // Joined last: the caller enters a group whose limits are already in force.
            format!("write {p}/cgroup.procs 0"),
            format!("write {m}/cgroup.procs 0"),
        ];
        assert_eq!(fake.log, expected);

        fake.log.clear();
        fake.busy = 1;
        fake.files.insert(format!("{p}/cgroup.procs").into(), "4242\n".into());
        assert_eq!(enforced.finish(&mut fake, Ok(3)), Ok(3), "no limit hit: the status passes");
        let expected = [
            "write /sys/fs/cgroup/pids/cgroup.procs 0".to_string(),
            "write /sys/fs/cgroup/memory/job/7/cgroup.procs 0".into(),
            format!("rmdir {p}"),
            "kill 4242".into(),
            format!("rmdir {p}"),
            format!("rmdir {m}"),
        ];
        assert_eq!(fake.log, expected, "back home first, stragglers killed, then removed");
    }

    #[test]
    fn a_hit_limit_becomes_the_error_when_the_command_failed() {
        let me = std::process::id();
        let p = format!("/sys/fs/cgroup/pids/ovm/{me}");
        let m = format!("/sys/fs/cgroup/memory/job/7/ovm/{me}");
        let fake = || {
            hybrid()
                .writable("/sys/fs/cgroup/pids")
                .writable("/sys/fs/cgroup/memory/job/7")
                .file(&format!("{p}/pids.events"), "max 17\n")
        };
        let mut f = fake();
        let e = Enforced::enter(&limits(), &mut f).unwrap().unwrap();
        let err = e.finish(&mut f, Ok(2)).unwrap_err();
        assert_eq!(err.exit_code(), 2, "the command's status passes through");
        let text = err.to_string();
        assert!(text.contains("hit the sandbox's pids limit (pids.max=64"), "{text}");
        assert_eq!(hit_in_text(&format!("ovm: sandbox: {text}\n")), Some((LimitKind::Pids, "pids.max=64".into())));

        let mut f = fake();
        let e = Enforced::enter(&limits(), &mut f).unwrap().unwrap();
        assert_eq!(e.finish(&mut f, Ok(0)), Ok(0), "a build that survived a refused fork succeeded");

        let mut f = fake().file(&format!("{m}/memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
        let e = Enforced::enter(&limits(), &mut f).unwrap().unwrap();
        let text = e.finish(&mut f, Ok(137)).unwrap_err().to_string();
        assert!(text.contains("memory limit (memory.limit_in_bytes=64M"), "{text}");
    }

    #[test]
    fn a_failed_step_undoes_what_was_done() {
        let me = std::process::id();
        let mut fake = hybrid().writable("/sys/fs/cgroup/pids").writable("/sys/fs/cgroup/memory/job/7");
        let m = format!("/sys/fs/cgroup/memory/job/7/ovm/{me}");
        fake.fail.insert(format!("{m}/memory.limit_in_bytes").into(), Errno::EINVAL);
        let err = Enforced::enter(&limits(), &mut fake).unwrap_err();
        assert!(matches!(&err, SandboxError::CgroupLimit { value, .. } if value == "67108864"), "{err}");
        assert!(fake.log.ends_with(&[
            "write /sys/fs/cgroup/pids/cgroup.procs 0".into(),
            "write /sys/fs/cgroup/memory/job/7/cgroup.procs 0".into(),
            format!("rmdir /sys/fs/cgroup/pids/ovm/{me}"),
            format!("rmdir {m}"),
        ]));
    }

    #[test]
    fn v2_enables_the_controllers_below_ovm_and_limits_swap() {
        let me = std::process::id();
        let g = format!("{USER_SLICE}/ovm/{me}");
        let mut fake = v2("memory pids\n").writable(USER_SLICE).file(&format!("{g}/memory.swap.max"), "max\n");
        let e = Enforced::enter(&limits(), &mut fake).unwrap().unwrap();
        let expected = [
            format!("mkdir {USER_SLICE}/ovm"),
            format!("write {USER_SLICE}/ovm/cgroup.subtree_control +pids +memory"),
            format!("mkdir {USER_SLICE}/ovm"),
            format!("mkdir {g}"),
            format!("write {g}/pids.max 64"),
            format!("write {g}/memory.max 67108864"),
            format!("write {g}/memory.swap.max 0"),
            format!("write {g}/cgroup.procs 0"),
        ];
        assert_eq!(fake.log, expected);
        fake.files.insert(format!("{g}/memory.events").into(), "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n".into());
        let text = e.finish(&mut fake, Ok(137)).unwrap_err().to_string();
        assert!(text.contains("memory limit (memory.max=64M") && text.contains("cgroup v2"), "{text}");
    }

    #[test]
    fn rlimits_stand_in_without_a_cgroup() {
        let mut fake = hybrid();
        let e = Enforced::enter(&limits(), &mut fake).unwrap().unwrap();
        assert!(!e.has_group() && fake.log.is_empty(), "{:?}", fake.log);
        let r = e.rlimits();
        assert_eq!(r.iter().map(|r| r.0).collect::<Vec<_>>(), [Resource::RLIMIT_NPROC, Resource::RLIMIT_DATA]);
        assert!(r.iter().all(|&(_, soft, hard)| soft == hard && soft <= 64 << 20));
        let names: Vec<String> = e.mechanism.settings(&e.limits).into_iter().map(|s| s.1).collect();
        assert_eq!(names, ["RLIMIT_NPROC=64", "RLIMIT_DATA=64M"]);
        assert!(Enforced::enter(&Limits::default(), &mut fake).unwrap().is_none() && fake.log.is_empty());
    }

    #[test]
    fn default_memory_is_most_of_ram() {
        assert_eq!(mem_total("MemTotal:       24684544 kB\nMemFree: 1 kB\n"), Some(24684544 * 1024));
        assert!(default_memory() >= 1 << 30 && default_memory() % (1 << 20) == 0);
    }
}

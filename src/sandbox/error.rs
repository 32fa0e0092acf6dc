//! The sandbox module's one error type.
//!
//! Every step that can fail while a sandbox is made has its own variant, naming the step, the errno
//! and, where the environment is the usual culprit, the likely cause with the exact fix (computed by
//! [`super::hints`] when the error is created, so the message is complete wherever it is printed).
//!
//! Most steps fail inside the sandbox's init process or its command process, not in the process that
//! asked for the sandbox. Those processes send the error to the caller as JSON over a socket, so the
//! type is serializable: errnos travel as their numbers, paths as (lossy) strings.

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

/// Exit status of `ovm sandbox` when the sandbox itself could not be set up (docker/podman convention).
pub const EXIT_SETUP_FAILED: i32 = 125;
/// Exit status when the command exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit status when the command is not found inside the sandbox.
pub const EXIT_NOT_FOUND: i32 = 127;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SandboxError {
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),

    #[error(
        "{var}={value:?} is not a /proc mode: use `fresh` (the default: a new procfs for the sandbox's pid \
         namespace) or `host-ro` (the degraded mode for containers that refuse a new procfs: the existing /proc \
         bound read-only)"
    )]
    ProcMode { var: String, value: String },

    #[error(
        "cannot start a sandbox from a multi-threaded process ({threads} threads): a user namespace can only \
         be entered by a single-threaded process; multi-threaded callers use sandbox::command(), which re-executes \
         ovm to run the spec"
    )]
    MultiThreaded { threads: usize },

    #[error(
        "sandbox spec maps host {kind} {spec_id} to root, but this process runs as {kind} {actual}: without a \
         setuid helper only one's own id can be mapped"
    )]
    ForeignIdMapping { kind: String, spec_id: u32, actual: u32 },

    #[error("creating the sandbox's user and pid namespaces (unshare) failed: {errno}: {hint}")]
    UserNamespace {
        #[serde(with = "errno_serde")]
        errno: Errno,
        hint: String,
    },

    #[error("writing {file} failed: {errno}: {hint}")]
    IdMap {
        file: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
        hint: String,
    },

    #[error("creating the sandbox's mount/network/UTS/IPC namespaces (unshare) failed: {errno}: {hint}")]
    Namespaces {
        #[serde(with = "errno_serde")]
        errno: Errno,
        hint: String,
    },

    #[error("the ovm process that started the sandbox is gone; the sandbox was abandoned before it ran anything")]
    ParentGone,

    #[error("closing inherited file descriptors failed: {errno}")]
    CloseFds {
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("{step} failed: {errno}")]
    Process {
        step: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("setting the sandbox hostname to {hostname:?} failed: {errno}: {hint}")]
    Hostname {
        hostname: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
        hint: String,
    },

    #[error("bringing up the loopback interface in the sandbox's network namespace failed: {errno}")]
    Loopback {
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("making the mount tree private (mount --make-rprivate /) failed: {errno}: {hint}")]
    MakePrivate {
        #[serde(with = "errno_serde")]
        errno: Errno,
        hint: String,
    },

    #[error("opening bind mount source {path} failed: {errno}")]
    BindSource {
        path: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("host device {path} is not the character device {major}:{minor} the spec names")]
    DeviceMismatch { path: String, major: i64, minor: i64 },

    #[error("mounting the sandbox's root tmpfs on {base} failed: {errno}: {hint}")]
    RootTmpfs {
        base: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
        hint: String,
    },

    #[error("preparing mount point {dest} in the sandbox failed: {errno}{hint}")]
    MountPoint {
        dest: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
        hint: String,
    },

    #[error("bind mount of {from} on {dest} failed at {step}: {errno}")]
    BindMount {
        from: String,
        dest: String,
        step: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("{dest} is still writable after it was made read-only; refusing to run")]
    NotReadOnly { dest: String },

    #[error("mounting {fstype} on {dest} failed: {errno}")]
    Filesystem {
        fstype: String,
        dest: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("mounting a new /proc on {dest} failed: {errno}: {hint}")]
    Proc {
        dest: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
        hint: String,
    },

    #[error("protecting {path} ({how}) failed: {errno}")]
    ProtectPath {
        path: String,
        how: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("creating the symlink {link} in the sandbox failed: {errno}")]
    Symlink {
        link: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("making the sandbox root read-only failed: {errno}")]
    RootReadOnly {
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("pivot_root into the sandbox root failed: {errno}: {hint}")]
    PivotRoot {
        #[serde(with = "errno_serde")]
        errno: Errno,
        hint: String,
    },

    #[error("detaching the host's root from the sandbox failed: {errno}")]
    DetachOldRoot {
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("dropping capabilities ({set}) failed: {reason}")]
    Capabilities { set: String, reason: String },

    #[error("setting resource limit {resource} failed: {errno}")]
    Rlimit {
        resource: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("giving the sandbox a session keyring of its own (keyctl JOIN_SESSION_KEYRING) failed: {errno}{hint}")]
    SessionKeyring {
        #[serde(with = "errno_serde")]
        errno: Errno,
        hint: String,
    },

    #[error("installing ovm's seccomp filter (ioctl TIOCSTI/TIOCLINUX refused) failed: {errno}{hint}")]
    Seccomp {
        #[serde(with = "errno_serde")]
        errno: Errno,
        hint: String,
    },

    #[error("giving the sandbox a terminal of its own failed at {step}: {errno}")]
    Terminal {
        step: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("changing to working directory {dir} inside the sandbox failed: {errno}")]
    Cwd {
        dir: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("{program}: command not found in the sandbox (or its #! / ELF interpreter is missing there)")]
    ExecNotFound { program: String },

    #[error("{program}: cannot execute in the sandbox: {errno}")]
    Exec {
        program: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("creating the sandbox's cgroup {path} failed: {errno}")]
    CgroupCreate {
        path: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("setting the sandbox's limit {file} to {value} failed: {errno}")]
    CgroupLimit {
        file: String,
        value: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    #[error("moving ovm into the sandbox's cgroup {path} failed: {errno}")]
    CgroupJoin {
        path: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
    },

    /// The command failed after the kernel enforced one of the sandbox's limits on it. The wording
    /// "hit the sandbox's KIND limit (SETTING" is what `limits::hit_in_text` finds in a log.
    #[error(
        "the command failed (exit status {status}) and hit the sandbox's {kind} limit ({setting}, {mechanism}): \
         raise it with `ovm sandbox --{kind}-max`, `[sandbox] {kind}_max` in config/ovm.toml or `[limits] {kind}` \
         in the package's recipe"
    )]
    LimitHit { kind: String, setting: String, mechanism: String, status: i32 },

    #[error("the sandbox sent an unreadable status message: {reason}")]
    Protocol { reason: String },

    #[error("{what} {path}: {errno}")]
    Io {
        what: String,
        path: String,
        #[serde(with = "errno_serde")]
        errno: Errno,
    },
}

impl SandboxError {
    /// The exit status a command-line front end should use for this error: 127 when the command is
    /// not found, 126 when it cannot be executed, 125 for every failure of the sandbox itself.
    pub fn exit_code(&self) -> i32 {
        match self {
            SandboxError::ExecNotFound { .. } => EXIT_NOT_FOUND,
            SandboxError::Exec { .. } => EXIT_NOT_EXECUTABLE,
            // The command ran: its own status tells a script it failed.
            SandboxError::LimitHit { status, .. } => *status,
            _ => EXIT_SETUP_FAILED,
        }
    }

    /// An I/O failure on a host path, outside the sandbox (reading a spec, writing a bundle).
    pub(crate) fn io(what: &str, path: &std::path::Path, err: &std::io::Error) -> Self {
        SandboxError::Io {
            what: what.to_string(),
            path: path.display().to_string(),
            errno: err.raw_os_error().map_or(Errno::EIO, Errno::from_raw),
        }
    }

    pub(crate) fn terminal(step: &str, errno: Errno) -> Self {
        SandboxError::Terminal { step: step.to_string(), errno }
    }

    pub(crate) fn process(step: &str, errno: Errno) -> Self {
        SandboxError::Process { step: step.to_string(), errno }
    }
}

/// Errnos cross the socket between sandbox processes as plain numbers.
mod errno_serde {
    use nix::errno::Errno;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(errno: &Errno, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i32(*errno as i32)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Errno, D::Error> {
        Ok(Errno::from_raw(i32::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_survive_the_trip_between_sandbox_processes() {
        let err = SandboxError::Proc {
            dest: "/proc".into(),
            errno: Errno::EPERM,
            hint: "podman: --security-opt systempaths=unconfined".into(),
        };
        let json = serde_json::to_string(&err).unwrap();
        let back: SandboxError = serde_json::from_str(&json).unwrap();
        assert_eq!(back, err);
        assert!(back.to_string().contains("EPERM"), "{back}");
        assert!(back.to_string().contains("systempaths=unconfined"), "{back}");
    }

    #[test]
    fn exit_codes_follow_the_docker_convention() {
        assert_eq!(SandboxError::ExecNotFound { program: "x".into() }.exit_code(), 127);
        assert_eq!(SandboxError::Exec { program: "x".into(), errno: Errno::EACCES }.exit_code(), 126);
        assert_eq!(SandboxError::PivotRoot { errno: Errno::EINVAL, hint: String::new() }.exit_code(), 125);
    }
}

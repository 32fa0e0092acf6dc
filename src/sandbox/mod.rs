//! The build sandbox: an OCI-spec-driven, unprivileged user-namespace runtime.
//!
//! Every sandbox is one `oci_spec::runtime::Spec`, written by [`SandboxBuilder`] with strict
//! defaults. [`run`] executes it in the calling process (for processes that exist to run one
//! sandbox, like `ovm sandbox`); [`command`] gives a `std::process::Command` that runs it in a
//! re-executed ovm (for the engine, which has threads, log files and jobserver descriptors);
//! [`write_bundle`] writes it for runc. [`diagnose`] is `ovm doctor`.
//!
//! Layout: `spec` (builder, annotations) → `plan` (validation, everything decided up front) →
//! `runtime` (processes: caller, init, command) → `mounts` (the root file system, ordered for
//! safety) and `reaper` (pid 1); `sys` wraps the syscalls nix lacks; `hints` explains failures;
//! `limits` enforces the resource limits (cgroup v2, v1 or rlimits); `error` is the one error type; `doctor`, `bundle` and `cli` are the front ends.
//!
//! No setuid helper, no bwrap/crun at run time: without privileges only the invoking uid/gid can be
//! mapped (to root inside), and a user namespace gives just enough to build the view. Exit statuses
//! follow docker/podman: the command's status passes through (128+N for signal N); 125 = the sandbox
//! could not be set up, 126 = command not executable, 127 = command not found.

mod bundle;
pub mod cli;
mod doctor;
mod error;
mod hints;
pub mod limits;
mod mounts;
mod plan;
mod pty;
mod reaper;
mod runtime;
mod seccomp;
mod spec;
mod spec_fd;
mod sys;

pub use bundle::write_bundle;
pub use doctor::{diagnose, Check, Report, Status};
pub use error::{SandboxError, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_SETUP_FAILED};
pub use hints::HostFacts;
pub use limits::{Limits, Mechanism};
pub use runtime::{command, command_with_exe, executable, run, EXEC_SUBCOMMAND, EXE_ENV};
pub use spec::{
    to_json, ProcMode, SandboxBuilder, ANNOTATION_PRESERVE_FDS, ANNOTATION_PROC, ANNOTATION_ROOT, ANNOTATION_SECCOMP,
    ANNOTATION_SESSION_KEYRING, DEFAULT_ENV, DEFAULT_HOSTNAME, MASKED_PATHS, PROC_MODE_ENV, READONLY_PATHS,
    SECCOMP_BUILTIN, SESSION_KEYRING_NEW,
};

//! How [`command`](super::command) hands a spec to the ovm it re-executes: through an inherited
//! file descriptor (`ovm __sandbox-exec --spec-fd N`), never on the command line.
//!
//! On the command line the spec was two problems at once: the kernel limits one argument to
//! `MAX_ARG_STRLEN` (128 KiB), so a recipe with a larger install snippet failed with E2BIG before
//! anything ran; and `/proc/PID/cmdline` is readable by every user of the host, so every recipe's
//! environment and scripts were on show in `ps` for as long as a step ran. A descriptor has neither
//! limit nor audience: `/proc/PID/fd/N` is as private as the process's memory.
//!
//! The descriptor is a sealed memfd: written once by the caller, then sealed against writes,
//! growing and shrinking, so what the child reads is exactly what the caller wrote even though the
//! file is shared. The child reads it with `pread` from offset 0 (a second spawn of the same
//! `Command` reads it whole again) and closes it before the sandbox exists; init would close it
//! anyway, with every inherited descriptor the spec does not preserve.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use oci_spec::runtime::Spec;

use super::error::SandboxError;

/// The option of `ovm __sandbox-exec` that names the descriptor.
pub const SPEC_FD_OPTION: &str = "--spec-fd";

/// The lowest descriptor the spec may be passed in: 0-2 are the child's stdio, which `Command`
/// replaces after fork.
const LOWEST: RawFd = 3;

/// A close-on-exec, sealed memfd holding `json`, at descriptor 3 or above.
pub(crate) fn sealed(json: &[u8]) -> Result<OwnedFd, SandboxError> {
    let fd = memfd_create("ovm-spec", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)
        .map_err(|e| SandboxError::process("memfd_create for the spec", e))?;
    let mut written = 0;
    while written < json.len() {
        match nix::unistd::write(&fd, &json[written..]) {
            Ok(n) => written += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(SandboxError::process("writing the spec to its memfd", e)),
        }
    }
    let seals = SealFlag::F_SEAL_WRITE | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_SEAL;
    fcntl(&fd, FcntlArg::F_ADD_SEALS(seals)).map_err(|e| SandboxError::process("sealing the spec's memfd", e))?;
    if fd.as_raw_fd() >= LOWEST {
        return Ok(fd);
    }
    // A caller started with stdin or stdout closed gets the memfd at 0-2: move it up.
    let moved = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(LOWEST))
        .map_err(|e| SandboxError::process("moving the spec's memfd above stdio", e))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// Reads the spec from descriptor `fd` (inherited from the caller) and closes it.
pub(crate) fn read(fd: RawFd) -> Result<Spec, SandboxError> {
    if fd < LOWEST {
        return Err(SandboxError::InvalidSpec(format!("{SPEC_FD_OPTION} {fd}: stdio is not a spec descriptor")));
    }
    // Only an open descriptor may become an OwnedFd; this process is single-threaded here and has
    // opened nothing of its own, so an open `fd` is the inherited one.
    // SAFETY: F_GETFD only reads the descriptor flags (and fails with EBADF if `fd` is not open).
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        let errno = Errno::last();
        return Err(SandboxError::process(&format!("{SPEC_FD_OPTION} {fd}"), errno));
    }
    // SAFETY: `fd` is open (checked above), was handed to this process for this purpose, and is
    // used and closed only here.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    // Not inherited any further, whatever happens below.
    let _ = fcntl(&file, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    let mut json = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match std::os::unix::fs::FileExt::read_at(&file, &mut buf, json.len() as u64) {
            Ok(0) => break,
            Ok(n) => json.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let errno = e.raw_os_error().map_or(Errno::EIO, Errno::from_raw);
                return Err(SandboxError::process(&format!("reading the spec from {SPEC_FD_OPTION} {fd}"), errno));
            }
        }
    }
    drop(file);
    serde_json::from_slice(&json).map_err(|e| SandboxError::InvalidSpec(format!("spec JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::SandboxBuilder;

    #[test]
    fn a_spec_over_the_argument_limit_passes_whole_through_a_sealed_memfd() {
        // MAX_ARG_STRLEN is 32 pages: this one argument would have been refused by execve.
        let script = format!("# {}\ntrue", "x".repeat(200 * 1024));
        let spec = SandboxBuilder::new(["/bin/sh", "-c", &script]).env("TOKEN", "s3cret").build().unwrap();
        let fd = sealed(&serde_json::to_vec(&spec).unwrap()).unwrap();
        assert!(fd.as_raw_fd() >= LOWEST);
        // Sealed: nobody holding the descriptor can change what the child will read.
        assert_eq!(nix::unistd::write(&fd, b"{}"), Err(Errno::EPERM));
        let raw = nix::unistd::dup(&fd).unwrap();
        let back = read(std::os::fd::IntoRawFd::into_raw_fd(raw)).unwrap();
        assert_eq!(back, spec);
        // Read with pread: the same descriptor reads whole a second time.
        let raw = nix::unistd::dup(&fd).unwrap();
        assert_eq!(read(std::os::fd::IntoRawFd::into_raw_fd(raw)).unwrap(), spec);
    }

    #[test]
    fn stdio_and_closed_descriptors_are_refused() {
        assert!(read(1).unwrap_err().to_string().contains("stdio"));
        let err = read(1_000_000).unwrap_err();
        assert!(matches!(err, SandboxError::Process { errno: Errno::EBADF, .. }), "{err}");
    }
}

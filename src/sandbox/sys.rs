//! The few system calls the sandbox needs that `nix` does not wrap, each behind a small safe function.
//!
//! The new mount API (`open_tree`, `mount_setattr`, `move_mount`; Linux ≥ 5.12) is what makes the
//! mount setup both safe and short: a bind is cloned from a file descriptor opened before anything
//! was mounted over its path, made read-only/nosuid/nodev while still detached (so it is never
//! visible writable, and the kernel keeps the locked flags of mounts inherited from the host), and
//! attached to a mount point opened beneath the new root without following symlinks. Neither nix nor
//! rustix wraps `mount_setattr`, so these are raw syscalls; the structs and constants are the
//! kernel's UAPI (`linux/mount.h`).

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x01;
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x02;
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x04;
pub(crate) const MOUNT_ATTR_NOEXEC: u64 = 0x08;

/// `struct mount_attr` from linux/mount.h.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached, recursive copy of the mount tree at `fd` (`open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`).
/// Recursive because a non-recursive clone of a tree with locked submounts would reveal what they
/// cover, which the kernel refuses.
pub(crate) fn clone_tree(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint;
    let flags = flags | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: the path is a valid NUL-terminated empty string, the fd is borrowed for the call and
    // the kernel returns a new descriptor we take ownership of only on success.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    let raw = Errno::result(ret)? as RawFd;
    // SAFETY: open_tree returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Add mount flags (`MOUNT_ATTR_*`) to the mount at `fd` (and below it when `recursive`).
pub(crate) fn set_mount_attrs(fd: BorrowedFd<'_>, attrs: u64, recursive: bool) -> Result<(), Errno> {
    if attrs == 0 {
        return Ok(());
    }
    let attr = MountAttr { attr_set: attrs, attr_clr: 0, propagation: 0, userns_fd: 0 };
    let flags = if recursive { libc::AT_EMPTY_PATH | libc::AT_RECURSIVE } else { libc::AT_EMPTY_PATH } as libc::c_uint;
    // SAFETY: `attr` is a live, correctly laid out mount_attr whose size we pass; the path is an
    // empty C string and the fd stays borrowed for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// Attach the detached mount `from` on top of the file or directory `to`.
pub(crate) fn attach(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: both fds are borrowed for the call; both paths are empty C strings, as
    // MOVE_MOUNT_{F,T}_EMPTY_PATH require.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(ret).map(drop)
}

/// `/proc/self/fd/N`: lets path-based `mount(2)` (tmpfs, proc) target a directory that was opened
/// safely beneath the new root, instead of re-resolving a path that a symlink could redirect.
pub(crate) fn fd_path(fd: BorrowedFd<'_>) -> CString {
    // Digits only: no interior NUL is possible.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// Close every descriptor ≥ 3 except `keep` (sorted or not): a leaked directory descriptor of the
/// host would let the command `openat()` its way out of the sandbox.
pub(crate) fn close_fds_except(keep: &[RawFd]) -> Result<(), Errno> {
    let mut keep: Vec<u32> = keep.iter().filter(|&&fd| fd >= 3).map(|&fd| fd as u32).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first = 3u32;
    for fd in keep {
        if fd > first {
            close_range(first, fd - 1)?;
        }
        first = fd + 1;
    }
    close_range(first, u32::MAX)
}

fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: close_range only closes descriptors; the callers own none of the closed ones any more
    // (this runs in a freshly forked sandbox process whose inherited descriptors are not in use).
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    Errno::result(ret).map(drop)
}

/// An anonymous stack for a `clone`d child, with an inaccessible guard page below it so an
/// overflow faults instead of overwriting memory the child shares with its parent.
pub(crate) struct Stack {
    base: *mut libc::c_void,
    len: usize,
}

impl Stack {
    pub(crate) fn new(size: usize) -> Result<Stack, Errno> {
        let page = 4096;
        let len = size.div_ceil(page) * page + page;
        // SAFETY: an anonymous private mapping at an address the kernel chooses; no existing
        // memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let stack = Stack { base, len };
        // SAFETY: the lowest page of the mapping we own becomes the guard page.
        Errno::result(unsafe { libc::mprotect(base, page, libc::PROT_NONE) })?;
        Ok(stack)
    }

    /// The usable part, above the guard page.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: [base + 4096, base + len) is mapped read-write and owned by this Stack.
        unsafe { std::slice::from_raw_parts_mut((self.base as *mut u8).add(4096), self.len - 4096) }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`, which nothing uses any more.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Threads of the calling process (field 20 of /proc/self/stat), `None` if unreadable.
pub(crate) fn thread_count() -> Option<usize> {
    use std::io::Read;
    // One read into a buffer on the stack: this runs before every sandbox.
    let mut buf = [0u8; 1024];
    let n = std::fs::File::open("/proc/self/stat").ok()?.read(&mut buf).ok()?;
    let stat = std::str::from_utf8(&buf[..n]).ok()?;
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split(' ').nth(17)?.parse().ok()
}

/// Bring up `lo` in a fresh network namespace, as bwrap does: builds and test suites expect
/// localhost to exist, and it only ever reaches the sandbox itself.
pub(crate) fn loopback_up() -> Result<(), Errno> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills `req.ifr_ifru.ifru_flags` for the named interface; `req` outlives the call.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) })?;
    // SAFETY: the kernel just initialised the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads `req`, which stays valid for the call.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) }).map(drop)
}

/// Drop every capability from the bounding set, including ones newer than the `caps` crate knows
/// (it only iterates its own enum): indices past the kernel's last capability fail with EINVAL.
pub(crate) fn drop_bounding_set() -> Result<(), Errno> {
    for cap in 0..64 {
        // SAFETY: PR_CAPBSET_DROP takes an integer capability index and touches no memory.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        match Errno::result(ret) {
            Ok(_) => {}
            Err(Errno::EINVAL) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `KEYCTL_GET_KEYRING_ID`, `KEYCTL_JOIN_SESSION_KEYRING` and `KEY_SPEC_SESSION_KEYRING` from
/// linux/keyctl.h; the libc crate lacks them for musl.
const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;

/// Replace the calling process's session keyring with a new, empty, anonymous one (what runc and
/// crun do for every container): the keys of the caller's session (tokens, `keyctl add … @s`) are
/// then out of reach of everything the process starts. Returns `Ok(false)` when the kernel keyring
/// is unreachable altogether (a kernel without CONFIG_KEYS, or a seccomp filter refusing `keyctl`,
/// like Docker's default profile): filters are inherited, so the sandbox cannot reach any key then
/// either, and there is nothing to replace.
pub(crate) fn join_new_session_keyring() -> Result<bool, Errno> {
    // SAFETY: a NULL name asks for an anonymous keyring; the call reads no memory of ours.
    let ret = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, std::ptr::null::<libc::c_char>()) };
    match Errno::result(ret) {
        Ok(_) => Ok(true),
        Err(errno) => {
            // SAFETY: integer arguments only; create = 0 looks the keyring up without making one.
            let reachable =
                unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) } >= 0;
            if reachable {
                Err(errno)
            } else {
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_sees_a_spawned_thread() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::spawn(move || rx.recv().ok());
        assert!(thread_count().unwrap() >= 2);
        tx.send(()).unwrap();
        handle.join().unwrap();
    }

    #[test]
    fn fd_path_names_the_descriptor() {
        let file = std::fs::File::open("/").unwrap();
        let fd: std::os::fd::BorrowedFd<'_> = std::os::fd::AsFd::as_fd(&file);
        assert_eq!(fd_path(fd).to_str().unwrap(), format!("/proc/self/fd/{}", file.as_raw_fd()));
    }
}

//! Running a spec: the process layout of a sandbox and the order of its steps.
//!
//! ```text
//! caller (ovm)        unshare(USER|PID), uid/gid map; blocks INT/TERM/HUP/QUIT/CHLD, forwards them;
//!  │                  with a terminal: opens a pty for the sandbox and relays it (see `pty`)
//!  └─ init, pid 1     unshare(NS|NET|UTS|IPC), new session keyring, hostname, lo, setsid (if the
//!      │              caller has a controlling terminal), mounts + pivot_root; spawns the command,
//!      │              then only reaps (see `reaper`), kills what is left, sends the status and exits
//!      └─ command     the pty as controlling terminal, cwd, rlimits, umask, signals reset, every
//!                     capability dropped, no_new_privs, ovm's seccomp filter (see `seccomp`),
//!                     execve with exactly the spec's environment
//! ```
//! The sandbox never holds the caller's terminal: without a terminal it runs in a session of its
//! own with no controlling terminal, with one (`--tty`) it gets a new pty whose master the caller
//! relays, so nothing inside can push input into the caller's shell (TIOCSTI); the seccomp filter
//! refuses TIOCSTI and TIOCLINUX outright as a second wall.
//! The caller writes its own id maps right after `unshare`, so no round trip with a child is needed;
//! the pid namespace starts with the caller's first child, init. The caller thereby joins the new user
//! namespace, which is why [`run`] is only for processes that exist to run one sandbox (the `ovm
//! sandbox` command, the hidden re-exec entry point); other callers use [`command`], which re-executes
//! ovm. A user namespace cannot be entered by a multi-threaded process, and forking one would leave
//! locks held in the child, so [`run`] checks the thread count first and says so.
//!
//! Init is an ordinary fork; the command is spawned like `posix_spawn` does it (`CLONE_VM |
//! CLONE_VFORK`): it shares init's memory until its `execve`, so nothing is copied for a process that
//! is about to replace itself. Each fork keeps the child on the parent's CPU (see [`Pin`]).
//!
//! Init and the command report failures to the caller as JSON messages over a socketpair whose ends
//! are close-on-exec, and init's last message is the command's status, sent once nothing of the
//! sandbox runs any more: the caller returns on it without waiting for init's own exit, the slow
//! part of a short sandbox (see [`supervise`]); a successful `execve` does not wake the caller. Init has
//! `PR_SET_PDEATHSIG(SIGKILL)` — if ovm dies, init dies and the kernel kills the whole namespace — and
//! checks right after setting it that the caller's end is still open, closing the fork/prctl race.
//! Init is not dumpable, so the command cannot ptrace it.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{sched_getaffinity, sched_getcpu, sched_setaffinity, unshare, CloneFlags, CpuSet};
use nix::sys::signal::{kill, sigaction, sigprocmask, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::Spec;

use super::error::SandboxError;
use super::hints;
use super::limits::{self, Enforced};
use super::mounts;
use super::plan::Plan;
use super::pty;
use super::reaper;
use super::seccomp;
use super::spec_fd;
use super::sys;
use crate::settings::Settings;

/// The hidden subcommand that runs a spec given as JSON in an inherited descriptor:
/// `ovm __sandbox-exec --spec-fd N` (see `spec_fd` for why not on the command line).
pub const EXEC_SUBCOMMAND: &str = "__sandbox-exec";
/// Environment variable overriding the ovm executable [`command`] re-executes.
pub const EXE_ENV: &str = crate::settings::EXE;

/// Signals the caller forwards to the sandbox (and init to the command).
const FORWARDED: [Signal; 4] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT];

/// What the command process does once the sandbox is ready.
#[derive(Clone, Copy)]
pub(crate) enum Payload {
    /// `execve` the spec's `process.args` (every real use).
    Exec,
    /// Run this function in the finished sandbox and exit with its result (the doctor's trial, which
    /// cannot count on any executable existing inside a strict sandbox).
    Probe(fn() -> i32),
}

/// Run `spec` and return the command's exit status (128+N if signal N ended it).
///
/// The calling process joins the sandbox's user namespace and cannot fork into a fresh pid
/// namespace again, so this is for single-threaded processes that run one sandbox and exit (the
/// `ovm sandbox` CLI). Multi-threaded callers get [`SandboxError::MultiThreaded`]; they use
/// [`command`]. While the sandbox runs, SIGINT/SIGTERM/SIGHUP/SIGQUIT are forwarded to it. When it
/// returns, no process of the sandbox runs any more, but the kernel may still be tearing down its
/// namespaces, and its init is left for this process's exit to reap. `settings` are this
/// process's: the hints in a setup failure's message consult them (a container named by
/// `container`).
pub fn run(spec: &Spec, settings: &Settings) -> Result<i32, SandboxError> {
    hints::remember(settings);
    run_plan(&Plan::from_spec(spec)?, Payload::Exec)
}

/// A [`Command`] that runs `spec` in a separate ovm process (`ovm __sandbox-exec`), for callers
/// that have threads or must keep their own namespaces: the engine sets its stdio (log files) and
/// spawns it like any program. Its exit status is the sandboxed command's; 125 means the sandbox
/// could not be set up (the reason is on its stderr), 126/127 not executable / not found. File
/// descriptors the spec preserves are passed through (their close-on-exec flag is cleared in the
/// child); all other inherited descriptors are closed inside the sandbox.
///
/// The executable is `OVM_EXE` (in `settings`) or the current executable; in `cargo test` the
/// latter is the test harness, so tests use [`command_with_exe`] with `env!("CARGO_BIN_EXE_ovm")`.
///
/// The sandbox dies with its caller: the spawned process gets `PR_SET_PDEATHSIG(SIGKILL)`, and its
/// own init has the same towards it, so a killed ovm takes the whole tree down instead of leaving a
/// build writing into a work dir the next run is about to reuse. The signal is tied to the *thread*
/// that spawns: spawn and wait from the same thread (as `Command::status` does).
pub fn command(spec: &Spec, settings: &Settings) -> Result<Command, SandboxError> {
    command_with_exe(&executable(settings)?, spec)
}

/// [`command`] with an explicit ovm executable.
pub fn command_with_exe(exe: &Path, spec: &Spec) -> Result<Command, SandboxError> {
    let plan = Plan::from_spec(spec)?;
    let json = serde_json::to_vec(spec).map_err(|e| SandboxError::InvalidSpec(e.to_string()))?;
    // Owned by the closure below, so it stays open exactly as long as the Command can spawn.
    let spec_fd = spec_fd::sealed(&json)?;
    let mut cmd = Command::new(exe);
    cmd.arg(EXEC_SUBCOMMAND).arg(spec_fd::SPEC_FD_OPTION).arg(spec_fd.as_raw_fd().to_string());
    let fds = plan.preserve_fds;
    let caller = nix::unistd::getpid();
    // SAFETY: the closure runs between fork and exec; it only calls prctl, getppid and fcntl
    // (async-signal-safe) on values it already owns, and allocates nothing (errors are raw errnos).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            // The caller may have died before the prctl: then nobody would kill us later.
            if nix::unistd::getppid() != caller {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            for &fd in &fds {
                inheritable(fd)?;
            }
            // Only this child gets the spec: the caller's copy stays close-on-exec for the
            // programs its other threads start.
            inheritable(spec_fd.as_raw_fd())
        });
    }
    Ok(cmd)
}

/// The ovm executable [`command`] re-executes: `OVM_EXE` in `settings`, else this one.
pub fn executable(settings: &Settings) -> Result<PathBuf, SandboxError> {
    if let Some(exe) = &settings.exe {
        return Ok(exe.clone());
    }
    std::env::current_exe().map_err(|e| SandboxError::io("finding the ovm executable", Path::new("/proc/self/exe"), &e))
}

fn inheritable(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD read and write only the descriptor flags of `fd`.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The set init and the caller wait on with `sigwait`: the forwarded signals and SIGCHLD (which
/// also tells the caller that a report arrived, see [`notify_on_message`]).
fn wait_set() -> SigSet {
    let mut set = SigSet::empty();
    for sig in FORWARDED {
        set.add(sig);
    }
    set.add(Signal::SIGCHLD);
    set
}

pub(crate) fn run_plan(plan: &Plan, payload: Payload) -> Result<i32, SandboxError> {
    match sys::thread_count() {
        Some(threads) if threads > 1 => return Err(SandboxError::MultiThreaded { threads }),
        _ => {}
    }
    let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
    for (kind, spec_id, actual) in [("uid", plan.uid, uid), ("gid", plan.gid, gid)] {
        if spec_id != actual {
            return Err(SandboxError::ForeignIdMapping { kind: kind.into(), spec_id, actual });
        }
    }
    // Before anything forks: with a cgroup, this process moves into the sandbox's group, so init
    // and the command start inside it; with rlimits, the command sets them on itself.
    let enforced = Enforced::enter(&plan.limits, &mut limits::Kernel)?;
    let with_rlimits;
    let plan = match enforced.as_ref().map(Enforced::rlimits) {
        Some(extra) if !extra.is_empty() => {
            with_rlimits = Plan { rlimits: [plan.rlimits.clone(), extra].concat(), ..plan.clone() };
            &with_rlimits
        }
        _ => plan,
    };
    // A terminal of its own only when we own ours (not when started in the background): the relay
    // puts the caller's terminal in raw mode, which a background process may not.
    let pty = if plan.terminal && owns_terminal() { Some(pty::open(std::io::stdin().as_fd())?) } else { None };
    let signals = wait_set();
    let mut old_mask = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), Some(&mut old_mask))
        .map_err(|e| SandboxError::process("blocking signals", e))?;
    let launch = Launch {
        plan,
        payload,
        signals,
        old_mask,
        tty: pty.as_ref().map(|p| p.slave.as_raw_fd()),
        new_session: pty.is_none() && has_controlling_terminal(),
        wait_for_init: enforced.as_ref().is_some_and(Enforced::has_group),
    };
    let result = run_blocked(&launch, pty);
    let result = match enforced {
        Some(enforced) => enforced.finish(&mut limits::Kernel, result),
        None => result,
    };
    // Signals that arrived after the sandbox ended are delivered now, with their usual effect.
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
    result
}

/// What the caller decides before the sandbox's processes exist; init and the command read it.
struct Launch<'a> {
    plan: &'a Plan,
    payload: Payload,
    /// Blocked in all three processes; init and the caller take them with `sigwait`.
    signals: SigSet,
    /// The caller's signal mask, which the command gets back before `execve`.
    old_mask: SigSet,
    /// The slave of the sandbox's own pty, which the command makes its stdio and controlling terminal.
    tty: Option<RawFd>,
    /// Put the sandbox in a session of its own. Needed only when the caller has a controlling
    /// terminal, the one thing TIOCSTI could inject into: without one there is nothing to detach
    /// from, and a new session would cost a scheduler autogroup (a time slice of delay on a busy host).
    new_session: bool,
    /// Wait for init's exit after its status (its cgroup can only be removed once it is empty).
    wait_for_init: bool,
}

fn run_blocked(launch: &Launch<'_>, pty: Option<pty::Pty>) -> Result<i32, SandboxError> {
    let plan = launch.plan;
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWPID)
        .map_err(|errno| SandboxError::UserNamespace { errno, hint: hints::userns_hint(errno) })?;
    write_id_map("/proc/self/setgroups", "deny")?;
    write_id_map("/proc/self/uid_map", &format!("0 {} 1", plan.uid))?;
    write_id_map("/proc/self/gid_map", &format!("0 {} 1", plan.gid))?;

    // Messages, not a byte stream: an error report or the final status each arrive whole.
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| SandboxError::process("socketpair", e))?;
    notify_on_message(&ours).map_err(|e| SandboxError::process("F_SETOWN/O_ASYNC on the report socket", e))?;

    let pin = Pin::here();
    // SAFETY: this process is single-threaded (checked in run_plan), so the child is an ordinary
    // copy with no locks held by other threads; it leaves only through _exit.
    let forked = unsafe { nix::unistd::fork() };
    pin.release();
    match forked {
        Err(errno) => Err(SandboxError::process("fork of the sandbox init", errno)),
        Ok(ForkResult::Child) => {
            drop(ours);
            // Init keeps the slave (`launch.tty`) for the command; the master is the caller's.
            if let Some(pty) = pty {
                drop(pty.master);
                let _ = std::os::fd::IntoRawFd::into_raw_fd(pty.slave);
            }
            let code = init_main(launch, theirs);
            // SAFETY: _exit ends the child without running the parent's atexit handlers or
            // flushing buffers copied from it.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(theirs);
            let outcome = match pty {
                None => {
                    let signals = launch.signals;
                    supervise(child, &ours, || signals.wait().ok())
                }
                Some(pty::Pty { master, slave }) => {
                    // Our copy of the slave would keep the pty open after the sandbox ends.
                    drop(slave);
                    // If the relay cannot start, the sandbox must not run on unattended.
                    match pty::Relay::start(master, &launch.signals) {
                        Ok(mut relay) => {
                            let outcome = supervise(child, &ours, || relay.wait(ours.as_fd()));
                            relay.finish();
                            outcome
                        }
                        Err(err) => {
                            let _ = kill(child, Signal::SIGKILL);
                            Err(err)
                        }
                    }
                }
            };
            if launch.wait_for_init {
                // Already reaped if supervise saw init close without a status: ECHILD then.
                let _ = wait_exit(child);
            }
            outcome
        }
    }
}

/// First byte of init's final message: the command's status follows (4 bytes, little endian).
/// Error reports are JSON and never start with it.
const STATUS_TAG: u8 = 0xff;

/// `F_SETSIG` from linux/fcntl.h (the same on every architecture); the libc crate lacks it.
const F_SETSIG: libc::c_int = 10;

/// Have the kernel signal this process when a message arrives on `sock` (`O_ASYNC`), with SIGCHLD
/// rather than SIGIO (`F_SETSIG`): the caller already waits for SIGCHLD, and one that arrives after
/// the sandbox is over (the socket's hang-up, say) is ignored by default, where SIGIO would kill.
fn notify_on_message(sock: &OwnedFd) -> Result<(), Errno> {
    let fd = sock.as_raw_fd();
    // SAFETY: F_SETOWN, F_SETSIG and F_SETFL take integer arguments and change only the owner,
    // notification signal and flags of this socket's open file description.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_SETOWN, libc::getpid()) })?;
    // SAFETY: as above.
    Errno::result(unsafe { libc::fcntl(fd, F_SETSIG, libc::SIGCHLD) })?;
    // SAFETY: as above.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_ASYNC) }).map(drop)
}

/// Keeps the next child on the current CPU while it starts.
///
/// Setting up a sandbox is a chain of processes that each wait for the next (caller → init →
/// command). Left alone, the scheduler starts each new child on another CPU, and every hand-over
/// then waits for a cross-CPU wakeup — on a virtual machine an idle vCPU can take hundreds of
/// microseconds to wake, more than all the mounts cost. So the parent pins itself to its current
/// CPU around the fork, and both restore the original affinity right after: the child runs as soon
/// as the parent blocks, and both stay free to migrate (the build inherits the full affinity).
struct Pin(Option<CpuSet>);

impl Pin {
    fn here() -> Pin {
        let pinned = (|| {
            let original = sched_getaffinity(Pid::from_raw(0)).ok()?;
            let mut here = CpuSet::new();
            here.set(sched_getcpu().ok()?).ok()?;
            sched_setaffinity(Pid::from_raw(0), &here).ok()?;
            Some(original)
        })();
        Pin(pinned)
    }

    /// Restore the affinity (in whichever process calls it). Restoring a mask just read cannot
    /// fail short of a concurrent cpuset change; a process left pinned is slower, not less isolated.
    fn release(&self) {
        if let Some(original) = &self.0 {
            let _ = sched_setaffinity(Pid::from_raw(0), original);
        }
    }
}

fn write_id_map(file: &str, content: &str) -> Result<(), SandboxError> {
    let result = std::fs::OpenOptions::new().write(true).open(file).and_then(|mut f| f.write_all(content.as_bytes()));
    result.map_err(|e| {
        let errno = e.raw_os_error().map_or(Errno::EIO, Errno::from_raw);
        SandboxError::IdMap { file: file.into(), errno, hint: hints::idmap_hint(errno) }
    })
}

/// One message from init or the command.
enum Message {
    /// The command's status; init sends it last, once nothing else runs in the sandbox.
    Status(i32),
    Error(SandboxError),
    /// No message waiting.
    None,
    /// Every sender is gone: init has exited (or is exiting) without a status.
    Closed,
}

fn receive(sock: &OwnedFd, buf: &mut [u8]) -> Message {
    loop {
        return match recv(sock.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
            Ok(0) => Message::Closed,
            Ok(5) if buf[0] == STATUS_TAG => Message::Status(i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]])),
            Ok(n) => Message::Error(serde_json::from_slice(&buf[..n]).unwrap_or_else(|e| SandboxError::Protocol {
                reason: format!("{e}: {}", String::from_utf8_lossy(&buf[..n])),
            })),
            Err(Errno::EAGAIN) => Message::None,
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                Message::Error(SandboxError::Protocol { reason: format!("reading the sandbox's status: {errno}") })
            }
        };
    }
}

fn send_report<Fd: AsFd>(sock: &Fd, err: &SandboxError) {
    if let Ok(json) = serde_json::to_vec(err) {
        let _ = send(sock.as_fd().as_raw_fd(), &json, MsgFlags::MSG_NOSIGNAL);
    }
}

fn send_status<Fd: AsFd>(sock: &Fd, code: i32) {
    let mut message = [STATUS_TAG; 5];
    message[1..].copy_from_slice(&code.to_le_bytes());
    let _ = send(sock.as_fd().as_raw_fd(), &message, MsgFlags::MSG_NOSIGNAL);
}

/// Wait for the sandbox's outcome, forwarding the signals the caller receives meanwhile.
///
/// The outcome is init's last message, the command's status, sent once the command and every other
/// process of the sandbox are gone; the caller returns on it (SIGCHLD wakes it) without waiting for
/// init to exit, because init's exit is the slow part of a short sandbox: the kernel tears down the
/// mount namespace (a synchronous RCU grace period) and init's memory before it tells the parent.
/// Init, a zombie soon, is reaped when this process exits (ovm sandbox and the re-exec entry point
/// exit right after). An error report, from init or the command, wins over a status; if init ends
/// without a status (it failed, or was killed), its own exit status counts.
/// `next` blocks until something may have happened and returns a signal to forward, if any.
fn supervise(init: Pid, sock: &OwnedFd, mut next: impl FnMut() -> Option<Signal>) -> Result<i32, SandboxError> {
    let mut report = None;
    // Error reports are a few hundred bytes of JSON; a longer one arrives cut (a Protocol error).
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match receive(sock, &mut buf) {
            Message::Status(code) => return report.map_or(Ok(code), Err),
            Message::Error(err) => {
                report.get_or_insert(err);
                continue;
            }
            Message::Closed => {
                let status = wait_exit(init);
                return report.map_or(status, Err);
            }
            Message::None => {}
        }
        match next() {
            None | Some(Signal::SIGCHLD) => {}
            Some(sig) => {
                let _ = kill(init, sig);
            }
        }
    }
}

/// Init's exit status, once it has exited.
fn wait_exit(init: Pid) -> Result<i32, SandboxError> {
    loop {
        match waitpid(init, None) {
            Ok(status) => {
                if let Some(code) = reaper::status_code(status) {
                    return Ok(code);
                }
            }
            Err(Errno::EINTR) => {}
            Err(errno) => return Err(SandboxError::process("waiting for the sandbox", errno)),
        }
    }
}

fn has_controlling_terminal() -> bool {
    // O_NOCTTY: only look; ENXIO means this process has no controlling terminal.
    nix::fcntl::open("/dev/tty", OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC, Mode::empty()).is_ok()
}

fn owns_terminal() -> bool {
    let stdin = std::io::stdin();
    nix::unistd::isatty(stdin.as_fd()).unwrap_or(false)
        && nix::unistd::tcgetpgrp(stdin.as_fd()).is_ok_and(|pgrp| pgrp == nix::unistd::getpgrp())
}

/// Stack of the command process while it shares init's memory (until `execve`).
const COMMAND_STACK: usize = 512 * 1024;

/// Init (pid 1): build the sandbox, start the command, reap. Returns init's exit status.
fn init_main(launch: &Launch<'_>, sock: OwnedFd) -> i32 {
    let plan = launch.plan;
    if let Err(err) = init_setup(launch, &sock) {
        send_report(&sock, &err);
        return err.exit_code();
    }
    match spawn_command(launch, &sock) {
        Err(err) => {
            send_report(&sock, &err);
            err.exit_code()
        }
        Ok(child) => {
            for fd in plan.preserve_fds.iter().chain(&launch.tty) {
                let _ = nix::unistd::close(*fd);
            }
            // Init needs no privilege to wait and signal; keep none it could lose.
            let _ = caps::clear(None, caps::CapSet::Permitted);
            let code = reaper::reap(child, &launch.signals);
            // The caller returns on the status: nothing of the sandbox may still run by then.
            reaper::kill_remaining();
            send_status(&sock, code);
            code
        }
    }
}

/// Start the command process as `posix_spawn` does: `clone(CLONE_VM | CLONE_VFORK)` on a stack of
/// its own. It shares init's memory until its `execve` (init is suspended meanwhile), so nothing of
/// init's address space is copied, and the exec has no copy to tear down. The child gets copies of
/// the descriptor table, signal handlers, cwd and credentials (no CLONE_FILES/SIGHAND/FS), so every
/// confinement step it takes is its own; it leaves only by `execve` or `_exit`, never by returning.
fn spawn_command(launch: &Launch<'_>, sock: &OwnedFd) -> Result<Pid, SandboxError> {
    let mut stack = sys::Stack::new(COMMAND_STACK).map_err(|e| SandboxError::process("allocating a stack", e))?;
    let sock = sock.as_raw_fd();
    let pin = Pin::here();
    let child = Box::new(|| -> isize {
        pin.release();
        command_main(launch, sock)
    });
    let flags = CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK;
    // SAFETY: init is single-threaded and suspended until the child execs or exits (CLONE_VFORK),
    // so the child's use of the shared heap and of `launch` (borrowed from init's frame, which
    // outlives the call) never races with init; the child runs on `stack`, which stays mapped
    // until after clone returns, and it never returns from the closure.
    let spawned = unsafe { nix::sched::clone(child, stack.as_mut_slice(), flags, Some(libc::SIGCHLD)) };
    pin.release();
    spawned.map_err(|e| SandboxError::process("clone of the sandboxed command", e))
}

fn init_setup(launch: &Launch<'_>, sock: &OwnedFd) -> Result<(), SandboxError> {
    let plan = launch.plan;
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| SandboxError::process("PR_SET_PDEATHSIG", e))?;
    // If the caller died before the prctl above, nobody would ever kill us: its socket end tells.
    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) if fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLHUP)) => {
            return Err(SandboxError::ParentGone)
        }
        Ok(_) => {}
        Err(e) => return Err(SandboxError::process("poll", e)),
    }
    nix::sys::prctl::set_dumpable(false).map_err(|e| SandboxError::process("PR_SET_DUMPABLE", e))?;

    let mut keep = plan.preserve_fds.clone();
    keep.push(sock.as_raw_fd());
    keep.extend(launch.tty);
    sys::close_fds_except(&keep).map_err(|errno| SandboxError::CloseFds { errno })?;

    let mut flags = CloneFlags::CLONE_NEWNS;
    flags.set(CloneFlags::CLONE_NEWNET, plan.new_net);
    flags.set(CloneFlags::CLONE_NEWUTS, plan.new_uts);
    flags.set(CloneFlags::CLONE_NEWIPC, plan.new_ipc);
    flags.set(CloneFlags::CLONE_NEWCGROUP, plan.new_cgroup);
    unshare(flags).map_err(|errno| SandboxError::Namespaces { errno, hint: hints::mount_hint(errno) })?;
    // Init and everything it starts leave the caller's session keyring behind (init's own
    // processes, including the command, inherit the new one).
    sys::join_new_session_keyring()
        .map_err(|errno| SandboxError::SessionKeyring { errno, hint: hints::keyring_hint(errno) })?;
    if let (true, Some(name)) = (plan.new_uts, &plan.hostname) {
        nix::unistd::sethostname(name).map_err(|errno| SandboxError::Hostname {
            hostname: name.clone(),
            errno,
            hint: super::hints::hostname_hint(errno),
        })?;
    }
    if plan.new_net {
        sys::loopback_up().map_err(|errno| SandboxError::Loopback { errno })?;
    }
    if launch.new_session {
        // A new session without a controlling terminal: nothing inside can inject input into the
        // caller's terminal (TIOCSTI) or be hit by its job-control signals.
        nix::unistd::setsid().map_err(|e| SandboxError::process("setsid", e))?;
    }
    mounts::build_root(plan, &mut mounts::Kernel)
}

/// The command process: finish confining itself, then exec (or run the probe). Never returns:
/// it shares init's memory until `execve`, so it must not unwind into init's frames either.
fn command_main(launch: &Launch<'_>, sock: RawFd) -> ! {
    let plan = launch.plan;
    let err = match confine(plan, launch.tty) {
        Err(err) => err,
        Ok(()) => match launch.payload {
            Payload::Exec => exec(plan, &launch.old_mask),
            Payload::Probe(probe) => {
                let _ = nix::unistd::close(sock);
                let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&launch.old_mask), None);
                let code = probe();
                let _ = std::io::stdout().flush();
                let _ = std::io::stderr().flush();
                // SAFETY: ends the command process without running atexit handlers, which would
                // act on the memory it shares with init.
                unsafe { libc::_exit(code) }
            }
        },
    };
    // SAFETY: `sock` is this process's copy of init's socket, open until exec or exit.
    send_report(unsafe { &BorrowedFd::borrow_raw(sock) }, &err);
    // SAFETY: as above.
    unsafe { libc::_exit(err.exit_code()) }
}

fn confine(plan: &Plan, tty: Option<RawFd>) -> Result<(), SandboxError> {
    if let Some(slave) = tty {
        // Leader of the pty's session, so an interactive shell gets job control on it.
        pty::attach(slave)?;
    }
    nix::unistd::chdir(&plan.cwd).map_err(|errno| SandboxError::Cwd { dir: plan.cwd.display().to_string(), errno })?;
    for &(resource, soft, hard) in &plan.rlimits {
        nix::sys::resource::setrlimit(resource, soft, hard)
            .map_err(|errno| SandboxError::Rlimit { resource: format!("{resource:?}"), errno })?;
    }
    nix::sys::stat::umask(Mode::from_bits_truncate(plan.umask as libc::mode_t));
    // Ignored signals survive execve: start the command from the defaults (Rust ignores SIGPIPE).
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
        // SAFETY: installing SIG_DFL registers no Rust code as a handler.
        let _ = unsafe { sigaction(sig, &default) };
    }
    drop_capabilities()?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| SandboxError::process("PR_SET_NO_NEW_PRIVS", e))?;
    // Last, so that nothing ovm itself does above runs under the filter.
    seccomp::install()
}

fn drop_capabilities() -> Result<(), SandboxError> {
    let err = |set: &str| {
        let set = set.to_string();
        move |e: caps::errors::CapsError| SandboxError::Capabilities { set, reason: e.to_string() }
    };
    // Bounding first: dropping from it needs CAP_SETPCAP, which goes with the permitted set.
    sys::drop_bounding_set()
        .map_err(|e| SandboxError::Capabilities { set: "bounding".into(), reason: e.to_string() })?;
    caps::clear(None, caps::CapSet::Ambient).map_err(err("ambient"))?;
    caps::clear(None, caps::CapSet::Inheritable).map_err(err("inheritable"))?;
    caps::clear(None, caps::CapSet::Permitted).map_err(err("permitted and effective"))?;
    Ok(())
}

/// Exec the command, searching the spec's PATH like execvp; returns only on failure.
fn exec(plan: &Plan, old_mask: &SigSet) -> SandboxError {
    let program = plan.program();
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(old_mask), None);
    let Some(first) = plan.args.first() else {
        return SandboxError::InvalidSpec("process.args is empty".into());
    };
    let failure = |errno| match errno {
        Errno::ENOENT | Errno::ENOTDIR => SandboxError::ExecNotFound { program: program.clone() },
        errno => SandboxError::Exec { program: program.clone(), errno },
    };
    if first.as_bytes().contains(&b'/') {
        return match nix::unistd::execve(first, &plan.args, &plan.env) {
            Ok(never) => match never {},
            Err(errno) => failure(errno),
        };
    }
    let mut denied = None;
    for dir in plan.search_path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let Ok(candidate) = std::ffi::CString::new(format!("{dir}/{}", first.to_string_lossy())) else { continue };
        match nix::unistd::execve(&candidate, &plan.args, &plan.env) {
            Err(Errno::ENOENT | Errno::ENOTDIR) => {}
            Err(Errno::EACCES) => denied = Some(Errno::EACCES),
            Err(errno) => return failure(errno),
            Ok(never) => match never {},
        }
    }
    failure(denied.unwrap_or(Errno::ENOENT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::SandboxBuilder;

    #[test]
    fn multi_threaded_callers_are_refused_before_anything_happens() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || rx.recv().ok());
        let spec = SandboxBuilder::new(["/bin/true"]).build().unwrap();
        let err = run(&spec, &Settings::default()).unwrap_err();
        tx.send(()).unwrap();
        other.join().unwrap();
        assert!(matches!(err, SandboxError::MultiThreaded { threads } if threads >= 2), "{err}");
        assert!(err.to_string().contains("sandbox::command()"), "{err}");
    }

    #[test]
    fn command_reexecutes_ovm_with_the_spec() {
        let spec = SandboxBuilder::new(["/bin/true"]).preserve_fds(&[7]).build().unwrap();
        let cmd = command_with_exe(Path::new("/opt/ovm"), &spec).unwrap();
        assert_eq!(cmd.get_program(), "/opt/ovm");
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args[..2], [EXEC_SUBCOMMAND, spec_fd::SPEC_FD_OPTION]);
        assert_eq!(args.len(), 3, "{args:?}");
        let fd: RawFd = args[2].parse().unwrap();
        // SAFETY: `fd` is the memfd `cmd` owns, open while `cmd` lives; it is only duplicated.
        let copy = nix::fcntl::fcntl(unsafe { BorrowedFd::borrow_raw(fd) }, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3));
        let back = spec_fd::read(copy.unwrap()).unwrap();
        assert_eq!(back, spec);
    }

    /// Attack: the spec on the command line was readable by every user (`ps`, /proc/PID/cmdline),
    /// environment and scripts included, and a script over 128 KiB failed with E2BIG.
    #[test]
    fn the_spec_is_not_on_the_command_line() {
        let script = format!("# {}\ntrue", "x".repeat(200 * 1024));
        let spec = SandboxBuilder::new(["/bin/sh", "-c", &script]).env("API_TOKEN", "hunter2-secret").build().unwrap();
        let cmd = command_with_exe(Path::new("/opt/ovm"), &spec).unwrap();
        let argv: usize = cmd.get_args().map(|a| a.len()).sum();
        assert!(argv < 64, "the command line carries {argv} bytes");
        assert!(!cmd.get_args().any(|a| a.to_string_lossy().contains("hunter2")));
    }
}

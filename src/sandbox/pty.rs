//! A terminal of the sandbox's own (`--tty`, `ovm shell`): a new pseudo-terminal whose slave end is
//! the command's stdin, stdout, stderr and controlling terminal, and whose master end the caller
//! relays to and from its own terminal — what `docker run -t` and `machinectl shell` do.
//!
//! Handing the caller's terminal itself to the sandbox would let anything inside push input into
//! the caller's shell (`ioctl(TIOCSTI)`) once the sandbox ends, or read what the user types later.
//! With a pty of its own, whatever the sandbox injects lands in its own input queue. Job control
//! works inside: the command leads the pty's session, and Ctrl-C/Ctrl-Z are turned into signals by
//! the pty's line discipline, inside, because the caller's terminal is in raw mode and passes the
//! bytes through. The caller copies the window size at the start and on every SIGWINCH, restores
//! its terminal on every way out (the forwarded signals are taken synchronously, never by a
//! handler that would skip the restore), and drains what the sandbox wrote before returning.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

use super::error::SandboxError;

/// The two ends of a new pty, the slave set up like the caller's terminal.
pub(crate) struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Open a pty whose slave has `caller`'s terminal settings and window size.
pub(crate) fn open(caller: BorrowedFd<'_>) -> Result<Pty, SandboxError> {
    let err = SandboxError::terminal;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| err("opening /dev/ptmx", e))?;
    nix::pty::grantpt(&master).map_err(|e| err("grantpt", e))?;
    nix::pty::unlockpt(&master).map_err(|e| err("unlockpt", e))?;
    // SAFETY: the PtyMaster's descriptor is moved into the OwnedFd, which closes it from now on.
    let master = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(master)) };
    // TIOCGPTPEER opens the slave from the master itself: no path under /dev/pts to look up,
    // which another process could have swapped in between.
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes integer open flags and returns a new descriptor we own.
    let slave = Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER as _, flags) })
        .map_err(|e| err("opening the pty's slave (TIOCGPTPEER)", e))?;
    // SAFETY: the ioctl returned a fresh descriptor that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    // The user's erase and interrupt characters, and the flags of their terminal, inside too.
    let settings = tcgetattr(caller).map_err(|e| err("reading the terminal's settings", e))?;
    tcsetattr(&slave, SetArg::TCSANOW, &settings).map_err(|e| err("setting up the pty", e))?;
    copy_window_size(caller, master.as_fd()).map_err(|e| err("copying the window size", e))?;
    let flags = fcntl(&master, FcntlArg::F_GETFL).map_err(|e| err("F_GETFL", e))?;
    fcntl(&master, FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK))
        .map_err(|e| err("F_SETFL O_NONBLOCK", e))?;
    Ok(Pty { master, slave })
}

fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: winsize is plain old data; all-zero is a valid value.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills `size`, which outlives the call.
    Errno::result(unsafe { libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut size) })?;
    // SAFETY: TIOCSWINSZ reads `size`; on a master it also signals SIGWINCH to the slave's foreground.
    Errno::result(unsafe { libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &size) }).map(drop)
}

/// In the command process: make the slave its stdin, stdout, stderr and controlling terminal, in a
/// session of its own (so it leads the pty's job control). Async-signal-safe calls only: the
/// command shares init's memory until `execve`.
pub(crate) fn attach(slave: RawFd) -> Result<(), SandboxError> {
    let err = SandboxError::terminal;
    nix::unistd::setsid().map_err(|e| err("setsid", e))?;
    // SAFETY: TIOCSCTTY takes an integer (0: do not steal a terminal another session holds).
    Errno::result(unsafe { libc::ioctl(slave, libc::TIOCSCTTY as _, 0) })
        .map_err(|e| err("making the pty the controlling terminal (TIOCSCTTY)", e))?;
    for target in 0..=2 {
        // SAFETY: dup2 only replaces descriptors 0..2 of this process (its own table: no CLONE_FILES).
        Errno::result(unsafe { libc::dup2(slave, target) }).map_err(|e| err("dup2 of the pty", e))?;
    }
    if slave > 2 {
        // SAFETY: the slave's original descriptor is ours and no longer needed (0..2 are copies).
        unsafe { libc::close(slave) };
    }
    Ok(())
}

/// The caller's side while the sandbox runs: its terminal in raw mode, the bytes relayed.
pub(crate) struct Relay {
    master: OwnedFd,
    /// The caller's terminal (its stdin) and its settings before raw mode, restored on drop.
    input: RawFd,
    saved: Termios,
    output: RawFd,
    signals: SignalFd,
    /// Typed bytes the pty did not take yet (its input queue was full).
    pending: Vec<u8>,
    input_open: bool,
    master_open: bool,
    output_open: bool,
}

impl Relay {
    /// Start relaying between stdin/stdout and `master`; `forwarded` (already blocked) are the
    /// signals [`wait`](Self::wait) reports. SIGWINCH is blocked too and handled here.
    pub(crate) fn start(master: OwnedFd, forwarded: &SigSet) -> Result<Relay, SandboxError> {
        let err = SandboxError::terminal;
        let mut set = *forwarded;
        set.add(Signal::SIGWINCH);
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(|e| err("blocking SIGWINCH", e))?;
        let signals = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| err("signalfd", e))?;
        let input = std::io::stdin().as_raw_fd();
        // SAFETY: stdin stays open for the life of the process.
        let tty = unsafe { BorrowedFd::borrow_raw(input) };
        let saved = tcgetattr(tty).map_err(|e| err("reading the terminal's settings", e))?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(tty, SetArg::TCSADRAIN, &raw).map_err(|e| err("raw mode", e))?;
        Ok(Relay {
            master,
            input,
            saved,
            output: std::io::stdout().as_raw_fd(),
            signals,
            pending: Vec::new(),
            input_open: true,
            master_open: true,
            output_open: true,
        })
    }

    /// Relay until `sock` is readable or a forwarded signal arrives; that signal is returned
    /// (`None` for SIGCHLD and for the socket), SIGWINCH is handled here.
    pub(crate) fn wait(&mut self, sock: BorrowedFd<'_>) -> Option<Signal> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            // SAFETY: both descriptors stay open while `fds` exists (stdin; our master).
            let input = unsafe { BorrowedFd::borrow_raw(self.input) };
            let mut master_events = PollFlags::empty();
            if self.master_open {
                master_events |= PollFlags::POLLIN;
                if !self.pending.is_empty() {
                    master_events |= PollFlags::POLLOUT;
                }
            }
            let input_events =
                if self.input_open && self.pending.is_empty() { PollFlags::POLLIN } else { PollFlags::empty() };
            let mut fds = [
                PollFd::new(sock, PollFlags::POLLIN),
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.master.as_fd(), master_events),
                PollFd::new(input, input_events),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                // Nothing sensible left to wait on: let the caller look at the socket.
                Err(_) => return None,
            }
            let ready = |i: usize| fds[i].revents().unwrap_or(PollFlags::empty());
            let (sock_ready, sig_ready, master_ready, input_ready) = (ready(0), ready(1), ready(2), ready(3));
            // Signals first: a resize the user made before typing a line reaches the pty before it.
            let mut wake = !sock_ready.is_empty();
            let mut forward = None;
            if sig_ready.contains(PollFlags::POLLIN) {
                while let Ok(Some(info)) = self.signals.read_signal() {
                    match Signal::try_from(info.ssi_signo as i32) {
                        Ok(Signal::SIGWINCH) => {
                            let _ = copy_window_size(input, self.master.as_fd());
                        }
                        Ok(Signal::SIGCHLD) | Err(_) => wake = true,
                        Ok(sig) => {
                            forward = Some(sig);
                            break;
                        }
                    }
                }
            }
            if master_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                self.pump_output(&mut buf);
            }
            if master_ready.contains(PollFlags::POLLOUT) {
                self.flush_pending();
            }
            if input_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                match nix::unistd::read(input, &mut buf) {
                    Ok(0) | Err(Errno::EIO) | Err(Errno::EBADF) => self.input_open = false,
                    Ok(n) => {
                        self.pending.extend_from_slice(&buf[..n]);
                        self.flush_pending();
                    }
                    Err(_) => {}
                }
            }
            if forward.is_some() || wake {
                return forward;
            }
        }
    }

    /// Copy what the sandbox wrote to the pty to the caller's stdout.
    fn pump_output(&mut self, buf: &mut [u8]) {
        loop {
            match nix::unistd::read(&self.master, buf) {
                Ok(0) | Err(Errno::EIO) => {
                    // Every slave descriptor is closed: the sandbox is done with its terminal.
                    self.master_open = false;
                    return;
                }
                Ok(n) => self.write_output(&buf[..n]),
                Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }

    fn write_output(&mut self, mut bytes: &[u8]) {
        // SAFETY: stdout stays open for the life of the process.
        let out = unsafe { BorrowedFd::borrow_raw(self.output) };
        while self.output_open && !bytes.is_empty() {
            match nix::unistd::write(out, bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    let _ = poll(&mut [PollFd::new(out, PollFlags::POLLOUT)], PollTimeout::NONE);
                }
                // The caller's terminal is gone: keep draining the pty so the sandbox never blocks.
                Err(_) => self.output_open = false,
            }
        }
    }

    fn flush_pending(&mut self) {
        while !self.pending.is_empty() {
            match nix::unistd::write(&self.master, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.pending.clear();
                    return;
                }
            }
        }
    }

    /// Once the sandbox is over: copy the rest of its output (no slave is open any more, so the
    /// master gives what is buffered, then EIO).
    pub(crate) fn finish(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        if self.master_open {
            self.pump_output(&mut buf);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // SAFETY: stdin stays open for the life of the process.
        let tty = unsafe { BorrowedFd::borrow_raw(self.input) };
        let _ = tcsetattr(tty, SetArg::TCSADRAIN, &self.saved);
    }
}

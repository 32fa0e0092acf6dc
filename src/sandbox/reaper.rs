//! Pid 1 of the sandbox: forward signals, reap every zombie, exit with the command's status.
//!
//! Pid 1 of a pid namespace inherits every orphan inside it and is immune to signals it has no
//! handler for, so the command itself must not be pid 1: a build's orphaned grandchildren would stay
//! zombies and `kill -TERM 1` from inside would do nothing. The init process keeps the forwarded
//! signals and SIGCHLD blocked and takes them with `sigwait`, so there is no handler and no race
//! between "child exited" and "wait for the next signal". When the command exits, init exits with
//! its status (128+N for signal N), after killing and reaping whatever is left in the namespace.

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::error::EXIT_SETUP_FAILED;

/// The shell convention for a process's status: its exit code, or 128+N when signal N killed it.
pub(crate) fn status_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Run as pid 1 until `main` exits; returns its status. `signals` (already blocked) holds SIGCHLD
/// and the signals to forward; a forwarded signal goes to every process of the sandbox, as a
/// terminal's Ctrl-C reaches a whole foreground job.
pub(crate) fn reap(main: Pid, signals: &SigSet) -> i32 {
    loop {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) if status.pid() == Some(main) => {
                    if let Some(code) = status_code(status) {
                        return code;
                    }
                }
                Ok(_) | Err(Errno::EINTR) => {}
                // No children at all, yet `main` was never seen exiting: nothing sensible to report.
                Err(_) => return EXIT_SETUP_FAILED,
            }
        }
        match signals.wait() {
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(sig) => {
                // -1: every process in the namespace except pid 1 itself.
                let _ = kill(Pid::from_raw(-1), sig);
            }
        }
    }
}

/// Kill and reap whatever is left in the sandbox (orphans of the command), so that nothing of it
/// runs once init has reported the status. Init is pid 1: every process of the namespace is its
/// descendant and orphans are re-parented to it, so having no child at all means nothing is left.
pub(crate) fn kill_remaining() {
    if let Err(Errno::ECHILD) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        return;
    }
    // -1 from pid 1: every process of the namespace but init.
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_shell_convention() {
        let pid = Pid::from_raw(7);
        assert_eq!(status_code(WaitStatus::Exited(pid, 42)), Some(42));
        assert_eq!(status_code(WaitStatus::Signaled(pid, Signal::SIGTERM, false)), Some(143));
        assert_eq!(status_code(WaitStatus::Signaled(pid, Signal::SIGKILL, true)), Some(137));
        assert_eq!(status_code(WaitStatus::StillAlive), None);
    }
}

//! A program on a new pseudo-terminal as its controlling terminal, the way a terminal emulator
//! starts a shell: the test reads what the terminal shows, types into it, resizes it, and waits
//! for conditions on the screen (with a generous upper bound) rather than for fixed times.
//! Shared by the sandbox terminal tests and the end-to-end tests (`ovm shell`, `ovm boot`).
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bound for anything to show up on the screen (a loaded 2-core CI machine).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Terminal {
    child: Child,
    master: std::fs::File,
    screen: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// `major:minor` of the terminal's slave, as the probe's `stdin tty:` line prints it.
    pub rdev: String,
}

impl Terminal {
    pub fn spawn(mut cmd: Command) -> Terminal {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let slave: OwnedFd = pty.slave;
        let st = nix::sys::stat::fstat(&slave).expect("fstat pty");
        let rdev = format!("{}:{}", libc::major(st.st_rdev), libc::minor(st.st_rdev));
        cmd.stdin(Stdio::from(slave.try_clone().expect("dup pty")))
            .stdout(Stdio::from(slave.try_clone().expect("dup pty")))
            .stderr(Stdio::from(slave));
        // SAFETY: between fork and exec the child only calls setsid and ioctl, both
        // async-signal-safe, on its own descriptor 0 (the pty slave set up above).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?} on a pty: {e}"));
        // Our copies of the slave go with `cmd`: the reader sees EIO once the program is done.
        drop(cmd);
        let master = std::fs::File::from(pty.master);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let (mut r, s) = (master.try_clone().expect("dup master"), Arc::clone(&screen));
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock().expect("screen").extend_from_slice(&buf[..n]);
            }
        });
        Terminal { child, master, screen, reader: Some(reader), rdev }
    }

    /// The master end: termios calls on it act on the terminal the program sees.
    pub fn master(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.master)
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().expect("screen")).into_owned()
    }

    /// Waits until the screen shows `what` after byte offset `from`; returns the offset after it.
    pub fn expect(&self, what: &str, from: usize) -> usize {
        self.expect_within(what, from, PATIENCE)
    }

    /// [`Terminal::expect`] with another upper bound (a boot under TCG, a cold build).
    pub fn expect_within(&self, what: &str, from: usize, patience: Duration) -> usize {
        let deadline = Instant::now() + patience;
        loop {
            {
                let s = self.screen.lock().expect("screen");
                if let Some(i) =
                    s.get(from..).and_then(|tail| tail.windows(what.len()).position(|w| w == what.as_bytes()))
                {
                    return from + i + what.len();
                }
            }
            assert!(Instant::now() < deadline, "the terminal never showed `{what}`; it shows:\n{}", self.screen());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Bytes as the user's keyboard sends them (`\x03` is Ctrl-C, `\x1a` Ctrl-Z).
    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("typing into the terminal");
    }

    pub fn type_line(&mut self, line: &str) {
        self.send(format!("{line}\n").as_bytes());
    }

    /// Resize the terminal, as a terminal emulator does: the kernel sends SIGWINCH to the program.
    pub fn resize(&self, rows: u16, cols: u16) {
        let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads `size`, which outlives the call.
        let ret = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(ret, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// Waits for the program to exit and for everything it wrote; its status code.
    pub fn wait(&mut self) -> Option<i32> {
        self.wait_within(PATIENCE)
    }

    /// [`Terminal::wait`] with another upper bound.
    pub fn wait_within(&mut self, patience: Duration) -> Option<i32> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                // The reader ends on EIO once nothing holds the terminal open any more: the
                // program and whatever it started are gone, and their last output is read.
                while self.reader.as_ref().is_some_and(|r| !r.is_finished()) {
                    assert!(Instant::now() < deadline, "the terminal is still held open:\n{}", self.screen());
                    std::thread::sleep(Duration::from_millis(20));
                }
                return st.code();
            }
            assert!(
                Instant::now() < deadline,
                "the program on the terminal did not exit; it shows:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! One ovm at a time per project tree. Two builds interleaving stamps and staging dirs would
//! corrupt each other, and the toolchain and build tools are shared by every architecture, so the
//! lock covers the whole project rather than one `states/ARCH`.
//!
//! `flock(2)` on `states/.lock`: the kernel drops it when the holder dies, even by SIGKILL, so a
//! crashed ovm never leaves a stale lock behind. The holder writes its pid and command line into the
//! file so a waiting ovm can say who it waits for.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open lock file {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("flock({path}): {errno}")]
    Flock { path: PathBuf, errno: Errno },
    #[error("another ovm is working on this project ({holder}); wait for it, or run without --no-wait to queue")]
    Busy { holder: String },
}

/// Held for as long as the value lives.
#[derive(Debug)]
pub struct ProjectLock {
    _lock: Flock<File>,
}

pub enum Wait {
    Block,
    NoWait,
}

impl ProjectLock {
    /// Takes the lock at `path`; with `Wait::Block`, `on_wait` is told once who holds it.
    pub fn acquire(path: &Path, wait: Wait, on_wait: impl FnOnce(&str)) -> Result<ProjectLock, LockError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|source| LockError::Open { path: path.to_path_buf(), source })?;
        }
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|source| LockError::Open { path: path.to_path_buf(), source })
        };
        let mut lock = match Flock::lock(open()?, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((file, Errno::EWOULDBLOCK)) => {
                let holder = read_holder(file);
                match wait {
                    Wait::NoWait => return Err(LockError::Busy { holder }),
                    Wait::Block => {
                        on_wait(&holder);
                        blocking_lock(path, open()?)?
                    }
                }
            }
            Err((_, errno)) => return Err(LockError::Flock { path: path.to_path_buf(), errno }),
        };
        // Best effort: the lock itself is what matters; the text only helps the next waiter.
        let _ = write_holder(&mut lock);
        Ok(ProjectLock { _lock: lock })
    }
}

fn blocking_lock(path: &Path, file: File) -> Result<Flock<File>, LockError> {
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(l) => return Ok(l),
            Err((f, Errno::EINTR)) => {
                file = f;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((_, errno)) => return Err(LockError::Flock { path: path.to_path_buf(), errno }),
        }
    }
}

fn read_holder(mut file: File) -> String {
    let mut s = String::new();
    let _ = file.read_to_string(&mut s);
    let s = s.trim();
    if s.is_empty() {
        "holder unknown".to_string()
    } else {
        s.to_string()
    }
}

fn write_holder(file: &mut File) -> io::Result<()> {
    let cmd: Vec<String> = std::env::args().collect();
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "pid {}: {}", std::process::id(), cmd.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_names_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("states/.lock");
        let first = ProjectLock::acquire(&p, Wait::NoWait, |_| {}).unwrap();
        let err = ProjectLock::acquire(&p, Wait::NoWait, |_| {}).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        drop(first);
        ProjectLock::acquire(&p, Wait::NoWait, |_| {}).unwrap();
    }

    #[test]
    fn a_waiter_gets_the_lock_when_the_holder_lets_go() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".lock");
        let first = ProjectLock::acquire(&p, Wait::NoWait, |_| {}).unwrap();
        let p2 = p.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let l = ProjectLock::acquire(&p2, Wait::Block, |holder| tx.send(holder.to_string()).unwrap());
            l.is_ok()
        });
        let holder = rx.recv().unwrap();
        assert!(holder.starts_with("pid "), "{holder}");
        drop(first);
        assert!(waiter.join().unwrap());
    }
}

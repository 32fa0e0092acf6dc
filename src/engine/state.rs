//! The host-side state of a build domain (`states/ARCH/`): one stamp per finished task, the
//! `await` marker of a failed task, and a `running` marker per package while one of its tasks runs.
//!
//! Every file here is written to a temporary name in the same directory and renamed into place, so a
//! SIGKILL at any instant leaves either the old or the new content, never a torn file. A stamp is
//! written only after its task's outputs are complete; a `running` marker that survives a run means
//! that package's work dir is dirty and must be discarded (the old shell project's known bug was
//! re-running on top of a half-extracted tree).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::signature::Inputs;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is corrupt ({source}); delete it or run `ovm clean`")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("cannot remove {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
}

/// What a finished task leaves behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub signature: String,
    pub inputs: Inputs,
    /// For tasks with a product (the `package` task): the hash of what was committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    pub duration_ms: u64,
}

/// `await` (named after the shell project ovm descends from): which task failed last and where its log is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Await {
    pub package: String,
    pub task: String,
    pub log: PathBuf,
}

/// `states/<domain>/`.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

const AWAIT_FILE: &str = "await";

impl StateDir {
    pub fn new(dir: PathBuf) -> StateDir {
        StateDir { dir }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn ensure(&self) -> Result<(), StateError> {
        fs::create_dir_all(&self.dir).map_err(|source| StateError::CreateDir { path: self.dir.clone(), source })
    }

    fn stamp_path(&self, pkg: &str, task: &str) -> PathBuf {
        self.dir.join(format!("{pkg}.{task}"))
    }

    fn running_path(&self, pkg: &str) -> PathBuf {
        self.dir.join(format!("{pkg}.running"))
    }

    pub fn stamp(&self, pkg: &str, task: &str) -> Result<Option<Stamp>, StateError> {
        read_json(&self.stamp_path(pkg, task))
    }

    pub fn write_stamp(&self, pkg: &str, task: &str, stamp: &Stamp) -> Result<(), StateError> {
        self.ensure()?;
        write_json(&self.stamp_path(pkg, task), stamp)
    }

    pub fn remove_stamp(&self, pkg: &str, task: &str) -> Result<(), StateError> {
        remove_if_exists(&self.stamp_path(pkg, task))
    }

    /// Marks `pkg` as having `task` under way; see the module comment.
    pub fn set_running(&self, pkg: &str, task: &str) -> Result<(), StateError> {
        self.ensure()?;
        write_atomic(&self.running_path(pkg), task.as_bytes())
    }

    pub fn running(&self, pkg: &str) -> Result<Option<String>, StateError> {
        let path = self.running_path(pkg);
        match fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Read { path, source }),
        }
    }

    pub fn clear_running(&self, pkg: &str) -> Result<(), StateError> {
        remove_if_exists(&self.running_path(pkg))
    }

    pub fn awaiting(&self) -> Result<Option<Await>, StateError> {
        read_json(&self.dir.join(AWAIT_FILE))
    }

    pub fn set_await(&self, a: &Await) -> Result<(), StateError> {
        self.ensure()?;
        write_json(&self.dir.join(AWAIT_FILE), a)
    }

    pub fn clear_await(&self) -> Result<(), StateError> {
        remove_if_exists(&self.dir.join(AWAIT_FILE))
    }

    /// Forgets every stamp and marker of `pkg`.
    pub fn forget(&self, pkg: &str) -> Result<(), StateError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(StateError::Read { path: self.dir.clone(), source }),
        };
        let prefix = format!("{pkg}.");
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(task) = name.strip_prefix(&prefix) {
                // `pkg.task` only: a package called `foo` must not take `foo.bar.compile` with it.
                if !task.contains('.') {
                    remove_if_exists(&entry.path())?;
                }
            }
        }
        if let Some(a) = self.awaiting()? {
            if a.package == pkg {
                self.clear_await()?;
            }
        }
        Ok(())
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::Read { path: path.to_path_buf(), source }),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|source| StateError::Corrupt { path: path.to_path_buf(), source })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| StateError::Write { path: path.to_path_buf(), source: io::Error::other(e) })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// The prefix of [`write_atomic`]'s temporary files.
const TEMP_PREFIX: &str = ".tmp-";

/// Removes what killed runs left half-made: [`write_atomic`] temporaries in `states/*/` and in the
/// work dirs `work/*/*/`, and `work/*/.PKG.sstate` restores. A kill lands in one thread, but the
/// scheduler's other threads may be between creating such a file and renaming it; nobody would
/// ever remove it. Called with the project lock held, so no other ovm is writing them. Returns the
/// paths removed.
pub fn remove_stale_temporaries(root: &Path) -> Result<Vec<PathBuf>, StateError> {
    let mut removed = Vec::new();
    let subdirs = |dir: &Path| -> Vec<PathBuf> {
        fs::read_dir(dir)
            .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_dir() && !p.is_symlink()).collect())
            .unwrap_or_default()
    };
    let mut dirs = subdirs(&root.join("states"));
    dirs.extend(subdirs(&root.join(OUTPUT_STAT_DIR)));
    for domain in subdirs(&root.join("work")) {
        dirs.extend(subdirs(&domain));
        dirs.push(domain);
    }
    for dir in dirs {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for entry in rd.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            if name.starts_with(TEMP_PREFIX) && entry.file_type().is_ok_and(|t| t.is_file()) {
                remove_if_exists(&path)?;
                removed.push(path);
            } else if name.starts_with('.') && name.ends_with(".sstate") {
                super::tree::remove_all(&path)
                    .map_err(|e| StateError::Remove { path: path.clone(), source: io::Error::other(e.to_string()) })?;
                removed.push(path);
            }
        }
    }
    Ok(removed)
}

/// Where the engine notes the metadata fingerprint of each staged output that last checked out
/// (`.cache/output-stat/DOMAIN/PKG`, see `package`): a cache beside the state, swept like it.
pub const OUTPUT_STAT_DIR: &str = ".cache/output-stat";

/// Writes `bytes` to `path` via a temporary file in the same directory, fsynced, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let err = |source| StateError::Write { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

fn remove_if_exists(path: &Path) -> Result<(), StateError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StateError::Remove { path: path.to_path_buf(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(sig: &str) -> Stamp {
        Stamp { signature: sig.into(), inputs: Inputs::new(), output: None, duration_ms: 1 }
    }

    #[test]
    fn temporaries_of_killed_runs_are_swept_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for dir in ["states/x86_64", "work/x86_64/hello/src", "work/x86_64/.bye.sstate/usr"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for f in ["states/x86_64/.tmp-a1", "states/x86_64/hello.compile", "work/x86_64/hello/.tmp-b2"] {
            fs::write(root.join(f), "x").unwrap();
        }
        fs::write(root.join("work/x86_64/hello/src/.tmp-upstream"), "x").unwrap();
        let mut removed = remove_stale_temporaries(root).unwrap();
        removed.sort();
        let want: Vec<PathBuf> = ["states/x86_64/.tmp-a1", "work/x86_64/.bye.sstate", "work/x86_64/hello/.tmp-b2"]
            .iter()
            .map(|r| root.join(r))
            .collect();
        assert_eq!(removed, want);
        assert!(root.join("states/x86_64/hello.compile").exists());
        assert!(root.join("work/x86_64/hello/src/.tmp-upstream").exists(), "a source tree's own files are not ours");
    }

    #[test]
    fn stamps_round_trip_and_forget_is_per_package() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path().join("x86_64"));
        assert_eq!(s.stamp("foo", "compile").unwrap(), None);
        s.write_stamp("foo", "compile", &stamp("a")).unwrap();
        s.write_stamp("foo.bar", "compile", &stamp("b")).unwrap();
        s.set_running("foo", "install").unwrap();
        assert_eq!(s.stamp("foo", "compile").unwrap(), Some(stamp("a")));
        assert_eq!(s.running("foo").unwrap().as_deref(), Some("install"));
        s.forget("foo").unwrap();
        assert_eq!(s.stamp("foo", "compile").unwrap(), None);
        assert_eq!(s.running("foo").unwrap(), None);
        assert_eq!(s.stamp("foo.bar", "compile").unwrap(), Some(stamp("b")));
    }

    #[test]
    fn await_marker_is_set_and_cleared() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path().to_path_buf());
        let a = Await { package: "p".into(), task: "compile".into(), log: "logs/x/p/compile.log".into() };
        s.set_await(&a).unwrap();
        assert_eq!(s.awaiting().unwrap(), Some(a));
        s.forget("p").unwrap();
        assert_eq!(s.awaiting().unwrap(), None);
    }

    #[test]
    fn a_corrupt_stamp_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path().to_path_buf());
        fs::write(d.path().join("p.compile"), b"{not json").unwrap();
        let msg = s.stamp("p", "compile").unwrap_err().to_string();
        assert!(msg.contains("p.compile") && msg.contains("corrupt"), "{msg}");
    }

    #[test]
    fn atomic_write_leaves_no_temporaries() {
        let d = tempfile::tempdir().unwrap();
        write_atomic(&d.path().join("f"), b"1").unwrap();
        write_atomic(&d.path().join("f"), b"2").unwrap();
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
        assert_eq!(fs::read(d.path().join("f")).unwrap(), b"2");
    }
}

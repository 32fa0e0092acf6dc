//! The host-side state of a build domain (`states/D/`, paths from `crate::layout`): one stamp per
//! finished task, the `await` marker of a failed task, and a `running` marker per package while one
//! of its tasks runs.
//!
//! Every file here is written to a temporary name in the same directory and renamed into place, so a
//! SIGKILL at any instant leaves either the old or the new content, never a torn file. A stamp is
//! written only after its task's outputs are complete; a `running` marker that survives a run means
//! that package's work dir is dirty and must be discarded (a task rerun on top of a half-extracted
//! or half-built tree builds from a mix of old and new files).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::layout::{Domain, Layout, TaskId, TaskName};
use crate::signature::Inputs;
use crate::tree::write_atomic;

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
    /// What the task produced, for the tasks that produce something the next run needs.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_output")]
    pub output: Option<StampOutput>,
    pub duration_ms: u64,
}

impl Stamp {
    /// The sha256 of the bytes a fetch task settled on, one per source, if this is its stamp.
    pub fn fetched(&self) -> Option<&[String]> {
        match &self.output {
            Some(StampOutput::Fetched { sha256 }) => Some(sha256),
            _ => None,
        }
    }

    /// The stamp of a task that ran on `inputs` for `elapsed` and produced `output`: the only
    /// place a stamp is made, so its signature is always the one of the inputs it records.
    pub fn new(inputs: Inputs, output: Option<StampOutput>, elapsed: Duration) -> Stamp {
        Stamp { signature: inputs.signature(), inputs, output, duration_ms: elapsed.as_millis() as u64 }
    }

    /// The output hash a `package` stamp recorded.
    pub fn staged_hash(&self) -> Option<&str> {
        match &self.output {
            Some(StampOutput::Staged { hash }) => Some(hash),
            _ => None,
        }
    }
}

/// A task's product, as its stamp records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StampOutput {
    /// `fetch`: the sha256 actually fetched per source (an alternative's, when it stood in).
    Fetched { sha256: Vec<String> },
    /// `package`: the hash of the committed output (a toolchain's: its own signature).
    Staged { hash: String },
    /// The image's `pack`: what was written, to tell whether it is still there unchanged.
    Image { path: PathBuf, manifest: PathBuf, size: u64, sha256: String },
}

/// An output this ovm cannot read (a stamp of an earlier version, or a damaged field) reads as
/// none: the task's product is then unknown, which makes it stale, never wrong.
fn lenient_output<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<StampOutput>, D::Error> {
    let raw = Option::<serde_json::Value>::deserialize(d)?;
    Ok(raw.and_then(|v| serde_json::from_value(v).ok()))
}

/// `await`: which task failed last and where its log is; the next run resumes there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Await {
    pub package: String,
    pub task: TaskName,
    pub log: PathBuf,
}

/// The state of one domain, `states/D/`.
#[derive(Debug, Clone)]
pub struct StateDir {
    layout: Layout,
    domain: Domain,
}

impl StateDir {
    pub fn new(layout: &Layout, domain: Domain) -> StateDir {
        StateDir { layout: layout.clone(), domain }
    }

    pub fn path(&self) -> PathBuf {
        self.layout.states(self.domain)
    }

    fn ensure(path: &Path) -> Result<(), StateError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|source| StateError::CreateDir { path: dir.to_path_buf(), source })
    }

    fn id(&self, pkg: &str, task: &TaskName) -> TaskId {
        TaskId { domain: self.domain, package: pkg.into(), task: task.clone() }
    }

    pub fn stamp(&self, pkg: &str, task: &TaskName) -> Result<Option<Stamp>, StateError> {
        read_json(&self.layout.stamp(&self.id(pkg, task)))
    }

    pub fn write_stamp(&self, pkg: &str, task: &TaskName, stamp: &Stamp) -> Result<(), StateError> {
        let path = self.layout.stamp(&self.id(pkg, task));
        Self::ensure(&path)?;
        write_json(&path, stamp)
    }

    pub fn remove_stamp(&self, pkg: &str, task: &TaskName) -> Result<(), StateError> {
        remove_if_exists(&self.layout.stamp(&self.id(pkg, task)))
    }

    /// The output hash recorded by `pkg`'s `package` stamp, if it has one.
    pub fn staged_hash(&self, pkg: &str) -> Option<String> {
        self.stamp(pkg, &TaskName::package()).ok().flatten()?.staged_hash().map(str::to_string)
    }

    /// Marks `pkg` as having `task` under way; see the module comment.
    pub fn set_running(&self, pkg: &str, task: &TaskName) -> Result<(), StateError> {
        let path = self.layout.running_marker(self.domain, pkg);
        Self::ensure(&path)?;
        write_atomic(&path, task.as_str().as_bytes()).map_err(|source| StateError::Write { path, source })
    }

    pub fn running(&self, pkg: &str) -> Result<Option<String>, StateError> {
        let path = self.layout.running_marker(self.domain, pkg);
        match fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Read { path, source }),
        }
    }

    pub fn clear_running(&self, pkg: &str) -> Result<(), StateError> {
        remove_if_exists(&self.layout.running_marker(self.domain, pkg))
    }

    pub fn awaiting(&self) -> Result<Option<Await>, StateError> {
        read_json(&self.layout.await_marker(self.domain))
    }

    pub fn set_await(&self, a: &Await) -> Result<(), StateError> {
        let path = self.layout.await_marker(self.domain);
        Self::ensure(&path)?;
        write_json(&path, a)
    }

    pub fn clear_await(&self) -> Result<(), StateError> {
        remove_if_exists(&self.layout.await_marker(self.domain))
    }

    /// Whether `pkg`'s work dir was left dirty: a task of it was under way when ovm stopped (its
    /// running marker survived) or failed (`await` names it). Unreadable state counts as dirty.
    pub fn work_dir_dirty(&self, pkg: &str) -> bool {
        let awaited = match self.awaiting() {
            Ok(a) => a.is_some_and(|a| a.package == pkg),
            Err(_) => true,
        };
        !matches!(self.running(pkg), Ok(None)) || awaited
    }

    /// Clears `await` if it names `pkg` (which just finished).
    pub fn clear_await_of(&self, pkg: &str) {
        if self.awaiting().ok().flatten().is_some_and(|a| a.package == pkg) {
            let _ = self.clear_await();
        }
    }

    /// Forgets every stamp and marker of `pkg`.
    pub fn forget(&self, pkg: &str) -> Result<(), StateError> {
        let dir = self.path();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(StateError::Read { path: dir, source }),
        };
        let prefix = Layout::stamp_prefix(pkg);
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
        self.clear_running(pkg)?;
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
    write_atomic(path, &bytes).map_err(|source| StateError::Write { path: path.to_path_buf(), source })
}

/// Removes what killed runs left half-made: [`write_atomic`] temporaries in `states/*/` (and their
/// `running/`) and in the work dirs `work/*/*/`, and `work/*/.PKG.sstate` restores. A kill lands in
/// one thread, but the scheduler's other threads may be between creating such a file and renaming
/// it; nobody would ever remove it. Called with the project lock held, so no other ovm is writing
/// them. Returns the paths removed.
pub fn remove_stale_temporaries(layout: &Layout) -> Result<Vec<PathBuf>, StateError> {
    let mut removed = Vec::new();
    let subdirs = |dir: &Path| -> Vec<PathBuf> {
        fs::read_dir(dir)
            .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_dir() && !p.is_symlink()).collect())
            .unwrap_or_default()
    };
    let mut dirs = Vec::new();
    for states in subdirs(&layout.states_root()) {
        dirs.extend(subdirs(&states));
        dirs.push(states);
    }
    dirs.extend(subdirs(&layout.output_stat_root()));
    for domain in subdirs(&layout.work_root()) {
        dirs.extend(subdirs(&domain));
        dirs.push(domain);
    }
    for dir in dirs {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for entry in rd.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            if name.starts_with(crate::tree::TEMP_PREFIX) && entry.file_type().is_ok_and(|t| t.is_file()) {
                remove_if_exists(&path)?;
                removed.push(path);
            } else if name.starts_with('.') && name.ends_with(".sstate") {
                crate::tree::remove_all(&path)
                    .map_err(|e| StateError::Remove { path: path.clone(), source: io::Error::other(e.to_string()) })?;
                removed.push(path);
            }
        }
    }
    Ok(removed)
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

    fn states(root: &Path) -> StateDir {
        StateDir::new(&Layout::new(root.to_path_buf()), Domain::Target(crate::arch::Arch::X86_64))
    }

    fn t(name: &'static str) -> TaskName {
        TaskName::builtin(name)
    }

    #[test]
    fn temporaries_of_killed_runs_are_swept_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for dir in ["states/x86_64/running", "work/x86_64/hello/src", "work/x86_64/.bye.sstate/usr"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for f in [
            "states/x86_64/.tmp-a1",
            "states/x86_64/running/.tmp-c3",
            "states/x86_64/hello.compile",
            "work/x86_64/hello/.tmp-b2",
        ] {
            fs::write(root.join(f), "x").unwrap();
        }
        fs::write(root.join("work/x86_64/hello/src/.tmp-upstream"), "x").unwrap();
        let mut removed = remove_stale_temporaries(&Layout::new(root.to_path_buf())).unwrap();
        removed.sort();
        let want: Vec<PathBuf> = [
            "states/x86_64/.tmp-a1",
            "states/x86_64/running/.tmp-c3",
            "work/x86_64/.bye.sstate",
            "work/x86_64/hello/.tmp-b2",
        ]
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
        let s = states(d.path());
        assert_eq!(s.stamp("foo", &t("compile")).unwrap(), None);
        s.write_stamp("foo", &t("compile"), &stamp("a")).unwrap();
        s.write_stamp("foo.bar", &t("compile"), &stamp("b")).unwrap();
        s.set_running("foo", &t("install")).unwrap();
        assert_eq!(s.stamp("foo", &t("compile")).unwrap(), Some(stamp("a")));
        assert_eq!(s.running("foo").unwrap().as_deref(), Some("install"));
        s.forget("foo").unwrap();
        assert_eq!(s.stamp("foo", &t("compile")).unwrap(), None);
        assert_eq!(s.running("foo").unwrap(), None);
        assert_eq!(s.stamp("foo.bar", &t("compile")).unwrap(), Some(stamp("b")));
    }

    /// The collision the layout rules out: with stamps and markers in one namespace, a step called
    /// `running` had the marker's file as its stamp, and clearing the marker deleted the stamp, so
    /// the package was stale on every run. Validation refuses the name too; this shows the state
    /// itself can no longer mix them up.
    #[test]
    fn a_task_called_running_and_the_running_marker_are_different_files() {
        let d = tempfile::tempdir().unwrap();
        let s = states(d.path());
        s.write_stamp("foo", &t("running"), &stamp("r")).unwrap();
        s.set_running("foo", &t("compile")).unwrap();
        s.clear_running("foo").unwrap();
        assert_eq!(s.stamp("foo", &t("running")).unwrap(), Some(stamp("r")), "clearing the marker took the stamp");
        assert_eq!(s.running("foo").unwrap(), None);
        // And a package called `running`: its marker is not the directory of markers.
        s.set_running("running", &t("compile")).unwrap();
        s.set_running("other", &t("compile")).unwrap();
        assert_eq!(s.running("other").unwrap().as_deref(), Some("compile"));
        assert!(!s.work_dir_dirty("foo") && s.work_dir_dirty("running"));
    }

    #[test]
    fn an_output_this_version_cannot_read_makes_the_task_stale_not_an_error() {
        let d = tempfile::tempdir().unwrap();
        let s = states(d.path());
        fs::create_dir_all(s.path()).unwrap();
        fs::write(s.path().join("p.package"), br#"{"signature":"x","inputs":{},"output":"abc,def","duration_ms":1}"#)
            .unwrap();
        assert_eq!(s.stamp("p", &t("package")).unwrap().map(|st| st.output), Some(None));
        let staged = Stamp::new(Inputs::new(), Some(StampOutput::Staged { hash: "h".into() }), Duration::ZERO);
        s.write_stamp("p", &t("package"), &staged).unwrap();
        assert_eq!(s.staged_hash("p").as_deref(), Some("h"));
    }

    #[test]
    fn await_marker_is_set_and_cleared() {
        let d = tempfile::tempdir().unwrap();
        let s = states(d.path());
        let a = Await { package: "p".into(), task: t("compile"), log: "logs/x/p/compile.log".into() };
        s.set_await(&a).unwrap();
        assert_eq!(s.awaiting().unwrap(), Some(a));
        assert!(s.work_dir_dirty("p") && !s.work_dir_dirty("q"));
        s.forget("p").unwrap();
        assert_eq!(s.awaiting().unwrap(), None);
    }

    #[test]
    fn a_corrupt_stamp_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let s = states(d.path());
        fs::create_dir_all(s.path()).unwrap();
        fs::write(s.path().join("p.compile"), b"{not json").unwrap();
        let msg = s.stamp("p", &t("compile")).unwrap_err().to_string();
        assert!(msg.contains("p.compile") && msg.contains("corrupt"), "{msg}");
    }
}

//! The shared-state cache, after BitBake's sstate: a package's committed output, filed under the
//! signature of its `package` task. That signature covers every input (sources, patches, config,
//! toolchain, dependencies' outputs, engine version) and names no host path, so two project trees
//! — another checkout, a CI job, a `ovm clean`ed tree — that would build the same bytes get them
//! from here instead. An entry is trusted only if its content still hashes to the output recorded
//! with it: a cache that was edited behind ovm's back is ignored, never installed.
//!
//! Layout: `DIR/<sig[..2]>/<sig>/{tree/, output}`; entries are made in a temporary directory and
//! renamed into place, so a half-written entry is never seen.

use std::fs;
use std::path::{Path, PathBuf};

use crate::tree::{self, TreeError};

#[derive(Debug, Clone)]
pub struct Sstate {
    dir: PathBuf,
}

impl Sstate {
    pub fn new(dir: PathBuf) -> Sstate {
        Sstate { dir }
    }

    fn entry(&self, sig: &str) -> PathBuf {
        self.dir.join(&sig[..sig.len().min(2)]).join(sig)
    }

    /// The cached tree of `sig` and its recorded output hash, if present.
    pub fn lookup(&self, sig: &str) -> Option<(PathBuf, String)> {
        let e = self.entry(sig);
        let output = fs::read_to_string(e.join("output")).ok()?;
        let tree = e.join("tree");
        tree.is_dir().then(|| (tree, output.trim().to_string()))
    }

    /// Files `staged` (already committed, hashing to `output`) under `sig`. Hard links: no copy.
    pub fn store(&self, sig: &str, staged: &Path, output: &str) -> Result<(), TreeError> {
        let entry = self.entry(sig);
        if entry.exists() {
            return Ok(());
        }
        let parent = entry.parent().unwrap_or(&self.dir).to_path_buf();
        fs::create_dir_all(&parent).map_err(|source| TreeError::Write { path: parent.clone(), source })?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&parent)
            .map_err(|source| TreeError::Write { path: parent.clone(), source })?;
        tree::compose(&[("staged".into(), staged.to_path_buf())], &tmp.path().join("tree"))?;
        fs::write(tmp.path().join("output"), format!("{output}\n"))
            .map_err(|source| TreeError::Write { path: tmp.path().join("output"), source })?;
        let tmp = tmp.keep();
        if let Err(source) = fs::rename(&tmp, &entry) {
            // Another ovm filed the same signature first: theirs is as good as ours.
            let _ = tree::remove_all(&tmp);
            if !entry.exists() {
                return Err(TreeError::Write { path: entry, source });
            }
        }
        Ok(())
    }

    /// Drops a bad entry so it is not offered again.
    pub fn evict(&self, sig: &str) {
        let _ = tree::remove_all(&self.entry(sig));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_then_lookup_and_evict() {
        let d = tempfile::tempdir().unwrap();
        let staged = d.path().join("staged");
        fs::create_dir_all(staged.join("usr/bin")).unwrap();
        fs::write(staged.join("usr/bin/x"), "1").unwrap();
        let out = tree::hash_tree(&staged).unwrap();
        let s = Sstate::new(d.path().join("sstate"));
        assert!(s.lookup("abcdef").is_none());
        s.store("abcdef", &staged, &out).unwrap();
        s.store("abcdef", &staged, &out).unwrap();
        let (t, o) = s.lookup("abcdef").unwrap();
        assert_eq!(o, out);
        assert_eq!(tree::hash_tree(&t).unwrap(), out);
        s.evict("abcdef");
        assert!(s.lookup("abcdef").is_none());
    }
}

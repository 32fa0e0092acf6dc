//! Every entry below a directory, by relative path in byte order, links not followed: the one
//! walk the package step, its QA checks and the feed share (each reads the same staged trees).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One entry: its path relative to the root (`usr/bin/x`), its path, its own metadata.
#[derive(Debug)]
pub struct Entry {
    pub rel: String,
    pub path: PathBuf,
    pub meta: fs::Metadata,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct ListError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// Every entry below `root` (not `root` itself), directories included, sorted by relative path.
pub fn entries(root: &Path) -> Result<Vec<Entry>, ListError> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), root.to_path_buf())];
    while let Some((rel_dir, dir)) = stack.pop() {
        let err = |source| ListError { path: dir.clone(), source };
        for e in fs::read_dir(&dir).map_err(err)? {
            let e = e.map_err(err)?;
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if rel_dir.is_empty() { name } else { format!("{rel_dir}/{name}") };
            let path = e.path();
            let meta = fs::symlink_metadata(&path).map_err(|source| ListError { path: path.clone(), source })?;
            if meta.is_dir() {
                stack.push((rel.clone(), path.clone()));
            }
            out.push(Entry { rel, path, meta });
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_sorted_relative_and_links_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("b/c")).unwrap();
        fs::write(d.path().join("b/c/f"), "x").unwrap();
        fs::write(d.path().join("a"), "y").unwrap();
        std::os::unix::fs::symlink("/", d.path().join("l")).unwrap();
        let got: Vec<String> = entries(d.path()).unwrap().into_iter().map(|e| e.rel).collect();
        assert_eq!(got, ["a", "b", "b/c", "b/c/f", "l"]);
        assert!(entries(&d.path().join("missing")).is_err());
    }
}

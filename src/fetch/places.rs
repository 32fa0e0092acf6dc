//! Where a file may be found: mirrors (looked up by file name) and explicit URLs, normalised into
//! the two kinds of place the fetcher knows how to read from.

use std::path::{Path, PathBuf};

/// A configured mirror or backup: a base under which files are looked up by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    /// `http(s)://host/dir` → `http(s)://host/dir/FILE`.
    Http(reqwest::Url),
    /// `file:///dir` or a plain directory → `/dir/FILE`.
    Dir(PathBuf),
}

/// One concrete place to read one file from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Http(reqwest::Url),
    Local(PathBuf),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Http(u) => write!(f, "{u}"),
            Place::Local(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("mirror `{spec}`: {reason}")]
pub struct BadMirror {
    pub spec: String,
    pub reason: String,
}

impl Mirror {
    /// Parses a mirror as written in `OVM_MIRRORS` or `config/ovm.toml`; relative directories are
    /// relative to `root` (the project).
    pub fn parse(spec: &str, root: &Path) -> Result<Mirror, BadMirror> {
        let bad = |reason: String| BadMirror { spec: spec.to_string(), reason };
        if spec.starts_with("http://") || spec.starts_with("https://") {
            let mut url = reqwest::Url::parse(spec).map_err(|e| bad(e.to_string()))?;
            // Url::join replaces the last segment unless the base ends with a slash.
            if !url.path().ends_with('/') {
                let path = format!("{}/", url.path());
                url.set_path(&path);
            }
            return Ok(Mirror::Http(url));
        }
        if spec.starts_with("file:") {
            let url = reqwest::Url::parse(spec).map_err(|e| bad(e.to_string()))?;
            let path = url.to_file_path().map_err(|()| bad("not a local file URL".into()))?;
            return Ok(Mirror::Dir(path));
        }
        if spec.contains("://") {
            return Err(bad("unsupported scheme (expected http://, https://, file:// or a directory)".into()));
        }
        Ok(Mirror::Dir(root.join(spec)))
    }

    /// Where `file` would be on this mirror.
    pub fn locate(&self, file: &str) -> Option<Place> {
        match self {
            Mirror::Http(base) => base.join(file).ok().map(Place::Http),
            Mirror::Dir(dir) => Some(Place::Local(dir.join(file))),
        }
    }
}

/// A recipe URL (already validated as http, https or file) as a place.
pub fn place_of_url(url: &str) -> Option<Place> {
    let parsed = reqwest::Url::parse(url).ok()?;
    match parsed.scheme() {
        "file" => parsed.to_file_path().ok().map(Place::Local),
        "http" | "https" => Some(Place::Http(parsed)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_look_files_up_by_name() {
        let root = Path::new("/proj");
        let m = Mirror::parse("https://example.org/pub/src", root).unwrap();
        assert_eq!(m.locate("a-1.tar.gz").unwrap().to_string(), "https://example.org/pub/src/a-1.tar.gz");
        let m = Mirror::parse("http://example.org/", root).unwrap();
        assert_eq!(m.locate("a.tgz").unwrap().to_string(), "http://example.org/a.tgz");
        assert_eq!(Mirror::parse("file:///srv/mirror", root).unwrap(), Mirror::Dir("/srv/mirror".into()));
        assert_eq!(Mirror::parse("mirror", root).unwrap(), Mirror::Dir("/proj/mirror".into()));
        assert_eq!(Mirror::parse("/abs", root).unwrap().locate("x").unwrap(), Place::Local("/abs/x".into()));
        assert!(Mirror::parse("ftp://example.org/", root).is_err());
    }
}

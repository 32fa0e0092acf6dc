//! Named images (OpenEmbedded's image recipes: IMAGE_INSTALL, PACKAGE_EXCLUDE, IMAGE_FEATURES,
//! ROOTFS_POSTPROCESS_COMMAND): `images/NAME.toml`, built by `ovm build ARCH --image NAME` from
//! the packages of the feed rather than from whole recipes.
//!
//! ```toml
//! description = "rescue system: the e2fs tools"
//! install = ["busybox", "e2fsprogs", "lz4"]  # packages: a recipe's name is its runtime package,
//!                                            # `zlib-dev`, `lz4-dbg` … its other parts
//! exclude = ["lz4-doc"]                      # never installed; a dependency on one is an error
//! debug = false                              # true: the -dbg package of each runtime package too
//! overlay = "overlays/rescue"                # merged last (default: [pack] overlay)
//! compress = "xz"                            # gzip | xz | zstd | none (default: [pack] compress)
//! tar = true                                 # also rootfs.tar.xz: the tree to unpack on a disk
//! postprocess = ["rm -f $ROOTFS/etc/motd"]   # each in the strict sandbox, the tree at $ROOTFS
//! ```
//!
//! This module reads and checks a definition; `engine::image` resolves it against the feed's
//! metadata and packs it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::project::{Compress, Project};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("no image named `{name}`: {} does not exist{}", path.display(), if known.is_empty() { String::new() } else { format!(" (images: {})", known.join(", ")) })]
    NotFound { name: String, path: PathBuf, known: Vec<String> },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    description: Option<String>,
    install: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    debug: bool,
    overlay: Option<PathBuf>,
    compress: Option<Compress>,
    #[serde(default)]
    tar: bool,
    #[serde(default)]
    postprocess: Vec<String>,
}

/// A checked image definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDef {
    pub name: String,
    pub description: Option<String>,
    /// Package names, as the feed has them.
    pub install: Vec<String>,
    pub exclude: Vec<String>,
    pub debug: bool,
    /// Absolute.
    pub overlay: Option<PathBuf>,
    pub compress: Option<Compress>,
    /// Also the tree as a tar archive (`rootfs.tar`, compressed as the image).
    pub tar: bool,
    pub postprocess: Vec<String>,
    pub path: PathBuf,
}

/// The images `images/` defines, by name.
pub fn names(project: &Project) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(project.layout().images_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".toml").map(String::from))
        .collect();
    out.sort();
    out
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

/// Reads and checks `images/NAME.toml`.
pub fn load(project: &Project, name: &str) -> Result<ImageDef, ImageError> {
    let path = project.layout().images_dir().join(format!("{name}.toml"));
    if !valid_name(name) || !path.is_file() {
        return Err(ImageError::NotFound { name: name.into(), path, known: names(project) });
    }
    let text = std::fs::read_to_string(&path).map_err(|source| ImageError::Read { path: path.clone(), source })?;
    parse(project.root(), name, &path, &text)
}

fn parse(root: &Path, name: &str, path: &Path, text: &str) -> Result<ImageDef, ImageError> {
    let invalid = |message: String| ImageError::Invalid { path: path.to_path_buf(), message };
    let raw: Raw = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    if raw.install.is_empty() {
        return Err(invalid("install: an image installs at least one package".into()));
    }
    for (field, list) in [("install", &raw.install), ("exclude", &raw.exclude)] {
        let mut seen = std::collections::BTreeSet::new();
        for p in list {
            if !valid_name(p) {
                return Err(invalid(format!("{field}: `{p}` is no package name")));
            }
            if !seen.insert(p) {
                return Err(invalid(format!("{field}: `{p}` is listed twice")));
            }
        }
    }
    if let Some(both) = raw.install.iter().find(|p| raw.exclude.contains(p)) {
        return Err(invalid(format!("`{both}` is both installed and excluded")));
    }
    if let Some(c) = raw.postprocess.iter().find(|c| c.trim().is_empty()) {
        return Err(invalid(format!("postprocess: an empty command ({c:?})")));
    }
    let overlay = match raw.overlay {
        Some(o) if o.is_absolute() || o.components().any(|c| matches!(c, std::path::Component::ParentDir)) => {
            return Err(invalid(format!(
                "overlay: {} must be a directory of the project (relative, no `..`)",
                o.display()
            )))
        }
        Some(o) => Some(root.join(o)),
        None => None,
    };
    Ok(ImageDef {
        name: name.into(),
        description: raw.description,
        install: raw.install,
        exclude: raw.exclude,
        debug: raw.debug,
        overlay,
        compress: raw.compress,
        tar: raw.tar,
        postprocess: raw.postprocess,
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<ImageDef, ImageError> {
        parse(Path::new("/p"), "rescue", Path::new("/p/images/rescue.toml"), text)
    }

    #[test]
    fn a_definition_parses_and_its_mistakes_are_named() {
        let d = parsed("install = [\"busybox\", \"lz4\"]\nexclude = [\"lz4-doc\"]\ndebug = true\noverlay = \"o\"\ncompress = \"xz\"\npostprocess = [\"true\"]\n").unwrap();
        assert_eq!(d.install, ["busybox", "lz4"]);
        assert_eq!(d.overlay, Some(PathBuf::from("/p/o")));
        assert_eq!(d.compress, Some(Compress::Xz));
        for (text, says) in [
            ("install = []\n", "at least one package"),
            ("install = [\"a\", \"a\"]\n", "listed twice"),
            ("install = [\"a\"]\nexclude = [\"a\"]\n", "both installed and excluded"),
            ("install = [\"A b\"]\n", "no package name"),
            ("install = [\"a\"]\noverlay = \"../x\"\n", "of the project"),
            ("install = [\"a\"]\npostprocess = [\" \"]\n", "empty command"),
            ("install = [\"a\"]\npackages = [\"b\"]\n", "unknown field"),
        ] {
            let e = parsed(text).unwrap_err().to_string();
            assert!(e.starts_with("/p/images/rescue.toml: ") && e.contains(says), "{text:?}: {e}");
        }
    }
}

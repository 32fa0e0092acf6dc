//! Applying a package's patch series to its unpacked source tree, all or nothing.
//!
//! # Why it is shaped like this
//! A half-patched tree is the worst state a build can be left in: the next attempt fails with
//! confusing "reversed patch" errors, or worse, builds something nobody wrote. So the whole series
//! is applied in memory first — each touched file is read once, every hunk of every patch applied
//! to that in-memory copy in order — and only when all of them applied are the results written:
//! each new content goes to a temporary file next to its target, and only when every temporary
//! file is written are they renamed over their targets (and deleted files removed). A failure
//! before that point removes the temporaries and leaves the tree exactly as it was.
//!
//! Hunk application is the `diffy` crate's: unified diffs (plain `diff -u`/quilt and `git diff`
//! output, several files per patch), each hunk looked for at its stated line first and then at
//! growing offsets before and after (like GNU patch without fuzz). Paths are taken with one
//! leading component stripped (`-p1`, the convention of quilt, git, OpenWrt and BitBake). A hunk
//! that does not apply is reported with the patch file, the target file, the hunk's number and
//! its `@@` header.
//!
//! Patches never write outside the tree and never through symlinks: paths with `..` or `/` at
//! the start are rejected, and a target that is (or lies below) a symlink is refused.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use diffy::patch_set::{FileMode, FileOperation, ParseOptions, PatchKind, PatchSet};

/// Path components stripped from the names in a patch (`patch -p1`).
pub const STRIP: usize = 1;

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("cannot read patch {}: {source}", patch.display())]
    Read { patch: PathBuf, source: io::Error },
    #[error("{}: not a usable unified diff: {message}", patch.display())]
    Parse { patch: PathBuf, message: String },
    #[error("{}: `{file}`: {reason}", patch.display())]
    UnsafePath { patch: PathBuf, file: String, reason: &'static str },
    #[error("{}: `{file}` does not exist in the source tree", patch.display())]
    Missing { patch: PathBuf, file: String },
    #[error("{}: creates `{file}`, which already exists", patch.display())]
    AlreadyExists { patch: PathBuf, file: String },
    #[error("{}: `{file}`: binary patches are not supported", patch.display())]
    Binary { patch: PathBuf, file: String },
    #[error("{}: hunk #{hunk} ({header}) of `{file}` does not apply", patch.display())]
    HunkFailed { patch: PathBuf, file: String, hunk: usize, header: String },
    #[error("{}: `{file}` does not apply: {message}", patch.display())]
    Failed { patch: PathBuf, file: String, message: String },
    #[error("cannot read {}: {source}", path.display())]
    ReadTree { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// One file's state in the in-memory image of the tree.
struct Image {
    /// `None`: deleted (or not existing).
    content: Option<Vec<u8>>,
    /// Permission bits to write the file with.
    mode: u32,
    /// Whether the series changed it (or created/deleted it).
    touched: bool,
}

/// Applies `patches`, in order, to the tree at `tree`. On error the tree is unchanged.
pub fn apply_series(tree: &Path, patches: &[PathBuf]) -> Result<(), PatchError> {
    let mut image: BTreeMap<PathBuf, Image> = BTreeMap::new();
    for patch in patches {
        apply_one(tree, patch, &mut image)?;
    }
    commit(tree, image)
}

fn apply_one(tree: &Path, patch: &Path, image: &mut BTreeMap<PathBuf, Image>) -> Result<(), PatchError> {
    let bytes = fs::read(patch).map_err(|source| PatchError::Read { patch: patch.into(), source })?;
    let opts = if bytes.starts_with(b"diff --git ") || contains(&bytes, b"\ndiff --git ") {
        ParseOptions::gitdiff()
    } else {
        ParseOptions::unidiff()
    };
    for file_patch in PatchSet::parse_bytes(&bytes, opts) {
        let file_patch = file_patch.map_err(|e| PatchError::Parse { patch: patch.into(), message: e.to_string() })?;
        // `-p1` would quietly turn `/etc/x` into `etc/x`; a patch naming absolute paths is broken.
        if let Some(abs) = op_paths(file_patch.operation()).into_iter().find(|p| p.starts_with(b"/")) {
            return Err(PatchError::UnsafePath {
                patch: patch.into(),
                file: String::from_utf8_lossy(abs).into_owned(),
                reason: "absolute path",
            });
        }
        let op = file_patch.operation().strip_prefix(STRIP);
        let new_mode = match file_patch.new_mode() {
            Some(FileMode::Executable) => Some(0o755),
            Some(_) => Some(0o644),
            None => None,
        };
        let text = match file_patch.patch() {
            PatchKind::Text(t) => t,
            PatchKind::Binary(_) => {
                let name = describe(&op);
                return Err(PatchError::Binary { patch: patch.into(), file: name });
            }
        };
        let apply = |base: &[u8], file: &str| -> Result<Vec<u8>, PatchError> {
            diffy::apply_bytes(base, text).map_err(|e| hunk_error(patch, file, text, &e))
        };
        match &op {
            FileOperation::Modify { original, modified } => {
                let orig = rel_path(patch, original)?;
                let modi = rel_path(patch, modified)?;
                // Like GNU patch: the name that exists in the tree wins (quilt's `a/` vs `b/`, or
                // `pkg.orig/` vs `pkg/` headers both strip to the same path anyway).
                let target = if load(tree, patch, image, &orig)?.content.is_some() { orig } else { modi };
                let name = target.display().to_string();
                let entry = load(tree, patch, image, &target)?;
                // `diff -N` writes creations and deletions with real names (and an epoch date)
                // instead of /dev/null: an absent file whose hunks all start from nothing is
                // created; a file whose hunks all leave nothing is deleted.
                let creates = text.hunks().iter().all(|h| h.old_range().is_empty());
                let deletes = text.hunks().iter().all(|h| h.new_range().is_empty());
                let base = match entry.content.as_deref() {
                    Some(base) => base,
                    None if creates => b"",
                    None => return Err(PatchError::Missing { patch: patch.into(), file: name }),
                };
                let result = apply(base, &name)?;
                entry.content = if deletes && result.is_empty() { None } else { Some(result) };
                entry.touched = true;
                if let Some(m) = new_mode {
                    entry.mode = m;
                }
            }
            FileOperation::Create(path) => {
                let target = rel_path(patch, path)?;
                let name = target.display().to_string();
                let entry = load(tree, patch, image, &target)?;
                if entry.content.is_some() {
                    return Err(PatchError::AlreadyExists { patch: patch.into(), file: name });
                }
                entry.content = Some(apply(b"", &name)?);
                entry.mode = new_mode.unwrap_or(0o644);
                entry.touched = true;
            }
            FileOperation::Delete(path) => {
                let target = rel_path(patch, path)?;
                let name = target.display().to_string();
                let entry = load(tree, patch, image, &target)?;
                let base = entry
                    .content
                    .as_deref()
                    .ok_or_else(|| PatchError::Missing { patch: patch.into(), file: name.clone() })?;
                let rest = apply(base, &name)?;
                if !rest.is_empty() {
                    return Err(PatchError::Failed {
                        patch: patch.into(),
                        file: name,
                        message: "deletes the file but its content differs from the patch's".into(),
                    });
                }
                entry.content = None;
                entry.touched = true;
            }
            FileOperation::Rename { from, to } | FileOperation::Copy { from, to } => {
                let from_rel = rel_path(patch, from)?;
                let to_rel = rel_path(patch, to)?;
                let from_name = from_rel.display().to_string();
                let source = load(tree, patch, image, &from_rel)?;
                let base = source
                    .content
                    .clone()
                    .ok_or_else(|| PatchError::Missing { patch: patch.into(), file: from_name.clone() })?;
                let mode = new_mode.unwrap_or(source.mode);
                if matches!(op, FileOperation::Rename { .. }) {
                    source.content = None;
                    source.touched = true;
                }
                let to_name = to_rel.display().to_string();
                let result = apply(&base, &to_name)?;
                let dest = load(tree, patch, image, &to_rel)?;
                if dest.content.is_some() {
                    return Err(PatchError::AlreadyExists { patch: patch.into(), file: to_name });
                }
                dest.content = Some(result);
                dest.mode = mode;
                dest.touched = true;
            }
        }
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn op_paths<'o>(op: &'o FileOperation<'_, [u8]>) -> Vec<&'o [u8]> {
    match op {
        FileOperation::Modify { original, modified } => vec![original, modified],
        FileOperation::Create(p) | FileOperation::Delete(p) => vec![p],
        FileOperation::Rename { from, to } | FileOperation::Copy { from, to } => vec![from, to],
    }
}

fn describe(op: &FileOperation<'_, [u8]>) -> String {
    let path = match op {
        FileOperation::Modify { modified, .. } => modified,
        FileOperation::Create(p) | FileOperation::Delete(p) => p,
        FileOperation::Rename { to, .. } | FileOperation::Copy { to, .. } => to,
    };
    String::from_utf8_lossy(path).into_owned()
}

/// diffy reports the failing hunk only through its message ("error applying hunk #N"); the number
/// is recovered from it to show the hunk's header too.
fn hunk_error(patch: &Path, file: &str, text: &diffy::Patch<'_, [u8]>, e: &diffy::ApplyError) -> PatchError {
    let message = e.to_string();
    let number = message.rsplit('#').next().and_then(|n| n.trim().parse::<usize>().ok());
    match number.and_then(|n| text.hunks().get(n.wrapping_sub(1)).map(|h| (n, h))) {
        Some((n, hunk)) => {
            let (old, new) = (hunk.old_range(), hunk.new_range());
            PatchError::HunkFailed {
                patch: patch.into(),
                file: file.to_string(),
                hunk: n,
                header: format!("@@ -{},{} +{},{} @@", old.start(), old.len(), new.start(), new.len()),
            }
        }
        None => PatchError::Failed { patch: patch.into(), file: file.to_string(), message },
    }
}

/// A patch's (already stripped) file name as a path inside the tree.
fn rel_path(patch: &Path, name: &[u8]) -> Result<PathBuf, PatchError> {
    let unsafe_path = |reason| PatchError::UnsafePath {
        patch: patch.into(),
        file: String::from_utf8_lossy(name).into_owned(),
        reason,
    };
    if name.is_empty() || name.contains(&0) {
        return Err(unsafe_path("empty or invalid file name"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(std::ffi::OsStr::from_bytes(name)).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_path("path contains `..`")),
            Component::RootDir | Component::Prefix(_) => return Err(unsafe_path("absolute path")),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(unsafe_path("empty file name"));
    }
    Ok(out)
}

/// The in-memory state of `rel`, read from the tree the first time it is touched.
fn load<'i>(
    tree: &Path,
    patch: &Path,
    image: &'i mut BTreeMap<PathBuf, Image>,
    rel: &Path,
) -> Result<&'i mut Image, PatchError> {
    if !image.contains_key(rel) {
        let mut prefix = tree.to_path_buf();
        let mut components = rel.components().peekable();
        let mut state = Image { content: None, mode: 0o644, touched: false };
        while let Some(c) = components.next() {
            prefix.push(c);
            match prefix.symlink_metadata() {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(PatchError::UnsafePath {
                        patch: patch.into(),
                        file: rel.display().to_string(),
                        reason: "is or lies below a symlink; ovm does not patch through symlinks",
                    });
                }
                Ok(m) if components.peek().is_none() => {
                    if !m.is_file() {
                        return Err(PatchError::UnsafePath {
                            patch: patch.into(),
                            file: rel.display().to_string(),
                            reason: "is not a regular file",
                        });
                    }
                    let content =
                        fs::read(&prefix).map_err(|source| PatchError::ReadTree { path: prefix.clone(), source })?;
                    state = Image { content: Some(content), mode: m.permissions().mode() & 0o7777, touched: false };
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(source) => return Err(PatchError::ReadTree { path: prefix, source }),
            }
        }
        image.insert(rel.to_path_buf(), state);
    }
    image.get_mut(rel).ok_or_else(|| PatchError::ReadTree {
        path: tree.join(rel),
        source: io::Error::other("lost track of a file being patched"),
    })
}

/// Writes the image: every new content into a temporary file next to its target first, then all
/// renames, then deletions. Until the first rename, a failure undoes everything.
fn commit(tree: &Path, image: BTreeMap<PathBuf, Image>) -> Result<(), PatchError> {
    let mut created_dirs: Vec<PathBuf> = Vec::new();
    let mut staged: Vec<(tempfile::TempPath, PathBuf)> = Vec::new();
    let mut deletions = Vec::new();
    let undo = |created_dirs: &[PathBuf]| {
        for d in created_dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    };
    for (rel, state) in image.into_iter().filter(|(_, s)| s.touched) {
        let target = tree.join(&rel);
        let Some(content) = state.content else {
            if target.symlink_metadata().is_ok() {
                deletions.push(target);
            }
            continue;
        };
        let result = (|| -> io::Result<tempfile::TempPath> {
            let parent = target.parent().unwrap_or(tree);
            let mut missing = Vec::new();
            let mut p = parent;
            while !p.exists() && p.starts_with(tree) {
                missing.push(p.to_path_buf());
                p = p.parent().unwrap_or(tree);
            }
            for d in missing.into_iter().rev() {
                fs::create_dir(&d)?;
                created_dirs.push(d);
            }
            let tmp = tempfile::Builder::new().prefix(".ovm-patch-").tempfile_in(parent)?;
            fs::write(tmp.path(), &content)?;
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(state.mode))?;
            Ok(tmp.into_temp_path())
        })();
        match result {
            Ok(tmp) => staged.push((tmp, target)),
            Err(source) => {
                drop(staged);
                undo(&created_dirs);
                return Err(PatchError::Write { path: target, source });
            }
        }
    }
    for (tmp, target) in staged {
        tmp.persist(&target).map_err(|e| PatchError::Write { path: target.clone(), source: e.error })?;
    }
    for target in deletions {
        fs::remove_file(&target).map_err(|source| PatchError::Write { path: target.clone(), source })?;
    }
    Ok(())
}

//! Directory trees the engine moves around: a package's committed output (`staging/ARCH/PKG`) and
//! the sysroot composed from a package's declared dependencies.
//!
//! * `hash_tree` is the *output signature* of a package: sha256 over every entry's relative path,
//!   type, executable bit, symlink target and content, in byte order of paths. Dependents' signatures
//!   use it, so a dependency rebuilt into identical bytes rebuilds nothing downstream (early cutoff),
//!   and a staged file corrupted after the fact is detected by re-hashing.
//! * `commit` replaces the staging dir by the freshly installed one with `renameat2(RENAME_EXCHANGE)`:
//!   at every instant the staging path holds either the complete old or the complete new output.
//! * `compose` builds a sysroot by hard-linking the dependencies' staged files into one tree; two
//!   dependencies providing different content at the same path is an error naming both.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{renameat_with, RenameFlags, CWD};
use sha2::{Digest, Sha256};

use crate::signature::hex;

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} is {what}: a package output holds only files, directories and symlinks")]
    FileType { path: PathBuf, what: &'static str },
    #[error("renameat2({from}, {to}, RENAME_EXCHANGE): {errno}")]
    Exchange { from: PathBuf, to: PathBuf, errno: nix::errno::Errno },
    #[error("sysroot conflict: `{path}` is provided by both `{first}` and `{second}` with different content")]
    Conflict { path: String, first: String, second: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File { exec: bool },
    Symlink(PathBuf),
}

fn kind_of(path: &Path, md: &fs::Metadata) -> Result<Kind, TreeError> {
    let ft = md.file_type();
    if ft.is_dir() {
        Ok(Kind::Dir)
    } else if ft.is_file() {
        Ok(Kind::File { exec: md.permissions().mode() & 0o111 != 0 })
    } else if ft.is_symlink() {
        let target = fs::read_link(path).map_err(|source| TreeError::Read { path: path.to_path_buf(), source })?;
        Ok(Kind::Symlink(target))
    } else {
        let what = crate::file_kind::described(ft);
        Err(TreeError::FileType { path: path.to_path_buf(), what })
    }
}

/// Every entry below `root` (not `root` itself), keyed by relative path, without following links.
fn walk(root: &Path) -> Result<BTreeMap<PathBuf, Kind>, TreeError> {
    Ok(walk_stat(root)?.into_iter().map(|(rel, (kind, _))| (rel, kind)).collect())
}

/// [`walk`], with each entry's metadata.
fn walk_stat(root: &Path) -> Result<BTreeMap<PathBuf, (Kind, fs::Metadata)>, TreeError> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let rd = fs::read_dir(&dir).map_err(|source| TreeError::Read { path: dir.clone(), source })?;
        for entry in rd {
            let entry = entry.map_err(|source| TreeError::Read { path: dir.clone(), source })?;
            let path = entry.path();
            let md = fs::symlink_metadata(&path).map_err(|source| TreeError::Read { path: path.clone(), source })?;
            let kind = kind_of(&path, &md)?;
            let r = rel.join(entry.file_name());
            if kind == Kind::Dir {
                stack.push(r.clone());
            }
            out.insert(r, (kind, md));
        }
    }
    Ok(out)
}

fn file_digest(path: &Path) -> Result<[u8; 32], TreeError> {
    crate::digest::sha256_file_raw(path).map_err(|source| TreeError::Read { path: path.to_path_buf(), source })
}

/// Checks that everything below `root` is a file, a directory or a symlink (what [`hash_tree`]
/// checks on its way), for outputs identified otherwise (the prebuilt toolchain).
pub fn check_types(root: &Path) -> Result<(), TreeError> {
    walk(root).map(drop)
}

/// The output signature of a tree; see the module comment. A missing tree hashes like an empty one
/// would not: it is an error, because a package's output must exist once committed.
pub fn hash_tree(root: &Path) -> Result<String, TreeError> {
    let mut h = Sha256::new();
    for (rel, kind) in walk(root)? {
        let name = rel.as_os_str().as_encoded_bytes();
        h.update((name.len() as u64).to_le_bytes());
        h.update(name);
        match kind {
            Kind::Dir => h.update(b"d"),
            Kind::File { exec } => {
                h.update(if exec { b"x" } else { b"f" });
                h.update(file_digest(&root.join(&rel))?);
            }
            Kind::Symlink(t) => {
                let t = t.as_os_str().as_encoded_bytes();
                h.update(b"l");
                h.update((t.len() as u64).to_le_bytes());
                h.update(t);
            }
        }
    }
    Ok(hex(&h.finalize()))
}

/// The modification time of every entry [`archive`] writes: the archive of a tree depends on its
/// content, names, types and modes alone, so two machines that staged the same output upload the
/// same bytes (2023-11-14, ovm's default SOURCE_DATE_EPOCH).
pub const ARCHIVE_MTIME: u64 = 1_700_000_000;

/// Writes `root` as a tar stream (GNU format, long names included): every entry in byte order of
/// its path, owned by 0:0, with its permission bits and [`ARCHIVE_MTIME`]; a hard-linked file is
/// written once per name, as content. Unpacked again (`crate::unpack`), it [`hash_tree`]s as
/// `root` did.
pub fn archive(root: &Path, out: impl io::Write) -> Result<(), TreeError> {
    archive_at(root, out, ARCHIVE_MTIME, Modes::AsStaged)
}

/// Which permission bits [`archive_at`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modes {
    /// The entries' own (what a restore must give back).
    AsStaged,
    /// [`normalised_mode`]: the umask and the user that built a tree then change nothing (a
    /// package feed).
    Normalised,
}

/// The permission bits an image gives an entry, whatever the umask and the user that made it:
/// directories 0755, files 0755 with any execute bit else 0644, symlinks 0777 (the pack and the
/// package feed both use it; [`hash_tree`] sees no more than the execute bit either).
pub fn normalised_mode(dir: bool, symlink: bool, raw: u32) -> u32 {
    match (dir, symlink) {
        (true, _) => 0o755,
        (_, true) => 0o777,
        _ if raw & 0o111 != 0 => 0o755,
        _ => 0o644,
    }
}

/// [`archive`] with every entry dated `mtime` (a package feed's SOURCE_DATE_EPOCH) and its modes
/// as `modes` says.
pub fn archive_at(root: &Path, out: impl io::Write, mtime: u64, modes: Modes) -> Result<(), TreeError> {
    let werr = |source| TreeError::Write { path: root.to_path_buf(), source };
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    let header = |mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_mode(mode & 0o777);
        h
    };
    for (rel, (kind, md)) in walk_stat(root)? {
        let raw = md.permissions().mode();
        let mode = match modes {
            Modes::AsStaged => raw,
            Modes::Normalised => normalised_mode(kind == Kind::Dir, matches!(kind, Kind::Symlink(_)), raw),
        };
        let mut h = header(mode);
        let path = root.join(&rel);
        match kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, &rel, io::empty()).map_err(werr)?;
            }
            Kind::File { .. } => {
                let f = fs::File::open(&path).map_err(|source| TreeError::Read { path: path.clone(), source })?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(md.len());
                tar.append_data(&mut h, &rel, f).map_err(werr)?;
            }
            Kind::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tar.append_link(&mut h, &rel, &target).map_err(werr)?;
            }
        }
    }
    let mut out = tar.into_inner().map_err(werr)?;
    io::Write::flush(&mut out).map_err(werr)
}

/// A fingerprint of a tree's metadata only: every entry's path, type, mode, size, inode, mtime and
/// ctime, without reading any content. It stands for [`hash_tree`] between two checks: a tree
/// whose fingerprint is unchanged still holds the bytes it was hashed with, because any write,
/// truncation, rename, chmod or replacement of an entry changes its ctime (which no user can set)
/// or its inode, and adding or removing an entry changes the listing. Costs one `lstat` per entry
/// (the gcc toolchain's 100 MB are ~2,000 entries), where hashing reads every byte.
pub fn stat_fingerprint(root: &Path) -> Result<String, TreeError> {
    let mut h = Sha256::new();
    for (rel, (kind, md)) in walk_stat(root)? {
        let name = rel.as_os_str().as_encoded_bytes();
        h.update((name.len() as u64).to_le_bytes());
        h.update(name);
        h.update(match kind {
            Kind::Dir => b"d",
            Kind::File { .. } => b"f",
            Kind::Symlink(_) => b"l",
        });
        for v in [md.mode() as i64, md.size() as i64, md.ino() as i64, md.dev() as i64] {
            h.update(v.to_le_bytes());
        }
        for v in [md.mtime(), md.mtime_nsec(), md.ctime(), md.ctime_nsec()] {
            h.update(v.to_le_bytes());
        }
    }
    Ok(hex(&h.finalize()))
}

/// Moves the complete tree `fresh` to `staged`, replacing what was there atomically. `fresh` is
/// consumed. Both must be on one filesystem (they are: both live in the project tree).
pub fn commit(fresh: &Path, staged: &Path) -> Result<(), TreeError> {
    commit_then(fresh, staged, || {})
}

/// [`commit`], calling `exchanged` at the instant `staged` holds the new tree (and, if there was
/// one, `fresh` the old): the fault-injection point between the exchange and the cleanup.
pub fn commit_then(fresh: &Path, staged: &Path, exchanged: impl FnOnce()) -> Result<(), TreeError> {
    if let Some(parent) = staged.parent() {
        fs::create_dir_all(parent).map_err(|source| TreeError::Write { path: parent.to_path_buf(), source })?;
    }
    match fs::symlink_metadata(staged) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::rename(fresh, staged).map_err(|source| TreeError::Write { path: staged.to_path_buf(), source })?;
            exchanged();
            Ok(())
        }
        Err(source) => Err(TreeError::Read { path: staged.to_path_buf(), source }),
        Ok(_) => {
            renameat_with(CWD, fresh, CWD, staged, RenameFlags::EXCHANGE).map_err(|errno| TreeError::Exchange {
                from: fresh.to_path_buf(),
                to: staged.to_path_buf(),
                errno: nix::errno::Errno::from_raw(errno.raw_os_error()),
            })?;
            exchanged();
            // `fresh` now holds the previous output; nothing refers to it any more.
            remove_all(fresh)
        }
    }
}

/// Clears the setuid and setgid bits of everything below `root` (symlinks are not followed);
/// returns the entries that had them. A build step runs as root in its user namespace, which maps
/// to the user running ovm — root, in CI — so a `chmod 4755` inside would leave a setuid-root
/// program in the project for any local user to run. The image never needs the bits from here:
/// the packer clears them anyway, and only the device table grants them.
pub fn clear_setid(root: &Path) -> Result<Vec<PathBuf>, TreeError> {
    let mut cleared = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(TreeError::Read { path: dir, source }),
        };
        for entry in rd {
            let entry = entry.map_err(|source| TreeError::Read { path: dir.clone(), source })?;
            let path = entry.path();
            let md = fs::symlink_metadata(&path).map_err(|source| TreeError::Read { path: path.clone(), source })?;
            if md.file_type().is_symlink() {
                continue;
            }
            let mode = md.permissions().mode();
            if mode & 0o6000 != 0 {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o1777))
                    .map_err(|source| TreeError::Write { path: path.clone(), source })?;
                cleared.push(path.clone());
            }
            if md.is_dir() {
                stack.push(path);
            }
        }
    }
    Ok(cleared)
}

/// `rm -rf` that tolerates a missing path and makes read-only dirs writable first (a build may
/// leave `chmod 555` directories behind).
pub fn remove_all(path: &Path) -> Result<(), TreeError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(TreeError::Read { path: path.to_path_buf(), source }),
        Ok(md) if !md.is_dir() => {
            return fs::remove_file(path).map_err(|source| TreeError::Write { path: path.to_path_buf(), source })
        }
        Ok(_) => {}
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            for (rel, kind) in walk(path)? {
                if kind == Kind::Dir {
                    let _ = fs::set_permissions(path.join(rel), fs::Permissions::from_mode(0o755));
                }
            }
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o755));
            fs::remove_dir_all(path).map_err(|source| TreeError::Write { path: path.to_path_buf(), source })
        }
        Err(source) => Err(TreeError::Write { path: path.to_path_buf(), source }),
    }
}

/// Builds `dest` (which must not exist) from `layers` (name, staged dir), hard-linking files so a
/// sysroot costs no copies. Identical content from two layers is accepted; different is a conflict.
pub fn compose(layers: &[(String, PathBuf)], dest: &Path) -> Result<(), TreeError> {
    fs::create_dir_all(dest).map_err(|source| TreeError::Write { path: dest.to_path_buf(), source })?;
    let mut owner: BTreeMap<PathBuf, (String, Kind)> = BTreeMap::new();
    for (name, root) in layers {
        for (rel, kind) in walk(root)? {
            let src = root.join(&rel);
            let dst = dest.join(&rel);
            if let Some((first, prev)) = owner.get(&rel) {
                let same = match (prev, &kind) {
                    (Kind::Dir, Kind::Dir) => true,
                    (Kind::Symlink(a), Kind::Symlink(b)) => a == b,
                    (Kind::File { .. }, Kind::File { .. }) => file_digest(&dst)? == file_digest(&src)?,
                    _ => false,
                };
                if !same {
                    return Err(TreeError::Conflict {
                        path: rel.display().to_string(),
                        first: first.clone(),
                        second: name.clone(),
                    });
                }
                continue;
            }
            let werr = |source| TreeError::Write { path: dst.clone(), source };
            match &kind {
                Kind::Dir => fs::create_dir_all(&dst).map_err(werr)?,
                Kind::Symlink(t) => std::os::unix::fs::symlink(t, &dst).map_err(werr)?,
                Kind::File { .. } => {
                    if let Err(e) = fs::hard_link(&src, &dst) {
                        // Cross-device or a filesystem without hard links: a copy is as good.
                        if e.raw_os_error() == Some(libc::EXDEV) || e.kind() == io::ErrorKind::PermissionDenied {
                            fs::copy(&src, &dst).map_err(werr)?;
                        } else {
                            return Err(werr(e));
                        }
                    }
                }
            }
            owner.insert(rel, (name.clone(), kind));
        }
    }
    Ok(())
}

/// Number of bytes and files below `root`, for summaries.
pub fn size_of(root: &Path) -> Result<(u64, u64), TreeError> {
    let mut bytes = 0;
    let mut files = 0;
    for (rel, kind) in walk(root)? {
        if let Kind::File { .. } = kind {
            let p = root.join(rel);
            let md = fs::symlink_metadata(&p).map_err(|source| TreeError::Read { path: p.clone(), source })?;
            bytes += md.size();
            files += 1;
        }
    }
    Ok((bytes, files))
}

/// The prefix of [`write_atomic`]'s temporary files (swept after a killed run).
pub const TEMP_PREFIX: &str = ".tmp-";

/// Writes `bytes` to `path` via a temporary file in the same directory, fsynced, then renamed: a
/// SIGKILL at any instant leaves the old content or the new, never a torn file. A file that was
/// there keeps its permission bits (a recipe's config file a person owns stays 0644, where the
/// temporary file alone would make it 0600); a new one is 0644 less the umask, as `fs::write`
/// would make it: an SBOM or a graph in output/ is read by whoever serves or reads output/.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mode = match fs::metadata(path) {
        Ok(md) => Some(md.permissions().mode() & 0o7777),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    // The mode is given to open(2), which applies the umask.
    let mut tmp =
        tempfile::Builder::new().prefix(TEMP_PREFIX).permissions(fs::Permissions::from_mode(0o644)).tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if let Some(mode) = mode {
        tmp.as_file().set_permissions(fs::Permissions::from_mode(mode))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_depends_on_content_alone_and_unpacks_to_the_same_hash() {
        let d = tempfile::tempdir().unwrap();
        let make = |name: &str, mtime: i64| {
            let t = d.path().join(name);
            fs::create_dir_all(t.join("usr/lib/empty")).unwrap();
            fs::create_dir_all(t.join("usr/bin")).unwrap();
            fs::write(t.join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
            fs::set_permissions(t.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
            let long = "n".repeat(120);
            fs::write(t.join("usr/lib").join(&long), "x").unwrap();
            fs::hard_link(t.join("usr/lib").join(&long), t.join("usr/lib/hard")).unwrap();
            std::os::unix::fs::symlink(format!("../lib/{long}"), t.join("usr/bin/link")).unwrap();
            let ts = rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec { tv_sec: mtime, tv_nsec: 0 },
                last_modification: rustix::fs::Timespec { tv_sec: mtime, tv_nsec: 0 },
            };
            rustix::fs::utimensat(CWD, t.join("usr/bin/tool"), &ts, rustix::fs::AtFlags::empty()).unwrap();
            t
        };
        let (a, b) = (make("a", 5), make("b", 99));
        let (mut ta, mut tb) = (Vec::new(), Vec::new());
        archive(&a, &mut ta).unwrap();
        archive(&b, &mut tb).unwrap();
        assert_eq!(ta, tb, "the same tree at other times is the same archive");
        let out = d.path().join("out");
        tar::Archive::new(ta.as_slice()).unpack(&out).unwrap();
        assert_eq!(hash_tree(&out).unwrap(), hash_tree(&a).unwrap());
    }

    #[test]
    fn write_atomic_keeps_the_files_permissions() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("busybox.config");
        fs::write(&f, "old\n").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o664)).unwrap();
        write_atomic(&f, b"new\n").unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "new\n");
        assert_eq!(fs::metadata(&f).unwrap().permissions().mode() & 0o7777, 0o664);
        let left: Vec<_> = fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["busybox.config"], "no temporary file is left");
    }

    #[test]
    fn write_atomic_makes_a_new_file_readable_by_others_unless_the_umask_says_no() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("sbom.spdx.json");
        write_atomic(&f, b"{}\n").unwrap();
        let mode = fs::metadata(&f).unwrap().permissions().mode() & 0o7777;
        // The umask (read without changing it: /proc/self/status) takes its bits off 0644.
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let umask = status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            .unwrap_or(0o022);
        assert_eq!(mode, 0o644 & !umask, "umask {umask:o}");
    }

    #[test]
    fn setid_bits_are_cleared_below_a_root_and_links_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        fs::write(&outside, "x").unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o4755)).unwrap();
        let root = d.path().join("root");
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::write(root.join("bin/su"), "x").unwrap();
        fs::set_permissions(root.join("bin/su"), fs::Permissions::from_mode(0o6755)).unwrap();
        fs::set_permissions(root.join("bin"), fs::Permissions::from_mode(0o2755)).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        assert_eq!(clear_setid(&root).unwrap().len(), 2);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!((mode(&root.join("bin/su")), mode(&root.join("bin"))), (0o755, 0o755));
        assert_eq!(mode(&outside), 0o4755);
        assert!(clear_setid(&d.path().join("missing")).unwrap().is_empty());
    }
    use std::os::unix::fs::symlink;

    fn tree(root: &Path, files: &[(&str, &str)]) {
        for (p, content) in files {
            let p = root.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
    }

    #[test]
    fn the_stat_fingerprint_sees_every_change_that_keeps_size_and_mtime() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        tree(&a, &[("usr/bin/x", "1"), ("usr/lib/y", "2")]);
        let fp = || stat_fingerprint(&a).unwrap();
        let first = fp();
        assert_eq!(fp(), first, "reading the tree changes nothing");
        let x = a.join("usr/bin/x");
        let mtime = fs::metadata(&x).unwrap().modified().unwrap();
        let put_back = || fs::File::options().write(true).open(&x).unwrap().set_modified(mtime).unwrap();
        // Same size, mtime put back: the ctime still moves — once the file system's clock (coarse,
        // a few ms a tick) has moved past x's ctime, which a freshly written probe shows.
        let ctime = |p: &Path| {
            let md = fs::metadata(p).unwrap();
            (md.ctime(), md.ctime_nsec())
        };
        let probe = d.path().join("clock-probe");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            fs::write(&probe, "").unwrap();
            if ctime(&probe) > ctime(&x) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the file system's clock did not move in 30 s");
            std::thread::yield_now();
        }
        fs::write(&x, "9").unwrap();
        put_back();
        let rewritten = fp();
        assert_ne!(rewritten, first);
        fs::set_permissions(&x, fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(fp(), rewritten);
        let chmodded = fp();
        fs::write(a.join("usr/lib/new"), "").unwrap();
        assert_ne!(fp(), chmodded);
        fs::remove_file(a.join("usr/lib/new")).unwrap();
        fs::remove_file(a.join("usr/lib/y")).unwrap();
        assert_ne!(fp(), chmodded);
    }

    #[test]
    fn hash_ignores_mtime_and_inode_but_sees_content_mode_and_links() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        tree(&a, &[("usr/bin/x", "1"), ("usr/lib/y", "2")]);
        symlink("x", a.join("usr/bin/z")).unwrap();
        let h1 = hash_tree(&a).unwrap();

        // same bytes, new inodes and mtimes
        let b = d.path().join("b");
        tree(&b, &[("usr/lib/y", "2"), ("usr/bin/x", "1")]);
        symlink("x", b.join("usr/bin/z")).unwrap();
        assert_eq!(hash_tree(&b).unwrap(), h1);

        fs::set_permissions(b.join("usr/bin/x"), fs::Permissions::from_mode(0o755)).unwrap();
        let h_exec = hash_tree(&b).unwrap();
        assert_ne!(h_exec, h1, "exec bit must count");

        fs::write(b.join("usr/lib/y"), "3").unwrap();
        assert_ne!(hash_tree(&b).unwrap(), h_exec, "content must count");

        fs::remove_file(a.join("usr/bin/z")).unwrap();
        symlink("y", a.join("usr/bin/z")).unwrap();
        assert_ne!(hash_tree(&a).unwrap(), h1, "link target must count");
    }

    #[test]
    fn commit_replaces_atomically_and_consumes_the_fresh_tree() {
        let d = tempfile::tempdir().unwrap();
        let staged = d.path().join("staging/x86_64/p");
        let fresh = d.path().join("work/dest");
        tree(&fresh, &[("a", "1")]);
        commit(&fresh, &staged).unwrap();
        assert_eq!(fs::read_to_string(staged.join("a")).unwrap(), "1");
        assert!(!fresh.exists());

        tree(&fresh, &[("b", "2")]);
        commit(&fresh, &staged).unwrap();
        assert!(!staged.join("a").exists());
        assert_eq!(fs::read_to_string(staged.join("b")).unwrap(), "2");
        assert!(!fresh.exists());
    }

    #[test]
    fn compose_merges_layers_and_names_both_sides_of_a_conflict() {
        let d = tempfile::tempdir().unwrap();
        let l1 = d.path().join("l1");
        let l2 = d.path().join("l2");
        tree(&l1, &[("usr/include/a.h", "a"), ("usr/lib/libz.a", "z")]);
        tree(&l2, &[("usr/include/b.h", "b"), ("usr/lib/libz.a", "z")]);
        let out = d.path().join("sysroot");
        compose(&[("zlib".into(), l1.clone()), ("other".into(), l2.clone())], &out).unwrap();
        assert!(out.join("usr/include/a.h").exists() && out.join("usr/include/b.h").exists());

        fs::write(l2.join("usr/lib/libz.a"), "different").unwrap();
        let out2 = d.path().join("sysroot2");
        let err = compose(&[("zlib".into(), l1), ("other".into(), l2)], &out2).unwrap_err().to_string();
        assert!(err.contains("usr/lib/libz.a") && err.contains("zlib") && err.contains("other"), "{err}");
    }

    #[test]
    fn remove_all_copes_with_read_only_dirs() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("t");
        tree(&t, &[("ro/f", "1")]);
        fs::set_permissions(t.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        remove_all(&t).unwrap();
        assert!(!t.exists());
        remove_all(&t).unwrap();
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

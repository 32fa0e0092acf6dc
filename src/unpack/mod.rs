//! Unpacking source archives (`.tar`, `.tar.gz`/`.tgz`, `.tar.xz`, `.tar.bz2`, `.tar.zst`, `.zip`/`.whl`)
//! into a package's source tree, safely.
//!
//! # Why it is shaped like this
//! Archives come from the network. Even verified by sha256, a recipe author may have pinned a
//! hostile or broken one, and ovm runs as root on CI: unpacking must never create or change
//! anything outside the destination. So:
//! - every entry goes first into a private staging directory next to the destination, which is
//!   moved into place only when the whole archive was read without error (a truncated stream or a
//!   rejected entry leaves nothing behind);
//! - entry names with `..` components or an absolute path are rejected, not "sanitised": such an
//!   archive is broken or malicious and the user should know;
//! - nothing is ever written through a symlink: every parent directory of an entry is checked with
//!   `lstat` while it is created, and files are opened `O_CREAT|O_EXCL|O_NOFOLLOW`;
//! - a symlink whose target, resolved inside the tree (following the tree's own symlinks), leaves
//!   the tree is rejected — checked when it is created and again once all entries exist, since a
//!   later entry can change what an earlier link points at; hard links must name an already
//!   unpacked regular file inside the tree;
//! - device nodes, fifos and unknown entry types are rejected; setuid/setgid/sticky bits are
//!   dropped, and owners are not restored (files belong to whoever runs ovm). The owner always
//!   keeps read/write(/search) permission so builds can modify and `ovm clean` can delete the tree.
//!
//! Modification times of tar entries are kept: `make` compares them, and a tree whose generated
//! files (configure, *.info) look older than their inputs tries to regenerate them.

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::recipe::Source;

/// Defined with the recipes, which refuse a source they could not unpack: the module below the
/// stage that unpacks owns the type both use.
pub use crate::recipe::ArchiveFormat;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{}: cannot tell the archive format from the name (expected {})", archive.display(), ArchiveFormat::SUFFIXES.join(", "))]
    UnknownFormat { archive: PathBuf },
    #[error("cannot open {}: {source}", archive.display())]
    Open { archive: PathBuf, source: io::Error },
    #[error("{}: corrupt or truncated archive: {source}", archive.display())]
    Corrupt { archive: PathBuf, source: io::Error },
    #[error("{}: entry `{entry}`: {reason}", archive.display())]
    UnsafePath { archive: PathBuf, entry: String, reason: &'static str },
    #[error("{}: symlink `{entry}` -> `{target}` points outside the source tree", archive.display())]
    LinkEscapes { archive: PathBuf, entry: String, target: String },
    #[error("{}: hard link `{entry}` -> `{target}`: {reason}", archive.display())]
    BadHardlink { archive: PathBuf, entry: String, target: String, reason: &'static str },
    #[error("{}: entry `{entry}` would be written through the symlink `{link}`", archive.display())]
    ThroughSymlink { archive: PathBuf, entry: String, link: String },
    #[error("{}: entry `{entry}` is a {kind}; source archives may not create {kind}s", archive.display())]
    Special { archive: PathBuf, entry: String, kind: &'static str },
    #[error("{}: entry `{entry}` conflicts with `{existing}` already unpacked", archive.display())]
    Conflict { archive: PathBuf, entry: String, existing: String },
    #[error("{}: `{entry}` already exists in {}", archive.display(), dest.display())]
    DestExists { archive: PathBuf, dest: PathBuf, entry: String },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// What an unpack produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Entries whose setuid/setgid/sticky bits were dropped.
    pub dropped_special_bits: u64,
}

/// Unpacks `archive` into `dest`, dropping `strip` leading path components of every entry (entries
/// with no more than `strip` components, such as the top directory itself, are skipped).
///
/// `dest` may not exist yet (it is created) or be a directory: then the archive's top-level entries
/// are added to it and none of them may already exist there. On error nothing is added to `dest`.
pub fn unpack(archive: &Path, dest: &Path, strip: usize) -> Result<Unpacked, UnpackError> {
    let name = archive.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let format =
        ArchiveFormat::from_file_name(&name).ok_or_else(|| UnpackError::UnknownFormat { archive: archive.into() })?;
    let file = File::open(archive).map_err(|source| UnpackError::Open { archive: archive.into(), source })?;

    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|source| UnpackError::Write { path: parent.into(), source })?;
    let staging = tempfile::Builder::new()
        .prefix(".ovm-unpack-")
        .tempdir_in(parent)
        .map_err(|source| UnpackError::Write { path: parent.into(), source })?;

    let mut x = Extractor::new(archive, staging.path(), strip);
    match format {
        ArchiveFormat::Zip => x.zip(file)?,
        ArchiveFormat::Tar => x.tar(BufReader::new(file))?,
        ArchiveFormat::TarGz => x.tar(flate2::read::MultiGzDecoder::new(BufReader::new(file)))?,
        ArchiveFormat::TarXz => x.tar(xz2::read::XzDecoder::new_multi_decoder(BufReader::new(file)))?,
        ArchiveFormat::TarBz2 => x.tar(bzip2::read::MultiBzDecoder::new(BufReader::new(file)))?,
        ArchiveFormat::TarZst => {
            let decoder = zstd::stream::read::Decoder::new(file)
                .map_err(|source| UnpackError::Corrupt { archive: archive.into(), source })?;
            x.tar(decoder)?
        }
    }
    x.finish()?;
    let stats = x.stats;
    commit(archive, staging, dest)?;
    Ok(stats)
}

/// Puts one fetched source file into a package source tree as its recipe says: unpacked with its
/// `strip`, or (`unpack = false`) copied as is, under `tree/dest`.
pub fn place_source(source: &Source, file: &Path, tree: &Path) -> Result<Unpacked, UnpackError> {
    let dest = tree.join(&source.dest);
    if source.unpack {
        return unpack(file, &dest, source.strip);
    }
    let name = file.file_name().unwrap_or_else(|| OsStr::new("source"));
    let target = dest.join(name);
    if target.symlink_metadata().is_ok() {
        return Err(UnpackError::DestExists {
            archive: file.into(),
            dest: dest.clone(),
            entry: name.to_string_lossy().into_owned(),
        });
    }
    fs::create_dir_all(&dest).map_err(|source| UnpackError::Write { path: dest.clone(), source })?;
    let tmp = tempfile::Builder::new()
        .prefix(".ovm-copy-")
        .tempfile_in(&dest)
        .map_err(|source| UnpackError::Write { path: dest.clone(), source })?;
    let mut input = File::open(file).map_err(|source| UnpackError::Open { archive: file.into(), source })?;
    let bytes = io::copy(&mut input, &mut tmp.as_file())
        .map_err(|source| UnpackError::Write { path: target.clone(), source })?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644))
        .map_err(|source| UnpackError::Write { path: target.clone(), source })?;
    tmp.persist_noclobber(&target).map_err(|e| UnpackError::Write { path: target.clone(), source: e.error })?;
    Ok(Unpacked { files: 1, bytes, ..Unpacked::default() })
}

/// Moves a fully unpacked staging directory into place: renamed to `dest` when that does not exist,
/// else its top-level entries moved into `dest` after checking that none is already there.
fn commit(archive: &Path, staging: tempfile::TempDir, dest: &Path) -> Result<(), UnpackError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UnpackError::Write { path, source }
    };
    match dest.symlink_metadata() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755))
                .map_err(write_err(staging.path()))?;
            let path = staging.keep();
            fs::rename(&path, dest).map_err(|source| {
                let _ = fs::remove_dir_all(&path);
                UnpackError::Write { path: dest.into(), source }
            })
        }
        Err(source) => Err(UnpackError::Write { path: dest.into(), source }),
        Ok(meta) if !meta.is_dir() => Err(UnpackError::Write {
            path: dest.into(),
            source: io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a directory"),
        }),
        Ok(_) => {
            let mut names = Vec::new();
            for entry in fs::read_dir(staging.path()).map_err(write_err(staging.path()))? {
                let entry = entry.map_err(write_err(staging.path()))?;
                let name = entry.file_name();
                if dest.join(&name).symlink_metadata().is_ok() {
                    return Err(UnpackError::DestExists {
                        archive: archive.into(),
                        dest: dest.into(),
                        entry: name.to_string_lossy().into_owned(),
                    });
                }
                names.push(name);
            }
            for name in names {
                fs::rename(staging.path().join(&name), dest.join(&name)).map_err(write_err(&dest.join(&name)))?;
            }
            Ok(())
        }
    }
}

/// The safety checks and file creation shared by the tar and zip readers. All paths it is given are
/// archive names; everything it creates is under `root` (the staging directory).
struct Extractor<'a> {
    archive: &'a Path,
    root: &'a Path,
    strip: usize,
    /// Directories (relative) known to be real directories created by us: parents need no re-check.
    known_dirs: HashSet<PathBuf>,
    /// Directories and their mode/mtime, applied at the end (deepest first) so that a read-only
    /// directory does not prevent unpacking into it.
    dir_attrs: Vec<(PathBuf, u32, Option<u64>)>,
    /// Symlinks created, re-checked once every entry exists.
    symlinks: Vec<(PathBuf, String, String)>,
    stats: Unpacked,
}

/// Why a name is rejected, before any stripping.
fn split_entry_name(name: &[u8]) -> Result<Vec<OsString>, &'static str> {
    if name.is_empty() {
        return Err("empty path");
    }
    if name.contains(&0) {
        return Err("path contains a NUL byte");
    }
    let path = Path::new(OsStr::from_bytes(name));
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
            Component::ParentDir => return Err("path contains a `..` component"),
            Component::CurDir => {}
            Component::Normal(n) => parts.push(n.to_os_string()),
        }
    }
    Ok(parts)
}

impl<'a> Extractor<'a> {
    fn new(archive: &'a Path, root: &'a Path, strip: usize) -> Self {
        Extractor {
            archive,
            root,
            strip,
            known_dirs: HashSet::new(),
            dir_attrs: Vec::new(),
            symlinks: Vec::new(),
            stats: Unpacked::default(),
        }
    }

    fn display(name: &[u8]) -> String {
        String::from_utf8_lossy(name).into_owned()
    }

    fn unsafe_path(&self, name: &[u8], reason: &'static str) -> UnpackError {
        UnpackError::UnsafePath { archive: self.archive.into(), entry: Self::display(name), reason }
    }

    fn corrupt(&self, source: io::Error) -> UnpackError {
        UnpackError::Corrupt { archive: self.archive.into(), source }
    }

    /// The entry's path inside the tree after stripping, or `None` when nothing is left.
    fn target(&self, name: &[u8]) -> Result<Option<PathBuf>, UnpackError> {
        let parts = split_entry_name(name).map_err(|r| self.unsafe_path(name, r))?;
        if parts.len() <= self.strip {
            return Ok(None);
        }
        Ok(Some(parts[self.strip..].iter().collect()))
    }

    /// Creates the parent directories of `rel`, refusing to pass through anything but real
    /// directories.
    fn prepare_parents(&mut self, name: &[u8], rel: &Path) -> Result<(), UnpackError> {
        let mut prefix = PathBuf::new();
        let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        for c in parent.components() {
            prefix.push(c);
            if self.known_dirs.contains(&prefix) {
                continue;
            }
            let full = self.root.join(&prefix);
            match full.symlink_metadata() {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(UnpackError::ThroughSymlink {
                        archive: self.archive.into(),
                        entry: Self::display(name),
                        link: prefix.display().to_string(),
                    });
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(UnpackError::Conflict {
                        archive: self.archive.into(),
                        entry: Self::display(name),
                        existing: prefix.display().to_string(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&full).map_err(|source| UnpackError::Write { path: full.clone(), source })?;
                }
                Err(source) => return Err(UnpackError::Write { path: full, source }),
            }
            self.known_dirs.insert(prefix.clone());
        }
        Ok(())
    }

    /// Makes room for a non-directory entry at `rel`: a file or link already there (an archive may
    /// list a path twice; the last one wins, as with GNU tar) is removed, never followed.
    fn clear_slot(&mut self, name: &[u8], rel: &Path) -> Result<PathBuf, UnpackError> {
        self.prepare_parents(name, rel)?;
        let full = self.root.join(rel);
        match full.symlink_metadata() {
            Ok(m) if m.is_dir() => Err(UnpackError::Conflict {
                archive: self.archive.into(),
                entry: Self::display(name),
                existing: rel.display().to_string(),
            }),
            Ok(_) => {
                fs::remove_file(&full).map_err(|source| UnpackError::Write { path: full.clone(), source })?;
                Ok(full)
            }
            Err(_) => Ok(full),
        }
    }

    fn clean_mode(&mut self, mode: u32) -> u32 {
        if mode & 0o7000 != 0 {
            self.stats.dropped_special_bits += 1;
        }
        mode & 0o777
    }

    fn dir(&mut self, name: &[u8], mode: u32, mtime: Option<u64>) -> Result<(), UnpackError> {
        let Some(rel) = self.target(name)? else { return Ok(()) };
        self.prepare_parents(name, &rel)?;
        let full = self.root.join(&rel);
        match full.symlink_metadata() {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(UnpackError::Conflict {
                    archive: self.archive.into(),
                    entry: Self::display(name),
                    existing: rel.display().to_string(),
                });
            }
            Err(_) => fs::create_dir(&full).map_err(|source| UnpackError::Write { path: full.clone(), source })?,
        }
        self.known_dirs.insert(rel.clone());
        let mode = self.clean_mode(mode) | 0o700;
        self.dir_attrs.push((full, mode, mtime));
        self.stats.dirs += 1;
        Ok(())
    }

    fn file(&mut self, name: &[u8], mode: u32, mtime: Option<u64>, content: &mut dyn Read) -> Result<(), UnpackError> {
        let Some(rel) = self.target(name)? else {
            // The stripped prefix itself as a file: nothing to unpack it to, but its bytes must still
            // be read so the stream stays in step.
            io::copy(content, &mut io::sink()).map_err(|e| self.corrupt(e))?;
            return Ok(());
        };
        let full = self.clear_slot(name, &rel)?;
        let mode = self.clean_mode(mode) | 0o600;
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&full)
            .map_err(|source| UnpackError::Write { path: full.clone(), source })?;
        let n = io::copy(content, &mut out).map_err(|e| match e.kind() {
            // Errors while reading the entry are the archive's fault; a full disk is ours.
            io::ErrorKind::StorageFull | io::ErrorKind::PermissionDenied => {
                UnpackError::Write { path: full.clone(), source: e }
            }
            _ => self.corrupt(e),
        })?;
        // The create mode is filtered by the umask; the archive's bits are what we want.
        out.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|source| UnpackError::Write { path: full.clone(), source })?;
        if let Some(t) = mtime {
            out.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(t))
                .map_err(|source| UnpackError::Write { path: full.clone(), source })?;
        }
        self.stats.files += 1;
        self.stats.bytes += n;
        Ok(())
    }

    fn symlink(&mut self, name: &[u8], target: &[u8]) -> Result<(), UnpackError> {
        let Some(rel) = self.target(name)? else { return Ok(()) };
        let entry = Self::display(name);
        let target_str = Self::display(target);
        if target.is_empty()
            || target.contains(&0)
            || resolves_outside(self.root, &rel, Path::new(OsStr::from_bytes(target)))
        {
            return Err(UnpackError::LinkEscapes { archive: self.archive.into(), entry, target: target_str });
        }
        let full = self.clear_slot(name, &rel)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &full)
            .map_err(|source| UnpackError::Write { path: full.clone(), source })?;
        self.symlinks.push((rel, entry, target_str));
        self.stats.symlinks += 1;
        Ok(())
    }

    fn hardlink(&mut self, name: &[u8], target: &[u8]) -> Result<(), UnpackError> {
        let Some(rel) = self.target(name)? else { return Ok(()) };
        let bad = |reason| UnpackError::BadHardlink {
            archive: self.archive.into(),
            entry: Self::display(name),
            target: Self::display(target),
            reason,
        };
        let parts = split_entry_name(target).map_err(bad)?;
        if parts.len() <= self.strip {
            return Err(bad("the target is stripped away"));
        }
        let target_rel: PathBuf = parts[self.strip..].iter().collect();
        // The target must be reached without symlinks and be a regular file we unpacked.
        let mut prefix = PathBuf::new();
        for c in target_rel.components() {
            prefix.push(c);
            match self.root.join(&prefix).symlink_metadata() {
                Ok(m) if m.file_type().is_symlink() => return Err(bad("the target is or passes through a symlink")),
                Ok(_) => {}
                Err(_) => return Err(bad("the target is not an earlier entry of the archive")),
            }
        }
        if !self.root.join(&target_rel).symlink_metadata().is_ok_and(|m| m.is_file()) {
            return Err(bad("the target is not a regular file"));
        }
        let full = self.clear_slot(name, &rel)?;
        fs::hard_link(self.root.join(&target_rel), &full)
            .map_err(|source| UnpackError::Write { path: full, source })?;
        self.stats.hardlinks += 1;
        Ok(())
    }

    fn special(&self, name: &[u8], kind: &'static str) -> UnpackError {
        UnpackError::Special { archive: self.archive.into(), entry: Self::display(name), kind }
    }

    fn tar<R: Read>(&mut self, reader: R) -> Result<(), UnpackError> {
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| self.corrupt(e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.corrupt(e))?;
            let name = entry.path_bytes().into_owned();
            let header = entry.header();
            let kind = header.entry_type();
            let mode = header.mode().map_err(|e| self.corrupt(e))?;
            let mtime = header.mtime().ok();
            use tar::EntryType as T;
            match kind {
                T::Regular | T::Continuous | T::GNUSparse => self.file(&name, mode, mtime, &mut entry)?,
                T::Directory => self.dir(&name, mode, mtime)?,
                T::Symlink => {
                    let target =
                        entry.link_name_bytes().ok_or_else(|| self.special(&name, "symlink without a target"))?;
                    self.symlink(&name, &target)?
                }
                T::Link => {
                    let target =
                        entry.link_name_bytes().ok_or_else(|| self.special(&name, "hard link without a target"))?;
                    self.hardlink(&name, &target)?
                }
                T::Char => return Err(self.special(&name, "character device")),
                T::Block => return Err(self.special(&name, "block device")),
                T::Fifo => return Err(self.special(&name, "fifo")),
                // Metadata records (pax global header) carry nothing to unpack.
                T::XGlobalHeader => {}
                _ => return Err(self.special(&name, "entry of an unsupported type")),
            }
        }
        // Read the compressed stream to its end: decoders check their trailer (length, CRC) only
        // there, and tar stops at its end-of-archive blocks, so a truncated or corrupt tail would
        // otherwise go unnoticed.
        let mut inner = archive.into_inner();
        io::copy(&mut inner, &mut io::sink()).map_err(|e| self.corrupt(e))?;
        Ok(())
    }

    fn zip(&mut self, file: File) -> Result<(), UnpackError> {
        let as_io = |e: zip::result::ZipError| io::Error::new(io::ErrorKind::InvalidData, e);
        let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| self.corrupt(as_io(e)))?;
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).map_err(|e| self.corrupt(as_io(e)))?;
            let name = entry.name_raw().to_vec();
            let unix = entry.unix_mode();
            let file_type = unix.map_or(0, |m| m & libc::S_IFMT);
            if entry.is_dir() || file_type == libc::S_IFDIR {
                self.dir(&name, unix.unwrap_or(0o755), None)?;
                continue;
            }
            match file_type {
                libc::S_IFLNK => {
                    let mut target = Vec::new();
                    entry.read_to_end(&mut target).map_err(|e| self.corrupt(e))?;
                    self.symlink(&name, &target)?;
                }
                libc::S_IFCHR => return Err(self.special(&name, "character device")),
                libc::S_IFBLK => return Err(self.special(&name, "block device")),
                libc::S_IFIFO => return Err(self.special(&name, "fifo")),
                libc::S_IFSOCK => return Err(self.special(&name, "socket")),
                _ => self.file(&name, unix.unwrap_or(0o644), None, &mut entry)?,
            }
        }
        Ok(())
    }

    /// Re-checks every symlink against the finished tree, then applies directory modes and times
    /// (deepest first, so restoring a parent's time is not undone by touching a child).
    fn finish(&mut self) -> Result<(), UnpackError> {
        for (rel, entry, target) in &self.symlinks {
            if resolves_outside(self.root, rel, Path::new(target)) {
                return Err(UnpackError::LinkEscapes {
                    archive: self.archive.into(),
                    entry: entry.clone(),
                    target: target.clone(),
                });
            }
        }
        self.dir_attrs.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.components().count()));
        for (path, mode, mtime) in &self.dir_attrs {
            fs::set_permissions(path, fs::Permissions::from_mode(*mode))
                .map_err(|source| UnpackError::Write { path: path.clone(), source })?;
            if let Some(t) = mtime {
                let dir = File::open(path).map_err(|source| UnpackError::Write { path: path.clone(), source })?;
                dir.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(*t))
                    .map_err(|source| UnpackError::Write { path: path.clone(), source })?;
            }
        }
        Ok(())
    }
}

/// One step of a path being resolved; owned, because resolving splices in the targets of links
/// read from the tree.
enum Step {
    Root,
    Up,
    Name(OsString),
}

fn steps(path: &Path) -> impl DoubleEndedIterator<Item = Step> + '_ {
    path.components().filter_map(|c| match c {
        Component::RootDir | Component::Prefix(_) => Some(Step::Root),
        Component::ParentDir => Some(Step::Up),
        Component::CurDir => None,
        Component::Normal(n) => Some(Step::Name(n.to_os_string())),
    })
}

/// Whether the symlink at `link` (relative to `root`) with `target` resolves to somewhere outside
/// `root`, following symlinks that already exist inside `root` (as the kernel would) and treating
/// missing components as plain directories. Loops count as escaping.
fn resolves_outside(root: &Path, link: &Path, target: &Path) -> bool {
    const MAX_HOPS: usize = 40;
    let mut current: Vec<OsString> =
        link.parent().map(|p| p.components().map(|c| c.as_os_str().to_os_string()).collect()).unwrap_or_default();
    let mut pending: VecDeque<Step> = steps(target).collect();
    let mut hops = 0;
    while let Some(step) = pending.pop_front() {
        match step {
            Step::Root => return true,
            Step::Up => {
                if current.pop().is_none() {
                    return true;
                }
            }
            Step::Name(n) => {
                current.push(n);
                let full: PathBuf = current.iter().fold(root.to_path_buf(), |p, c| p.join(c));
                if full.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return true;
                    }
                    let Ok(next) = fs::read_link(&full) else { return true };
                    current.pop();
                    // The link's own target is resolved before the rest of ours.
                    for step in steps(&next).rev() {
                        pending.push_front(step);
                    }
                }
            }
        }
    }
    false
}

//! Pack: layers of files → one deterministic, compressed cpio "newc" initramfs plus a manifest.
//!
//! This runs on the host, outside any sandbox, because it does what an unprivileged build cannot:
//! make device nodes and give files owners and setuid bits (from the device table). Its output must
//! be a pure function of the layers' *content* and the table: the same bytes after a `touch`, a copy
//! to another place, a `chown`, another umask, or another thread count. That is why:
//!
//! - `tree` reads the layers into a sorted map and normalises every piece of metadata that is an
//!   accident of how the files got onto disk (owner, mode bits from the umask, mtime, inode);
//! - `cpio` writes entries in path order with mtime = SOURCE_DATE_EPOCH and inode numbers from a
//!   counter, hard links as GNU cpio does (data on the last name);
//! - `compress` only uses encoders whose output does not depend on the thread count.
//!
//! The image and the manifest are written to temporary files in the output directory and renamed
//! into place, image first, so an interrupted pack leaves the previous image intact and never a
//! truncated one under the real name. The manifest records the image's sha256, so a manifest that
//! does not belong to the image next to it is detectable. Packs into one output directory take
//! turns on an exclusive `flock` of `.pack.lock`; holding it, a pack removes the temporaries a
//! killed pack left behind.
//!
//! The engine calls [`pack`] with the packages of a build in dependency order; `ovm pack` calls it
//! through [`request_for_project`] with whatever `staging/ARCH/` holds, in name order.

pub mod compress;
pub mod cpio;
pub mod manifest;
pub mod pargz;
pub mod table;
pub mod tarball;
pub mod tree;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::arch::Arch;
use crate::layout::Domain;
use crate::project::{Outside, Project};

pub use compress::Compression;
use compress::Encoder;
use cpio::{CpioError, Header, NewcWriter};
use manifest::{EntryType, ImageInfo, Manifest, ManifestEntry};
pub use table::DeviceTable;
use tree::{archive_name, display_path, Kind, LinkRole, Tree};

/// The owner the manifest records for the kernel modules: no package can be named so.
pub const KERNEL_MODULES_LAYER: &str = "[kernel]";
/// Name of the manifest next to the image.
pub const MANIFEST_NAME: &str = "manifest.txt";
/// Size of the buffer file contents are read through.
const READ_BUFFER: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("layer {layer}: cannot read {path}: {source}")]
    LayerRead { layer: String, path: PathBuf, source: io::Error },
    #[error("layer {layer}: {path} is not a directory")]
    LayerNotDir { layer: String, path: PathBuf },
    /// `rootfs/` is (or sits under) a symlink leading out of the project: the image would hold
    /// host files.
    #[error("{} resolves to {}, outside the project; the skeleton must be the project's own", path.display(), target.display())]
    LayerEscapes { path: PathBuf, target: PathBuf },
    #[error("layer {layer}: {path} is {what}, which an initramfs cannot hold")]
    Unsupported { layer: String, path: PathBuf, what: &'static str },
    /// The engine never commits such an output; a staging directory changed by hand can hold one.
    #[error(
        "package {layer}: {path} is {what}; a package output holds only files, directories and symlinks \
         (device nodes and FIFOs come from rootfs/ or the device table)"
    )]
    PackageSpecial { layer: String, path: PathBuf, what: &'static str },
    #[error(
        "{path} is installed by both {first} and {second}; remove it from one, or add replaces = [\"{first}\"] to \
         {second}'s recipe"
    )]
    Conflict { path: String, first: String, second: String },
    #[error("{path} is {first_kind} in {first} but {second_kind} in {second}; one would hide the other")]
    TypeClash { path: String, first: String, first_kind: &'static str, second: String, second_kind: &'static str },
    #[error("{origin}: {message}")]
    TableRule { origin: String, message: String },
    #[error(transparent)]
    Table(#[from] table::TableError),
    #[error("the overlay directory {0} does not exist (set [pack] overlay or pass --overlay DIR)")]
    OverlayMissing(PathBuf),
    #[error("cannot list {path}: {source}")]
    Staging { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Config(String),
    #[error("reading {path} ({owner}): {source}")]
    ReadFile { path: PathBuf, owner: String, source: io::Error },
    #[error("{path} ({owner}) changed size while being packed; is a build still writing it?")]
    Changed { path: PathBuf, owner: String },
    #[error("writing the archive entry {entry}: {source}")]
    Cpio { entry: String, source: CpioError },
    #[error("writing {entry} into the tar archive: {source}")]
    Tar { entry: String, source: io::Error },
    #[error(transparent)]
    Compress(#[from] compress::CompressError),
    #[error("[kernel] in {config}: {source}")]
    KernelModules { config: PathBuf, source: Box<crate::kernel_modules::KmodError> },
    #[error("writing {path}: {source}")]
    Output { path: PathBuf, source: io::Error },
    /// `ovm pack ARCH` before any of the project's packages was built: the image would be the
    /// skeleton alone (a few kB whose /init finds no busybox), which boots into a kernel panic.
    #[error(
        "no package is built for {arch} ({} is empty): the image would be rootfs/ alone and could not boot; \
         run `ovm build {arch}` first (or pass --allow-empty to pack it anyway)",
        staging.display()
    )]
    NothingBuilt { arch: Arch, staging: PathBuf },
    /// The image QA checks (`qa::check_image`) failed for files of these packages.
    #[error(
        "image QA failed:\n  {}\n(fix the package, or waive the check with its reason in its recipe: [package.waive] \
         CHECK = \"why\")",
        findings.iter().map(|(owner, f)| format!("{owner}: {f}")).collect::<Vec<_>>().join("\n  ")
    )]
    Qa { findings: Vec<(String, crate::qa::Finding)> },
    #[error(transparent)]
    QaRead(#[from] crate::qa::QaError),
}

/// What a layer is; decides who wins when two layers provide the same path (see `tree`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// The `rootfs/` skeleton: wins over package files.
    Rootfs,
    /// A package's staged output; `allow_override` lets it replace an earlier package's files.
    Package { allow_override: bool },
    /// The kernel modules `[kernel]` asks for (`crate::kernel_modules`), written by the pack:
    /// like a package, it may not replace another layer's file.
    KernelModules,
    /// The user's overlay: wins over everything.
    Overlay,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Recorded as the owner of its files in the manifest (`rootfs`, the package name, `overlay`).
    pub name: String,
    pub dir: PathBuf,
    pub kind: LayerKind,
    /// The packages whose files this one may replace where both install the same path (its
    /// recipe's `replaces`); any other shared path is a conflict.
    pub replaces: Vec<String>,
    /// The image QA checks its recipe waives for its files (`qa::check_image`).
    pub waive: BTreeSet<crate::qa::Check>,
}

impl Layer {
    pub fn rootfs(dir: impl Into<PathBuf>) -> Layer {
        Layer {
            name: "rootfs".into(),
            dir: dir.into(),
            kind: LayerKind::Rootfs,
            replaces: Vec::new(),
            waive: BTreeSet::new(),
        }
    }
    pub fn package(name: impl Into<String>, dir: impl Into<PathBuf>, allow_override: bool) -> Layer {
        Layer {
            name: name.into(),
            dir: dir.into(),
            kind: LayerKind::Package { allow_override },
            replaces: Vec::new(),
            waive: BTreeSet::new(),
        }
    }
    /// The layer of `plan`, in `dir` (which [`pack`] writes if it does not exist).
    /// The same layer, allowed to replace the files of `packages` (see [`Layer::replaces`]).
    pub fn replacing(mut self, packages: Vec<String>) -> Layer {
        self.replaces = packages;
        self
    }
    /// The same layer, its files exempt from the image QA checks `waive` names.
    pub fn waiving(mut self, waive: BTreeSet<crate::qa::Check>) -> Layer {
        self.waive = waive;
        self
    }
    /// A target package's layer: its runtime part, replacing and waiving what its recipe says.
    pub fn of_recipe(project: &Project, arch: Arch, recipe: &crate::recipe::Recipe) -> Layer {
        let dir = project.layout().staged_part(Domain::Target(arch), &recipe.name, crate::layout::Part::Runtime);
        Layer::package(recipe.name.clone(), dir, false)
            .replacing(recipe.replaces.clone())
            .waiving(recipe.package.waive.keys().copied().collect())
    }
    pub fn kernel_modules(dir: impl Into<PathBuf>) -> Layer {
        Layer {
            name: KERNEL_MODULES_LAYER.into(),
            dir: dir.into(),
            kind: LayerKind::KernelModules,
            replaces: Vec::new(),
            waive: BTreeSet::new(),
        }
    }
    pub fn overlay(dir: impl Into<PathBuf>) -> Layer {
        Layer {
            name: "overlay".into(),
            dir: dir.into(),
            kind: LayerKind::Overlay,
            replaces: Vec::new(),
            waive: BTreeSet::new(),
        }
    }
}

/// Everything one pack needs; nothing is read from the environment.
#[derive(Debug, Clone)]
pub struct PackRequest {
    pub arch: Arch,
    /// In order: skeleton, packages (dependency order), kernel modules, overlay.
    pub layers: Vec<Layer>,
    /// What the [`LayerKind::KernelModules`] layer holds, written into its directory when that
    /// does not exist yet (the directory is named by the plan's signature).
    pub kernel_modules: Option<crate::kernel_modules::Plan>,
    /// The device/permission table; `None` for none at all.
    pub device_table: Option<PathBuf>,
    pub compress: Compression,
    /// Also write the tree as `rootfs.tar` (compressed as the image: [`Compression::tar_name`]).
    pub tar: bool,
    /// Compression threads; 0 = one per core. Never changes the output.
    pub threads: usize,
    /// mtime of every entry.
    pub source_date_epoch: u64,
    /// Where `initrd.cpio.*` and `manifest.txt` go (created if missing).
    pub output_dir: PathBuf,
    /// The owner the manifest names per path, over the layers' names: an image packed from one
    /// post-processed tree still says which package each file came from ([`owners_after`]).
    pub owners: Option<BTreeMap<Vec<u8>, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackOutcome {
    pub image: PathBuf,
    pub manifest: PathBuf,
    /// Hex sha256 of the image file.
    pub sha256: String,
    /// Bytes of the image file.
    pub size: u64,
    /// Archive entries (without the trailer).
    pub entries: usize,
}

impl PackRequest {
    /// Refuses to pack ARCH when the project has target recipes but none of them is built
    /// ([`PackError::NothingBuilt`]): the image would be the skeleton alone. A project without
    /// target recipes (its rootfs/ is the whole image) and an overlay (it may bring its own /init
    /// and busybox) are packed as asked.
    pub fn require_packages(&self, project: &Project) -> Result<(), PackError> {
        let content = self.layers.iter().any(|l| matches!(l.kind, LayerKind::Package { .. } | LayerKind::Overlay));
        // Recipes that do not load cannot say there is nothing to build: refuse, the error says
        // how to pack anyway.
        let has_targets = crate::recipe::RecipeSet::load(project)
            .map(|set| set.of_kind(crate::recipe::Kind::Target).next().is_some())
            .unwrap_or(true);
        if content || !has_targets {
            Ok(())
        } else {
            Err(PackError::NothingBuilt {
                arch: self.arch,
                staging: project.layout().staging_of(Domain::Target(self.arch)),
            })
        }
    }
}

/// Overrides of the project configuration, from the command line.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    pub compress: Option<Compression>,
    pub overlay: Option<PathBuf>,
    pub threads: Option<usize>,
}

/// The request `ovm pack ARCH` makes: `rootfs/` (if present), every directory under
/// `staging/ARCH/` in name order (dot-names are skipped: they are the engine's unfinished
/// commits), the kernel modules `[kernel]` names, then the overlay; compression, table and
/// threads from `[pack]` unless overridden. Resolving the modules reads the modules tree; the
/// layer is written only by [`pack`].
pub fn request_for_project(project: &Project, arch: Arch, opts: &PackOptions) -> Result<PackRequest, PackError> {
    let cfg = &project.config.pack;
    let mut layers = Vec::new();
    let rootfs = project.layout().rootfs();
    // Only a rootfs/ that is really absent is skipped: `is_dir()` would also skip a symlink loop
    // or an unreadable directory, and pack an image without its skeleton.
    match std::fs::metadata(&rootfs) {
        Ok(md) if md.is_dir() => {
            // Followed, unlike the links inside it (packed as links): so it must lead to the
            // project's own files, as patches and config files must.
            match crate::project::inside(project.root(), &rootfs) {
                Ok(()) => {}
                Err(Outside::Escapes(target)) => return Err(PackError::LayerEscapes { path: rootfs, target }),
                Err(Outside::Unresolved(source)) => {
                    return Err(PackError::LayerRead { layer: "rootfs".into(), path: rootfs, source })
                }
            }
            layers.push(Layer::rootfs(rootfs))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => tracing::warn!(
            "{} does not exist: the image gets no skeleton (no /init unless a package has one)",
            rootfs.display()
        ),
        Ok(_) => return Err(PackError::LayerNotDir { layer: "rootfs".into(), path: rootfs }),
        Err(source) => return Err(PackError::LayerRead { layer: "rootfs".into(), path: rootfs, source }),
    }
    let staging = project.layout().staging_of(Domain::Target(arch));
    if staging.is_dir() {
        let err = |source| PackError::Staging { path: staging.clone(), source };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&staging).map_err(err)? {
            let entry = entry.map_err(err)?;
            let name = entry.file_name();
            let name = name.to_str().ok_or_else(|| {
                PackError::Config(format!("{}: package directory names must be UTF-8", entry.path().display()))
            })?;
            if !name.starts_with('.') && entry.path().is_dir() {
                names.push(name.to_string());
            }
        }
        names.sort();
        // In the recipes' order, with what each `replaces`, as `ovm build` packs them; a package
        // staged without a recipe (any more) comes last, in name order.
        let recipes = match crate::recipe::RecipeSet::load(project) {
            Ok(set) => Some(set),
            Err(e) => {
                tracing::warn!("packing staged packages in name order, without their recipes' `replaces`: {e}");
                None
            }
        };
        // `[pack] packages` chooses what the image holds, as for `ovm build`; what else is
        // staged (built on its own with `ovm build ARCH PKG`) stays out.
        if let (Some(set), Some(selection)) = (&recipes, &cfg.packages) {
            let image = set.image_packages(Some(selection)).map_err(|e| PackError::Config(e.to_string()))?;
            names.retain(|n| image.iter().any(|r| &r.name == n));
        }
        let order = recipes.as_ref().map(|r| r.topological_order()).unwrap_or_default();
        let rank = |name: &str| order.iter().position(|r| r.name == name).unwrap_or(usize::MAX);
        names.sort_by_cached_key(|n| (rank(n), n.clone()));
        for name in names {
            match recipes.as_ref().and_then(|r| r.get(&name)) {
                Some(r) => layers.push(Layer::of_recipe(project, arch, r)),
                None => {
                    let dir = project.layout().staged_part(Domain::Target(arch), &name, crate::layout::Part::Runtime);
                    layers.push(Layer::package(name, dir, false));
                }
            }
        }
    }
    let kernel_modules = kernel_modules_plan(project, arch)?;
    if let Some(plan) = &kernel_modules {
        layers.push(Layer::kernel_modules(project.layout().kernel_modules(arch).join(plan.signature())));
    }
    if let Some(overlay) = opts.overlay.clone().or_else(|| cfg.overlay.as_ref().map(|o| project.root().join(o))) {
        // `is_dir()` would report a symlink loop or an unreadable parent as "does not exist".
        match std::fs::metadata(&overlay) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => return Err(PackError::LayerNotDir { layer: "overlay".into(), path: overlay }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(PackError::OverlayMissing(overlay)),
            Err(source) => return Err(PackError::LayerRead { layer: "overlay".into(), path: overlay, source }),
        }
        layers.push(Layer::overlay(overlay));
    }
    let compress = opts.compress.unwrap_or(cfg.compress);
    Ok(PackRequest {
        arch,
        layers,
        kernel_modules,
        device_table: Some(project.root().join(&cfg.device_table)),
        compress,
        tar: false,
        threads: opts.threads.unwrap_or(cfg.threads),
        source_date_epoch: project.source_date_epoch(),
        output_dir: project.layout().output(arch),
        owners: None,
    })
}

/// The modules `[kernel]` asks for, resolved against its `modules_from` for `arch`; `None`
/// when it asks for none.
pub fn kernel_modules_plan(project: &Project, arch: Arch) -> Result<Option<crate::kernel_modules::Plan>, PackError> {
    let cfg = &project.config.kernel;
    let config = project.layout().config_file();
    if !cfg.wants_modules() {
        return Ok(None);
    }
    let Some(modules_from) = cfg.modules_from(project.root(), arch) else {
        return Err(PackError::Config(format!(
            "{}: [kernel] names modules but no modules_from (the directory holding lib/modules/VERSION/)",
            config.display()
        )));
    };
    let req = crate::kernel_modules::Request {
        modules_from: &modules_from,
        version: cfg.version.as_deref(),
        modules: &cfg.modules,
        groups: &cfg.groups,
    };
    let plan = crate::kernel_modules::resolve(&req)
        .map_err(|source| PackError::KernelModules { config, source: Box::new(source) })?;
    tracing::debug!(
        version = plan.version,
        modules = plan.modules.len(),
        builtin = ?plan.builtin,
        "kernel modules for {arch}: {}",
        plan.load.join(" ")
    );
    Ok(Some(plan))
}

/// Writes the kernel-modules layer of `req` unless its directory (named by the plan's
/// signature) exists, and removes the layers of other signatures beside it: they are derived data
/// of earlier configurations, and ovm runs one at a time per project (`states/.lock`).
fn write_kernel_modules(req: &PackRequest) -> Result<(), PackError> {
    let (Some(plan), Some(layer)) =
        (&req.kernel_modules, req.layers.iter().find(|l| l.kind == LayerKind::KernelModules))
    else {
        return Ok(());
    };
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackError::Output { path, source }
    };
    if !layer.dir.is_dir() {
        let parent = layer.dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(err(parent))?;
        plan.materialize(&layer.dir)
            .map_err(|source| PackError::KernelModules { config: layer.dir.clone(), source: Box::new(source) })?;
    }
    if let Some(parent) = layer.dir.parent() {
        for entry in std::fs::read_dir(parent).map_err(err(parent))? {
            let entry = entry.map_err(err(parent))?;
            if entry.path() != layer.dir {
                std::fs::remove_dir_all(entry.path()).map_err(err(&entry.path()))?;
            }
        }
    }
    Ok(())
}

/// Assembles, writes and compresses the image, then the manifest; see the module comment.
pub fn pack(req: &PackRequest) -> Result<PackOutcome, PackError> {
    write_kernel_modules(req)?;
    let table = match &req.device_table {
        Some(path) => DeviceTable::load(path)?,
        None => DeviceTable::default(),
    };
    let mut tree = Tree::assemble(&req.layers, &table)?;
    tracing::debug!(entries = tree.entries.len(), layers = req.layers.len(), "assembled the image tree");
    image_qa(&tree, &req.layers)?;
    if let Some(owners) = &req.owners {
        for (path, node) in tree.entries.iter_mut() {
            if let Some(owner) = owners.get(path) {
                node.owner = owner.clone();
            }
        }
    }

    let out_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackError::Output { path, source }
    };
    std::fs::create_dir_all(&req.output_dir).map_err(out_err(&req.output_dir))?;
    let _lock = lock_output(&req.output_dir)?;
    remove_stale_temporaries(&req.output_dir)?;
    let image_path = req.output_dir.join(req.compress.image_name());
    let manifest_path = req.output_dir.join(MANIFEST_NAME);

    let tmp_image = temp_in(&req.output_dir, TEMP_PREFIXES[0])?;
    let sink = HashingWriter::new(tmp_image.as_file().try_clone().map_err(out_err(tmp_image.path()))?);
    let threads = match req.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let encoder = Encoder::new(req.compress, threads, sink)?;
    // cpio headers are tiny writes; batch them so the encoders see large ones.
    let buffered = io::BufWriter::with_capacity(READ_BUFFER, encoder);
    let (entries, buffered) = write_archive(&tree, req.source_date_epoch, buffered)?;
    let encoder = buffered
        .into_inner()
        .map_err(|e| PackError::Output { path: tmp_image.path().to_path_buf(), source: e.into_error() })?;
    let sink = encoder.finish()?;
    let (file, sha256, size) = sink.into_parts();
    file.sync_all().map_err(out_err(tmp_image.path()))?;
    drop(file);

    let manifest = Manifest {
        arch: req.arch.name().into(),
        mtime: req.source_date_epoch,
        image: ImageInfo {
            file_name: req.compress.image_name().into(),
            compress: req.compress.name().into(),
            sha256: sha256.clone(),
            size,
        },
        entries,
    };
    let mut tmp_manifest = temp_in(&req.output_dir, TEMP_PREFIXES[1])?;
    tmp_manifest.write_all(manifest.render().as_bytes()).map_err(out_err(tmp_manifest.path()))?;
    tmp_manifest.as_file().sync_all().map_err(out_err(tmp_manifest.path()))?;

    let tar = if req.tar { Some(write_tarball(req, &tree, threads)?) } else { None };

    persist(tmp_image, &image_path)?;
    persist(tmp_manifest, &manifest_path)?;
    if let Some((tmp_tar, tar_path)) = tar {
        persist(tmp_tar, &tar_path)?;
    }
    // One image per output directory, the one the manifest describes: an image of another
    // compression left from an earlier pack would be stale and `ovm boot` could pick it.
    // Likewise a tar archive this pack did not write.
    let stale_images = Compression::ALL.into_iter().filter(|c| *c != req.compress).map(|c| c.image_name());
    let stale_tars = Compression::ALL.into_iter().filter(|c| !req.tar || *c != req.compress).map(|c| c.tar_name());
    for name in stale_images.chain(stale_tars) {
        let stale = req.output_dir.join(name);
        match std::fs::remove_file(&stale) {
            Ok(()) => tracing::info!("removed the stale {}", stale.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(PackError::Output { path: stale, source }),
        }
    }
    Ok(PackOutcome { image: image_path, manifest: manifest_path, sha256, size, entries: manifest.entries.len() })
}

/// `tree` as a tar archive in a temporary file of the output dir, compressed as the image; the
/// caller renames it to the returned path with the image.
fn write_tarball(
    req: &PackRequest,
    tree: &Tree,
    threads: usize,
) -> Result<(tempfile::NamedTempFile, PathBuf), PackError> {
    let tmp = temp_in(&req.output_dir, TEMP_PREFIXES[2])?;
    let out_err = |source| PackError::Output { path: tmp.path().to_path_buf(), source };
    let file = tmp.as_file().try_clone().map_err(out_err)?;
    let encoder = Encoder::new(req.compress, threads, file)?;
    let buffered = io::BufWriter::with_capacity(READ_BUFFER, encoder);
    let buffered = tarball::write_tar(tree, req.source_date_epoch, buffered)?;
    let encoder = buffered.into_inner().map_err(|e| out_err(e.into_error()))?;
    let file = encoder.finish()?;
    file.sync_all().map_err(out_err)?;
    Ok((tmp, req.output_dir.join(req.compress.tar_name())))
}

/// The image QA checks over `req`'s layers as they would be packed (for an image whose files a
/// postprocess command changes before the pack: the checks see the packages' own files). Like
/// [`pack`], it first writes the kernel modules' layer if that is not there yet, so the layers
/// can be read (checked, then [`materialize`]d) before any pack has run.
pub fn check_layers(req: &PackRequest) -> Result<(), PackError> {
    write_kernel_modules(req)?;
    let table = match &req.device_table {
        Some(path) => DeviceTable::load(path)?,
        None => DeviceTable::default(),
    };
    image_qa(&Tree::assemble(&req.layers, &table)?, &req.layers)
}

/// What an entry is, for telling whether a postprocess command changed it.
fn identity(kind: &Kind, mode: u32) -> Result<String, PackError> {
    Ok(match kind {
        Kind::Dir => format!("dir {mode:o}"),
        Kind::File { source, .. } => {
            let sha = crate::digest::sha256_file(source).map_err(|e| PackError::ReadFile {
                path: source.clone(),
                owner: "image".into(),
                source: e,
            })?;
            format!("file {mode:o} {sha}")
        }
        Kind::Symlink { target } => format!("link {}", String::from_utf8_lossy(target)),
        other => other.describe().to_string(),
    })
}

/// Assembles `layers` (without a device table) into a real directory tree at `dest`: directories
/// and files with their modes (copies: a command may change them, never the staged packages),
/// symlinks; device nodes are the final pack's. Returns each path's owner and what it was.
pub fn materialize(layers: &[Layer], dest: &Path) -> Result<BTreeMap<Vec<u8>, (String, String)>, PackError> {
    let tree = Tree::assemble(layers, &DeviceTable::default())?;
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackError::Output { path, source }
    };
    let mut out = BTreeMap::new();
    for (rel, node) in &tree.entries {
        let to = dest.join(std::ffi::OsStr::from_bytes(rel));
        match &node.kind {
            Kind::Dir => std::fs::create_dir_all(&to).map_err(werr(&to))?,
            Kind::File { source, .. } => {
                std::fs::copy(source, &to).map_err(werr(&to))?;
            }
            Kind::Symlink { target } => {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &to).map_err(werr(&to))?
            }
            _ => continue,
        }
        if !matches!(node.kind, Kind::Symlink { .. }) {
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(node.mode)).map_err(werr(&to))?;
        }
        out.insert(rel.clone(), (node.owner.clone(), identity(&node.kind, node.mode)?));
    }
    Ok(out)
}

/// The owners of `tree`'s entries after a postprocess command: what is as [`materialize`] left it
/// keeps its owner, anything new or changed is `postprocess`'s.
pub fn owners_after(
    tree: &Path,
    before: &BTreeMap<Vec<u8>, (String, String)>,
) -> Result<BTreeMap<Vec<u8>, String>, PackError> {
    let now = Tree::assemble(&[Layer::rootfs(tree)], &DeviceTable::default())?;
    let mut out = BTreeMap::new();
    for (rel, node) in &now.entries {
        let same = match before.get(rel) {
            Some((owner, was)) if *was == identity(&node.kind, node.mode)? => owner.clone(),
            _ => POSTPROCESS_OWNER.to_string(),
        };
        out.insert(rel.clone(), same);
    }
    Ok(out)
}

/// The owner the manifest records for what an image's postprocess commands made or changed.
pub const POSTPROCESS_OWNER: &str = "postprocess";

/// The image QA checks over the assembled tree. A finding counts against the package that
/// installed the file, unless its recipe waives that check; the skeleton, the overlay and the
/// kernel modules are the project's own files and not checked (a script there may well be meant
/// for an interpreter a package adds later).
fn image_qa(tree: &Tree, layers: &[Layer]) -> Result<(), PackError> {
    use crate::qa::ImageEntry;
    let mut view = std::collections::BTreeMap::new();
    for (rel, node) in &tree.entries {
        let entry = match &node.kind {
            Kind::Dir => ImageEntry::Dir,
            Kind::File { source, .. } => ImageEntry::File { source: source.clone() },
            Kind::Symlink { target } => ImageEntry::Link { target: String::from_utf8_lossy(target).into_owned() },
            _ => ImageEntry::Other,
        };
        view.insert(display_path(rel), entry);
    }
    let owner_of = |path: &str| -> Option<&Layer> {
        let rel = path.strip_prefix('/').unwrap_or(path).as_bytes();
        let node = tree.entries.get(rel)?;
        layers.iter().find(|l| l.name == node.owner && matches!(l.kind, LayerKind::Package { .. }))
    };
    let mut findings = Vec::new();
    for f in crate::qa::check_image(&view)? {
        if let Some(layer) = owner_of(&f.file).filter(|l| !l.waive.contains(&f.check)) {
            findings.push((layer.name.clone(), f));
        }
    }
    if findings.is_empty() {
        Ok(())
    } else {
        Err(PackError::Qa { findings })
    }
}

/// Streams the tree as newc entries into `out`; returns the manifest rows in archive order.
fn write_archive<W: Write>(tree: &Tree, mtime: u64, out: W) -> Result<(Vec<ManifestEntry>, W), PackError> {
    let roles = tree.link_roles();
    let subdirs = tree.subdir_counts();
    let mut writer = NewcWriter::new(out);
    let mut rows: Vec<ManifestEntry> = Vec::with_capacity(tree.entries.len());
    let mut group_ino: HashMap<&[u8], u64> = HashMap::new();
    // Rows of hard-link names written before their group's data (and so before its hash).
    let mut waiting: HashMap<&[u8], Vec<usize>> = HashMap::new();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut next_ino = 0u64;

    for (rel, node) in &tree.entries {
        let name = archive_name(rel);
        let cpio_err = |source| PackError::Cpio { entry: display_path(rel), source };
        let role = roles.get(rel).unwrap_or(&LinkRole::Single);
        let ino = match role {
            LinkRole::Later { first, .. } => group_ino.get(first.as_slice()).copied().unwrap_or(0),
            _ => {
                next_ino += 1;
                if let LinkRole::First { .. } = role {
                    group_ino.insert(rel, next_ino);
                }
                next_ino
            }
        };
        let (nlink, carries_data) = match role {
            LinkRole::Single => (if node.kind.is_dir() { 2 + subdirs.get(rel).copied().unwrap_or(0) } else { 1 }, true),
            LinkRole::First { count } => (*count, false),
            LinkRole::Later { count, last, .. } => (*count, *last),
        };
        let (rdev_major, rdev_minor) = match node.kind {
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => (major, minor),
            _ => (0, 0),
        };
        let content_size = match &node.kind {
            Kind::File { size, .. } => *size,
            Kind::Symlink { target } => target.len() as u64,
            _ => 0,
        };
        let header = Header {
            ino,
            mode: node.kind.type_bits() | node.mode,
            uid: node.uid,
            gid: node.gid,
            nlink,
            mtime,
            filesize: if carries_data { content_size } else { 0 },
            rdev_major,
            rdev_minor,
        };
        writer.start_entry(&header, name).map_err(cpio_err)?;

        let mut row = ManifestEntry {
            path: display_path_bytes(rel),
            kind: EntryType::Dir,
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            size: content_size,
            sha256: None,
            owner: node.owner.clone(),
            target: None,
        };
        match &node.kind {
            Kind::Dir => {}
            Kind::File { source, size } => {
                row.kind = match role {
                    LinkRole::Later { first, .. } => {
                        row.target = Some(display_path_bytes(first));
                        EntryType::Hardlink
                    }
                    _ => EntryType::File,
                };
                if carries_data {
                    let hash = copy_file(source, *size, &node.owner, &mut writer, &mut buf, rel)?;
                    if let LinkRole::Later { first, .. } = role {
                        for i in waiting.remove(first.as_slice()).unwrap_or_default() {
                            rows[i].sha256 = Some(hash.clone());
                        }
                    }
                    row.sha256 = Some(hash);
                } else {
                    let key: &[u8] = match role {
                        LinkRole::Later { first, .. } => first,
                        _ => rel,
                    };
                    waiting.entry(key).or_default().push(rows.len());
                }
            }
            Kind::Symlink { target } => {
                writer.write_data(target).map_err(cpio_err)?;
                row.kind = EntryType::Symlink;
                row.target = Some(target.clone());
            }
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                row.kind = if matches!(node.kind, Kind::CharDev { .. }) { EntryType::Char } else { EntryType::Block };
                row.target = Some(format!("{major}:{minor}").into_bytes());
            }
            Kind::Fifo => row.kind = EntryType::Fifo,
        }
        rows.push(row);
    }
    let out = writer.finish().map_err(|source| PackError::Cpio { entry: "TRAILER!!!".into(), source })?;
    Ok((rows, out))
}

/// Copies exactly `size` bytes of `source` into the archive; returns their hex sha256.
fn copy_file<W: Write>(
    source: &Path,
    size: u64,
    owner: &str,
    writer: &mut NewcWriter<W>,
    buf: &mut [u8],
    rel: &[u8],
) -> Result<String, PackError> {
    let read_err = |e| PackError::ReadFile { path: source.to_path_buf(), owner: owner.to_string(), source: e };
    let changed = || PackError::Changed { path: source.to_path_buf(), owner: owner.to_string() };
    let mut file = File::open(source).map_err(read_err)?;
    if file.metadata().map_err(read_err)?.len() != size {
        return Err(changed());
    }
    let mut hasher = Sha256::new();
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => return Err(changed()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        hasher.update(&buf[..n]);
        writer.write_data(&buf[..n]).map_err(|source| PackError::Cpio { entry: display_path(rel), source })?;
        left -= n as u64;
    }
    Ok(hex(&hasher.finalize()))
}

fn display_path_bytes(rel: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(rel.len() + 1);
    p.push(b'/');
    p.extend_from_slice(rel);
    p
}

pub use crate::digest::hex;

/// Temporary names in the output directory; see [`remove_stale_temporaries`].
const TEMP_PREFIXES: [&str; 3] = [".initrd.", ".manifest.", ".rootfs."];
/// Held while packing, so two packs into one directory take turns.
const LOCK_NAME: &str = ".pack.lock";

/// Exclusive `flock` on `dir/.pack.lock`, released when the returned value is dropped.
fn lock_output(dir: &Path) -> Result<nix::fcntl::Flock<File>, PackError> {
    let path = dir.join(LOCK_NAME);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| PackError::Output { path: path.clone(), source })?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| PackError::Output { path, source: io::Error::from_raw_os_error(errno as i32) })
}

/// Under the lock no other pack is writing here, so temporaries are leftovers of a killed pack.
fn remove_stale_temporaries(dir: &Path) -> Result<(), PackError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackError::Output { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(err(dir))? {
        let entry = entry.map_err(err(dir))?;
        let name = entry.file_name();
        if TEMP_PREFIXES.iter().any(|p| name.to_string_lossy().starts_with(p)) {
            tracing::info!("removing {}, left by an interrupted pack", entry.path().display());
            std::fs::remove_file(entry.path()).map_err(err(&entry.path()))?;
        }
    }
    Ok(())
}

fn temp_in(dir: &Path, prefix: &str) -> Result<tempfile::NamedTempFile, PackError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(dir)
        .map_err(|source| PackError::Output { path: dir.to_path_buf(), source })
}

/// Renames `tmp` to `dest` with mode 0644 (temp files are created 0600).
fn persist(tmp: tempfile::NamedTempFile, dest: &Path) -> Result<(), PackError> {
    let err = |source| PackError::Output { path: dest.to_path_buf(), source };
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(err)?;
    tmp.persist(dest).map_err(|e| err(e.error))?;
    Ok(())
}

/// Passes bytes through to a file while hashing and counting them.
struct HashingWriter {
    file: File,
    hasher: Sha256,
    len: u64,
}

impl HashingWriter {
    fn new(file: File) -> Self {
        HashingWriter { file, hasher: Sha256::new(), len: 0 }
    }
    fn into_parts(self) -> (File, String, u64) {
        (self.file, hex(&self.hasher.finalize()), self.len)
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

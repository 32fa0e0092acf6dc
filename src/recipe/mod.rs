//! Recipes: one TOML file per package, turned into validated [`Recipe`]s and a dependency graph.
//!
//! # Why it is shaped like this
//! A recipe is the only place a person describes a package, so every mistake in it must be reported
//! where it was made: `recipes/busybox.toml:7:10: sha256 must be 64 hexadecimal digits …`. Parsing is
//! therefore two steps. `raw` deserializes with serde into structs whose fields carry their byte
//! spans (`toml::Spanned`), with `deny_unknown_fields` so a typo is an error and not a silently
//! ignored setting; `validate` then checks meaning (names, versions, hashes, URLs, paths, files
//! that must exist) and produces plain, span-free [`Recipe`]s that the rest of ovm consumes. Checks
//! that need every recipe at once (duplicate names, unknown dependencies, cycles, two sources
//! claiming one file name in `sources/` with different bytes) run in [`RecipeSet::load`], so a
//! loaded set is known to be consistent and its topological order cannot fail later.
//!
//! Recipe kinds follow the directory a file sits in: `recipes/*.toml` are target packages (they go
//! into the initrd), `recipes/tools/*.toml` build tools for the host (every package sees them),
//! `recipes/native/*.toml` build-time tools for the host that only the packages naming them in
//! `native` see (Yocto's `-native`, Buildroot's `host-*`), `recipes/toolchain/*.toml` parts of the
//! cross toolchain. Names are unique across all four, because users and other recipes refer
//! to packages by bare name (`ovm download busybox`, `depends = ["zlib"]`); a host build of a target
//! package therefore needs its own name (BitBake's `-native` convention).

mod graph;
mod raw;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::arch::Arch;
use crate::project::Project;

pub use validate::MAX_NAME_LEN;

/// Where in which recipe file something is; printed as `path:line:column` (1-based, columns count
/// characters) so editors and terminals can jump to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot list {}: {source}", dir.display())]
    ListDir { dir: PathBuf, source: std::io::Error },
    /// TOML syntax, unknown keys, missing keys and wrong types, as the TOML parser reports them.
    #[error("{at}: {message}")]
    Syntax { at: Location, message: String },
    /// A value that parses but makes no sense (bad version, hash, URL, path …).
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
    #[error("{at}: package `{name}` is already defined by {}", first.display())]
    Duplicate { at: Location, name: String, first: PathBuf },
    #[error("{at}: unknown {what} `{name}`: {reason}")]
    UnknownDependency { at: Location, what: &'static str, name: String, reason: String },
    #[error("{at}: dependency cycle: {}", cycle.join(" -> "))]
    Cycle { at: Location, cycle: Vec<String> },
    #[error("{at}: patch `{name}` not found: {} does not exist", path.display())]
    MissingPatch { at: Location, name: String, path: PathBuf },
    #[error("{at}: file `{name}` not found: {} does not exist", path.display())]
    MissingFile { at: Location, name: String, path: PathBuf },
    #[error("{at}: source file name `{file}` is also used by {other} with a different sha256")]
    FileClash { at: Location, file: String, other: String },
    /// A patch or config file that is a symlink (or sits under one) leading out of the project:
    /// its content would be host data fed into a build.
    #[error("{at}: {what} `{}` resolves to {}, outside the project", path.display(), target.display())]
    Escapes { at: Location, what: &'static str, path: PathBuf, target: PathBuf },
    #[error("{config}: [pack] packages: `{package}`: {message}")]
    ImageSelection { config: PathBuf, package: String, message: String },
    #[error("{config}: [features] {package}: {message}")]
    FeatureSelection { config: PathBuf, package: String, message: String },
    #[error("no recipe named `{name}`{hint}")]
    NotFound { name: String, hint: String },
}

impl RecipeError {
    /// The file position the error points at, when it is about one place in one recipe.
    pub fn location(&self) -> Option<&Location> {
        match self {
            RecipeError::Syntax { at, .. }
            | RecipeError::Invalid { at, .. }
            | RecipeError::Duplicate { at, .. }
            | RecipeError::UnknownDependency { at, .. }
            | RecipeError::Cycle { at, .. }
            | RecipeError::MissingPatch { at, .. }
            | RecipeError::MissingFile { at, .. }
            | RecipeError::FileClash { at, .. }
            | RecipeError::Escapes { at, .. } => Some(at),
            RecipeError::Read { .. }
            | RecipeError::ListDir { .. }
            | RecipeError::NotFound { .. }
            | RecipeError::FeatureSelection { .. }
            | RecipeError::ImageSelection { .. } => None,
        }
    }
}

/// Which tree a recipe belongs to, from the directory its file sits in. As JSON: `"target"`,
/// `"tools"`, `"native"`, `"toolchain"` (its [`Kind::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `recipes/NAME.toml`: built for the target architecture, installed into the initrd.
    Target,
    /// `recipes/tools/NAME.toml`: built for the host, provides the sandbox's `/ovm/tools`.
    Tools,
    /// `recipes/native/NAME.toml`: built for the host like the tools, but seen (at `/ovm/native`,
    /// first on PATH) only by the target packages that name it in `native`.
    Native,
    /// `recipes/toolchain/NAME.toml`: a part of the cross toolchain.
    Toolchain,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Target, Kind::Tools, Kind::Native, Kind::Toolchain];

    /// The directory under `recipes/` holding this kind ("" for target recipes).
    pub fn subdir(self) -> &'static str {
        match self {
            Kind::Target => "",
            Kind::Tools => "tools",
            Kind::Native => "native",
            Kind::Toolchain => "toolchain",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Target => "target",
            Kind::Tools => "tools",
            Kind::Native => "native",
            Kind::Toolchain => "toolchain",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated recipe. Paths are absolute and known to exist at load time.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub name: String,
    pub kind: Kind,
    pub version: String,
    /// SPDX expression.
    pub license: String,
    /// The license texts, relative to the unpacked source tree (`/ovm/src`): copied into the
    /// staged output by the package step (a missing one is a QA finding), shipped by `ovm
    /// legal-info`.
    pub license_files: Vec<String>,
    pub homepage: Option<String>,
    pub description: Option<String>,
    /// Recipes of the same kind whose staged output forms `/ovm/sysroot`.
    pub depends: Vec<String>,
    /// `recipes/native/` recipes whose output this package's steps run (on PATH from
    /// `/ovm/native/bin`), with the native recipes they depend on; only target recipes name them.
    pub native: Vec<String>,
    /// Packages whose files this one replaces in the image where both install the same path
    /// (busybox's `/sbin/blkid` by util-linux's); it is layered after them. Any other path two
    /// packages share is a conflict that fails the pack.
    pub replaces: Vec<String>,
    /// `files` entries from `config/`, in recipe order.
    pub files: Vec<ConfigFile>,
    /// Every patch to apply, in order: `patches/NAME-VERSION.patch`, then `patches/NAME/*.patch` in
    /// byte order of their names, then the recipe's `patches` list in its order.
    pub patches: Vec<PathBuf>,
    pub sources: Vec<Source>,
    /// `None` only for toolchain recipes: see [`Recipe::is_prebuilt`].
    pub build: Option<Build>,
    /// `[limits]`: the sandbox limits of this package's steps; unset fields take the project's.
    pub limits: RecipeLimits,
    /// `[features.NAME]`, resolved for this project: `depends` and the build's arguments above
    /// already hold what the enabled ones add.
    pub features: BTreeMap<String, Feature>,
    /// `[package]`: stripping, split rules and waived QA checks (target recipes only).
    pub package: Packaging,
    /// The recipe file.
    pub path: PathBuf,
}

/// How a target recipe's install becomes its packages (`[package]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packaging {
    /// Strip programs and libraries, keeping their debug info in `PKG-dbg` (default on).
    pub strip: bool,
    /// The recipe's split patterns, tried before the defaults.
    pub rules: crate::split::Rules,
    /// QA checks this package may fail, each with the recipe's reason.
    pub waive: crate::qa::Waivers,
}

impl Default for Packaging {
    fn default() -> Packaging {
        Packaging { strip: true, rules: crate::split::Rules::default(), waive: Default::default() }
    }
}

impl Packaging {
    /// What the package task's signature holds of it.
    pub fn describe(&self) -> String {
        let waived: Vec<&str> = self.waive.keys().map(|c| c.name()).collect();
        format!("strip={};rules={};waive={}", self.strip, self.rules.describe(), waived.join(","))
    }
}

/// An optional part of a package (Yocto's PACKAGECONFIG), as this project has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    pub description: Option<String>,
    /// The recipe's default.
    pub default: bool,
    /// Whether it is on in this project (the default, or `[features]` in config/ovm.toml).
    pub enabled: bool,
    /// The dependencies it adds while on.
    pub depends: Vec<String>,
}

/// A recipe's `[limits]` section (`pids = 2048`, `memory = "8G"`); `None` takes the project's
/// `[sandbox]` setting. They bound the build, so they are not part of the package's signature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecipeLimits {
    pub pids: Option<u64>,
    /// Bytes.
    pub memory: Option<u64>,
}

impl Recipe {
    /// A toolchain recipe without `[build]` describes something that is used as shipped (the zig
    /// wheel): its sources are unpacked (honouring `dest`/`strip`) into `toolchain/NAME/`, patched,
    /// and nothing is compiled. Target and tools recipes always have a `[build]`.
    pub fn is_prebuilt(&self) -> bool {
        self.build.is_none()
    }

    /// The kconfig `.config` of a Kconfig tree: for `style = "kbuild"`, the `files` entry whose
    /// name ends in `.config` (validation allows one). It is what the default configure step
    /// copies to `.config` and what `ovm menuconfig` edits. Detected rather than declared: the
    /// default steps already relied on this rule, and one rule keeps the two in step.
    pub fn kconfig_file(&self) -> Option<&ConfigFile> {
        let kbuild = self.build.as_ref().is_some_and(|b| b.style == Style::Kbuild);
        self.files.iter().find(|f| kbuild && is_kconfig_name(&f.name))
    }
}

/// A `files` entry a kbuild recipe's kconfig starts from: `*.config`.
pub(crate) fn is_kconfig_name(name: &str) -> bool {
    name.ends_with(".config")
}

/// A file under `config/` that a build reads, visible read-only at `/ovm/files/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// As written in the recipe (relative to `config/`).
    pub name: String,
    /// Absolute path on the host.
    pub path: PathBuf,
}

/// One source of a package: the bytes it needs (the primary [`Artifact`]), acceptable other bytes
/// ([`Alternative`]s), and how they go into the source tree.
#[derive(Debug, Clone)]
pub struct Source {
    /// The recipe this source belongs to, for messages.
    pub recipe: String,
    pub primary: Artifact,
    /// Tried, in order, only when the primary bytes cannot be had.
    pub alternatives: Vec<Alternative>,
    /// Where the source lands inside `/ovm/src` (empty: the tree itself).
    pub dest: PathBuf,
    /// Leading path components dropped when unpacking.
    pub strip: usize,
    /// `false`: the file is copied into `dest` as is.
    pub unpack: bool,
}

impl Source {
    /// Every set of bytes this source accepts, primary first.
    pub fn artifacts(&self) -> impl Iterator<Item = &Artifact> {
        std::iter::once(&self.primary).chain(self.alternatives.iter().map(|a| &a.artifact))
    }
}

/// The archive formats ovm unpacks, told apart by file name. Validation refuses a source to unpack
/// whose name has none of them; `unpack` reads each format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    Tar,
    TarGz,
    TarXz,
    TarBz2,
    TarZst,
    /// Also Python wheels (`.whl`), which are zip files: the zig toolchain ships as one.
    Zip,
}

impl ArchiveFormat {
    /// Recognised suffixes, for messages.
    pub const SUFFIXES: &'static [&'static str] = &[
        ".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tbz", ".tar.zst", ".tzst", ".zip", ".whl",
    ];

    pub fn from_file_name(name: &str) -> Option<ArchiveFormat> {
        let n = name.to_ascii_lowercase();
        let table: [(&[&str], ArchiveFormat); 6] = [
            (&[".tar.gz", ".tgz"], ArchiveFormat::TarGz),
            (&[".tar.xz", ".txz"], ArchiveFormat::TarXz),
            (&[".tar.bz2", ".tbz2", ".tbz"], ArchiveFormat::TarBz2),
            (&[".tar.zst", ".tzst"], ArchiveFormat::TarZst),
            (&[".tar"], ArchiveFormat::Tar),
            (&[".zip", ".whl"], ArchiveFormat::Zip),
        ];
        table.iter().find(|(suffixes, _)| suffixes.iter().any(|s| n.ends_with(s))).map(|(_, f)| *f)
    }
}

/// One exact set of bytes (identified by sha256) and every place it may be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Name under `sources/`.
    pub file: String,
    /// Lower-case hex.
    pub sha256: String,
    /// The recipe's `url` followed by its `mirrors`, in order.
    pub urls: Vec<String>,
    pub debian: Option<DebianSource>,
    pub pypi: Option<PypiSource>,
}

/// A file of a Debian source package, fetched with `apt-get source --download-only`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianSource {
    pub package: String,
    /// The file to keep, e.g. `busybox_1.35.0.orig.tar.bz2`.
    pub file: String,
    /// Debian version to request (`NAME=VERSION`); `None`: apt's candidate.
    pub version: Option<String>,
}

/// A file of a PyPI release, found through the package index's simple API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PypiSource {
    pub package: String,
    pub version: String,
    pub file: String,
}

/// Bytes other than the upstream ones that are acceptable for a source (a Debian `-dfsg` repack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    pub artifact: Artifact,
    /// The version these bytes carry (`4.3+dfsg`), recorded as an input of the package.
    pub version: String,
    /// Why these bytes differ, for people reading logs and manifests.
    pub reason: String,
}

/// The build style: which default configure/compile/install steps a recipe gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// `./configure --host=$TARGET --prefix=/usr ARGS`, `make`, `make DESTDIR=$DESTDIR install`.
    Autotools,
    /// `make ARGS`, `make ARGS DESTDIR=$DESTDIR install`.
    Make,
    /// Linux/busybox-style Kconfig trees (`make oldconfig`, `make`, `make install`).
    Kbuild,
    /// CMake projects: a toolchain file for the sandbox's cross compiler and sysroot, `cmake`
    /// with `configure_args`, `cmake --build`, `cmake --install` into DESTDIR. Needs the cmake
    /// native tool (and generates for ninja when the recipe names that one too).
    Cmake,
    /// No default steps: only the recipe's snippets run.
    Custom,
}

impl Style {
    pub fn name(self) -> &'static str {
        match self {
            Style::Autotools => "autotools",
            Style::Make => "make",
            Style::Kbuild => "kbuild",
            Style::Cmake => "cmake",
            Style::Custom => "custom",
        }
    }
}

/// The `[build]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub style: Style,
    /// Extra environment for every step.
    pub env: BTreeMap<String, String>,
    /// `autotools`: appended to `./configure --host=$TARGET --prefix=/usr`; `cmake`: appended to
    /// the `cmake` configure command (`-DOPTION=VALUE` …).
    pub configure_args: Vec<String>,
    /// Appended to every make call of the style (`cmake`: to the build tool's command line, make's
    /// or ninja's).
    pub make_args: Vec<String>,
    /// Regenerate the build system (`autoreconf --force --install`) after the patches: for a
    /// source without a `configure` (a git archive) or whose patches touch `configure.ac`. Runs
    /// as its own task with the build machine's autotools (see `engine::autoreconf`).
    pub autoreconf: bool,
    /// Shell snippets replacing the style's step; each runs as `/bin/sh -e` on the snippet (a file in
    /// the sandbox, never a command-line argument) in `/ovm/build`.
    pub configure: Option<String>,
    pub compile: Option<String>,
    pub install: Option<String>,
    /// `[[build.step]]`, in order: the recipe's own tasks instead of configure/compile/install
    /// (a toolchain's binutils, all-gcc, libgcc, musl … each stamped and resumable on its own).
    pub steps: Vec<NamedStep>,
    /// `[build.arch.ARCH]`: added to the above when building for that architecture.
    pub per_arch: BTreeMap<Arch, ArchBuild>,
}

/// What `[build.arch.ARCH]` adds for one architecture: arguments after the common ones, and
/// environment over the common `env`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchBuild {
    pub env: BTreeMap<String, String>,
    pub configure_args: Vec<String>,
    pub make_args: Vec<String>,
}

impl Build {
    /// `configure_args` for `arch`: the common ones, then the architecture's.
    pub fn configure_args_for(&self, arch: Arch) -> Vec<String> {
        let extra = self.per_arch.get(&arch).map(|a| a.configure_args.as_slice()).unwrap_or_default();
        self.configure_args.iter().chain(extra).cloned().collect()
    }

    /// `make_args` for `arch`: the common ones, then the architecture's.
    pub fn make_args_for(&self, arch: Arch) -> Vec<String> {
        let extra = self.per_arch.get(&arch).map(|a| a.make_args.as_slice()).unwrap_or_default();
        self.make_args.iter().chain(extra).cloned().collect()
    }

    /// `env` for `arch`: the architecture's variables over the common ones.
    pub fn env_for(&self, arch: Arch) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        if let Some(a) = self.per_arch.get(&arch) {
            env.extend(a.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        env
    }
}

/// The `${NAME}` references in a build argument, in order: each name, or (as the error) the text
/// of a `${` that does not close on a variable name.
pub fn expansions(arg: &str) -> Vec<Result<&str, &str>> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(at) = rest.find("${") {
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            out.push(Err(&rest[at..]));
            break;
        };
        let name = &after[..end];
        let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        out.push(if ok { Ok(name) } else { Err(&rest[at..at + 2 + end + 1]) });
        rest = &after[end + 1..];
    }
    out
}

/// The variables every build step's environment has (besides the recipe's own `env`): what a
/// `${NAME}` in `configure_args` or `make_args` may name. The engine's environment test checks
/// that it sets exactly these.
pub const STEP_ENV: &[&str] = &[
    "AR",
    "ARCH",
    "BUILD",
    "BUILD_TRIPLE",
    "CC",
    "CFLAGS",
    "CPPFLAGS",
    "CROSS_COMPILE",
    "CXX",
    "DESTDIR",
    "FILES",
    "HOME",
    "HOSTCC",
    "HOSTCXX",
    "JOBS",
    "KBUILD_BUILD_HOST",
    "KBUILD_BUILD_TIMESTAMP",
    "KBUILD_BUILD_USER",
    "KCONFIG_NOTIMESTAMP",
    "LANG",
    "LC_ALL",
    "LD",
    "LDFLAGS",
    "NM",
    "OBJCOPY",
    "PATH",
    "PKG_CONFIG_LIBDIR",
    "PKG_CONFIG_SYSROOT_DIR",
    "RANLIB",
    "SHELL",
    "SOURCE_DATE_EPOCH",
    "SRC",
    "STRIP",
    "SYSROOT",
    "TARGET",
    "TERM",
    "TZ",
    "ZIG_GLOBAL_CACHE_DIR",
    "ZIG_LOCAL_CACHE_DIR",
];

/// One `[[build.step]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedStep {
    pub name: crate::layout::TaskName,
    pub script: String,
}

/// Every recipe of a project, validated together, with its dependency graph.
#[derive(Debug, Clone)]
pub struct RecipeSet {
    recipes: BTreeMap<String, Recipe>,
    /// All names, dependencies before their dependents, ties broken by name.
    order: Vec<String>,
}

impl RecipeSet {
    /// Reads and validates `recipes/*.toml` and those of `recipes/{tools,native,toolchain}/`.
    pub fn load(project: &Project) -> Result<RecipeSet, RecipeError> {
        let ctx = validate::Context {
            root: project.root().to_path_buf(),
            config_dir: project.layout().config(),
            patches_dir: project.layout().patches(),
            features: project.config.features.clone(),
            config_file: project.layout().config_file(),
        };
        let mut loaded = Vec::new();
        for kind in Kind::ALL {
            let dir = project.layout().recipes().join(kind.subdir());
            for path in list_recipe_files(&dir)? {
                loaded.push(validate::load_file(&ctx, &path, kind)?);
            }
        }
        if let Some(package) = ctx.features.keys().find(|p| !loaded.iter().any(|l| &l.recipe.name == *p)) {
            return Err(RecipeError::FeatureSelection {
                config: ctx.config_file.strip_prefix(&ctx.root).unwrap_or(&ctx.config_file).to_path_buf(),
                package: package.clone(),
                message: "no recipe of that name".into(),
            });
        }
        let set = RecipeSet::from_loaded(loaded)?;
        for package in project.config.pack.packages.iter().flatten() {
            let message = match set.get(package) {
                Some(r) if r.kind == Kind::Target => continue,
                Some(r) => format!("a {} recipe; the image holds target packages (recipes/*.toml)", r.kind),
                None => format!("no recipe of that name{}", set.hint(package)),
            };
            return Err(RecipeError::ImageSelection {
                config: ctx.config_file.strip_prefix(&ctx.root).unwrap_or(&ctx.config_file).to_path_buf(),
                package: package.clone(),
                message,
            });
        }
        Ok(set)
    }

    fn from_loaded(loaded: Vec<validate::Loaded>) -> Result<RecipeSet, RecipeError> {
        validate::check_set(&loaded)?;
        let order = graph::topological_order(&loaded)?;
        let recipes = loaded.into_iter().map(|l| (l.recipe.name.clone(), l.recipe)).collect();
        Ok(RecipeSet { recipes, order })
    }

    pub fn get(&self, name: &str) -> Option<&Recipe> {
        self.recipes.get(name)
    }

    /// Like [`get`](Self::get), with an error that suggests close names.
    pub fn require(&self, name: &str) -> Result<&Recipe, RecipeError> {
        self.get(name).ok_or_else(|| RecipeError::NotFound { name: name.to_string(), hint: self.hint(name) })
    }

    pub fn len(&self) -> usize {
        self.recipes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recipes.is_empty()
    }

    /// All recipes in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Recipe> {
        self.recipes.values()
    }

    /// The recipes of one kind, in name order.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Recipe> {
        self.recipes.values().filter(move |r| r.kind == kind)
    }

    /// All recipes, each after every recipe it depends on (ties in name order, so stable).
    pub fn topological_order(&self) -> Vec<&Recipe> {
        self.order.iter().filter_map(|n| self.recipes.get(n)).collect()
    }

    /// The image's packages: `[pack] packages` (checked at load to name target recipes) and what
    /// they depend on, or every target recipe when unset; in topological order.
    pub fn image_packages(&self, selection: Option<&[String]>) -> Result<Vec<&Recipe>, RecipeError> {
        let list = match selection {
            None => self.topological_order(),
            Some(names) => self.closure(names)?,
        };
        Ok(list.into_iter().filter(|r| r.kind == Kind::Target).collect())
    }

    /// The packages whose staged outputs make `r`'s sysroot, in dependency order: its declared
    /// dependencies and theirs, transitively (Yocto's recipe-sysroot) — a static link chain needs
    /// the libraries of its libraries — and nothing undeclared.
    pub fn sysroot_of(&self, r: &Recipe) -> Result<Vec<&Recipe>, RecipeError> {
        self.closure(&r.depends)
    }

    /// The native tools `r`'s steps see: those it names and the native recipes they depend on, in
    /// dependency order (a tool of a tool must run too).
    pub fn native_of(&self, r: &Recipe) -> Result<Vec<&Recipe>, RecipeError> {
        self.closure(&r.native)
    }

    /// The named recipes and everything they depend on, transitively, in topological order.
    pub fn closure<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<&Recipe>, RecipeError> {
        let mut wanted = std::collections::BTreeSet::new();
        let mut stack = Vec::new();
        for name in names {
            stack.push(self.require(name.as_ref())?);
        }
        while let Some(recipe) = stack.pop() {
            if wanted.insert(recipe.name.as_str()) {
                stack.extend(recipe.depends.iter().filter_map(|d| self.recipes.get(d)));
            }
        }
        Ok(self.topological_order().into_iter().filter(|r| wanted.contains(r.name.as_str())).collect())
    }

    /// What `ovm download [ARCH|PKG…]` acts on: no argument or an architecture selects every recipe
    /// (every recipe is built for each architecture today); a package name selects it and its
    /// dependency closure. Result in topological order, without repeats.
    pub fn select<S: AsRef<str>>(&self, items: &[S]) -> Result<Vec<&Recipe>, RecipeError> {
        let mut names = Vec::new();
        for item in items {
            let item = item.as_ref();
            if item.parse::<Arch>().is_ok() && self.get(item).is_none() {
                return Ok(self.topological_order());
            }
            names.push(item);
        }
        if names.is_empty() {
            return Ok(self.topological_order());
        }
        self.closure(&names)
    }

    /// " (did you mean …?)" for a name no recipe has: recipes whose name contains it or is
    /// contained in it, else those closest to it by edit distance (at most 1 for short names, 2
    /// for longer: `busybx`, `zlbi`), and the architecture it looks like (`ovm download x86-65`
    /// takes an ARCH or packages). Empty when nothing is near.
    fn hint(&self, name: &str) -> String {
        let mut close: Vec<String> = self
            .recipes
            .keys()
            .filter(|k| !name.is_empty() && (k.contains(name) || name.contains(k.as_str())))
            .cloned()
            .collect();
        if close.is_empty() {
            let limit = if name.chars().count() <= 3 { 1 } else { 2 };
            let distances: Vec<(usize, &String)> = self
                .recipes
                .keys()
                .map(|k| (strsim::damerau_levenshtein(name, k), k))
                .filter(|(d, k)| *d <= limit && *d < k.chars().count())
                .collect();
            let best = distances.iter().map(|(d, _)| *d).min();
            close = distances.iter().filter(|(d, _)| Some(*d) == best).map(|(_, k)| (*k).clone()).collect();
        }
        if let Some(arch) = Arch::suggest(name) {
            close.push(format!("the architecture {arch}"));
        }
        if close.is_empty() {
            String::new()
        } else {
            format!(" (did you mean {}?)", close.join(", "))
        }
    }
}

/// The `*.toml` files directly in `dir`, sorted; a missing directory has none.
fn list_recipe_files(dir: &Path) -> Result<Vec<PathBuf>, RecipeError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(RecipeError::ListDir { dir: dir.to_path_buf(), source }),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| RecipeError::ListDir { dir: dir.to_path_buf(), source })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

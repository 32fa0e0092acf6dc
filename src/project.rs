//! The project: its root (found from the working directory, or `-C DIR`), its configuration
//! (`config/ovm.toml`, every section typed, unknown keys refused) and whether a path a recipe names
//! stays inside it ([`inside`]). Where things are below the root is `crate::layout`'s, reached
//! through [`Project::layout`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::layout::Layout;
use crate::settings::Settings;

pub use crate::layout::CONFIG_FILE;

/// SOURCE_DATE_EPOCH when neither the config nor the environment sets one:
/// 2023-11-14T22:13:20Z, a fixed instant so that two checkouts agree.
pub const DEFAULT_SOURCE_DATE_EPOCH: u64 = 1_700_000_000;

/// `[build] log_max` when the config does not set it: the most one step's log keeps.
pub const DEFAULT_LOG_MAX: u64 = 64 << 20;
/// The smallest `log_max` accepted: below it the head and tail a capped log keeps say little.
pub const MIN_LOG_MAX: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("no ovm project found at or above {0} (looked for recipes/ and config/); use -C DIR")]
    NotFound(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// A config file that does not parse or holds a value ovm does not know, at its position
    /// (`path:line:column`, 1-based, as recipe errors are given).
    #[error("{}:{line}:{column}: {message}", path.display())]
    Config { path: PathBuf, line: usize, column: usize, message: String },
    /// reproducible-builds.org: a malformed SOURCE_DATE_EPOCH must be an error, never a silent
    /// fallback, or a build meant to be reproducible quietly stamps another time.
    #[error("SOURCE_DATE_EPOCH={value:?} is malformed: expected a non-negative number of seconds since 1970 in decimal digits (what `date +%s` prints); unset it to use [build] source_date_epoch")]
    SourceDateEpoch { value: String },
}

/// `config/ovm.toml`. Every section is optional; absent fields take the defaults documented in
/// docs/configuration.md. Unknown keys are errors so that a typo never silently changes a build.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub build: BuildConfig,
    pub toolchain: ToolchainConfig,
    pub fetch: FetchConfig,
    pub pack: PackConfig,
    pub boot: BootConfig,
    pub sandbox: SandboxConfig,
    /// `[features]`: per package, the optional features (a recipe's `[features.NAME]`) turned on
    /// (`"+NAME"`) or off (`"-NAME"`) against their defaults: `dropbear = ["-zlib"]`.
    pub features: std::collections::BTreeMap<String, Vec<String>>,
    pub kernel: KernelConfig,
    pub cache: CacheConfig,
}

/// `[cache]`: remote shared-state stores behind the local one (`crate::remote_cache`; how they are
/// used is `engine::sstate`'s). Absent: the local cache alone.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Base URLs speaking bazel-remote's HTTP protocol (bazel-remote, nginx WebDAV), asked in
    /// order when the local cache misses. Credentials come from `OVM_CACHE_AUTH` or netrc, never
    /// from here.
    pub remote: Vec<String>,
    /// Upload what this tree builds to the first remote. Off by default: a remote is read-only
    /// unless the project says otherwise.
    pub write: bool,
    /// Seconds to wait for a connection, an answer or the next bytes of one before the remote
    /// counts as down for the rest of the run.
    pub timeout: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { remote: Vec::new(), write: false, timeout: 30 }
    }
}

/// `[kernel]`: the kernel modules the image carries (`crate::kernel_modules` resolves them).
/// Absent, or without `modules_from`: no modules.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KernelConfig {
    /// The directory holding `lib/modules/VERSION/`, relative to the project; a path component
    /// `ARCH` is replaced by the architecture (`.cache/test-assets/ARCH/kernel`).
    pub modules_from: Option<String>,
    /// Which `lib/modules/VERSION/`, needed only when there are several.
    pub version: Option<String>,
    /// Modules by name (`-` and `_` alike), each with its dependencies and soft dependencies.
    pub modules: Vec<String>,
    /// Named sets of modules ([`Group`](crate::kernel_modules::Group)).
    pub groups: Vec<crate::kernel_modules::Group>,
}

impl KernelConfig {
    /// `modules_from` for `arch`, under `root`; `None` when unset.
    pub fn modules_from(&self, root: &Path, arch: crate::arch::Arch) -> Option<PathBuf> {
        // Whole components only: `/srv/ARCHIVE/ARCH` names the arch once.
        self.modules_from.as_ref().map(|m| {
            root.join(
                Path::new(m)
                    .components()
                    .map(|c| if c.as_os_str() == "ARCH" { Path::new(arch.name()) } else { Path::new(c.as_os_str()) })
                    .collect::<PathBuf>(),
            )
        })
    }

    /// Whether the image asks for any module at all.
    pub fn wants_modules(&self) -> bool {
        !self.modules.is_empty() || !self.groups.is_empty()
    }
}

/// `[sandbox]`: the resource limits of every build step's sandbox (a recipe's `[limits]` overrides
/// them for its package). Absent: the sandbox's defaults (4096 processes, 3/4 of the RAM).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Processes a step may run at once.
    pub pids_max: Option<std::num::NonZeroU64>,
    /// Memory a step may use: `"4G"` or a number of bytes.
    pub memory_max: Option<crate::size::ByteSize>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuildConfig {
    /// Timestamp given to builds and written into every cpio entry.
    pub source_date_epoch: u64,
    /// Parallel jobs (packages and make jobs together); 0 means the number of cores.
    pub jobs: usize,
    /// The shared-state cache of package outputs (BitBake's sstate), relative to the project root;
    /// `OVM_SSTATE_DIR` overrides it. Default: `.cache/sstate`.
    pub sstate_dir: Option<PathBuf>,
    /// The most one step's log keeps, in bytes (`log_max = 67108864`) or with a K, M, G or T suffix
    /// (powers of 1024: `"64M"`); past it the log keeps its head and tail and says what it cut.
    #[serde(deserialize_with = "byte_size")]
    pub log_max: u64,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            source_date_epoch: DEFAULT_SOURCE_DATE_EPOCH,
            jobs: 0,
            sstate_dir: None,
            log_max: DEFAULT_LOG_MAX,
        }
    }
}

/// A [`ByteSize`](crate::size::ByteSize) (the one size syntax of config, recipes and command
/// line) of at least [`MIN_LOG_MAX`] bytes.
fn byte_size<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let crate::size::ByteSize(n) = crate::size::ByteSize::deserialize(deserializer)?;
    if n < MIN_LOG_MAX {
        return Err(serde::de::Error::custom(format!("{n} bytes is too small: at least {MIN_LOG_MAX} (64K)")));
    }
    Ok(n)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolchainConfig {
    pub kind: ToolchainSetting,
    /// For `external`: a directory with `bin/ARCH-linux-musl-*`.
    pub path: Option<PathBuf>,
}

impl Default for ToolchainConfig {
    fn default() -> Self {
        ToolchainConfig { kind: ToolchainSetting::Gcc, path: None }
    }
}

/// `[toolchain] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolchainSetting {
    /// Built from source (the default).
    Gcc,
    Zig,
    /// A directory given by `path`.
    External,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchConfig {
    /// Tried first, in order: http(s):// URLs, file:// URLs or plain directories, looked up by file name.
    pub mirrors: Vec<String>,
    /// Tried after the recipe's own URLs.
    pub backup: Vec<String>,
    /// Concurrent downloads.
    pub jobs: usize,
    /// Fall back to Debian source packages (`apt-get source --download-only`).
    pub debian: bool,
    /// Fall back to PyPI artifacts (the index's simple API).
    pub pypi: bool,
    /// Retries of one URL after a transient failure (timeout, dropped connection, 5xx).
    pub retries: u32,
    /// Seconds to wait for a TCP/TLS connection.
    pub connect_timeout: u64,
    /// Seconds to wait for any single read (or the response headers) before retrying.
    pub timeout: u64,
    /// PyPI simple-API index; default: `PIP_INDEX_URL`, else https://pypi.org/simple/.
    pub pypi_index: Option<String>,
    /// The largest source file a download may deliver, in bytes (default 4 GiB): a server that
    /// streams without end is cut off there instead of filling the disk.
    pub max_size: u64,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            mirrors: Vec::new(),
            backup: Vec::new(),
            jobs: 4,
            debian: true,
            pypi: true,
            retries: 3,
            connect_timeout: 15,
            timeout: 60,
            pypi_index: None,
            max_size: 4 << 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackConfig {
    /// The target packages the image holds, with everything they depend on (Yocto's
    /// IMAGE_INSTALL); unset: every target recipe. `ovm build ARCH` builds these.
    pub packages: Option<Vec<String>>,
    /// `gzip`, `xz`, `zstd` or `none`.
    pub compress: Compress,
    /// A directory merged over the rootfs and packages at pack time.
    pub overlay: Option<PathBuf>,
    /// Buildroot makedevs-style device/permission table, relative to the project root.
    pub device_table: PathBuf,
    /// Compression threads; 0 means one per core. Never changes the image's bytes.
    pub threads: usize,
}

impl Default for PackConfig {
    fn default() -> Self {
        PackConfig {
            packages: None,
            compress: Compress::Gzip,
            overlay: None,
            device_table: "config/device_table.txt".into(),
            threads: 0,
        }
    }
}

/// `[pack] compress`: typed here so that a misspelt format is refused when the config is loaded,
/// at its line, not when a pack first needs it. The same type is the command line's `--compress`
/// (a `clap::ValueEnum`) and the encoder's choice (`crate::pack::Compression`, which adds its
/// names and file names): one list of formats and spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compress {
    #[value(name = "none")]
    None,
    #[serde(alias = "gz")]
    #[value(name = "gzip", alias = "gz")]
    Gzip,
    #[value(name = "xz")]
    Xz,
    #[serde(alias = "zst")]
    #[value(name = "zstd", alias = "zst")]
    Zstd,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootConfig {
    /// Kernel image per architecture (x86_64 / aarch64), relative to the project root.
    pub kernel: std::collections::BTreeMap<String, PathBuf>,
    /// Extra kernel command line.
    pub append: Option<String>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Seconds `ovm boot --expect` waits at most (0 = no limit).
    pub timeout: u64,
    /// Seconds the guest may keep running after the marker or a panic before qemu is stopped.
    pub grace: u64,
}

impl Default for BootConfig {
    fn default() -> Self {
        BootConfig { kernel: Default::default(), append: None, memory_mib: 512, timeout: 120, grace: 5 }
    }
}

/// A located project: its root, its parsed configuration and the run's [`Settings`] (which the
/// fetcher, the engine and the sandboxes take from here).
#[derive(Debug, Clone)]
pub struct Project {
    root: PathBuf,
    layout: Layout,
    pub config: Config,
    settings: Settings,
    /// The config's value or the environment's, resolved (and checked) once at open.
    source_date_epoch: u64,
}

impl Project {
    /// Finds the project at `start` or the nearest parent that has both `recipes/` and `config/`.
    pub fn discover(start: &Path, settings: &Settings) -> Result<Project, ProjectError> {
        let start = start.canonicalize().map_err(|source| ProjectError::Read { path: start.to_path_buf(), source })?;
        let root = start
            .ancestors()
            .find(|d| {
                let layout = Layout::new(d.to_path_buf());
                layout.recipes().is_dir() && layout.config().is_dir()
            })
            .ok_or_else(|| ProjectError::NotFound(start.clone()))?;
        Project::open_with(root, settings)
    }

    /// Opens the project rooted exactly at `root` with no environment overrides
    /// ([`Settings::default`]): its files alone decide (what a library caller or a test wants).
    pub fn open(root: &Path) -> Result<Project, ProjectError> {
        Project::open_with(root, &Settings::default())
    }

    /// Opens the project rooted exactly at `root`, with `settings` (the environment's, for the
    /// CLI). The root is made absolute (`-C DIR` may be relative): sandbox binds, stamps' log paths
    /// and the manifest need paths that do not depend on the current directory.
    pub fn open_with(root: &Path, settings: &Settings) -> Result<Project, ProjectError> {
        let root =
            std::path::absolute(root).map_err(|source| ProjectError::Read { path: root.to_path_buf(), source })?;
        let config = load_config(&Layout::new(root.clone()).config_file())?;
        let source_date_epoch = match &settings.source_date_epoch {
            Some(value) => parse_source_date_epoch(value)?,
            None => config.build.source_date_epoch,
        };
        Ok(Project { layout: Layout::new(root.clone()), root, config, settings: settings.clone(), source_date_epoch })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// SOURCE_DATE_EPOCH: the environment overrides the config (reproducible-builds.org convention).
    pub fn source_date_epoch(&self) -> u64 {
        self.source_date_epoch
    }

    /// Every path of the project.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The run's settings (the environment's, or none; see [`Project::open_with`]).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

/// Why a project input is not [`inside`] its project.
#[derive(Debug)]
pub enum Outside {
    /// It cannot be resolved: missing, a symlink loop, an unreadable directory on the way.
    Unresolved(std::io::Error),
    /// With every symlink resolved it is this path, outside the project.
    Escapes(PathBuf),
}

/// Checks that `path` (an input found in the project: a patch, a config file, the `rootfs/`
/// skeleton), with every symlink resolved, is still inside the project `root`. Its name alone
/// proves nothing: a symlink planted in the project (`rootfs -> /etc`) would otherwise feed host
/// files, `/etc/shadow` included, into a build or an image.
pub fn inside(root: &Path, path: &Path) -> Result<(), Outside> {
    let target = std::fs::canonicalize(path).map_err(Outside::Unresolved)?;
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    if target.starts_with(&root) {
        Ok(())
    } else {
        Err(Outside::Escapes(target))
    }
}

/// The environment's SOURCE_DATE_EPOCH: decimal digits only, as reproducible-builds.org specifies
/// (`-1`, `+5`, `1e9`, `abc` and the empty string are errors; `u64::from_str` alone would take `+5`).
fn parse_source_date_epoch(value: &str) -> Result<u64, ProjectError> {
    let malformed = || ProjectError::SourceDateEpoch { value: value.to_string() };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    value.parse().map_err(|_| malformed())
}

fn load_config(path: &Path) -> Result<Config, ProjectError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(source) => return Err(ProjectError::Read { path: path.to_path_buf(), source }),
    };
    toml::from_str(&text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let (line, column) = line_column(&text, offset);
        let mut message = e.message().trim_end().to_string();
        // The parser's message names the value, not always the setting (`invalid value: integer
        // `-1`, expected u64`): say which, as `[section] key`, unless it already does.
        if let Some(key) = setting_at(&text, offset) {
            let bare = key.rsplit(' ').next().unwrap_or(&key);
            if !message.contains(&format!("`{bare}`")) {
                message = format!("{key}: {message}");
            }
        }
        ProjectError::Config { path: path.to_path_buf(), line, column, message }
    })
}

/// `[section] key` of the `key = value` line holding byte `offset` of `text` (or the header, on a
/// `[section]` line), if it is one.
fn setting_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset.min(text.len()))?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    if line.trim_start().starts_with('[') {
        // A table header (`duplicate key` points at it): the header names itself.
        return Some(line.trim().to_string());
    }
    let key = line.split_once('=')?.0.trim();
    if key.is_empty() || key.starts_with('#') {
        return None;
    }
    let section =
        before[..line_start].lines().rev().map(str::trim).find(|l| l.starts_with('[') && !l.starts_with("[["));
    Some(match section {
        Some(s) => format!("{s} {key}"),
        None => key.to_string(),
    })
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

impl Config {
    /// The configuration as TOML, every setting with its value (defaults included), in a form
    /// [`Config`] parses back to the same values: what `ovm config` prints.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_with_config(text: &str) -> (tempfile::TempDir, Result<Project, ProjectError>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("recipes")).unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
        let p = Project::discover(dir.path(), &Settings::default());
        (dir, p)
    }

    #[test]
    fn missing_sections_take_defaults() {
        let (_d, p) = project_with_config("[pack]\ncompress = \"xz\"\n");
        let p = p.unwrap();
        assert_eq!(p.config.pack.compress, Compress::Xz);
        assert_eq!(p.config.fetch.jobs, 4);
        assert_eq!(p.config.toolchain.kind, ToolchainSetting::Gcc);
        assert_eq!(p.config.build.source_date_epoch, DEFAULT_SOURCE_DATE_EPOCH);
    }

    #[test]
    fn unknown_key_is_an_error_with_file_and_position() {
        let (_d, p) = project_with_config("[pack]\ncompres = \"xz\"\n");
        let msg = p.unwrap_err().to_string();
        assert!(msg.contains("ovm.toml:2:1: ") && msg.contains("compres"), "{msg}");
    }

    #[test]
    fn sandbox_limits_parse_and_bad_ones_point_at_their_line() {
        let (_d, p) = project_with_config("[sandbox]\npids_max = 1024\nmemory_max = \"4G\"\n");
        let sandbox = p.unwrap().config.sandbox;
        assert_eq!(sandbox.pids_max.map(|n| n.get()), Some(1024));
        assert_eq!(sandbox.memory_max, Some(crate::size::ByteSize(4 << 30)));
        for (text, word) in
            [("pids_max = 0", "nonzero"), ("memory_max = \"4X\"", "4X"), ("memory_max = 0", "more than 0")]
        {
            let (_d, p) = project_with_config(&format!("[sandbox]\n\n{text}\n"));
            let msg = p.unwrap_err().to_string();
            assert!(msg.contains("ovm.toml:3:") && msg.contains(word), "{msg}");
        }
    }

    #[test]
    fn log_max_takes_bytes_or_a_suffixed_size_and_refuses_the_rest() {
        let (_d, p) = project_with_config("");
        assert_eq!(p.unwrap().config.build.log_max, DEFAULT_LOG_MAX);
        for (text, bytes) in [("\"64M\"", 64 << 20), ("\"1G\"", 1 << 30), ("\"512K\"", 512 << 10), ("100000", 100_000)]
        {
            let (_d, p) = project_with_config(&format!("[build]\nlog_max = {text}\n"));
            assert_eq!(p.unwrap().config.build.log_max, bytes, "{text}");
        }
        for bad in ["\"M\"", "\"-1M\"", "\"64X\"", "\"99999999999G\"", "-5", "1024"] {
            let (_d, p) = project_with_config(&format!("[build]\nlog_max = {bad}\n"));
            let msg = p.unwrap_err().to_string();
            assert!(msg.contains("ovm.toml:2:11: ") && msg.contains("log_max"), "{bad}: {msg}");
        }
    }

    /// Attack: `SOURCE_DATE_EPOCH=-1` or `abc` used to fall back to the default silently, so a
    /// build meant to carry a given timestamp carried another one.
    #[test]
    fn malformed_source_date_epoch_is_an_error_naming_the_value() {
        assert_eq!(parse_source_date_epoch("1700000000").unwrap(), 1_700_000_000);
        assert_eq!(parse_source_date_epoch("0").unwrap(), 0);
        for bad in ["-1", "abc", "", "+5", " 5", "1.5", "1e9", "99999999999999999999999"] {
            let msg = parse_source_date_epoch(bad).unwrap_err().to_string();
            assert!(msg.contains(&format!("SOURCE_DATE_EPOCH={bad:?}")) && msg.contains("malformed"), "{msg}");
        }
    }

    #[test]
    fn malformed_source_date_epoch_in_the_config_is_an_error_at_its_line() {
        for bad in ["-1", "\"abc\"", "1.5"] {
            let (_d, p) = project_with_config(&format!("[build]\nsource_date_epoch = {bad}\n"));
            let msg = p.unwrap_err().to_string();
            assert!(msg.contains("ovm.toml:2:") && msg.contains("source_date_epoch"), "{msg}");
        }
    }

    #[test]
    fn the_kernel_section_is_typed_and_substitutes_the_arch() {
        let (_d, p) = project_with_config("");
        let k = p.unwrap().config.kernel;
        assert!(k.modules_from.is_none() && !k.wants_modules());
        let (d, p) = project_with_config(
            "[kernel]\nmodules_from = \".cache/ARCH/k\"\nmodules = [\"ext4\"]\ngroups = [\"usb-storage\", \"dm-crypt\"]\n",
        );
        let k = p.unwrap().config.kernel;
        assert_eq!(k.modules_from(d.path(), crate::arch::Arch::Aarch64), Some(d.path().join(".cache/aarch64/k")));
        let k = KernelConfig { modules_from: Some("/srv/ARCHIVE/ARCH".into()), ..k };
        assert_eq!(k.modules_from(d.path(), crate::arch::Arch::X86_64), Some(PathBuf::from("/srv/ARCHIVE/x86_64")));
        assert_eq!(k.groups, [crate::kernel_modules::Group::UsbStorage, crate::kernel_modules::Group::DmCrypt]);
        assert!(k.wants_modules());
        for (text, word) in [("groups = [\"nvm\"]", "nvm"), ("module = [\"x\"]", "module")] {
            let (_d, p) = project_with_config(&format!("[kernel]\n{text}\n"));
            let msg = p.unwrap_err().to_string();
            assert!(msg.contains("ovm.toml:2:") && msg.contains(word), "{msg}");
        }
    }

    /// `compress = "bzip2"` used to load and fail only at the first pack; `kind = "clang"` gave a
    /// multi-line parser report without the file. Both are refused at load, at file:line:column.
    #[test]
    fn unknown_enum_values_are_refused_at_load_with_file_line_and_column() {
        for (text, at, word) in [
            ("[pack]\ncompress = \"bzip2\"\n", ":2:12: ", "bzip2"),
            ("# x\n[toolchain]\nkind = \"clang\"\n", ":3:8: ", "clang"),
            ("[kernel]\ngroups = [\"virtio\", \"nvm\"]\n", ":2:21: ", "nvm"),
        ] {
            let (_d, p) = project_with_config(text);
            let msg = p.unwrap_err().to_string();
            assert!(msg.contains(&format!("config/ovm.toml{at}")) && msg.contains(word), "{text}: {msg}");
            assert!(msg.contains("expected"), "the choices are named: {msg}");
        }
        let (_d, p) = project_with_config("[pack]\ncompress = \"zst\"\n");
        assert_eq!(p.unwrap().config.pack.compress, Compress::Zstd);
    }

    /// What `ovm config` prints parses back to the same configuration.
    #[test]
    fn the_config_as_toml_parses_back_to_itself() {
        let (_d, p) = project_with_config(
            "[pack]\ncompress = \"xz\"\n[sandbox]\nmemory_max = \"4G\"\n[build]\nlog_max = \"1M\"\n\
             [kernel]\nmodules = [\"ext4\"]\ngroups = [\"usb-storage\"]\n[features]\ndropbear = [\"-zlib\"]\n\
             [toolchain]\nkind = \"external\"\npath = \"/opt/tc\"\n[boot.kernel]\nx86_64 = \"k/vmlinuz\"\n",
        );
        let config = p.unwrap().config;
        let text = config.to_toml().unwrap();
        let back: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(format!("{back:?}"), format!("{config:?}"), "{text}");
        assert!(text.contains("compress = \"xz\"") && text.contains("memory_max = 4294967296"), "{text}");
        let default = Config::default().to_toml().unwrap();
        let back: Config = toml::from_str(&default).unwrap();
        assert_eq!(format!("{back:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn discover_walks_up_from_a_subdirectory() {
        let (d, _) = project_with_config("");
        let sub = d.path().join("recipes");
        let p = Project::discover(&sub, &Settings::default()).unwrap();
        assert_eq!(p.root(), d.path().canonicalize().unwrap());
    }

    #[test]
    fn the_settings_source_date_epoch_overrides_the_config_and_a_malformed_one_is_refused() {
        let (d, _) = project_with_config("[build]\nsource_date_epoch = 5\n");
        assert_eq!(Project::open(d.path()).unwrap().source_date_epoch(), 5);
        let given = |v: &str| Settings { source_date_epoch: Some(v.into()), ..Settings::default() };
        assert_eq!(Project::open_with(d.path(), &given("7")).unwrap().source_date_epoch(), 7);
        let msg = Project::open_with(d.path(), &given("-1")).unwrap_err().to_string();
        assert!(msg.contains("SOURCE_DATE_EPOCH=\"-1\" is malformed"), "{msg}");
    }
}

//! Fetching sources into `sources/`: every byte verified, resumable, mirror-aware, and never a
//! half-written file under a real name.
//!
//! # Why it is shaped like this
//! The contract with the rest of ovm is one function, [`Fetcher::ensure`]: give it a recipe
//! [`Source`], get back the path of a file under `sources/` whose sha256 is the recipe's (or one of
//! its alternatives'), plus which variant that is. Everything else is how to get there:
//!
//! 1. A verified file already in `sources/` costs no network access. A file there with the wrong
//!    hash is moved aside to `FILE.bad` (never used, kept for inspection) and fetched again.
//! 2. Otherwise the primary bytes are looked for, in order: the configured mirrors (`OVM_MIRRORS`
//!    then `fetch.mirrors`; http(s)://, file:// or a directory, looked up by file name), the
//!    recipe's `url` and `mirrors`, the configured backups (`fetch.backup`), then the package
//!    archives: the Debian source package (`debian`), then PyPI (`pypi`).
//! 3. Only when all of that failed are the source's alternatives (other bytes, e.g. a Debian
//!    `-dfsg` repack, with their own sha256) tried the same way, in order.
//!
//! Downloads go to `FILE.part`, resumed with HTTP `Range` after an interruption (`http`), and are
//! renamed to `FILE` only after the sha256 matched; a mismatch renames the `.part` to `FILE.bad`
//! (mode 0600: it may be anything, including a file only its owner could read) and moves on to the
//! next place. A local place (`file://` or a mirror directory) must be a regular file no larger
//! than `max_size`; it is copied with its own permission bits, so a copy is never readable by more
//! users than the original; one named by a recipe outside the project is announced with its path. A per-file `flock` (`sources/.locks/FILE.lock`) keeps two
//! threads or two ovm processes from writing the same `.part`. A failure lists every place tried
//! and why. [`Fetcher::fetch_all`] runs `ensure` for many sources on a bounded number of threads;
//! one source failing does not stop the others.

mod debian;
mod http;
mod places;
mod progress;
mod pypi;

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use places::{BadMirror, Mirror, Place};
pub use progress::ProgressMode;

use crate::project::Project;
use crate::recipe::{Artifact, Source};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Every place (and every alternative) failed; `attempts` says where and why.
    #[error("{recipe}: cannot fetch {file}; tried:{}", list_attempts(attempts))]
    Exhausted { recipe: String, file: String, attempts: Vec<Attempt> },
    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Mirror(#[from] BadMirror),
    #[error("cannot set up the HTTP client: {0}")]
    Client(reqwest::Error),
}

/// One place tried, and why it did not give the right bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// A URL, a path, or a description such as `debian source package busybox`.
    pub place: String,
    pub error: String,
    pub kind: AttemptKind,
}

/// How an attempt failed, as far as telling "this machine is offline" from "this source is
/// broken" goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// The place never answered: its name did not resolve, the connection was refused or timed
    /// out.
    Unreachable,
    /// The place answered (an HTTP status, wrong bytes, a local file that is not there).
    Answered,
    /// The Debian fallback: apt's own messages, which offline say something misleading (`You must
    /// put some 'deb-src' URIs in your sources.list`, its index having failed to download). Kept
    /// for the log, left out of the console's summary.
    Apt,
    /// The PyPI index lookup, whose failure does not say whether the index answered.
    Archive,
}

fn list_attempts(attempts: &[Attempt]) -> String {
    if attempts.is_empty() {
        return " nothing: no URL, mirror or package-archive fallback is configured for it".into();
    }
    attempts.iter().map(|a| format!("\n  - {}: {}", a.place, a.error)).collect()
}

impl FetchError {
    /// Whether this failure is the network's: some place never answered and none gave any other
    /// answer (the package-archive fallbacks aside, which fail offline in words of their own).
    /// What a machine without network gets for every source.
    pub fn unreachable(&self) -> bool {
        match self {
            FetchError::Exhausted { attempts, .. } => {
                attempts.iter().any(|a| a.kind == AttemptKind::Unreachable)
                    && attempts.iter().all(|a| a.kind != AttemptKind::Answered)
            }
            _ => false,
        }
    }

    /// The error as the console shows it: [`Display`](fmt::Display) without apt's output, which
    /// stays in the log (see [`AttemptKind::Apt`]).
    pub fn for_console(&self) -> String {
        match self {
            FetchError::Exhausted { recipe, file, attempts } => {
                let shown: Vec<Attempt> = attempts
                    .iter()
                    .map(|a| match a.kind {
                        AttemptKind::Apt => {
                            Attempt { error: "apt-get failed (its messages are in the log)".into(), ..a.clone() }
                        }
                        _ => a.clone(),
                    })
                    .collect();
                format!("{recipe}: cannot fetch {file}; tried:{}", list_attempts(&shown))
            }
            other => other.to_string(),
        }
    }
}

/// Which of a source's accepted byte sets was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variant {
    Primary,
    /// `source.alternatives[index]`, which carries `version`.
    Alternative {
        index: usize,
        version: String,
    },
}

/// Where verified bytes came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Already in `sources/`: no network access.
    Present,
    Url(String),
    Local(PathBuf),
    Debian {
        package: String,
    },
    Pypi {
        url: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Present => f.write_str("already present"),
            Origin::Url(u) => write!(f, "from {u}"),
            Origin::Local(p) => write!(f, "from {}", p.display()),
            Origin::Debian { package } => write!(f, "from Debian source package {package}"),
            Origin::Pypi { url } => write!(f, "from PyPI ({url})"),
        }
    }
}

/// A verified file in `sources/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub path: PathBuf,
    pub file: String,
    pub sha256: String,
    pub variant: Variant,
    pub origin: Origin,
}

/// Knobs of a [`Fetcher`]; [`FetchOptions::from_project`] takes them from `config/ovm.toml` and
/// the project's settings (`OVM_MIRRORS`, `PIP_INDEX_URL`).
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Concurrent downloads in [`Fetcher::fetch_all`].
    pub jobs: usize,
    /// Retries of one URL after transient failures.
    pub retries: u32,
    /// Delay before the first retry, doubled for each further one.
    pub backoff: Duration,
    pub connect_timeout: Duration,
    /// Longest wait for any single read (or for response headers).
    pub read_timeout: Duration,
    /// Tried before the recipe URLs.
    pub mirrors: Vec<Mirror>,
    /// Tried after the recipe URLs.
    pub backup: Vec<Mirror>,
    pub debian: bool,
    pub pypi: bool,
    pub pypi_index: String,
    pub progress: ProgressMode,
    /// The largest file a download or a local copy may deliver (bytes); larger ones are refused.
    pub max_size: u64,
    /// The project: a recipe's local source outside it is announced with its path. `None`: no
    /// project (every local source is announced).
    pub project_root: Option<PathBuf>,
}

impl FetchOptions {
    pub fn from_project(project: &Project) -> Result<FetchOptions, FetchError> {
        let cfg = &project.config.fetch;
        let root = project.root();
        let settings = project.settings();
        let mirrors = settings
            .mirrors
            .iter()
            .chain(&cfg.mirrors)
            .map(|m| Mirror::parse(m, root))
            .collect::<Result<Vec<_>, _>>()?;
        let backup = cfg.backup.iter().map(|m| Mirror::parse(m, root)).collect::<Result<Vec<_>, _>>()?;
        let pypi_index = cfg
            .pypi_index
            .clone()
            .or_else(|| settings.pip_index_url.clone())
            .unwrap_or_else(|| pypi::DEFAULT_INDEX.to_string());
        Ok(FetchOptions {
            jobs: cfg.jobs.max(1),
            retries: cfg.retries,
            backoff: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(cfg.connect_timeout),
            read_timeout: Duration::from_secs(cfg.timeout),
            mirrors,
            backup,
            debian: cfg.debian,
            pypi: cfg.pypi,
            pypi_index,
            progress: ProgressMode::Auto,
            max_size: cfg.max_size,
            project_root: Some(root.to_path_buf()),
        })
    }
}

/// Fetches sources into one `sources/` directory. Cheap to share between threads.
pub struct Fetcher {
    sources_dir: PathBuf,
    options: FetchOptions,
    /// Made on first use: building it loads the system's root certificates (~15-20 ms), which a
    /// build with everything in `sources/` or on a local mirror never needs.
    client: std::sync::OnceLock<reqwest::blocking::Client>,
    apt: debian::Apt,
    progress: progress::Progress,
}

impl Fetcher {
    /// A fetcher for the project's `sources/`, configured from its `config/ovm.toml`.
    pub fn new(project: &Project) -> Result<Fetcher, FetchError> {
        Fetcher::with_options(
            project.layout().sources(),
            &project.layout().cache(),
            FetchOptions::from_project(project)?,
        )
    }

    /// A fetcher writing to `sources_dir`, keeping its apt state under `cache_dir/apt`.
    pub fn with_options(sources_dir: PathBuf, cache_dir: &Path, options: FetchOptions) -> Result<Fetcher, FetchError> {
        Ok(Fetcher {
            sources_dir,
            apt: debian::Apt::new(cache_dir),
            progress: progress::Progress::new(options.progress),
            options,
            client: std::sync::OnceLock::new(),
        })
    }

    /// The HTTP client, built the first time a download needs it.
    fn client(&self) -> Result<&reqwest::blocking::Client, FetchError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let built = reqwest::blocking::Client::builder()
            .user_agent(concat!("ovm/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.options.connect_timeout)
            .timeout(self.options.read_timeout)
            .build()
            .map_err(FetchError::Client)?;
        // Two threads may build one each; the first stored is used by all.
        Ok(self.client.get_or_init(|| built))
    }

    pub fn options(&self) -> &FetchOptions {
        &self.options
    }

    /// Sets the number of concurrent downloads of [`fetch_all`](Self::fetch_all).
    pub fn set_jobs(&mut self, jobs: usize) {
        self.options.jobs = jobs.max(1);
    }

    /// The verified file for `source`: already present, or fetched now (see the module docs for the
    /// order of places). Only the primary bytes are looked for until every place for them failed.
    pub fn ensure(&self, source: &Source) -> Result<Fetched, FetchError> {
        self.create_dir(&self.sources_dir)?;
        self.create_dir(&self.sources_dir.join(".locks"))?;
        let variants: Vec<(Variant, &Artifact)> =
            std::iter::once((Variant::Primary, &source.primary))
                .chain(
                    source.alternatives.iter().enumerate().map(|(index, alt)| {
                        (Variant::Alternative { index, version: alt.version.clone() }, &alt.artifact)
                    }),
                )
                .collect();

        for (variant, artifact) in &variants {
            let _lock = self.lock(&artifact.file)?;
            if let Some(path) = self.present(artifact)? {
                return Ok(fetched(path, artifact, variant.clone(), Origin::Present));
            }
        }
        let mut attempts = Vec::new();
        for (variant, artifact) in &variants {
            let _lock = self.lock(&artifact.file)?;
            // Another process may have fetched it while we waited for the lock.
            if let Some(path) = self.present(artifact)? {
                return Ok(fetched(path, artifact, variant.clone(), Origin::Present));
            }
            if let Some((path, origin)) = self.obtain(&source.recipe, artifact, &mut attempts)? {
                if let Variant::Alternative { version, .. } = variant {
                    self.progress.note(&format!(
                        "{}: upstream bytes unavailable; using alternative {} (version {version})",
                        source.recipe, artifact.file
                    ));
                }
                return Ok(fetched(path, artifact, variant.clone(), origin));
            }
        }
        Err(FetchError::Exhausted { recipe: source.recipe.clone(), file: source.primary.file.clone(), attempts })
    }

    /// [`ensure`](Self::ensure) for many sources, `jobs` at a time. Sources with identical bytes
    /// (several recipes sharing a tarball) are fetched once. Results are in input order.
    pub fn fetch_all(&self, sources: &[&Source]) -> FetchReport {
        let mut unique: Vec<&Source> = Vec::new();
        for s in sources {
            if !unique.iter().any(|u| u.primary == s.primary && u.alternatives == s.alternatives) {
                unique.push(s);
            }
        }
        let next = AtomicUsize::new(0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            for _ in 0..self.options.jobs.clamp(1, unique.len().max(1)) {
                let tx = tx.clone();
                let (next, unique) = (&next, &unique);
                scope.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(source) = unique.get(i) else { break };
                    if tx.send((i, self.ensure(source))).is_err() {
                        break;
                    }
                });
            }
        });
        drop(tx);
        let mut results: Vec<Option<Result<Fetched, FetchError>>> = (0..unique.len()).map(|_| None).collect();
        for (i, r) in rx {
            results[i] = Some(r);
        }
        let items = unique
            .iter()
            .zip(results)
            .filter_map(|(s, r)| {
                r.map(|result| FetchItem { recipe: s.recipe.clone(), file: s.primary.file.clone(), result })
            })
            .collect();
        FetchReport { items }
    }

    fn create_dir(&self, dir: &Path) -> Result<(), FetchError> {
        fs::create_dir_all(dir).map_err(|source| FetchError::Io { path: dir.to_path_buf(), source })
    }

    fn lock(&self, file: &str) -> Result<nix::fcntl::Flock<File>, FetchError> {
        let path = self.sources_dir.join(".locks").join(format!("{file}.lock"));
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| FetchError::Io { path: path.clone(), source })?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| FetchError::Io { path, source: e.into() })
    }

    fn final_path(&self, artifact: &Artifact) -> PathBuf {
        self.sources_dir.join(&artifact.file)
    }

    fn part_path(&self, artifact: &Artifact) -> PathBuf {
        self.sources_dir.join(format!("{}.part", artifact.file))
    }

    fn bad_path(&self, artifact: &Artifact) -> PathBuf {
        self.sources_dir.join(format!("{}.bad", artifact.file))
    }

    /// The artifact's file if it is in `sources/` with the right hash. A wrong one is moved aside.
    fn present(&self, artifact: &Artifact) -> Result<Option<PathBuf>, FetchError> {
        let path = self.final_path(artifact);
        if !path.is_file() {
            return Ok(None);
        }
        let sum = sha256_file(&path).map_err(|source| FetchError::Io { path: path.clone(), source })?;
        if sum == artifact.sha256 {
            return Ok(Some(path));
        }
        let bad = self.bad_path(artifact);
        self.progress.note(&format!(
            "{}: sha256 is {sum}, expected {}; moved aside to {} and fetching again",
            path.display(),
            artifact.sha256,
            bad.display()
        ));
        private(&path)?;
        fs::rename(&path, &bad).map_err(|source| FetchError::Io { path: bad, source })?;
        Ok(None)
    }

    /// Verifies the `.part` and renames it into place, or renames it to `.bad`. `Err(message)` is
    /// the mismatch, for the list of attempts.
    fn settle(&self, artifact: &Artifact) -> Result<Result<PathBuf, String>, FetchError> {
        let part = self.part_path(artifact);
        let sum = sha256_file(&part).map_err(|source| FetchError::Io { path: part.clone(), source })?;
        if sum == artifact.sha256 {
            let path = self.final_path(artifact);
            fs::rename(&part, &path).map_err(|source| FetchError::Io { path: path.clone(), source })?;
            return Ok(Ok(path));
        }
        let bad = self.bad_path(artifact);
        private(&part)?;
        fs::rename(&part, &bad).map_err(|source| FetchError::Io { path: bad.clone(), source })?;
        Ok(Err(format!("sha256 mismatch: got {sum}, expected {} (kept as {})", artifact.sha256, bad.display())))
    }

    /// Whether `path`, with every symlink resolved, is inside the project (`false` without one,
    /// or when it cannot be resolved: then the read fails and names it anyway).
    fn inside_project(&self, path: &Path) -> bool {
        self.options.project_root.as_deref().is_some_and(|root| crate::project::inside(root, path).is_ok())
    }

    fn http_policy(&self) -> http::HttpPolicy {
        http::HttpPolicy {
            retries: self.options.retries,
            backoff: self.options.backoff,
            max_size: self.options.max_size,
        }
    }

    /// Tries every place for one artifact; `None` when all failed (each failure added to `attempts`).
    /// `recipe` names the package at the `fetch.partial` fault point.
    fn obtain(
        &self,
        recipe: &str,
        artifact: &Artifact,
        attempts: &mut Vec<Attempt>,
    ) -> Result<Option<(PathBuf, Origin)>, FetchError> {
        let file = artifact.file.as_str();
        let part = self.part_path(artifact);
        // Each place with whether the recipe named it (rather than the user's mirror settings).
        let places: Vec<(Place, bool)> = self
            .options
            .mirrors
            .iter()
            .filter_map(|m| m.locate(file))
            .map(|p| (p, false))
            .chain(artifact.urls.iter().filter_map(|u| places::place_of_url(u)).map(|p| (p, true)))
            .chain(self.options.backup.iter().filter_map(|m| m.locate(file)).map(|p| (p, false)))
            .collect();
        for (place, from_recipe) in places {
            let got = match &place {
                Place::Http(url) => {
                    http::download(self.client()?, url, &part, file, &self.http_policy(), &self.progress, recipe)
                        .map_err(|e| {
                            let kind = if e.unreachable { AttemptKind::Unreachable } else { AttemptKind::Answered };
                            (e.message, kind)
                        })
                }
                Place::Local(path) => {
                    if from_recipe && !self.inside_project(path) {
                        // Host data the recipe pulls in: say where it comes from before it is read.
                        self.progress
                            .note(&format!("{recipe}: {file}: reading {}, outside the project", path.display()));
                    }
                    copy_local(path, &part, recipe, self.options.max_size).map_err(|e| (e, AttemptKind::Answered))
                }
            };
            let origin = match &place {
                Place::Http(url) => Origin::Url(url.to_string()),
                Place::Local(path) => Origin::Local(path.clone()),
            };
            match got {
                Ok(()) => match self.settle(artifact)? {
                    Ok(path) => return Ok(Some((path, origin))),
                    Err(error) => {
                        attempts.push(Attempt { place: place.to_string(), error, kind: AttemptKind::Answered })
                    }
                },
                Err((error, kind)) => {
                    // A place that never answered is the network's business: every place tried is
                    // listed in the error (and the task's log) if none gives the file, and an
                    // offline run would otherwise print a line per mirror. A place that answered
                    // with something wrong (a FIFO or device in a mirror, an oversized file) is
                    // said at once, even when a later place gives the file: someone should look
                    // at that mirror.
                    if kind == AttemptKind::Answered {
                        self.progress.note(&format!("{file}: {place}: {error}"));
                    } else {
                        tracing::debug!("{file}: {place}: {error}");
                    }
                    attempts.push(Attempt { place: place.to_string(), error, kind });
                }
            }
        }

        if let Some(deb) = artifact.debian.as_ref().filter(|_| self.options.debian) {
            let place = format!("Debian source package {} ({})", deb.package, deb.file);
            tracing::debug!("{file}: trying {place}");
            let got = self.apt.fetch(deb).and_then(|obtained| {
                debian::move_file(&obtained.path, &part)
                    .map_err(|e| format!("cannot move into {}: {e}", part.display()))
            });
            match got {
                Ok(()) => match self.settle(artifact)? {
                    Ok(path) => return Ok(Some((path, Origin::Debian { package: deb.package.clone() }))),
                    Err(error) => attempts.push(Attempt { place, error, kind: AttemptKind::Answered }),
                },
                Err(error) => attempts.push(Attempt { place, error, kind: AttemptKind::Apt }),
            }
        }

        if let Some(py) = artifact.pypi.as_ref().filter(|_| self.options.pypi) {
            let place = format!("PyPI {} {} ({})", py.package, py.version, py.file);
            tracing::debug!("{file}: trying {place}");
            let client = self.client()?;
            let got = pypi::locate(client, &self.options.pypi_index, py).and_then(|found| {
                if let Some(sha) = found.sha256.as_ref().filter(|s| **s != artifact.sha256) {
                    return Err(format!("the index lists sha256 {sha} for it, the recipe expects {}", artifact.sha256));
                }
                http::download(client, &found.url, &part, file, &self.http_policy(), &self.progress, recipe)
                    .map(|()| found.url.to_string())
                    .map_err(|e| format!("{}: {}", found.url, e.message))
            });
            match got {
                Ok(url) => match self.settle(artifact)? {
                    Ok(path) => return Ok(Some((path, Origin::Pypi { url }))),
                    Err(error) => attempts.push(Attempt { place, error, kind: AttemptKind::Answered }),
                },
                // The index lookup does not say whether PyPI answered: not taken as a sign either
                // way of being offline.
                Err(error) => attempts.push(Attempt { place, error, kind: AttemptKind::Archive }),
            }
        }
        Ok(None)
    }
}

fn fetched(path: PathBuf, artifact: &Artifact, variant: Variant, origin: Origin) -> Fetched {
    Fetched { path, file: artifact.file.clone(), sha256: artifact.sha256.clone(), variant, origin }
}

/// Makes a file about to become `FILE.bad` readable by its owner only: it failed verification,
/// so it may be anything, a root-only file a recipe named included. A symlink is left as it is
/// (changing it would change its target).
fn private(path: &Path) -> Result<(), FetchError> {
    use std::os::unix::fs::PermissionsExt as _;
    let md = fs::symlink_metadata(path).map_err(|source| FetchError::Io { path: path.to_path_buf(), source })?;
    if md.file_type().is_symlink() || md.permissions().mode() & 0o7077 == 0 {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(md.permissions().mode() & 0o700))
        .map_err(|source| FetchError::Io { path: path.to_path_buf(), source })
}

/// Refuses anything but a regular file no larger than `max_size`: a FIFO would block the fetch
/// forever, `/dev/zero` would fill the disk, a directory or socket has no bytes to verify.
fn check_local(md: &fs::Metadata, max_size: u64) -> Result<(), String> {
    if !md.file_type().is_file() {
        return Err(format!(
            "{}, not a regular file: a local source must be a regular file; not read",
            crate::file_kind::described(md.file_type())
        ));
    }
    if md.len() > max_size {
        return Err(format!(
            "the file is {} bytes, more than the size limit of {max_size} bytes ([fetch] max_size); not copied",
            md.len()
        ));
    }
    Ok(())
}

/// Copies a local file (a `file://` URL or a mirror directory's entry) into the `.part`, with its
/// permission bits (never more readable than the original), and no resume: local reads are cheap.
/// The first half is written on its own, so the `fetch.partial` fault point sees a half-written
/// `.part`.
fn copy_local(from: &Path, part: &Path, recipe: &str, max_size: u64) -> Result<(), String> {
    use io::Read as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    // Looked at before opening: opening a device can act on its own (a tape rewinds, a watchdog
    // starts counting), and opening a FIFO waits for a writer.
    check_local(&fs::metadata(from).map_err(|e| format!("cannot read it: {e}"))?, max_size)?;
    // O_NONBLOCK: should a FIFO have been put there since, the open returns at once instead of
    // waiting for a writer; O_NOCTTY: a terminal put there never becomes ours.
    let input = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(from)
        .map_err(|e| format!("cannot read it: {e}"))?;
    // What was opened decides, whatever the path pointed at a moment ago.
    let md = input.metadata().map_err(|e| format!("cannot read it: {e}"))?;
    check_local(&md, max_size)?;
    // A `.part` left by an earlier attempt would keep its own mode: the new one gets the
    // original's permission bits (less the umask), so a root-only file stays root-only.
    match fs::remove_file(part) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot remove {}: {e}", part.display())),
    }
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(md.permissions().mode() & 0o666)
        .open(part)
        .map_err(|e| format!("cannot create {}: {e}", part.display()))?;
    let copy_err = |e: io::Error| format!("copying to {}: {e}", part.display());
    let first = io::copy(&mut (&input).take(md.len() / 2), &mut out).map_err(copy_err)?;
    crate::fault::point("fetch.partial", recipe);
    // A file still growing is cut at the limit, like an endless download.
    let limit = max_size.saturating_sub(first).saturating_add(1);
    let rest = io::copy(&mut (&input).take(limit), &mut out).map_err(copy_err)?;
    if first + rest > max_size {
        drop(out);
        let _ = fs::remove_file(part);
        return Err(format!(
            "the file grew past the size limit of {max_size} bytes ([fetch] max_size) while being copied; \
             stopped and discarded"
        ));
    }
    out.sync_all().map_err(|e| format!("cannot flush {}: {e}", part.display()))
}

pub use crate::digest::sha256_file;

/// The outcome of [`Fetcher::fetch_all`], one item per distinct source.
#[derive(Debug)]
pub struct FetchReport {
    pub items: Vec<FetchItem>,
}

#[derive(Debug)]
pub struct FetchItem {
    pub recipe: String,
    /// The primary file name (the one the recipe names).
    pub file: String,
    pub result: Result<Fetched, FetchError>,
}

impl FetchReport {
    pub fn is_success(&self) -> bool {
        self.items.iter().all(|i| i.result.is_ok())
    }

    pub fn failures(&self) -> impl Iterator<Item = (&FetchItem, &FetchError)> {
        self.items.iter().filter_map(|i| i.result.as_ref().err().map(|e| (i, e)))
    }
}

impl fmt::Display for FetchReport {
    /// One line per source, then every failure in full.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.items {
            match &item.result {
                Ok(got) => {
                    let variant = match &got.variant {
                        Variant::Primary => String::new(),
                        Variant::Alternative { version, .. } => format!(" [alternative {} {version}]", got.file),
                    };
                    writeln!(f, "ok      {:<12} {} ({}){variant}", item.recipe, item.file, got.origin)?;
                }
                Err(_) => writeln!(f, "FAILED  {:<12} {}", item.recipe, item.file)?,
            }
        }
        for (_, error) in self.failures() {
            writeln!(f, "\n{error}")?;
        }
        let failed = self.failures().count();
        write!(f, "{} of {} sources ready", self.items.len() - failed, self.items.len())?;
        if failed > 0 {
            write!(f, ", {failed} failed")?;
        }
        Ok(())
    }
}

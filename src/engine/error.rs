use std::io;
use std::path::PathBuf;

/// Everything that can stop a build; each variant names the package, file or step involved.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Recipe(#[from] crate::recipe::RecipeError),
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error(transparent)]
    Unpack(#[from] crate::unpack::UnpackError),
    #[error(transparent)]
    Patch(#[from] crate::patch::PatchError),
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error(transparent)]
    Toolchain(#[from] crate::toolchain::ToolchainError),
    #[error(transparent)]
    Pack(#[from] crate::pack::PackError),
    #[error(transparent)]
    State(#[from] super::state::StateError),
    #[error(transparent)]
    Tree(#[from] crate::tree::TreeError),
    #[error(transparent)]
    Lock(#[from] super::lock::LockError),
    #[error(transparent)]
    Fault(#[from] crate::fault::UnknownPoint),
    #[error(transparent)]
    Split(#[from] crate::split::SplitError),
    #[error(transparent)]
    Feed(#[from] crate::feed::FeedError),
    #[error(transparent)]
    Sbom(#[from] crate::sbom::SbomError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error("{}: `{package}` {why}", image.display())]
    ImagePackage { image: PathBuf, package: String, why: String },
    #[error("{}: the postprocess command `{command}` failed; its output is in {}", image.display(), log.display())]
    Postprocess { image: PathBuf, command: String, log: PathBuf },
    #[error("{package} is not built for {arch} (or was built before it kept its license files): run `ovm build {arch}` first")]
    NotBuilt { package: String, arch: String },
    #[error("{package}: its source {file} (or an accepted alternative) is not in sources/ with its sha256: run `ovm download {package}`")]
    LegalSourceMissing { package: String, file: String },
    #[error(transparent)]
    QaRead(#[from] crate::qa::QaError),
    /// QA checks failed: every finding, then how to waive one.
    #[error(
        "{package}: QA failed:\n  {}\n(fix the recipe, or waive a check with its reason in {}: [package.waive] CHECK = \"why\")",
        findings.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "),
        recipe.display()
    )]
    Qa { package: String, recipe: PathBuf, findings: Vec<crate::qa::Finding> },
    #[error(
        "{package}: {file} is still not stripped after the strip step (its log says what the toolchain's objcopy did)"
    )]
    NotStripped { package: String, file: String },
    #[error("{report}")]
    CacheCorrupt { report: String },
    #[error("{}: [cache] remote: {source}", config.display())]
    RemoteCache { config: PathBuf, source: crate::remote_cache::RemoteError },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{}: {why}; delete it, or run `ovm build --toolchain KIND ARCH` to choose again", path.display())]
    ToolchainRecord { path: PathBuf, why: String },
    #[error(
        "ovm clean would delete {what} (toolchains take up to an hour to build again) and stdin is not a \
         terminal to ask on: nothing removed; pass --yes to delete them"
    )]
    CleanNeedsYes { what: String },
    #[error("nothing removed ({what} kept)")]
    CleanDeclined { what: String },
    #[error("jobserver: {0}")]
    Jobserver(io::Error),
    #[error("{what}: at most {max} jobs (the jobserver pipe holds one byte per job)")]
    TooManyJobs { what: String, max: usize },
    #[error("cannot start the {what} step: {source}")]
    Spawn { what: String, source: io::Error },
    #[error("{package}: the {step} step failed ({})", match .status { Some(125) => "the sandbox could not be set up: see the log".to_string(), Some(c) => format!("exit status {c}"), None => "killed by a signal".to_string() })]
    StepFailed { package: String, step: String, status: Option<i32> },
    #[error(
        "{package}: the {step} step hit the sandbox's {kind} limit ({setting}){}; raise [sandbox] {kind}_max in \
         config/ovm.toml or [limits] {kind} in {}",
        evidence.map(|sign| format!(" (only rlimits here, and its log says {sign:?})")).unwrap_or_default(),
        recipe.display()
    )]
    LimitHit {
        package: String,
        step: String,
        kind: crate::sandbox::limits::LimitKind,
        setting: String,
        /// Under rlimits, the wording in the log that shows a failed fork or allocation.
        evidence: Option<&'static str>,
        recipe: PathBuf,
    },
    /// A step ran a program (or a script whose interpreter) the sandbox does not have.
    #[error("{0}")]
    ToolMissing(Box<ToolMissing>),
    #[error(
        "`{tool}` is not on this machine, and the autoreconf task (`[build] autoreconf = true`) runs the \
         build machine's autotools: on Debian, `apt install autoconf automake libtool autopoint pkgconf` \
         (scripts/setup.sh does)"
    )]
    HostAutotoolMissing { tool: String },
    #[error("{package}: depends on `{dep}`, whose output is not staged")]
    MissingDependency { package: String, dep: String },
    #[error("{package}: {file} in sources/ is not the file the fetch recorded; run the build again to refetch")]
    SourceChanged { package: String, file: String },
    #[error("shared-state entry {sig} does not match its recorded hash")]
    SstateMismatch { sig: String },
    #[error(
        "{package} has no kconfig configuration to edit: `ovm menuconfig` works on a recipe with [build] style = \
         \"kbuild\" that lists its kconfig file (`*.config`) in `files`; {recipe} has style \"{style}\"{}",
        if *.style == "kbuild" { " and no `*.config` file" } else { "" }
    )]
    NoKconfig { package: String, recipe: PathBuf, style: &'static str },
    #[error("`ovm menuconfig {package}` needs a terminal to draw its menu on: stdin and stdout must both be one")]
    NotATerminal { package: String },
    #[error(
        "{package}: `make menuconfig` failed ({}); kconfig compiles its menu with the host's cc against ncurses: \
         on Debian, `apt install gcc make libncurses-dev`",
        match .status { Some(c) => format!("exit status {c}"), None => "killed by a signal".to_string() }
    )]
    MenuconfigFailed { package: String, status: Option<i32> },
    #[error("no host architecture: ovm runs on x86_64 or aarch64 hosts")]
    UnsupportedHost,
    #[error("{0} package(s) failed")]
    Failed(usize),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What [`EngineError::ToolMissing`] says: the program, how it was run, and which recipe field
/// would put it in the sandbox.
#[derive(Debug, thiserror::Error)]
#[error(
    "{package}: the {step} step failed running `{tool}`{}, which is not in its sandbox; {}",
    via.as_ref().map(|s| format!(" (the interpreter of {s})")).unwrap_or_default(),
    match provider {
        Some(p) => format!("add `native = [\"{p}\"]` to {} (recipes/native/{p}.toml provides it)", recipe.display()),
        None => format!(
            "no recipe in recipes/native/ provides it: write one, then name it in `native` in {}",
            recipe.display()
        ),
    }
)]
pub struct ToolMissing {
    pub package: String,
    pub step: String,
    pub tool: String,
    /// The script whose `#!` line names the tool, when that is how it was run.
    pub via: Option<String>,
    /// The native recipe that provides it, if one does.
    pub provider: Option<String>,
    /// The recipe file, relative to the project.
    pub recipe: PathBuf,
}

//! The read-only questions a person asks about a project: `ovm list` (every recipe with its state
//! per domain), `ovm info PKG` (one package inside out: recipe, sources, dependencies both ways,
//! features, the inputs of each task's signature, its stamps, output and logs) and `ovm build
//! --dry-run` (which tasks of which packages a build would run, and why).
//!
//! Every state here comes from `status`'s walk ([`status::collect_query`]), so `list`, `info`,
//! `status` and `--dry-run` never disagree. Nothing here writes a file: `--dry-run` and `info`
//! walk with [`Query::read_only`](status::Query::read_only).
//!
//! The structs are what `--json` prints (serde); their field names are part of ovm's interface:
//! add fields freely, never rename or remove one without bumping the `schema` string.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::arch::Arch;
use crate::layout::{Domain, IMAGE};
use crate::project::Project;
use crate::recipe::{Kind, Recipe};
use crate::signature::Inputs;
use crate::toolchain::{Equipment, Toolchain, ToolchainKind};

use super::build::{BuildOptions, Run};
use super::context_log::ContextLog;
use super::freshness::{self, OutputCheck};
use super::status::{self, Line, Query, State};
use super::EngineError;

/// `ovm list --json`'s `schema`.
pub const LIST_SCHEMA: &str = "ovm.list/1";
/// `ovm info --json`'s `schema`.
pub const INFO_SCHEMA: &str = "ovm.info/1";
/// `ovm status --json`'s `schema`.
pub const STATUS_SCHEMA: &str = "ovm.status/1";
/// `ovm build --dry-run --json`'s `schema`.
pub const PLAN_SCHEMA: &str = "ovm.plan/1";

/// `ovm status --json`: every line of `ovm status`.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub schema: &'static str,
    /// Whether every package and image is built (`ovm status` exits 0 exactly then).
    pub all_built: bool,
    pub packages: Vec<Line>,
}

impl StatusReport {
    pub fn new(packages: Vec<Line>) -> StatusReport {
        StatusReport { schema: STATUS_SCHEMA, all_built: packages.iter().all(|l| l.state.is_built()), packages }
    }
}

/// `ovm list`: every recipe of the project.
#[derive(Debug, Serialize)]
pub struct RecipeList {
    pub schema: &'static str,
    /// The toolchain the states were assessed against (`gcc`, `zig`, `external:DIR`).
    pub toolchain: String,
    pub recipes: Vec<RecipeEntry>,
}

#[derive(Debug, Serialize)]
pub struct RecipeEntry {
    pub name: String,
    pub version: String,
    pub kind: Kind,
    pub description: Option<String>,
    /// The recipe file.
    pub recipe: PathBuf,
    /// One line per domain the package is built in (a target package: one per architecture);
    /// empty: the current toolchain does not use it (gcc's parts under zig), or no target recipe
    /// names it (a native tool).
    pub status: Vec<Line>,
}

/// Every recipe, with its state in each domain `arch` covers (`None`: every architecture with
/// state, as `ovm status`).
pub fn list(project: &Project, arch: Option<Arch>) -> Result<RecipeList, EngineError> {
    let run = Run::new(project, 1, false)?;
    let toolchain = run.toolchain(None)?.to_string();
    // Every target recipe, in the image or not (built on its own, or not yet), and so every
    // native tool one of them names.
    let every_target: Vec<String> = run.recipes.of_kind(Kind::Target).map(|r| r.name.clone()).collect();
    let lines = status::collect_query(project, &status::Query { arch, packages: &every_target, ..Default::default() })?;
    let mut recipes: Vec<RecipeEntry> = run
        .recipes
        .iter()
        .map(|r| RecipeEntry {
            name: r.name.clone(),
            version: r.version.clone(),
            kind: r.kind,
            description: r.description.clone(),
            recipe: r.path.clone(),
            status: lines.iter().filter(|l| l.name == r.name).cloned().collect(),
        })
        .collect();
    // Targets first (what goes into the image), then the build tools, then the toolchain.
    recipes.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    Ok(RecipeList { schema: LIST_SCHEMA, toolchain, recipes })
}

/// `ovm list` as a table: name, version, kind, then `domain: state` for each domain.
pub fn print_list(list: &RecipeList, out: &mut dyn Write) -> io::Result<()> {
    let nw = list.recipes.iter().map(|r| r.name.len()).max().unwrap_or(0).max(4);
    let vw = list.recipes.iter().map(|r| r.version.len()).max().unwrap_or(0).max(7);
    writeln!(out, "{:<nw$}  {:<vw$}  {:<9}  STATUS", "NAME", "VERSION", "KIND")?;
    for r in &list.recipes {
        let states: Vec<String> = r.status.iter().map(|l| format!("{}: {}", l.domain, l.state.word())).collect();
        let states = match (states.is_empty(), r.kind) {
            (false, _) => states.join(", "),
            (true, Kind::Native) => "unused (no target recipe names it)".to_string(),
            (true, _) => format!("unused (toolchain {})", list.toolchain),
        };
        writeln!(out, "{:<nw$}  {:<vw$}  {:<9}  {states}", r.name, r.version, r.kind.name())?;
    }
    Ok(())
}

/// `ovm info PKG`.
#[derive(Debug, Serialize)]
pub struct PackageInfo {
    pub schema: &'static str,
    pub name: String,
    pub version: String,
    pub kind: Kind,
    pub license: String,
    pub description: Option<String>,
    pub homepage: Option<String>,
    pub recipe: PathBuf,
    /// The build style (`autotools`, `make`, `kbuild`, `custom`); `null` for a prebuilt toolchain.
    pub style: Option<&'static str>,
    pub sources: Vec<SourceInfo>,
    pub patches: Vec<PathBuf>,
    /// Config files (`files = […]`), as the recipe names them under `config/`.
    pub files: Vec<String>,
    /// Declared dependencies (with the enabled features' ones).
    pub depends: Vec<String>,
    /// Every package whose output makes its sysroot: the dependencies' closure, in build order.
    pub sysroot: Vec<String>,
    /// The native tools its steps see (`/ovm/native`): those it names and theirs, in build order.
    pub native: Vec<String>,
    /// Packages that declare it as a dependency.
    pub required_by: Vec<String>,
    /// Packages that have it in their sysroot (its reverse closure), in build order.
    pub required_by_all: Vec<String>,
    pub replaces: Vec<String>,
    pub features: Vec<FeatureInfo>,
    /// The domain it is built in for the architecture asked about; `null`: the current toolchain
    /// does not use it, and nothing below is known.
    pub domain: Option<String>,
    /// Its `ovm status` line.
    pub status: Option<Line>,
    pub tasks: Vec<TaskInfo>,
    pub output: Option<OutputInfo>,
    /// `logs/D/context.log`: one line per task event of the domain.
    pub context_log: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct SourceInfo {
    /// Name under `sources/`.
    pub file: String,
    pub sha256: String,
    /// The recipe's `url` then its `mirrors`, in order.
    pub urls: Vec<String>,
    /// `PACKAGE` or `PACKAGE=VERSION` of a Debian source package it may come from.
    pub debian: Option<String>,
    /// `PACKAGE==VERSION` of a PyPI release it may come from.
    pub pypi: Option<String>,
    pub alternatives: Vec<AlternativeInfo>,
    /// Where it lands inside `/ovm/src` (empty: the tree itself).
    pub dest: PathBuf,
    pub strip: usize,
    pub unpack: bool,
    /// Whether `sources/FILE` is there (not checked against the sha256: that is the fetch's job).
    pub downloaded: bool,
}

#[derive(Debug, Serialize)]
pub struct AlternativeInfo {
    pub file: String,
    pub sha256: String,
    pub urls: Vec<String>,
    pub version: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct FeatureInfo {
    pub name: String,
    pub description: Option<String>,
    pub default: bool,
    pub enabled: bool,
    pub depends: Vec<String>,
}

/// Where one task stands against its stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Its stamp's signature is the one its inputs give now.
    Current,
    /// It has a stamp, made from other inputs.
    Changed,
    /// It has no stamp.
    NeverRan,
    /// Its inputs are not known until the sources are fetched again.
    Unknown,
}

#[derive(Debug, Serialize)]
pub struct TaskInfo {
    pub name: String,
    pub state: TaskState,
    /// Its signature now (`null` when [`TaskState::Unknown`]).
    pub signature: Option<String>,
    /// The inputs that make that signature, name → value (long values as `sha256:HEX`).
    pub inputs: Option<Inputs>,
    pub stamp: Option<StampInfo>,
    /// `logs/D/PKG/TASK.log` and whether it is there.
    pub log: PathBuf,
    pub log_exists: bool,
}

#[derive(Debug, Serialize)]
pub struct StampInfo {
    pub signature: String,
    pub duration_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct OutputInfo {
    /// `staging/D/PKG/`.
    pub staged: PathBuf,
    pub exists: bool,
    /// Regular files and the sum of their sizes (each hard link counted).
    pub files: u64,
    pub bytes: u64,
    /// The output hash the `package` stamp recorded.
    pub hash: Option<String>,
}

/// Everything about `pkg`, as built for `arch` (a target package) or for the host.
pub fn info(project: &Project, pkg: &str, arch: Arch) -> Result<PackageInfo, EngineError> {
    let run = Run::new(project, 1, false)?;
    let r = run.recipes.require(pkg)?;
    let kind = run.toolchain(None)?;
    let closure = run.recipes.sysroot_of(r)?;
    let users: Vec<&Recipe> =
        run.recipes.topological_order().into_iter().filter(|u| u.depends.contains(&r.name)).collect();
    let mut users_all = Vec::new();
    for u in run.recipes.topological_order() {
        if u.name != r.name && run.recipes.closure(&u.depends)?.iter().any(|d| d.name == r.name) {
            users_all.push(u.name.clone());
        }
    }
    let names = |v: &[&Recipe]| v.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
    let sources_dir = project.layout().sources();
    let mut info = PackageInfo {
        schema: INFO_SCHEMA,
        name: r.name.clone(),
        version: r.version.clone(),
        kind: r.kind,
        license: r.license.clone(),
        description: r.description.clone(),
        homepage: r.homepage.clone(),
        recipe: r.path.clone(),
        style: r.build.as_ref().map(|b| b.style.name()),
        sources: r
            .sources
            .iter()
            .map(|s| SourceInfo {
                file: s.primary.file.clone(),
                sha256: s.primary.sha256.clone(),
                urls: s.primary.urls.clone(),
                debian: s.primary.debian.as_ref().map(|d| match &d.version {
                    Some(v) => format!("{}={v}", d.package),
                    None => d.package.clone(),
                }),
                pypi: s.primary.pypi.as_ref().map(|p| format!("{}=={}", p.package, p.version)),
                alternatives: s
                    .alternatives
                    .iter()
                    .map(|a| AlternativeInfo {
                        file: a.artifact.file.clone(),
                        sha256: a.artifact.sha256.clone(),
                        urls: a.artifact.urls.clone(),
                        version: a.version.clone(),
                        reason: a.reason.clone(),
                    })
                    .collect(),
                dest: s.dest.clone(),
                strip: s.strip,
                unpack: s.unpack,
                downloaded: sources_dir.join(&s.primary.file).is_file(),
            })
            .collect(),
        patches: r.patches.clone(),
        files: r.files.iter().map(|f| f.name.clone()).collect(),
        depends: r.depends.clone(),
        sysroot: names(&closure),
        native: names(&run.recipes.native_of(r)?),
        required_by: names(&users),
        required_by_all: users_all,
        replaces: r.replaces.clone(),
        features: r
            .features
            .iter()
            .map(|(name, f)| FeatureInfo {
                name: name.clone(),
                description: f.description.clone(),
                default: f.default,
                enabled: f.enabled,
                depends: f.depends.clone(),
            })
            .collect(),
        domain: None,
        status: None,
        tasks: Vec::new(),
        output: None,
        context_log: None,
    };

    let Some((domain, equipment)) = domain_of(&run, &kind, r, arch)? else { return Ok(info) };
    let packages = [r.name.clone()];
    let query = Query { arch: Some(arch), packages: &packages, read_only: true, ..Query::default() };
    info.status =
        status::collect_query(project, &query)?.into_iter().find(|l| l.name == r.name && l.domain == domain.dir_name());
    info.domain = Some(domain.dir_name().to_string());

    let log = ContextLog::discard()?;
    let ctx = run.ctx(domain, &log, equipment);
    let deps = ctx.dep_outputs(r, |d| ctx.states.staged_hash(d))?;
    let verdict = freshness::assess(&ctx, r, &deps, OutputCheck::VerifyQuietly)?;
    let sigs = freshness::signatures(&ctx, r, &verdict.plan, &deps, verdict.fetched.as_deref())?;
    let plan = &verdict.plan;
    for t in plan.all() {
        let stamp = verdict.stamps[t.index()].as_ref();
        let now = sigs.sig(t);
        let state = match (stamp, &now) {
            (None, _) => TaskState::NeverRan,
            (Some(_), None) => TaskState::Unknown,
            (Some(s), Some(n)) if &s.signature == n => TaskState::Current,
            (Some(_), Some(_)) => TaskState::Changed,
        };
        let log = project.layout().task_log(domain, &r.name, plan.name(t));
        info.tasks.push(TaskInfo {
            name: plan.name(t).to_string(),
            state,
            inputs: sigs.inputs[t.index()].clone(),
            signature: now,
            stamp: stamp.map(|s| StampInfo { signature: s.signature.clone(), duration_ms: s.duration_ms }),
            log_exists: log.is_file(),
            log,
        });
    }
    let staged = project.layout().staging(domain, &r.name);
    let (files, bytes) = tree_size(&staged);
    info.output = Some(OutputInfo {
        exists: staged.is_dir(),
        staged,
        files,
        bytes,
        hash: verdict.recorded_output().map(str::to_string),
    });
    info.context_log = Some(project.layout().context_log(domain));
    Ok(info)
}

/// The domain `r` is built in for `arch`, and what it builds with; `None`: not used by `kind`.
fn domain_of(
    run: &Run<'_>,
    kind: &ToolchainKind,
    r: &Recipe,
    arch: Arch,
) -> Result<Option<(Domain, Equipment)>, EngineError> {
    let domain = match r.kind {
        Kind::Target => Domain::Target(arch),
        Kind::Tools | Kind::Native => Domain::Tools(run.host),
        Kind::Toolchain => {
            // The host's parts first: they build the tools, as in `status`.
            for a in [run.host, arch] {
                let found =
                    kind.parts(&run.target(a))?.into_iter().find(|p| p.recipes.iter().any(|x| x.name == r.name));
                if let Some(parts) = found {
                    return Ok(Some((parts.domain, parts.equipment)));
                }
            }
            return Ok(None);
        }
    };
    Ok(Some((domain, run.equipment_now(kind, domain, arch)?)))
}

/// Regular files under `dir` and their total size; a missing or unreadable part counts nothing.
fn tree_size(dir: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                files += 1;
                bytes += m.len();
            }
        }
    }
    (files, bytes)
}

/// `path` relative to `root` when it is inside it (shorter to read), else as it is.
fn rel<'p>(root: &Path, path: &'p Path) -> &'p Path {
    path.strip_prefix(root).unwrap_or(path)
}

/// `ovm info` for a person.
pub fn print_info(root: &Path, i: &PackageInfo, out: &mut dyn Write) -> io::Result<()> {
    let list = |v: &[String]| if v.is_empty() { "-".to_string() } else { v.join(", ") };
    writeln!(out, "{} {} ({} recipe, {})", i.name, i.version, i.kind, i.license)?;
    if let Some(d) = &i.description {
        writeln!(out, "  {d}")?;
    }
    if let Some(h) = &i.homepage {
        writeln!(out, "homepage:     {h}")?;
    }
    writeln!(out, "recipe:       {}", rel(root, &i.recipe).display())?;
    writeln!(out, "style:        {}", i.style.unwrap_or("prebuilt (unpacked, nothing compiled)"))?;
    for (n, s) in i.sources.iter().enumerate() {
        let got = if s.downloaded { "downloaded" } else { "not downloaded" };
        writeln!(out, "source {n}:     {} ({got})", s.file)?;
        writeln!(out, "  sha256      {}", s.sha256)?;
        for u in &s.urls {
            writeln!(out, "  url         {u}")?;
        }
        if let Some(d) = &s.debian {
            writeln!(out, "  debian      {d}")?;
        }
        if let Some(p) = &s.pypi {
            writeln!(out, "  pypi        {p}")?;
        }
        for a in &s.alternatives {
            writeln!(out, "  alternative {} {} (version {}: {})", a.file, a.sha256, a.version, a.reason)?;
        }
        if !s.dest.as_os_str().is_empty() || s.strip != 1 || !s.unpack {
            writeln!(out, "  into        /ovm/src/{} (strip {}, unpack {})", s.dest.display(), s.strip, s.unpack)?;
        }
    }
    let patches: Vec<String> = i.patches.iter().map(|p| rel(root, p).display().to_string()).collect();
    writeln!(out, "patches:      {}", list(&patches))?;
    writeln!(out, "files:        {}", list(&i.files))?;
    writeln!(out, "depends:      {}", list(&i.depends))?;
    writeln!(out, "sysroot:      {}", list(&i.sysroot))?;
    writeln!(out, "native:       {}", list(&i.native))?;
    writeln!(out, "required by:  {} (all: {})", list(&i.required_by), list(&i.required_by_all))?;
    writeln!(out, "replaces:     {}", list(&i.replaces))?;
    for f in &i.features {
        let on = if f.enabled { "on" } else { "off" };
        let default = if f.default { "on" } else { "off" };
        let deps = if f.depends.is_empty() { String::new() } else { format!(", adds {}", f.depends.join(", ")) };
        let what = f.description.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
        writeln!(out, "feature:      {} {on} (default {default}{deps}){what}", f.name)?;
    }
    let Some(domain) = &i.domain else {
        writeln!(out, "domain:       - (the current toolchain does not use it)")?;
        return Ok(());
    };
    let state = match &i.status {
        Some(l) => status_text(&l.state),
        None => "-".into(),
    };
    writeln!(out, "domain:       {domain}")?;
    writeln!(out, "status:       {state}")?;
    if let Some(l) = i.status.as_ref().filter(|l| !l.runs.is_empty()) {
        writeln!(out, "a build runs: {}", l.runs.join(" "))?;
    }
    writeln!(out, "tasks:")?;
    let tw = i.tasks.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in &i.tasks {
        let state = match t.state {
            TaskState::Current => "current",
            TaskState::Changed => "changed",
            TaskState::NeverRan => "never ran",
            TaskState::Unknown => "unknown until fetched",
        };
        let took = t.stamp.as_ref().map(|s| format!(" {:.1} s", s.duration_ms as f64 / 1000.0)).unwrap_or_default();
        let sig = t.signature.as_deref().map(|s| &s[..s.len().min(12)]).unwrap_or("-");
        let log = if t.log_exists { format!("  log {}", rel(root, &t.log).display()) } else { String::new() };
        writeln!(out, "  {:<tw$}  {sig:<12}  {state}{took}{log}", t.name)?;
        for (k, v) in t.inputs.iter().flat_map(Inputs::iter) {
            writeln!(out, "  {:<tw$}    {k} = {v}", "")?;
        }
    }
    if let Some(o) = &i.output {
        let what = if o.exists { format!("{} files, {} bytes", o.files, o.bytes) } else { "not there".into() };
        writeln!(out, "output:       {} ({what})", rel(root, &o.staged).display())?;
        if let Some(h) = &o.hash {
            writeln!(out, "  hash        {h}")?;
        }
    }
    if let Some(c) = &i.context_log {
        writeln!(out, "context log:  {}", rel(root, c).display())?;
    }
    Ok(())
}

fn status_text(s: &State) -> String {
    match s {
        State::Built => "built".into(),
        State::NeverBuilt => "never built".into(),
        State::Failed { task, log } => format!("FAILED at {task} (log: {log})"),
        State::Interrupted { task } => format!("interrupted during {task}"),
        State::Stale { task, changes } => format!("stale from {task}: {}", changes.join("; ")),
        State::Waits { on } => format!("stale: waits for {on}"),
        State::FromCache => "from the shared-state cache".into(),
        State::NotNeeded => "not needed (every package is in the shared-state cache)".into(),
    }
}

/// `ovm build --dry-run --json`: the lines a build would act on.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub schema: &'static str,
    pub arch: Arch,
    pub toolchain: String,
    /// Whether the build would run no task at all.
    pub nothing_to_do: bool,
    /// Every package (and the image) the build covers, in build order, built ones included.
    pub packages: Vec<Line>,
}

/// What `ovm build` with `opts` would do now; reads state only, writes nothing at all.
pub fn dry_run(project: &Project, opts: &BuildOptions) -> Result<Plan, EngineError> {
    let kind = Run::new(project, 1, false)?.toolchain(opts.toolchain.as_ref())?;
    let image = opts.image.as_deref().map(|n| crate::image::load(project, n)).transpose()?;
    let query = Query {
        image: image.as_ref(),
        arch: Some(opts.arch),
        packages: &opts.packages,
        toolchain: Some(&kind),
        read_only: true,
        no_sandbox: opts.no_sandbox,
    };
    let lines = status::collect_query(project, &query)?;
    Ok(Plan {
        schema: PLAN_SCHEMA,
        arch: opts.arch,
        toolchain: kind.to_string(),
        nothing_to_do: lines.iter().all(|l| l.runs.is_empty()),
        packages: lines,
    })
}

/// The plan for a person: per package that has work, the tasks and why; or "nothing to do".
pub fn print_plan(plan: &Plan, out: &mut dyn Write) -> io::Result<()> {
    if plan.nothing_to_do {
        return writeln!(
            out,
            "ovm build {} (toolchain {}): nothing to do, everything is up to date",
            plan.arch, plan.toolchain
        );
    }
    let todo: Vec<&Line> = plan.packages.iter().filter(|l| !l.runs.is_empty()).collect();
    let tasks: usize = todo.iter().map(|l| l.runs.len()).sum();
    writeln!(
        out,
        "ovm build {} (toolchain {}) would run {tasks} task(s) of {} package(s); nothing is built now:",
        plan.arch,
        plan.toolchain,
        todo.len()
    )?;
    let dw = todo.iter().map(|l| l.domain.len()).max().unwrap_or(0);
    let nw = todo.iter().map(|l| l.name.len()).max().unwrap_or(0);
    for l in todo {
        let why: Vec<String> = match &l.state {
            State::Built => vec!["it is up to date".into()],
            State::NeverBuilt => vec!["it was never built".into()],
            State::Failed { task, .. } => vec![format!("it failed at {task} last time")],
            State::Interrupted { task } => vec![format!("a run was interrupted during its {task}")],
            State::Stale { changes, .. } => changes.clone(),
            State::Waits { on } if l.name == IMAGE => vec![format!("it waits for {on}")],
            State::Waits { on } => vec![format!("it waits for {on} (reruns if that comes out different)")],
            State::FromCache => vec!["the shared-state cache has its output: restored, not built".into()],
            State::NotNeeded => vec!["nothing needs it".into()],
        };
        writeln!(out, "  {:<dw$} {:<nw$}  {}", l.domain, l.name, l.runs.join(" "))?;
        for w in why {
            writeln!(out, "  {:<dw$} {:<nw$}    because {w}", "", "")?;
        }
    }
    Ok(())
}

/// The JSON of any of the reports above, as `--json` prints it (pretty, one trailing newline).
pub fn to_json<T: Serialize>(value: &T) -> Result<String, EngineError> {
    serde_json::to_string_pretty(value).map(|s| s + "\n").map_err(|e| EngineError::Internal(e.to_string()))
}

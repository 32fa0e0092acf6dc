//! `ovm build`: the whole pipeline for one architecture, in four phases that each run on the
//! scheduler: the toolchain (by default gcc, built from source; see `crate::toolchain`), the build
//! tools (static busybox and GNU make for the host, built in the `toolchain` profile), the target
//! packages (strict `package` profile) and the image. Every source the stale packages need is fetched first, in parallel, so a missing
//! download fails the run before any compiling starts (what `ovm download` does on its own).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::arch::Arch;
use crate::fetch::Fetcher;
use crate::layout::{Domain, Layout, Part, TaskName, IMAGE};
use crate::project::Project;
use crate::recipe::{Kind, Recipe, RecipeSet};
use crate::signature::{sha256_hex, Inputs, ENGINE_VERSION};
use crate::toolchain::{
    Equipment, PartBuilder, Parts, Prepared, Provided, Target, Toolchain, ToolchainError, ToolchainKind,
};
use crate::tree;

use super::context_log::ContextLog;
use super::ctx::{Ctx, Isolation};
use super::freshness::{self, OutputCheck};
use super::lock::{ProjectLock, Wait};
use super::package::{self, Failure, Outcome};
use super::progress::{self, Event, Observer, Plan, PlannedTask, TaskRef, Unobserved};
use super::scheduler::{run_graph, JobSlots, NodeResult};
use super::sstate::Sstate;
use super::state::{Stamp, StampOutput, StateDir};
use super::EngineError;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub arch: Arch,
    /// Target packages to build (with their dependencies); empty: all, and pack the image.
    pub packages: Vec<String>,
    /// 0: number of cores (or `[build] jobs`).
    pub jobs: usize,
    /// `--no-sandbox`.
    pub no_sandbox: bool,
    /// `--no-wait`: refuse instead of waiting for another ovm's lock.
    pub no_wait: bool,
    /// `--toolchain`: overrides `[toolchain] kind`, and is recorded as the project's choice.
    pub toolchain: Option<ToolchainKind>,
    /// `--image NAME`: build and pack `images/NAME.toml` instead of the default image.
    pub image: Option<String>,
}

/// One package's line in the summary.
#[derive(Debug, Clone)]
pub(crate) struct PackageReport {
    pub domain: Domain,
    pub name: String,
    pub outcome: Outcome,
}

#[derive(Debug)]
pub(crate) struct BuildSummary {
    pub packages: Vec<PackageReport>,
    pub image: Option<ImageReport>,
    pub elapsed: Duration,
    /// The shared-state cache's hits, misses and uploads in this run (none without a cache).
    pub cache: Option<super::sstate::CacheCounts>,
}

#[derive(Debug, Clone)]
pub(crate) struct ImageReport {
    pub path: PathBuf,
    pub manifest: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub repacked: bool,
}

/// A run that stopped: what failed (each with its log) and what had been done.
#[derive(Debug)]
pub(crate) struct BuildFailure {
    pub failures: Vec<Failure>,
    pub error: Option<Box<EngineError>>,
}

impl From<EngineError> for BuildFailure {
    fn from(e: EngineError) -> Self {
        BuildFailure { failures: Vec::new(), error: Some(Box::new(e)) }
    }
}

impl From<ToolchainError> for BuildFailure {
    fn from(e: ToolchainError) -> Self {
        BuildFailure::from(EngineError::from(e))
    }
}

/// The settings every phase shares.
pub(crate) struct Run<'a> {
    pub project: &'a Project,
    pub layout: &'a Layout,
    pub recipes: RecipeSet,
    pub fetcher: Fetcher,
    pub slots: JobSlots,
    pub isolation: Isolation,
    pub host: Arch,
    pub sstate: Option<Sstate>,
    pub cache_dir: PathBuf,
    /// Told what the run does as it goes (nothing by default; `ovm build` and `ovm toolchain` pass
    /// the command line's display).
    pub observer: &'a dyn Observer,
    /// The build machine's autotools (`autoreconf = true` recipes), asked once per run.
    host_autotools: super::autoreconf::HostAutotools,
}

/// The job count of a run: `-j`, else `[build] jobs`, else the number of cores; at most
/// [`MAX_JOBS`](super::scheduler::MAX_JOBS), which the jobserver pipe can hold.
pub(crate) fn jobs_for(project: &Project, requested: usize) -> Result<usize, EngineError> {
    let configured = if requested > 0 { requested } else { project.config.build.jobs };
    let max = super::scheduler::MAX_JOBS;
    if configured > max {
        let what = if requested > 0 { format!("-j {requested}") } else { format!("[build] jobs = {configured}") };
        return Err(EngineError::TooManyJobs { what, max });
    }
    Ok(if configured > 0 { configured } else { std::thread::available_parallelism().map_or(1, |n| n.get().min(max)) })
}

/// The project's local shared-state cache: `OVM_SSTATE_DIR`, else `[build] sstate_dir`, else
/// `.cache/sstate`; `None` when set to the empty string.
pub(crate) fn local_sstate(project: &Project) -> Option<Sstate> {
    project
        .settings()
        .sstate_dir
        .clone()
        .or_else(|| project.config.build.sstate_dir.as_ref().map(|d| project.root().join(d)))
        .or_else(|| Some(project.layout().default_sstate()))
        .filter(|d| !d.as_os_str().is_empty())
        .map(Sstate::new)
}

/// The remote stores of `[cache] remote` behind the local cache `local`.
fn remote_tier(project: &Project, local: Sstate) -> Result<Sstate, EngineError> {
    let cfg = &project.config.cache;
    let options = crate::remote_cache::RemoteOptions { timeout: std::time::Duration::from_secs(cfg.timeout.max(1)) };
    let stores = cfg
        .remote
        .iter()
        .map(|url| crate::remote_cache::RemoteCache::new(url, &options, project.settings()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| EngineError::RemoteCache { config: project.layout().config_file(), source })?;
    Ok(local.with_remotes(stores, cfg.write))
}

impl<'a> Run<'a> {
    pub fn new(project: &'a Project, jobs_wanted: usize, no_sandbox: bool) -> Result<Run<'a>, EngineError> {
        crate::fault::check()?;
        let recipes = RecipeSet::load(project)?;
        let fetcher = Fetcher::new(project)?;
        let slots = JobSlots::new(jobs_for(project, jobs_wanted)?).map_err(EngineError::Jobserver)?;
        let host = Arch::host().ok_or(EngineError::UnsupportedHost)?;
        let isolation = if no_sandbox {
            tracing::warn!("--no-sandbox: packages build on the host, seeing its /usr and network; outputs may differ");
            Isolation::Host
        } else {
            Isolation::Sandbox { exe: crate::sandbox::executable(project.settings())? }
        };
        let sstate = local_sstate(project).map(|s| remote_tier(project, s)).transpose()?;
        let cache_dir = project.settings().build_cache_dir.clone().unwrap_or_else(|| project.layout().build_cache());
        Ok(Run {
            project,
            layout: project.layout(),
            recipes,
            fetcher,
            slots,
            isolation,
            host,
            sstate,
            cache_dir,
            observer: &Unobserved,
            host_autotools: Default::default(),
        })
    }

    pub fn ctx<'r>(&'r self, domain: Domain, log: &'r ContextLog, equipment: Equipment) -> Ctx<'r> {
        Ctx {
            layout: self.layout,
            settings: self.project.settings(),
            domain,
            host: self.host,
            fetcher: &self.fetcher,
            recipes: &self.recipes,
            slots: &self.slots,
            log,
            states: StateDir::new(self.layout, domain),
            isolation: self.isolation.clone(),
            equipment,
            cache_dir: self.cache_dir.clone(),
            sstate: self.sstate.clone(),
            source_date_epoch: self.project.source_date_epoch(),
            limits: {
                let cfg = &self.project.config.sandbox;
                let defaults = crate::sandbox::Limits::defaults();
                crate::sandbox::Limits {
                    pids: cfg.pids_max.map(|n| n.get()).or(defaults.pids),
                    memory: cfg.memory_max.map(|m| m.0).or(defaults.memory),
                }
            },
            log_max: self.project.config.build.log_max,
            outputs: Mutex::new(BTreeMap::new()),
            observer: self.observer,
            host_autotools: &self.host_autotools,
        }
    }

    /// The toolchain of this run: `--toolchain`, else the project's recorded choice, else
    /// `[toolchain]` in the config (see [`super::choice`]).
    pub fn toolchain(&self, over: Option<&ToolchainKind>) -> Result<ToolchainKind, EngineError> {
        Ok(super::choice::resolve(self.project, over)?.kind)
    }

    /// What `kind` provides now, without building anything.
    pub fn current_toolchain(&self, kind: &ToolchainKind, arch: Arch) -> Prepared {
        let recorded = |domain: Domain, pkg: &str| StateDir::new(self.layout, domain).staged_hash(pkg);
        kind.current(&self.target(arch), &recorded)
    }

    /// What a toolchain is asked for when target packages are built for `arch`.
    pub fn target(&self, arch: Arch) -> Target<'_> {
        Target { recipes: &self.recipes, layout: self.layout, arch, host: self.host }
    }

    /// The build tools as composed now (`toolchain/tools/`) and their recorded signature.
    fn current_tools(&self) -> Provided {
        let signature = crate::toolchain::recorded_signature(&self.layout.composed_marker(Domain::Tools(self.host)));
        Provided { dir: self.layout.tools(), signature }
    }

    /// The output hash of every native tool staged now (one not staged is left out: a package
    /// naming it is then stale, its signature saying `?`).
    fn current_native(&self) -> BTreeMap<String, String> {
        let states = StateDir::new(self.layout, Domain::Tools(self.host));
        self.recipes
            .of_kind(Kind::Native)
            .filter_map(|r| Some((r.name.clone(), states.staged_hash(&r.name)?)))
            .collect()
    }

    /// What the sandboxes of `domain` build with as things stand, without building anything (for
    /// `status`, `spec`, `shell`, the fetch plan): the one place that says which domain gets what.
    pub fn equipment_now(&self, kind: &ToolchainKind, domain: Domain, arch: Arch) -> Result<Equipment, EngineError> {
        let now = self.current_toolchain(kind, arch);
        Ok(match domain {
            Domain::Target(_) => with_tools(now.target, self.current_tools(), self.current_native()),
            Domain::Tools(_) => Equipment::bootstrap(now.host),
            Domain::Cross(_) => crate::toolchain::gcc::no_toolchain(self.layout)?,
            // The zig wheel is unpacked, never compiled: it builds with nothing.
            Domain::Toolchain => Equipment::default(),
        })
    }
}

/// Target packages build with a toolchain, the build tools and the native tools they name.
pub(crate) fn with_tools(toolchain: Provided, tools: Provided, native: BTreeMap<String, String>) -> Equipment {
    Equipment {
        toolchain_dir: toolchain.dir,
        toolchain_sig: toolchain.signature,
        tools_dir: Some(tools.dir),
        tools_sig: tools.signature,
        native,
    }
}

/// The engine as the toolchains see it ([`PartBuilder`]): their parts are ordinary packages of
/// their domain, built on the scheduler with stamps, logs and `await` like any other.
pub(crate) struct Builder<'r, 'a> {
    pub run: &'r Run<'a>,
    pub what: &'r str,
    pub reports: &'r Mutex<Vec<PackageReport>>,
}

impl PartBuilder for Builder<'_, '_> {
    type Error = BuildFailure;

    fn build_parts(&self, parts: Parts<'_>) -> Result<BTreeMap<String, String>, BuildFailure> {
        let log = open_log(self.run.layout, parts.domain, self.what)?;
        let ctx = self.run.ctx(parts.domain, &log, parts.equipment);
        build_domain(&ctx, &parts.recipes, self.reports).map_err(|mut failure| {
            if !failure.failures.is_empty() && failure.error.is_none() {
                failure.error = parts.hint.map(|h| Box::new(EngineError::from(h)));
            }
            failure
        })
    }
}

/// Runs one domain's packages on the scheduler. Returns each package's outcome in `list` order.
pub(crate) fn build_domain(
    ctx: &Ctx<'_>,
    list: &[&Recipe],
    reports: &Mutex<Vec<PackageReport>>,
) -> Result<BTreeMap<String, String>, BuildFailure> {
    let index: BTreeMap<&str, usize> = list.iter().enumerate().map(|(i, r)| (r.name.as_str(), i)).collect();
    let deps: Vec<Vec<usize>> =
        list.iter().map(|r| r.depends.iter().filter_map(|d| index.get(d.as_str()).copied()).collect()).collect();
    let results: Vec<NodeResult<Box<Failure>>> = run_graph(&deps, ctx.slots.jobs(), |i| {
        let recipe = list[i];
        let dep_outputs = {
            let outs = ctx.outputs.lock().map_err(|_| poisoned(recipe))?;
            ctx.dep_outputs(recipe, |d| outs.get(d).cloned()).map_err(|e| poisoned_by(recipe, e))?
        };
        let (outcome, output) = package::build(ctx, recipe, &dep_outputs)?;
        // The observer shows every task as it ends (and the summary every package): a line here
        // too would say it twice.
        tracing::debug!("{} {}: {outcome}", ctx.domain, recipe.name);
        if let Outcome::Reused | Outcome::FromCache = outcome {
            let from_cache = outcome == Outcome::FromCache;
            ctx.observer.event(&Event::Reused { domain: ctx.domain, package: &recipe.name, from_cache });
        }
        ctx.outputs.lock().map_err(|_| poisoned(recipe))?.insert(recipe.name.clone(), output);
        if let Ok(mut r) = reports.lock() {
            r.push(PackageReport { domain: ctx.domain, name: recipe.name.clone(), outcome });
        }
        Ok(())
    });
    let failures: Vec<Failure> = results
        .into_iter()
        .filter_map(|r| match r {
            NodeResult::Failed(f) => Some(*f),
            _ => None,
        })
        .collect();
    if !failures.is_empty() {
        return Err(BuildFailure { failures, error: None });
    }
    ctx.outputs.lock().map(|o| o.clone()).map_err(|_| BuildFailure::from(EngineError::Internal("poisoned".into())))
}

fn poisoned(recipe: &Recipe) -> Box<Failure> {
    poisoned_by(recipe, EngineError::Internal("a worker panicked".into()))
}

/// A package that could not even be assessed (no task of it ran, so no task log names the error).
fn poisoned_by(recipe: &Recipe, error: EngineError) -> Box<Failure> {
    Box::new(Failure {
        package: recipe.name.clone(),
        task: TaskName::fetch(),
        log: PathBuf::new(),
        error,
        started: false,
    })
}

/// Makes `toolchain/tools/` the union of the tools' staged outputs; its signature is the hash of
/// their output hashes (so it is known without walking the tree again).
fn compose_tools(run: &Run<'_>, outputs: &BTreeMap<String, String>) -> Result<Provided, EngineError> {
    let domain = Domain::Tools(run.host);
    let layers: Vec<(String, PathBuf)> = outputs.keys().map(|n| (n.clone(), run.layout.staging(domain, n))).collect();
    let provided = Provided { dir: run.layout.tools(), signature: tools_signature(outputs) };
    crate::toolchain::compose_marked(&layers, &provided, &run.layout.composed_marker(domain), || {
        crate::fault::point("tools.composed", "tools")
    })?;
    Ok(provided)
}

/// The signature of the build tools composed of `outputs` (tool → output hash).
pub(crate) fn tools_signature(outputs: &BTreeMap<String, String>) -> String {
    let mut i = Inputs::new();
    for (name, out) in outputs {
        i.set(format!("tool.{name}"), out);
    }
    i.signature()
}

/// What the tools domain builds for `targets`: every build tool, and the native tools those
/// targets name with the native recipes these depend on (a native tool nobody asks for is not
/// built), in dependency order.
pub(crate) fn tools_domain_list<'r>(
    recipes: &'r RecipeSet,
    targets: &[&Recipe],
) -> Result<Vec<&'r Recipe>, EngineError> {
    let names: Vec<&str> = targets.iter().flat_map(|r| r.native.iter().map(String::as_str)).collect();
    let native: BTreeSet<&str> = recipes.closure(&names)?.into_iter().map(|r| r.name.as_str()).collect();
    Ok(recipes
        .topological_order()
        .into_iter()
        .filter(|r| r.kind == Kind::Tools || native.contains(r.name.as_str()))
        .collect())
}

/// The target recipes to build: the named ones and their dependencies, or the image's
/// (`[pack] packages` and their dependencies, all target recipes when unset).
pub(crate) fn target_list<'r>(
    project: &Project,
    recipes: &'r RecipeSet,
    packages: &[String],
) -> Result<Vec<&'r Recipe>, EngineError> {
    if packages.is_empty() {
        Ok(recipes.image_packages(project.config.pack.packages.as_deref())?)
    } else {
        Ok(recipes.closure(packages)?.into_iter().filter(|r| r.kind == Kind::Target).collect())
    }
}

/// Fetches, in parallel and before anything compiles, the sources of every package that has work,
/// and tells the observer what the run expects to do (the stale packages' tasks, with the
/// durations earlier runs recorded). A source that cannot be fetched fails its package's `fetch`
/// task, its log holding every place tried; the rest of the run does not start.
pub(crate) fn prefetch(run: &Run<'_>, plans: &[Parts<'_>]) -> Result<(), BuildFailure> {
    let log = ContextLog::open(&std::env::temp_dir().join(format!("ovm-prefetch-{}.log", std::process::id())))
        .map_err(|source| EngineError::Write { path: std::env::temp_dir(), source })?;
    let mut wanted = Vec::new();
    // The package (and its domain) each wanted source is for, to name the failure.
    let mut owner: BTreeMap<&str, Domain> = BTreeMap::new();
    let mut plan = Plan::default();
    for parts in plans {
        let ctx = run.ctx(parts.domain, &log, parts.equipment.clone());
        let mut history = None;
        for r in &parts.recipes {
            let deps = ctx.dep_outputs(r, |d| ctx.states.staged_hash(d))?;
            let verdict = freshness::assess(&ctx, r, &deps, OutputCheck::Trust)?;
            let Some(stale) = &verdict.stale else { continue };
            wanted.extend(r.sources.iter());
            owner.entry(r.name.as_str()).or_insert(parts.domain);
            // Read once per domain, and only when something in it is to run: a no-op build
            // never opens a context.log.
            let history = history.get_or_insert_with(|| progress::history(run.layout, parts.domain));
            for t in verdict.plan.all().filter(|t| *t >= stale.task) {
                let task = verdict.plan.name(t).clone();
                let expected = history.get(&(r.name.clone(), task.as_str().to_string())).copied();
                plan.tasks.push(PlannedTask { domain: parts.domain, package: r.name.clone(), task, expected });
            }
        }
    }
    let _ = std::fs::remove_file(log.path());
    if !plan.tasks.is_empty() {
        run.observer.event(&Event::Planned(&plan));
    }
    if !wanted.is_empty() {
        let report = run.fetcher.fetch_all(&wanted);
        let failures: Vec<Failure> = report
            .items
            .into_iter()
            .filter_map(|item| {
                let error = item.result.err()?;
                let domain = owner.get(item.recipe.as_str()).copied().unwrap_or(Domain::Target(run.host));
                let task = TaskName::fetch();
                let log = run.layout.task_log(domain, &item.recipe, &task);
                // The whole story (every place tried, apt's own words) goes to the log; the
                // console gets the summary of it (`report`).
                let _ = super::step::write_log(&log, &format!("{error}\n"));
                let me = TaskRef { domain, package: &item.recipe, task: &task };
                run.observer.event(&Event::Failed { task: me, elapsed: Duration::ZERO, log: &log });
                Some(Failure { package: item.recipe, task, log, error: EngineError::Fetch(error), started: true })
            })
            .collect();
        if !failures.is_empty() {
            return Err(BuildFailure { failures, error: None });
        }
    }
    Ok(())
}

/// Takes the project lock (`states/.lock`), waiting for another ovm unless `no_wait`; the holder
/// is named either way.
pub fn lock_project(project: &Project, no_wait: bool) -> Result<ProjectLock, EngineError> {
    Ok(ProjectLock::acquire(&project.layout().lock(), if no_wait { Wait::NoWait } else { Wait::Block }, |holder| {
        tracing::warn!("waiting for another ovm on this project ({holder})")
    })?)
}

/// Takes the project lock and opens a run (recipes, fetcher, jobserver, sandbox executable).
pub(crate) fn open_run<'a>(
    project: &'a Project,
    jobs: usize,
    no_sandbox: bool,
    no_wait: bool,
) -> Result<(ProjectLock, Run<'a>), EngineError> {
    // A job count the jobserver cannot hold is refused before waiting for another ovm.
    jobs_for(project, jobs)?;
    let lock = lock_project(project, no_wait)?;
    for path in super::state::remove_stale_temporaries(project.layout())? {
        tracing::info!("removed {}, left by an interrupted run", path.display());
    }
    let run = Run::new(project, jobs, no_sandbox)?;
    // Made here, not in `Run::new`: the runs that only read (`status`, `list`, `--dry-run`) must
    // not write it; the sandboxes that bind it all come from here.
    std::fs::create_dir_all(run.cache_dir.join("zig"))
        .map_err(|source| EngineError::Write { path: run.cache_dir.clone(), source })?;
    Ok((lock, run))
}

/// What the caller of [`equip`] will do with the equipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// Only the packages' outputs (`ovm build`): when the caches hold them all, the toolchain
    /// and tools may stay unbuilt (setscene).
    Outputs,
    /// The toolchain and tools themselves (`ovm shell` runs a compiler).
    Tools,
}

/// Phases 1 and 2: the toolchain and the build tools, built or reused; returns what the target
/// packages are built with. Sources of everything stale (including `targets`) are fetched first.
pub(crate) fn equip(
    run: &Run<'_>,
    kind: &ToolchainKind,
    arch: Arch,
    targets: &[&Recipe],
    what: &str,
    reports: &Mutex<Vec<PackageReport>>,
    needs: Needs,
) -> Result<Equipment, BuildFailure> {
    // With a remote cache, the packages may all be there: then the toolchain and the build
    // tools are neither built nor fetched (`setscene`).
    if needs == Needs::Outputs {
        if let Some(equipment) = super::setscene::covered(run, kind, arch, targets) {
            tracing::info!(
                "setscene: every package of this build is in the shared-state cache; the toolchain and build tools are not needed"
            );
            return Ok(equipment);
        }
    }
    let tools = tools_domain_list(&run.recipes, targets)?;
    let tools_domain = Domain::Tools(run.host);

    let mut plans = kind.parts(&run.target(arch))?;
    plans.push(Parts {
        domain: tools_domain,
        recipes: tools.clone(),
        equipment: run.equipment_now(kind, tools_domain, arch)?,
        hint: None,
    });
    let target = Domain::Target(arch);
    plans.push(Parts {
        domain: target,
        recipes: targets.to_vec(),
        equipment: run.equipment_now(kind, target, arch)?,
        hint: None,
    });
    prefetch(run, &plans)?;

    let builder = Builder { run, what, reports };
    let prepared = kind.prepare(&builder, &run.target(arch))?;
    // The build tools and native tools run on the host: the host's toolchain compiles them.
    let outputs = builder.build_parts(Parts {
        domain: tools_domain,
        recipes: tools,
        equipment: Equipment::bootstrap(prepared.host),
        hint: None,
    })?;
    let is_native = |name: &str| run.recipes.get(name).is_some_and(|r| r.kind == Kind::Native);
    let (native, tool_outputs): (BTreeMap<_, _>, BTreeMap<_, _>) = outputs.into_iter().partition(|(n, _)| is_native(n));
    Ok(with_tools(prepared.target, compose_tools(run, &tool_outputs)?, native))
}

/// `logs/DOMAIN/context.log`, with this run's header line.
pub(crate) fn open_log(layout: &Layout, domain: Domain, what: &str) -> Result<ContextLog, EngineError> {
    let path = layout.context_log(domain);
    let log = ContextLog::open(&path).map_err(|source| EngineError::Write { path, source })?;
    log.run_started(what);
    Ok(log)
}

/// `ovm build`.
pub(crate) fn build(
    project: &Project,
    opts: &BuildOptions,
    observer: &dyn Observer,
) -> Result<BuildSummary, BuildFailure> {
    let t0 = Instant::now();
    let (_lock, mut run) = open_run(project, opts.jobs, opts.no_sandbox, opts.no_wait)?;
    run.observer = observer;
    // The choice is the project's from now on (under the lock): later commands use it too.
    let choice = super::choice::resolve(project, opts.toolchain.as_ref())?;
    super::choice::remember(project, &choice)?;
    let kind = choice.kind;
    let reports = Mutex::new(Vec::new());
    let what = format!("ovm build {}{}", opts.arch, opts.packages.iter().map(|p| format!(" {p}")).collect::<String>());
    let named = opts.image.as_deref().map(|n| crate::image::load(project, n)).transpose().map_err(EngineError::from)?;
    let targets = match &named {
        Some(def) => target_list(project, &run.recipes, &super::image::recipes_for(def, &run.recipes)?)?,
        None => target_list(project, &run.recipes, &opts.packages)?,
    };

    let equipment = equip(&run, &kind, opts.arch, &targets, &what, &reports, Needs::Outputs)?;

    let domain = Domain::Target(opts.arch);
    let log = open_log(project.layout(), domain, &what)?;
    let ctx = run.ctx(domain, &log, equipment);
    let outputs = build_domain(&ctx, &targets, &reports)?;

    // The image and its package feed, unless only some packages were asked for.
    let image = if let Some(def) = &named {
        Some(super::image::pack_named(&ctx, project, opts.arch, def, &targets, &outputs)?)
    } else if opts.packages.is_empty() {
        let image = pack_image(project, opts.arch, &targets, &outputs, &log, run.observer)?;
        write_feed(project, opts.arch, &targets, &outputs, &log, run.observer)?;
        Some(image)
    } else {
        None
    };

    let mut packages = reports.into_inner().unwrap_or_default();
    packages.sort_by(|a, b| (a.domain, &a.name).cmp(&(b.domain, &b.name)));
    let cache = run.sstate.as_ref().map(Sstate::counts);
    if let Some(counts) = &cache {
        // For `ovm cache stats`; a summary that cannot be kept must not fail the build.
        if let Ok(json) = serde_json::to_vec_pretty(counts) {
            let _ = tree::write_atomic(&project.layout().cache_counts(), &json);
        }
    }
    Ok(BuildSummary { packages, image, elapsed: t0.elapsed(), cache })
}

/// The pack request for the image of `targets` and the inputs of its signature ([`pack_inputs`],
/// packages by their recorded output hash).
pub(crate) fn image_plan(
    project: &Project,
    arch: Arch,
    targets: &[&Recipe],
    outputs: &BTreeMap<String, String>,
) -> Result<(crate::pack::PackRequest, Inputs), EngineError> {
    let mut req = crate::pack::request_for_project(project, arch, &crate::pack::PackOptions::default())?;
    // The packages are exactly the ones this build made, in dependency order.
    let mut layers: Vec<crate::pack::Layer> =
        req.layers.iter().filter(|l| matches!(l.kind, crate::pack::LayerKind::Rootfs)).cloned().collect();
    for r in targets {
        layers.push(crate::pack::Layer::of_recipe(project, arch, r));
    }
    for kind in [crate::pack::LayerKind::KernelModules, crate::pack::LayerKind::Overlay] {
        layers.extend(req.layers.iter().filter(|l| l.kind == kind).cloned());
    }
    req.layers = layers;
    let inputs = pack_inputs(&req, |name| outputs.get(name).cloned().unwrap_or_default())?;
    Ok((req, inputs))
}

/// The pack input naming the tar archive the pack writes beside the image (`rootfs.tar.xz`;
/// empty: none): [`existing_image`] reads it from the stamp, so a stamp tells by itself which
/// files its pack left in output/.
const TAR_INPUT: &str = "tar";

/// The inputs of packing `req`, the default image's or a named one's: every layer's hash
/// (packages by `package_hash` of the layer's name, the kernel modules by their plan's signature,
/// rootfs/ and the overlay by walking them), the layers' order, the device table, compression,
/// whether a tar archive is made beside the image ([`TAR_INPUT`]) and SOURCE_DATE_EPOCH.
pub(super) fn pack_inputs(
    req: &crate::pack::PackRequest,
    package_hash: impl Fn(&str) -> String,
) -> Result<Inputs, EngineError> {
    let mut inputs = Inputs::new();
    inputs.set("engine", ENGINE_VERSION).set("compress", format!("{:?}", req.compress));
    inputs.set(TAR_INPUT, if req.tar { req.compress.tar_name() } else { "" });
    inputs.set("source_date_epoch", req.source_date_epoch.to_string());
    for l in &req.layers {
        let h = match l.kind {
            crate::pack::LayerKind::Package { .. } => package_hash(&l.name),
            // Not written yet (the pack does): what it will hold, every byte, is the plan's.
            crate::pack::LayerKind::KernelModules => {
                req.kernel_modules.as_ref().map(|p| p.signature().to_string()).unwrap_or_default()
            }
            _ => tree::hash_tree(&l.dir)?,
        };
        inputs.set(format!("layer.{}", l.name), h);
        // Which package's file wins a shared path depends on both.
        if !l.replaces.is_empty() {
            inputs.set(format!("layer.{}.replaces", l.name), l.replaces.join(","));
        }
    }
    let order: Vec<&str> = req.layers.iter().map(|l| l.name.as_str()).collect();
    inputs.set("layers", order.join(","));
    if let Some(t) = &req.device_table {
        let bytes = std::fs::read(t).unwrap_or_default();
        inputs.set("device_table", sha256_hex(&bytes));
    }
    Ok(inputs)
}

/// Packs `rootfs/` + the target packages (dependency order) + the overlay, unless nothing that goes
/// into the image changed since the last pack and the image is still there.
fn pack_image(
    project: &Project,
    arch: Arch,
    targets: &[&Recipe],
    outputs: &BTreeMap<String, String>,
    log: &ContextLog,
    observer: &dyn Observer,
) -> Result<ImageReport, EngineError> {
    let (req, inputs) = image_plan(project, arch, targets, outputs)?;
    let states = StateDir::new(project.layout(), Domain::Target(arch));
    let pack = TaskName::pack();
    if let Some(report) = current_image(&states, &pack, &inputs)? {
        return Ok(report);
    }
    let sig = inputs.signature();
    let (out, took) = image_task(arch, &pack, &sig, log, observer, || {
        crate::fault::point("image.begin", "image");
        let out = crate::pack::pack(&req)?;
        // Every target recipe's runtime package that holds anything: what the image installs.
        let packages = crate::feed::packages(project.layout(), arch, targets)?;
        let installed: Vec<&crate::feed::Package> = packages.iter().filter(|p| p.part == Part::Runtime).collect();
        super::contents::write_package_manifest(&req.output_dir, arch, &installed)?;
        let files = super::contents::layer_files(&out, &req.layers, str::to_string)?;
        super::contents::write(project, arch, targets, files, &out, &project.layout().sbom(arch))?;
        crate::fault::point("image.packed", "image");
        Ok(out)
    })?;
    stamp_pack(&states, &pack, inputs, out, took)
}

/// What the last run of the pack task `task` (`pack`, `pack-NAME`) made, if it packed these
/// `inputs` and it is all still there ([`existing_image`]): then there is nothing to do.
pub(super) fn current_image(
    states: &StateDir,
    task: &TaskName,
    inputs: &Inputs,
) -> Result<Option<ImageReport>, EngineError> {
    let Some(stamp) = states.stamp(IMAGE, task)? else { return Ok(None) };
    Ok(if stamp.signature == inputs.signature() { existing_image(&stamp) } else { None })
}

/// Stamps an image's pack task (the default image's `pack`, a named one's `pack-NAME`) with the
/// inputs it packed and what it made; the report of a fresh pack.
pub(super) fn stamp_pack(
    states: &StateDir,
    task: &TaskName,
    inputs: Inputs,
    out: crate::pack::PackOutcome,
    took: Duration,
) -> Result<ImageReport, EngineError> {
    let output = StampOutput::Image {
        path: out.image.clone(),
        manifest: out.manifest.clone(),
        size: out.size,
        sha256: out.sha256.clone(),
    };
    states.write_stamp(IMAGE, task, &Stamp::new(inputs, Some(output), took))?;
    Ok(ImageReport { path: out.image, manifest: out.manifest, size: out.size, sha256: out.sha256, repacked: true })
}

/// Runs one of the image's tasks (`pack`, `feed`) as `work`, its start and its end or failure
/// told to the context log and the observer; returns what it made and how long it took.
pub(super) fn image_task<T>(
    arch: Arch,
    name: &TaskName,
    sig: &str,
    log: &ContextLog,
    observer: &dyn Observer,
    work: impl FnOnce() -> Result<T, EngineError>,
) -> Result<(T, Duration), EngineError> {
    let task = TaskRef { domain: Domain::Target(arch), package: IMAGE, task: name };
    log.start(arch.name(), IMAGE, name.as_str(), sig);
    observer.event(&Event::Started { task, log: log.path() });
    let t0 = Instant::now();
    match work() {
        Ok(made) => {
            log.done(arch.name(), IMAGE, name.as_str(), t0.elapsed(), sig);
            observer.event(&Event::Finished { task, elapsed: t0.elapsed() });
            Ok((made, t0.elapsed()))
        }
        Err(e) => {
            log.failed(arch.name(), IMAGE, name.as_str(), t0.elapsed(), log.path());
            observer.event(&Event::Failed { task, elapsed: t0.elapsed(), log: log.path() });
            Err(e)
        }
    }
}

/// Bumped when what the feed holds for the same packages changes.
const FEED_FORMAT: &str = "1";

/// What the feed of `targets` is made of: every package's output hash and the recipe fields its
/// control files carry, SOURCE_DATE_EPOCH, the feed's format.
pub(crate) fn feed_inputs(project: &Project, targets: &[&Recipe], outputs: &BTreeMap<String, String>) -> Inputs {
    let mut inputs = Inputs::new();
    inputs.set("engine", ENGINE_VERSION).set("format", FEED_FORMAT);
    inputs.set("source_date_epoch", project.source_date_epoch().to_string());
    for r in targets {
        let p = format!("package.{}", r.name);
        inputs.set(format!("{p}.output"), outputs.get(&r.name).cloned().unwrap_or_default());
        inputs.set(format!("{p}.version"), &r.version).set(format!("{p}.license"), &r.license);
        inputs.set(format!("{p}.description"), r.description.clone().unwrap_or_default());
        inputs.set(format!("{p}.homepage"), r.homepage.clone().unwrap_or_default());
        inputs.set(format!("{p}.depends"), r.depends.join(","));
    }
    inputs
}

/// Whether `output/ARCH/feed/` still holds what the feed stamp recorded.
pub(crate) fn feed_intact(project: &Project, arch: Arch, stamp: &Stamp) -> bool {
    let dir = project.layout().feed(arch);
    matches!(&stamp.output, Some(StampOutput::Staged { hash }) if tree::hash_tree(&dir).is_ok_and(|h| h == *hash))
}

/// Writes `output/ARCH/feed/` (`crate::feed`) for the packages of the image, unless it is there
/// as the last run wrote it for the same packages. Its signature holds every package's output
/// hash and the recipe fields its control files carry.
fn write_feed(
    project: &Project,
    arch: Arch,
    targets: &[&Recipe],
    outputs: &BTreeMap<String, String>,
    log: &ContextLog,
    observer: &dyn Observer,
) -> Result<(), EngineError> {
    let inputs = feed_inputs(project, targets, outputs);
    let sig = inputs.signature();
    let dir = project.layout().feed(arch);
    let states = StateDir::new(project.layout(), Domain::Target(arch));
    if let Some(stamp) = states.stamp(IMAGE, &TaskName::feed())? {
        if stamp.signature == sig && feed_intact(project, arch, &stamp) {
            return Ok(());
        }
    }
    let feed = TaskName::feed();
    let (written, took) = image_task(arch, &feed, &sig, log, observer, || {
        let packages = crate::feed::packages(project.layout(), arch, targets)?;
        Ok(crate::feed::write(&packages, arch, &dir, project.source_date_epoch())?)
    })?;
    let hash = tree::hash_tree(&written.dir)?;
    states.write_stamp(IMAGE, &feed, &Stamp::new(inputs, Some(StampOutput::Staged { hash }), took))?;
    Ok(())
}

/// The image a pack stamp describes, if it is still there with the recorded size and hash, and
/// with everything the pack wrote beside it.
pub(crate) fn existing_image(stamp: &Stamp) -> Option<ImageReport> {
    let Some(StampOutput::Image { path, manifest, size, sha256 }) = &stamp.output else { return None };
    let bytes = std::fs::read(path).ok()?;
    // The package manifest and the SBOMs are written with the image, and the tar archive the
    // stamp's inputs name (a named image's `tar = true`): one without the others is repacked.
    let tar = stamp.inputs.get(TAR_INPUT).filter(|t| !t.is_empty());
    let beside: Vec<PathBuf> =
        [crate::layout::PACKAGE_MANIFEST_NAME, crate::layout::SBOM_NAME, crate::layout::CYCLONEDX_NAME]
            .into_iter()
            .chain(tar)
            .map(|n| manifest.with_file_name(n))
            .collect();
    let intact = bytes.len() as u64 == *size
        && sha256_hex(&bytes) == *sha256
        && manifest.exists()
        && beside.iter().all(|s| s.exists());
    intact.then(|| ImageReport {
        path: path.clone(),
        manifest: manifest.clone(),
        size: *size,
        sha256: sha256.clone(),
        repacked: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_modules::modinfo::tests::elf_with_modinfo;

    fn project(dir: &std::path::Path, modules: &str) -> Project {
        std::fs::create_dir_all(dir.join("recipes")).unwrap();
        std::fs::create_dir_all(dir.join("config")).unwrap();
        let cfg = format!("[kernel]\nmodules_from = \"k/ARCH\"\nmodules = [{modules}]\n");
        std::fs::write(dir.join("config/ovm.toml"), cfg).unwrap();
        Project::open(dir).unwrap()
    }

    /// A target recipe `name` with one plain-file source and an install script, in `dir`.
    fn plain_recipe(dir: &std::path::Path, name: &str, depends: &[&str], install: &str) {
        let content = format!("{name}'s source\n");
        let src = dir.join(format!("upstream/{name}.txt"));
        std::fs::create_dir_all(src.parent().unwrap()).unwrap();
        std::fs::write(&src, &content).unwrap();
        let deps: Vec<String> = depends.iter().map(|d| format!("{d:?}")).collect();
        let recipe = format!(
            "name = \"{name}\"\nversion = \"1.0\"\nlicense = \"MIT\"\ndepends = [{}]\n\n\
             [[source]]\nurl = \"file://{}\"\nsha256 = \"{}\"\nunpack = false\n\n\
             [build]\nstyle = \"custom\"\ninstall = '''\n{install}\n'''\n",
            deps.join(", "),
            src.display(),
            sha256_hex(content.as_bytes())
        );
        std::fs::write(dir.join(format!("recipes/{name}.toml")), recipe).unwrap();
    }

    /// The engine tells its observer every task as it starts and ends, a failure with its log, and
    /// on the next run the packages it reuses (a recording stands in for the console's display).
    /// Steps run on the host (`--no-sandbox`), so no ovm executable is needed.
    #[test]
    fn the_observer_hears_each_task_start_and_end_a_failure_and_then_reuse() {
        use super::super::progress::tests::Recording;
        let d = tempfile::tempdir().unwrap();
        let p = project(d.path(), "");
        plain_recipe(d.path(), "a", &[], "echo building a");
        plain_recipe(d.path(), "b", &["a"], "echo 'b: error: broken' >&2; exit 3");
        let domain = Domain::Target(Arch::host().unwrap());
        let run_once = |recording: &Recording| {
            let mut run = Run::new(&p, 1, true).unwrap();
            run.observer = recording;
            let log = open_log(p.layout(), domain, "test").unwrap();
            let ctx = run.ctx(domain, &log, Equipment::default());
            let targets = target_list(&p, &run.recipes, &[]).unwrap();
            build_domain(&ctx, &targets, &Mutex::new(Vec::new())).expect_err("b fails")
        };

        let first = Recording::default();
        let failure = run_once(&first);
        let tasks = ["fetch", "unpack", "patch", "configure", "compile", "install", "package"];
        let mut want: Vec<String> =
            tasks.iter().flat_map(|t| [format!("started a {t}"), format!("finished a {t}")]).collect();
        for t in &tasks[..5] {
            want.extend([format!("started b {t}"), format!("finished b {t}")]);
        }
        want.extend(["started b install".to_string(), "failed b install install.log".to_string()]);
        assert_eq!(first.0.into_inner().unwrap(), want);
        assert_eq!(failure.failures.len(), 1);

        // Again: a is reused; b, its source fetched, starts over on a fresh work dir (the
        // engine's rule after a failure) and fails again.
        let second = Recording::default();
        run_once(&second);
        let mut want = vec!["reused a".to_string()];
        for t in &tasks[1..5] {
            want.extend([format!("started b {t}"), format!("finished b {t}")]);
        }
        want.extend(["started b install".to_string(), "failed b install install.log".to_string()]);
        assert_eq!(second.0.into_inner().unwrap(), want);
    }

    /// The kernel modules are in the image's signature: another list, or other bytes in a module
    /// of the list, repack; planning writes nothing (`ovm status` plans too).
    #[test]
    fn the_image_signature_covers_the_kernel_modules() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("k/x86_64/lib/modules/6.1.0-t/kernel");
        std::fs::create_dir_all(&tree).unwrap();
        for (name, depends) in [("a", "b"), ("b", ""), ("c", "")] {
            let fields = [format!("depends={depends}"), "vermagic=6.1.0-t SMP".to_string()];
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            std::fs::write(tree.join(format!("{name}.ko")), elf_with_modinfo(&fields, true, false)).unwrap();
        }
        let sig = |modules: &str| {
            let p = project(d.path(), modules);
            let (req, inputs) = image_plan(&p, Arch::X86_64, &[], &BTreeMap::new()).unwrap();
            let kinds: Vec<_> = req.layers.iter().map(|l| l.kind).collect();
            (inputs.signature(), kinds)
        };
        let (a, kinds) = sig("\"a\"");
        assert_eq!(kinds, [crate::pack::LayerKind::KernelModules]);
        assert_eq!(sig("\"a\"").0, a);
        assert_ne!(sig("\"a\", \"c\"").0, a);
        let (none, kinds) = sig("");
        assert!(kinds.is_empty() && none != a);
        std::fs::write(tree.join("b.ko"), elf_with_modinfo(&["depends=", "vermagic=6.1.0-t SMP", "x=y"], true, false))
            .unwrap();
        assert_ne!(sig("\"a\"").0, a, "a's dependency b changed");
        assert!(!d.path().join(".cache").exists(), "planning wrote {}", d.path().join(".cache").display());
    }
}

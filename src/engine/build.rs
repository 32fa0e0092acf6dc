//! `ovm build`: the whole pipeline for one architecture, in four phases that each run on the
//! scheduler: the toolchain (zig, from its wheel), the build tools (static busybox and GNU make for
//! the host, built in the `toolchain` profile), the target packages (strict `package` profile) and
//! the image. Every source the stale packages need is fetched first, in parallel, so a missing
//! download fails the run before any compiling starts (the old Makefile's `download` target).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::arch::Arch;
use crate::fetch::Fetcher;
use crate::project::Project;
use crate::recipe::{Kind, Recipe, RecipeSet};

use super::context_log::ContextLog;
use super::domain::Domain;
use super::lock::{ProjectLock, Wait};
use super::package::{self, Ctx, Equipment, Failure, Isolation, Outcome};
use super::scheduler::{run_graph, JobSlots, NodeResult};
use super::signature::{sha256_hex, Inputs, ENGINE_VERSION};
use super::sstate::Sstate;
use super::state::{Stamp, StateDir};
use super::tree;
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
    /// `--toolchain`: overrides `[toolchain] kind` (gcc | zig | external:DIR).
    pub toolchain: Option<String>,
}

/// One package's line in the summary.
#[derive(Debug, Clone)]
pub struct PackageReport {
    pub domain: Domain,
    pub name: String,
    pub outcome: Outcome,
}

#[derive(Debug)]
pub struct BuildSummary {
    pub packages: Vec<PackageReport>,
    pub image: Option<ImageReport>,
    pub elapsed: Duration,
}

#[derive(Debug, Clone)]
pub struct ImageReport {
    pub path: PathBuf,
    pub manifest: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub repacked: bool,
}

/// A run that stopped: what failed (each with its log) and what had been done.
#[derive(Debug)]
pub struct BuildFailure {
    pub failures: Vec<Failure>,
    pub error: Option<Box<EngineError>>,
}

impl From<EngineError> for BuildFailure {
    fn from(e: EngineError) -> Self {
        BuildFailure { failures: Vec::new(), error: Some(Box::new(e)) }
    }
}

/// The settings every phase shares.
pub(crate) struct Run<'a> {
    pub project: &'a Project,
    pub recipes: RecipeSet,
    pub fetcher: Fetcher,
    pub slots: JobSlots,
    pub isolation: Isolation,
    pub host: Arch,
    pub sstate: Option<Sstate>,
    pub cache_dir: PathBuf,
    pub quiet: bool,
}

/// The job count of a run: `-j`, else `[build] jobs`, else the number of cores; at most
/// [`MAX_JOBS`](super::scheduler::MAX_JOBS), which the jobserver pipe can hold.
pub fn jobs_for(project: &Project, requested: usize) -> Result<usize, EngineError> {
    let configured = if requested > 0 { requested } else { project.config.build.jobs };
    let max = super::scheduler::MAX_JOBS;
    if configured > max {
        let what = if requested > 0 { format!("-j {requested}") } else { format!("[build] jobs = {configured}") };
        return Err(EngineError::TooManyJobs { what, max });
    }
    Ok(if configured > 0 { configured } else { std::thread::available_parallelism().map_or(1, |n| n.get().min(max)) })
}

impl<'a> Run<'a> {
    pub fn new(
        project: &'a Project,
        jobs_wanted: usize,
        no_sandbox: bool,
        quiet: bool,
    ) -> Result<Run<'a>, EngineError> {
        super::fault::check()?;
        let recipes = RecipeSet::load(project)?;
        let fetcher = Fetcher::new(project)?;
        let slots = JobSlots::new(jobs_for(project, jobs_wanted)?).map_err(EngineError::Jobserver)?;
        let host = Arch::host().ok_or(EngineError::UnsupportedHost)?;
        let isolation = if no_sandbox {
            tracing::warn!("--no-sandbox: packages build on the host, seeing its /usr and network; outputs may differ");
            Isolation::Host
        } else {
            Isolation::Sandbox { exe: crate::sandbox::executable()? }
        };
        let sstate = std::env::var_os("OVM_SSTATE_DIR")
            .map(PathBuf::from)
            .or_else(|| project.config.build.sstate_dir.as_ref().map(|d| project.root().join(d)))
            .or_else(|| Some(project.cache_dir().join("sstate")))
            .filter(|d| !d.as_os_str().is_empty())
            .map(Sstate::new);
        let cache_dir = std::env::var_os("OVM_BUILD_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| project.cache_dir().join("build"));
        std::fs::create_dir_all(cache_dir.join("zig"))
            .map_err(|source| EngineError::Write { path: cache_dir.clone(), source })?;
        Ok(Run { project, recipes, fetcher, slots, isolation, host, sstate, cache_dir, quiet })
    }

    pub fn ctx<'r>(&'r self, domain: Domain, log: &'r ContextLog, equipment: Equipment) -> Ctx<'r> {
        Ctx {
            root: self.project.root(),
            domain,
            host: self.host,
            fetcher: &self.fetcher,
            slots: &self.slots,
            log,
            states: StateDir::new(domain.states(self.project.root())),
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
            quiet: self.quiet,
        }
    }

    /// The toolchain's recipe for `kind = zig`.
    fn zig_recipe(&self) -> Result<&Recipe, EngineError> {
        Ok(self.recipes.require("zig")?)
    }

    pub fn toolchain_kind(&self, over: Option<&str>) -> Result<ToolchainChoice, EngineError> {
        let cfg = &self.project.config.toolchain;
        let kind = over.unwrap_or(cfg.kind.as_str());
        if let Some(dir) = kind.strip_prefix("external:") {
            return Ok(ToolchainChoice::External(self.project.root().join(dir)));
        }
        match kind {
            "zig" => Ok(ToolchainChoice::Zig),
            "gcc" => Ok(ToolchainChoice::Gcc),
            "external" => match &cfg.path {
                Some(p) => Ok(ToolchainChoice::External(self.project.root().join(p))),
                None => Err(EngineError::ExternalToolchain {
                    dir: PathBuf::new(),
                    reason: "[toolchain] kind = \"external\" needs path = \"DIR\"".into(),
                }),
            },
            other => Err(EngineError::UnknownToolchain(other.into())),
        }
    }
}

#[derive(Debug, Clone)]
pub enum ToolchainChoice {
    Zig,
    /// Built from source by `ovm toolchain ARCH` (crate::toolchain::gcc), per target.
    Gcc,
    External(PathBuf),
}

/// The signature of an external toolchain: its `bin/` entries' names and contents. A toolchain is
/// trusted to be what its driver binaries are; re-hashing gigabytes of libraries each run is not.
fn external_equipment(dir: &Path, arch: Arch) -> Result<(PathBuf, String), EngineError> {
    let bin = dir.join("bin");
    let cc = bin.join(format!("{}-cc", arch.musl_triple()));
    let gcc = bin.join(format!("{}-gcc", arch.musl_triple()));
    if !cc.exists() && !gcc.exists() {
        return Err(EngineError::ExternalToolchain {
            dir: dir.to_path_buf(),
            reason: format!("no bin/{}-cc or -gcc", arch.musl_triple()),
        });
    }
    Ok((dir.to_path_buf(), tree::hash_tree(&bin)?))
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
        let dep_outputs: BTreeMap<String, String> = {
            let outs = ctx.outputs.lock().map_err(|_| poisoned(recipe))?;
            recipe.depends.iter().filter_map(|d| outs.get(d).map(|o| (d.clone(), o.clone()))).collect()
        };
        let (outcome, output) = package::build(ctx, recipe, &dep_outputs)?;
        if !ctx.quiet {
            match &outcome {
                Outcome::Reused => tracing::debug!("{} {}: up to date", ctx.domain, recipe.name),
                Outcome::FromCache => tracing::info!("{} {}: from the shared-state cache", ctx.domain, recipe.name),
                Outcome::Built(from) => tracing::info!("{} {}: built (from {from})", ctx.domain, recipe.name),
            }
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
    Box::new(Failure {
        package: recipe.name.clone(),
        task: "fetch".into(),
        log: PathBuf::new(),
        error: EngineError::Internal("a worker panicked".into()),
    })
}

/// Makes `toolchain/tools/` the union of the tools' staged outputs; its signature is the hash of
/// their output hashes (so it is known without walking the tree again).
fn compose_tools(root: &Path, outputs: &BTreeMap<String, String>) -> Result<(PathBuf, String), EngineError> {
    let mut i = Inputs::new();
    for (name, out) in outputs {
        i.set(format!("tool.{name}"), out);
    }
    let sig = i.signature();
    let dir = root.join("toolchain").join("tools");
    let marker = root.join("states").join("tools").join("composed");
    let current = std::fs::read_to_string(&marker).ok();
    if current.as_deref().map(str::trim) == Some(sig.as_str()) && dir.join("bin").is_dir() {
        return Ok((dir, sig));
    }
    let tmp = root.join("toolchain").join(".tools.new");
    tree::remove_all(&tmp)?;
    let layers: Vec<(String, PathBuf)> =
        outputs.keys().map(|n| (n.clone(), Domain::Tools(Arch::X86_64).staging(root, n))).collect();
    tree::compose(&layers, &tmp)?;
    tree::commit(&tmp, &dir)?;
    super::fault::point("tools.composed", "tools");
    super::state::write_atomic(&marker, sig.as_bytes())?;
    Ok((dir, sig))
}

/// The equipment of the target domain as it stands, without building anything (for `status`,
/// `spec`, the prefetch plan).
pub(crate) fn current_equipment(run: &Run<'_>, choice: &ToolchainChoice, arch: Arch) -> Equipment {
    let root = run.project.root();
    let (toolchain_dir, toolchain_sig) = match choice {
        ToolchainChoice::Zig => {
            let st = StateDir::new(Domain::Toolchain.states(root));
            let sig = st.stamp("zig", "package").ok().flatten().and_then(|s| s.output).unwrap_or_default();
            (Domain::Toolchain.staging(root, "zig"), sig)
        }
        ToolchainChoice::Gcc => crate::toolchain::gcc::current_for_target(root, arch, run.host),
        ToolchainChoice::External(dir) => external_equipment(dir, arch).unwrap_or((dir.clone(), String::new())),
    };
    let tools_dir = root.join("toolchain").join("tools");
    let tools_sig = std::fs::read_to_string(root.join("states").join("tools").join("composed"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Equipment { toolchain_dir, toolchain_sig, tools_dir: Some(tools_dir), tools_sig }
}

/// The target recipes to build: the named ones and their dependencies, or all.
pub(crate) fn target_list<'r>(recipes: &'r RecipeSet, packages: &[String]) -> Result<Vec<&'r Recipe>, EngineError> {
    if packages.is_empty() {
        Ok(recipes.topological_order().into_iter().filter(|r| r.kind == Kind::Target).collect())
    } else {
        Ok(recipes.closure(packages)?.into_iter().filter(|r| r.kind == Kind::Target).collect())
    }
}

/// Fetches, in parallel and before anything compiles, the sources of every package that has work.
pub(crate) fn prefetch(run: &Run<'_>, plans: &[(Domain, Vec<&Recipe>, Equipment)]) -> Result<(), EngineError> {
    let log = ContextLog::open(&std::env::temp_dir().join(format!("ovm-prefetch-{}.log", std::process::id())))
        .map_err(|source| EngineError::Write { path: std::env::temp_dir(), source })?;
    let mut wanted = Vec::new();
    for (domain, list, eq) in plans {
        let ctx = run.ctx(*domain, &log, eq.clone());
        for r in list {
            let deps: BTreeMap<String, String> = r
                .depends
                .iter()
                .filter_map(|d| {
                    let s = ctx.states.stamp(d, "package").ok().flatten()?;
                    Some((d.clone(), s.output?))
                })
                .collect();
            let verdict = package::assess_inputs(&ctx, r, &deps)?;
            if verdict.start.is_some() {
                wanted.extend(r.sources.iter());
            }
        }
    }
    let _ = std::fs::remove_file(log.path());
    if wanted.is_empty() {
        return Ok(());
    }
    let report = run.fetcher.fetch_all(&wanted);
    let mut first = None;
    for (item, err) in report.failures() {
        tracing::error!("{}: {err}", item.recipe);
        first.get_or_insert_with(|| err.to_string());
    }
    match first {
        None => Ok(()),
        Some(_) => Err(EngineError::Failed(report.failures().count())),
    }
}

/// Takes the project lock (`states/.lock`), waiting for another ovm unless `no_wait`; the holder
/// is named either way.
pub fn lock_project(project: &Project, no_wait: bool) -> Result<ProjectLock, EngineError> {
    Ok(ProjectLock::acquire(
        &project.root().join("states").join(".lock"),
        if no_wait { Wait::NoWait } else { Wait::Block },
        |holder| tracing::warn!("waiting for another ovm on this project ({holder})"),
    )?)
}

/// Takes the project lock and opens a run (recipes, fetcher, jobserver, sandbox executable).
pub(crate) fn open_run<'a>(
    project: &'a Project,
    jobs: usize,
    no_sandbox: bool,
    no_wait: bool,
    quiet: bool,
) -> Result<(ProjectLock, Run<'a>), EngineError> {
    // A job count the jobserver cannot hold is refused before waiting for another ovm.
    jobs_for(project, jobs)?;
    let lock = lock_project(project, no_wait)?;
    for path in super::state::remove_stale_temporaries(project.root())? {
        tracing::info!("removed {}, left by an interrupted run", path.display());
    }
    Ok((lock, Run::new(project, jobs, no_sandbox, quiet)?))
}

/// Phases 1 and 2: the toolchain and the build tools, built or reused; returns what the target
/// packages are built with. Sources of everything stale (including `targets`) are fetched first.
pub(crate) fn equip(
    run: &Run<'_>,
    choice: &ToolchainChoice,
    arch: Arch,
    targets: &[&Recipe],
    what: &str,
    reports: &Mutex<Vec<PackageReport>>,
) -> Result<Equipment, BuildFailure> {
    let root = run.project.root();
    let tools: Vec<&Recipe> = run.recipes.topological_order().into_iter().filter(|r| r.kind == Kind::Tools).collect();

    // The bootstrap profile builds with host /usr visible; zig is unpacked, never compiled.
    let bootstrap_eq = |toolchain_dir: PathBuf, toolchain_sig: String| Equipment {
        toolchain_dir,
        toolchain_sig,
        tools_dir: None,
        tools_sig: String::new(),
    };

    {
        let mut plans = Vec::new();
        let cur = current_equipment(run, choice, arch);
        // The build tools run on the host: with gcc they are compiled by the host's toolchain.
        let mut tools_eq = bootstrap_eq(cur.toolchain_dir.clone(), cur.toolchain_sig.clone());
        match choice {
            ToolchainChoice::Zig => {
                plans.push((Domain::Toolchain, vec![run.zig_recipe()?], bootstrap_eq(PathBuf::new(), String::new())))
            }
            ToolchainChoice::Gcc => {
                plans.push(crate::toolchain::gcc::prefetch_plan(run, run.host)?);
                if arch != run.host {
                    plans.push(crate::toolchain::gcc::prefetch_plan(run, arch)?);
                }
                let host = crate::toolchain::gcc::current(root, run.host);
                tools_eq = bootstrap_eq(host.dir, host.signature);
            }
            ToolchainChoice::External(_) => {}
        }
        plans.push((Domain::Tools(run.host), tools.clone(), tools_eq));
        plans.push((Domain::Target(arch), targets.to_vec(), cur));
        prefetch(run, &plans)?;
    }

    // (what target packages build with, what the build tools build with)
    let ((toolchain_dir, toolchain_sig), (tools_tc_dir, tools_tc_sig)) = match choice {
        ToolchainChoice::Zig => {
            let log = open_log(root, Domain::Toolchain, what)?;
            let ctx = run.ctx(Domain::Toolchain, &log, bootstrap_eq(PathBuf::new(), String::new()));
            let outs = build_domain(&ctx, &[run.zig_recipe()?], reports)?;
            let zig = (Domain::Toolchain.staging(root, "zig"), outs.get("zig").cloned().unwrap_or_default());
            (zig.clone(), zig)
        }
        ToolchainChoice::Gcc => {
            // The host's toolchain first: it compiles the build tools and is every target's $HOSTCC.
            let host = crate::toolchain::gcc::ensure(run, run.host, what, reports)?;
            let target =
                if arch == run.host { host.clone() } else { crate::toolchain::gcc::ensure(run, arch, what, reports)? };
            (crate::toolchain::gcc::for_target(root, &target, &host)?, (host.dir, host.signature))
        }
        ToolchainChoice::External(dir) => {
            let ext = external_equipment(dir, arch)?;
            (ext.clone(), ext)
        }
    };

    let tools_domain = Domain::Tools(run.host);
    let log = open_log(root, tools_domain, what)?;
    let ctx = run.ctx(tools_domain, &log, bootstrap_eq(tools_tc_dir, tools_tc_sig));
    let tool_outputs = build_domain(&ctx, &tools, reports)?;
    let (tools_dir, tools_sig) = compose_tools(root, &tool_outputs)?;
    Ok(Equipment { toolchain_dir, toolchain_sig, tools_dir: Some(tools_dir), tools_sig })
}

/// `logs/DOMAIN/context.log`, with this run's header line.
pub(crate) fn open_log(root: &Path, domain: Domain, what: &str) -> Result<ContextLog, EngineError> {
    let dir = domain.logs(root);
    let log = ContextLog::open(&dir.join("context.log")).map_err(|source| EngineError::Write { path: dir, source })?;
    log.run_started(what);
    Ok(log)
}

/// `ovm build`.
pub fn build(project: &Project, opts: &BuildOptions, quiet: bool) -> Result<BuildSummary, BuildFailure> {
    let t0 = Instant::now();
    let (_lock, run) = open_run(project, opts.jobs, opts.no_sandbox, opts.no_wait, quiet)?;
    let choice = run.toolchain_kind(opts.toolchain.as_deref())?;
    let reports = Mutex::new(Vec::new());
    let what = format!("ovm build {}{}", opts.arch, opts.packages.iter().map(|p| format!(" {p}")).collect::<String>());
    let targets = target_list(&run.recipes, &opts.packages)?;

    let equipment = equip(&run, &choice, opts.arch, &targets, &what, &reports)?;

    let domain = Domain::Target(opts.arch);
    let log = open_log(project.root(), domain, &what)?;
    let ctx = run.ctx(domain, &log, equipment);
    let outputs = build_domain(&ctx, &targets, &reports)?;

    // The image, unless only some packages were asked for.
    let image =
        if opts.packages.is_empty() { Some(pack_image(project, opts.arch, &targets, &outputs, &log)?) } else { None };

    let mut packages = reports.into_inner().unwrap_or_default();
    packages.sort_by(|a, b| (a.domain, &a.name).cmp(&(b.domain, &b.name)));
    Ok(BuildSummary { packages, image, elapsed: t0.elapsed() })
}

/// The pack request for the image of `targets` and the inputs of its signature: every layer's
/// hash (packages by their recorded output hash, rootfs/ and the overlay by walking them), the
/// device table, compression and SOURCE_DATE_EPOCH.
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
        layers.push(crate::pack::Layer::package(r.name.clone(), project.staging_dir(arch, &r.name), false));
    }
    layers.extend(req.layers.iter().filter(|l| matches!(l.kind, crate::pack::LayerKind::Overlay)).cloned());
    req.layers = layers;

    let mut inputs = Inputs::new();
    inputs.set("engine", ENGINE_VERSION).set("compress", format!("{:?}", req.compress));
    inputs.set("source_date_epoch", req.source_date_epoch.to_string());
    for l in &req.layers {
        let h = match l.kind {
            crate::pack::LayerKind::Package { .. } => outputs.get(&l.name).cloned().unwrap_or_default(),
            _ => tree::hash_tree(&l.dir)?,
        };
        inputs.set(format!("layer.{}", l.name), h);
    }
    if let Some(t) = &req.device_table {
        let bytes = std::fs::read(t).unwrap_or_default();
        inputs.set("device_table", sha256_hex(&bytes));
    }
    Ok((req, inputs))
}

/// Packs `rootfs/` + the target packages (dependency order) + the overlay, unless nothing that goes
/// into the image changed since the last pack and the image is still there.
fn pack_image(
    project: &Project,
    arch: Arch,
    targets: &[&Recipe],
    outputs: &BTreeMap<String, String>,
    log: &ContextLog,
) -> Result<ImageReport, EngineError> {
    let (req, inputs) = image_plan(project, arch, targets, outputs)?;
    let states = StateDir::new(Domain::Target(arch).states(project.root()));
    let sig = inputs.signature();
    if let Some(stamp) = states.stamp("image", "pack")? {
        if stamp.signature == sig {
            if let Some(rep) = existing_image(&stamp) {
                return Ok(rep);
            }
        }
    }
    log.start(arch.name(), "image", "pack", &sig);
    super::fault::point("image.begin", "image");
    let t0 = Instant::now();
    let out = crate::pack::pack(&req)?;
    super::fault::point("image.packed", "image");
    log.done(arch.name(), "image", "pack", t0.elapsed(), &sig);
    let stamp = Stamp {
        signature: sig,
        inputs,
        output: Some(format!("{}\n{}\n{}\n{}", out.image.display(), out.manifest.display(), out.size, out.sha256)),
        duration_ms: t0.elapsed().as_millis() as u64,
    };
    states.write_stamp("image", "pack", &stamp)?;
    Ok(ImageReport { path: out.image, manifest: out.manifest, size: out.size, sha256: out.sha256, repacked: true })
}

/// The image a pack stamp describes, if it is still there with the recorded size and hash.
pub(crate) fn existing_image(stamp: &Stamp) -> Option<ImageReport> {
    let out = stamp.output.as_deref()?;
    let mut l = out.lines();
    let path = PathBuf::from(l.next()?);
    let manifest = PathBuf::from(l.next()?);
    let size: u64 = l.next()?.parse().ok()?;
    let sha256 = l.next()?.to_string();
    let bytes = std::fs::read(&path).ok()?;
    let intact = bytes.len() as u64 == size && sha256_hex(&bytes) == sha256 && manifest.exists();
    intact.then_some(ImageReport { path, manifest, size, sha256, repacked: false })
}

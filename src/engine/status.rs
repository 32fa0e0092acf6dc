//! `ovm status [ARCH] [--why]`: for every package of the toolchain, the build tools and the
//! target architecture(s), whether it is built, stale (and which input changed, cargo's fingerprint
//! explanations being the model), failed (the `await` marker), interrupted, or never built — and
//! whether the image needs repacking. It reads state only: no lock, nothing written (but the
//! output fingerprint notes, a cache; a [`Query::read_only`] walk writes not even those).
//!
//! The same walk answers `ovm list` (every recipe with its state per domain), `ovm info` (one
//! package's line) and `ovm build --dry-run` (each line's [`Line::runs`]: the tasks a build would
//! run), so the four commands never disagree.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde::Serialize;

use crate::arch::Arch;
use crate::project::Project;
use crate::recipe::{Kind, Recipe};
use crate::signature::Inputs;

use crate::layout::{Domain, TaskName, IMAGE};
use crate::toolchain::{Parts, Toolchain, ToolchainKind};

use super::build::{image_plan, target_list, Run};
use super::context_log::ContextLog;
use super::ctx::Ctx;
use super::freshness::{self, OutputCheck, Verdict};
use super::state::{Stamp, StateDir};
use super::task::Task;
use super::EngineError;

/// One package's line. As JSON (`--json`): an object whose `state` field is the variant's
/// snake_case name (`built`, `never_built`, `failed`, `interrupted`, `stale`, `waits`), next to
/// the variant's own fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    Built,
    NeverBuilt,
    Failed {
        task: String,
        log: String,
    },
    Interrupted {
        task: String,
    },
    /// Stale from `task`; `changes` lists the inputs that differ from the stamp.
    Stale {
        task: String,
        changes: Vec<String>,
    },
    /// A dependency is not built, so this cannot be up to date either.
    Waits {
        on: String,
    },
    /// Not built here, and the shared-state cache (local or remote) has its output under the
    /// signature a build would give it: the build restores it (`engine::setscene`).
    FromCache,
    /// A toolchain part or build tool that is not built, and need not be: every package the build
    /// is for comes from the cache.
    NotNeeded,
}

impl State {
    pub fn is_built(&self) -> bool {
        matches!(self, State::Built)
    }

    /// Built, or nothing to do for it: what holds up nobody.
    pub fn is_settled(&self) -> bool {
        matches!(self, State::Built | State::NotNeeded)
    }

    /// The state in one or two words (`ovm list`'s column).
    pub fn word(&self) -> &'static str {
        match self {
            State::Built => "built",
            State::NeverBuilt => "never built",
            State::Failed { .. } => "failed",
            State::Interrupted { .. } => "interrupted",
            State::Stale { .. } | State::Waits { .. } => "stale",
            State::FromCache => "from cache",
            State::NotNeeded => "not needed",
        }
    }
}

/// A package (or the image, named [`IMAGE`]) in one domain.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// The domain's directory name: `toolchain`, `cross-ARCH`, `tools`, or the architecture.
    pub domain: String,
    #[serde(rename = "package")]
    pub name: String,
    #[serde(flatten)]
    pub state: State,
    /// The tasks a build would run for it now, in order (empty: none). For a package that only
    /// [`State::Waits`], the most it reruns if what it waits for comes out different.
    pub runs: Vec<String>,
}

/// What [`collect_query`] walks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    /// `None`: every architecture that has state (the host's when none has).
    pub arch: Option<Arch>,
    /// Only these target packages and their dependencies, and no image; empty: the image's
    /// packages (`[pack] packages`) and the image.
    pub packages: &'a [String],
    /// The toolchain to assess against (`ovm build --dry-run --toolchain`); `None`: the project's.
    pub toolchain: Option<&'a ToolchainKind>,
    /// Write nothing, not even the output fingerprint notes (`ovm build --dry-run`).
    pub read_only: bool,
    /// Assess as `--no-sandbox` builds (the isolation is an input of every first step).
    pub no_sandbox: bool,
    /// The named image (`ovm build --dry-run --image NAME`): its packages and its pack instead
    /// of the default image's.
    pub image: Option<&'a crate::image::ImageDef>,
}

/// The first line of `ovm status`: the toolchain the packages are judged against, and why.
pub fn toolchain_line(project: &Project) -> Result<String, EngineError> {
    Ok(format!("toolchain: {}", super::choice::resolve(project, None)?))
}

/// The status of every package; `arch: None` covers every architecture that has state.
pub fn collect(project: &Project, arch: Option<Arch>) -> Result<Vec<Line>, EngineError> {
    collect_query(project, &Query { arch, ..Query::default() })
}

/// The lines of every package `query` covers: the toolchain's parts, the build tools, each
/// architecture's target packages and image, in build order.
pub fn collect_query(project: &Project, query: &Query<'_>) -> Result<Vec<Line>, EngineError> {
    let run = Run::new(project, 1, query.no_sandbox)?;
    let kind = run.toolchain(query.toolchain)?;
    let packages = match query.image {
        Some(def) => super::image::recipes_for(def, &run.recipes)?,
        None => query.packages.to_vec(),
    };
    let check = if query.read_only { OutputCheck::VerifyQuietly } else { OutputCheck::Verify };
    let arch = query.arch;
    let log = ContextLog::discard()?;
    let archs: Vec<Arch> = match arch {
        Some(a) => vec![a],
        None => {
            let with_state: Vec<Arch> =
                Arch::ALL.into_iter().filter(|a| project.layout().states(Domain::Target(*a)).is_dir()).collect();
            if with_state.is_empty() {
                vec![Arch::host_or_default()]
            } else {
                with_state
            }
        }
    };
    let mut lines = Vec::new();
    let mut blocked_by: Option<String> = None;
    // With a remote cache, a build may need only the caches (`engine::setscene`): per
    // architecture, the equipment it would judge the packages with then.
    let cached: BTreeMap<Arch, crate::toolchain::Equipment> = {
        let targets = target_list(project, &run.recipes, &packages)?;
        archs.iter().filter_map(|&a| Some((a, super::setscene::covered(&run, &kind, a, &targets)?))).collect()
    };
    // The toolchain and the build tools are not needed when every architecture's packages are cached.
    let tools_needed = cached.len() < archs.len();
    let not_needed = |lines: &mut Vec<Line>, from: usize| {
        if !tools_needed {
            for l in &mut lines[from..] {
                if !l.state.is_built() && !matches!(l.state, State::Failed { .. } | State::Interrupted { .. }) {
                    l.state = State::NotNeeded;
                    l.runs.clear();
                }
            }
        }
    };

    // The toolchain's parts: the host's first (they compile the build tools), then each target's.
    let mut toolchain_parts: Vec<Parts<'_>> = Vec::new();
    for a in std::iter::once(run.host).chain(archs.iter().copied()) {
        for parts in kind.parts(&run.target(a))? {
            if !toolchain_parts.iter().any(|p| p.domain == parts.domain) {
                toolchain_parts.push(parts);
            }
        }
    }
    for parts in toolchain_parts {
        let ctx = run.ctx(parts.domain, &log, parts.equipment);
        let first = lines.len();
        let stale = domain_status(&ctx, &parts.recipes, check, &no_wait, &mut lines)?;
        not_needed(&mut lines, first);
        if stale && tools_needed && blocked_by.is_none() {
            blocked_by = Some(match parts.domain {
                Domain::Cross(a) => format!("the {a} gcc toolchain"),
                _ => format!(
                    "toolchain {}",
                    parts.recipes.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    let tools = super::build::tools_domain_list(&run.recipes, &target_list(project, &run.recipes, &packages)?)?;
    let tools_domain = Domain::Tools(run.host);
    let ctx = run.ctx(tools_domain, &log, run.equipment_now(&kind, tools_domain, archs[0])?);
    let first = lines.len();
    domain_status(&ctx, &tools, check, &no_wait, &mut lines)?;
    not_needed(&mut lines, first);
    // A stale build tool holds up every target package; a stale native tool only those naming it.
    let mut stale_native = BTreeSet::new();
    for (l, r) in lines[first..].iter().zip(&tools) {
        match r.kind {
            _ if l.state.is_settled() => {}
            Kind::Native => {
                stale_native.insert(r.name.as_str());
            }
            _ if blocked_by.is_none() => blocked_by = Some("the build tools".into()),
            _ => {}
        }
    }
    let native_wait = |r: &Recipe| -> Result<Option<String>, EngineError> {
        let closure = run.recipes.native_of(r)?;
        Ok(closure
            .iter()
            .find(|n| stale_native.contains(n.name.as_str()))
            .map(|n| format!("the native tool {}", n.name)))
    };

    for a in archs {
        let targets = target_list(project, &run.recipes, &packages)?;
        let equipment = match cached.get(&a) {
            Some(e) => e.clone(),
            None => run.equipment_now(&kind, Domain::Target(a), a)?,
        };
        let ctx = run.ctx(Domain::Target(a), &log, equipment);
        let first = lines.len();
        let stale = domain_status(&ctx, &targets, check, &native_wait, &mut lines)?;
        if cached.contains_key(&a) {
            // Every package the build does not find current here, it restores from the cache.
            for l in &mut lines[first..] {
                if !l.state.is_built() {
                    l.state = State::FromCache;
                    l.runs = vec!["sstate".into()];
                }
            }
        }
        if let Some(b) = &blocked_by {
            for (l, r) in lines[first..].iter_mut().zip(&targets) {
                if l.state.is_built() {
                    l.state = State::Waits { on: b.clone() };
                    l.runs = rebuild_tasks(&ctx, r);
                }
            }
        }
        if !query.packages.is_empty() {
            continue;
        }
        let outputs: BTreeMap<String, String> =
            targets.iter().filter_map(|r| Some((r.name.clone(), ctx.states.staged_hash(&r.name)?))).collect();
        if let Some(def) = query.image {
            let task = TaskName::pack_image(&def.name);
            let image = if stale || blocked_by.is_some() {
                State::Waits { on: "the packages".into() }
            } else {
                let plan = super::image::plan_named(project, a, def, &targets, &outputs)?;
                pack_state(&ctx.states, &task, &plan.inputs)?
            };
            let runs = if image.is_built() { Vec::new() } else { vec![task.to_string()] };
            lines.push(Line { domain: a.name().into(), name: IMAGE.into(), state: image, runs });
            continue;
        }
        let image = if stale || blocked_by.is_some() {
            State::Waits { on: "the packages".into() }
        } else {
            image_state(project, a, &targets, &outputs, &ctx.states)?
        };
        let runs = match &image {
            State::Built => Vec::new(),
            State::Stale { task, .. } if task == "feed" => vec![TaskName::feed().to_string()],
            _ => vec![TaskName::pack().to_string(), TaskName::feed().to_string()],
        };
        lines.push(Line { domain: a.name().into(), name: IMAGE.into(), state: image, runs });
    }
    Ok(lines)
}

fn image_state(
    project: &Project,
    arch: Arch,
    targets: &[&Recipe],
    outputs: &BTreeMap<String, String>,
    states: &StateDir,
) -> Result<State, EngineError> {
    let (_, inputs) = image_plan(project, arch, targets, outputs)?;
    let state = pack_state(states, &TaskName::pack(), &inputs)?;
    if !state.is_built() {
        return Ok(state);
    }
    // The image is built; its package feed may still be stale.
    let inputs = super::build::feed_inputs(project, targets, outputs);
    let Some(feed) = states.stamp(IMAGE, &TaskName::feed())? else {
        return Ok(State::Stale { task: "feed".into(), changes: vec!["the package feed was never written".into()] });
    };
    let intact = |s: &Stamp| super::build::feed_intact(project, arch, s);
    Ok(stamp_state("feed", &inputs, &feed, intact, "the feed in output/ is missing or was changed"))
}

/// The state of an image's pack task (`pack`, `pack-NAME`) that would pack `inputs`.
fn pack_state(states: &StateDir, task: &TaskName, inputs: &Inputs) -> Result<State, EngineError> {
    let Some(stamp) = states.stamp(IMAGE, task)? else { return Ok(State::NeverBuilt) };
    let intact = |s: &Stamp| super::build::existing_image(s).is_some();
    Ok(stamp_state(task.as_str(), inputs, &stamp, intact, "the image in output/ is missing or was changed"))
}

/// An image task's state from its stamp: stale with the inputs that changed, stale because what it
/// made is gone (`missing`), or built.
fn stamp_state(task: &str, inputs: &Inputs, stamp: &Stamp, intact: impl Fn(&Stamp) -> bool, missing: &str) -> State {
    if stamp.signature != inputs.signature() {
        State::Stale {
            task: task.into(),
            changes: inputs.diff(&stamp.inputs).iter().map(ToString::to_string).collect(),
        }
    } else if !intact(stamp) {
        State::Stale { task: task.into(), changes: vec![missing.into()] }
    } else {
        State::Built
    }
}

/// Appends one line per recipe; returns whether any is not built.
/// No package of the domain waits for anything outside it.
fn no_wait(_: &Recipe) -> Result<Option<String>, EngineError> {
    Ok(None)
}

/// The status lines of `list`, one domain's packages in dependency order; `waits_outside` says
/// what outside the domain a package current in itself still waits for (a stale native tool).
/// Returns whether any package is not built.
fn domain_status(
    ctx: &Ctx<'_>,
    list: &[&Recipe],
    check: OutputCheck,
    waits_outside: &dyn Fn(&Recipe) -> Result<Option<String>, EngineError>,
    lines: &mut Vec<Line>,
) -> Result<bool, EngineError> {
    let mut not_built: BTreeMap<&str, ()> = BTreeMap::new();
    let mut any = false;
    for r in list {
        // A package current in itself still waits for a dependency that is not built; one that
        // is not built itself says why (never built, failed …), which says more.
        let waits = match r.depends.iter().find(|d| not_built.contains_key(d.as_str())) {
            Some(d) => Some(d.clone()),
            None => waits_outside(r)?,
        };
        let (state, runs) = match (package_state(ctx, r, check)?, waits) {
            ((State::Built, _), Some(d)) => (State::Waits { on: d }, rebuild_tasks(ctx, r)),
            (own, _) => own,
        };
        if !state.is_built() {
            not_built.insert(r.name.as_str(), ());
            any = true;
        }
        lines.push(Line { domain: ctx.domain.to_string(), name: r.name.clone(), state, runs });
    }
    Ok(any)
}

/// The package's state and the tasks a build would run for it.
fn package_state(ctx: &Ctx<'_>, r: &Recipe, check: OutputCheck) -> Result<(State, Vec<String>), EngineError> {
    let pkg = r.name.as_str();
    let deps = ctx.dep_outputs(r, |d| ctx.states.staged_hash(d))?;
    let v = freshness::assess(ctx, r, &deps, check)?;
    let runs = tasks_to_run(ctx, r, &deps, &v)?;
    if let Some(a) = ctx.states.awaiting()? {
        if a.package == pkg {
            return Ok((State::Failed { task: a.task.to_string(), log: a.log.display().to_string() }, runs));
        }
    }
    if let Some(task) = ctx.states.running(pkg)? {
        return Ok((State::Interrupted { task }, runs));
    }
    if ctx.states.stamp(pkg, &TaskName::fetch())?.is_none() && ctx.states.stamp(pkg, &TaskName::package())?.is_none() {
        return Ok((State::NeverBuilt, runs));
    }
    Ok(match v.stale {
        None => (State::Built, runs),
        Some(stale) => {
            (State::Stale { task: v.plan.name(stale.task).to_string(), changes: stale.reason.lines() }, runs)
        }
    })
}

/// The tasks `package::run_until` would run on `v`, read-only: from where the build resumes
/// (`freshness::resume_point`) to `package`. A stale fetch runs first; what it fetches is not
/// known yet, so the rest then starts at `unpack`, as after any new fetch.
fn tasks_to_run(
    ctx: &Ctx<'_>,
    r: &Recipe,
    deps: &BTreeMap<String, String>,
    v: &Verdict,
) -> Result<Vec<String>, EngineError> {
    let Some(stale) = &v.stale else { return Ok(Vec::new()) };
    let plan = &v.plan;
    let start = match (&v.fetched, stale.task) {
        (Some(fetched), t) if t != Task::FETCH => {
            let sigs = freshness::signatures(ctx, r, plan, deps, Some(fetched))?;
            freshness::resume_point(ctx, &r.name, plan, t, &sigs, &ctx.dirs(&r.name))
        }
        _ => Task::FETCH,
    };
    Ok(plan.all().filter(|t| *t >= start).map(|t| plan.name(t).to_string()).collect())
}

/// What a package reruns when a dependency (or the toolchain) it waits for comes out different:
/// its first step's inputs change, and a stale first step restarts at `unpack`.
fn rebuild_tasks(ctx: &Ctx<'_>, r: &Recipe) -> Vec<String> {
    let plan = super::task::TaskPlan::for_recipe(r, ctx.domain.arch());
    plan.all().filter(|t| *t >= Task::UNPACK).map(|t| plan.name(t).to_string()).collect()
}

/// Prints the table; with `why`, every changed input on its own line. Returns whether all is built.
pub fn print(lines: &[Line], why: bool, out: &mut dyn Write) -> bool {
    let mut all = true;
    // Columns as wide as their longest entry (`cross-aarch64` is wider than `tools`).
    let dw = lines.iter().map(|l| l.domain.len()).max().unwrap_or(0).max(10);
    let nw = lines.iter().map(|l| l.name.len()).max().unwrap_or(0).max(16);
    let indent = dw + 1 + nw + 2;
    for l in lines {
        all &= l.state.is_built();
        let text = match &l.state {
            State::Built => "built".to_string(),
            State::NeverBuilt => "never built".to_string(),
            State::Failed { task, log } => format!("FAILED at {task} (log: {log})"),
            State::Interrupted { task } => format!("interrupted during {task} (its work dir will be discarded)"),
            State::Waits { on } => format!("stale: waits for {on}"),
            State::FromCache => "from the shared-state cache (not built here; the build restores it)".to_string(),
            State::NotNeeded => "not needed (every package is in the shared-state cache)".to_string(),
            State::Stale { task, changes } if why => {
                let mut s = format!("stale from {task}, because:");
                for c in changes {
                    s.push_str(&format!("\n{:indent$}- {c}", ""));
                }
                s
            }
            State::Stale { task, changes } => {
                let keys: Vec<&str> = changes.iter().map(|c| c.split(' ').next().unwrap_or(c)).collect();
                format!("stale from {task} ({}; --why for details)", keys.join(", "))
            }
        };
        let _ = writeln!(out, "{:<dw$} {:<nw$} {text}", l.domain, l.name);
    }
    all
}

//! Building one package: decide which of its tasks are stale, then run them in order, in the
//! sandbox where they compile, with stamps, logs, the `running` marker and the `await` marker.
//!
//! Where a package resumes:
//! * the first task whose stamp is missing or whose signature differs from the one computed now;
//! * but a task can only run on the work dir its predecessor left: `work/D/PKG/.ovm-work` records the
//!   signatures of the tasks done in this work dir; if the predecessor's is not there (work dir
//!   wiped, or made by another recipe), the package restarts at `unpack`;
//! * a stale `patch`, `configure` or `compile` restarts at `unpack`: they never rerun on a tree
//!   their own earlier run wrote to (already patched sources, in-tree objects make takes as current);
//! * a package whose `running` marker survived (ovm was killed) or that is named by `await` (it
//!   failed) has a dirty work dir: it is thrown away and the package restarts at `unpack`;
//! * nothing stale: the staged output must still hash to what the `package` stamp recorded, else it
//!   was damaged behind ovm's back and the package is rebuilt. The content is re-hashed only when
//!   the tree's metadata fingerprint (`tree::stat_fingerprint`) differs from the one noted in
//!   `.cache/output-stat/D/PKG` after the last check that matched. That note is a cache, not state
//!   (deleting it costs one re-hash); with it a no-op build reads no staged bytes, which matters
//!   once a package's output is the 100 MB of a gcc toolchain.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::fetch::{Fetcher, Variant};
use crate::recipe::Recipe;
use crate::sandbox::{self, SandboxBuilder};

use super::context_log::ContextLog;
use super::domain::Domain;
use super::env::{self, EnvSpec, Profile};
use super::fault;
use super::scheduler::JobSlots;
use super::signature::{Inputs, ENGINE_VERSION};
use super::sstate::Sstate;
use super::state::{self, Await, Stamp, StateDir};
use super::steplog;
use super::task::{StepTask, Task, TaskKind, TaskPlan};
use super::tree;
use super::EngineError;

/// How steps run: in the sandbox (the default) or, when the user opted out loudly, on the host.
#[derive(Debug, Clone)]
pub enum Isolation {
    Sandbox { exe: PathBuf },
    Host,
}

/// The toolchain and build tools a domain builds with, as host paths plus their signatures.
#[derive(Debug, Clone)]
pub struct Equipment {
    /// Bound at /ovm/toolchain.
    pub toolchain_dir: PathBuf,
    pub toolchain_sig: String,
    /// Bound at /ovm/tools; `None` while the tools themselves are being built.
    pub tools_dir: Option<PathBuf>,
    pub tools_sig: String,
}

/// Everything shared by the packages of one domain in one run.
pub struct Ctx<'a> {
    pub root: &'a Path,
    pub domain: Domain,
    pub host: crate::arch::Arch,
    pub fetcher: &'a Fetcher,
    pub slots: &'a JobSlots,
    pub log: &'a ContextLog,
    pub states: StateDir,
    pub isolation: Isolation,
    pub equipment: Equipment,
    /// Host dir bound at /ovm/cache (the zig cache lives there).
    pub cache_dir: PathBuf,
    pub sstate: Option<Sstate>,
    pub source_date_epoch: u64,
    /// The project's `[sandbox]` limits (defaults filled in); a recipe's `[limits]` overrides them.
    pub limits: sandbox::Limits,
    /// `[build] log_max`: the most a step's log keeps (see `steplog`).
    pub log_max: u64,
    /// Output hashes of every package of this domain finished in this run (or reused).
    pub outputs: std::sync::Mutex<BTreeMap<String, String>>,
    pub quiet: bool,
}

/// How a package ended up built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was stale.
    Reused,
    /// Installed from the shared-state cache.
    FromCache,
    /// Tasks ran, starting at the one named.
    Built(String),
}

/// A failed task, for the summary and the await marker.
#[derive(Debug)]
pub struct Failure {
    pub package: String,
    pub task: String,
    pub log: PathBuf,
    pub error: EngineError,
}

/// Signatures of the tasks done in a work dir, in `work/D/PKG/.ovm-work`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct WorkState {
    done: BTreeMap<String, String>,
}

const WORK_STATE: &str = ".ovm-work";

struct Dirs {
    work: PathBuf,
    src: PathBuf,
    build: PathBuf,
    dest: PathBuf,
    sysroot: PathBuf,
    files: PathBuf,
    staging: PathBuf,
    logs: PathBuf,
}

impl Dirs {
    fn new(ctx: &Ctx<'_>, pkg: &str) -> Dirs {
        let work = ctx.domain.work(ctx.root, pkg);
        Dirs {
            src: work.join("src"),
            build: work.join("build"),
            dest: work.join("dest"),
            sysroot: work.join("sysroot"),
            files: work.join("files"),
            staging: ctx.domain.staging(ctx.root, pkg),
            logs: ctx.domain.logs(ctx.root).join(pkg),
            work,
        }
    }
}

/// The inputs of every task of `recipe`, given what is known now. `fetched` is the sha256 actually
/// fetched for each source (from this run's fetch, or the fetch stamp); `None` when unknown, in
/// which case tasks from `unpack` on have no signature yet (they are stale by definition).
pub struct Signatures {
    pub inputs: Vec<Option<Inputs>>,
}

impl Signatures {
    pub fn sig(&self, t: Task) -> Option<String> {
        self.inputs[t.index()].as_ref().map(Inputs::signature)
    }
}

/// The full environment of a step of `recipe` in this domain.
pub fn step_env(ctx: &Ctx<'_>, recipe: &Recipe) -> Vec<(String, String)> {
    let recipe_env: Vec<(String, String)> =
        recipe.build.as_ref().map(|b| b.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    env::build_env(&EnvSpec {
        target: ctx.domain.arch(),
        host: ctx.host,
        profile: ctx.domain.profile(),
        jobs: ctx.slots.jobs(),
        source_date_epoch: ctx.source_date_epoch,
        recipe_env: &recipe_env,
    })
}

pub fn signatures(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    plan: &TaskPlan,
    dep_outputs: &BTreeMap<String, String>,
    fetched: Option<&[String]>,
) -> Result<Signatures, EngineError> {
    let mut all: Vec<Option<Inputs>> = Vec::with_capacity(plan.len());

    let mut fetch = Inputs::new();
    for (i, s) in recipe.sources.iter().enumerate() {
        fetch.set(format!("source.{i}.sha256"), &s.primary.sha256);
        for (j, a) in s.alternatives.iter().enumerate() {
            fetch.set(format!("source.{i}.alternative.{j}.sha256"), &a.artifact.sha256);
        }
    }
    let mut prev_sig = fetch.signature();
    all.push(Some(fetch));

    let Some(fetched) = fetched else {
        all.extend((1..plan.len()).map(|_| None));
        return Ok(Signatures { inputs: all });
    };

    for t in plan.all().skip(1) {
        let def = plan.def(t);
        let mut inputs = Inputs::new();
        // Each task's signature covers its predecessor's, so a change flows to the end.
        inputs.set(plan.name(t.previous().unwrap_or(Task::FETCH)), &prev_sig);
        match &def.kind {
            TaskKind::Fetch => {}
            TaskKind::Unpack => {
                inputs.set("engine", ENGINE_VERSION).set("domain", ctx.domain.dir_name());
                for (i, s) in recipe.sources.iter().enumerate() {
                    inputs.set(format!("source.{i}.fetched"), fetched.get(i).map(String::as_str).unwrap_or("?"));
                    inputs.set(format!("source.{i}.dest"), s.dest.to_string_lossy());
                    inputs.set(format!("source.{i}.strip"), s.strip.to_string());
                    inputs.set(format!("source.{i}.unpack"), s.unpack.to_string());
                }
            }
            TaskKind::Patch => {
                for (i, p) in recipe.patches.iter().enumerate() {
                    let bytes = fs::read(p).map_err(|source| EngineError::Read { path: p.clone(), source })?;
                    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    inputs.set_bytes(format!("patch.{i}.{name}"), &bytes);
                }
            }
            TaskKind::Step(step) => {
                inputs.set(format!("script.{}", def.name), step.script.as_deref().unwrap_or_default());
                if step.first {
                    whole_build_inputs(ctx, recipe, dep_outputs, &mut inputs)?;
                }
            }
            TaskKind::Package => {}
        }
        prev_sig = inputs.signature();
        all.push(Some(inputs));
    }
    Ok(Signatures { inputs: all })
}

/// What the first build step's signature carries for the whole build: style, environment, config
/// files, toolchain, build tools, dependencies' outputs, isolation.
fn whole_build_inputs(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    dep_outputs: &BTreeMap<String, String>,
    inputs: &mut Inputs,
) -> Result<(), EngineError> {
    if let Some(b) = &recipe.build {
        inputs.set("build.style", b.style.name());
    }
    for (k, v) in step_env(ctx, recipe) {
        // -j never changes what is built; everything else in the environment may.
        if k != "JOBS" {
            inputs.set(format!("env.{k}"), v);
        }
    }
    for f in &recipe.files {
        let bytes = fs::read(&f.path).map_err(|source| EngineError::Read { path: f.path.clone(), source })?;
        inputs.set_bytes(format!("file.{}", f.name), &bytes);
    }
    inputs.set("toolchain", &ctx.equipment.toolchain_sig);
    inputs.set("tools", &ctx.equipment.tools_sig);
    for d in &recipe.depends {
        inputs.set(format!("dep.{d}"), dep_outputs.get(d).map(String::as_str).unwrap_or("?"));
    }
    inputs.set("isolation", if matches!(ctx.isolation, Isolation::Host) { "host" } else { "sandbox" });
    Ok(())
}

/// The sha256 per source recorded by the last fetch, if its stamp is current.
fn fetched_from_stamp(stamp: Option<&Stamp>, fetch_sig: &str) -> Option<Vec<String>> {
    let s = stamp?;
    if s.signature != fetch_sig {
        return None;
    }
    let out = s.output.as_deref()?;
    Some(if out.is_empty() { Vec::new() } else { out.split(',').map(str::to_string).collect() })
}

/// Output hash of a staged tree. The prebuilt toolchain (340 MB of zig) is identified by its own signature,
/// which reads the wheel's RECORD of per-file hashes instead of re-hashing every byte.
pub fn output_hash(domain: Domain, staged: &Path) -> Result<String, EngineError> {
    match domain {
        Domain::Toolchain => Ok(crate::toolchain::zig::ZigToolchain::open(staged)?.signature()?),
        _ => Ok(tree::hash_tree(staged)?),
    }
}

/// The staged output's hash for the check of an up-to-date package: the recorded hash itself when
/// the tree's metadata fingerprint is the one noted at the last check that matched, else the hash
/// of its content (and, if that matches, the fingerprint is noted for the next check). The
/// fingerprint is taken before the content is read, so a change made while hashing is never
/// covered by it. Not noting it (a read-only or full disk) only costs the next check a re-hash.
fn checked_output_hash(ctx: &Ctx<'_>, pkg: &str, staged: &Path, recorded: Option<&str>) -> Result<String, EngineError> {
    if ctx.domain == Domain::Toolchain {
        return output_hash(ctx.domain, staged);
    }
    let note = ctx.root.join(state::OUTPUT_STAT_DIR).join(ctx.domain.dir_name()).join(pkg);
    let fingerprint = tree::stat_fingerprint(staged)?;
    if let (Some(recorded), Ok(noted)) = (recorded, fs::read_to_string(&note)) {
        if noted.split_once(' ') == Some((fingerprint.as_str(), recorded)) {
            return Ok(recorded.to_string());
        }
    }
    let actual = output_hash(ctx.domain, staged)?;
    if recorded == Some(actual.as_str()) {
        let noted = note
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .map_err(|source| state::StateError::Write { path: note.clone(), source });
        if let Err(e) = noted.and_then(|()| state::write_atomic(&note, format!("{fingerprint} {actual}").as_bytes())) {
            tracing::debug!("{pkg}: not noting the output's fingerprint: {e}");
        }
    }
    Ok(actual)
}

/// Where a package must start, and why (for `ovm status --why` and the log).
pub struct Verdict {
    pub plan: TaskPlan,
    pub start: Option<Task>,
    pub reason: String,
    pub fetched: Option<Vec<String>>,
    pub sigs: Signatures,
    pub stamps: Vec<Option<Stamp>>,
}

pub fn assess(ctx: &Ctx<'_>, recipe: &Recipe, dep_outputs: &BTreeMap<String, String>) -> Result<Verdict, EngineError> {
    assess_with(ctx, recipe, dep_outputs, true)
}

/// [`assess`] from the stamps and markers alone, without re-hashing the staged output of a package
/// whose stamps are current: for planning which sources a run needs. A damaged output is still
/// found (and its sources fetched) when the package itself is assessed for building; hashing every
/// output twice per run would double the cost of a no-op build.
pub fn assess_inputs(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    dep_outputs: &BTreeMap<String, String>,
) -> Result<Verdict, EngineError> {
    assess_with(ctx, recipe, dep_outputs, false)
}

fn assess_with(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    dep_outputs: &BTreeMap<String, String>,
    verify_output: bool,
) -> Result<Verdict, EngineError> {
    let pkg = recipe.name.as_str();
    let plan = TaskPlan::for_recipe(recipe);
    let stamps: Vec<Option<Stamp>> =
        plan.all().map(|t| ctx.states.stamp(pkg, plan.name(t))).collect::<Result<_, _>>()?;
    let first = signatures(ctx, recipe, &plan, dep_outputs, None)?;
    let fetch_sig = first.sig(Task::FETCH).unwrap_or_default();
    let fetched = fetched_from_stamp(stamps[0].as_ref(), &fetch_sig);
    let sigs = match &fetched {
        Some(f) => signatures(ctx, recipe, &plan, dep_outputs, Some(f))?,
        None => first,
    };

    let mut start = None;
    let mut reason = String::new();
    for t in plan.all() {
        let name = plan.name(t);
        let want = sigs.sig(t);
        match (&stamps[t.index()], want) {
            (None, _) => {
                start = Some(t);
                reason = format!("{name} never ran");
            }
            (Some(_), None) => {
                start = Some(t);
                reason = format!("{name} waits for a new fetch");
            }
            (Some(s), Some(w)) if s.signature != w => {
                start = Some(t);
                let new = sigs.inputs[t.index()].clone().unwrap_or_default();
                let changes: Vec<String> = new.diff(&s.inputs).iter().map(ToString::to_string).collect();
                reason = format!("{name}: {}", changes.join("; "));
            }
            _ => continue,
        }
        break;
    }

    let dirty = ctx.states.running(pkg)?.is_some() || ctx.states.awaiting()?.is_some_and(|a| a.package == pkg);
    if dirty {
        let restart = start.map_or(Task::UNPACK, |s| s.min(Task::UNPACK));
        if start.is_none() {
            reason = "an earlier run stopped inside this package: its work dir is discarded".into();
        }
        start = Some(restart);
    }

    if start.is_none() && verify_output {
        let recorded = stamps[plan.package().index()].as_ref().and_then(|s| s.output.clone());
        let staged = Dirs::new(ctx, pkg).staging;
        let actual =
            if staged.is_dir() { Some(checked_output_hash(ctx, pkg, &staged, recorded.as_deref())?) } else { None };
        if actual.is_none() || actual != recorded {
            start = Some(Task::UNPACK);
            reason = if actual.is_none() {
                format!("{} is missing", staged.display())
            } else {
                format!("{} does not match its recorded hash (changed behind ovm's back)", staged.display())
            };
        }
    }
    Ok(Verdict { plan, start, reason, fetched, sigs, stamps })
}

/// Builds `recipe` if needed; returns how, and its output hash.
pub fn build(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    dep_outputs: &BTreeMap<String, String>,
) -> Result<(Outcome, String), Box<Failure>> {
    run_until(ctx, recipe, dep_outputs, None)
}

/// Runs the stale tasks of `recipe` up to and including `last` (`None`: through `package`;
/// `ovm shell` stops after `patch`).
pub fn run_until(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    dep_outputs: &BTreeMap<String, String>,
    last: Option<Task>,
) -> Result<(Outcome, String), Box<Failure>> {
    let pkg = recipe.name.as_str();
    let fail = |task: &str, log: PathBuf, error: EngineError| {
        Box::new(Failure { package: pkg.into(), task: task.into(), log, error })
    };
    let dirs = Dirs::new(ctx, pkg);
    // A failure before any task ran: the report names the task's log, which then holds the error
    // (and nothing stale from an earlier run).
    let fail_before = |task: &str, error: EngineError| {
        let log = dirs.logs.join(format!("{task}.log"));
        let _ = write_log(&log, &format!("{error}\n"));
        fail(task, log, error)
    };
    let verdict = assess(ctx, recipe, dep_outputs).map_err(|e| fail_before("fetch", e))?;
    let plan = &verdict.plan;
    let package = plan.package();
    let last = last.unwrap_or(package);
    let reused = |v: &Verdict| {
        let out = v.stamps[package.index()].as_ref().and_then(|s| s.output.clone()).unwrap_or_default();
        Ok((Outcome::Reused, out))
    };
    let Some(mut start) = verdict.start else {
        return reused(&verdict);
    };
    tracing::debug!("{}: {pkg}: starts at {} ({})", ctx.domain, plan.name(start), verdict.reason);

    let _slot = ctx.slots.acquire().map_err(|e| fail_before(plan.name(start), EngineError::Jobserver(e)))?;

    // Fetch (or confirm the recorded fetch is still usable).
    let mut fetched = verdict.fetched.clone();
    if start == Task::FETCH || fetched.is_none() {
        let log = dirs.logs.join("fetch.log");
        let sigs = signatures(ctx, recipe, plan, dep_outputs, None).map_err(|e| fail("fetch", log.clone(), e))?;
        let sig = sigs.sig(Task::FETCH).unwrap_or_default();
        let t0 = Instant::now();
        ctx.log.start(ctx.domain.dir_name(), pkg, "fetch", &sig);
        fault::point("fetch.begin", pkg);
        let mut used = Vec::new();
        for s in &recipe.sources {
            match ctx.fetcher.ensure(s) {
                Ok(f) => {
                    if let Variant::Alternative { version, .. } = &f.variant {
                        tracing::warn!("{pkg}: using alternative source {} (version {version})", f.file);
                    }
                    used.push(f.sha256);
                }
                Err(e) => {
                    ctx.log.failed(ctx.domain.dir_name(), pkg, "fetch", t0.elapsed(), &log);
                    let _ = write_log(&log, &e.to_string());
                    return Err(fail("fetch", log, EngineError::Fetch(e)));
                }
            }
        }
        let stamp = Stamp {
            signature: sig.clone(),
            inputs: sigs.inputs[0].clone().unwrap_or_default(),
            output: Some(used.join(",")),
            duration_ms: t0.elapsed().as_millis() as u64,
        };
        fault::point("fetch.end", pkg);
        ctx.states.write_stamp(pkg, "fetch", &stamp).map_err(|e| fail("fetch", log.clone(), e.into()))?;
        fault::point("fetch.stamped", pkg);
        ctx.log.done(ctx.domain.dir_name(), pkg, "fetch", t0.elapsed(), &sig);
        fetched = Some(used);
        if start == Task::FETCH {
            start = Task::UNPACK;
        }
    }
    let fetched = fetched.unwrap_or_default();
    let sigs =
        signatures(ctx, recipe, plan, dep_outputs, Some(&fetched)).map_err(|e| fail_before(plan.name(start), e))?;
    let sig_of = |t: Task| sigs.sig(t).unwrap_or_default();

    // `patch` and the build steps would rerun on a tree the package's earlier run wrote to:
    // `patch` on sources it already patched (its hunks no longer apply), the steps on a source
    // tree in-tree builds changed (make style, regenerated configure scripts) and on objects
    // `make` takes as current although a variable on its command line changed. Only a fresh
    // unpack gives them the tree their signature describes. The one exception is a step that
    // starts from an empty DESTDIR (a style's `install`): it reruns in place, on the built tree.
    // A recipe's own steps install into DESTDIR one after another, so none of them can.
    let fresh_dest_step = matches!(&plan.def(start).kind, TaskKind::Step(s) if s.cleans_dest);
    if start >= Task::PATCH && start <= plan.last_step() && !fresh_dest_step {
        start = Task::UNPACK;
    }
    // A stale task can only run on the work dir its predecessor left behind.
    let dirty = ctx.states.running(pkg).ok().flatten().is_some()
        || ctx.states.awaiting().ok().flatten().is_some_and(|a| a.package == pkg);
    if dirty {
        start = start.min(Task::UNPACK);
    }
    if start > Task::UNPACK {
        let ws = read_work_state(&dirs.work);
        let prev = start.previous().unwrap_or(Task::UNPACK);
        let ok = ws.done.get(plan.name(prev)).is_some_and(|s| *s == sig_of(prev))
            && (start != package || dirs.dest.is_dir());
        if !ok {
            start = Task::UNPACK;
        }
    }

    if start > last {
        return reused(&verdict);
    }

    // The shared-state cache can stand in for everything from unpack to package.
    if last == package {
        if let Some(sstate) = &ctx.sstate {
            let psig = sig_of(package);
            if let Some(out) = restore_from_sstate(ctx, sstate, &psig, &dirs) {
                fault::point("sstate.restored", pkg);
                for t in plan.all().skip(1) {
                    let stamp = Stamp {
                        signature: sig_of(t),
                        inputs: sigs.inputs[t.index()].clone().unwrap_or_default(),
                        output: (t == package).then(|| out.clone()),
                        duration_ms: 0,
                    };
                    ctx.states
                        .write_stamp(pkg, plan.name(t), &stamp)
                        .map_err(|e| fail_before(plan.name(t), e.into()))?;
                }
                let _ = ctx.states.clear_running(pkg);
                clear_await_of(ctx, pkg);
                return Ok((Outcome::FromCache, out));
            }
        }
    }

    let first = start;
    let mut output = String::new();
    for t in plan.all().filter(|t| *t >= first && *t <= last) {
        let name = plan.name(t);
        let log = dirs.logs.join(format!("{name}.log"));
        let sig = sig_of(t);
        ctx.states.set_running(pkg, name).map_err(|e| fail_before(name, e.into()))?;
        ctx.log.start(ctx.domain.dir_name(), pkg, name, &sig);
        fault::point(&format!("{name}.begin"), pkg);
        let t0 = Instant::now();
        // The log of this run only: one an earlier run left must not stand for this one's.
        let _ = fs::remove_file(&log);
        let result = run_task(ctx, recipe, plan, t, &dirs, &fetched, &log);
        match result {
            Ok(out) => {
                let stamp = Stamp {
                    signature: sig.clone(),
                    inputs: sigs.inputs[t.index()].clone().unwrap_or_default(),
                    output: out.clone(),
                    duration_ms: t0.elapsed().as_millis() as u64,
                };
                fault::point(&format!("{name}.end"), pkg);
                if let Err(e) = ctx.states.write_stamp(pkg, name, &stamp) {
                    // A full disk, typically. Treated like the task failing: the previous run's
                    // stamp no longer describes what the work dir (or staging) holds.
                    ctx.log.failed(ctx.domain.dir_name(), pkg, name, t0.elapsed(), &log);
                    let _ = ctx.states.set_await(&Await { package: pkg.into(), task: name.into(), log: log.clone() });
                    let _ = ctx.states.remove_stamp(pkg, name);
                    return Err(fail(name, log, e.into()));
                }
                fault::point(&format!("{name}.stamped"), pkg);
                if t != package {
                    let mut ws = read_work_state(&dirs.work);
                    if t == Task::UNPACK {
                        ws.done.clear();
                    }
                    ws.done.insert(name.into(), sig.clone());
                    write_work_state(&dirs.work, &ws).map_err(|e| fail(name, log.clone(), e))?;
                }
                ctx.log.done(ctx.domain.dir_name(), pkg, name, t0.elapsed(), &sig);
                if let Some(o) = out {
                    output = o;
                }
            }
            Err(error) => {
                // Unpack, patch and package write their log when they succeed, a step may fail
                // before its command started: the report names this log, so it says what failed.
                if !log.exists() {
                    let _ = write_log(&log, &format!("{error}\n"));
                }
                ctx.log.failed(ctx.domain.dir_name(), pkg, name, t0.elapsed(), &log);
                let _ = ctx.states.set_await(&Await { package: pkg.into(), task: name.into(), log: log.clone() });
                let _ = ctx.states.remove_stamp(pkg, name);
                return Err(fail(name, log, error));
            }
        }
    }
    let _ = ctx.states.clear_running(pkg);
    if last < package {
        return Ok((Outcome::Built(plan.name(first).into()), output));
    }
    clear_await_of(ctx, pkg);
    if let Some(sstate) = &ctx.sstate {
        if let Err(e) = sstate.store(&sig_of(package), &dirs.staging, &output) {
            tracing::warn!("{pkg}: could not file the output in the shared-state cache: {e}");
        }
    }
    Ok((Outcome::Built(plan.name(first).into()), output))
}

fn clear_await_of(ctx: &Ctx<'_>, pkg: &str) {
    if ctx.states.awaiting().ok().flatten().is_some_and(|a| a.package == pkg) {
        let _ = ctx.states.clear_await();
    }
}

fn restore_from_sstate(ctx: &Ctx<'_>, sstate: &Sstate, sig: &str, dirs: &Dirs) -> Option<String> {
    let (cached, recorded) = sstate.lookup(sig)?;
    let tmp = dirs.work.with_file_name(format!(".{}.sstate", dirs.work.file_name()?.to_string_lossy()));
    let _ = tree::remove_all(&tmp);
    let restored = (|| -> Result<String, EngineError> {
        tree::compose(&[("sstate".into(), cached.clone())], &tmp)?;
        let actual = output_hash(ctx.domain, &tmp)?;
        if actual != recorded {
            return Err(EngineError::SstateMismatch { sig: sig.into() });
        }
        tree::commit(&tmp, &dirs.staging)?;
        Ok(actual)
    })();
    match restored {
        Ok(out) => {
            ctx.log.done(ctx.domain.dir_name(), dirs.work.file_name()?.to_str()?, "sstate", Duration::ZERO, sig);
            Some(out)
        }
        Err(e) => {
            tracing::warn!("shared-state entry {sig} unusable ({e}); building instead");
            sstate.evict(sig);
            let _ = tree::remove_all(&tmp);
            None
        }
    }
}

fn read_work_state(work: &Path) -> WorkState {
    fs::read(work.join(WORK_STATE)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn write_work_state(work: &Path, ws: &WorkState) -> Result<(), EngineError> {
    let bytes = serde_json::to_vec_pretty(ws).map_err(|e| EngineError::Internal(e.to_string()))?;
    state::write_atomic(&work.join(WORK_STATE), &bytes)?;
    Ok(())
}

fn mkdir(p: &Path) -> Result<(), EngineError> {
    fs::create_dir_all(p).map_err(|source| EngineError::Write { path: p.to_path_buf(), source })
}

fn write_log(log: &Path, text: &str) -> io::Result<()> {
    if let Some(d) = log.parent() {
        fs::create_dir_all(d)?;
    }
    fs::write(log, text)
}

/// Runs one task; returns its product for the stamp (`package`: the output hash).
fn run_task(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    plan: &TaskPlan,
    task: Task,
    dirs: &Dirs,
    fetched: &[String],
    log: &Path,
) -> Result<Option<String>, EngineError> {
    if let Some(d) = log.parent() {
        mkdir(d)?;
    }
    let werr = |source| EngineError::Write { path: log.to_path_buf(), source };
    let def = plan.def(task);
    match &def.kind {
        TaskKind::Fetch => Ok(None),
        TaskKind::Unpack => {
            tree::remove_all(&dirs.work)?;
            mkdir(&dirs.work)?;
            let mut text = String::new();
            for (i, s) in recipe.sources.iter().enumerate() {
                let f = ctx.fetcher.ensure(s)?;
                if fetched.get(i).is_some_and(|want| *want != f.sha256) {
                    return Err(EngineError::SourceChanged { package: recipe.name.clone(), file: f.file });
                }
                let stats = crate::unpack::place_source(s, &f.path, &dirs.src)?;
                text.push_str(&format!("{}: {} files, {} bytes\n", f.file, stats.files, stats.bytes));
                fault::point("unpack.source", &recipe.name);
            }
            mkdir(&dirs.src)?;
            write_log(log, &text).map_err(werr)?;
            Ok(None)
        }
        TaskKind::Patch => {
            crate::patch::apply_series(&dirs.src, &recipe.patches)?;
            let names: Vec<String> = recipe.patches.iter().map(|p| format!("{}\n", p.display())).collect();
            write_log(log, &names.concat()).map_err(werr)?;
            Ok(None)
        }
        TaskKind::Step(step) => {
            let ran = run_step_task(ctx, recipe, &def.name, step, dirs, log);
            // Before anything else sees the step's files, failed or not: see `clear_setid`.
            let cleared = tree::clear_setid(&dirs.work)?;
            if cleared > 0 {
                tracing::info!("{}: cleared setuid/setgid bits on {cleared} file(s) of {}", recipe.name, def.name);
            }
            ran?;
            Ok(None)
        }
        TaskKind::Package => {
            // Checked where the steps left it, before the commit: an output that is refused (a
            // FIFO, a socket or a device node in DESTDIR) never reaches staging, which keeps the
            // previous good output, so neither `ovm pack` nor a dependent can pick it up. The hash
            // is of relative paths, so the one of DESTDIR is the staged tree's.
            let output = output_hash(ctx.domain, &dirs.dest)?;
            if ctx.domain == Domain::Toolchain {
                // Identified by its wheel's RECORD, which reads no directory: walk it here.
                tree::check_types(&dirs.dest)?;
            }
            tree::commit_then(&dirs.dest, &dirs.staging, || fault::point("package.exchanged", &recipe.name))?;
            Ok(Some(output))
        }
    }
}

fn run_step_task(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    name: &str,
    step: &StepTask,
    dirs: &Dirs,
    log: &Path,
) -> Result<(), EngineError> {
    let werr = |source| EngineError::Write { path: log.to_path_buf(), source };
    if step.first {
        // A fresh build: nothing from an earlier configuration may leak in.
        for d in [&dirs.build, &dirs.dest, &dirs.sysroot, &dirs.files] {
            tree::remove_all(d)?;
        }
        mkdir(&dirs.build)?;
        mkdir(&dirs.dest)?;
        compose_sysroot(ctx, recipe, dirs)?;
        copy_files(recipe, dirs)?;
    }
    if step.prebuilt_install {
        // Used as shipped: the patched source tree is the product; wrappers make it a toolchain.
        tree::remove_all(&dirs.dest)?;
        fs::rename(&dirs.src, &dirs.dest).map_err(|source| EngineError::Write { path: dirs.dest.clone(), source })?;
        let zig = crate::toolchain::zig::ZigToolchain::open(&dirs.dest)?;
        let made = zig.install_wrappers()?;
        write_log(log, &format!("installed {} wrappers in {}\n", made.len(), dirs.dest.join("bin").display()))
            .map_err(werr)?;
        return Ok(());
    }
    if step.cleans_dest {
        tree::remove_all(&dirs.dest)?;
        mkdir(&dirs.dest)?;
    }
    match &step.script {
        Some(script) => run_step(ctx, recipe, name, script, dirs, log),
        None => write_log(log, "(nothing to do for this step)\n").map_err(werr),
    }
}

fn copy_files(recipe: &Recipe, dirs: &Dirs) -> Result<(), EngineError> {
    mkdir(&dirs.files)?;
    for f in &recipe.files {
        let to = dirs.files.join(&f.name);
        if let Some(p) = to.parent() {
            mkdir(p)?;
        }
        fs::copy(&f.path, &to).map_err(|source| EngineError::Write { path: to.clone(), source })?;
    }
    Ok(())
}

/// Makes the directories a compile sandbox binds exist (for `ovm shell` on a package that was
/// only prepared up to `patch`); an existing build dir is left as the person left it.
pub fn ready_for_shell(ctx: &Ctx<'_>, recipe: &Recipe) -> Result<(), EngineError> {
    let dirs = Dirs::new(ctx, &recipe.name);
    for d in [&dirs.src, &dirs.build, &dirs.dest] {
        mkdir(d)?;
    }
    tree::remove_all(&dirs.sysroot)?;
    compose_sysroot(ctx, recipe, &dirs)?;
    tree::remove_all(&dirs.files)?;
    copy_files(recipe, &dirs)
}

fn compose_sysroot(ctx: &Ctx<'_>, recipe: &Recipe, dirs: &Dirs) -> Result<(), EngineError> {
    let layers: Vec<(String, PathBuf)> =
        recipe.depends.iter().map(|d| (d.clone(), ctx.domain.staging(ctx.root, d))).collect();
    for (name, dir) in &layers {
        if !dir.is_dir() {
            return Err(EngineError::MissingDependency { package: recipe.name.clone(), dep: name.clone() });
        }
    }
    tree::compose(&layers, &dirs.sysroot)?;
    Ok(())
}

/// The sandbox a step of `recipe` runs in. `args` is what runs; `terminal` passes the caller's tty.
pub fn step_spec(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    args: Vec<String>,
    terminal: bool,
) -> Result<oci_spec::runtime::Spec, EngineError> {
    Ok(step_sandbox(ctx, recipe, args, terminal)?.build()?)
}

/// Where a step's script is, inside its sandbox. The script is a file, not an argument of
/// `/bin/sh -c`: one argument may hold 128 KiB at most (a larger snippet failed with E2BIG), and
/// every user of the host can read a process's arguments.
const STEP_SCRIPT: &str = "/ovm/step.sh";
/// The script's file on the host, in the package's work dir (kept: it is what the step ran).
const STEP_SCRIPT_FILE: &str = ".ovm-step.sh";

fn step_sandbox(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    args: Vec<String>,
    terminal: bool,
) -> Result<SandboxBuilder, EngineError> {
    let dirs = Dirs::new(ctx, &recipe.name);
    let eq = &ctx.equipment;
    let mut b = SandboxBuilder::new(args)
        .ro_bind(&eq.toolchain_dir, env::TOOLCHAIN_DIR)
        .rw_bind(&dirs.src, env::SRC_DIR)
        .rw_bind(&dirs.build, env::BUILD_DIR)
        .rw_bind(&dirs.dest, env::DEST_DIR)
        .ro_bind(&dirs.sysroot, env::SYSROOT_DIR)
        .ro_bind(&dirs.files, env::FILES_DIR)
        .rw_bind(&ctx.cache_dir, env::CACHE_DIR)
        .tmpfs("/tmp")
        .cwd(env::BUILD_DIR)
        .hostname("ovm")
        .terminal(terminal)
        .limits(step_limits(ctx, recipe));
    match ctx.domain.profile() {
        Profile::Package => {
            let tools = eq.tools_dir.as_ref().ok_or_else(|| EngineError::Internal("no build tools".into()))?;
            b = b.ro_bind(tools, env::TOOLS_DIR).ro_bind(tools.join("bin/busybox"), "/bin/sh");
        }
        Profile::Toolchain => {
            // The host's userland, read-only: the host compiler builds the tools (and gcc).
            for p in ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"] {
                if Path::new(p).exists() {
                    b = b.ro_bind(p, p);
                }
            }
        }
    }
    for (k, v) in step_env(ctx, recipe) {
        b = b.env(k, v);
    }
    let js = ctx.slots.server();
    let (r, w) = js.fds();
    b = b.env("MAKEFLAGS", js.makeflags()).preserve_fds(&[r, w]);
    Ok(b)
}

/// The recipe's `[limits]` over the project's `[sandbox]` ones.
fn step_limits(ctx: &Ctx<'_>, recipe: &Recipe) -> sandbox::Limits {
    sandbox::Limits { pids: recipe.limits.pids.or(ctx.limits.pids), memory: recipe.limits.memory.or(ctx.limits.memory) }
}

/// How much of a failed step's log is searched for the limit it hit: the sandbox's own report is
/// its last line, and a build's complaint about a failed fork or allocation is near the end.
const LOG_TAIL: u64 = 16 * 1024;

/// The error for a failed sandboxed step: [`EngineError::LimitHit`] when the sandbox reported a
/// hit cgroup limit, or when only rlimits were in force and the log shows a failed fork or
/// allocation (rlimits leave no other trace); [`EngineError::StepFailed`] otherwise.
fn step_failure(ctx: &Ctx<'_>, recipe: &Recipe, step: &str, log: &Path, status: Option<i32>) -> EngineError {
    let tail = steplog::tail_bytes(log, LOG_TAIL);
    let recipe_file = recipe.path.strip_prefix(ctx.root).unwrap_or(&recipe.path).to_path_buf();
    let hit = |kind, setting, evidence| EngineError::LimitHit {
        package: recipe.name.clone(),
        step: step.into(),
        kind,
        setting,
        evidence,
        recipe: recipe_file.clone(),
    };
    if let Some((kind, setting)) = sandbox::limits::hit_in_text(&tail) {
        return hit(kind, setting, None);
    }
    if matches!(ctx.isolation, Isolation::Sandbox { .. }) {
        if let Some((kind, sign)) = sandbox::limits::exhaustion_in_text(&tail) {
            let mechanism = sandbox::limits::detect();
            if let sandbox::Mechanism::Rlimits { .. } = mechanism {
                let limits = step_limits(ctx, recipe);
                if let Some((_, setting)) = mechanism.settings(&limits).into_iter().find(|(k, _)| *k == kind) {
                    return hit(kind, setting, Some(sign));
                }
            }
        }
    }
    EngineError::StepFailed { package: recipe.name.clone(), step: step.into(), status }
}

/// Runs the step `name` of `recipe` (its `script`) in its sandbox, its output going to `log`.
fn run_step(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    name: &str,
    script: &str,
    dirs: &Dirs,
    log: &Path,
) -> Result<(), EngineError> {
    let werr = |source| EngineError::Write { path: log.to_path_buf(), source };
    let file = File::create(log).map_err(werr)?;
    let script_file = dirs.work.join(STEP_SCRIPT_FILE);
    let write_script = |text: &str| {
        fs::write(&script_file, text).map_err(|source| EngineError::Write { path: script_file.clone(), source })
    };
    let mut cmd = match &ctx.isolation {
        Isolation::Sandbox { exe } => {
            write_script(script)?;
            let args = vec!["/bin/sh".to_string(), "-e".to_string(), STEP_SCRIPT.to_string()];
            let spec = step_sandbox(ctx, recipe, args, false)?.ro_bind(&script_file, STEP_SCRIPT).build()?;
            sandbox::command_with_exe(exe, &spec)?
        }
        Isolation::Host => {
            let (cmd, mapped) = host_command(ctx, recipe, script, dirs);
            write_script(&mapped)?;
            let mut cmd = cmd;
            cmd.arg("-e").arg(&script_file);
            cmd
        }
    };
    // Output goes through ovm (see `steplog`), so the log stays within [build] log_max.
    let spawn_err = |source| EngineError::Spawn { what: name.into(), source };
    let (pipe, out) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| spawn_err(e.into()))?;
    let err = out.try_clone().map_err(spawn_err)?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let mut child = cmd.spawn().map_err(spawn_err)?;
    // The write ends (and the spec's descriptor) live in `cmd`: only the step may hold them now,
    // or the pipe would never report its end.
    drop(cmd);
    let running = format!("{name}.running");
    // The step counts as running once it has written something: then its sandbox is up.
    let relayed = steplog::relay(&pipe, steplog::CappedLog::new(file, ctx.log_max), &mut child, || {
        fault::point(&running, &recipe.name)
    });
    let relayed = match relayed {
        Ok(r) => r,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(spawn_err(e));
        }
    };
    if !relayed.status.success() {
        return Err(step_failure(ctx, recipe, name, log, relayed.status.code()));
    }
    match relayed.log_error {
        Some(source) => Err(werr(source)),
        None => Ok(()),
    }
}

/// `--no-sandbox`: the same environment with the /ovm paths mapped to host paths, and `script`
/// mapped likewise (returned, for the caller to write and name as the shell's script).
fn host_command(ctx: &Ctx<'_>, recipe: &Recipe, script: &str, dirs: &Dirs) -> (Command, String) {
    let eq = &ctx.equipment;
    let map = |v: &str| -> String {
        let mut v = v.to_string();
        let pairs: Vec<(&str, PathBuf)> = vec![
            (env::TOOLCHAIN_DIR, eq.toolchain_dir.clone()),
            (env::TOOLS_DIR, eq.tools_dir.clone().unwrap_or_default()),
            (env::SRC_DIR, dirs.src.clone()),
            (env::BUILD_DIR, dirs.build.clone()),
            (env::DEST_DIR, dirs.dest.clone()),
            (env::SYSROOT_DIR, dirs.sysroot.clone()),
            (env::FILES_DIR, dirs.files.clone()),
            (env::CACHE_DIR, ctx.cache_dir.clone()),
        ];
        for (from, to) in pairs {
            v = v.replace(from, &to.to_string_lossy());
        }
        v
    };
    // The shell of the sandbox, where /bin/sh is the build tools' busybox: the step's script and,
    // through MAKEFLAGS, every make recipe line run with it, so the commands are the same ones
    // (only `#!/bin/sh` scripts, like the toolchain wrappers, get the host's /bin/sh).
    let tools_sh = eq.tools_dir.as_ref().map(|t| t.join("bin/sh")).filter(|sh| sh.exists());
    let mut cmd = Command::new(tools_sh.as_deref().unwrap_or(Path::new("/bin/sh")));
    cmd.env_clear();
    for (k, v) in step_env(ctx, recipe) {
        if k == "PATH" {
            cmd.env(k, format!("{}:/usr/bin:/bin", map(&v)));
        } else {
            cmd.env(k, map(&v));
        }
    }
    let mut makeflags = ctx.slots.server().makeflags();
    if let Some(sh) = tools_sh.as_ref().map(|sh| sh.to_string_lossy()).filter(|sh| !sh.contains(char::is_whitespace)) {
        makeflags.push_str(&format!(" -- SHELL={sh}"));
    }
    cmd.env("MAKEFLAGS", makeflags);
    let (r, w) = ctx.slots.server().fds();
    // SAFETY: between fork and exec only fcntl on two descriptors this process owns.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            for fd in [r, w] {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.current_dir(&dirs.build);
    (cmd, map(script))
}

/// Prints a failure: the last lines (each cut to a bounded length),
/// then where the rest is.
pub fn report_failure(f: &Failure, out: &mut dyn Write) {
    let _ = writeln!(out, "ovm: {} failed at {}: {}", f.package, f.task, f.error);
    let lines = steplog::tail(&f.log, steplog::REPORT_LINES);
    if !lines.is_empty() {
        let _ = writeln!(out, "---- last {} lines of {} ----", lines.len(), f.log.display());
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = writeln!(out, "---- end of log ----");
    }
    let _ = writeln!(out, "log: {}", f.log.display());
}

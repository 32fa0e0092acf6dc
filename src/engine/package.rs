//! Building one package: ask `freshness` where it stands, then act — fetch if needed, restore
//! from the shared-state cache if it has the output, else run the stale tasks in order through
//! one executor ([`execute`]) that owns the write order every crash guarantee rests on:
//!
//! 1. the `running` marker, then the task's work (in the sandbox for steps);
//! 2. on success, the stamp (temp name + rename), then the work dir's record of done tasks;
//! 3. on failure, `await` (naming the log) and the task's stamp removed: nothing is committed
//!    from a failed task.
//!
//! A SIGKILL between any two writes leaves a state the next run's `freshness::assess` reads as
//! "resume here, on a fresh work dir" (the fault points of `crate::fault` sit between them).

use std::collections::BTreeMap;
use std::fs::{self};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::fault;
use crate::fetch::Variant;
use crate::layout::{TaskName, WorkDirs};
use crate::recipe::Recipe;
use crate::tree;

use super::ctx::Ctx;
use super::freshness::{self, OutputCheck, Signatures};
use super::progress::{Event, TaskRef};
use super::sstate::Sstate;
use super::state::{Await, Stamp, StampOutput};
use super::step::{self, mkdir, write_log};
use super::steplog;
use super::task::{Task, TaskKind, TaskPlan};
use super::EngineError;

/// How a package ended up built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was stale.
    Reused,
    /// Installed from the shared-state cache.
    FromCache,
    /// Tasks ran, starting at the one named.
    Built(TaskName),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Reused => f.write_str("up to date"),
            Outcome::FromCache => f.write_str("from the shared-state cache"),
            Outcome::Built(from) => write!(f, "built (from {from})"),
        }
    }
}

/// A failed task, for the summary and the await marker.
#[derive(Debug)]
pub struct Failure {
    pub package: String,
    pub task: TaskName,
    pub log: PathBuf,
    pub error: EngineError,
    /// Whether `task` itself ran. `false`: the package stopped before it could start (its state
    /// unreadable, no job slot, its marker unwritable): nothing of the task is to blame, and the
    /// report says so rather than "failed at".
    pub started: bool,
}

/// Builds `recipe` if needed; returns how, and its output hash.
pub fn build(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    dep_outputs: &BTreeMap<String, String>,
) -> Result<(Outcome, String), Box<Failure>> {
    run_until(ctx, recipe, dep_outputs, None)
}

/// A failure before any task ran (the assessment, the job slot): the report names the task's log,
/// which then holds the error (and nothing stale from an earlier run).
fn failed_before(ctx: &Ctx<'_>, pkg: &str, task: &TaskName, error: EngineError) -> Box<Failure> {
    let log = ctx.layout.task_log(ctx.domain, pkg, task);
    let _ = write_log(&log, &format!("{error}\n"));
    Box::new(Failure { package: pkg.into(), task: task.clone(), log, error, started: false })
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
    let verdict = freshness::assess(ctx, recipe, dep_outputs, OutputCheck::Verify)
        .map_err(|e| failed_before(ctx, pkg, &TaskName::fetch(), e))?;
    let plan = &verdict.plan;
    let last = last.unwrap_or(plan.package());
    let reused = || (Outcome::Reused, verdict.recorded_output().unwrap_or_default().to_string());
    let Some(stale) = &verdict.stale else {
        return Ok(reused());
    };
    tracing::debug!("{}: {pkg}: stale from {} ({})", ctx.domain, plan.name(stale.task), stale.reason);
    let _slot =
        ctx.slots.acquire().map_err(|e| failed_before(ctx, pkg, plan.name(stale.task), EngineError::Jobserver(e)))?;

    let fetched = match (&verdict.fetched, stale.task) {
        (Some(f), t) if t != Task::FETCH => f.clone(),
        _ => fetch(ctx, recipe, plan, dep_outputs)?,
    };
    let dirs = ctx.dirs(pkg);
    let sigs = freshness::signatures(ctx, recipe, plan, dep_outputs, Some(&fetched))
        .map_err(|e| failed_before(ctx, pkg, plan.name(stale.task), e))?;
    let start = freshness::resume_point(ctx, pkg, plan, stale.task, &sigs, &dirs);
    if start > last {
        return Ok(reused());
    }
    if last == plan.package() {
        if let Some(out) = from_sstate(ctx, pkg, plan, &sigs, &dirs)? {
            return Ok((Outcome::FromCache, out));
        }
    }

    let mut output = String::new();
    for t in plan.all().filter(|t| (start..=last).contains(t)) {
        if let Some(StampOutput::Staged { hash }) = execute(ctx, recipe, plan, t, &sigs, &dirs, &fetched)? {
            output = hash;
        }
    }
    let _ = ctx.states.clear_running(pkg);
    if last == plan.package() {
        ctx.states.clear_await_of(pkg);
        if let Some(sstate) = &ctx.sstate {
            let psig = sigs.sig(plan.package()).unwrap_or_default();
            if let Err(e) = sstate.store(&psig, &dirs.staging, &output) {
                tracing::warn!("{pkg}: could not file the output in the shared-state cache: {e}");
            }
            sstate.publish(&psig, pkg, &dirs.staging, &output);
        }
    }
    Ok((Outcome::Built(plan.name(start).clone()), output))
}

/// Makes `recipe`'s work dir hold its patched source tree, for a tool that reads the source
/// rather than building it (`ovm menuconfig`). Nothing runs when it already does — the work dir's
/// record names the current `patch` signature and no interrupted run left it dirty — else
/// fetch (unless current), unpack and patch run through [`execute`] exactly as in a build, stamps,
/// logs and crash order included. `run_until(…, Some(PATCH))` is not enough here: it leaves an
/// up-to-date package alone, whose work dir may hold no source at all (restored from the
/// shared-state cache).
pub fn prepare_source(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    dep_outputs: &BTreeMap<String, String>,
) -> Result<(), Box<Failure>> {
    let pkg = recipe.name.as_str();
    let verdict = freshness::assess(ctx, recipe, dep_outputs, OutputCheck::Trust)
        .map_err(|e| failed_before(ctx, pkg, &TaskName::fetch(), e))?;
    let plan = &verdict.plan;
    let ready = plan.source_ready();
    let patch = plan.name(ready);
    let _slot = ctx.slots.acquire().map_err(|e| failed_before(ctx, pkg, patch, EngineError::Jobserver(e)))?;
    let fetched = match &verdict.fetched {
        Some(f) => f.clone(),
        None => fetch(ctx, recipe, plan, dep_outputs)?,
    };
    let sigs = freshness::signatures(ctx, recipe, plan, dep_outputs, Some(&fetched))
        .map_err(|e| failed_before(ctx, pkg, patch, e))?;
    let dirs = ctx.dirs(pkg);
    let done = freshness::read_work_state(&dirs);
    let prepared = dirs.src.is_dir()
        && !ctx.states.work_dir_dirty(pkg)
        && done.done.get(patch.as_str()).is_some_and(|s| Some(s) == sigs.sig(ready).as_ref());
    if prepared {
        return Ok(());
    }
    for t in plan.all().filter(|t| *t >= Task::UNPACK && *t <= ready) {
        execute(ctx, recipe, plan, t, &sigs, &dirs, &fetched)?;
    }
    let _ = ctx.states.clear_running(pkg);
    Ok(())
}

/// The `fetch` task: every source present and verified (a failure is reported with its log, but
/// leaves no `await`: nothing in the work dir was touched). Returns the sha256 of each.
fn fetch(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    plan: &TaskPlan,
    dep_outputs: &BTreeMap<String, String>,
) -> Result<Vec<String>, Box<Failure>> {
    let pkg = recipe.name.as_str();
    let task = TaskName::fetch();
    let log = ctx.layout.task_log(ctx.domain, pkg, &task);
    let fail = |error: EngineError| {
        Box::new(Failure { package: pkg.into(), task: task.clone(), log: log.clone(), error, started: true })
    };
    let sigs = freshness::signatures(ctx, recipe, plan, dep_outputs, None).map_err(fail)?;
    let sig = sigs.sig(Task::FETCH).unwrap_or_default();
    let t0 = Instant::now();
    ctx.log.start(ctx.domain.dir_name(), pkg, task.as_str(), &sig);
    let me = TaskRef { domain: ctx.domain, package: pkg, task: &task };
    // context.log and the observer hear of a failure together, as of everything else.
    let failed = |error: EngineError| {
        ctx.log.failed(ctx.domain.dir_name(), pkg, task.as_str(), t0.elapsed(), &log);
        ctx.observer.event(&Event::Failed { task: me, elapsed: t0.elapsed(), log: &log });
        fail(error)
    };
    ctx.observer.event(&Event::Started { task: me, log: &log });
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
                let _ = write_log(&log, &e.to_string());
                return Err(failed(EngineError::Fetch(e)));
            }
        }
    }
    let stamp = Stamp::new(sigs.of(Task::FETCH), Some(StampOutput::Fetched { sha256: used.clone() }), t0.elapsed());
    fault::point("fetch.end", pkg);
    ctx.states.write_stamp(pkg, &task, &stamp).map_err(|e| failed(e.into()))?;
    fault::point("fetch.stamped", pkg);
    ctx.log.done(ctx.domain.dir_name(), pkg, task.as_str(), t0.elapsed(), &sig);
    ctx.observer.event(&Event::Finished { task: me, elapsed: t0.elapsed() });
    Ok(used)
}

/// The executor: runs task `t` with the write order of the module comment. Returns its product.
fn execute(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    plan: &TaskPlan,
    t: Task,
    sigs: &Signatures,
    dirs: &WorkDirs,
    fetched: &[String],
) -> Result<Option<StampOutput>, Box<Failure>> {
    let pkg = recipe.name.as_str();
    let name = plan.name(t);
    let log = ctx.layout.task_log(ctx.domain, pkg, name);
    let sig = sigs.sig(t).unwrap_or_default();
    let fail = |error: EngineError| {
        Box::new(Failure { package: pkg.into(), task: name.clone(), log: log.clone(), error, started: true })
    };
    // Marks the task failed: the previous run's stamp no longer describes the work dir (or staging).
    let me = TaskRef { domain: ctx.domain, package: pkg, task: name };
    let failed = |error: EngineError, t0: Instant| {
        ctx.log.failed(ctx.domain.dir_name(), pkg, name.as_str(), t0.elapsed(), &log);
        ctx.observer.event(&Event::Failed { task: me, elapsed: t0.elapsed(), log: &log });
        let _ = ctx.states.set_await(&Await { package: pkg.into(), task: name.clone(), log: log.clone() });
        let _ = ctx.states.remove_stamp(pkg, name);
        fail(error)
    };

    ctx.states.set_running(pkg, name).map_err(|e| failed_before(ctx, pkg, name, e.into()))?;
    ctx.log.start(ctx.domain.dir_name(), pkg, name.as_str(), &sig);
    fault::point(&format!("{name}.begin"), pkg);
    let t0 = Instant::now();
    // The log of this run only: one an earlier run left must not stand for this one's.
    let _ = fs::remove_file(&log);
    ctx.observer.event(&Event::Started { task: me, log: &log });
    let output = match run_task(ctx, recipe, plan, t, dirs, fetched, &log) {
        Ok(output) => output,
        Err(error) => {
            // Unpack, patch and package write their log when they succeed, a step may fail
            // before its command started: the report names this log, so it says what failed.
            if !log.exists() {
                let _ = write_log(&log, &format!("{error}\n"));
            }
            return Err(failed(error, t0));
        }
    };
    let stamp = Stamp::new(sigs.of(t), output.clone(), t0.elapsed());
    fault::point(&format!("{name}.end"), pkg);
    // A full disk, typically: treated like the task failing.
    ctx.states.write_stamp(pkg, name, &stamp).map_err(|e| failed(e.into(), t0))?;
    fault::point(&format!("{name}.stamped"), pkg);
    if t != plan.package() {
        // The work dir's record is part of the task's commit: without it, the task failed.
        freshness::note_done(dirs, name, t == Task::UNPACK, &sig).map_err(|e| failed(e, t0))?;
    }
    ctx.log.done(ctx.domain.dir_name(), pkg, name.as_str(), t0.elapsed(), &sig);
    ctx.observer.event(&Event::Finished { task: me, elapsed: t0.elapsed() });
    Ok(output)
}

/// The shared-state cache standing in for everything from `unpack` to `package`: the output
/// restored, then every task's stamp written as if it had run.
fn from_sstate(
    ctx: &Ctx<'_>,
    pkg: &str,
    plan: &TaskPlan,
    sigs: &Signatures,
    dirs: &WorkDirs,
) -> Result<Option<String>, Box<Failure>> {
    let Some(sstate) = &ctx.sstate else { return Ok(None) };
    let psig = sigs.sig(plan.package()).unwrap_or_default();
    let Some(out) = restore_from_sstate(ctx, sstate, &psig, pkg, dirs) else { return Ok(None) };
    fault::point("sstate.restored", pkg);
    for t in plan.all().skip(1) {
        let output = (t == plan.package()).then(|| StampOutput::Staged { hash: out.clone() });
        let stamp = Stamp::new(sigs.of(t), output, Duration::ZERO);
        ctx.states
            .write_stamp(pkg, plan.name(t), &stamp)
            .map_err(|e| failed_before(ctx, pkg, plan.name(t), e.into()))?;
    }
    let _ = ctx.states.clear_running(pkg);
    ctx.states.clear_await_of(pkg);
    Ok(Some(out))
}

fn restore_from_sstate(ctx: &Ctx<'_>, sstate: &Sstate, sig: &str, pkg: &str, dirs: &WorkDirs) -> Option<String> {
    // Timed like a task: `ovm graph build` draws the restore where it happened, for as long as it took.
    let t0 = Instant::now();
    let hash_of = |tree: &Path| freshness::output_hash(ctx.domain, tree).map_err(|e| e.to_string());
    let (cached, recorded) = sstate.find(sig, pkg, &hash_of)?;
    let tmp = &dirs.sstate_restore;
    let _ = tree::remove_all(tmp);
    let restored = (|| -> Result<String, EngineError> {
        tree::compose(&[("sstate".into(), cached.clone())], tmp)?;
        let actual = freshness::output_hash(ctx.domain, tmp)?;
        if actual != recorded {
            return Err(EngineError::SstateMismatch { sig: sig.into() });
        }
        tree::commit(tmp, &dirs.staging)?;
        Ok(actual)
    })();
    match restored {
        Ok(out) => {
            ctx.log.done(ctx.domain.dir_name(), pkg, "sstate", t0.elapsed(), sig);
            // A tree that writes to a remote makes it hold what it restored locally too.
            sstate.publish(sig, pkg, &dirs.staging, &out);
            Some(out)
        }
        Err(e) => {
            tracing::warn!("shared-state entry {sig} unusable ({e}); building instead");
            sstate.evict(sig);
            let _ = tree::remove_all(tmp);
            None
        }
    }
}

/// Runs one task's work; returns its product for the stamp (`package`: the output hash).
fn run_task(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    plan: &TaskPlan,
    task: Task,
    dirs: &WorkDirs,
    fetched: &[String],
    log: &Path,
) -> Result<Option<StampOutput>, EngineError> {
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
        TaskKind::Autoreconf => {
            super::autoreconf::run(ctx, recipe, &def.name, dirs, log)?;
            Ok(None)
        }
        TaskKind::Step(s) => {
            let ran = step::run_step_task(ctx, recipe, &def.name, s, dirs, log);
            // Before anything else sees the step's files, failed or not: see `clear_setid`.
            let cleared = tree::clear_setid(&dirs.work)?;
            if !cleared.is_empty() {
                tracing::info!(
                    "{}: cleared setuid/setgid bits on {} file(s) of {}",
                    recipe.name,
                    cleared.len(),
                    def.name
                );
            }
            ran?;
            if ctx.domain.splits() {
                super::packaging::setuid_check(recipe, dirs, &cleared, ctx.root())?;
            }
            Ok(None)
        }
        TaskKind::Package => super::packaging::run(ctx, recipe, &def.name, dirs, log).map(Some),
    }
}

/// Prints a failure: the last lines (each cut to a bounded length),
/// then where the rest is.
///
/// A source that could not be fetched is an exception: its log holds the same list of places
/// tried as the error, with apt's own output, which stays there (see `fetch::AttemptKind::Apt`).
/// Failed QA checks are the other: the error lists every finding.
pub fn report_failure(f: &Failure, out: &mut dyn Write) {
    let error = match &f.error {
        EngineError::Fetch(e) => e.for_console(),
        e => e.to_string(),
    };
    if f.started {
        let _ = writeln!(out, "ovm: {} failed at {}: {error}", f.package, f.task);
    } else {
        let _ = writeln!(out, "ovm: {} stopped before {} could start: {error}", f.package, f.task);
    }
    // The log of these holds what the error already says (the places tried, the QA findings).
    if matches!(f.error, EngineError::Fetch(_) | EngineError::Qa { .. }) {
        let _ = writeln!(out, "log: {}", f.log.display());
        return;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(f: &Failure) -> String {
        let mut out = Vec::new();
        report_failure(f, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// A package that could not start its task (here: no job slot) is not reported as that task
    /// having failed, and the log it names exists and holds the error.
    #[test]
    fn a_failure_before_the_task_started_does_not_blame_the_task() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("logs/x86_64/json-c/fetch.log");
        let error = || EngineError::Jobserver(std::io::Error::from_raw_os_error(libc::EAGAIN));
        write_log(&log, &format!("{}\n", error())).unwrap();
        let before = Failure {
            package: "json-c".into(),
            task: TaskName::fetch(),
            log: log.clone(),
            error: error(),
            started: false,
        };
        let text = report(&before);
        assert!(text.starts_with("ovm: json-c stopped before fetch could start: "), "{text}");
        assert!(!text.contains("failed at"), "{text}");
        assert!(
            text.contains(&format!("log: {}", log.display()))
                && fs::read_to_string(&log).unwrap().contains("jobserver")
        );

        let ran = Failure { started: true, ..before };
        assert!(report(&ran).starts_with("ovm: json-c failed at fetch: "), "{}", report(&ran));
    }
}

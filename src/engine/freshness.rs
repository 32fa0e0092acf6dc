//! Whether a package is up to date, and if not where its build resumes and why: the decision,
//! apart from the execution (`package` acts on it). As in cargo's fingerprints, the reason is a
//! typed [`DirtyReason`], rendered to words only where a person reads it (`ovm status --why`, the
//! debug log).
//!
//! | rule                                   | resumes at             | reason                        |
//! |----------------------------------------|------------------------|-------------------------------|
//! | a task has no stamp                    | that task              | [`DirtyReason::NeverRan`]      |
//! | the fetch stamp records no fetched sha | the first later task   | [`DirtyReason::WaitsForFetch`] |
//! | a stamp's signature differs from now   | that task              | [`DirtyReason::InputsChanged`] |
//! | a `running` marker survived, or `await` names the package (its work dir is dirty) | `unpack` at the latest | [`DirtyReason::Interrupted`] |
//! | nothing stale, but the staged output is gone / hashes differently | `unpack` | [`DirtyReason::OutputMissing`] / [`DirtyReason::OutputChanged`] |
//!
//! Then, where the build actually starts ([`resume_point`], once the fetch is known):
//! * a stale `patch`, `configure` or `compile` restarts at `unpack`: they never rerun on a tree
//!   their own earlier run wrote to (already patched sources, in-tree objects make takes as
//!   current); the one exception is a step that starts from an empty DESTDIR (a style's
//!   `install`), which reruns in place on the built tree;
//! * a task can only run on the work dir its predecessor left: `work/D/PKG/.ovm-work` records the
//!   signatures of the tasks done in this work dir; if the predecessor's is not there (work dir
//!   wiped, or made by another recipe), the package restarts at `unpack`.
//!
//! A staged output's content is re-hashed only when the tree's metadata fingerprint
//! (`tree::stat_fingerprint`) differs from the one noted in `.cache/output-stat/D/PKG` after the
//! last check that matched. That note is a cache, not state (deleting it costs one re-hash); with
//! it a no-op build reads no staged bytes, which matters once a package's output is the 100 MB of
//! a gcc toolchain.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::layout::{Domain, TaskName, WorkDirs};
use crate::recipe::Recipe;
use crate::signature::{Change, Inputs, ENGINE_VERSION};
use crate::tree;

use super::ctx::{Ctx, Isolation};
use super::state::Stamp;
use super::task::{Task, TaskKind, TaskPlan};
use super::EngineError;

/// Why a package is not up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirtyReason {
    NeverRan {
        task: TaskName,
    },
    /// The fetch stamp is current but does not say which sources were fetched.
    WaitsForFetch {
        task: TaskName,
    },
    InputsChanged {
        task: TaskName,
        changes: Vec<Change>,
    },
    /// An earlier run stopped inside this package (killed, or the task failed).
    Interrupted,
    OutputMissing {
        staged: PathBuf,
    },
    /// The staged output no longer hashes to what the `package` stamp recorded.
    OutputChanged {
        staged: PathBuf,
    },
}

impl DirtyReason {
    /// One line per cause: each changed input, or the reason itself.
    pub fn lines(&self) -> Vec<String> {
        match self {
            DirtyReason::InputsChanged { changes, .. } if !changes.is_empty() => {
                changes.iter().map(ToString::to_string).collect()
            }
            other => vec![other.to_string()],
        }
    }
}

impl fmt::Display for DirtyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirtyReason::NeverRan { task } => write!(f, "{task} never ran"),
            DirtyReason::WaitsForFetch { task } => write!(f, "{task} waits for a new fetch"),
            DirtyReason::InputsChanged { task, changes } => {
                let changes: Vec<String> = changes.iter().map(ToString::to_string).collect();
                write!(f, "{task}: {}", changes.join("; "))
            }
            DirtyReason::Interrupted => {
                f.write_str("an earlier run stopped inside this package: its work dir is discarded")
            }
            DirtyReason::OutputMissing { staged } => write!(f, "{} is missing", staged.display()),
            DirtyReason::OutputChanged { staged } => {
                write!(f, "{} does not match its recorded hash (changed behind ovm's back)", staged.display())
            }
        }
    }
}

/// The first stale task of a package and why.
#[derive(Debug, Clone)]
pub struct Stale {
    pub task: Task,
    pub reason: DirtyReason,
}

/// The inputs of every task of a recipe, given what is known now. Without the fetched sha256s
/// (no current fetch stamp), the tasks from `unpack` on have no signature yet: they are stale by
/// definition.
pub struct Signatures {
    pub inputs: Vec<Option<Inputs>>,
}

impl Signatures {
    pub fn sig(&self, t: Task) -> Option<String> {
        self.inputs[t.index()].as_ref().map(Inputs::signature)
    }

    /// The inputs of `t`; empty when unknown (a stamp written from them is then stale next time).
    pub fn of(&self, t: Task) -> Inputs {
        self.inputs[t.index()].clone().unwrap_or_default()
    }
}

/// Where a package stands.
pub struct Verdict {
    pub plan: TaskPlan,
    /// `None`: up to date.
    pub stale: Option<Stale>,
    /// The sha256 per source the current fetch stamp records.
    pub fetched: Option<Vec<String>>,
    pub stamps: Vec<Option<Stamp>>,
}

impl Verdict {
    /// The output hash the `package` stamp recorded.
    pub fn recorded_output(&self) -> Option<&str> {
        self.stamps[self.plan.package().index()].as_ref().and_then(Stamp::staged_hash)
    }
}

/// Whether the staged output of an otherwise current package is checked against its stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputCheck {
    /// Re-hash it when its metadata changed (a build, `ovm status`).
    Verify,
    /// As `Verify`, but note nothing: `ovm build --dry-run` promises to write no file at all, and
    /// a matching re-hash is then simply redone next time.
    VerifyQuietly,
    /// Trust the stamps (planning which sources a run needs: a damaged output is still found when
    /// the package itself is assessed for building; hashing every output twice per run would
    /// double the cost of a no-op build).
    Trust,
}

/// The signatures of every task of `recipe`; see `task` for what each task's inputs are.
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
        inputs.set(plan.name(t.previous().unwrap_or(Task::FETCH)).as_str(), &prev_sig);
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
            TaskKind::Autoreconf => {
                inputs.set("script.autoreconf", super::autoreconf::SCRIPT);
                inputs.set("autotools", ctx.host_autotools.versions()?);
            }
            TaskKind::Step(step) => {
                inputs.set(format!("script.{}", def.name), step.script.as_deref().unwrap_or_default());
                if step.first {
                    whole_build_inputs(ctx, recipe, dep_outputs, &mut inputs)?;
                }
            }
            TaskKind::Package => {
                if ctx.domain.splits() {
                    inputs.set("package", recipe.package.describe());
                    inputs.set("license_files", recipe.license_files.join(","));
                }
            }
        }
        prev_sig = inputs.signature();
        all.push(Some(inputs));
    }
    Ok(Signatures { inputs: all })
}

/// What the first build step's signature carries for the whole build: style, environment, config
/// files, toolchain, build tools, the native tools it names, the outputs of every package of its sysroot, isolation.
fn whole_build_inputs(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    dep_outputs: &BTreeMap<String, String>,
    inputs: &mut Inputs,
) -> Result<(), EngineError> {
    if let Some(b) = &recipe.build {
        inputs.set("build.style", b.style.name());
    }
    for (k, v) in ctx.step_env(recipe) {
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
    // Only the native tools it names (and theirs): another package's tool changing rebuilds
    // nothing here.
    for n in ctx.native_deps(recipe)? {
        inputs.set(format!("native.{}", n.name), ctx.equipment.native.get(&n.name).map(String::as_str).unwrap_or("?"));
    }
    for d in ctx.sysroot_deps(recipe)? {
        inputs.set(format!("dep.{}", d.name), dep_outputs.get(&d.name).map(String::as_str).unwrap_or("?"));
    }
    inputs.set("isolation", if matches!(ctx.isolation, Isolation::Host) { "host" } else { "sandbox" });
    Ok(())
}

/// The sha256 per source recorded by the last fetch, if its stamp is current.
fn fetched_from_stamp(stamp: Option<&Stamp>, fetch_sig: &str) -> Option<Vec<String>> {
    Some(stamp.filter(|s| s.signature == fetch_sig)?.fetched()?.to_vec())
}

/// Output hash of a staged tree. The prebuilt toolchain (340 MB of zig) is identified by its own
/// signature, which reads the wheel's RECORD of per-file hashes instead of re-hashing every byte.
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
/// covered by it. Not noting it (`may_note` false, a read-only or full disk) only costs the next
/// check a re-hash.
fn checked_output_hash(
    ctx: &Ctx<'_>,
    pkg: &str,
    staged: &Path,
    recorded: Option<&str>,
    may_note: bool,
) -> Result<String, EngineError> {
    if ctx.domain == Domain::Toolchain {
        return output_hash(ctx.domain, staged);
    }
    let note = ctx.layout.output_stat_note(ctx.domain, pkg);
    let fingerprint = tree::stat_fingerprint(staged)?;
    if let (Some(recorded), Ok(noted)) = (recorded, fs::read_to_string(&note)) {
        if noted.split_once(' ') == Some((fingerprint.as_str(), recorded)) {
            return Ok(recorded.to_string());
        }
    }
    let actual = output_hash(ctx.domain, staged)?;
    if may_note && recorded == Some(actual.as_str()) {
        let noted = note.parent().map_or(Ok(()), fs::create_dir_all);
        if let Err(e) = noted.and_then(|()| tree::write_atomic(&note, format!("{fingerprint} {actual}").as_bytes())) {
            tracing::debug!("{pkg}: not noting the output's fingerprint: {e}");
        }
    }
    Ok(actual)
}

/// Where `recipe` stands: its first stale task and why, from its stamps, markers and (with
/// [`OutputCheck::Verify`]) its staged output.
pub fn assess(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    dep_outputs: &BTreeMap<String, String>,
    check: OutputCheck,
) -> Result<Verdict, EngineError> {
    let pkg = recipe.name.as_str();
    let plan = TaskPlan::for_recipe(recipe, ctx.domain.arch());
    let stamps: Vec<Option<Stamp>> =
        plan.all().map(|t| ctx.states.stamp(pkg, plan.name(t))).collect::<Result<_, _>>()?;
    let first = signatures(ctx, recipe, &plan, dep_outputs, None)?;
    let fetch_sig = first.sig(Task::FETCH).unwrap_or_default();
    let fetched = fetched_from_stamp(stamps[0].as_ref(), &fetch_sig);
    let sigs = match &fetched {
        Some(f) => signatures(ctx, recipe, &plan, dep_outputs, Some(f))?,
        None => first,
    };

    let mut stale = first_stale(&plan, &stamps, &sigs);
    if ctx.states.work_dir_dirty(pkg) {
        stale = Some(match stale {
            Some(s) if s.task <= Task::UNPACK => s,
            Some(s) => Stale { task: Task::UNPACK, reason: s.reason },
            None => Stale { task: Task::UNPACK, reason: DirtyReason::Interrupted },
        });
    }
    if stale.is_none() && check != OutputCheck::Trust {
        let note = check == OutputCheck::Verify;
        stale = output_damage(ctx, pkg, &plan, &stamps, note)?.map(|reason| Stale { task: Task::UNPACK, reason });
    }
    Ok(Verdict { plan, stale, fetched, stamps })
}

/// The first task whose stamp is missing or does not match what its signature is now.
fn first_stale(plan: &TaskPlan, stamps: &[Option<Stamp>], sigs: &Signatures) -> Option<Stale> {
    plan.all().find_map(|t| {
        let task = plan.name(t).clone();
        let reason = match (&stamps[t.index()], sigs.sig(t)) {
            (None, _) => DirtyReason::NeverRan { task },
            (Some(_), None) => DirtyReason::WaitsForFetch { task },
            (Some(s), Some(now)) if s.signature != now => {
                DirtyReason::InputsChanged { task, changes: sigs.of(t).diff(&s.inputs) }
            }
            _ => return None,
        };
        Some(Stale { task: t, reason })
    })
}

/// Whether the staged output of a package whose stamps are all current is gone or was changed.
fn output_damage(
    ctx: &Ctx<'_>,
    pkg: &str,
    plan: &TaskPlan,
    stamps: &[Option<Stamp>],
    note: bool,
) -> Result<Option<DirtyReason>, EngineError> {
    let recorded = stamps[plan.package().index()].as_ref().and_then(Stamp::staged_hash);
    let staged = ctx.layout.staging(ctx.domain, pkg);
    if !staged.is_dir() {
        return Ok(Some(DirtyReason::OutputMissing { staged }));
    }
    let actual = checked_output_hash(ctx, pkg, &staged, recorded, note)?;
    Ok((Some(actual.as_str()) != recorded).then_some(DirtyReason::OutputChanged { staged }))
}

/// Where the build of a stale package starts once its sources are fetched (`sigs` from what was
/// fetched): the first stale task, moved back to `unpack` where a task cannot rerun on the work
/// dir as it is (see the module comment).
pub fn resume_point(
    ctx: &Ctx<'_>,
    pkg: &str,
    plan: &TaskPlan,
    first_stale: Task,
    sigs: &Signatures,
    dirs: &WorkDirs,
) -> Task {
    let start = first_stale.max(Task::UNPACK);
    let reruns_in_place = matches!(&plan.def(start).kind, TaskKind::Step(s) if s.cleans_dest);
    if start >= Task::PATCH && start <= plan.last_step() && !reruns_in_place {
        return Task::UNPACK;
    }
    if start == Task::UNPACK || ctx.states.work_dir_dirty(pkg) {
        return Task::UNPACK;
    }
    let prev = start.previous().unwrap_or(Task::UNPACK);
    let done = read_work_state(dirs);
    let on_its_predecessor =
        done.done.get(plan.name(prev).as_str()).is_some_and(|s| Some(s) == sigs.sig(prev).as_ref())
            && (start != plan.package() || dirs.dest.is_dir());
    if on_its_predecessor {
        start
    } else {
        Task::UNPACK
    }
}

/// Signatures of the tasks done in a work dir, in `work/D/PKG/.ovm-work`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WorkState {
    pub done: BTreeMap<String, String>,
}

/// The work dir's record; none (or an unreadable one) reads as nothing done.
pub fn read_work_state(dirs: &WorkDirs) -> WorkState {
    fs::read(&dirs.work_state).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Records that `task` (with signature `sig`) is done in the work dir; `unpack` starts a new record.
pub fn note_done(dirs: &WorkDirs, task: &TaskName, first: bool, sig: &str) -> Result<(), EngineError> {
    let mut ws = if first { WorkState::default() } else { read_work_state(dirs) };
    ws.done.insert(task.to_string(), sig.to_string());
    let bytes = serde_json::to_vec_pretty(&ws).map_err(|e| EngineError::Internal(e.to_string()))?;
    tree::write_atomic(&dirs.work_state, &bytes)
        .map_err(|source| EngineError::Write { path: dirs.work_state.clone(), source })
}

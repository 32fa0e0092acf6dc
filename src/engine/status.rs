//! `ovm status [ARCH] [--why]`: for every package of the toolchain, the build tools and the
//! target architecture(s), whether it is built, stale (and which input changed, cargo's fingerprint
//! explanations being the model), failed (the `await` marker), interrupted, or never built — and
//! whether the image needs repacking. It reads state only: no lock, nothing written.

use std::collections::BTreeMap;
use std::io::Write;

use crate::arch::Arch;
use crate::project::Project;
use crate::recipe::{Kind, Recipe};

use crate::layout::{Domain, TaskName, IMAGE};
use crate::toolchain::{Parts, Toolchain};

use super::build::{image_plan, target_list, Run};
use super::context_log::ContextLog;
use super::ctx::Ctx;
use super::freshness::{self, OutputCheck};
use super::state::StateDir;
use super::EngineError;

/// One package's line.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl State {
    pub fn is_built(&self) -> bool {
        matches!(self, State::Built)
    }
}

pub struct Line {
    pub domain: String,
    pub name: String,
    pub state: State,
}

/// The first line of `ovm status`: the toolchain the packages are judged against, and why.
pub fn toolchain_line(project: &Project) -> Result<String, EngineError> {
    Ok(format!("toolchain: {}", super::choice::resolve(project, None)?))
}

/// The status of every package; `arch: None` covers every architecture that has state.
pub fn collect(project: &Project, arch: Option<Arch>) -> Result<Vec<Line>, EngineError> {
    let run = Run::new(project, 1, false)?;
    let kind = run.toolchain(None)?;
    let log = ContextLog::open(std::path::Path::new("/dev/null"))
        .map_err(|source| EngineError::Write { path: "/dev/null".into(), source })?;
    let archs: Vec<Arch> = match arch {
        Some(a) => vec![a],
        None => {
            let with_state: Vec<Arch> =
                Arch::ALL.into_iter().filter(|a| project.layout().states(Domain::Target(*a)).is_dir()).collect();
            if with_state.is_empty() {
                vec![Arch::host().unwrap_or(Arch::X86_64)]
            } else {
                with_state
            }
        }
    };
    let mut lines = Vec::new();
    let mut blocked_by: Option<String> = None;

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
        if domain_status(&ctx, &parts.recipes, &mut lines)? && blocked_by.is_none() {
            blocked_by = Some(match parts.domain {
                Domain::Cross(a) => format!("the {a} gcc toolchain"),
                _ => format!(
                    "toolchain {}",
                    parts.recipes.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    let tools: Vec<&Recipe> = run.recipes.topological_order().into_iter().filter(|r| r.kind == Kind::Tools).collect();
    let tools_domain = Domain::Tools(run.host);
    let ctx = run.ctx(tools_domain, &log, run.equipment_now(&kind, tools_domain, archs[0])?);
    let stale_tools = domain_status(&ctx, &tools, &mut lines)?;
    if blocked_by.is_none() && stale_tools {
        blocked_by = Some("the build tools".into());
    }

    for a in archs {
        let targets = target_list(&run.recipes, &[])?;
        let ctx = run.ctx(Domain::Target(a), &log, run.equipment_now(&kind, Domain::Target(a), a)?);
        let first = lines.len();
        let stale = domain_status(&ctx, &targets, &mut lines)?;
        if let Some(b) = &blocked_by {
            for l in &mut lines[first..] {
                if l.state.is_built() {
                    l.state = State::Waits { on: b.clone() };
                }
            }
        }
        let outputs: BTreeMap<String, String> =
            targets.iter().filter_map(|r| Some((r.name.clone(), ctx.states.staged_hash(&r.name)?))).collect();
        let image = if stale || blocked_by.is_some() {
            State::Waits { on: "the packages".into() }
        } else {
            image_state(project, a, &targets, &outputs, &ctx.states)?
        };
        lines.push(Line { domain: a.name().into(), name: IMAGE.into(), state: image });
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
    Ok(match states.stamp(IMAGE, &TaskName::pack())? {
        None => State::NeverBuilt,
        Some(s) if s.signature != inputs.signature() => State::Stale {
            task: "pack".into(),
            changes: inputs.diff(&s.inputs).iter().map(ToString::to_string).collect(),
        },
        Some(s) => match super::build::existing_image(&s) {
            Some(_) => State::Built,
            None => State::Stale {
                task: "pack".into(),
                changes: vec!["the image in output/ is missing or was changed".into()],
            },
        },
    })
}

/// Appends one line per recipe; returns whether any is not built.
fn domain_status(ctx: &Ctx<'_>, list: &[&Recipe], lines: &mut Vec<Line>) -> Result<bool, EngineError> {
    let mut not_built: BTreeMap<&str, ()> = BTreeMap::new();
    let mut any = false;
    for r in list {
        let waits = r.depends.iter().find(|d| not_built.contains_key(d.as_str()));
        let state = match waits {
            Some(d) => State::Waits { on: d.clone() },
            None => package_state(ctx, r)?,
        };
        if !state.is_built() {
            not_built.insert(r.name.as_str(), ());
            any = true;
        }
        lines.push(Line { domain: ctx.domain.to_string(), name: r.name.clone(), state });
    }
    Ok(any)
}

fn package_state(ctx: &Ctx<'_>, r: &Recipe) -> Result<State, EngineError> {
    let pkg = r.name.as_str();
    if let Some(a) = ctx.states.awaiting()? {
        if a.package == pkg {
            return Ok(State::Failed { task: a.task.to_string(), log: a.log.display().to_string() });
        }
    }
    if let Some(task) = ctx.states.running(pkg)? {
        return Ok(State::Interrupted { task });
    }
    if ctx.states.stamp(pkg, &TaskName::fetch())?.is_none() && ctx.states.stamp(pkg, &TaskName::package())?.is_none() {
        return Ok(State::NeverBuilt);
    }
    let deps = ctx.dep_outputs(r, |d| ctx.states.staged_hash(d))?;
    let v = freshness::assess(ctx, r, &deps, OutputCheck::Verify)?;
    Ok(match v.stale {
        None => State::Built,
        Some(stale) => State::Stale { task: v.plan.name(stale.task).to_string(), changes: stale.reason.lines() },
    })
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

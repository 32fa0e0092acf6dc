//! `ovm toolchain ARCH`: the gcc cross toolchain for one target, built (or reused) through the
//! engine like any package set (`crate::toolchain::gcc` says what it is made of), with its dry-run
//! task graph and the optional SDK.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::arch::Arch;
use crate::project::Project;
use crate::recipe::RecipeSet;
use crate::toolchain::gcc;
use crate::toolchain::Provided;

use super::build::{open_run, prefetch, BuildFailure, Builder, PackageReport};
use super::progress::Observer;
use super::task::{TaskKind, TaskPlan};
use super::EngineError;

/// One task of the plan `ovm toolchain ARCH --dry-run` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTask {
    pub package: String,
    pub task: String,
    /// Tasks (`package task`) that must be done first.
    pub after: Vec<String>,
    /// A build step (a `[[build.step]]`), as opposed to fetch/unpack/patch/package.
    pub step: bool,
}

/// The task graph of the toolchain for target `arch`, in the order one worker would run it: each task
/// follows its package's previous task, a package's first task follows its dependencies' `package`.
pub fn plan(recipes: &RecipeSet, arch: Arch) -> Result<Vec<PlannedTask>, EngineError> {
    let mut out = Vec::new();
    for r in gcc::parts(recipes)? {
        let p = TaskPlan::for_recipe(r, arch);
        for t in p.all() {
            let after = match t.previous() {
                Some(prev) => vec![format!("{} {}", r.name, p.name(prev))],
                None => r.depends.iter().map(|d| format!("{d} package")).collect(),
            };
            let step = matches!(p.def(t).kind, TaskKind::Step(_));
            out.push(PlannedTask { package: r.name.clone(), task: p.name(t).to_string(), after, step });
        }
    }
    Ok(out)
}

/// What `ovm toolchain ARCH` did.
#[derive(Debug)]
pub(crate) struct Summary {
    pub arch: Arch,
    pub built: Provided,
    pub packages: Vec<PackageReport>,
    pub elapsed: Duration,
    pub sdk: Option<PathBuf>,
}

/// Options of `ovm toolchain`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub jobs: usize,
    pub no_sandbox: bool,
    pub no_wait: bool,
    /// Also write the SDK tarball.
    pub sdk: bool,
}

/// `ovm toolchain ARCH`: builds (or reuses) the gcc toolchain for `arch`.
pub(crate) fn build(
    project: &Project,
    arch: Arch,
    opts: &Options,
    observer: &dyn Observer,
) -> Result<Summary, BuildFailure> {
    let t0 = Instant::now();
    let (_lock, mut run) = open_run(project, opts.jobs, opts.no_sandbox, opts.no_wait)?;
    run.observer = observer;
    let what = format!("ovm toolchain {arch}");
    // Only the target's own parts: the host's toolchain is not needed to build a cross one.
    prefetch(&run, &[gcc::cross_parts(&run.target(arch), arch)?])?;
    let reports = Mutex::new(Vec::new());
    let builder = Builder { run: &run, what: &what, reports: &reports };
    let built = gcc::ensure(&builder, &run.target(arch), arch)?;
    let sdk = if opts.sdk {
        Some(gcc::write_sdk(project, &run.recipes, arch, &built).map_err(EngineError::from)?)
    } else {
        None
    };
    let mut packages = reports.into_inner().unwrap_or_default();
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Summary { arch, built, packages, elapsed: t0.elapsed(), sdk })
}

/// Prints the summary of `ovm toolchain`.
pub(crate) fn print_summary(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    for p in &s.packages {
        writeln!(out, "{} {}: {}", p.domain, p.name, p.outcome)?;
    }
    writeln!(out, "toolchain {}: {} ({:.1} s)", s.arch, s.built.dir.display(), s.elapsed.as_secs_f64())?;
    if let Some(sdk) = &s.sdk {
        writeln!(out, "sdk: {}", sdk.display())?;
    }
    Ok(())
}

/// Runs `ovm toolchain ARCH`, telling `observer` what it does, and prints its outcome (a failure:
/// each failed task's log tail and path, then the summary table, like `ovm build`); the exit code
/// is the process's.
pub fn report(
    project: &Project,
    arch: Arch,
    opts: &Options,
    quiet: bool,
    observer: &dyn Observer,
) -> std::process::ExitCode {
    let result = build(project, arch, opts, observer);
    observer.run_ended();
    match result {
        Ok(summary) => {
            let mut out = io::stdout().lock();
            if quiet {
                let _ = writeln!(out, "{}", summary.built.dir.display());
                if let Some(sdk) = &summary.sdk {
                    let _ = writeln!(out, "{}", sdk.display());
                }
            } else {
                let _ = print_summary(&summary, &mut out);
            }
            std::process::ExitCode::SUCCESS
        }
        Err(failure) => {
            super::report::print_failure(&failure, &mut io::stderr().lock());
            std::process::ExitCode::FAILURE
        }
    }
}

//! `ovm clean [ARCH] [PKG…]`: forget what was built so the next build starts over — one package
//! (its work dir, stamps, staged output, logs), one architecture, or everything generated. Sources
//! (`sources/`) and the caches under `.cache/` are kept: they are verified by hash, never stale.
//! Neither is the toolchain recorded by `ovm build --toolchain`: it is a setting, not a product.
//!
//! A clean that would delete `toolchain/` (an hour of gcc) or an image in `output/` asks first on
//! a terminal; without one it refuses unless told `--yes` ([`Confirm`]), since a script cannot
//! answer and a silent "yes" is how the toolchain got lost.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::project::Project;
use crate::recipe::RecipeSet;

use crate::layout::{Domain, IMAGE};
use crate::tree;

use super::devshell::domain_of;
use super::lock::{ProjectLock, Wait};
use super::state::StateDir;
use super::EngineError;

/// Whether a clean that deletes a toolchain or an image may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// `--yes`: no question.
    Yes,
    /// Ask on a terminal; refuse when stdin is not one.
    Ask,
}

/// What a clean would delete that costs more than a rebuild of the packages: `toolchain/`
/// (bare clean) and `output/` or `output/ARCH/` (bare or ARCH clean), those that exist.
fn precious(project: &Project, arch: Option<Arch>, packages: &[String]) -> Vec<PathBuf> {
    let layout = project.layout();
    let candidates = match (arch, packages.is_empty()) {
        (None, true) => vec![layout.toolchain_root(), layout.output_root()],
        (Some(a), true) => vec![layout.output(a)],
        // One package's clean leaves the toolchain and the images alone.
        (_, false) => Vec::new(),
    };
    candidates.into_iter().filter(|p| p.symlink_metadata().is_ok()).collect()
}

/// Asks (on a terminal) before `paths` go; refuses without a terminal.
fn confirm(project: &Project, paths: &[PathBuf], how: Confirm) -> Result<(), EngineError> {
    if paths.is_empty() || how == Confirm::Yes {
        return Ok(());
    }
    let names: Vec<String> =
        paths.iter().map(|p| format!("{}/", p.strip_prefix(project.root()).unwrap_or(p).display())).collect();
    let what = names.join(" and ");
    if !std::io::stdin().is_terminal() {
        return Err(EngineError::CleanNeedsYes { what });
    }
    let mut err = std::io::stderr();
    let _ = writeln!(err, "ovm clean would delete {what}:");
    for p in paths {
        let _ = writeln!(err, "  {}  {}", p.display(), describe(project, p));
    }
    let _ = write!(err, "Delete them? [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|source| EngineError::Read { path: "stdin".into(), source })?;
    match answer.trim() {
        "y" | "Y" | "yes" | "YES" | "Yes" => Ok(()),
        _ => Err(EngineError::CleanDeclined { what }),
    }
}

/// Why a directory is worth keeping, in a few words.
fn describe(project: &Project, path: &Path) -> &'static str {
    if path == project.layout().toolchain_root() {
        "the toolchains and build tools (gcc takes about an hour to build again, zig minutes)"
    } else {
        "the packed images"
    }
}

/// Removes state; returns what was removed, for the user. A clean that would delete a toolchain
/// or an image asks first (see [`Confirm`]); the project lock is taken before asking, so another
/// ovm at work is reported at once.
pub fn clean(
    project: &Project,
    arch: Option<Arch>,
    packages: &[String],
    how: Confirm,
) -> Result<Vec<PathBuf>, EngineError> {
    let layout = project.layout();
    let lock = layout.lock();
    let _lock = ProjectLock::acquire(&lock, Wait::NoWait, |_| {})?;
    confirm(project, &precious(project, arch, packages), how)?;
    let mut removed = Vec::new();
    let mut rm = |p: PathBuf| -> Result<(), EngineError> {
        if p.symlink_metadata().is_ok() {
            tree::remove_all(&p)?;
            removed.push(p);
        }
        Ok(())
    };
    if packages.is_empty() {
        match arch {
            None => {
                for d in [layout.work_root(), layout.staging_root(), layout.output_root(), layout.logs_root()] {
                    rm(d)?;
                }
                rm(layout.toolchain_root())?;
                // Keep the lock file we hold and the toolchain setting; everything else under
                // states/ goes.
                let keep = [lock.clone(), layout.toolchain_choice()];
                if let Ok(rd) = std::fs::read_dir(layout.states_root()) {
                    for e in rd.flatten() {
                        if !keep.contains(&e.path()) {
                            rm(e.path())?;
                        }
                    }
                }
            }
            Some(a) => {
                let d = Domain::Target(a);
                rm(layout.work_of(d))?;
                rm(layout.staging_of(d))?;
                rm(layout.states(d))?;
                rm(layout.logs(d))?;
                rm(layout.output(a))?;
            }
        }
        return Ok(removed);
    }
    let recipes = RecipeSet::load(project)?;
    let host = Arch::host().ok_or(EngineError::UnsupportedHost)?;
    let archs: Vec<Arch> = arch.map(|a| vec![a]).unwrap_or_else(|| Arch::ALL.to_vec());
    for pkg in packages {
        let recipe = recipes.require(pkg)?;
        for a in &archs {
            let d = domain_of(recipe, *a, host);
            let dirs = layout.work_dirs(d, pkg);
            rm(dirs.work)?;
            rm(dirs.staging)?;
            rm(dirs.logs)?;
            let states = StateDir::new(layout, d);
            states.forget(pkg)?;
            if matches!(d, Domain::Target(_)) {
                // The image contains the package: it must be repacked.
                states.forget(IMAGE)?;
            }
        }
    }
    Ok(removed)
}

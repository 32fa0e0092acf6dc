//! `ovm clean [ARCH] [PKG…]`: forget what was built so the next build starts over — one package
//! (its work dir, stamps, staged output, logs), one architecture, or everything generated. Sources
//! (`sources/`) and the caches under `.cache/` are kept: they are verified by hash, never stale.

use std::path::PathBuf;

use crate::arch::Arch;
use crate::project::Project;
use crate::recipe::RecipeSet;

use crate::layout::{Domain, IMAGE};
use crate::tree;

use super::devshell::domain_of;
use super::lock::{ProjectLock, Wait};
use super::state::StateDir;
use super::EngineError;

/// Removes state; returns what was removed, for the user.
pub fn clean(project: &Project, arch: Option<Arch>, packages: &[String]) -> Result<Vec<PathBuf>, EngineError> {
    let layout = project.layout();
    let lock = layout.lock();
    let _lock = ProjectLock::acquire(&lock, Wait::NoWait, |_| {})?;
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
                // Keep the lock file we hold; everything else under states/ goes.
                if let Ok(rd) = std::fs::read_dir(layout.states_root()) {
                    for e in rd.flatten() {
                        if e.path() != lock {
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

//! `ovm clean [ARCH] [PKG…]`: forget what was built so the next build starts over — one package
//! (its work dir, stamps, staged output, logs), one architecture, or everything generated. Sources
//! (`sources/`) and the caches under `.cache/` are kept: they are verified by hash, never stale.

use std::path::PathBuf;

use crate::arch::Arch;
use crate::project::Project;
use crate::recipe::RecipeSet;

use super::devshell::domain_of;
use super::domain::Domain;
use super::lock::{ProjectLock, Wait};
use super::state::StateDir;
use super::tree;
use super::EngineError;

/// Removes state; returns what was removed, for the user.
pub fn clean(project: &Project, arch: Option<Arch>, packages: &[String]) -> Result<Vec<PathBuf>, EngineError> {
    let root = project.root();
    let _lock = ProjectLock::acquire(&root.join("states").join(".lock"), Wait::NoWait, |_| {})?;
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
                for d in ["work", "staging", "output", "logs", "toolchain"] {
                    rm(root.join(d))?;
                }
                // Keep the lock file we hold; everything else under states/ goes.
                if let Ok(rd) = std::fs::read_dir(root.join("states")) {
                    for e in rd.flatten() {
                        if e.file_name() != ".lock" {
                            rm(e.path())?;
                        }
                    }
                }
            }
            Some(a) => {
                let d = Domain::Target(a);
                rm(root.join("work").join(d.dir_name()))?;
                rm(root.join("staging").join(d.dir_name()))?;
                rm(d.states(root))?;
                rm(d.logs(root))?;
                rm(project.output_dir(a))?;
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
            rm(d.work(root, pkg))?;
            rm(d.staging(root, pkg))?;
            rm(d.logs(root).join(pkg))?;
            let states = StateDir::new(d.states(root));
            states.forget(pkg)?;
            if matches!(d, Domain::Target(_)) {
                // The image contains the package: it must be repacked.
                states.forget("image")?;
            }
        }
    }
    Ok(removed)
}

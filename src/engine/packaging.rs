//! The package task of a target package (BitBake's do_package): DESTDIR → stripped, split,
//! checked packages, committed whole to `staging/ARCH/PKG/` (one directory per `Part`).
//!
//! 1. **strip** — in the package's own sandbox, with the toolchain's `objcopy` (`split::strip_script`):
//!    each unstripped program or library gets its debug info moved to `usr/lib/debug/` (by
//!    build-id) and a debuglink; afterwards every planned file is read again and must be stripped.
//! 2. **split** — DESTDIR is copied into `work/D/PKG/package/PART/` by the recipe's rules and the
//!    defaults (`split`). DESTDIR stays as it is, so a change of the rules alone reruns this task
//!    only, from the same install.
//! 3. **QA** — `qa::check_package` on the split tree; a finding the recipe does not waive fails
//!    the task, and nothing is committed.
//! 4. **commit** — the split tree's hash is the package's output; the tree replaces the staged
//!    one in one exchange (`tree::commit_then`).
//!
//! Other domains (build tools, toolchain parts) are used whole: their DESTDIR is committed as it is.

use std::path::Path;

use crate::fault;
use crate::layout::{Domain, TaskName, WorkDirs};
use crate::qa;
use crate::recipe::Recipe;
use crate::split;
use crate::tree;

use super::ctx::Ctx;
use super::freshness;
use super::state::StampOutput;
use super::step::{self, write_log};
use super::EngineError;

pub(super) fn run(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    name: &TaskName,
    dirs: &WorkDirs,
    log: &Path,
) -> Result<StampOutput, EngineError> {
    let result = run_in(ctx, recipe, name, dirs, log);
    if let Err(e) = &result {
        // The log ends with the error: the failure report and the summary show its last lines.
        if !matches!(e, EngineError::Qa { .. }) {
            let _ = write_log_appending(log, &format!("{e}\n"));
        }
    }
    result
}

fn run_in(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    name: &TaskName,
    dirs: &WorkDirs,
    log: &Path,
) -> Result<StampOutput, EngineError> {
    if !ctx.domain.splits() {
        // Checked where the steps left it, before the commit: an output that is refused (a
        // FIFO, a socket or a device node in DESTDIR) never reaches staging, which keeps the
        // previous good output, so neither `ovm pack` nor a dependent can pick it up. The hash
        // is of relative paths, so the one of DESTDIR is the staged tree's.
        let hash = freshness::output_hash(ctx.domain, &dirs.dest)?;
        if ctx.domain == Domain::Toolchain {
            // Identified by its wheel's RECORD, which reads no directory: walk it here.
            tree::check_types(&dirs.dest)?;
        }
        tree::commit_then(&dirs.dest, &dirs.staging, || fault::point("package.exchanged", &recipe.name))?;
        return Ok(StampOutput::Staged { hash });
    }
    write_log(log, "").map_err(|source| EngineError::Write { path: log.to_path_buf(), source })?;
    tree::check_types(&dirs.dest)?;
    let mut report = String::new();
    let machine = ctx.domain.arch().elf_machine();
    if recipe.package.strip {
        let plan = split::strip_plan(&dirs.dest, machine)?;
        if !plan.is_empty() {
            step::run_step(ctx, recipe, name, &split::strip_script(&plan), dirs, log, ctx.domain.profile())?;
            for item in &plan {
                let path = dirs.dest.join(&item.file);
                let data = std::fs::read(&path).map_err(|source| EngineError::Read { path: path.clone(), source })?;
                let still = crate::elf::read(&data)
                    .map_err(|source| split::SplitError::Elf { path: path.clone(), source })?
                    .map_or(true, |f| f.unstripped);
                if still {
                    return Err(EngineError::NotStripped { package: recipe.name.clone(), file: item.file.clone() });
                }
                report.push_str(&format!("stripped {} (debug info: {})\n", item.file, item.debug_file));
            }
        }
    }
    tree::remove_all(&dirs.package)?;
    let made = split::split(&dirs.dest, &dirs.package, &recipe.package.rules)?;
    for (part, files) in &made.files {
        report.push_str(&format!("{}: {} file(s)\n", part.package_name(&recipe.name), files.len()));
    }
    let cx = qa::PackageContext { machine, project: ctx.root() };
    let waived = recipe.package.waive.keys().copied().collect();
    let mut findings = qa::check_package(&dirs.package, &cx)?;
    findings.extend(copy_licenses(recipe, dirs)?);
    let findings = qa::unwaived(findings, &waived);
    for (check, why) in &recipe.package.waive {
        report.push_str(&format!("QA check {check} waived: {why}\n"));
    }
    // The log gets what was done before a failure too: it is where a person looks first.
    let _ = write_log_appending(log, &report);
    if !findings.is_empty() {
        let lines: Vec<String> = findings.iter().map(|f| format!("QA: {f}\n")).collect();
        let _ = write_log_appending(log, &lines.concat());
        return Err(EngineError::Qa {
            package: recipe.name.clone(),
            recipe: recipe.path.strip_prefix(ctx.root()).unwrap_or(&recipe.path).to_path_buf(),
            findings,
        });
    }
    let hash = freshness::output_hash(ctx.domain, &dirs.package)?;
    tree::commit_then(&dirs.package, &dirs.staging, || fault::point("package.exchanged", &recipe.name))?;
    Ok(StampOutput::Staged { hash })
}

/// Copies the recipe's license texts from the source tree into `package/licenses/` (where `ovm
/// legal-info` and the SBOM find them, also after a restore from the shared-state cache, which
/// has no source tree); each one missing is a finding.
fn copy_licenses(recipe: &Recipe, dirs: &WorkDirs) -> Result<Vec<qa::Finding>, EngineError> {
    let mut missing = Vec::new();
    let to_dir = dirs.package.join(crate::layout::LICENSES_DIR);
    for rel in &recipe.license_files {
        let from = dirs.src.join(rel);
        if !from.is_file() {
            missing.push(qa::Finding {
                check: qa::Check::LicenseFile,
                file: rel.clone(),
                reason: "is named in license_files but is no file of the unpacked source tree".into(),
            });
            continue;
        }
        let to = to_dir.join(rel);
        if let Some(parent) = to.parent() {
            step::mkdir(parent)?;
        }
        std::fs::copy(&from, &to).map_err(|source| EngineError::Write { path: to.clone(), source })?;
    }
    Ok(missing)
}

/// Appends `text` to `log` (the strip script's output may be there already).
fn write_log_appending(log: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    f.write_all(text.as_bytes())
}

/// A step's setuid/setgid files in DESTDIR, as QA findings unless the recipe waives the check
/// (the bits are cleared either way: see `tree::clear_setid`).
pub(super) fn setuid_check(
    recipe: &Recipe,
    dirs: &WorkDirs,
    cleared: &[std::path::PathBuf],
    root: &Path,
) -> Result<(), EngineError> {
    if recipe.package.waive.contains_key(&qa::Check::Setuid) {
        return Ok(());
    }
    let in_dest: Vec<String> = cleared
        .iter()
        .filter_map(|p| p.strip_prefix(&dirs.dest).ok())
        .map(|p| format!("/{}", p.to_string_lossy()))
        .collect();
    if in_dest.is_empty() {
        return Ok(());
    }
    Err(EngineError::Qa {
        package: recipe.name.clone(),
        recipe: recipe.path.strip_prefix(root).unwrap_or(&recipe.path).to_path_buf(),
        findings: qa::setuid_findings(&in_dest),
    })
}

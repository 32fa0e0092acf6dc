//! `ovm shell PKG` (BitBake's devshell) and `ovm spec PKG`: both are about the sandbox PKG's
//! compile task runs in. The shell is started from the very spec the compile step gets — same
//! mounts, same environment, cwd `/ovm/build` — with only the command (a login shell, or the
//! user's command after `--`) and a terminal changed (on a terminal, the sandbox gets a pty of its
//! own that ovm relays — never the caller's, see the sandbox's runtime), so what works in the shell
//! works in the build and what fails there fails in the build.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Mutex;

use crate::arch::Arch;
use crate::project::Project;
use crate::recipe::{Kind, Recipe};

use crate::layout::Domain;
use crate::toolchain::Equipment;

use super::build::{build_domain, equip, open_log, open_run, Run};
use super::context_log::ContextLog;
use super::package;
use super::step;
use super::task::TaskPlan;
use super::EngineError;

/// The domain a package builds in.
pub(crate) fn domain_of(recipe: &Recipe, arch: Arch, host: Arch) -> Domain {
    match recipe.kind {
        Kind::Target => Domain::Target(arch),
        // Native tools are host programs like the build tools, built in their domain.
        Kind::Tools | Kind::Native => Domain::Tools(host),
        Kind::Toolchain if recipe.is_prebuilt() => Domain::Toolchain,
        // A part of the gcc toolchain is built for one target.
        Kind::Toolchain => Domain::Cross(arch),
    }
}

fn equipment_for(run: &Run<'_>, domain: Domain, arch: Arch) -> Result<Equipment, EngineError> {
    run.equipment_now(&run.toolchain(None)?, domain, arch)
}

/// `ovm spec PKG`: the OCI runtime spec of PKG's compile sandbox, as JSON.
pub fn spec(project: &Project, pkg: &str, arch: Arch) -> Result<String, EngineError> {
    let run = Run::new(project, 0, false)?;
    let recipe = run.recipes.require(pkg)?;
    let domain = domain_of(recipe, arch, run.host);
    let eq = equipment_for(&run, domain, arch)?;
    let log = ContextLog::discard()?;
    let ctx = run.ctx(domain, &log, eq);
    // The compile step's sandbox; a recipe with its own steps shows its first one.
    let plan = TaskPlan::for_recipe(recipe, domain.arch());
    let step = plan
        .by_name("compile")
        .map_or_else(|| plan.step_names().next().unwrap_or_default().to_string(), |_| "compile".into());
    let script = plan.script(&step).unwrap_or_default().to_string();
    let spec = step::step_spec(&ctx, recipe, vec!["/bin/sh".into(), "-ec".into(), script], false)?;
    Ok(crate::sandbox::to_json(&spec)?)
}

/// `ovm shell PKG [-- CMD…]`: builds what PKG needs (toolchain, build tools, its dependencies),
/// prepares PKG up to `patch`, and runs CMD — or an interactive shell — in its compile sandbox.
/// The project stays locked while the shell runs, so no build can pull the work dir away.
pub fn shell(project: &Project, pkg: &str, arch: Arch, cmd: &[String], quiet: bool) -> Result<ExitCode, EngineError> {
    let (_lock, run) = open_run(project, 0, false, false)?;
    let recipe = run.recipes.require(pkg)?;
    let domain = domain_of(recipe, arch, run.host);
    let what = format!("ovm shell {pkg}");
    let reports = Mutex::new(Vec::new());
    let deps: Vec<&Recipe> = run
        .recipes
        .closure(std::slice::from_ref(&recipe.name))?
        .into_iter()
        .filter(|r| r.name != recipe.name)
        .collect();
    let failed = |f: super::build::BuildFailure| {
        let mut err = std::io::stderr();
        for x in &f.failures {
            package::report_failure(x, &mut err);
        }
        f.error.map(|e| *e).unwrap_or(EngineError::Failed(f.failures.len()))
    };

    let eq = match domain {
        Domain::Target(_) => {
            let kind = run.toolchain(None)?;
            let mut wanted = deps.clone();
            wanted.push(recipe);
            equip(&run, &kind, arch, &wanted, &what, &reports, super::build::Needs::Tools).map_err(failed)?
        }
        // Tools and toolchain parts build with what exists; building them first would be circular.
        _ => equipment_for(&run, domain, arch)?,
    };
    let log = open_log(project.layout(), domain, &what)?;
    let ctx = run.ctx(domain, &log, eq);
    let dep_outputs: BTreeMap<String, String> = build_domain(&ctx, &deps, &reports).map_err(failed)?;
    let ready = TaskPlan::for_recipe(recipe, arch).source_ready();
    package::run_until(&ctx, recipe, &dep_outputs, Some(ready)).map_err(|f| {
        package::report_failure(&f, &mut std::io::stderr());
        f.error
    })?;
    step::ready_for_shell(&ctx, recipe)?;

    let interactive = std::io::stdin().is_terminal();
    let args: Vec<String> = if cmd.is_empty() {
        if !interactive {
            tracing::warn!("stdin is not a terminal: the shell reads commands from it");
        }
        vec!["/bin/sh".into(), "-l".into()]
    } else {
        cmd.to_vec()
    };
    let mut spec = step::step_spec(&ctx, recipe, args, interactive)?;
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        env.push(format!("PS1=[ovm {domain} {pkg}] \\w \\$ "));
        p.set_env(Some(env));
    }
    if !quiet {
        eprintln!(
            "ovm: {pkg}: entering its build sandbox ({domain}); /ovm/src, /ovm/build, /ovm/dest are writable, changes stay"
        );
    }
    let mut command = crate::sandbox::command(&spec, project.settings())?;
    let status = command.status().map_err(|source| EngineError::Spawn { what: "shell".into(), source })?;
    let code = status.code().unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

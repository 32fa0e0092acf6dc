//! What every package of one domain shares in one run: the paths, the fetcher, the jobserver, the
//! toolchain it builds with, the settings. Built once per domain by `build::Run::ctx`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::arch::Arch;
use crate::fetch::Fetcher;
use crate::layout::{Domain, Layout, WorkDirs};
use crate::recipe::{Recipe, RecipeSet};
use crate::sandbox;
use crate::settings::Settings;
use crate::toolchain::Equipment;

use super::context_log::ContextLog;
use super::env::{self, EnvSpec};
use super::progress::Observer;
use super::scheduler::JobSlots;
use super::sstate::Sstate;
use super::state::StateDir;

/// How steps run: in the sandbox (the default) or, when the user opted out loudly, on the host.
#[derive(Debug, Clone)]
pub enum Isolation {
    Sandbox { exe: PathBuf },
    Host,
}

/// Everything shared by the packages of one domain in one run.
pub struct Ctx<'a> {
    pub layout: &'a Layout,
    /// The run's settings (the sandboxes' `/proc` mode comes from them).
    pub settings: &'a Settings,
    pub domain: Domain,
    pub host: Arch,
    pub fetcher: &'a Fetcher,
    /// Every recipe of the project (a sysroot is a dependency closure).
    pub recipes: &'a RecipeSet,
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
    pub outputs: Mutex<BTreeMap<String, String>>,
    /// Told of every task that starts, finishes or fails, and of every package reused.
    pub observer: &'a dyn Observer,
    /// The build machine's autotools, for recipes with `autoreconf = true` (asked once per run).
    pub host_autotools: &'a super::autoreconf::HostAutotools,
}

impl<'a> Ctx<'a> {
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    pub fn dirs(&self, pkg: &str) -> WorkDirs {
        self.layout.work_dirs(self.domain, pkg)
    }

    /// The full environment of a step of `recipe` in this domain.
    pub fn step_env(&self, recipe: &Recipe) -> Vec<(String, String)> {
        self.step_env_as(recipe, self.domain.profile())
    }

    /// The environment of a step of `recipe` run in `profile` (its domain's, except for the
    /// `autoreconf` task, which runs with the build machine's userland).
    pub fn step_env_as(&self, recipe: &Recipe, profile: env::Profile) -> Vec<(String, String)> {
        let recipe_env: Vec<(String, String)> =
            recipe.build.as_ref().map(|b| b.env_for(self.domain.arch()).into_iter().collect()).unwrap_or_default();
        env::build_env(&EnvSpec {
            target: self.domain.arch(),
            host: self.host,
            profile,
            jobs: self.slots.jobs(),
            native: !recipe.native.is_empty(),
            source_date_epoch: self.source_date_epoch,
            source_map: self.domain.splits().then(|| format!("/usr/src/debug/{}-{}", recipe.name, recipe.version)),
            recipe_env: &recipe_env,
        })
    }

    /// `recipe`'s sysroot packages ([`RecipeSet::sysroot_of`]).
    pub fn sysroot_deps(&self, recipe: &Recipe) -> Result<Vec<&'a Recipe>, super::EngineError> {
        Ok(self.recipes.sysroot_of(recipe)?)
    }

    /// The native tools `recipe`'s steps see ([`RecipeSet::native_of`]).
    pub fn native_deps(&self, recipe: &Recipe) -> Result<Vec<&'a Recipe>, super::EngineError> {
        Ok(self.recipes.native_of(recipe)?)
    }

    /// The output hashes of `recipe`'s sysroot packages, as `output_of` knows them (a package it
    /// does not know is left out: the signature then says `?` for it and the package is stale).
    pub fn dep_outputs(
        &self,
        recipe: &Recipe,
        output_of: impl Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<String, String>, super::EngineError> {
        Ok(self.sysroot_deps(recipe)?.into_iter().filter_map(|d| Some((d.name.clone(), output_of(&d.name)?))).collect())
    }

    /// The recipe's `[limits]` over the project's `[sandbox]` ones.
    pub fn step_limits(&self, recipe: &Recipe) -> sandbox::Limits {
        sandbox::Limits {
            pids: recipe.limits.pids.or(self.limits.pids),
            memory: recipe.limits.memory.or(self.limits.memory),
        }
    }
}

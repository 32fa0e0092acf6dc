//! Setscene, after BitBake's: before building anything, decide whether the shared-state caches
//! already hold every target package the build needs, and if so restore those alone — without
//! building, fetching or downloading the toolchain, the build tools or the native tools.
//!
//! The difficulty is that a target package's signature covers the *output hashes* of what it is
//! built with (the toolchain's signature, the build tools', its native tools', its
//! dependencies'), and a cold tree has none of them. The caches have them: every entry's manifest
//! records the output hash filed under a signature. So signatures are computed bottom-up from the
//! recipes alone, asking the caches for each output hash in turn (BitBake's hash equivalence /
//! unihash), downloading only manifests:
//!
//! | step | needs | from |
//! |---|---|---|
//! | toolchain parts, build tools, native tools | their signature (recipe, sources, dependencies' outputs) | [`Sstate::output_of`]: the local entry, else a remote manifest |
//! | the toolchain's and the tools' signatures | those outputs | `ToolchainKind::current` with them as its record; the tools' composition |
//! | each target package | its signature, from all of the above | [`Sstate::output_of`] |
//!
//! Nothing recorded in the tree (stamps, staged dirs) is trusted here: a stale staged toolchain
//! must not vouch for outputs built with another. Which source variant a package was built from
//! (the primary or a declared alternative) is part of its signature; a cold tree does not know, so
//! each combination is tried, primary first ([`MAX_VARIANTS`] at most). Anything unknown makes the
//! plan incomplete and the build goes the ordinary way: setscene can only ever save work, never
//! choose an output the ordinary build would not have made.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::arch::Arch;
use crate::layout::Domain;
use crate::recipe::{Kind, Recipe};
use crate::toolchain::{Equipment, Provided, Toolchain, ToolchainKind};

use super::build::{tools_signature, with_tools, Run};
use super::context_log::ContextLog;
use super::freshness;
use super::task::TaskPlan;

/// Source-variant combinations tried per package (a recipe with two sources, each with an
/// alternative, has four).
pub const MAX_VARIANTS: usize = 16;

/// The equipment `targets` of `arch` would be built with, when a remote cache is configured and
/// the caches hold every one of them: the build then needs neither toolchain nor build tools.
pub(crate) fn covered(run: &Run<'_>, kind: &ToolchainKind, arch: Arch, targets: &[&Recipe]) -> Option<Equipment> {
    if !run.sstate.as_ref().is_some_and(|s| s.has_remotes()) {
        return None;
    }
    Setscene::new(run, kind, arch)?.covers(targets)
}

/// One setscene question: can `targets` of `arch` come from the caches alone?
struct Setscene<'r, 'a> {
    run: &'r Run<'a>,
    kind: &'r ToolchainKind,
    arch: Arch,
    log: ContextLog,
    /// (domain, package) → its output hash as the caches know it (`None`: unknown).
    outputs: Mutex<BTreeMap<(Domain, String), Option<String>>>,
}

impl<'r, 'a> Setscene<'r, 'a> {
    pub fn new(run: &'r Run<'a>, kind: &'r ToolchainKind, arch: Arch) -> Option<Setscene<'r, 'a>> {
        Some(Setscene { run, kind, arch, log: ContextLog::discard().ok()?, outputs: Mutex::new(BTreeMap::new()) })
    }

    /// The equipment target packages would be built with, when every part of it is known to the
    /// caches, and `targets` all have an entry under the signature they would have with it.
    pub fn covers(&self, targets: &[&Recipe]) -> Option<Equipment> {
        let domain = Domain::Target(self.arch);
        let equipment = self.equipment(domain)?;
        targets.iter().all(|r| self.output(domain, &r.name).is_some()).then_some(equipment)
    }

    /// What `domain`'s packages build with, from the caches' output hashes.
    fn equipment(&self, domain: Domain) -> Option<Equipment> {
        // Asked only for the domains built with a toolchain: the toolchain's own parts are not.
        let now = || {
            let recorded = |d: Domain, pkg: &str| self.output(d, pkg);
            self.kind.current(&self.run.target(self.arch), &recorded)
        };
        let known = |p: &Provided| !p.signature.is_empty();
        Some(match domain {
            Domain::Target(_) => {
                let now = now();
                if !known(&now.target) {
                    return None;
                }
                let tools_domain = Domain::Tools(self.run.host);
                let mut tools = BTreeMap::new();
                let mut native = BTreeMap::new();
                for r in self.run.recipes.of_kind(Kind::Tools) {
                    tools.insert(r.name.clone(), self.output(tools_domain, &r.name)?);
                }
                for r in self.run.recipes.of_kind(Kind::Native) {
                    // Only the native tools some package names are asked for (by `output` below,
                    // through the packages' signatures); here each is offered if known.
                    if let Some(out) = self.output(tools_domain, &r.name) {
                        native.insert(r.name.clone(), out);
                    }
                }
                let tools = Provided { dir: self.run.layout.tools(), signature: tools_signature(&tools) };
                with_tools(now.target, tools, native)
            }
            Domain::Tools(_) => {
                let now = now();
                if !known(&now.host) {
                    return None;
                }
                Equipment::bootstrap(now.host)
            }
            Domain::Cross(_) => crate::toolchain::gcc::no_toolchain(self.run.layout).ok()?,
            Domain::Toolchain => Equipment::default(),
        })
    }

    /// `pkg`'s output hash in `domain` as the caches know it, remembered.
    fn output(&self, domain: Domain, pkg: &str) -> Option<String> {
        let key = (domain, pkg.to_string());
        if let Some(known) = self.outputs.lock().ok()?.get(&key) {
            return known.clone();
        }
        // Unknown while it is being resolved: a cycle (which the recipes' validation refuses
        // anyway) ends as a miss, not a stack overflow.
        self.outputs.lock().ok()?.insert(key.clone(), None);
        let found = self.resolve(domain, pkg);
        self.outputs.lock().ok()?.insert(key, found.clone());
        found
    }

    fn resolve(&self, domain: Domain, pkg: &str) -> Option<String> {
        let sstate = self.run.sstate.as_ref()?;
        let recipe = self.run.recipes.get(pkg)?;
        let ctx = self.run.ctx(domain, &self.log, self.equipment(domain)?);
        let mut deps = BTreeMap::new();
        for d in ctx.sysroot_deps(recipe).ok()? {
            deps.insert(d.name.clone(), self.output(domain, &d.name)?);
        }
        // A native tool a target names is part of the equipment's map; unknown, it is `?` in the
        // signature and the lookup below misses, as it should.
        let plan = TaskPlan::for_recipe(recipe, domain.arch());
        for fetched in variants(recipe) {
            let sigs = freshness::signatures(&ctx, recipe, &plan, &deps, Some(&fetched)).ok()?;
            let sig = sigs.sig(plan.package())?;
            if let Some(out) = sstate.output_of(&sig, pkg) {
                return Some(out);
            }
        }
        None
    }
}

/// The sha256 per source of each way `recipe`'s sources could have been fetched: the primary
/// artifacts first, then every combination with alternatives, at most [`MAX_VARIANTS`].
fn variants(recipe: &Recipe) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    for s in &recipe.sources {
        let choices: Vec<&String> =
            std::iter::once(&s.primary.sha256).chain(s.alternatives.iter().map(|a| &a.artifact.sha256)).collect();
        out = out
            .iter()
            .flat_map(|prefix| {
                choices.iter().map(move |c| {
                    let mut v = prefix.clone();
                    v.push((*c).clone());
                    v
                })
            })
            .take(MAX_VARIANTS)
            .collect();
    }
    out
}

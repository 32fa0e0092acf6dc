//! `ovm build ARCH --image NAME`: an image from an install list (`crate::image`), made of the
//! feed's packages rather than whole recipes.
//!
//! 1. **recipes** — each installed package's recipe (a recipe's name is its runtime package;
//!    `zlib-dev` is zlib's), with what they depend on, built as `ovm build ARCH PKG…` would;
//! 2. **resolve** — from the feed's metadata (`feed::packages`): the install list, then each
//!    package's `Depends` transitively, then (`debug = true`) each runtime package's `-dbg`; a
//!    package excluded but depended on, or one that does not exist (an empty part), is an error
//!    naming it;
//! 3. **layers** — `rootfs/`, each package's part directory (recipe dependency order, then part),
//!    the kernel modules, the overlay; the image QA checks run on them;
//! 4. **postprocess** — with commands, the layers are assembled into a copy, each command runs in
//!    the strict sandbox with that tree read-write at `$ROOTFS` (no network, no host /usr, the
//!    build tools' busybox as its shell), and the image is packed from the result; the manifest
//!    still names each file's package, or `postprocess` for what the commands made or changed;
//! 5. **pack** — into `output/ARCH/images/NAME/` (image and manifest).
//!
//! Several images share packages: they are built once, in the target domain, whichever image
//! asks. A named image keeps its own stamp (`states/ARCH/image.pack-NAME`, the task `pack-NAME`
//! of the image): the default image's inputs (`build::pack_inputs`, each part by its recipe's
//! output hash) and the definition's install list, excludes, debug, tar and postprocess
//! commands; `ovm build --image NAME` repacks it only when one of them changed or what the last
//! pack made is gone.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::arch::Arch;
use crate::feed;
use crate::image::ImageDef;
use crate::layout::{Domain, Part, TaskName};
use crate::pack::{self, Layer, LayerKind};
use crate::project::Project;
use crate::recipe::{Kind, Recipe, RecipeSet};
use crate::signature::Inputs;

use super::build::ImageReport;
use super::ctx::{Ctx, Isolation};
use super::state::StateDir;
use super::EngineError;

/// The recipe of package `name`: a target recipe of that name, else the one whose part it names.
fn recipe_of<'r>(recipes: &'r RecipeSet, name: &str) -> Option<(&'r Recipe, Part)> {
    if let Some(r) = recipes.get(name).filter(|r| r.kind == Kind::Target) {
        return Some((r, Part::Runtime));
    }
    Part::ALL.into_iter().filter(|p| *p != Part::Runtime).find_map(|part| {
        let base = name.strip_suffix(&format!("-{part}"))?;
        recipes.get(base).filter(|r| r.kind == Kind::Target).map(|r| (r, part))
    })
}

/// The recipes to build for `def`: those of its installed packages.
pub(crate) fn recipes_for(def: &ImageDef, recipes: &RecipeSet) -> Result<Vec<String>, EngineError> {
    let mut out = Vec::new();
    for name in &def.install {
        let Some((r, _)) = recipe_of(recipes, name) else {
            return Err(EngineError::ImagePackage {
                image: def.path.clone(),
                package: name.clone(),
                why: "no target recipe makes it (a recipe's name is its runtime package; NAME-dev, -dbg, -doc, \
                      -locale its parts)"
                    .into(),
            });
        };
        if !out.contains(&r.name) {
            out.push(r.name.clone());
        }
    }
    Ok(out)
}

/// A `Depends` entry without its version constraint: `tool (= 1.0)` → `tool`.
fn dependency_name(dep: &str) -> &str {
    dep.split_whitespace().next().unwrap_or(dep)
}

/// The packages `def` installs, resolved against `available` (the feed's packages).
pub(crate) fn resolve<'p>(
    def: &ImageDef,
    available: &'p [feed::Package],
) -> Result<Vec<&'p feed::Package>, EngineError> {
    let by_name: BTreeMap<&str, &feed::Package> = available.iter().map(|p| (p.name.as_str(), p)).collect();
    let err = |package: &str, why: String| EngineError::ImagePackage {
        image: def.path.clone(),
        package: package.into(),
        why,
    };
    let mut chosen: BTreeMap<&str, &feed::Package> = BTreeMap::new();
    let mut todo: Vec<(String, Option<String>)> = def.install.iter().rev().map(|n| (n.clone(), None)).collect();
    while let Some((name, wanted_by)) = todo.pop() {
        if chosen.contains_key(name.as_str()) {
            continue;
        }
        if def.exclude.contains(&name) {
            let by = wanted_by.unwrap_or_default();
            return Err(err(&name, format!("is excluded, but {by} depends on it")));
        }
        let Some(p) = by_name.get(name.as_str()) else {
            return Err(err(&name, "is no package of the built recipes (an empty part makes no package: a static library's runtime part, for one)".into()));
        };
        chosen.insert(p.name.as_str(), p);
        for d in p.depends.iter().rev() {
            todo.push((dependency_name(d).to_string(), Some(p.name.clone())));
        }
    }
    if def.debug {
        let runtime: Vec<&str> = chosen.values().filter(|p| p.part == Part::Runtime).map(|p| p.name.as_str()).collect();
        for r in runtime {
            let dbg = Part::Dbg.package_name(r);
            if let Some(p) = by_name.get(dbg.as_str()).filter(|_| !def.exclude.contains(&dbg)) {
                chosen.insert(p.name.as_str(), p);
            }
        }
    }
    Ok(chosen.into_values().collect())
}

/// What packing the image `def` of `targets` takes: the request, the packages chosen (install
/// order) and the inputs of its signature.
pub(crate) struct NamedPlan {
    req: pack::PackRequest,
    chosen: Vec<feed::Package>,
    pub(crate) inputs: Inputs,
}

/// The plan of the image `def` of `targets` (built, dependency order), whose outputs' hashes are
/// `outputs` (by recipe).
pub(crate) fn plan_named(
    project: &Project,
    arch: Arch,
    def: &ImageDef,
    targets: &[&Recipe],
    outputs: &BTreeMap<String, String>,
) -> Result<NamedPlan, EngineError> {
    let available = feed::packages(project.layout(), arch, targets)?;
    let mut chosen: Vec<feed::Package> = resolve(def, &available)?.into_iter().cloned().collect();
    let rank = |p: &feed::Package| (targets.iter().position(|r| r.name == p.recipe).unwrap_or(usize::MAX), p.part);
    chosen.sort_by_key(rank);
    let opts = pack::PackOptions { compress: def.compress, overlay: def.overlay.clone(), threads: None };
    let mut req = pack::request_for_project(project, arch, &opts)?;
    let by_recipe: BTreeMap<&str, &&Recipe> = targets.iter().map(|r| (r.name.as_str(), r)).collect();
    let mut layers: Vec<Layer> = req.layers.iter().filter(|l| l.kind == LayerKind::Rootfs).cloned().collect();
    for p in &chosen {
        let mut layer = Layer::package(p.name.clone(), p.dir.clone(), false);
        if let Some(r) = by_recipe.get(p.recipe.as_str()) {
            layer = layer.waiving(r.package.waive.keys().copied().collect());
            if p.part == Part::Runtime {
                layer = layer.replacing(r.replaces.clone());
            }
        }
        layers.push(layer);
    }
    layers
        .extend(req.layers.iter().filter(|l| matches!(l.kind, LayerKind::KernelModules | LayerKind::Overlay)).cloned());
    req.layers = layers;
    req.output_dir = project.layout().image_output(arch, &def.name);
    req.tar = def.tar;
    // A part's bytes change only with its recipe's output, whose hash the build recorded.
    let part_of: BTreeMap<&str, &feed::Package> = chosen.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut inputs = super::build::pack_inputs(&req, |name| {
        part_of
            .get(name)
            .and_then(|p| outputs.get(&p.recipe).map(|h| format!("{h} {}", p.part.name())))
            .unwrap_or_default()
    })?;
    inputs
        .set("image.install", def.install.join(","))
        .set("image.exclude", def.exclude.join(","))
        .set("image.debug", def.debug.to_string());
    for (i, cmd) in def.postprocess.iter().enumerate() {
        inputs.set(format!("image.postprocess.{i}"), cmd.as_str());
    }
    Ok(NamedPlan { req, chosen, inputs })
}

/// Packs the image `def` of `targets` (built, dependency order) unless nothing that goes into it
/// changed since its last pack and what that pack made is intact; as the task `pack-NAME` of
/// the image in the context log.
pub(crate) fn pack_named(
    ctx: &Ctx<'_>,
    project: &Project,
    arch: Arch,
    def: &ImageDef,
    targets: &[&Recipe],
    outputs: &BTreeMap<String, String>,
) -> Result<ImageReport, EngineError> {
    let plan = plan_named(project, arch, def, targets, outputs)?;
    let states = StateDir::new(project.layout(), Domain::Target(arch));
    let task = TaskName::pack_image(&def.name);
    if let Some(report) = super::build::current_image(&states, &task, &plan.inputs)? {
        return Ok(report);
    }
    let sig = plan.inputs.signature();
    let NamedPlan { req, chosen, inputs } = plan;
    let (out, took) = super::build::image_task(arch, &task, &sig, ctx.log, ctx.observer, || {
        let dir = req.output_dir.clone();
        let out = pack_plan(ctx, project, arch, def, targets, req, &chosen)?;
        super::contents::write_package_manifest(&dir, arch, &chosen.iter().collect::<Vec<_>>())?;
        Ok(out)
    })?;
    super::build::stamp_pack(&states, &task, inputs, out, took)
}

/// Packs `req` (the layers of `chosen`), running `def`'s postprocess commands first if it has
/// any, and writes the image's SBOM.
fn pack_plan(
    ctx: &Ctx<'_>,
    project: &Project,
    arch: Arch,
    def: &ImageDef,
    targets: &[&Recipe],
    mut req: pack::PackRequest,
    chosen: &[feed::Package],
) -> Result<pack::PackOutcome, EngineError> {
    // The SBOM names each file's recipe (tool-dev's files are tool's) and lists the recipes
    // whose packages the image installs.
    let recipe_of_package: BTreeMap<&str, &str> = chosen.iter().map(|p| (p.name.as_str(), p.recipe.as_str())).collect();
    let recipes: Vec<&Recipe> = targets.iter().copied().filter(|r| chosen.iter().any(|p| p.recipe == r.name)).collect();
    let attribute = |owner: &str| recipe_of_package.get(owner).map_or(owner, |r| r).to_string();
    let sbom_path = req.output_dir.join(crate::layout::SBOM_NAME);
    if def.postprocess.is_empty() {
        let out = pack::pack(&req)?;
        let files = super::contents::layer_files(&out, &req.layers, attribute)?;
        super::contents::write(project, arch, &recipes, files, &out, &sbom_path)?;
        return Ok(out);
    }
    pack::check_layers(&req)?;
    let work = project.layout().work_of(Domain::Target(arch)).join(format!(".image-{}", def.name));
    crate::tree::remove_all(&work)?;
    let tree = work.join("rootfs");
    let before = pack::materialize(&req.layers, &tree)?;
    let log = project.layout().logs(Domain::Target(arch)).join(format!("image-{}", def.name)).join("postprocess.log");
    for (i, cmd) in def.postprocess.iter().enumerate() {
        postprocess(ctx, def, i, cmd, &tree, &log)?;
    }
    let after = pack::owners_after(&tree, &before)?;
    req.layers = vec![Layer::rootfs(&tree)];
    req.owners = Some(after);
    let out = pack::pack(&req)?;
    // After the commands every file is read from the one tree they changed.
    let files = super::contents::image_files(&out, |owner, path| {
        Some((attribute(owner), tree.join(path.trim_start_matches('/'))))
    })?;
    super::contents::write(project, arch, &recipes, files, &out, &sbom_path)?;
    crate::tree::remove_all(&work)?;
    Ok(out)
}

/// Runs one postprocess command over `tree`: in the strict sandbox (or, with `--no-sandbox`, on the
/// host with `$ROOTFS` the tree's path), its output appended to `log`.
fn postprocess(
    ctx: &Ctx<'_>,
    def: &ImageDef,
    index: usize,
    cmd: &str,
    tree: &Path,
    log: &Path,
) -> Result<(), EngineError> {
    if let Some(d) = log.parent() {
        fs::create_dir_all(d).map_err(|source| EngineError::Write { path: d.to_path_buf(), source })?;
    }
    let out = fs::OpenOptions::new()
        .create(true)
        .append(index > 0)
        .write(true)
        .truncate(index == 0)
        .open(log)
        .map_err(|source| EngineError::Write { path: log.to_path_buf(), source })?;
    let err_out = out.try_clone().map_err(|source| EngineError::Write { path: log.to_path_buf(), source })?;
    let tools = ctx.equipment.tools_dir.clone().ok_or_else(|| EngineError::Internal("no build tools".into()))?;
    let epoch = ctx.source_date_epoch.to_string();
    let mut command = match &ctx.isolation {
        Isolation::Sandbox { exe } => {
            let args = vec!["/bin/sh".to_string(), "-e".to_string(), "-c".to_string(), cmd.to_string()];
            let spec = crate::sandbox::SandboxBuilder::new(args)
                .ro_bind(&tools, "/ovm/tools")
                .ro_bind(tools.join("bin/busybox"), "/bin/sh")
                .rw_bind(tree, "/ovm/rootfs")
                .tmpfs("/tmp")
                .cwd("/ovm/rootfs")
                .hostname("ovm")
                .proc_mode(crate::sandbox::ProcMode::chosen(ctx.settings)?)
                .env("PATH", "/ovm/tools/bin")
                .env("ROOTFS", "/ovm/rootfs")
                .env("HOME", "/tmp")
                .env("LC_ALL", "C")
                .env("SOURCE_DATE_EPOCH", &epoch)
                .build()?;
            crate::sandbox::command_with_exe(exe, &spec)?
        }
        Isolation::Host => {
            let mut c = std::process::Command::new(tools.join("bin/sh"));
            c.env_clear()
                .args(["-e", "-c", cmd])
                .current_dir(tree)
                .env("PATH", format!("{}:/usr/bin:/bin", tools.join("bin").display()))
                .env("ROOTFS", tree)
                .env("HOME", "/tmp")
                .env("LC_ALL", "C")
                .env("SOURCE_DATE_EPOCH", &epoch);
            c
        }
    };
    let status = command
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err_out)
        .status()
        .map_err(|source| EngineError::Spawn { what: format!("postprocess of image {}", def.name), source })?;
    if !status.success() {
        return Err(EngineError::Postprocess { image: def.path.clone(), command: cmd.into(), log: log.to_path_buf() });
    }
    Ok(())
}

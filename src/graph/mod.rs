//! `ovm graph build|size|depends ARCH`: pictures where people would rather look than read
//! (Buildroot's `graph-build`, `graph-size` and `graph-depends`; Yocto's buildstats charts),
//! written as self-contained SVG into `output/ARCH/graphs/` by ovm itself — no graphviz needed.
//!
//! * [`timeline`]: every task of the last build per package on a time line, from the context logs,
//!   with the critical path and how many tasks ran at once;
//! * [`sizes`]: the image by package and its largest files, from its manifest;
//! * [`depends`]: the packages and what each needs, from the recipes; also as Graphviz dot.
//!
//! Each reads what earlier commands left and changes nothing but its own picture, written whole
//! (temp file + rename). The same inputs draw the same bytes.

pub mod depends;
pub mod sizes;
pub mod svg;
pub mod timeline;

use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::engine::context_log;
use crate::layout::Domain;
use crate::pack::manifest::{Manifest, ManifestError};
use crate::project::Project;
use crate::recipe::{RecipeError, RecipeSet};

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("no build of {arch} is recorded in {logs}: run `ovm build {arch}` first")]
    NoBuild { arch: Arch, logs: PathBuf },
    #[error("no image manifest at {path}: run `ovm build {arch}` (or `ovm pack {arch}`) first")]
    NoManifest { arch: Arch, path: PathBuf },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Manifest { path: PathBuf, source: ManifestError },
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Which picture; on the command line a `clap::ValueEnum` (`ovm graph build|size|depends`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Graph {
    /// Every task per package on a time line, with the critical path
    Build,
    /// The image by package and its largest files
    Size,
    /// What each package needs (SVG and Graphviz dot)
    Depends,
}

impl Graph {
    /// The picture's file name in `output/ARCH/graphs/`, without extension.
    pub fn name(self) -> &'static str {
        match self {
            Graph::Build => "build",
            Graph::Size => "size",
            Graph::Depends => "depends",
        }
    }
}

/// Draws `graph` for `arch` into `output/ARCH/graphs/`; returns the files written (the SVG first).
pub fn write(project: &Project, arch: Arch, graph: Graph) -> Result<Vec<PathBuf>, GraphError> {
    let layout = project.layout();
    let dir = layout.graphs(arch);
    let svg_path = dir.join(format!("{}.svg", graph.name()));
    match graph {
        Graph::Build => {
            let t = build_timeline(project, arch)?;
            save(&svg_path, &timeline::svg(&t, arch.name()))?;
            Ok(vec![svg_path])
        }
        Graph::Size => {
            let z = sizes::from_manifest(&read_manifest(project, arch)?);
            save(&svg_path, &sizes::svg(&z))?;
            Ok(vec![svg_path])
        }
        Graph::Depends => {
            let d = depends::from_recipes(&RecipeSet::load(project)?, arch.name());
            let dot_path = dir.join(format!("{}.dot", graph.name()));
            save(&svg_path, &depends::svg(&d))?;
            save(&dot_path, &depends::dot(&d))?;
            Ok(vec![svg_path, dot_path])
        }
    }
}

/// The domains one `ovm build ARCH` writes logs for, the target's first.
fn domains_of(arch: Arch) -> Vec<Domain> {
    let mut domains = vec![Domain::Target(arch), Domain::Tools(arch), Domain::Cross(arch), Domain::Toolchain];
    // The gcc toolchain of a foreign target also builds the host's, for `$HOSTCC`.
    if let Some(host) = Arch::host().filter(|h| *h != arch) {
        domains.push(Domain::Cross(host));
    }
    domains
}

/// ARCH's last build, from the context logs of its domains.
pub fn build_timeline(project: &Project, arch: Arch) -> Result<timeline::Timeline, GraphError> {
    let layout = project.layout();
    let mut logs = Vec::new();
    for domain in domains_of(arch) {
        let path = layout.context_log(domain);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(GraphError::Read { path, source }),
        };
        logs.push((domain.dir_name().to_string(), context_log::runs(&text)));
    }
    // A recipe that no longer loads must not hide the build that happened: without the recipes,
    // the critical path follows the phases only.
    let recipes = RecipeSet::load(project).ok();
    let deps = |pkg: &str| recipes.as_ref().and_then(|r| r.get(pkg)).map(|r| r.depends.clone()).unwrap_or_default();
    timeline::from_runs(&logs, &deps).ok_or_else(|| GraphError::NoBuild { arch, logs: layout.logs_root() })
}

fn read_manifest(project: &Project, arch: Arch) -> Result<Manifest, GraphError> {
    let path = project.layout().output(arch).join(crate::pack::MANIFEST_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(GraphError::NoManifest { arch, path }),
        Err(source) => return Err(GraphError::Read { path, source }),
    };
    Manifest::parse(&text).map_err(|source| GraphError::Manifest { path, source })
}

fn save(path: &Path, text: &str) -> Result<(), GraphError> {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::tree::write_atomic(path, text.as_bytes())
    };
    write().map_err(|source| GraphError::Write { path: path.to_path_buf(), source })
}

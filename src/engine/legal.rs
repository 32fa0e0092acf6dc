//! `ovm legal-info ARCH` (Buildroot's `make legal-info`): what a distributor of the image must
//! pass on, per package of the image, in `output/ARCH/legal-info/`:
//!
//! | path | what |
//! |---|---|
//! | `manifest.csv` | package, version, SPDX license, license files, source archives, source site |
//! | `licenses/NAME-VERSION/…` | the license texts the recipe names (`license_files`), as the package step kept them |
//! | `sources/NAME-VERSION/…` | the exact source archives the build used (sha256-checked) and its patches, in order |
//! | `README` | what is here, and each package that names no license file |
//!
//! It reads only committed state (the staged outputs, `sources/`, the recipes): the packages
//! must be built. The directory is written under a temporary name and exchanged whole.

use std::fs;
use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::layout::{Domain, TaskName};
use crate::project::Project;
use crate::recipe::{Artifact, Recipe, RecipeSet};
use crate::tree;

use super::state::StateDir;
use super::EngineError;

/// What `ovm legal-info` wrote.
#[derive(Debug)]
pub struct LegalInfo {
    pub dir: PathBuf,
    pub packages: usize,
    /// Packages whose recipe names no license file.
    pub without_license_files: Vec<String>,
}

/// The bytes of each source of `r` that its `arch` build used: the variant (primary or an
/// alternative) its fetch stamp recorded, else the primary. legal-info ships these and the SBOM
/// names these, so the two never disagree about which archive a package came from.
pub(crate) fn sources_used<'r>(project: &Project, arch: Arch, r: &'r Recipe) -> Vec<&'r Artifact> {
    let states = StateDir::new(project.layout(), Domain::Target(arch));
    let stamp = states.stamp(&r.name, &TaskName::fetch()).ok().flatten();
    let fetched = stamp.as_ref().and_then(|s| s.fetched()).unwrap_or_default();
    r.sources
        .iter()
        .enumerate()
        .map(|(i, s)| fetched.get(i).and_then(|sha| s.artifacts().find(|a| &a.sha256 == sha)).unwrap_or(&s.primary))
        .collect()
}

/// `a` in `sources/`, checked against its sha256.
fn archive(project: &Project, package: &str, a: &Artifact) -> Result<PathBuf, EngineError> {
    let path = project.layout().sources().join(&a.file);
    let missing = || EngineError::LegalSourceMissing { package: package.into(), file: a.file.clone() };
    if !path.is_file() {
        return Err(missing());
    }
    let sha = crate::digest::sha256_file(&path).map_err(|source| EngineError::Read { path: path.clone(), source })?;
    if sha == a.sha256 {
        Ok(path)
    } else {
        Err(missing())
    }
}

/// Where one accepted set of bytes comes from: its first URL, else its Debian or PyPI origin.
pub(crate) fn artifact_site(a: &crate::recipe::Artifact) -> String {
    if let Some(url) = a.urls.first() {
        return url.clone();
    }
    if let Some(d) = &a.debian {
        return format!("Debian source package {} ({})", d.package, d.file);
    }
    if let Some(p) = &a.pypi {
        return format!("PyPI {} {} ({})", p.package, p.version, p.file);
    }
    "NOASSERTION".into()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), EngineError> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|source| EngineError::Write { path: parent.to_path_buf(), source })?;
    }
    fs::copy(from, to).map(drop).map_err(|source| EngineError::Write { path: to.to_path_buf(), source })
}

pub fn legal_info(project: &Project, arch: Arch) -> Result<LegalInfo, EngineError> {
    let recipes = RecipeSet::load(project)?;
    let targets: Vec<&Recipe> = super::build::target_list(project, &recipes, &[])?;
    let layout = project.layout();
    let out_dir = layout.output(arch);
    fs::create_dir_all(&out_dir).map_err(|source| EngineError::Write { path: out_dir.clone(), source })?;
    let tmp = tempfile::Builder::new()
        .prefix(".legal-info.")
        .tempdir_in(&out_dir)
        .map_err(|source| EngineError::Write { path: out_dir.clone(), source })?;
    let mut csv = String::from("package,version,license,license files,source archives,source site\n");
    let mut without = Vec::new();
    for r in &targets {
        let staged = layout.staging(Domain::Target(arch), &r.name);
        if !staged.is_dir() {
            return Err(EngineError::NotBuilt { package: r.name.clone(), arch: arch.name().into() });
        }
        let id = format!("{}-{}", r.name, r.version);
        for rel in &r.license_files {
            let from = layout.staged_licenses(Domain::Target(arch), &r.name).join(rel);
            if !from.is_file() {
                return Err(EngineError::NotBuilt { package: r.name.clone(), arch: arch.name().into() });
            }
            copy(&from, &tmp.path().join("licenses").join(&id).join(rel))?;
        }
        if r.license_files.is_empty() {
            without.push(r.name.clone());
        }
        let used = sources_used(project, arch, r);
        let mut archives = Vec::new();
        for a in &used {
            let path = archive(project, &r.name, a)?;
            copy(&path, &tmp.path().join("sources").join(&id).join(&a.file))?;
            archives.push(a.file.clone());
        }
        for p in &r.patches {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            copy(p, &tmp.path().join("sources").join(&id).join("patches").join(&name))?;
        }
        let site = used.first().map(|a| artifact_site(a)).unwrap_or_default();
        let row = [&r.name, &r.version, &r.license, &r.license_files.join(" "), &archives.join(" "), &site];
        csv.push_str(&row.map(|f| csv_field(f)).join(","));
        csv.push('\n');
    }
    let mut readme = format!(
        "Legal information for the {arch} image of this project ({} packages), written by `ovm legal-info {arch}`.\n\n\
         manifest.csv   one row per package: version, SPDX license, license files, source archives, source site\n\
         licenses/      the license texts each recipe names, as its build's source tree had them\n\
         sources/       the exact source archives and patches each package was built from\n",
        targets.len()
    );
    if !without.is_empty() {
        readme.push_str(&format!(
            "\nThese recipes name no license file (their license is only its SPDX name): {}\n",
            without.join(", ")
        ));
    }
    let werr = |path: PathBuf| move |source| EngineError::Write { path, source };
    fs::write(tmp.path().join("manifest.csv"), csv).map_err(werr(tmp.path().join("manifest.csv")))?;
    fs::write(tmp.path().join("README"), readme).map_err(werr(tmp.path().join("README")))?;
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    fs::set_permissions(tmp.path(), mode).map_err(werr(tmp.path().to_path_buf()))?;
    let dir = layout.legal_info(arch);
    tree::commit(tmp.path(), &dir)?;
    Ok(LegalInfo { dir, packages: targets.len(), without_license_files: without })
}

//! What an image contains, said beside it in three ways (the per-file `manifest.txt` is the
//! pack's own): the package manifest (`write_package_manifest`: package, architecture, version,
//! as OpenEmbedded's image `.manifest`), and the SBOMs: which package each packed file belongs
//! to and where its bytes are (`image_files`), and the sources each recipe's fetch recorded,
//! handed to `crate::sbom`, which writes the SPDX and CycloneDX documents (`write`). Both images
//! use it: the default one (`build`) and a named one (`image`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::arch::Arch;
use crate::project::Project;
use crate::recipe::Recipe;
use crate::tree;

use super::EngineError;

/// The image's regular files (and hard links) for its SBOM, from the manifest `out` wrote: for
/// each, `locate(owner, path)` says which SBOM package it belongs to and where its bytes are on
/// the host (`None`: left out).
pub(super) fn image_files(
    out: &crate::pack::PackOutcome,
    locate: impl Fn(&str, &str) -> Option<(String, std::path::PathBuf)>,
) -> Result<Vec<crate::sbom::ImageFile>, EngineError> {
    let text = std::fs::read_to_string(&out.manifest)
        .map_err(|source| EngineError::Read { path: out.manifest.clone(), source })?;
    let manifest = crate::pack::manifest::Manifest::parse(&text)
        .map_err(|e| EngineError::Internal(format!("{}: {e}", out.manifest.display())))?;
    let mut files = Vec::new();
    for e in &manifest.entries {
        use crate::pack::manifest::EntryType;
        if !matches!(e.kind, EntryType::File | EntryType::Hardlink) {
            continue;
        }
        let path = String::from_utf8_lossy(&e.path).into_owned();
        let Some((owner, source)) = locate(&e.owner, &path) else { continue };
        files.push(crate::sbom::ImageFile { source, path, owner });
    }
    Ok(files)
}

/// Writes `packages.manifest` into `dir` (the image's output directory): the packages the image
/// installs (`crate::feed::image_manifest`).
pub(super) fn write_package_manifest(
    dir: &Path,
    arch: Arch,
    installed: &[&crate::feed::Package],
) -> Result<(), EngineError> {
    let path = dir.join(crate::layout::PACKAGE_MANIFEST_NAME);
    let text = crate::feed::image_manifest(arch, installed);
    tree::write_atomic(&path, text.as_bytes()).map_err(|source| EngineError::Write { path: path.clone(), source })
}

/// [`image_files`] of an image packed from `layers` as they are (no postprocess): each file's
/// bytes are in the layer that owns it, and `recipe_of(layer)` names its SBOM package.
pub(super) fn layer_files(
    out: &crate::pack::PackOutcome,
    layers: &[crate::pack::Layer],
    recipe_of: impl Fn(&str) -> String,
) -> Result<Vec<crate::sbom::ImageFile>, EngineError> {
    let dirs: BTreeMap<&str, &std::path::Path> = layers.iter().map(|l| (l.name.as_str(), l.dir.as_path())).collect();
    image_files(out, |owner, path| {
        dirs.get(owner).map(|dir| (recipe_of(owner), dir.join(path.trim_start_matches('/'))))
    })
}

/// Writes the SPDX document (`crate::sbom`) of the image just packed to `path`, and its CycloneDX
/// twin beside it (`layout::CYCLONEDX_NAME`): `files`, and the sources each of `recipes`' fetch
/// recorded (the primary when a restore from the cache left no fetch stamp).
pub(super) fn write(
    project: &Project,
    arch: Arch,
    recipes: &[&Recipe],
    files: Vec<crate::sbom::ImageFile>,
    out: &crate::pack::PackOutcome,
    path: &std::path::Path,
) -> Result<(), EngineError> {
    let mut sources = BTreeMap::new();
    for r in recipes {
        let used = super::legal::sources_used(project, arch, r)
            .into_iter()
            .map(|a| crate::sbom::SourceUsed {
                file: a.file.clone(),
                sha256: a.sha256.clone(),
                location: super::legal::artifact_site(a),
            })
            .collect();
        sources.insert(r.name.clone(), used);
    }
    let input = crate::sbom::Input {
        arch,
        image_name: out.image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        image_sha256: out.sha256.clone(),
        created: project.source_date_epoch(),
        recipes,
        sources,
        files,
        project: project.root().to_path_buf(),
    };
    let cdx = path.with_file_name(crate::layout::CYCLONEDX_NAME);
    for (to, doc) in
        [(path, crate::sbom::document(&input)?), (cdx.as_path(), crate::sbom::cyclonedx::document(&input)?)]
    {
        tree::write_atomic(to, doc.as_bytes())
            .map_err(|source| EngineError::Write { path: to.to_path_buf(), source })?;
    }
    Ok(())
}

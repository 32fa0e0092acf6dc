//! Writing a spec as an OCI bundle (`config.json` + an empty `rootfs/`), so another runtime — runc,
//! crun — runs the very sandbox ovm would, and its behaviour can be compared with ours.
//!
//! Nothing is translated: the spec ovm runs is already a valid runtime spec. Our runtime builds the
//! root on a fresh tmpfs (annotation `org.ovm.root`); for runc, `root.path` names an empty directory,
//! which it fills with the same mount points, so both show the same files.

use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use super::error::SandboxError;
use super::plan::Plan;
use super::spec::to_json;

/// Write `spec` as a bundle in `dir` (created if missing); returns the path of `config.json`.
/// The root directory must be new or empty, since the sandbox's root starts empty.
pub fn write_bundle(spec: &Spec, dir: &Path) -> Result<PathBuf, SandboxError> {
    Plan::from_spec(spec)?;
    let root = spec.root().as_ref().map_or_else(|| PathBuf::from("rootfs"), |r| r.path().clone());
    if root.is_absolute() || root.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(SandboxError::InvalidSpec(format!(
            "root.path {} must be relative to the bundle directory",
            root.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| SandboxError::io("creating bundle directory", dir, &e))?;
    let rootfs = dir.join(&root);
    std::fs::create_dir_all(&rootfs).map_err(|e| SandboxError::io("creating bundle root", &rootfs, &e))?;
    let mut entries = std::fs::read_dir(&rootfs).map_err(|e| SandboxError::io("reading bundle root", &rootfs, &e))?;
    if entries.next().is_some() {
        return Err(SandboxError::InvalidSpec(format!(
            "bundle root {} is not empty; the sandbox root starts empty",
            rootfs.display()
        )));
    }
    std::fs::set_permissions(&rootfs, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|e| SandboxError::io("setting permissions of", &rootfs, &e))?;

    let config = dir.join("config.json");
    let json = to_json(spec)?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| SandboxError::io("creating a temporary file in", dir, &e))?;
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(|e| SandboxError::io("setting permissions of", tmp.path(), &e))?;
    tmp.write_all(json.as_bytes())
        .and_then(|_| tmp.write_all(b"\n"))
        .map_err(|e| SandboxError::io("writing", tmp.path(), &e))?;
    tmp.persist(&config).map_err(|e| SandboxError::io("renaming into place", &config, &e.error))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::SandboxBuilder;

    #[test]
    fn bundle_holds_the_spec_and_an_empty_root() {
        let dir = tempfile::tempdir().unwrap();
        let spec =
            SandboxBuilder::new(["/bin/busybox", "true"]).ro_bind("/bin/busybox", "/bin/busybox").build().unwrap();
        let config = write_bundle(&spec, dir.path()).unwrap();
        let back: Spec = serde_json::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
        assert_eq!(back, spec);
        assert_eq!(std::fs::read_dir(dir.path().join("rootfs")).unwrap().count(), 0);
    }

    #[test]
    fn a_non_empty_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rootfs/etc")).unwrap();
        let spec = SandboxBuilder::new(["x"]).build().unwrap();
        assert!(write_bundle(&spec, dir.path()).unwrap_err().to_string().contains("not empty"));
    }
}

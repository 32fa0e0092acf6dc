//! The same bill of materials as CycloneDX 1.5 JSON (`sbom.cdx.json` beside the SPDX document),
//! for the tools that read CycloneDX (Dependency-Track, grype, trivy …). Made from the same
//! [`Input`] as the SPDX document, so both say the same thing:
//!
//! | CycloneDX element | what ovm puts there |
//! |---|---|
//! | `serialNumber` | a UUID (version 5 layout) made of the image's sha256 and arch: the same image gives the same document |
//! | `metadata.timestamp`, `.tools` | SOURCE_DATE_EPOCH; ovm and its version |
//! | `metadata.component` (`image`) | the image file, type `operating-system`: its name, sha256 |
//! | component per recipe | type `application`, name, version, description, supplier (the upstream, by homepage), the recipe's SPDX license expression, the sources the build used as `distribution` references with their sha256, its patches under `pedigree`, its files as nested components |
//! | component per other layer | `rootfs`, the overlay (`application`), the kernel modules (`device-driver`): the project's own files |
//! | nested component per image file | type `file`, its path in the image (`./usr/bin/lz4`), SHA-1 and SHA-256 |
//! | `dependencies` | the image on every top component; a recipe on the image recipes it declares |

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::{files_by_owner, hashes, pretty, timestamp, ImageFile, Input, SbomError};

/// A `bom-ref` of a recipe's or layer's component: unique in the document, stable.
fn component_ref(owner: &str) -> String {
    format!("component:{owner}")
}

/// An RFC 4122 UUID for `serialNumber`, derived from the image (the same image, the same
/// document): the first 16 bytes of a sha256, with the version 5 and variant bits set.
fn serial(arch: &str, image_sha256: &str) -> String {
    let d = crate::digest::sha256_hex(format!("ovm cyclonedx {arch} {image_sha256}").as_bytes());
    let mut b: Vec<u8> = (0..16).filter_map(|i| u8::from_str_radix(&d[2 * i..2 * i + 2], 16).ok()).collect();
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::digest::hex(&b);
    format!("urn:uuid:{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// A URL CycloneDX's `iri-reference` accepts and a reader can fetch; a Debian source package or
/// a local path is left out (the SPDX document keeps its words in `sourceInfo`).
fn fetchable(location: &str) -> bool {
    ["http://", "https://", "ftp://", "sftp://"].iter().any(|s| location.starts_with(s))
}

/// The nested `file` components of `files`, in path order, numbered from `*next`.
fn file_components(files: &[&ImageFile], next: &mut usize) -> Result<Vec<Value>, SbomError> {
    let mut out = Vec::new();
    for f in files {
        let (sha1, sha256) = hashes(&f.source)?;
        *next += 1;
        out.push(json!({
            "type": "file",
            "bom-ref": format!("file:{next}"),
            "name": format!(".{}", f.path),
            "hashes": [{"alg": "SHA-1", "content": sha1}, {"alg": "SHA-256", "content": sha256}],
        }));
    }
    Ok(out)
}

/// The CycloneDX 1.5 document of an image, as pretty JSON.
pub fn document(input: &Input<'_>) -> Result<String, SbomError> {
    let by_owner = files_by_owner(&input.files);
    let recipe_names: BTreeSet<&str> = input.recipes.iter().map(|r| r.name.as_str()).collect();
    let mut file_no = 0usize;
    let mut components = Vec::new();
    let mut dependencies = Vec::new();
    for r in input.recipes {
        let reference = component_ref(&r.name);
        let mut c = json!({
            "type": "application",
            "bom-ref": reference,
            "name": r.name,
            "version": r.version,
            "supplier": {"name": format!("{} upstream", r.name)},
            "licenses": [{"expression": r.license}],
        });
        if let Some(d) = &r.description {
            c["description"] = json!(d);
        }
        let mut refs = Vec::new();
        if let Some(h) = r.homepage.as_deref().filter(|h| fetchable(h)) {
            c["supplier"]["url"] = json!([h]);
            refs.push(json!({"type": "website", "url": h}));
        }
        for s in input.sources.get(&r.name).map(Vec::as_slice).unwrap_or_default() {
            if fetchable(&s.location) {
                refs.push(json!({
                    "type": "distribution",
                    "url": s.location,
                    "comment": format!("source archive {}", s.file),
                    "hashes": [{"alg": "SHA-256", "content": s.sha256}],
                }));
            }
        }
        if !refs.is_empty() {
            c["externalReferences"] = json!(refs);
        }
        let mut patches = Vec::new();
        for patch in &r.patches {
            // The patch itself (a project's patches are small), so the document says exactly
            // what was changed; its path under the project as the URL.
            let text = std::fs::read(patch).map_err(|source| SbomError::Read { path: patch.clone(), source })?;
            let rel = patch.strip_prefix(&input.project).unwrap_or(patch);
            patches.push(json!({
                "type": "unofficial",
                "diff": {
                    "url": format!("./{}", rel.display()),
                    "text": {"contentType": "text/x-diff", "content": String::from_utf8_lossy(&text)},
                },
            }));
        }
        if !patches.is_empty() {
            c["pedigree"] = json!({"patches": patches});
        }
        let files =
            file_components(by_owner.get(r.name.as_str()).map(Vec::as_slice).unwrap_or_default(), &mut file_no)?;
        if !files.is_empty() {
            c["components"] = json!(files);
        }
        components.push(c);
        let on: Vec<String> =
            r.depends.iter().filter(|d| recipe_names.contains(d.as_str())).map(|d| component_ref(d)).collect();
        dependencies.push(json!({"ref": component_ref(&r.name), "dependsOn": on}));
    }
    for (owner, files) in by_owner.iter().filter(|(o, _)| !recipe_names.contains(**o)) {
        // The kernel modules' layer: what it holds is under /lib/modules.
        let kind =
            if files.iter().any(|f| f.path.starts_with("/lib/modules/")) { "device-driver" } else { "application" };
        let files = file_components(files, &mut file_no)?;
        components.push(json!({
            "type": kind,
            "bom-ref": component_ref(owner),
            "name": owner,
            "description": "files of the project itself (the rootfs/ skeleton, the overlay, the kernel modules)",
            "components": files,
        }));
        dependencies.push(json!({"ref": component_ref(owner), "dependsOn": []}));
    }
    let top: Vec<&Value> = components.iter().map(|c| &c["bom-ref"]).collect();
    dependencies.insert(0, json!({"ref": "image", "dependsOn": top}));
    let doc = json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial(input.arch.name(), &input.image_sha256),
        "version": 1,
        "metadata": {
            "timestamp": timestamp(input.created),
            "tools": {"components": [{"type": "application", "name": "ovm", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {
                "type": "operating-system",
                "bom-ref": "image",
                "name": input.image_name,
                "version": input.image_sha256[..12].to_string(),
                "description": format!("initramfs for {}", input.arch.name()),
                "hashes": [{"alg": "SHA-256", "content": input.image_sha256}],
            },
        },
        "components": components,
        "dependencies": dependencies,
    });
    Ok(pretty(&doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serial_number_is_an_rfc_4122_uuid_fixed_by_the_image() {
        let a = serial("x86_64", "ab".repeat(32).as_str());
        assert_eq!(a, serial("x86_64", "ab".repeat(32).as_str()));
        assert_ne!(a, serial("aarch64", "ab".repeat(32).as_str()));
        let uuid = a.strip_prefix("urn:uuid:").expect("urn:uuid: prefix");
        let groups: Vec<&str> = uuid.split('-').collect();
        assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(groups[2].starts_with('5'), "version 5: {uuid}");
        assert!(matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'), "RFC 4122 variant: {uuid}");
    }

    #[test]
    fn only_network_locations_become_references() {
        assert!(fetchable("https://busybox.net/downloads/busybox-1.35.0.tar.bz2"));
        assert!(!fetchable("debian source package busybox"));
        assert!(!fetchable("/work/sources/busybox-1.35.0.tar.bz2"));
    }
}

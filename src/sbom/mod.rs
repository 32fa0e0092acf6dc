//! The image's software bill of materials: an SPDX 2.3 JSON document
//! (`output/ARCH/sbom.spdx.json`, written with the image), and the same as CycloneDX 1.5
//! ([`cyclonedx`], `sbom.cdx.json` beside it).
//!
//! | SPDX element | what ovm puts there |
//! |---|---|
//! | document | `SPDX-2.3`, data license `CC0-1.0`, a namespace made of the image's sha256 (unique per image, the same for the same image), created at SOURCE_DATE_EPOCH by `Tool: ovm-VERSION` |
//! | package `SPDXRef-Image` | the image file: its name and sha256; the document DESCRIBES it |
//! | package per recipe | name, version, supplier (the upstream, by its homepage), download location, the recipe's SPDX license as declared and concluded, its files (verification code over their SHA1s); the image CONTAINS it, it CONTAINS its files, DEPENDS_ON the image packages it declares |
//! | package per source | the archive the build used: file name, download location, sha256, purpose SOURCE; the recipe's package is GENERATED_FROM it |
//! | file per patch | its path under `patches/`, SHA1 and sha256; the recipe's package is GENERATED_FROM it |
//! | package per other layer | `rootfs`, the overlay, the kernel modules: the project's own files, license NOASSERTION |
//! | file per image file | its path in the image (`./usr/bin/lz4`), SHA1 and sha256 |
//!
//! Everything is derived from the recipes, the fetched sources and the files packed, so the same
//! image gives the same document, byte for byte (keys sorted, arrays in path or recipe order).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::arch::Arch;
use crate::recipe::Recipe;

pub mod cyclonedx;

#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// A regular file of the image.
#[derive(Debug, Clone)]
pub struct ImageFile {
    /// Its path in the image (`/usr/bin/lz4`).
    pub path: String,
    /// The layer it came from: a package's name, `rootfs`, `overlay` …
    pub owner: String,
    /// Where its bytes are on the host.
    pub source: PathBuf,
}

/// A source archive a recipe was built from.
#[derive(Debug, Clone)]
pub struct SourceUsed {
    pub file: String,
    pub sha256: String,
    pub location: String,
}

/// Everything the document says.
pub struct Input<'a> {
    pub arch: Arch,
    pub image_name: String,
    pub image_sha256: String,
    pub created: u64,
    /// The image's recipes, dependency order.
    pub recipes: &'a [&'a Recipe],
    /// Per recipe, the sources its build used.
    pub sources: BTreeMap<String, Vec<SourceUsed>>,
    pub files: Vec<ImageFile>,
    /// The project root: patches are named relative to it.
    pub project: PathBuf,
}

/// SPDX identifiers allow letters, digits, `.` and `-`.
fn spdx_id(kind: &str, name: &str) -> String {
    let clean: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect();
    format!("SPDXRef-{kind}-{clean}")
}

fn hashes(path: &PathBuf) -> Result<(String, String), SbomError> {
    let err = |source| SbomError::Read { path: path.clone(), source };
    let mut f = File::open(path).map_err(err)?;
    let (mut s1, mut s256) = (Sha1::new(), Sha256::new());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        s1.update(&buf[..n]);
        s256.update(&buf[..n]);
    }
    Ok((crate::digest::hex(&s1.finalize()), crate::digest::hex(&s256.finalize())))
}

fn checksums(sha1: &str, sha256: &str) -> Value {
    json!([{"algorithm": "SHA1", "checksumValue": sha1}, {"algorithm": "SHA256", "checksumValue": sha256}])
}

/// A download location as SPDX's grammar has it (a URL of a network protocol, or a VCS location);
/// anything else (`file://`, a Debian source package) is NOASSERTION, its words kept in
/// `sourceInfo`.
fn download_location(location: &str) -> &str {
    let schemes = ["http://", "https://", "ftp://", "sftp://", "git+", "svn+", "hg+", "bzr+"];
    if schemes.iter().any(|s| location.starts_with(s)) {
        location
    } else {
        "NOASSERTION"
    }
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to})
}

/// The supplier of a recipe's package, for NTIA's minimum elements: its upstream, by homepage.
fn supplier(r: &Recipe) -> String {
    match &r.homepage {
        Some(h) => format!("Organization: {} upstream ({h})", r.name),
        None => format!("Organization: {} upstream", r.name),
    }
}

/// RFC 3339 in UTC, as SPDX's `created` wants it.
fn timestamp(epoch: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch)).to_string()
}

/// The SPDX 2.3 document of an image, as pretty JSON.
pub fn document(input: &Input<'_>) -> Result<String, SbomError> {
    let mut packages = Vec::new();
    let mut files = Vec::new();
    let mut rels = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image")];
    packages.push(json!({
        "SPDXID": "SPDXRef-Image",
        "name": input.image_name,
        "versionInfo": input.image_sha256[..12].to_string(),
        "supplier": "Organization: the project that built this image with ovm",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "checksums": [{"algorithm": "SHA256", "checksumValue": input.image_sha256}],
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "OPERATING-SYSTEM",
        "comment": format!("initramfs for {}", input.arch.name()),
    }));
    // The image's files, by owner; each owner that is not a recipe is a package of its own.
    let by_owner = files_by_owner(&input.files);
    let recipe_names: BTreeSet<&str> = input.recipes.iter().map(|r| r.name.as_str()).collect();
    let mut file_no = 0usize;
    let mut package_files =
        |owner: &str, rels: &mut Vec<Value>, files: &mut Vec<Value>| -> Result<(Vec<String>, String), SbomError> {
            let mut ids = Vec::new();
            let mut sha1s = Vec::new();
            let pkg_id = spdx_id("Package", owner);
            for f in by_owner.get(owner).map(Vec::as_slice).unwrap_or_default() {
                let (sha1, sha256) = hashes(&f.source)?;
                file_no += 1;
                let id = format!("SPDXRef-File-{file_no}");
                files.push(json!({
                    "SPDXID": id,
                    "fileName": format!(".{}", f.path),
                    "checksums": checksums(&sha1, &sha256),
                    "licenseConcluded": "NOASSERTION",
                    "copyrightText": "NOASSERTION",
                }));
                rels.push(relationship(&pkg_id, "CONTAINS", &id));
                ids.push(id);
                sha1s.push(sha1);
            }
            // SPDX 2.3 7.9: SHA1 over the sorted SHA1s of the package's files, concatenated.
            sha1s.sort();
            let code = crate::digest::hex(&Sha1::digest(sha1s.concat().as_bytes()));
            Ok((ids, code))
        };
    for r in input.recipes {
        let id = spdx_id("Package", &r.name);
        let (file_ids, code) = package_files(&r.name, &mut rels, &mut files)?;
        let used = input.sources.get(&r.name).cloned().unwrap_or_default();
        let mut p = json!({
            "SPDXID": id,
            "name": r.name,
            "versionInfo": r.version,
            "supplier": supplier(r),
            "downloadLocation": used.first().map_or("NOASSERTION", |s| download_location(&s.location)),
            "licenseConcluded": r.license,
            "licenseDeclared": r.license,
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "APPLICATION",
        });
        if let Some(h) = &r.homepage {
            p["homepage"] = json!(h);
        }
        if let Some(d) = &r.description {
            p["summary"] = json!(d);
        }
        if file_ids.is_empty() {
            p["filesAnalyzed"] = json!(false);
        } else {
            p["filesAnalyzed"] = json!(true);
            p["hasFiles"] = json!(file_ids);
            p["packageVerificationCode"] = json!({"packageVerificationCodeValue": code});
        }
        packages.push(p);
        rels.push(relationship("SPDXRef-Image", "CONTAINS", &id));
        for d in r.depends.iter().filter(|d| recipe_names.contains(d.as_str())) {
            rels.push(relationship(&id, "DEPENDS_ON", &spdx_id("Package", d)));
        }
        for (i, s) in used.iter().enumerate() {
            let sid = spdx_id("Source", &format!("{}-{i}", r.name));
            packages.push(json!({
                "SPDXID": sid,
                "name": s.file,
                "versionInfo": r.version,
                "supplier": supplier(r),
                "downloadLocation": download_location(&s.location),
                "sourceInfo": format!("fetched from {}", s.location),
                "filesAnalyzed": false,
                "checksums": [{"algorithm": "SHA256", "checksumValue": s.sha256}],
                "licenseConcluded": r.license,
                "licenseDeclared": r.license,
                "copyrightText": "NOASSERTION",
                "primaryPackagePurpose": "SOURCE",
            }));
            rels.push(relationship(&id, "GENERATED_FROM", &sid));
        }
        for (i, patch) in r.patches.iter().enumerate() {
            let (sha1, sha256) = hashes(patch)?;
            let pid = spdx_id("Patch", &format!("{}-{i}", r.name));
            let rel = patch.strip_prefix(&input.project).unwrap_or(patch);
            files.push(json!({
                "SPDXID": pid,
                "fileName": format!("./{}", rel.display()),
                "checksums": checksums(&sha1, &sha256),
                "licenseConcluded": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "fileTypes": ["SOURCE"],
            }));
            rels.push(relationship(&id, "GENERATED_FROM", &pid));
        }
    }
    let others: Vec<String> = by_owner.keys().filter(|o| !recipe_names.contains(**o)).map(|o| o.to_string()).collect();
    for owner in others {
        let id = spdx_id("Package", &owner);
        let (file_ids, code) = package_files(&owner, &mut rels, &mut files)?;
        packages.push(json!({
            "SPDXID": id,
            "name": owner,
            "versionInfo": code[..12].to_string(),
            "supplier": "Organization: the project that built this image with ovm",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": true,
            "hasFiles": file_ids,
            "packageVerificationCode": {"packageVerificationCodeValue": code},
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "comment": "files of the project itself (the rootfs/ skeleton, the overlay, the kernel modules)",
        }));
        rels.push(relationship("SPDXRef-Image", "CONTAINS", &id));
    }
    let doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}-{}", input.image_name, input.arch.name()),
        "documentNamespace": format!("https://ovm.invalid/spdx/{}/{}", input.arch.name(), input.image_sha256),
        "creationInfo": {
            "created": timestamp(input.created),
            "creators": [format!("Tool: ovm-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "files": files,
        "relationships": rels,
    });
    Ok(pretty(&doc))
}

/// A document as written: pretty JSON (keys sorted, as serde_json's map keeps them), one
/// trailing newline.
fn pretty(doc: &Value) -> String {
    let mut text = serde_json::to_string_pretty(doc).unwrap_or_default();
    text.push('\n');
    text
}

/// The image's files by the layer that owns them (a recipe's package, `rootfs` …).
fn files_by_owner(files: &[ImageFile]) -> BTreeMap<&str, Vec<&ImageFile>> {
    let mut by_owner: BTreeMap<&str, Vec<&ImageFile>> = BTreeMap::new();
    for f in files {
        by_owner.entry(f.owner.as_str()).or_default().push(f);
    }
    by_owner
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_hold_only_what_spdx_allows_and_time_is_rfc3339() {
        assert_eq!(spdx_id("Package", "util-linux"), "SPDXRef-Package-util-linux");
        assert_eq!(spdx_id("Package", "[kernel]"), "SPDXRef-Package--kernel-");
        assert_eq!(spdx_id("Package", "g++_x"), "SPDXRef-Package-g---x");
        assert_eq!(timestamp(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(download_location("https://zlib.net/z.tar.gz"), "https://zlib.net/z.tar.gz");
        assert_eq!(download_location("file:///tmp/z.tar.gz"), "NOASSERTION");
    }
}

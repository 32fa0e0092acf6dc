//! The package feed (OpenWrt's `bin/packages/ARCH/`, OpenEmbedded's `deploy/ipk/`): every split
//! package of the image's target packages as an `.ipk`, in `output/ARCH/feed/` with a `Packages`
//! index and its `Packages.gz`, as opkg reads them.
//!
//! | piece            | what it is                                                                  |
//! |------------------|-----------------------------------------------------------------------------|
//! | `NAME_VERSION_ARCH.ipk` | an `ar` archive: `debian-binary` (`2.0`), `control.tar.gz`, `data.tar.gz` — the layout dpkg and opkg both read |
//! | `control`        | Package, Version, Depends, Source, License, Architecture, Installed-Size (bytes, as opkg counts), Homepage, Description |
//! | `Packages`       | each package's control fields plus Filename, Size, SHA256sum, in name order  |
//!
//! A part with no files is no package (OpenEmbedded's default): a static library's runtime part
//! is empty. Runtime dependencies are the declared dependencies that have a runtime package and
//! the packages providing a `DT_NEEDED` library of one of its programs; a `-dev`, `-dbg`, `-doc`
//! or `-locale` package depends on its runtime package at the same version, and a `-dev` on the
//! `-dev` packages of the declared dependencies too.
//!
//! Every byte is a function of the staged packages and SOURCE_DATE_EPOCH: the tar entries are
//! sorted and owned by 0:0 with that time and the image's modes, whatever the umask of the build
//! (`tree::archive_at`, `Modes::Normalised`), the gzip headers hold no name and no time, the `ar`
//! headers no time either. The feed is written to a temporary directory and
//! exchanged with the old one whole, so a reader sees one feed or the other.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::layout::{Domain, Layout, Part};
use crate::listing::Entry;
use crate::recipe::Recipe;
use crate::tree;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Tree(#[from] tree::TreeError),
    #[error("{}: {source}", path.display())]
    Elf { path: PathBuf, source: crate::elf::ElfError },
}

/// One package of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    /// The recipe it comes from (`Source:`).
    pub recipe: String,
    pub version: String,
    pub part: Part,
    pub license: String,
    pub description: String,
    pub homepage: Option<String>,
    pub depends: Vec<String>,
    /// Its files: the staged part directory.
    pub dir: PathBuf,
    /// The bytes of its regular files.
    pub installed_size: u64,
}

/// An image's package manifest, as OpenEmbedded writes `IMAGE.manifest`: one line per package
/// the image installs, `NAME ARCH VERSION` (the feed's Package, Architecture and Version), in
/// name order; a package listed twice is listed once.
pub fn image_manifest(arch: Arch, installed: &[&Package]) -> String {
    let lines: std::collections::BTreeSet<String> =
        installed.iter().map(|p| format!("{} {} {}\n", p.name, arch.name(), p.version)).collect();
    lines.into_iter().collect()
}

/// What each part's description adds to its recipe's.
fn part_words(part: Part) -> &'static str {
    match part {
        Part::Runtime => "",
        Part::Dev => " (development files)",
        Part::Dbg => " (debug info)",
        Part::Doc => " (documentation)",
        Part::Locale => " (translations)",
    }
}

/// The regular files and links below `dir`, relative, in byte order.
fn files(dir: &Path) -> Result<Vec<Entry>, FeedError> {
    let all = crate::listing::entries(dir).map_err(|e| FeedError::Read { path: e.path, source: e.source })?;
    Ok(all.into_iter().filter(|e| !e.meta.is_dir()).collect())
}

/// A shared library's file name, when `rel` is one in a library directory.
fn library_name(rel: &str) -> Option<&str> {
    let (dir, name) = rel.rsplit_once('/')?;
    let in_lib_dir = ["lib", "usr/lib"].contains(&dir);
    (in_lib_dir && name.starts_with("lib") && name.contains(".so")).then_some(name)
}

/// The feed's packages for the target packages `recipes` (dependency order) of `arch`.
pub fn packages(layout: &Layout, arch: Arch, recipes: &[&Recipe]) -> Result<Vec<Package>, FeedError> {
    let domain = Domain::Target(arch);
    let mut found: Vec<(Package, Vec<Entry>)> = Vec::new();
    for r in recipes {
        for part in Part::ALL {
            let dir = layout.staged_part(domain, &r.name, part);
            if !dir.is_dir() {
                continue;
            }
            let list = files(&dir)?;
            if list.is_empty() {
                continue;
            }
            let installed_size = list.iter().filter(|e| e.meta.is_file()).map(|e| e.meta.len()).sum();
            let base = r.description.clone().unwrap_or_else(|| r.name.clone());
            found.push((
                Package {
                    name: part.package_name(&r.name),
                    recipe: r.name.clone(),
                    version: r.version.clone(),
                    part,
                    license: r.license.clone(),
                    description: format!("{base}{}", part_words(part)),
                    homepage: r.homepage.clone(),
                    depends: Vec::new(),
                    dir,
                    installed_size,
                },
                list,
            ));
        }
    }
    let names: BTreeSet<String> = found.iter().map(|(p, _)| p.name.clone()).collect();
    let mut provider: BTreeMap<String, String> = BTreeMap::new();
    for (p, list) in &found {
        if p.part == Part::Runtime {
            for e in list {
                if let Some(lib) = library_name(&e.rel) {
                    provider.entry(lib.to_string()).or_insert_with(|| p.name.clone());
                }
            }
        }
    }
    let by_recipe: BTreeMap<&str, &Recipe> = recipes.iter().map(|r| (r.name.as_str(), *r)).collect();
    let mut out = Vec::new();
    for (mut p, list) in found {
        let mut deps = BTreeSet::new();
        let declared = by_recipe.get(p.recipe.as_str()).map(|r| r.depends.as_slice()).unwrap_or_default();
        match p.part {
            Part::Runtime => {
                deps.extend(declared.iter().filter(|d| names.contains(*d)).cloned());
                for Entry { path, .. } in list.iter().filter(|e| e.meta.is_file()) {
                    let data = fs::read(path).map_err(|source| FeedError::Read { path: path.clone(), source })?;
                    if let Some(f) =
                        crate::elf::read(&data).map_err(|source| FeedError::Elf { path: path.clone(), source })?
                    {
                        deps.extend(f.needed.iter().filter_map(|n| provider.get(n)).filter(|d| **d != p.name).cloned());
                    }
                }
            }
            part => {
                if names.contains(&p.recipe) {
                    deps.insert(format!("{} (= {})", p.recipe, p.version));
                }
                if part == Part::Dev {
                    let devs = declared.iter().map(|d| Part::Dev.package_name(d)).filter(|d| names.contains(d));
                    deps.extend(devs);
                }
            }
        }
        p.depends = deps.into_iter().collect();
        out.push(p);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The control file of `p`.
pub fn control(p: &Package, arch: Arch) -> String {
    let mut c = format!("Package: {}\nVersion: {}\n", p.name, p.version);
    if !p.depends.is_empty() {
        c.push_str(&format!("Depends: {}\n", p.depends.join(", ")));
    }
    c.push_str(&format!("Source: {}\nLicense: {}\nArchitecture: {}\n", p.recipe, p.license, arch.name()));
    c.push_str(&format!("Installed-Size: {}\n", p.installed_size));
    if let Some(h) = &p.homepage {
        c.push_str(&format!("Homepage: {h}\n"));
    }
    c.push_str(&format!("Description: {}\n", p.description.replace('\n', " ")));
    c
}

/// The file name of `p`'s `.ipk`.
pub fn file_name(p: &Package, arch: Arch) -> String {
    format!("{}_{}_{}.ipk", p.name, p.version, arch.name())
}

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    // No name, no time (mtime 0) and a fixed level: the same bytes in, the same bytes out.
    let mut gz = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::new(9));
    gz.write_all(data)?;
    gz.finish()
}

/// One `ar` member: a 60-byte header (name, mtime 0, owner 0:0, mode 0644, size), the data, and
/// a newline to an even offset.
fn ar_member(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    out.extend_from_slice(format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", 0, 0, 0, 100644, data.len()).as_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(b'\n');
    }
}

/// The `.ipk` of `p`.
pub fn ipk(p: &Package, arch: Arch, mtime: u64) -> Result<Vec<u8>, FeedError> {
    let werr = |source| FeedError::Write { path: p.dir.clone(), source };
    let mut data_tar = Vec::new();
    tree::archive_at(&p.dir, &mut data_tar, mtime, tree::Modes::Normalised)?;
    let control_dir = tempfile::tempdir().map_err(werr)?;
    fs::write(control_dir.path().join("control"), control(p, arch)).map_err(werr)?;
    let mut control_tar = Vec::new();
    tree::archive_at(control_dir.path(), &mut control_tar, mtime, tree::Modes::Normalised)?;
    let mut out = b"!<arch>\n".to_vec();
    ar_member(&mut out, "debian-binary", b"2.0\n");
    ar_member(&mut out, "control.tar.gz", &gzip(&control_tar).map_err(werr)?);
    ar_member(&mut out, "data.tar.gz", &gzip(&data_tar).map_err(werr)?);
    Ok(out)
}

/// What [`write`] made: each package with its file's name, size and sha256.
#[derive(Debug, Clone)]
pub struct Written {
    pub dir: PathBuf,
    pub packages: Vec<(Package, String, u64, String)>,
}

/// Writes the feed of `packages` to `dir` (replaced whole).
pub fn write(packages: &[Package], arch: Arch, dir: &Path, mtime: u64) -> Result<Written, FeedError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FeedError::Write { path, source }
    };
    fs::create_dir_all(parent).map_err(werr(parent))?;
    let tmp = tempfile::Builder::new().prefix(".feed.").tempdir_in(parent).map_err(werr(parent))?;
    let mut index = String::new();
    let mut written = Vec::new();
    for p in packages {
        let bytes = ipk(p, arch, mtime)?;
        let name = file_name(p, arch);
        let path = tmp.path().join(&name);
        fs::write(&path, &bytes).map_err(werr(&path))?;
        let sha = crate::digest::sha256_hex(&bytes);
        index.push_str(&control(p, arch));
        index.push_str(&format!("Filename: {name}\nSize: {}\nSHA256sum: {sha}\n\n", bytes.len()));
        written.push((p.clone(), name, bytes.len() as u64, sha));
    }
    let index_path = tmp.path().join("Packages");
    fs::write(&index_path, &index).map_err(werr(&index_path))?;
    let gz_path = tmp.path().join("Packages.gz");
    fs::write(&gz_path, gzip(index.as_bytes()).map_err(werr(&gz_path))?).map_err(werr(&gz_path))?;
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    fs::set_permissions(tmp.path(), mode).map_err(werr(tmp.path()))?;
    // The exchange leaves the old feed at the temporary name, which the TempDir then removes.
    tree::commit(tmp.path(), dir)?;
    Ok(Written { dir: dir.to_path_buf(), packages: written })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(dir: &Path) -> Package {
        Package {
            name: "tool-dev".into(),
            recipe: "tool".into(),
            version: "1.0".into(),
            part: Part::Dev,
            license: "MIT".into(),
            description: "a tool (development files)".into(),
            homepage: None,
            depends: vec!["tool (= 1.0)".into()],
            dir: dir.to_path_buf(),
            installed_size: 3,
        }
    }

    #[test]
    fn the_image_manifest_is_one_line_per_package_in_name_order() {
        let d = Path::new("/nonexistent");
        let dev = pkg(d);
        let runtime = Package { name: "tool".into(), part: Part::Runtime, ..pkg(d) };
        let other = Package { name: "busybox".into(), version: "1.35.0".into(), ..pkg(d) };
        let text = image_manifest(Arch::Aarch64, &[&runtime, &dev, &other, &runtime]);
        assert_eq!(text, "busybox aarch64 1.35.0\ntool aarch64 1.0\ntool-dev aarch64 1.0\n");
    }

    #[test]
    fn an_ipk_is_an_ar_archive_of_three_members_and_the_same_twice() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("usr/include")).unwrap();
        fs::write(d.path().join("usr/include/t.h"), "t;\n").unwrap();
        let a = ipk(&pkg(d.path()), Arch::X86_64, 1_700_000_000).unwrap();
        assert!(a.starts_with(b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n"));
        let text = String::from_utf8_lossy(&a);
        assert!(text.contains("control.tar.gz") && text.contains("data.tar.gz"));
        assert_eq!(a, ipk(&pkg(d.path()), Arch::X86_64, 1_700_000_000).unwrap());
        let c = control(&pkg(d.path()), Arch::X86_64);
        assert_eq!(
            c,
            "Package: tool-dev\nVersion: 1.0\nDepends: tool (= 1.0)\nSource: tool\nLicense: MIT\n\
             Architecture: x86_64\nInstalled-Size: 3\nDescription: a tool (development files)\n"
        );
    }

    /// Built under another umask, the same package has other permission bits on disk; its .ipk is
    /// the same (the repro test caught a feed that differed between a root and a user build).
    #[test]
    fn an_ipk_does_not_depend_on_the_umask_of_the_build() {
        use std::os::unix::fs::PermissionsExt;
        let make = |file_mode: u32, dir_mode: u32| {
            let d = tempfile::tempdir().unwrap();
            fs::create_dir_all(d.path().join("usr/bin")).unwrap();
            fs::write(d.path().join("usr/bin/t"), "#!/bin/sh\n").unwrap();
            fs::write(d.path().join("usr/bin/data"), "d").unwrap();
            fs::set_permissions(d.path().join("usr/bin/t"), fs::Permissions::from_mode(file_mode | 0o100)).unwrap();
            fs::set_permissions(d.path().join("usr/bin/data"), fs::Permissions::from_mode(file_mode)).unwrap();
            fs::set_permissions(d.path().join("usr/bin"), fs::Permissions::from_mode(dir_mode)).unwrap();
            let bytes = ipk(&pkg(d.path()), Arch::X86_64, 1).unwrap();
            (d, bytes)
        };
        let (_a, a) = make(0o644, 0o755);
        let (_b, b) = make(0o664, 0o775);
        assert!(a == b, "the umask changed the package");
    }

    #[test]
    fn library_names_are_those_in_library_directories() {
        assert_eq!(library_name("usr/lib/libz.so.1"), Some("libz.so.1"));
        assert_eq!(library_name("lib/libc.so"), Some("libc.so"));
        assert_eq!(library_name("usr/share/libz.so.1"), None);
        assert_eq!(library_name("usr/lib/notalib.so"), None);
    }
}

//! QA checks on what a package installs (after OpenEmbedded's insane.bbclass): each finding names
//! the file and the reason, and fails the package (or the image) unless its recipe waives that
//! check by name, with a reason (`[package.waive] rpath = "why"`).
//!
//! | check         | where        | trips on                                                             |
//! |---------------|--------------|----------------------------------------------------------------------|
//! | `host-path`   | package      | the project's path or a build sandbox path (`/ovm/build` …) inside a file or a link |
//! | `arch`        | package      | an ELF file of another machine than the target's                     |
//! | `rpath`       | package      | an ELF with RPATH or RUNPATH: the image's loader searches /lib and /usr/lib |
//! | `setuid`      | package      | a file a step made setuid or setgid (the bits are cleared; only the device table grants them) |
//! | `wrong-place` | package      | files under `usr/etc`, `usr/local`, `usr/var`, `tmp`, `home`, `run`, `proc`, `sys` |
//! | `interpreter` | image        | a dynamically linked ELF whose loader (`PT_INTERP`) the image lacks   |
//! | `libraries`   | image        | a `DT_NEEDED` library found in none of the image's library dirs        |
//! | `shebang`     | image        | a script whose `#!` interpreter the image lacks                       |
//! | `license-file`| package      | a file the recipe's `license_files` names that the source tree lacks  |
//!
//! The package checks read the staged parts other than `dbg`, and of an ELF file or a static
//! library only what is loaded at run time: debug info names its sources by their build paths,
//! which is what it is for. The image checks need the whole image, so `pack`
//! runs them on the assembled tree and charges a finding to the package the file came from.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::elf::{self, ElfType};
use crate::layout::Part;

#[derive(Debug, thiserror::Error)]
pub enum QaError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    Elf { path: PathBuf, source: elf::ElfError },
}

/// One QA check, by the name a recipe waives it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    HostPath,
    Arch,
    Rpath,
    Setuid,
    WrongPlace,
    Interpreter,
    Libraries,
    Shebang,
    LicenseFile,
}

impl Check {
    pub const ALL: [Check; 9] = [
        Check::HostPath,
        Check::Arch,
        Check::Rpath,
        Check::Setuid,
        Check::WrongPlace,
        Check::Interpreter,
        Check::Libraries,
        Check::Shebang,
        Check::LicenseFile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::HostPath => "host-path",
            Check::Arch => "arch",
            Check::Rpath => "rpath",
            Check::Setuid => "setuid",
            Check::WrongPlace => "wrong-place",
            Check::Interpreter => "interpreter",
            Check::Libraries => "libraries",
            Check::Shebang => "shebang",
            Check::LicenseFile => "license-file",
        }
    }

    pub fn parse(s: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.name() == s)
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a check found: the file (relative to the package part, or the image's absolute path) and
/// why it is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: Check,
    pub file: String,
    pub reason: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} [{}]", self.file, self.reason, self.check)
    }
}

/// Directories no package installs into: `usr/etc` and friends are the `--prefix=/usr` mistakes,
/// the others are the running system's, made at boot or by a person.
const WRONG_PLACES: &[&str] = &["usr/etc", "usr/local", "usr/var", "usr/tmp", "tmp", "home", "run", "proc", "sys"];

/// The sandbox paths a build could bake into what it installs.
pub const BUILD_PATHS: &[&str] = &[
    "/ovm/build",
    "/ovm/src",
    "/ovm/dest",
    "/ovm/sysroot",
    "/ovm/toolchain",
    "/ovm/tools",
    "/ovm/native",
    "/ovm/files",
    "/ovm/cache",
];

/// What the package checks compare against.
pub struct PackageContext<'a> {
    /// The target's `e_machine`.
    pub machine: u16,
    /// The project's absolute path (a `--no-sandbox` build sees it).
    pub project: &'a Path,
}

impl PackageContext<'_> {
    fn needles(&self) -> Vec<(Vec<u8>, String)> {
        let mut out: Vec<(Vec<u8>, String)> = BUILD_PATHS
            .iter()
            .map(|p| (p.as_bytes().to_vec(), format!("`{p}`, a path of the build sandbox")))
            .collect();
        let project = self.project.to_string_lossy();
        // A project at `/` or `/p` would match everything: such a short path says nothing.
        if project.len() > 4 {
            out.push((project.as_bytes().to_vec(), format!("`{project}`, the project's path on the build host")));
        }
        out
    }
}

/// The package checks over a staged output (`staged` holds the part directories); a finding names
/// the file by its path in the image (`/usr/bin/x`), and its part when that is not the runtime
/// one (`/usr/lib/pkgconfig/x.pc (dev)`).
pub fn check_package(staged: &Path, cx: &PackageContext<'_>) -> Result<Vec<Finding>, QaError> {
    let needles = cx.needles();
    let mut out = Vec::new();
    for part in Part::ALL.into_iter().filter(|p| *p != Part::Dbg) {
        let root = staged.join(part.name());
        if !root.is_dir() {
            continue;
        }
        let listed = crate::listing::entries(&root).map_err(|e| QaError::Read { path: e.path, source: e.source })?;
        for crate::listing::Entry { rel, path, meta } in listed {
            let file = match part {
                Part::Runtime => format!("/{rel}"),
                p => format!("/{rel} ({p})"),
            };
            if let Some(place) = WRONG_PLACES.iter().find(|w| rel == **w || rel.starts_with(&format!("{w}/"))) {
                if !meta.is_dir() {
                    out.push(Finding {
                        check: Check::WrongPlace,
                        file: file.clone(),
                        reason: format!("installed under /{place}, where no package's files belong"),
                    });
                }
            }
            let bytes = if meta.file_type().is_symlink() {
                fs::read_link(&path)
                    .map_err(|source| QaError::Read { path: path.clone(), source })?
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_file() {
                fs::read(&path).map_err(|source| QaError::Read { path: path.clone(), source })?
            } else {
                continue;
            };
            let elf_err = |source| QaError::Elf { path: path.clone(), source };
            let parsed = if meta.is_file() { elf::read(&bytes).map_err(elf_err)? } else { None };
            // An ELF file or a static library is searched in what it loads: its debug info names
            // the build paths by design (it is how a debugger finds the sources).
            let searched = match &parsed {
                Some(f) => f.loaded.iter().map(|r| &bytes[r.clone()]).collect(),
                None if meta.is_file() => {
                    elf::loaded_bytes(&bytes).map_err(elf_err)?.unwrap_or_else(|| vec![&bytes[..]])
                }
                None => vec![&bytes[..]],
            };
            if let Some((_, what)) = needles.iter().find(|(n, _)| searched.iter().any(|b| contains(b, n))) {
                let how = if meta.file_type().is_symlink() { "points at" } else { "contains" };
                out.push(Finding { check: Check::HostPath, file: file.clone(), reason: format!("{how} {what}") });
            }
            let Some(f) = parsed else { continue };
            if f.machine != cx.machine {
                out.push(Finding {
                    check: Check::Arch,
                    file: file.clone(),
                    reason: format!("an ELF for machine {} (e_machine), not the target's {}", f.machine, cx.machine),
                });
            }
            if !f.rpath.is_empty() {
                out.push(Finding {
                    check: Check::Rpath,
                    file,
                    reason: format!(
                        "has RPATH/RUNPATH {}: the image's loader searches /lib and /usr/lib, and a path of the build \
                         machine means nothing there",
                        f.rpath.join(":")
                    ),
                });
            }
        }
    }
    Ok(out)
}

/// The findings for files a step made setuid or setgid (relative to DESTDIR).
pub fn setuid_findings(files: &[String]) -> Vec<Finding> {
    files
        .iter()
        .map(|f| Finding {
            check: Check::Setuid,
            file: f.clone(),
            reason: "was installed setuid or setgid; the bit was cleared (the device table grants it, in the image \
                     only)"
                .into(),
        })
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// One entry of an assembled image, as the image checks see it.
#[derive(Debug, Clone)]
pub enum ImageEntry {
    Dir,
    /// A regular file, read from `source`.
    File {
        source: PathBuf,
    },
    Link {
        target: String,
    },
    /// A device node, FIFO or socket: never an interpreter or a library.
    Other,
}

/// Where musl's loader looks for libraries when a program names no path (its default path).
const LIBRARY_DIRS: &[&str] = &["/lib", "/usr/local/lib", "/usr/lib"];
/// Where `#!/usr/bin/env NAME` finds NAME: the PATH the image's init exports.
const PATH_DIRS: &[&str] = &["/sbin", "/bin", "/usr/sbin", "/usr/bin"];

/// The image checks over an assembled image: `entries` by absolute path. Returns each finding
/// with the path of the file it is about.
pub fn check_image(entries: &BTreeMap<String, ImageEntry>) -> Result<Vec<Finding>, QaError> {
    let mut out = Vec::new();
    for (path, entry) in entries {
        let ImageEntry::File { source } = entry else { continue };
        let mut head = [0u8; 256];
        let n = {
            let mut f = fs::File::open(source).map_err(|e| QaError::Read { path: source.clone(), source: e })?;
            read_up_to(&mut f, &mut head).map_err(|e| QaError::Read { path: source.clone(), source: e })?
        };
        let head = &head[..n];
        if let Some(line) = head.strip_prefix(b"#!") {
            let line = String::from_utf8_lossy(line.split(|b| *b == b'\n').next().unwrap_or_default()).into_owned();
            if let Some(reason) = missing_interpreter(entries, &line) {
                out.push(Finding { check: Check::Shebang, file: path.clone(), reason });
            }
            continue;
        }
        if !elf::is_elf(head) {
            continue;
        }
        let data = fs::read(source).map_err(|e| QaError::Read { path: source.clone(), source: e })?;
        let Some(f) = elf::read(&data).map_err(|e| QaError::Elf { path: source.clone(), source: e })? else {
            continue;
        };
        if !matches!(f.kind, ElfType::Executable | ElfType::Shared) {
            continue;
        }
        if let Some(interp) = &f.interpreter {
            if resolve(entries, interp).is_none() {
                out.push(Finding {
                    check: Check::Interpreter,
                    file: path.clone(),
                    reason: format!(
                        "is linked dynamically against the loader {interp}, which the image does not contain"
                    ),
                });
            }
        }
        let dirs: Vec<String> = f.rpath.iter().cloned().chain(LIBRARY_DIRS.iter().map(|d| d.to_string())).collect();
        for lib in &f.needed {
            let found = if lib.contains('/') {
                resolve(entries, lib).is_some()
            } else {
                dirs.iter().any(|d| resolve(entries, &format!("{d}/{lib}")).is_some())
            };
            // musl's libc.so is its loader too: a program asking for libc.so has it when it has
            // the loader (checked above).
            let is_musl_libc = lib == "libc.so" && f.interpreter.is_some();
            if !found && !is_musl_libc {
                out.push(Finding {
                    check: Check::Libraries,
                    file: path.clone(),
                    reason: format!("needs {lib}, which is in none of {} in the image", dirs.join(", ")),
                });
            }
        }
    }
    Ok(out)
}

fn read_up_to(f: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Why the `#!` line `line` (without `#!`) cannot run in the image, if it cannot.
fn missing_interpreter(entries: &BTreeMap<String, ImageEntry>, line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    let program = words.next()?;
    if resolve(entries, program).is_none() {
        return Some(format!("is a script for {program}, which the image does not contain"));
    }
    if program.rsplit('/').next() == Some("env") {
        let name = words.find(|w| !w.starts_with('-') && !w.contains('='))?;
        if !PATH_DIRS.iter().any(|d| resolve(entries, &format!("{d}/{name}")).is_some()) {
            return Some(format!(
                "is a script for `{name}` (through env), which is in none of {}",
                PATH_DIRS.join(", ")
            ));
        }
    }
    None
}

/// The file `path` names in the image, following its links (and those of its directories) as the
/// kernel would, at most 40 of them; `None` when it leads nowhere.
fn resolve(entries: &BTreeMap<String, ImageEntry>, path: &str) -> Option<String> {
    let mut todo: Vec<String> = path.split('/').filter(|c| !c.is_empty()).rev().map(String::from).collect();
    let mut at: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                at.pop();
                continue;
            }
            _ => {}
        }
        at.push(c);
        let here = format!("/{}", at.join("/"));
        match entries.get(&here)? {
            ImageEntry::Link { target } => {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                at.pop();
                if target.starts_with('/') {
                    at.clear();
                }
                todo.extend(target.split('/').filter(|c| !c.is_empty()).rev().map(String::from));
            }
            ImageEntry::Dir | ImageEntry::File { .. } | ImageEntry::Other => {}
        }
    }
    let found = format!("/{}", at.join("/"));
    matches!(entries.get(&found), Some(ImageEntry::File { .. })).then_some(found)
}

/// The checks a recipe waives, by name, with their reasons.
pub type Waivers = BTreeMap<Check, String>;

/// `findings` without those `waived` allows.
pub fn unwaived(findings: Vec<Finding>, waived: &BTreeSet<Check>) -> Vec<Finding> {
    findings.into_iter().filter(|f| !waived.contains(&f.check)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(items: &[(&str, ImageEntry)]) -> BTreeMap<String, ImageEntry> {
        items.iter().map(|(p, e)| (p.to_string(), e.clone())).collect()
    }

    #[test]
    fn resolve_follows_links_relative_and_absolute_and_stops_at_loops() {
        let d = tempfile::tempdir().unwrap();
        let f = |_| ImageEntry::File { source: d.path().join("x") };
        let link = |t: &str| ImageEntry::Link { target: t.into() };
        let img = image(&[
            ("/bin", ImageEntry::Dir),
            ("/bin/busybox", f(())),
            ("/bin/sh", link("busybox")),
            ("/usr", ImageEntry::Dir),
            ("/usr/bin", link("../bin")),
            ("/lib", ImageEntry::Dir),
            ("/lib/ld-musl-x86_64.so.1", link("/lib/libc.so")),
            ("/lib/libc.so", f(())),
            ("/loop", link("/loop")),
        ]);
        assert_eq!(resolve(&img, "/bin/sh").as_deref(), Some("/bin/busybox"));
        assert_eq!(resolve(&img, "/usr/bin/sh").as_deref(), Some("/bin/busybox"));
        assert_eq!(resolve(&img, "/lib/ld-musl-x86_64.so.1").as_deref(), Some("/lib/libc.so"));
        assert_eq!(resolve(&img, "/bin/bash"), None);
        assert_eq!(resolve(&img, "/loop"), None);
        assert_eq!(resolve(&img, "/bin"), None, "a directory is no interpreter");
    }

    #[test]
    fn a_script_for_an_interpreter_the_image_lacks_is_named_with_it() {
        let d = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = d.path().join(name);
            fs::write(&p, text).unwrap();
            ImageEntry::File { source: p }
        };
        let img = image(&[
            ("/bin", ImageEntry::Dir),
            ("/bin/sh", write("sh", "a program")),
            ("/bin/ok", write("ok", "#!/bin/sh\necho\n")),
            ("/bin/bashism", write("b", "#!/bin/bash\necho\n")),
            ("/bin/py", write("p", "#!/usr/bin/env python3\n")),
            ("/usr", ImageEntry::Dir),
            ("/usr/bin", ImageEntry::Dir),
            ("/usr/bin/env", write("env", "#!/bin/sh\n")),
        ]);
        let found = check_image(&img).unwrap();
        let names: Vec<(&str, Check)> = found.iter().map(|f| (f.file.as_str(), f.check)).collect();
        assert_eq!(names, vec![("/bin/bashism", Check::Shebang), ("/bin/py", Check::Shebang)], "{found:?}");
        assert!(found[0].reason.contains("/bin/bash"), "{}", found[0]);
        assert!(found[1].reason.contains("python3"), "{}", found[1]);
    }

    #[test]
    fn package_checks_name_wrong_places_build_paths_and_foreign_elves() {
        let d = tempfile::tempdir().unwrap();
        let staged = d.path();
        for dir in ["runtime/usr/etc", "runtime/usr/bin", "dev/usr/lib/pkgconfig", "dbg/usr/lib/debug"] {
            fs::create_dir_all(staged.join(dir)).unwrap();
        }
        fs::write(staged.join("runtime/usr/etc/x.conf"), "x").unwrap();
        fs::write(staged.join("dev/usr/lib/pkgconfig/x.pc"), "prefix=/ovm/sysroot/usr\n").unwrap();
        fs::write(staged.join("dbg/usr/lib/debug/x.debug"), "/ovm/src/x.c").unwrap();
        fs::copy("/bin/ls", staged.join("runtime/usr/bin/ls")).unwrap();
        std::os::unix::fs::symlink("/work/project/x", staged.join("runtime/usr/bin/l")).unwrap();
        let cx = PackageContext { machine: 183, project: Path::new("/work/project") };
        let found = check_package(staged, &cx).unwrap();
        let names: Vec<(&str, Check)> = found.iter().map(|f| (f.file.as_str(), f.check)).collect();
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            names,
            vec![
                ("/usr/bin/l", Check::HostPath),
                ("/usr/bin/ls", Check::Arch),
                ("/usr/etc/x.conf", Check::WrongPlace),
                ("/usr/lib/pkgconfig/x.pc (dev)", Check::HostPath),
            ],
            "{found:?}"
        );
        assert!(found.iter().all(|f| !f.file.contains("debug")), "debug files are not checked for build paths");
    }
}

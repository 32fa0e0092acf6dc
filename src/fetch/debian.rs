//! The Debian source-package fallback: `apt-get source --download-only PACKAGE[=VERSION]` in an apt
//! state of ovm's own.
//!
//! # Why an own apt state
//! Machines that reach only a distribution mirror usually have `deb` entries and no `deb-src` ones,
//! and ovm must neither edit `/etc/apt` nor need root. So the system's entries (`Dir::Etc::SourceList`
//! one-line format, `Dir::Etc::SourceParts` `*.list` and deb822 `*.sources`) are read, every `deb`
//! entry is turned into a `deb-src` entry with the same URIs, suites, components and keyring, and
//! the result is written under `<project>/.cache/apt/etc`. apt is then pointed at it, and at its
//! own lists and cache directories, with `-o Dir::…` options; everything else (proxies, keyrings,
//! apt.conf.d) stays the system's. `apt-get update` runs there when the derived entries changed,
//! when no index exists yet, and once more if a package is not found (the index may be stale).
//!
//! apt-get fetches the `.dsc` and the Debian tarball along with the one file a recipe names; it
//! runs in a scratch directory and only that file is kept. As root, apt would drop to the `_apt`
//! user for downloads and warn that it cannot write our directories; `APT::Sandbox::User=root`
//! keeps it quiet (it is root already; the files are verified by sha256 afterwards anyway).
//!
//! One apt operation runs at a time: a mutex within the process and `flock` on
//! `.cache/apt/lock` across processes.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::recipe::DebianSource;

pub(super) struct Apt {
    base: PathBuf,
    /// Whether `apt-get update` already ran in this process.
    updated: Mutex<bool>,
}

/// What apt produced for one request, before verification.
pub(super) struct Obtained {
    pub path: PathBuf,
    /// Keeps the scratch directory (and the file in it) alive until the caller moved it.
    pub _scratch: tempfile::TempDir,
}

impl Apt {
    pub fn new(cache_dir: &Path) -> Apt {
        // apt resolves relative `Dir::` paths against `Dir` (/), and runs in a scratch directory:
        // only an absolute base means the same place to every apt invocation.
        let base = std::path::absolute(cache_dir).unwrap_or_else(|_| cache_dir.to_path_buf()).join("apt");
        Apt { base, updated: Mutex::new(false) }
    }

    /// Fetches `source.file` of the Debian source package into a scratch directory.
    pub fn fetch(&self, source: &DebianSource) -> Result<Obtained, String> {
        let mut updated = self.updated.lock().map_err(|_| "apt state lock poisoned".to_string())?;
        for dir in ["etc/sources.list.d", "lists/partial", "cache/archives/partial", "download"] {
            let d = self.base.join(dir);
            fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        let lock_path = self.base.join("lock");
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        let _flock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| format!("cannot lock {}: {e}", lock_path.display()))?;

        let changed = self.write_sources()?;
        if changed || !self.has_index() {
            self.update()?;
            *updated = true;
        }
        let scratch = tempfile::Builder::new()
            .prefix("apt-")
            .tempdir_in(self.base.join("download"))
            .map_err(|e| format!("cannot create a scratch directory: {e}"))?;
        let spec = match &source.version {
            Some(v) => format!("{}={v}", source.package),
            None => source.package.clone(),
        };
        let mut result = self.source(&spec, scratch.path());
        if result.is_err() && !*updated {
            // A stale index may not know the package (or version) yet.
            self.update()?;
            *updated = true;
            result = self.source(&spec, scratch.path());
        }
        result?;
        let path = scratch.path().join(&source.file);
        if !path.is_file() {
            let got: Vec<String> = fs::read_dir(scratch.path())
                .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            return Err(format!("apt-get source {spec} fetched {} but not {}", got.join(", "), source.file));
        }
        Ok(Obtained { path, _scratch: scratch })
    }

    fn has_index(&self) -> bool {
        fs::read_dir(self.base.join("lists"))
            .map(|rd| rd.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().ends_with("_Sources")))
            .unwrap_or(false)
    }

    fn options(&self) -> Vec<String> {
        let b = &self.base;
        let mut opts = vec![
            format!("Dir::Etc::SourceList={}", b.join("etc/sources.list").display()),
            format!("Dir::Etc::SourceParts={}", b.join("etc/sources.list.d").display()),
            format!("Dir::State::Lists={}", b.join("lists").display()),
            format!("Dir::Cache={}", b.join("cache").display()),
        ];
        if nix::unistd::geteuid().is_root() {
            opts.push("APT::Sandbox::User=root".into());
        }
        opts.into_iter().flat_map(|o| ["-o".to_string(), o]).collect()
    }

    fn run(&self, args: &[&str], cwd: &Path) -> Result<(), String> {
        let mut cmd = Command::new("apt-get");
        cmd.args(self.options()).args(args).current_dir(cwd).env("LC_ALL", "C").stdin(std::process::Stdio::null());
        let shown = format!("apt-get {}", args.join(" "));
        tracing::debug!("running {shown} (apt state {})", self.base.display());
        let out = cmd.output().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => "apt-get is not installed (the Debian fallback needs it)".to_string(),
            _ => format!("cannot run apt-get: {e}"),
        })?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("E:") || l.starts_with("W:")).collect();
        let detail = if lines.is_empty() { stderr.trim().to_string() } else { lines.join(" ") };
        Err(format!("{shown} failed ({}): {detail}", out.status))
    }

    fn update(&self) -> Result<(), String> {
        self.run(&["-q", "update"], &self.base)
    }

    fn source(&self, spec: &str, dir: &Path) -> Result<(), String> {
        self.run(&["-q", "--download-only", "--only-source", "source", spec], dir)
    }

    /// Writes the derived `deb-src` entries; returns whether they differ from what was there.
    fn write_sources(&self) -> Result<bool, String> {
        let (list, parts) = system_source_paths();
        let mut one_line = String::new();
        let mut deb822 = String::new();
        if let Ok(text) = fs::read_to_string(&list) {
            one_line.push_str(&derive_one_line(&text));
        }
        let mut names: Vec<PathBuf> =
            fs::read_dir(&parts).map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
        names.sort();
        for path in names {
            let Ok(text) = fs::read_to_string(&path) else { continue };
            match path.extension().and_then(|e| e.to_str()) {
                Some("list") => one_line.push_str(&derive_one_line(&text)),
                Some("sources") => deb822.push_str(&derive_deb822(&text)),
                _ => {}
            }
        }
        if one_line.is_empty() && deb822.is_empty() {
            return Err(format!(
                "no deb entries in the system's apt sources ({} and {}/*.{{list,sources}}) to derive deb-src entries from",
                list.display(),
                parts.display()
            ));
        }
        let mut changed = write_if_changed(&self.base.join("etc/sources.list"), &one_line)?;
        changed |= write_if_changed(&self.base.join("etc/sources.list.d/derived.sources"), &deb822)?;
        Ok(changed)
    }
}

/// The system's `Dir::Etc::SourceList` and `Dir::Etc::SourceParts`, as apt resolves them.
fn system_source_paths() -> (PathBuf, PathBuf) {
    let default = (PathBuf::from("/etc/apt/sources.list"), PathBuf::from("/etc/apt/sources.list.d"));
    let Ok(out) = Command::new("apt-config")
        .args(["shell", "L", "Dir::Etc::SourceList/f", "P", "Dir::Etc::SourceParts/d"])
        .output()
    else {
        return default;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut list = default.0;
    let mut parts = default.1;
    for line in text.lines() {
        let value = |l: &str| l.split_once('=').map(|(_, v)| PathBuf::from(v.trim_matches('\'')));
        if line.starts_with("L=") {
            list = value(line).unwrap_or(list);
        } else if line.starts_with("P=") {
            parts = value(line).unwrap_or(parts);
        }
    }
    (list, parts)
}

fn write_if_changed(path: &Path, content: &str) -> Result<bool, String> {
    if fs::read_to_string(path).is_ok_and(|old| old == content) {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    fs::write(tmp.path(), content).map_err(|e| format!("cannot write {}: {e}", tmp.path().display()))?;
    tmp.persist(path).map_err(|e| format!("cannot write {}: {}", path.display(), e.error))?;
    Ok(true)
}

/// `deb [opts] URI SUITE COMPONENT…` lines (and existing `deb-src` ones) as `deb-src` lines.
pub(super) fn derive_one_line(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let rest = if let Some(r) = line.strip_prefix("deb-src ") {
            r
        } else if let Some(r) = line.strip_prefix("deb ") {
            r
        } else {
            continue;
        };
        let entry = format!("deb-src {}\n", rest.trim());
        if !out.contains(&entry) {
            out.push_str(&entry);
        }
    }
    out
}

/// deb822 stanzas whose `Types` include `deb` (or `deb-src`), re-emitted with `Types: deb-src`
/// and every other field (URIs, Suites, Components, Signed-By — also an inline key) unchanged.
/// Disabled stanzas (`Enabled: no`) and comments are dropped.
pub(super) fn derive_deb822(text: &str) -> String {
    let mut out = String::new();
    let mut stanza: Vec<&str> = Vec::new();
    let mut flush = |stanza: &mut Vec<&str>| {
        if stanza.is_empty() {
            return;
        }
        let field = |name: &str| {
            stanza.iter().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (!l.starts_with([' ', '\t']) && k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
            })
        };
        let types = field("Types").unwrap_or_default();
        let wanted = types.split_whitespace().any(|t| t == "deb" || t == "deb-src");
        let enabled = field("Enabled").map_or(true, |v| !v.eq_ignore_ascii_case("no"));
        if wanted && enabled {
            let mut block = String::from("Types: deb-src\n");
            let mut skipping_types = false;
            for line in stanza.iter() {
                let continuation = line.starts_with([' ', '\t']);
                if !continuation {
                    skipping_types = line.split_once(':').is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("Types"));
                }
                if !skipping_types {
                    block.push_str(line);
                    block.push('\n');
                }
            }
            block.push('\n');
            if !out.contains(&block) {
                out.push_str(&block);
            }
        }
        stanza.clear();
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut stanza);
        } else if !line.starts_with('#') {
            stanza.push(line);
        }
    }
    flush(&mut stanza);
    out
}

/// Moves (or, across file systems, copies) `from` to `to`.
pub(super) fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            fs::copy(from, to)?;
            let f = fs::File::open(to)?;
            nix::unistd::fsync(f.as_fd()).map_err(io::Error::from)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_entries_become_deb_src_with_the_same_fields() {
        let system = "\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Enabled: no

Types: deb deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main contrib
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 abc
";
        let derived = derive_deb822(system);
        assert_eq!(
            derived,
            "\
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main contrib
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 abc

"
        );
    }

    #[test]
    fn one_line_entries_become_deb_src() {
        let system = "\
# comment
deb [signed-by=/usr/share/keyrings/k.gpg] http://deb.debian.org/debian bookworm main # trailing
deb-src http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm main
deb-foo nothing
";
        assert_eq!(
            derive_one_line(system),
            "deb-src [signed-by=/usr/share/keyrings/k.gpg] http://deb.debian.org/debian bookworm main\n\
             deb-src http://deb.debian.org/debian bookworm main\n"
        );
    }
}

//! The gcc cross toolchain, built from source (`ovm toolchain ARCH`, `--toolchain gcc`).
//!
//! Three recipes of `recipes/toolchain/` make it: `binutils`, `gcc` (with musl and in-tree
//! gmp/mpfr/mpc/isl) and `linux-headers`; `recipes/toolchain/README.md` says why it is cut that way.
//! They are ordinary engine packages of the domain `cross-ARCH` (one per *target*: the domain's arch
//! is what `$TARGET`, and so `--target=`, says), built in the `toolchain` profile, where the host
//! compiler compiles them. Each `[[build.step]]` is a task with its own stamp and log, so a failure
//! in `all-gcc` stops with `await` on that step and the next run does not rebuild binutils.
//!
//! The toolchain the sandboxes use is `toolchain/ARCH/`: the union of the three staged outputs
//! (hard links, see `engine::tree::compose`), remade only when one of them changed. Its signature is
//! the hash of the parts' output hashes, recorded in `states/cross-ARCH/composed`, so it is known
//! without walking 100 MB again; it is what every package built with it folds into its signature.
//!
//! A target package also needs a compiler for the *host* (`$HOSTCC`: kbuild's fixdep, conf). zig
//! has every target in one directory; here a non-host target is bound as the union of its own
//! toolchain and the host's (`toolchain/aarch64+x86_64/`): every path of a gcc toolchain is either
//! target-prefixed or under a target directory, so the two never collide.
//!
//! `--sdk`: the composed toolchain (its sysroot holding musl and the Linux headers) plus the staged
//! target packages under its sysroot, as one deterministic `.tar.gz` (sorted entries, uid/gid 0,
//! mtime = SOURCE_DATE_EPOCH, hard links kept), relocatable like the directory it comes from.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::arch::Arch;
use crate::engine::build::{build_domain, open_log, BuildFailure, PackageReport, Run};
use crate::engine::domain::Domain;
use crate::engine::package::{Equipment, Outcome};
use crate::engine::signature::Inputs;
use crate::engine::task::{TaskKind, TaskPlan};
use crate::engine::{state, tree, EngineError};
use crate::project::Project;
use crate::recipe::{Kind, Recipe, RecipeSet};

use super::ToolchainError;

/// The recipes of the gcc toolchain, in the order they are listed (a dependency comes first).
pub const PARTS: [&str; 3] = ["binutils", "gcc", "linux-headers"];

/// The recipes of [`PARTS`], checked: each is a toolchain recipe with its own build steps, and
/// depends on nothing outside the toolchain.
pub fn parts(recipes: &RecipeSet) -> Result<Vec<&Recipe>, ToolchainError> {
    let mut out = Vec::new();
    for name in PARTS {
        let r = recipes.get(name).ok_or(ToolchainError::MissingPart { part: name })?;
        if r.kind != Kind::Toolchain || r.is_prebuilt() {
            return Err(ToolchainError::NotAPart { path: r.path.clone() });
        }
        if let Some(dep) = r.depends.iter().find(|d| !PARTS[..out.len()].contains(&d.as_str())) {
            return Err(ToolchainError::PartDependency { path: r.path.clone(), dep: dep.clone() });
        }
        out.push(r);
    }
    Ok(out)
}

/// One task of the plan `ovm toolchain ARCH --dry-run` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTask {
    pub package: String,
    pub task: String,
    /// Tasks (`package task`) that must be done first.
    pub after: Vec<String>,
    /// A build step (a `[[build.step]]`), as opposed to fetch/unpack/patch/package.
    pub step: bool,
}

/// The task graph of the toolchain for one target, in the order one worker would run it: each task
/// follows its package's previous task, a package's first task follows its dependencies' `package`.
pub fn plan(recipes: &RecipeSet) -> Result<Vec<PlannedTask>, ToolchainError> {
    let mut out = Vec::new();
    for r in parts(recipes)? {
        let p = TaskPlan::for_recipe(r);
        for t in p.all() {
            let after = match t.previous() {
                Some(prev) => vec![format!("{} {}", r.name, p.name(prev))],
                None => r.depends.iter().map(|d| format!("{d} package")).collect(),
            };
            let step = matches!(p.def(t).kind, TaskKind::Step(_));
            out.push(PlannedTask { package: r.name.clone(), task: p.name(t).to_string(), after, step });
        }
    }
    Ok(out)
}

/// The composed toolchain of one target.
#[derive(Debug, Clone)]
pub struct Built {
    pub arch: Arch,
    pub dir: PathBuf,
    pub signature: String,
}

/// `toolchain/ARCH/`.
pub fn dir(root: &Path, arch: Arch) -> PathBuf {
    root.join("toolchain").join(arch.name())
}

fn composed_marker(root: &Path, arch: Arch) -> PathBuf {
    Domain::Cross(arch).states(root).join("composed")
}

/// The toolchain of `arch` as it stands (dir and recorded signature; empty when never composed).
pub fn current(root: &Path, arch: Arch) -> Built {
    let signature = fs::read_to_string(composed_marker(root, arch)).map(|s| s.trim().to_string()).unwrap_or_default();
    Built { arch, dir: dir(root, arch), signature }
}

/// What the cross domain's sandboxes bind at /ovm/toolchain: nothing (an empty dir). The host
/// compiler builds the toolchain; no earlier toolchain may leak in.
pub(crate) fn no_toolchain(root: &Path) -> Result<Equipment, EngineError> {
    let empty = root.join("toolchain").join(".none");
    fs::create_dir_all(&empty).map_err(|source| EngineError::Write { path: empty.clone(), source })?;
    Ok(Equipment { toolchain_dir: empty, toolchain_sig: String::new(), tools_dir: None, tools_sig: String::new() })
}

/// What the build tools are compiled with when gcc is the toolchain: the host's (never built here).
pub(crate) fn tools_equipment(root: &Path, host: Arch) -> Equipment {
    let h = current(root, host);
    Equipment { toolchain_dir: h.dir, toolchain_sig: h.signature, tools_dir: None, tools_sig: String::new() }
}

/// The prefetch entry of the toolchain of `arch`: its domain, parts and equipment.
pub(crate) fn prefetch_plan<'r>(
    run: &'r Run<'_>,
    arch: Arch,
) -> Result<(Domain, Vec<&'r Recipe>, Equipment), EngineError> {
    Ok((Domain::Cross(arch), parts(&run.recipes)?, no_toolchain(run.project.root())?))
}

/// Builds (or reuses) the parts of the toolchain for `arch` and composes `toolchain/ARCH/`.
pub(crate) fn ensure(
    run: &Run<'_>,
    arch: Arch,
    what: &str,
    reports: &Mutex<Vec<PackageReport>>,
) -> Result<Built, BuildFailure> {
    let root = run.project.root();
    let domain = Domain::Cross(arch);
    let list = parts(&run.recipes).map_err(EngineError::from)?;
    let log = open_log(root, domain, what)?;
    let ctx = run.ctx(domain, &log, no_toolchain(root)?);
    let outputs = build_domain(&ctx, &list, reports).map_err(|mut failure| {
        // A failed step is most often a missing host compiler or tool: say which, if any.
        if !failure.failures.is_empty() && failure.error.is_none() {
            let missing = super::host_prereqs::missing(Path::new("/"), run.host);
            failure.error = super::host_prereqs::error(&missing).map(|e| Box::new(EngineError::from(e)));
        }
        failure
    })?;
    Ok(compose(root, arch, &outputs)?)
}

/// Makes `toolchain/ARCH/` the union of the parts' staged outputs unless it already is.
fn compose(root: &Path, arch: Arch, outputs: &BTreeMap<String, String>) -> Result<Built, EngineError> {
    let mut i = Inputs::new();
    for (name, out) in outputs {
        i.set(format!("part.{name}"), out);
    }
    let signature = i.signature();
    let target = dir(root, arch);
    let marker = composed_marker(root, arch);
    let recorded = fs::read_to_string(&marker).ok();
    if recorded.as_deref().map(str::trim) == Some(signature.as_str()) && target.join("bin").is_dir() {
        return Ok(Built { arch, dir: target, signature });
    }
    let layers: Vec<(String, PathBuf)> =
        PARTS.iter().map(|n| (n.to_string(), Domain::Cross(arch).staging(root, n))).collect();
    compose_into(&layers, &target)?;
    state::write_atomic(&marker, signature.as_bytes())?;
    Ok(Built { arch, dir: target, signature })
}

/// Composes `layers` into a temporary sibling of `target`, then swaps it in.
fn compose_into(layers: &[(String, PathBuf)], target: &Path) -> Result<(), EngineError> {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = target.with_file_name(format!(".{name}.new"));
    tree::remove_all(&tmp)?;
    tree::compose(layers, &tmp)?;
    tree::commit(&tmp, target)?;
    Ok(())
}

/// What target packages of `arch` build with: the toolchain of `arch`, joined with the host's
/// (for `$HOSTCC`) when `arch` is not the host's.
pub(crate) fn for_target(root: &Path, target: &Built, host: &Built) -> Result<(PathBuf, String), EngineError> {
    if target.arch == host.arch {
        return Ok((target.dir.clone(), target.signature.clone()));
    }
    let mut i = Inputs::new();
    i.set(format!("toolchain.{}", target.arch), &target.signature);
    i.set(format!("toolchain.{}", host.arch), &host.signature);
    let signature = i.signature();
    let joined = root.join("toolchain").join(format!("{}+{}", target.arch, host.arch));
    let marker = Domain::Cross(target.arch).states(root).join("joined");
    let recorded = fs::read_to_string(&marker).ok();
    if recorded.as_deref().map(str::trim) != Some(signature.as_str()) || !joined.join("bin").is_dir() {
        let layers = vec![
            (target.arch.name().to_string(), target.dir.clone()),
            (host.arch.name().to_string(), host.dir.clone()),
        ];
        compose_into(&layers, &joined)?;
        state::write_atomic(&marker, signature.as_bytes())?;
    }
    Ok((joined, signature))
}

/// The equipment directory and signature target packages of `arch` would use now (for status,
/// spec, the prefetch plan), without building anything.
pub(crate) fn current_for_target(root: &Path, arch: Arch, host: Arch) -> (PathBuf, String) {
    let t = current(root, arch);
    if arch == host {
        return (t.dir, t.signature);
    }
    let h = current(root, host);
    let mut i = Inputs::new();
    i.set(format!("toolchain.{arch}"), &t.signature);
    i.set(format!("toolchain.{host}"), &h.signature);
    (root.join("toolchain").join(format!("{arch}+{host}")), i.signature())
}

/// What `ovm toolchain ARCH` did.
#[derive(Debug)]
pub struct Summary {
    pub built: Built,
    pub packages: Vec<PackageReport>,
    pub elapsed: Duration,
    pub sdk: Option<PathBuf>,
}

/// Options of `ovm toolchain`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub jobs: usize,
    pub no_sandbox: bool,
    pub no_wait: bool,
    /// Also write the SDK tarball.
    pub sdk: bool,
}

/// `ovm toolchain ARCH`: builds (or reuses) the gcc toolchain for `arch`.
pub fn build(project: &Project, arch: Arch, opts: &Options, quiet: bool) -> Result<Summary, BuildFailure> {
    let t0 = Instant::now();
    let (_lock, run) = crate::engine::build::open_run(project, opts.jobs, opts.no_sandbox, opts.no_wait, quiet)?;
    let what = format!("ovm toolchain {arch}");
    crate::engine::build::prefetch(&run, &[prefetch_plan(&run, arch)?])?;
    let reports = Mutex::new(Vec::new());
    let built = ensure(&run, arch, &what, &reports)?;
    let sdk = if opts.sdk { Some(write_sdk(project, &run.recipes, &built).map_err(EngineError::from)?) } else { None };
    let mut packages = reports.into_inner().unwrap_or_default();
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Summary { built, packages, elapsed: t0.elapsed(), sdk })
}

/// Prints the summary of `ovm toolchain`.
pub fn print_summary(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    for p in &s.packages {
        let how = match &p.outcome {
            Outcome::Reused => "up to date".to_string(),
            Outcome::FromCache => "from the shared-state cache".to_string(),
            Outcome::Built(from) => format!("built (from {from})"),
        };
        writeln!(out, "{} {}: {how}", p.domain, p.name)?;
    }
    writeln!(out, "toolchain {}: {} ({:.1} s)", s.built.arch, s.built.dir.display(), s.elapsed.as_secs_f64())?;
    if let Some(sdk) = &s.sdk {
        writeln!(out, "sdk: {}", sdk.display())?;
    }
    Ok(())
}

/// Runs `ovm toolchain ARCH` and prints its outcome (a failure: each failed task's log tail and
/// path, like `ovm build`); the exit code is the process's.
pub fn report(project: &Project, arch: Arch, opts: &Options, quiet: bool) -> std::process::ExitCode {
    match build(project, arch, opts, quiet) {
        Ok(summary) => {
            let mut out = io::stdout().lock();
            if quiet {
                let _ = writeln!(out, "{}", summary.built.dir.display());
                if let Some(sdk) = &summary.sdk {
                    let _ = writeln!(out, "{}", sdk.display());
                }
            } else {
                let _ = print_summary(&summary, &mut out);
            }
            std::process::ExitCode::SUCCESS
        }
        Err(failure) => {
            let mut err = io::stderr().lock();
            for f in &failure.failures {
                crate::engine::package::report_failure(f, &mut err);
            }
            if let Some(e) = &failure.error {
                let _ = writeln!(err, "ovm: error: {e}");
            }
            if !failure.failures.is_empty() {
                let _ = writeln!(err, "ovm: fix the cause and run the same command again: it resumes where it stopped");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// `output/ARCH/ovm-sdk-ARCH.tar.gz`: the composed toolchain, with the staged target packages of
/// `arch` (if any were built) merged into its sysroot. Written to a temporary name, then renamed.
pub fn write_sdk(project: &Project, recipes: &RecipeSet, built: &Built) -> Result<PathBuf, ToolchainError> {
    let arch = built.arch;
    let top = format!("ovm-sdk-{arch}");
    let sysroot = format!("{}/sys-root", arch.musl_triple());
    let mut entries: BTreeMap<String, SdkEntry> = BTreeMap::new();
    collect(&built.dir, &top, &mut entries)?;
    // The toolchain never ships a file of that name; the map keeps it in path order with the rest.
    entries.insert(format!("{top}/{SDK_SETUP}"), SdkEntry::Generated(sdk_setup_script(arch)));
    for r in recipes.topological_order().into_iter().filter(|r| r.kind == Kind::Target) {
        let staged = project.staging_dir(arch, &r.name);
        if staged.is_dir() {
            collect(&staged, &format!("{top}/{sysroot}"), &mut entries)?;
        }
    }
    let out_dir = project.output_dir(arch);
    fs::create_dir_all(&out_dir).map_err(|source| ToolchainError::CreateDir { path: out_dir.clone(), source })?;
    let path = out_dir.join(format!("{top}.tar.gz"));
    let tmp = out_dir.join(format!(".{top}.tar.gz.tmp"));
    let werr = |source| ToolchainError::Write { path: tmp.clone(), source };
    let file = fs::File::create(&tmp).map_err(werr)?;
    // No file name or time in the gzip header: the same tree gives the same bytes.
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(io::BufWriter::with_capacity(1 << 20, file), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    let mtime = project.source_date_epoch();
    append_all(&mut tar, &entries, mtime).map_err(werr)?;
    let gz = tar.into_inner().map_err(werr)?;
    let buf = gz.finish().map_err(werr)?;
    let file = buf.into_inner().map_err(|e| werr(e.into_error()))?;
    file.sync_all().map_err(werr)?;
    fs::rename(&tmp, &path).map_err(|source| ToolchainError::Write { path: path.clone(), source })?;
    Ok(path)
}

/// Adds every path under `dir` to `entries` as `prefix/rel` (the later layer wins a duplicate dir).
/// What an SDK path holds: a file or directory from disk, or a file ovm writes itself.
enum SdkEntry {
    Disk(PathBuf),
    Generated(String),
}

fn collect(dir: &Path, prefix: &str, entries: &mut BTreeMap<String, SdkEntry>) -> Result<(), ToolchainError> {
    entries.insert(prefix.to_string(), SdkEntry::Disk(dir.to_path_buf()));
    let rd = fs::read_dir(dir).map_err(|source| ToolchainError::Read { path: dir.to_path_buf(), source })?;
    for e in rd {
        let e = e.map_err(|source| ToolchainError::Read { path: dir.to_path_buf(), source })?;
        let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
        let ft = e.file_type().map_err(|source| ToolchainError::Read { path: e.path(), source })?;
        if ft.is_dir() {
            collect(&e.path(), &name, entries)?;
        } else {
            entries.insert(name, SdkEntry::Disk(e.path()));
        }
    }
    Ok(())
}

/// Every entry, in path order; a file's later hard links become tar hard links.
fn append_all<W: Write>(tar: &mut tar::Builder<W>, entries: &BTreeMap<String, SdkEntry>, mtime: u64) -> io::Result<()> {
    let mut seen: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for (name, entry) in entries {
        match entry {
            SdkEntry::Disk(src) => append(tar, name, src, mtime, &mut seen)?,
            SdkEntry::Generated(text) => append_generated(tar, name, text.as_bytes(), mtime)?,
        }
    }
    Ok(())
}

/// The SDK's script that puts its compiler in a shell's environment (Yocto's environment-setup-*).
const SDK_SETUP: &str = "environment-setup";

/// `. ovm-sdk-ARCH/environment-setup` in bash: CC, AR, … as the SDK's tools, SYSROOT, PATH and
/// CROSS_COMPILE, all found relative to the script, so the SDK works wherever it was unpacked.
fn sdk_setup_script(arch: Arch) -> String {
    let t = arch.musl_triple();
    format!(
        r#"# Source this from bash to build for {t} with this SDK (it works wherever the SDK is unpacked):
#   . /path/to/ovm-sdk-{arch}/environment-setup
# Other shells: set OVM_SDK to the SDK's directory first.
if [ -n "${{BASH_SOURCE:-}}" ]; then
	OVM_SDK=$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)
fi
if [ -z "${{OVM_SDK:-}}" ] || [ ! -e "$OVM_SDK/bin/{t}-gcc" ]; then
	echo "environment-setup: cannot find the SDK; source it from bash or set OVM_SDK" >&2
	return 1 2>/dev/null || exit 1
fi
export OVM_SDK
export SYSROOT="$OVM_SDK/{t}/sys-root"
export PATH="$OVM_SDK/bin:$PATH"
export CROSS_COMPILE="{t}-"
export CC="{t}-gcc" CPP="{t}-cpp" AR="{t}-ar" AS="{t}-as" LD="{t}-ld" NM="{t}-nm"
export RANLIB="{t}-ranlib" STRIP="{t}-strip" OBJCOPY="{t}-objcopy" OBJDUMP="{t}-objdump"
export CONFIGURE_FLAGS="--host={t} --with-sysroot=$SYSROOT"
"#
    )
}

/// A header owned by root with the SDK's fixed mtime.
fn root_header(mtime: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_gnu();
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("root")?;
    h.set_groupname("root")?;
    Ok(h)
}

/// A file made here rather than read from disk, with the same header conventions as [`append`].
fn append_generated<W: Write>(tar: &mut tar::Builder<W>, name: &str, content: &[u8], mtime: u64) -> io::Result<()> {
    let mut h = root_header(mtime)?;
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(content.len() as u64);
    tar.append_data(&mut h, name, content)
}

/// One entry: a directory, a symlink, a file, or a hard link to a file already written.
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    src: &Path,
    mtime: u64,
    seen: &mut BTreeMap<(u64, u64), String>,
) -> io::Result<()> {
    let md = fs::symlink_metadata(src)?;
    let mut h = root_header(mtime)?;
    let ft = md.file_type();
    if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        tar.append_data(&mut h, format!("{name}/"), io::empty())
    } else if ft.is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        tar.append_link(&mut h, name, fs::read_link(src)?)
    } else {
        let mode = if md.mode() & 0o111 != 0 { 0o755 } else { 0o644 };
        h.set_mode(mode);
        if md.nlink() > 1 {
            if let Some(first) = seen.get(&(md.dev(), md.ino())) {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                return tar.append_link(&mut h, name, first);
            }
            seen.insert((md.dev(), md.ino()), name.to_string());
        }
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(md.len());
        tar.append_data(&mut h, name, fs::File::open(src)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_entries_are_sorted_and_hard_links_kept() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("bin")).unwrap();
        fs::write(d.path().join("bin/x86_64-linux-musl-gcc"), b"gcc").unwrap();
        fs::hard_link(d.path().join("bin/x86_64-linux-musl-gcc"), d.path().join("bin/x86_64-linux-musl-gcc-12"))
            .unwrap();
        std::os::unix::fs::symlink("x86_64-linux-musl-gcc", d.path().join("bin/x86_64-linux-musl-cc")).unwrap();
        let mut entries = BTreeMap::new();
        collect(d.path(), "sdk", &mut entries).unwrap();
        let names: Vec<&str> = entries.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "sdk",
                "sdk/bin",
                "sdk/bin/x86_64-linux-musl-cc",
                "sdk/bin/x86_64-linux-musl-gcc",
                "sdk/bin/x86_64-linux-musl-gcc-12"
            ]
        );
        let mut bytes = Vec::new();
        {
            let mut tar = tar::Builder::new(&mut bytes);
            append_all(&mut tar, &entries, 42).unwrap();
            tar.finish().unwrap();
        }
        let mut a = tar::Archive::new(&bytes[..]);
        let kinds: Vec<(String, tar::EntryType, u64)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.header().entry_type(), e.header().mtime().unwrap())
            })
            .collect();
        assert_eq!(kinds[2].1, tar::EntryType::Symlink);
        assert_eq!(kinds[3].1, tar::EntryType::Regular);
        assert_eq!(kinds[4].1, tar::EntryType::Link);
        assert!(kinds.iter().all(|k| k.2 == 42));
    }
}

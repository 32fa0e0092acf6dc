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
//! (hard links, see `tree::compose`), remade only when one of them changed. Its signature is
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

use crate::arch::Arch;
use crate::layout::{Domain, Layout};
use crate::project::Project;
use crate::recipe::{Kind, Recipe, RecipeSet};
use crate::signature::Inputs;

use super::{Equipment, PartBuilder, Parts, Prepared, Provided, Target, Toolchain, ToolchainError};

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

/// The gcc toolchain as the engine prepares it.
#[derive(Debug, Clone, Copy)]
pub struct Gcc;

/// The toolchain of `arch` as it stands: its dir, and the signature of its parts' outputs as
/// `recorded` knows them (empty when they are unknown and it was never composed).
pub fn current(layout: &Layout, arch: Arch, recorded: &dyn Fn(Domain, &str) -> Option<String>) -> Provided {
    // The signature `compose` gives the parts' outputs when they are all known (recorded here, or
    // in a shared-state cache for setscene), else the one the last composition recorded.
    let outputs: Option<BTreeMap<String, String>> =
        PARTS.iter().map(|n| Some((n.to_string(), recorded(Domain::Cross(arch), n)?))).collect();
    let signature = match outputs {
        Some(o) => composed_signature(&o),
        None => super::recorded_signature(&layout.composed_marker(Domain::Cross(arch))),
    };
    Provided { dir: layout.gcc_toolchain(arch), signature }
}

/// The signature of the toolchain composed of the parts' `outputs`.
fn composed_signature(outputs: &BTreeMap<String, String>) -> String {
    let mut i = Inputs::new();
    for (name, out) in outputs {
        i.set(format!("part.{name}"), out);
    }
    i.signature()
}

/// What the cross domain's sandboxes bind at /ovm/toolchain: nothing (an empty dir). The host
/// compiler builds the toolchain; no earlier toolchain may leak in. The directory is made where a
/// sandbox binds it (`engine::step`), not here: `ovm status` and `--dry-run` ask this too and
/// must write nothing.
pub fn no_toolchain(layout: &Layout) -> Result<Equipment, ToolchainError> {
    Ok(Equipment::bootstrap(Provided { dir: layout.no_toolchain(), signature: String::new() }))
}

/// The parts of the toolchain for `arch`, as the engine builds them.
pub fn cross_parts<'r>(t: &Target<'r>, arch: Arch) -> Result<Parts<'r>, ToolchainError> {
    let (recipes, layout, host) = (t.recipes, t.layout, t.host);
    Ok(Parts {
        domain: Domain::Cross(arch),
        recipes: parts(recipes)?,
        equipment: no_toolchain(layout)?,
        // A failed step is most often a missing host compiler or tool: say which, if any.
        hint: super::host_prereqs::error(&super::host_prereqs::missing(Path::new("/"), host)),
    })
}

/// The signature of a target's toolchain joined with the host's.
fn joined_signature(target: &Provided, target_arch: Arch, host: &Provided, host_arch: Arch) -> String {
    let mut i = Inputs::new();
    i.set(format!("toolchain.{target_arch}"), &target.signature);
    i.set(format!("toolchain.{host_arch}"), &host.signature);
    i.signature()
}

impl Toolchain for Gcc {
    fn parts<'r>(&self, t: &Target<'r>) -> Result<Vec<Parts<'r>>, ToolchainError> {
        let mut out = vec![cross_parts(t, t.host)?];
        if t.arch != t.host {
            out.push(cross_parts(t, t.arch)?);
        }
        Ok(out)
    }

    fn current(&self, t: &Target<'_>, recorded: &dyn Fn(Domain, &str) -> Option<String>) -> Prepared {
        let (layout, arch, host) = (t.layout, t.arch, t.host);
        let h = current(layout, host, recorded);
        if arch == host {
            return Prepared { target: h.clone(), host: h };
        }
        let a = current(layout, arch, recorded);
        let target =
            Provided { dir: layout.joined_toolchain(arch, host), signature: joined_signature(&a, arch, &h, host) };
        Prepared { target, host: h }
    }

    /// The host's toolchain first: it compiles the build tools and is every target's `$HOSTCC`.
    fn prepare<B: PartBuilder>(&self, builder: &B, t: &Target<'_>) -> Result<Prepared, B::Error> {
        let h = ensure(builder, t, t.host)?;
        if t.arch == t.host {
            return Ok(Prepared { target: h.clone(), host: h });
        }
        let a = ensure(builder, t, t.arch)?;
        Ok(Prepared { target: join(t.layout, t.arch, &a, t.host, &h)?, host: h })
    }
}

/// Builds (or reuses) the parts of the toolchain for `arch` and composes `toolchain/ARCH/`.
pub fn ensure<B: PartBuilder>(builder: &B, t: &Target<'_>, arch: Arch) -> Result<Provided, B::Error> {
    let outputs = builder.build_parts(cross_parts(t, arch)?)?;
    Ok(compose(t.layout, arch, &outputs)?)
}

/// Makes `toolchain/ARCH/` the union of the parts' staged outputs unless it already is.
fn compose(layout: &Layout, arch: Arch, outputs: &BTreeMap<String, String>) -> Result<Provided, ToolchainError> {
    let layers: Vec<(String, PathBuf)> =
        PARTS.iter().map(|n| (n.to_string(), layout.staging(Domain::Cross(arch), n))).collect();
    let provided = Provided { dir: layout.gcc_toolchain(arch), signature: composed_signature(outputs) };
    super::compose_marked(&layers, &provided, &layout.composed_marker(Domain::Cross(arch)), || {})?;
    Ok(provided)
}

/// What target packages of `arch` build with: the toolchain of `arch`, joined with the host's
/// (for `$HOSTCC`): every path of a gcc toolchain is either target-prefixed or under a target
/// directory, so the two never collide.
fn join(layout: &Layout, arch: Arch, target: &Provided, host: Arch, h: &Provided) -> Result<Provided, ToolchainError> {
    let provided =
        Provided { dir: layout.joined_toolchain(arch, host), signature: joined_signature(target, arch, h, host) };
    let layers = vec![(arch.name().to_string(), target.dir.clone()), (host.name().to_string(), h.dir.clone())];
    super::compose_marked(&layers, &provided, &layout.joined_marker(arch), || {})?;
    Ok(provided)
}

/// `output/ARCH/ovm-sdk-ARCH.tar.gz`: the composed toolchain, with the runtime and development
/// packages of the image's recipes (`[pack] packages` and their dependencies, those built for
/// `arch`) merged into its sysroot. Written to a temporary name, then renamed.
pub fn write_sdk(
    project: &Project,
    recipes: &RecipeSet,
    arch: Arch,
    built: &Provided,
) -> Result<PathBuf, ToolchainError> {
    let top = format!("ovm-sdk-{arch}");
    let sysroot = format!("{}/sys-root", arch.musl_triple());
    let mut entries: BTreeMap<String, SdkEntry> = BTreeMap::new();
    collect(&built.dir, &top, &mut entries)?;
    // The toolchain never ships a file of that name; the map keeps it in path order with the rest.
    entries.insert(format!("{top}/{SDK_SETUP}"), SdkEntry::Generated(sdk_setup_script(arch)));
    // The image's packages (Yocto's populate_sdk follows the image): an application compiles
    // against exactly the libraries the image ships, with their headers.
    for r in recipes.image_packages(project.config.pack.packages.as_deref())? {
        for part in [crate::layout::Part::Runtime, crate::layout::Part::Dev] {
            let staged = project.layout().staged_part(Domain::Target(arch), &r.name, part);
            if staged.is_dir() {
                collect(&staged, &format!("{top}/{sysroot}"), &mut entries)?;
            }
        }
    }
    let out_dir = project.layout().output(arch);
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

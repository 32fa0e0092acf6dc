//! The zig toolchain: the static `zig` binary from PyPI's `ziglang` wheel, driven through generated
//! `ARCH-linux-musl-*` wrapper scripts.
//!
//! Why wrappers and not symlinks: zig is one multi-call binary that needs a subcommand and a target
//! (`zig cc -target aarch64-linux-musl`), and a few GNU options that kbuild passes must be dropped
//! before they reach LLD. Why POSIX sh: the wrappers run in the strict sandbox, where the only shell is
//! the build tools' static busybox at `/bin/sh`, and on the host (`--no-sandbox`, tests).
//!
//! Relocatable by construction: a wrapper finds zig as `${0%/*}/../ziglang/zig`, i.e. relative to
//! itself, never through an absolute path, so the same directory works bound at `/ovm/toolchain` in a
//! sandbox, at `toolchain/zig/` on the host, or copied anywhere. zig locates its own `lib/` relative to
//! its executable, so nothing else in the wheel depends on where it lives.
//!
//! Directory layouts (`root` = the unpacked wheel, untouched except for `bin/`). Both are accepted:
//! ```text
//! as in the wheel (unzip):                    with the top directory stripped (recipe strip = 1):
//! root/ziglang/zig                            root/zig          the compiler (clang/LLD 19, musl 1.2.5)
//! root/ziglang/lib/…                          root/lib/…
//! root/ziglang-VERSION.dist-info/METADATA     root/METADATA     `Version:`
//! root/ziglang-VERSION.dist-info/RECORD       root/RECORD       sha256 + size of every wheel file
//! root/bin/ARCH-linux-musl-TOOL               root/bin/…        generated here, for every arch in Arch::ALL
//! ```
//!
//! What zig cannot do, and how the wrappers deal with it:
//! - `strip`: zig has none; `zig objcopy --strip-all|--strip-debug IN OUT` plus GNU strip's in-place
//!   semantics in the wrapper. zig objcopy cannot remove named sections; `-R .comment`/`-R .note*`
//!   (busybox's final strip asks for them) are metadata of a few bytes and are accepted and ignored,
//!   any other `-R` is refused rather than silently kept.
//! - `nm`: zig bundles no llvm-nm. The wrapper exists so the tool set is complete, and fails with exit
//!   127 ("not found") and a message naming the cause, so configure scripts fall back as they do when
//!   nm is missing, and a recipe that really needs nm gets an explanation instead of a puzzle.
//! - `ld`: `zig ld.lld` (LLD, GNU-compatible); fine for `ld -r`, which is what builds call directly.
//!
//! Signature: sha256 over the wheel's `RECORD` (which itself holds the sha256 of every file in the
//! wheel, zig included) and the installed wrappers' bytes. Reading RECORD (≈1.5 MB) instead of hashing
//! 340 MB keeps a no-op build fast; [`ZigToolchain::open`] checks the zig binary's size against RECORD
//! so a truncated unpack is caught cheaply, and the wheel's own sha256 was verified by the fetcher.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{tool_name, PartBuilder, Parts, Prepared, Provided, Target, Tool, Toolchain, ToolchainError};
use crate::arch::Arch;
use crate::digest::hex;
use crate::layout::{Domain, Layout};

/// The zig toolchain as the engine prepares it: the `zig` recipe (the wheel, unpacked and given
/// wrappers) built in the `toolchain` domain. One directory serves every target and the host.
#[derive(Debug, Clone, Copy)]
pub struct Zig;

/// The recipe of the zig toolchain.
pub const RECIPE: &str = "zig";

impl Zig {
    fn provided(layout: &Layout, signature: String) -> Prepared {
        let p = Provided { dir: layout.staging(Domain::Toolchain, RECIPE), signature };
        Prepared { target: p.clone(), host: p }
    }
}

impl Toolchain for Zig {
    fn parts<'r>(&self, t: &Target<'r>) -> Result<Vec<Parts<'r>>, ToolchainError> {
        Ok(vec![Parts {
            domain: Domain::Toolchain,
            recipes: vec![t.recipes.require(RECIPE)?],
            equipment: super::Equipment::default(),
            hint: None,
        }])
    }

    fn current(&self, t: &Target<'_>, recorded: &dyn Fn(Domain, &str) -> Option<String>) -> Prepared {
        Zig::provided(t.layout, recorded(Domain::Toolchain, RECIPE).unwrap_or_default())
    }

    fn prepare<B: PartBuilder>(&self, builder: &B, t: &Target<'_>) -> Result<Prepared, B::Error> {
        let mut outputs = BTreeMap::new();
        for parts in self.parts(t)? {
            outputs.extend(builder.build_parts(parts)?);
        }
        Ok(Zig::provided(t.layout, outputs.remove(RECIPE).unwrap_or_default()))
    }
}

/// Bumped when the signature's composition changes (the wrappers' text is hashed itself).
const SIGNATURE_FORMAT: &str = "ovm-zig-toolchain-1";

/// The zig binary as the wheel's RECORD names it, which is also where it sits in an unzipped wheel.
const ZIG_IN_WHEEL: &str = "ziglang/zig";
/// Where it sits when the wheel's top directory was stripped while unpacking.
const ZIG_STRIPPED: &str = "zig";

/// Options of GNU ld that kbuild (busybox's Makefile, scripts/trylink) passes and zig's linker
/// frontend rejects; all three only produce diagnostics or a map file, never change the output.
const DROPPED_LINK_FLAGS: &str = "-Wl,--warn-common | -Wl,--verbose | -Wl,-Map,* | -Wl,-Map=*";

/// An unpacked `ziglang` wheel.
#[derive(Debug, Clone)]
pub struct ZigToolchain {
    root: PathBuf,
    version: String,
    record: PathBuf,
    /// The zig binary relative to `root` (and so to `bin/..`): [`ZIG_IN_WHEEL`] or [`ZIG_STRIPPED`].
    zig_rel: &'static str,
}

impl ZigToolchain {
    /// Opens the unpacked wheel at `root` (either layout): finds its metadata, reads the version,
    /// and checks that the zig binary has the size RECORD gives and is built for the host.
    pub fn open(root: &Path) -> Result<ZigToolchain, ToolchainError> {
        let (meta_dir, zig_rel) = if root.join(ZIG_STRIPPED).is_file() && root.join("RECORD").is_file() {
            (root.to_path_buf(), ZIG_STRIPPED)
        } else {
            (find_dist_info(root)?, ZIG_IN_WHEEL)
        };
        let metadata_path = meta_dir.join("METADATA");
        let metadata = read_to_string(&metadata_path)?;
        let version = metadata
            .lines()
            .find_map(|l| l.strip_prefix("Version:"))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or(ToolchainError::NoVersion { path: metadata_path })?;
        let record = meta_dir.join("RECORD");
        let expected = recorded_size(&read_to_string(&record)?, ZIG_IN_WHEEL)
            .ok_or_else(|| ToolchainError::ZigNotRecorded { path: record.clone() })?;
        let zig = root.join(zig_rel);
        let meta = fs::metadata(&zig).map_err(|source| ToolchainError::Read { path: zig.clone(), source })?;
        if meta.len() != expected {
            return Err(ToolchainError::ZigSize { path: zig, expected, actual: meta.len() });
        }
        check_elf_machine(&zig)?;
        Ok(ZigToolchain { root: root.to_path_buf(), version, record, zig_rel })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The wheel's version, e.g. `0.14.1`.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn zig(&self) -> PathBuf {
        self.root.join(self.zig_rel)
    }

    /// The directory to put on PATH (host) or that appears as `/ovm/toolchain/bin` (sandbox).
    pub fn bin_dir(&self) -> PathBuf {
        self.root.join("bin")
    }

    pub fn tool_path(&self, arch: Arch, tool: Tool) -> PathBuf {
        self.bin_dir().join(tool_name(arch, tool))
    }

    /// Writes every wrapper for every arch into `bin/` (each via a temp file and a rename, so a
    /// killed install never leaves a half-written script under a real name) and makes sure the zig
    /// binary is executable (a zip unpacker may not restore modes). Returns the wrappers' paths.
    pub fn install_wrappers(&self) -> Result<Vec<PathBuf>, ToolchainError> {
        let zig = self.zig();
        let mode = fs::metadata(&zig).map_err(|source| ToolchainError::Read { path: zig.clone(), source })?;
        if mode.permissions().mode() & 0o111 != 0o111 {
            fs::set_permissions(&zig, fs::Permissions::from_mode(0o755))
                .map_err(|source| ToolchainError::Chmod { path: zig.clone(), source })?;
        }
        let bin = self.bin_dir();
        fs::create_dir_all(&bin).map_err(|source| ToolchainError::CreateDir { path: bin.clone(), source })?;
        let mut written = Vec::new();
        for arch in Arch::ALL {
            for tool in Tool::ALL {
                let path = self.tool_path(arch, tool);
                write_executable(&path, wrapper_script(arch, tool, &self.version, self.zig_rel).as_bytes())?;
                written.push(path);
            }
        }
        Ok(written)
    }

    /// The signature of the installed toolchain (64 hex digits): changes when the wheel (any file
    /// of it, through RECORD) or any wrapper changes. Fails if a wrapper is not installed.
    pub fn signature(&self) -> Result<String, ToolchainError> {
        let mut h = Sha256::new();
        h.update(SIGNATURE_FORMAT.as_bytes());
        h.update(b"\0version\0");
        h.update(self.version.as_bytes());
        h.update(b"\0record\0");
        h.update(Sha256::digest(read(&self.record)?));
        for arch in Arch::ALL {
            for tool in Tool::ALL {
                let path = self.tool_path(arch, tool);
                let bytes =
                    fs::read(&path).map_err(|source| ToolchainError::WrapperMissing { path: path.clone(), source })?;
                h.update(b"\0wrapper\0");
                h.update(tool_name(arch, tool).as_bytes());
                h.update(b"\0");
                h.update(Sha256::digest(&bytes));
            }
        }
        Ok(hex(&h.finalize()))
    }
}

/// The text of one wrapper script; `zig_rel` is the zig binary relative to the toolchain root
/// (`ziglang/zig` or `zig`). Pure, so the engine can show it and tests can inspect it.
pub fn wrapper_script(arch: Arch, tool: Tool, version: &str, zig_rel: &str) -> String {
    let body = match tool {
        Tool::Cc | Tool::Gcc => CC_BODY.replace("@ZIGCMD@", "cc"),
        Tool::Cxx => CC_BODY.replace("@ZIGCMD@", "c++"),
        Tool::Ar => "exec \"$zig\" ar \"$@\"\n".to_string(),
        Tool::Ranlib => "exec \"$zig\" ranlib \"$@\"\n".to_string(),
        Tool::Objcopy => "exec \"$zig\" objcopy \"$@\"\n".to_string(),
        Tool::Ld => "exec \"$zig\" ld.lld \"$@\"\n".to_string(),
        Tool::Strip => STRIP_BODY.to_string(),
        Tool::Nm => NM_BODY.to_string(),
    };
    HEADER.replace("@NAME@", &tool_name(arch, tool)).replace("@VERSION@", version).replace("@ZIG@", zig_rel)
        + &body.replace("@TRIPLE@", arch.musl_triple()).replace("@DROPPED@", DROPPED_LINK_FLAGS)
}

const HEADER: &str = r#"#!/bin/sh
# @NAME@: generated by ovm for the zig @VERSION@ toolchain; regenerated on install, do not edit.
# zig is found relative to this script, so the toolchain directory works wherever it is bound.
me=@NAME@
case $0 in */*) bin=${0%/*} ;; *) bin=. ;; esac
zig=$bin/../@ZIG@
"#;

// `zig cc` with the target fixed (an explicit -target also means a baseline CPU, never the build
// machine's), and, when it links, a GNU build-id (as gcc's `--enable-linker-build-id` gives):
// the package step files each program's debug info under it. Only when it links: `-c` with a
// linker flag draws clang's "argument unused" warning, an error under -Werror; a query of the
// compiler (`-v`, `--version`, `-print-*`) does not link either. The loop rebuilds "$@" without the dropped flags and keeps every other argument intact,
// spaces and all.
const CC_BODY: &str = r#"n=$#
link=--build-id=sha1
while [ "$n" -gt 0 ]; do
	a=$1
	shift
	n=$((n - 1))
	case $a in
	@DROPPED@) ;;
	-c | -S | -E | -M | -MM | -v | --version | -dump* | -print-* | --print-*) link= ; set -- "$@" "$a" ;;
	*) set -- "$@" "$a" ;;
	esac
done
exec "$zig" @ZIGCMD@ -target @TRIPLE@ ${link:+"-Wl,$link"} "$@"
"#;

const STRIP_BODY: &str = r#"mode=--strip-all
out=
n=$#
while [ "$n" -gt 0 ]; do
	a=$1
	shift
	n=$((n - 1))
	case $a in
	-s | --strip-all) mode=--strip-all ;;
	# --strip-unneeded must keep the symbols relocations use; --strip-debug is the safe subset.
	-g | -S | -d | --strip-debug | --strip-unneeded) mode=--strip-debug ;;
	-o)
		[ "$n" -gt 0 ] || { echo "$me: -o needs a file name" >&2; exit 1; }
		out=$1
		shift
		n=$((n - 1))
		;;
	-o?*) out=${a#-o} ;;
	-R | --remove-section)
		[ "$n" -gt 0 ] || { echo "$me: $a needs a section name" >&2; exit 1; }
		sec=$1
		shift
		n=$((n - 1))
		case $sec in .comment | .note | .note.*) ;; *) echo "$me: cannot remove section $sec (zig objcopy cannot)" >&2; exit 1 ;; esac
		;;
	-R?* | --remove-section=*)
		sec=${a#--remove-section=}
		sec=${sec#-R}
		case $sec in .comment | .note | .note.*) ;; *) echo "$me: cannot remove section $sec (zig objcopy cannot)" >&2; exit 1 ;; esac
		;;
	-p | --preserve-dates | -v | --verbose | -D | --enable-deterministic-archives) ;;
	-*) echo "$me: unsupported option $a (strip is emulated with zig objcopy)" >&2; exit 1 ;;
	*) set -- "$@" "$a" ;;
	esac
done
[ "$#" -gt 0 ] || { echo "$me: no input files" >&2; exit 1; }
if [ -n "$out" ]; then
	[ "$#" -eq 1 ] || { echo "$me: -o takes exactly one input file" >&2; exit 1; }
	exec "$zig" objcopy "$mode" "$1" "$out"
fi
for f; do
	tmp=$f.ovm-strip.$$
	"$zig" objcopy "$mode" "$f" "$tmp" || { rm -f "$tmp"; exit 1; }
	# Write back into the same inode, like GNU strip: keeps mode, owner and hard links.
	cat "$tmp" >"$f" || { rm -f "$tmp"; exit 1; }
	rm -f "$tmp"
done
"#;

const NM_BODY: &str = r#"echo "$me: not available: zig bundles no nm (llvm-nm); use the gcc toolchain for packages that need it" >&2
exit 127
"#;

fn find_dist_info(root: &Path) -> Result<PathBuf, ToolchainError> {
    let entries = fs::read_dir(root).map_err(|source| ToolchainError::Read { path: root.to_path_buf(), source })?;
    let mut found: Option<String> = None;
    for entry in entries {
        let entry = entry.map_err(|source| ToolchainError::Read { path: root.to_path_buf(), source })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("ziglang-") && name.ends_with(".dist-info") {
            if let Some(first) = found {
                let (first, second) = if first < name { (first, name) } else { (name, first) };
                return Err(ToolchainError::TwoDistInfos { root: root.to_path_buf(), first, second });
            }
            found = Some(name);
        }
    }
    found.map(|n| root.join(n)).ok_or_else(|| ToolchainError::NoDistInfo { root: root.to_path_buf() })
}

/// The size RECORD gives for `path`. RECORD is CSV (`path,sha256=…,size`); the wheel's paths have
/// no commas or quotes, and a path that did would simply not match here (→ ZigNotRecorded).
fn recorded_size(record: &str, path: &str) -> Option<u64> {
    record.lines().find_map(|line| {
        let mut fields = line.rsplitn(3, ',');
        let size = fields.next()?;
        let _hash = fields.next()?;
        (fields.next()? == path).then(|| size.trim().parse().ok()).flatten()
    })
}

/// Refuses a zig built for another machine (e.g. the x86_64 wheel on an aarch64 host): it would
/// only fail later as "Exec format error" deep inside a package build.
fn check_elf_machine(zig: &Path) -> Result<(), ToolchainError> {
    use std::io::Read;
    let mut header = [0u8; 20];
    fs::File::open(zig)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|source| ToolchainError::Read { path: zig.to_path_buf(), source })?;
    let machine = match (&header[..4], u16::from_le_bytes([header[18], header[19]])) {
        (b"\x7fELF", 62) => "x86_64",
        (b"\x7fELF", 183) => "aarch64",
        (b"\x7fELF", _) => "another ELF machine",
        _ => "not an ELF file",
    };
    let host = std::env::consts::ARCH;
    if machine != host {
        return Err(ToolchainError::WrongHostArch {
            path: zig.to_path_buf(),
            found: machine.into(),
            host: host.into(),
        });
    }
    Ok(())
}

fn write_executable(path: &Path, bytes: &[u8]) -> Result<(), ToolchainError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |source| ToolchainError::Write { path: path.to_path_buf(), source };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(0o755)).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, ToolchainError> {
    fs::read(path).map_err(|source| ToolchainError::Read { path: path.to_path_buf(), source })
}

fn read_to_string(path: &Path) -> Result<String, ToolchainError> {
    fs::read_to_string(path).map_err(|source| ToolchainError::Read { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests;

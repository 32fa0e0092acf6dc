//! Cross toolchains as the build sandbox sees them.
//!
//! Every toolchain kind (zig, gcc built from source, an external directory) ends up as the same thing:
//! a directory whose `bin/` holds `ARCH-linux-musl-{cc,gcc,c++,ar,ranlib,nm,strip,objcopy,ld}` for the
//! targets it supports, bound read-only at `/ovm/toolchain`. Recipes never name a toolchain; they use
//! `$CC`, `$CROSS_COMPILE`, `$HOSTCC` … from [`build_env`], so a package builds unchanged on any kind.
//!
//! This module holds what is common to all kinds (tool names, the build environment, the
//! [`Toolchain`] trait through which the engine prepares one) and one submodule per kind that
//! knows how to install it and how to compute its signature (the input the engine folds into
//! every package's task signatures, so a toolchain change rebuilds everything).
//!
//! The toolchain sits below the engine: what it needs built (gcc's parts, zig's wheel) it hands to
//! a [`PartBuilder`], which the engine implements; it never calls into the engine itself.

pub mod external;
pub mod gcc;
pub mod host_prereqs;
pub mod zig;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::arch::Arch;
use crate::layout::{Domain, Layout};
use crate::recipe::{Recipe, RecipeSet};

/// The tools every toolchain provides per target, in the order the module comment lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tool {
    Cc,
    Gcc,
    Cxx,
    Ar,
    Ranlib,
    Nm,
    Strip,
    Objcopy,
    Ld,
}

impl Tool {
    pub const ALL: [Tool; 9] =
        [Tool::Cc, Tool::Gcc, Tool::Cxx, Tool::Ar, Tool::Ranlib, Tool::Nm, Tool::Strip, Tool::Objcopy, Tool::Ld];

    /// The part after `ARCH-linux-musl-`.
    pub fn suffix(self) -> &'static str {
        match self {
            Tool::Cc => "cc",
            Tool::Gcc => "gcc",
            Tool::Cxx => "c++",
            Tool::Ar => "ar",
            Tool::Ranlib => "ranlib",
            Tool::Nm => "nm",
            Tool::Strip => "strip",
            Tool::Objcopy => "objcopy",
            Tool::Ld => "ld",
        }
    }
}

/// `x86_64-linux-musl-cc` and friends: the file name of `tool` for `arch` in a toolchain's `bin/`.
pub fn tool_name(arch: Arch, tool: Tool) -> String {
    format!("{}-{}", arch.musl_triple(), tool.suffix())
}

/// Where the toolchain directory is bound inside a build sandbox.
pub const SANDBOX_TOOLCHAIN_DIR: &str = "/ovm/toolchain";

/// The toolchain part of a package build's environment (the rest is `engine::env`'s): bare
/// tool names, resolved through `PATH=/ovm/tools/bin:/ovm/toolchain/bin`, so the same values work in
/// the sandbox and, with the toolchain's `bin/` on PATH, on the host (`--no-sandbox`).
///
/// `host` is the arch the build runs on: `HOSTCC` builds helpers that run during the build (kbuild's
/// fixdep/conf); it must be a musl wrapper too, since the strict sandbox has no host libc to link or
/// run against.
pub fn build_env(target: Arch, host: Arch) -> Vec<(&'static str, String)> {
    let t = |tool| tool_name(target, tool);
    vec![
        ("TARGET", target.musl_triple().to_string()),
        ("CROSS_COMPILE", format!("{}-", target.musl_triple())),
        ("CC", t(Tool::Cc)),
        ("CXX", t(Tool::Cxx)),
        ("AR", t(Tool::Ar)),
        ("RANLIB", t(Tool::Ranlib)),
        ("STRIP", t(Tool::Strip)),
        ("NM", t(Tool::Nm)),
        ("OBJCOPY", t(Tool::Objcopy)),
        ("LD", t(Tool::Ld)),
        ("HOSTCC", tool_name(host, Tool::Cc)),
        ("ARCH", target.kernel_arch().to_string()),
    ]
}

/// A toolchain directory as sandboxes bind it (at [`SANDBOX_TOOLCHAIN_DIR`]), with the signature
/// every package built with it folds into its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provided {
    pub dir: PathBuf,
    pub signature: String,
}

/// What the sandboxes of one domain build with: a toolchain and, for target packages, the build
/// tools (bound at /ovm/tools), each with its signature.
#[derive(Debug, Clone, Default)]
pub struct Equipment {
    pub toolchain_dir: PathBuf,
    pub toolchain_sig: String,
    /// `None` while the tools themselves (or a toolchain) are being built.
    pub tools_dir: Option<PathBuf>,
    pub tools_sig: String,
    /// Target packages only: the output hash of every native tool built (`recipes/native/`, in
    /// the tools domain); a package binds and signs the ones it names.
    pub native: BTreeMap<String, String>,
}

impl Equipment {
    /// Building with `toolchain` alone: the build tools, or a toolchain's own parts.
    pub fn bootstrap(toolchain: Provided) -> Equipment {
        Equipment { toolchain_dir: toolchain.dir, toolchain_sig: toolchain.signature, ..Equipment::default() }
    }

    pub fn toolchain(&self) -> Provided {
        Provided { dir: self.toolchain_dir.clone(), signature: self.toolchain_sig.clone() }
    }
}

/// Packages of one domain a toolchain is made of, and what they are built with.
pub struct Parts<'r> {
    pub domain: Domain,
    pub recipes: Vec<&'r Recipe>,
    pub equipment: Equipment,
    /// What most likely explains a failure of these parts (a missing host tool), if anything.
    pub hint: Option<ToolchainError>,
}

/// The engine, as a toolchain sees it: it builds (or reuses) packages and returns each one's
/// output hash.
pub trait PartBuilder {
    type Error: From<ToolchainError>;
    fn build_parts(&self, parts: Parts<'_>) -> Result<BTreeMap<String, String>, Self::Error>;
}

/// A build's two toolchains: the one target packages of `arch` build with, and the one the build
/// tools (which run on the host) are compiled with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prepared {
    pub target: Provided,
    pub host: Provided,
}

/// What a toolchain is asked for: the project's recipes and paths, the architecture target
/// packages are built for, and the one ovm runs on.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub recipes: &'a RecipeSet,
    pub layout: &'a Layout,
    pub arch: Arch,
    pub host: Arch,
}

/// What a kind of toolchain provides the engine.
pub trait Toolchain {
    /// The packages it is made of (built, and so fetched, before anything else).
    fn parts<'r>(&self, t: &Target<'r>) -> Result<Vec<Parts<'r>>, ToolchainError>;

    /// What [`Toolchain::prepare`] would return now, without building anything (`ovm status`,
    /// `ovm spec`, planning the fetch). `recorded` is a package's recorded output hash.
    fn current(&self, t: &Target<'_>, recorded: &dyn Fn(Domain, &str) -> Option<String>) -> Prepared;

    /// Builds (through `builder`) or reuses what it is made of, and returns what it provides.
    fn prepare<B: PartBuilder>(&self, builder: &B, t: &Target<'_>) -> Result<Prepared, B::Error>;
}

/// The signature a [`compose_marked`] marker records; empty when nothing was composed yet.
pub fn recorded_signature(marker: &Path) -> String {
    std::fs::read_to_string(marker).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Makes `provided.dir` the union of `layers` unless `marker` already records `provided.signature`
/// for it: composed into a hidden sibling, swapped in, `composed` called (a fault point), and only
/// then the signature recorded, so a crash in between recomposes next time. The gcc toolchain, a
/// target's toolchain joined with the host's, and the build tools are all made this way.
pub fn compose_marked(
    layers: &[(String, PathBuf)],
    provided: &Provided,
    marker: &Path,
    composed: impl FnOnce(),
) -> Result<(), ToolchainError> {
    let target = &provided.dir;
    if recorded_signature(marker) == provided.signature && target.join("bin").is_dir() {
        return Ok(());
    }
    let tmp = Layout::composing(target);
    let swapped = crate::tree::remove_all(&tmp)
        .and_then(|()| crate::tree::compose(layers, &tmp))
        .and_then(|()| crate::tree::commit(&tmp, target));
    swapped.map_err(|source| ToolchainError::Compose { path: target.clone(), source })?;
    composed();
    // A domain none of whose packages ran yet (a project without build-tool recipes) has no
    // state directory: the marker is the first thing written there.
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ToolchainError::CreateDir { path: dir.to_path_buf(), source })?;
    }
    crate::tree::write_atomic(marker, provided.signature.as_bytes())
        .map_err(|source| ToolchainError::Write { path: marker.to_path_buf(), source })
}

/// Which toolchain a build uses: `[toolchain] kind` in the config, or `--toolchain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolchainKind {
    /// Built from source by ovm ([`gcc`]), per target: the default.
    Gcc,
    /// The zig wheel, unpacked ([`zig`]).
    Zig,
    /// A directory with `bin/ARCH-linux-musl-*` ([`external`]); relative to the project root.
    External(PathBuf),
}

impl FromStr for ToolchainKind {
    type Err = String;

    /// `gcc`, `zig` or `external:DIR` (the `--toolchain` spelling).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gcc" => Ok(ToolchainKind::Gcc),
            "zig" => Ok(ToolchainKind::Zig),
            _ => match s.strip_prefix("external:") {
                Some("") => Err("external: needs a directory (external:DIR)".into()),
                Some(dir) => Ok(ToolchainKind::External(dir.into())),
                None => Err(format!("unknown toolchain `{s}`: gcc, zig or external:DIR")),
            },
        }
    }
}

impl fmt::Display for ToolchainKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolchainKind::Gcc => f.write_str("gcc"),
            ToolchainKind::Zig => f.write_str("zig"),
            ToolchainKind::External(dir) => write!(f, "external:{}", dir.display()),
        }
    }
}

impl ToolchainKind {
    /// An external toolchain's directory, resolved against the project root.
    fn external(layout: &Layout, dir: &Path) -> external::External {
        external::External { dir: layout.root().join(dir) }
    }
}

impl Toolchain for ToolchainKind {
    fn parts<'r>(&self, t: &Target<'r>) -> Result<Vec<Parts<'r>>, ToolchainError> {
        match self {
            ToolchainKind::Gcc => gcc::Gcc.parts(t),
            ToolchainKind::Zig => zig::Zig.parts(t),
            ToolchainKind::External(dir) => Self::external(t.layout, dir).parts(t),
        }
    }

    fn current(&self, t: &Target<'_>, recorded: &dyn Fn(Domain, &str) -> Option<String>) -> Prepared {
        match self {
            ToolchainKind::Gcc => gcc::Gcc.current(t, recorded),
            ToolchainKind::Zig => zig::Zig.current(t, recorded),
            ToolchainKind::External(dir) => Self::external(t.layout, dir).current(t, recorded),
        }
    }

    fn prepare<B: PartBuilder>(&self, builder: &B, t: &Target<'_>) -> Result<Prepared, B::Error> {
        match self {
            ToolchainKind::Gcc => gcc::Gcc.prepare(builder, t),
            ToolchainKind::Zig => zig::Zig.prepare(builder, t),
            ToolchainKind::External(dir) => Self::external(t.layout, dir).prepare(builder, t),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    #[error("{root}: not an unpacked ziglang wheel: neither ziglang-*.dist-info/ nor zig + RECORD")]
    NoDistInfo { root: PathBuf },
    #[error("{root}: more than one ziglang-*.dist-info directory ({first}, {second}); unpack one wheel per directory")]
    TwoDistInfos { root: PathBuf, first: String, second: String },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: no `Version:` line")]
    NoVersion { path: PathBuf },
    #[error("{path}: the wheel's RECORD does not list ziglang/zig")]
    ZigNotRecorded { path: PathBuf },
    #[error("{path}: {actual} bytes, but the wheel's RECORD says {expected}: incomplete or altered unpack")]
    ZigSize { path: PathBuf, expected: u64, actual: u64 },
    #[error("{path}: the zig binary is for {found}, but this host is {host}: fetch the wheel for {host}")]
    WrongHostArch { path: PathBuf, found: String, host: String },
    #[error("cannot make {path} executable: {source}")]
    Chmod { path: PathBuf, source: std::io::Error },
    #[error("cannot create {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(
        "building the gcc toolchain needs these host programs, which are missing: {missing} (on Debian: apt-get \
         install {packages}; scripts/setup.sh installs them)"
    )]
    HostPrereqs { missing: String, packages: String },
    #[error("the gcc toolchain needs recipes/toolchain/{part}.toml, which is missing")]
    MissingPart { part: &'static str },
    #[error("{path}: a part of the gcc toolchain must be a toolchain recipe with a [build] section")]
    NotAPart { path: PathBuf },
    #[error(
        "{path}: depends on `{dep}`, which is not an earlier part of the gcc toolchain (binutils, gcc, linux-headers)"
    )]
    PartDependency { path: PathBuf, dep: String },
    #[error(transparent)]
    Recipe(#[from] crate::recipe::RecipeError),
    #[error("external toolchain {dir}: {reason}")]
    External { dir: PathBuf, reason: String },
    #[error("cannot compose {path}: {source}")]
    Compose { path: PathBuf, source: crate::tree::TreeError },
    #[error("{path}: wrapper missing or unreadable ({source}); install the toolchain's wrappers first")]
    WrapperMissing { path: PathBuf, source: std::io::Error },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolchain_kinds_parse_as_the_cli_spells_them() {
        assert_eq!("gcc".parse::<ToolchainKind>(), Ok(ToolchainKind::Gcc));
        assert_eq!("zig".parse::<ToolchainKind>(), Ok(ToolchainKind::Zig));
        assert_eq!("external:/opt/x".parse::<ToolchainKind>(), Ok(ToolchainKind::External("/opt/x".into())));
        for bad in ["external:", "clang", "external", ""] {
            assert!(bad.parse::<ToolchainKind>().is_err(), "{bad}");
        }
        for k in [ToolchainKind::Gcc, ToolchainKind::Zig, ToolchainKind::External("tc".into())] {
            assert_eq!(k.to_string().parse::<ToolchainKind>(), Ok(k));
        }
    }

    #[test]
    fn a_marker_in_a_state_directory_nothing_made_yet_is_written() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let part = tmp.path().join("part");
        std::fs::create_dir_all(part.join("bin")).expect("mkdir");
        std::fs::write(part.join("bin/tool"), "x").expect("write");
        let provided = Provided { dir: tmp.path().join("toolchain/tools"), signature: "abc".into() };
        let marker = tmp.path().join("states/tools/composed");
        compose_marked(&[("part".into(), part)], &provided, &marker, || {}).expect("composed");
        assert_eq!(recorded_signature(&marker), "abc");
        assert!(provided.dir.join("bin/tool").is_file());
    }

    #[test]
    fn tool_names_follow_the_musl_triple() {
        assert_eq!(tool_name(Arch::X86_64, Tool::Cxx), "x86_64-linux-musl-c++");
        assert_eq!(tool_name(Arch::Aarch64, Tool::Objcopy), "aarch64-linux-musl-objcopy");
        let names: std::collections::BTreeSet<_> = Tool::ALL.iter().map(|t| t.suffix()).collect();
        assert_eq!(names.len(), Tool::ALL.len(), "two tools share a name");
    }

    #[test]
    fn cross_env_uses_target_tools_and_a_host_hostcc() {
        let env: std::collections::BTreeMap<_, _> = build_env(Arch::Aarch64, Arch::X86_64).into_iter().collect();
        assert_eq!(env["CC"], "aarch64-linux-musl-cc");
        assert_eq!(env["CROSS_COMPILE"], "aarch64-linux-musl-");
        assert_eq!(env["HOSTCC"], "x86_64-linux-musl-cc");
        assert_eq!(env["ARCH"], "arm64");
        assert_eq!(env["TARGET"], "aarch64-linux-musl");
        // Every tool variable names a tool of the target, so a `--no-sandbox` build with the
        // toolchain's bin/ on PATH finds exactly what the sandbox would.
        for key in ["CC", "CXX", "AR", "RANLIB", "STRIP", "NM", "OBJCOPY", "LD"] {
            assert!(env[key].starts_with("aarch64-linux-musl-"), "{key}={}", env[key]);
        }
    }
}

//! Cross toolchains as the build sandbox sees them.
//!
//! Every toolchain kind (zig, gcc built from source, an external directory) ends up as the same thing:
//! a directory whose `bin/` holds `ARCH-linux-musl-{cc,gcc,c++,ar,ranlib,nm,strip,objcopy,ld}` for the
//! targets it supports, bound read-only at `/ovm/toolchain`. Recipes never name a toolchain; they use
//! `$CC`, `$CROSS_COMPILE`, `$HOSTCC` … from [`build_env`], so a package builds unchanged on any kind.
//!
//! This module holds what is common to all kinds (tool names, the build environment) and one
//! submodule per kind that knows how to install it and how to compute its signature (the input the
//! engine folds into every package's task signatures, so a toolchain change rebuilds everything).

pub mod gcc;
pub mod host_prereqs;
pub mod zig;

use std::path::PathBuf;

use crate::arch::Arch;

/// The tools every toolchain provides per target, in the order of COMMON's convention.
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

/// The toolchain part of a package build's environment (COMMON.md "In-sandbox conventions"): bare
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
    #[error("{path}: wrapper missing or unreadable ({source}); install the toolchain's wrappers first")]
    WrapperMissing { path: PathBuf, source: std::io::Error },
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! A *domain* is one set of packages built together for one architecture in one sandbox profile,
//! with its own `work/`, `states/`, `staging/` and `logs/` subdirectory:
//!
//! * `tools` — the build tools (static busybox, static GNU make) for the host architecture, built in
//!   the `toolchain` profile (host /usr read-only, no network), composed into `toolchain/tools/`.
//! * `x86_64`, `aarch64` — the target packages, built in the strict `package` profile.
//! * `toolchain` — a prebuilt cross toolchain (the zig wheel), host architecture.
//! * `cross-x86_64`, `cross-aarch64` — the parts of the gcc cross toolchain for one *target*
//!   (binutils, gcc + musl, Linux headers), built in the `toolchain` profile with the host compiler.
//!   Unlike zig, one build serves one target: `$TARGET` (and so `--target=`) comes from the domain's
//!   arch, while the host compiler does the compiling. Their staged outputs are composed into
//!   `toolchain/ARCH/` (see `crate::toolchain::gcc`).
//!
//! Keeping them apart is what lets one `busybox` recipe name exist both as a target package and as a
//! build tool, and lets aarch64 reuse the build tools made for x86_64.

use std::fmt;

use crate::arch::Arch;

/// Which host things a step may see; decides PATH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Strict: only /ovm/tools and /ovm/toolchain; no host /usr at all.
    Package,
    /// Bootstrap of the build tools (and gcc): host /usr read-only, still no network.
    Toolchain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    Toolchain,
    Cross(Arch),
    Tools(Arch),
    Target(Arch),
}

impl Domain {
    /// The directory name under work/, states/, staging/, logs/.
    pub fn dir_name(self) -> &'static str {
        match self {
            Domain::Toolchain => "toolchain",
            Domain::Cross(Arch::X86_64) => "cross-x86_64",
            Domain::Cross(Arch::Aarch64) => "cross-aarch64",
            Domain::Tools(_) => "tools",
            Domain::Target(a) => a.name(),
        }
    }

    /// The architecture the packages of this domain are compiled for.
    pub fn arch(self) -> Arch {
        match self {
            Domain::Toolchain => Arch::host_or_default(),
            Domain::Cross(a) | Domain::Tools(a) | Domain::Target(a) => a,
        }
    }

    /// Whether its packages' outputs are split into parts (`split`): the target's are, because
    /// images and sysroots take different parts of them; a build tool or a toolchain part is
    /// used whole.
    pub fn splits(self) -> bool {
        matches!(self, Domain::Target(_))
    }

    pub fn profile(self) -> Profile {
        match self {
            Domain::Target(_) => Profile::Package,
            Domain::Toolchain | Domain::Cross(_) | Domain::Tools(_) => Profile::Toolchain,
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}

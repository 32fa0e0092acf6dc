//! Target architectures. Every name the user can type maps to one `Arch`; every
//! tool that wants its own spelling (GNU triple, Debian, QEMU, zig) asks here.

use std::fmt;
use std::str::FromStr;

/// On the command line a `clap::ValueEnum` (the names and aliases of [`Arch::from_str`], which
/// config files and `ovm clean`'s mixed arguments use), so help and completions list the choices.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    #[value(name = "x86_64", alias = "amd64", alias = "x86-64")]
    X86_64,
    #[value(name = "aarch64", alias = "arm64")]
    Aarch64,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown architecture `{0}`: expected x86_64 (alias amd64) or aarch64 (alias arm64)")]
pub struct UnknownArch(pub String);

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The canonical name, also the directory name under work/, states/, output/ …
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// `ARCH-linux-musl`, the prefix of every cross tool.
    pub fn musl_triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-musl",
            Arch::Aarch64 => "aarch64-linux-musl",
        }
    }

    /// Debian's architecture name (packages, kernels).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// Linux's ARCH= for kbuild trees.
    pub fn kernel_arch(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// The architecture ovm itself runs on; build tools are built for it.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Aarch64),
            _ => None,
        }
    }
}

impl FromStr for Arch {
    type Err = UnknownArch;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "x86_64" | "amd64" | "x86-64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            other => Err(UnknownArch(other.to_string())),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_parse_to_the_same_arch() {
        assert_eq!("amd64".parse::<Arch>().unwrap(), Arch::X86_64);
        assert_eq!("x86_64".parse::<Arch>().unwrap(), Arch::X86_64);
        assert_eq!("arm64".parse::<Arch>().unwrap(), Arch::Aarch64);
        assert_eq!("aarch64".parse::<Arch>().unwrap(), Arch::Aarch64);
    }

    #[test]
    fn the_command_line_takes_the_same_names_as_from_str() {
        use clap::ValueEnum;
        for name in ["x86_64", "amd64", "x86-64", "aarch64", "arm64", "riscv64", "X86_64", ""] {
            assert_eq!(<Arch as ValueEnum>::from_str(name, false).ok(), name.parse::<Arch>().ok(), "{name}");
        }
        for arch in Arch::ALL {
            assert_eq!(arch.to_possible_value().map(|v| v.get_name().to_string()), Some(arch.name().to_string()));
        }
    }

    #[test]
    fn unknown_arch_names_the_input_and_the_choices() {
        let err = "riscv64".parse::<Arch>().unwrap_err().to_string();
        assert!(err.contains("riscv64") && err.contains("x86_64") && err.contains("aarch64"), "{err}");
    }
}

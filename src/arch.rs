//! Target architectures. Every name the user can type maps to one `Arch`; every
//! tool that wants its own spelling (GNU triple, Debian, QEMU, zig) asks here.

use std::fmt;
use std::str::FromStr;

/// On the command line parsed by [`ArchParser`] (the names and aliases of [`Arch::from_str`],
/// which config files and `ovm clean`'s mixed arguments use), so help and completions list the
/// choices and a near miss gets a suggestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86_64,
    Aarch64,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown architecture `{typed}`: expected x86_64 (alias amd64) or aarch64 (alias arm64){hint}",
    typed = .0,
    hint = Arch::suggest(.0).map(|a| format!("; did you mean {a}?")).unwrap_or_default()
)]
pub struct UnknownArch(pub String);

/// Every spelling [`Arch::from_str`] takes, with its architecture.
const SPELLINGS: [(&str, Arch); 5] = [
    ("x86_64", Arch::X86_64),
    ("amd64", Arch::X86_64),
    ("x86-64", Arch::X86_64),
    ("aarch64", Arch::Aarch64),
    ("arm64", Arch::Aarch64),
];

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

    /// The ELF header's `e_machine` of this architecture's programs (`EM_X86_64`, `EM_AARCH64`).
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => 62,
            Arch::Aarch64 => 183,
        }
    }

    /// Linux's ARCH= for kbuild trees.
    pub fn kernel_arch(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// The architecture a mistyped name most likely meant (`x86-65`, `arm64x`, `AMD64`): the one
    /// with a spelling at most two edits away (ignoring case), the closest if several; `None` for
    /// a word that is not near any (`riscv64`), so no suggestion is made up.
    pub fn suggest(typed: &str) -> Option<Arch> {
        let typed = typed.to_ascii_lowercase();
        SPELLINGS
            .iter()
            .map(|(name, arch)| (strsim::levenshtein(&typed, name), *arch))
            .filter(|(d, _)| *d <= 2 && *d < typed.len())
            .min_by_key(|(d, _)| *d)
            .map(|(_, arch)| arch)
    }

    /// The architecture a command acts on when none is named: the host's, or x86_64 on a machine
    /// that is neither (the one place this default is decided).
    pub fn host_or_default() -> Arch {
        Arch::host().unwrap_or(Arch::X86_64)
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

/// Parses an ARCH argument with [`Arch::from_str`]: its names and aliases are the possible
/// values clap shows in help and completions, and a near miss gets [`Arch::suggest`]'s suggestion
/// (which knows the aliases too: `amd46` → x86_64), rendered as clap renders its own ("tip: a
/// similar value exists"). Every `arch: Arch` argument gets it through [`ValueParserFactory`]
/// (not a `clap::ValueEnum` derive: clap would prefer that and its alias-blind suggestions).
///
/// [`ValueParserFactory`]: clap::builder::ValueParserFactory
#[derive(Debug, Clone, Copy)]
pub struct ArchParser;

impl clap::builder::TypedValueParser for ArchParser {
    type Value = Arch;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Arch, clap::Error> {
        use clap::error::{ContextKind, ContextValue, ErrorKind};
        let typed = value.to_string_lossy();
        if let Ok(arch) = typed.parse::<Arch>() {
            return Ok(arch);
        }
        let mut err = clap::Error::new(ErrorKind::InvalidValue).with_cmd(cmd);
        let arg = arg.map_or_else(|| "ARCH".to_string(), ToString::to_string);
        err.insert(ContextKind::InvalidArg, ContextValue::String(arg));
        err.insert(ContextKind::InvalidValue, ContextValue::String(typed.to_string()));
        let names = Arch::ALL.iter().map(|a| a.name().to_string()).collect();
        err.insert(ContextKind::ValidValue, ContextValue::Strings(names));
        if let Some(arch) = Arch::suggest(&typed) {
            err.insert(ContextKind::SuggestedValue, ContextValue::String(arch.name().to_string()));
        }
        Err(err)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(Arch::ALL.into_iter().map(|arch| {
            let aliases = SPELLINGS.iter().filter(move |(name, a)| *a == arch && *name != arch.name());
            clap::builder::PossibleValue::new(arch.name()).aliases(aliases.map(|(name, _)| *name))
        })))
    }
}

/// What `#[arg] arch: Arch` (and `Option<Arch>`) parses with.
impl clap::builder::ValueParserFactory for Arch {
    type Parser = ArchParser;
    fn value_parser() -> ArchParser {
        ArchParser
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
        #[derive(clap::Parser)]
        struct Cli {
            arch: Arch,
        }
        use clap::Parser;
        for name in ["x86_64", "amd64", "x86-64", "aarch64", "arm64", "riscv64", "X86_64", "amd46", ""] {
            let parsed = Cli::try_parse_from(["ovm", name]).map(|c| c.arch);
            assert_eq!(parsed.as_ref().ok(), name.parse::<Arch>().ok().as_ref(), "{name}");
        }
        let names: Vec<String> = clap::builder::TypedValueParser::possible_values(&ArchParser)
            .map(|v| v.map(|p| p.get_name().to_string()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["x86_64", "aarch64"]);
        // A near miss: clap's usual message, with ovm's suggestion (which knows the aliases).
        let err = Cli::try_parse_from(["ovm", "amd46"]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("invalid value 'amd46' for '<ARCH>'"), "{err}");
        assert!(err.contains("[possible values: x86_64, aarch64]"), "{err}");
        assert!(err.contains("a similar value exists: 'x86_64'"), "{err}");
        // A far one: no made-up suggestion (clap's own would offer aarch64 for riscv64).
        let err = Cli::try_parse_from(["ovm", "riscv64"]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("riscv64") && !err.contains("similar"), "{err}");
    }

    #[test]
    fn unknown_arch_names_the_input_and_the_choices() {
        let err = "riscv64".parse::<Arch>().unwrap_err().to_string();
        assert!(err.contains("riscv64") && err.contains("x86_64") && err.contains("aarch64"), "{err}");
        assert!(!err.contains("did you mean"), "{err}");
        let err = "arm64x".parse::<Arch>().unwrap_err().to_string();
        assert!(err.ends_with("; did you mean aarch64?"), "{err}");
    }

    #[test]
    fn a_near_miss_suggests_its_arch_and_a_far_one_nothing() {
        for (typed, meant) in [
            ("x86-65", Some(Arch::X86_64)),
            ("x86_46", Some(Arch::X86_64)),
            ("amd46", Some(Arch::X86_64)),
            ("AMD64", Some(Arch::X86_64)),
            ("arm64x", Some(Arch::Aarch64)),
            ("aarch46", Some(Arch::Aarch64)),
            ("arm", Some(Arch::Aarch64)),
            ("riscv64", None),
            ("busybox", None),
            ("x", None),
            ("", None),
        ] {
            assert_eq!(Arch::suggest(typed), meant, "{typed}");
        }
    }
}

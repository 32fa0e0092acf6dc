//! The recipe file exactly as written: serde structs mirroring the TOML, every field that a later
//! check may complain about wrapped in `toml::Spanned` so the complaint can point at it.
//!
//! Nothing here is trusted; `validate` turns a `RawRecipe` into a `Recipe` or a located error.
//! `deny_unknown_fields` everywhere: a misspelt key is an error, never a silently ignored setting.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecipe {
    pub name: Spanned<String>,
    pub version: Spanned<String>,
    pub license: Spanned<String>,
    pub homepage: Option<Spanned<String>>,
    pub description: Option<String>,
    /// The license texts in the unpacked source tree (Buildroot's LICENSE_FILES).
    #[serde(default)]
    pub license_files: Vec<Spanned<String>>,
    #[serde(default)]
    pub depends: Vec<Spanned<String>>,
    /// Build-time tools from `recipes/native/` the steps run.
    #[serde(default)]
    pub native: Vec<Spanned<String>>,
    /// Packages whose files this one may replace in the image where both install the same path.
    #[serde(default)]
    pub replaces: Vec<Spanned<String>>,
    #[serde(default)]
    pub files: Vec<Spanned<String>>,
    #[serde(default)]
    pub patches: Vec<Spanned<String>>,
    #[serde(default)]
    pub source: Vec<Spanned<RawSource>>,
    pub build: Option<Spanned<RawBuild>>,
    pub limits: Option<RawLimits>,
    /// `[features.NAME]`: optional parts, on or off per project (Yocto's PACKAGECONFIG).
    #[serde(default)]
    pub features: BTreeMap<Spanned<String>, RawFeature>,
    /// `[package]`: how the install is stripped, split and checked.
    pub package: Option<Spanned<RawPackage>>,
}

/// `[package]`: strip or not, extra split patterns per part, QA checks waived.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPackage {
    pub strip: Option<bool>,
    #[serde(default)]
    pub runtime: Vec<Spanned<String>>,
    #[serde(default)]
    pub dev: Vec<Spanned<String>>,
    #[serde(default)]
    pub dbg: Vec<Spanned<String>>,
    #[serde(default)]
    pub doc: Vec<Spanned<String>>,
    #[serde(default)]
    pub locale: Vec<Spanned<String>>,
    /// QA check name → why this package may fail it.
    #[serde(default)]
    pub waive: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// One `[features.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFeature {
    pub description: Option<String>,
    /// On unless the project turns it off.
    #[serde(default)]
    pub default: bool,
    /// Dependencies only while the feature is on.
    #[serde(default)]
    pub depends: Vec<Spanned<String>>,
    pub configure_args: Option<Spanned<Vec<String>>>,
    pub configure_args_off: Option<Spanned<Vec<String>>>,
    pub make_args: Option<Spanned<Vec<String>>>,
    pub make_args_off: Option<Spanned<Vec<String>>>,
}

/// `[limits]`: the sandbox limits of this package's steps, over the project's `[sandbox]` ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub pids: Option<Spanned<i64>>,
    /// `"8G"` or a number of bytes.
    pub memory: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub url: Spanned<String>,
    pub sha256: Spanned<String>,
    #[serde(default)]
    pub mirrors: Vec<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    pub debian: Option<Spanned<RawDebian>>,
    pub pypi: Option<Spanned<RawPypi>>,
    pub dest: Option<Spanned<String>>,
    pub strip: Option<Spanned<u32>>,
    pub unpack: Option<bool>,
    #[serde(default)]
    pub alternative: Vec<Spanned<RawAlternative>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlternative {
    pub sha256: Spanned<String>,
    pub version: Spanned<String>,
    pub reason: Spanned<String>,
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub mirrors: Vec<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    pub debian: Option<Spanned<RawDebian>>,
    pub pypi: Option<Spanned<RawPypi>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDebian {
    pub package: Spanned<String>,
    pub file: Spanned<String>,
    /// Debian version (`1:1.35.0-4`) to ask apt for; absent: apt's candidate.
    pub version: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPypi {
    pub package: Spanned<String>,
    pub version: Spanned<String>,
    pub file: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBuild {
    pub style: Spanned<super::Style>,
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, String>,
    pub configure_args: Option<Spanned<Vec<String>>>,
    pub make_args: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub autoreconf: bool,
    pub configure: Option<String>,
    pub compile: Option<String>,
    pub install: Option<String>,
    /// `[[build.step]]`: the recipe's own ordered steps instead of configure/compile/install.
    #[serde(default)]
    pub step: Vec<Spanned<RawStep>>,
    /// `[build.arch.ARCH]`: what only one architecture's build adds.
    #[serde(default)]
    pub arch: BTreeMap<Spanned<String>, RawArchBuild>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArchBuild {
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, String>,
    pub configure_args: Option<Spanned<Vec<String>>>,
    pub make_args: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub name: Spanned<String>,
    pub script: String,
}

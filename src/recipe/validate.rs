//! Meaning checks: `RawRecipe` (as written, with spans) → `Recipe` (validated, paths resolved), and
//! the checks that need the whole set. Every error carries the file, line and column of the value
//! it is about and says what was expected.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use toml::Spanned;

use super::raw::{RawAlternative, RawBuild, RawDebian, RawPypi, RawRecipe, RawSource};
use super::{
    Alternative, ArchBuild, ArchiveFormat, Artifact, Build, ConfigFile, DebianSource, Feature, Kind, Location,
    NamedStep, PypiSource, Recipe, RecipeError, RecipeLimits, Source, Style, STEP_ENV,
};
use crate::arch::Arch;
use crate::layout::TaskName;
use crate::project::Outside;
use crate::size::ByteSize;

/// Project paths the checks resolve against.
pub(super) struct Context {
    pub root: PathBuf,
    pub config_dir: PathBuf,
    pub patches_dir: PathBuf,
    /// `[features]` of the project's config: package → `+NAME`/`-NAME` selections.
    pub features: BTreeMap<String, Vec<String>>,
    /// Where `[features]` is written, for its errors.
    pub config_file: PathBuf,
}

/// A validated recipe plus the positions the set-wide checks need to point at.
pub(super) struct Loaded {
    pub recipe: Recipe,
    pub name_at: Location,
    /// Parallel to `recipe.depends`.
    pub depends_at: Vec<Location>,
    /// Parallel to `recipe.replaces`.
    pub replaces_at: Vec<Location>,
    /// Parallel to `recipe.native`.
    pub native_at: Vec<Location>,
    /// Every artifact's (file, sha256) and where its sha256 is written.
    pub artifacts_at: Vec<(String, String, Location)>,
}

/// The text of one recipe file, to turn byte spans into line:column.
struct Doc<'a> {
    display: PathBuf,
    text: &'a str,
}

impl Doc<'_> {
    fn at(&self, span: Range<usize>) -> Location {
        let offset = span.start.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location { file: self.display.clone(), line, column }
    }

    fn invalid<T>(&self, spanned: &Spanned<T>, message: String) -> RecipeError {
        RecipeError::Invalid { at: self.at(spanned.span()), message }
    }

    fn start(&self) -> Location {
        self.at(0..0)
    }
}

pub(super) fn load_file(ctx: &Context, path: &Path, kind: Kind) -> Result<Loaded, RecipeError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| RecipeError::Read { path: path.to_path_buf(), source })?;
    let display = path.strip_prefix(&ctx.root).unwrap_or(path).to_path_buf();
    let doc = Doc { display, text: &text };
    let raw: RawRecipe = toml::from_str(&text).map_err(|e| RecipeError::Syntax {
        at: doc.at(e.span().unwrap_or(0..0)),
        message: e.message().trim_end().to_string(),
    })?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    validate(ctx, &doc, raw, &stem, kind, path)
}

fn validate(
    ctx: &Context,
    doc: &Doc,
    raw: RawRecipe,
    stem: &str,
    kind: Kind,
    path: &Path,
) -> Result<Loaded, RecipeError> {
    check_package_name(doc, &raw.name, "name")?;
    if raw.name.as_ref() != stem {
        return Err(doc.invalid(
            &raw.name,
            format!("name `{}` must equal the file name `{stem}` (recipes are found by file name)", raw.name.as_ref()),
        ));
    }
    let name = raw.name.as_ref().clone();
    check_version(doc, &raw.version)?;
    if raw.license.as_ref().trim().is_empty() || raw.license.as_ref().contains('\n') {
        return Err(doc.invalid(&raw.license, "license must be an SPDX expression on one line".into()));
    }
    if let Some(homepage) = &raw.homepage {
        check_url(doc, homepage, "homepage", &["http", "https"])?;
    }

    let (mut depends, mut depends_at) = name_list(doc, &raw.depends, "dependency", |_| Ok(()))?;
    let (native, native_at) = name_list(doc, &raw.native, "native tool", |tool| {
        // A tool of a tool is its `depends` (native recipes depend on native recipes); the build
        // tools and the toolchain are what everything else is built with, so they name none.
        if kind == Kind::Target {
            return Ok(());
        }
        Err(doc.invalid(
            tool,
            format!(
                "only target recipes name native tools; a {kind} recipe {}",
                if kind == Kind::Native {
                    "lists the native recipes it needs in `depends`"
                } else {
                    "is built with the host's userland"
                }
            ),
        ))
    })?;
    let (replaces, replaces_at) = name_list(doc, &raw.replaces, "replaced package", |r| {
        if r.as_ref() == &name {
            return Err(doc.invalid(r, "a package cannot replace itself".into()));
        }
        Ok(())
    })?;

    let files = resolve_files(ctx, doc, &raw.files)?;
    let patches = resolve_patches(ctx, doc, &name, raw.version.as_ref(), &raw.patches)?;

    if raw.source.is_empty() {
        return Err(RecipeError::Invalid {
            at: doc.start(),
            message: "no [[source]]: every recipe needs at least one source (url + sha256)".into(),
        });
    }
    let mut sources = Vec::new();
    let mut artifacts_at = Vec::new();
    let mut seen_files: BTreeSet<String> = BTreeSet::new();
    for raw_source in &raw.source {
        let source = convert_source(doc, &name, raw_source, &mut artifacts_at)?;
        for artifact in source.artifacts() {
            if !seen_files.insert(artifact.file.clone()) {
                return Err(doc.invalid(
                    raw_source,
                    format!("two sources of this recipe are both stored as sources/{}", artifact.file),
                ));
            }
        }
        sources.push(source);
    }

    if let Some(style) = raw.build.as_ref().map(|b| &b.as_ref().style).filter(|s| *s.as_ref() == Style::Cmake) {
        // The style's steps run `cmake` from /ovm/native, which only target recipes get, and
        // only with the tool named: say so here rather than as "cmake: not found" mid-build.
        if kind != Kind::Target {
            return Err(doc.invalid(
                style,
                format!(
                    "style = \"cmake\" is for target recipes: a {kind} recipe has no /ovm/native to run cmake from"
                ),
            ));
        }
        if !native.iter().any(|n| n == "cmake") {
            return Err(doc.invalid(
                style,
                "style = \"cmake\" runs cmake: add `native = [\"cmake\"]` (recipes/native/cmake.toml provides it)"
                    .into(),
            ));
        }
    }

    let mut build = match raw.build {
        Some(b) => Some(convert_build(doc, b)?),
        None if kind == Kind::Toolchain => None,
        None => {
            return Err(RecipeError::Invalid {
                at: doc.start(),
                message: format!(
                    "missing [build] section: a {kind} recipe must say how it is built (only recipes/toolchain/ may \
                     omit it, meaning \"unpack as shipped\")"
                ),
            })
        }
    };

    if build.as_ref().is_some_and(|b| b.style == Style::Kbuild) {
        // The default configure step and `ovm menuconfig` take the kconfig file by its name:
        // with two, which one is the package's configuration would be a guess.
        let mut configs = raw.files.iter().filter(|f| super::is_kconfig_name(f.as_ref()));
        if let (Some(first), Some(second)) = (configs.next(), configs.next()) {
            return Err(doc.invalid(
                second,
                format!(
                    "a kbuild recipe lists one kconfig file (`*.config`), not two: `{}` and `{}`",
                    first.as_ref(),
                    second.as_ref()
                ),
            ));
        }
    }

    let limits = convert_limits(doc, raw.limits)?;
    let package = convert_package(doc, kind, raw.package)?;
    let mut license_files = Vec::new();
    for f in &raw.license_files {
        let rel = Path::new(f.as_ref());
        let plain = rel.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if f.as_ref().is_empty() || !plain {
            return Err(doc.invalid(f, "license_files: a path inside the unpacked source tree (`COPYING`, `doc/LICENSE`), without `..` or a leading `/`".into()));
        }
        if license_files.contains(f.as_ref()) {
            return Err(doc.invalid(f, format!("license_files: `{}` is listed twice", f.as_ref())));
        }
        license_files.push(f.as_ref().clone());
    }
    let features = apply_features(ctx, doc, &name, raw.features, &mut depends, &mut depends_at, build.as_mut())?;
    let recipe = Recipe {
        name,
        kind,
        version: raw.version.into_inner(),
        license: raw.license.into_inner(),
        license_files,
        homepage: raw.homepage.map(Spanned::into_inner),
        description: raw.description,
        depends,
        native,
        replaces,
        files,
        patches,
        sources,
        build,
        limits,
        features,
        package,
        path: path.to_path_buf(),
    };
    Ok(Loaded { recipe, name_at: doc.at(raw.name.span()), depends_at, replaces_at, native_at, artifacts_at })
}

/// `[features.NAME]`: each checked like the fields it mirrors, then resolved against the project's
/// `[features]` selection; an enabled feature's `depends` and arguments (a disabled one's `_off`
/// arguments) are added to the recipe's own, so the rest of ovm sees one resolved recipe and the
/// signatures follow the selection.
fn apply_features(
    ctx: &Context,
    doc: &Doc,
    package: &str,
    raw: BTreeMap<Spanned<String>, super::raw::RawFeature>,
    depends: &mut Vec<String>,
    depends_at: &mut Vec<Location>,
    mut build: Option<&mut Build>,
) -> Result<BTreeMap<String, Feature>, RecipeError> {
    let selection = ctx.features.get(package).map(Vec::as_slice).unwrap_or_default();
    let selection_error = |message: String| RecipeError::FeatureSelection {
        config: ctx.config_file.strip_prefix(&ctx.root).unwrap_or(&ctx.config_file).to_path_buf(),
        package: package.to_string(),
        message,
    };
    let mut chosen: BTreeMap<&str, bool> = BTreeMap::new();
    for entry in selection {
        let (on, feature) = match (entry.strip_prefix('+'), entry.strip_prefix('-')) {
            (Some(f), _) => (true, f),
            (_, Some(f)) => (false, f),
            _ => {
                return Err(selection_error(format!(
                    "`{entry}`: write +NAME to turn a feature on, -NAME to turn it off"
                )))
            }
        };
        if !raw.keys().any(|k| k.as_ref() == feature) {
            let known: Vec<&str> = raw.keys().map(|k| k.as_ref().as_str()).collect();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            return Err(selection_error(format!(
                "{} has no feature `{feature}` (it has: {known})",
                doc.display.display()
            )));
        }
        if chosen.insert(feature, on).is_some() {
            return Err(selection_error(format!("feature `{feature}` is selected twice")));
        }
    }
    let mut out = BTreeMap::new();
    for (key, f) in raw {
        let name = key.as_ref().as_str();
        TaskName::parse(name)
            .map_err(|_| doc.invalid(&key, format!("feature name `{name}` must match [a-z][a-z0-9-]*")))?;
        let enabled = chosen.get(name).copied().unwrap_or(f.default);
        let mut feature_depends = Vec::new();
        for dep in &f.depends {
            check_package_name(doc, dep, "dependency")?;
            if feature_depends.contains(dep.as_ref()) {
                return Err(doc.invalid(dep, format!("dependency `{}` is listed twice", dep.as_ref())));
            }
            feature_depends.push(dep.as_ref().clone());
            // Two features (or a feature and the recipe) may need the same package: it is one dependency.
            if enabled && !depends.contains(dep.as_ref()) {
                depends.push(dep.as_ref().clone());
                depends_at.push(doc.at(dep.span()));
            }
        }
        let args = [&f.configure_args, &f.configure_args_off, &f.make_args, &f.make_args_off];
        match build.as_deref_mut() {
            None => {
                if let Some(given) = args.into_iter().flatten().next() {
                    return Err(doc.invalid(given, "a feature's arguments need a [build] section".into()));
                }
            }
            Some(b) => {
                let known = |v: &str| STEP_ENV.contains(&v) || b.env.contains_key(v);
                for (field, given) in [
                    ("configure_args", &f.configure_args),
                    ("configure_args_off", &f.configure_args_off),
                    ("make_args", &f.make_args),
                    ("make_args_off", &f.make_args_off),
                ] {
                    check_expansions(doc, given.as_ref(), field, &known)?;
                }
                // Both sides checked, whichever is in force now: the other is one selection away.
                let configure_on = convert_configure_args(doc, b.style, f.configure_args)?;
                let configure_off = convert_configure_args(doc, b.style, f.configure_args_off)?;
                let (configure, make) =
                    if enabled { (configure_on, f.make_args) } else { (configure_off, f.make_args_off) };
                b.configure_args.extend(configure);
                b.make_args.extend(make.map(Spanned::into_inner).unwrap_or_default());
            }
        }
        out.insert(
            name.to_string(),
            Feature { description: f.description, default: f.default, enabled, depends: feature_depends },
        );
    }
    Ok(out)
}

/// `[package]`: only a target recipe's output is split and checked; every pattern must parse and
/// every waived check must exist and say why.
fn convert_package(
    doc: &Doc,
    kind: Kind,
    raw: Option<Spanned<super::raw::RawPackage>>,
) -> Result<super::Packaging, RecipeError> {
    let mut out = super::Packaging::default();
    let Some(raw) = raw else { return Ok(out) };
    if kind != Kind::Target {
        return Err(doc.invalid(
            &raw,
            format!("[package] is for target recipes: a {kind} recipe's output is used whole, not split or checked"),
        ));
    }
    let raw = raw.into_inner();
    if let Some(strip) = raw.strip {
        out.strip = strip;
    }
    use crate::split::{Part, Pattern};
    for (part, list) in [
        (Part::Runtime, raw.runtime),
        (Part::Dev, raw.dev),
        (Part::Dbg, raw.dbg),
        (Part::Doc, raw.doc),
        (Part::Locale, raw.locale),
    ] {
        for p in list {
            let pattern = Pattern::parse(p.as_ref()).map_err(|e| doc.invalid(&p, format!("package.{part}: {e}")))?;
            out.rules.recipe.push((part, pattern));
        }
    }
    for (name, reason) in raw.waive {
        let Some(check) = crate::qa::Check::parse(name.as_ref()) else {
            let known: Vec<&str> = crate::qa::Check::ALL.iter().map(|c| c.name()).collect();
            return Err(doc.invalid(
                &name,
                format!("package.waive: no QA check is named `{}` (the checks: {})", name.as_ref(), known.join(", ")),
            ));
        };
        if reason.as_ref().trim().is_empty() {
            return Err(doc.invalid(&reason, format!("package.waive.{check}: say why this package may fail it")));
        }
        out.waive.insert(check, reason.into_inner());
    }
    Ok(out)
}

fn convert_limits(doc: &Doc, raw: Option<super::raw::RawLimits>) -> Result<RecipeLimits, RecipeError> {
    let Some(raw) = raw else { return Ok(RecipeLimits::default()) };
    let pids = match raw.pids {
        None => None,
        Some(p) if *p.get_ref() > 0 => Some(*p.get_ref() as u64),
        Some(p) => return Err(doc.invalid(&p, "limits.pids must be a number of processes above 0".into())),
    };
    let memory = match raw.memory {
        None => None,
        Some(m) => {
            let parsed = match m.get_ref() {
                toml::Value::String(text) => ByteSize::parse(text),
                toml::Value::Integer(n) if *n > 0 => Ok(ByteSize(*n as u64)),
                other => Err(format!("{other} is not a size")),
            };
            let size = parsed.map_err(|e| doc.invalid(&m, format!("limits.memory: {e} (e.g. \"8G\")")))?;
            Some(size.0)
        }
    };
    Ok(RecipeLimits { pids, memory })
}

pub use crate::layout::MAX_NAME_LEN;

/// Package names: what BitBake/OpenWrt accept in practice and what is safe as a path component.
fn check_package_name(doc: &Doc, value: &Spanned<String>, what: &str) -> Result<(), RecipeError> {
    let v = value.as_ref();
    if v.len() > MAX_NAME_LEN {
        return Err(doc.invalid(
            value,
            format!("{what} is {} characters long: at most {MAX_NAME_LEN} (names become file names)", v.len()),
        ));
    }
    if v == crate::layout::IMAGE {
        return Err(doc.invalid(
            value,
            format!("{what} `{v}` is reserved: the image's own state, log and status line go by that name"),
        ));
    }
    let ok = v.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(doc.invalid(
            value,
            format!("{what} `{v}` is not a valid package name: expected lower-case letters, digits and + . _ - only, starting with a letter or digit"),
        ))
    }
}

fn is_valid_version(v: &str) -> bool {
    v.chars().next().is_some_and(|c| c.is_ascii_digit())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || "._+~-".contains(c))
}

fn check_version(doc: &Doc, value: &Spanned<String>) -> Result<(), RecipeError> {
    if is_valid_version(value.as_ref()) {
        Ok(())
    } else {
        Err(doc.invalid(
            value,
            format!(
                "bad version `{}`: expected a digit first, then only letters, digits and . _ + ~ -",
                value.as_ref()
            ),
        ))
    }
}

fn check_sha256(doc: &Doc, value: &Spanned<String>) -> Result<String, RecipeError> {
    let v = value.as_ref();
    if v.len() != 64 {
        return Err(doc.invalid(value, format!("sha256 must be 64 hexadecimal digits, found {} characters", v.len())));
    }
    if let Some(bad) = v.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(doc.invalid(value, format!("sha256 must be 64 hexadecimal digits, found `{bad}`")));
    }
    Ok(v.to_ascii_lowercase())
}

fn check_url(doc: &Doc, value: &Spanned<String>, what: &str, schemes: &[&str]) -> Result<reqwest::Url, RecipeError> {
    let url = reqwest::Url::parse(value.as_ref())
        .map_err(|e| doc.invalid(value, format!("{what} `{}` is not a URL: {e}", value.as_ref())))?;
    if !schemes.contains(&url.scheme()) {
        return Err(doc.invalid(
            value,
            format!(
                "{what} `{}`: scheme `{}` is not supported (expected {})",
                value.as_ref(),
                url.scheme(),
                schemes.join(", ")
            ),
        ));
    }
    Ok(url)
}

/// A name for a file directly under `sources/`.
fn check_file_name(doc: &Doc, value: &Spanned<String>, what: &str) -> Result<String, RecipeError> {
    let v = value.as_ref();
    let reserved = [".part", ".bad", ".lock"].iter().any(|s| v.ends_with(s));
    if v.is_empty() || v.starts_with('.') || v.contains('/') || v.contains('\0') || reserved {
        return Err(doc.invalid(
            value,
            format!("{what} `{v}` is not a plain file name (no `/`, no leading `.`, not ending in .part/.bad/.lock)"),
        ));
    }
    Ok(v.clone())
}

/// A relative path that stays inside the directory it is relative to.
fn check_relative(doc: &Doc, value: &Spanned<String>, what: &str, allow_empty: bool) -> Result<PathBuf, RecipeError> {
    let v = value.as_ref();
    let path = Path::new(v);
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => clean.push(c),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(doc.invalid(
                    value,
                    format!("{what} `{v}` must be a relative path without `..` (it must stay inside its directory)"),
                ));
            }
        }
    }
    if clean.as_os_str().is_empty() && !allow_empty {
        return Err(doc.invalid(value, format!("{what} must not be empty")));
    }
    Ok(clean)
}

/// `path` (an existing patch or config file) with every symlink resolved must stay inside the
/// project: `check_relative` only sees the name, and a link planted in `patches/` or `config/`
/// would otherwise feed `/etc/shadow` or another user's file into a build (and its log).
fn check_inside(ctx: &Context, at: Location, what: &'static str, path: &Path) -> Result<(), RecipeError> {
    match crate::project::inside(&ctx.root, path) {
        Ok(()) => Ok(()),
        Err(Outside::Unresolved(source)) => Err(RecipeError::Read { path: path.to_path_buf(), source }),
        Err(Outside::Escapes(target)) => {
            let shown = path.strip_prefix(&ctx.root).unwrap_or(path).to_path_buf();
            Err(RecipeError::Escapes { at, what, path: shown, target })
        }
    }
}

fn resolve_files(ctx: &Context, doc: &Doc, raw: &[Spanned<String>]) -> Result<Vec<ConfigFile>, RecipeError> {
    let mut files: Vec<ConfigFile> = Vec::new();
    for entry in raw {
        let rel = check_relative(doc, entry, "file", false)?;
        if files.iter().any(|f| f.name == *entry.as_ref()) {
            return Err(doc.invalid(entry, format!("file `{}` is listed twice", entry.as_ref())));
        }
        let path = ctx.config_dir.join(&rel);
        if !path.is_file() {
            return Err(RecipeError::MissingFile { at: doc.at(entry.span()), name: entry.as_ref().clone(), path });
        }
        check_inside(ctx, doc.at(entry.span()), "file", &path)?;
        files.push(ConfigFile { name: entry.as_ref().clone(), path });
    }
    Ok(files)
}

/// The automatic patches (`patches/NAME-VERSION.patch`, then `patches/NAME/*.patch` in byte order
/// of their names), then the listed ones. A listed patch that is already automatic is an error: it
/// would be applied twice.
fn resolve_patches(
    ctx: &Context,
    doc: &Doc,
    name: &str,
    version: &str,
    listed: &[Spanned<String>],
) -> Result<Vec<PathBuf>, RecipeError> {
    let mut patches = Vec::new();
    let single = ctx.patches_dir.join(format!("{name}-{version}.patch"));
    if single.is_file() {
        check_inside(ctx, doc.start(), "patch", &single)?;
        patches.push(single);
    }
    let dir = ctx.patches_dir.join(name);
    if dir.is_dir() {
        let entries = std::fs::read_dir(&dir).map_err(|source| RecipeError::ListDir { dir: dir.clone(), source })?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| RecipeError::ListDir { dir: dir.clone(), source })?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "patch") && path.is_file() {
                found.push(path);
            } else {
                tracing::debug!("ignoring {} (only *.patch files are applied)", path.display());
            }
        }
        found.sort();
        for path in &found {
            check_inside(ctx, doc.start(), "patch", path)?;
        }
        patches.extend(found);
    }
    for entry in listed {
        let rel = check_relative(doc, entry, "patch", false)?;
        let path = ctx.patches_dir.join(&rel);
        if !path.is_file() {
            return Err(RecipeError::MissingPatch { at: doc.at(entry.span()), name: entry.as_ref().clone(), path });
        }
        check_inside(ctx, doc.at(entry.span()), "patch", &path)?;
        if patches.contains(&path) {
            return Err(doc.invalid(
                entry,
                format!(
                    "patch `{}` is already applied (automatically or listed earlier); list it once",
                    entry.as_ref()
                ),
            ));
        }
        patches.push(path);
    }
    Ok(patches)
}

fn convert_debian(doc: &Doc, raw: &Spanned<RawDebian>) -> Result<DebianSource, RecipeError> {
    let r = raw.as_ref();
    let p = r.package.as_ref();
    let ok = p.len() >= 2
        && p.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
    if !ok {
        return Err(doc.invalid(&r.package, format!("`{p}` is not a Debian source package name")));
    }
    let file = check_file_name(doc, &r.file, "debian file")?;
    let version = match &r.version {
        Some(v) => {
            let s = v.as_ref();
            if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || ".+~-:".contains(c)) {
                return Err(doc.invalid(v, format!("`{s}` is not a Debian version")));
            }
            Some(s.clone())
        }
        None => None,
    };
    Ok(DebianSource { package: p.clone(), file, version })
}

fn convert_pypi(doc: &Doc, raw: &Spanned<RawPypi>) -> Result<PypiSource, RecipeError> {
    let r = raw.as_ref();
    let p = r.package.as_ref();
    if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(doc.invalid(&r.package, format!("`{p}` is not a PyPI project name")));
    }
    if r.version.as_ref().is_empty()
        || !r.version.as_ref().chars().all(|c| c.is_ascii_alphanumeric() || "._+!-".contains(c))
    {
        return Err(doc.invalid(&r.version, format!("`{}` is not a PyPI version", r.version.as_ref())));
    }
    let file = check_file_name(doc, &r.file, "pypi file")?;
    if !file.contains(&format!("-{}", r.version.as_ref())) {
        return Err(doc.invalid(
            &r.file,
            format!(
                "pypi file `{file}` does not carry version {} (expected NAME-{}…)",
                r.version.as_ref(),
                r.version.as_ref()
            ),
        ));
    }
    Ok(PypiSource { package: p.clone(), version: r.version.as_ref().clone(), file })
}

fn urls(doc: &Doc, url: Option<&Spanned<String>>, mirrors: &[Spanned<String>]) -> Result<Vec<String>, RecipeError> {
    let mut out = Vec::new();
    if let Some(url) = url {
        check_url(doc, url, "url", &["http", "https", "file"])?;
        out.push(url.as_ref().clone());
    }
    for m in mirrors {
        check_url(doc, m, "mirror", &["http", "https", "file"])?;
        out.push(m.as_ref().clone());
    }
    Ok(out)
}

/// The default name under `sources/`: the URL's last path component.
fn file_from_url(doc: &Doc, url: &Spanned<String>) -> Result<String, RecipeError> {
    let parsed = check_url(doc, url, "url", &["http", "https", "file"])?;
    let last = parsed.path_segments().and_then(|mut s| s.next_back()).unwrap_or("").to_string();
    let spanned = Spanned::new(url.span(), last);
    if spanned.as_ref().is_empty() {
        return Err(doc.invalid(url, format!("cannot take a file name from url `{}`: set `file`", url.as_ref())));
    }
    check_file_name(doc, &spanned, "file name taken from url")
}

fn check_unpackable(doc: &Doc, file: &str, at: Range<usize>) -> Result<(), RecipeError> {
    if ArchiveFormat::from_file_name(file).is_some() {
        Ok(())
    } else {
        Err(RecipeError::Invalid {
            at: doc.at(at),
            message: format!(
                "cannot tell how to unpack `{file}`: expected {}, or set `unpack = false`",
                ArchiveFormat::SUFFIXES.join(", ")
            ),
        })
    }
}

fn convert_source(
    doc: &Doc,
    recipe: &str,
    raw: &Spanned<RawSource>,
    artifacts_at: &mut Vec<(String, String, Location)>,
) -> Result<Source, RecipeError> {
    let r = raw.as_ref();
    let sha256 = check_sha256(doc, &r.sha256)?;
    let urls = urls(doc, Some(&r.url), &r.mirrors)?;
    let (file, file_span) = match &r.file {
        Some(f) => (check_file_name(doc, f, "file")?, f.span()),
        None => (file_from_url(doc, &r.url)?, r.url.span()),
    };
    let debian = r.debian.as_ref().map(|d| convert_debian(doc, d)).transpose()?;
    let pypi = r.pypi.as_ref().map(|p| convert_pypi(doc, p)).transpose()?;
    let dest = match &r.dest {
        Some(d) => check_relative(doc, d, "dest", true)?,
        None => PathBuf::new(),
    };
    let unpack = r.unpack.unwrap_or(true);
    if unpack {
        check_unpackable(doc, &file, file_span)?;
    }
    artifacts_at.push((file.clone(), sha256.clone(), doc.at(r.sha256.span())));
    let primary = Artifact { file, sha256, urls, debian, pypi };

    let mut alternatives: Vec<Alternative> = Vec::new();
    for alt in &r.alternative {
        let a = convert_alternative(doc, alt, unpack)?;
        if a.artifact.sha256 == primary.sha256 {
            return Err(doc.invalid(
                &alt.as_ref().sha256,
                "an alternative must have other bytes than the primary source: this sha256 is the primary's; list its \
                 URLs as `mirrors` instead"
                    .into(),
            ));
        }
        if a.artifact.file == primary.file || alternatives.iter().any(|o| o.artifact.file == a.artifact.file) {
            return Err(doc.invalid(
                alt,
                format!(
                    "this alternative would be stored as sources/{}, a name already used by this source; set `file`",
                    a.artifact.file
                ),
            ));
        }
        artifacts_at.push((a.artifact.file.clone(), a.artifact.sha256.clone(), doc.at(alt.as_ref().sha256.span())));
        alternatives.push(a);
    }

    Ok(Source {
        recipe: recipe.to_string(),
        primary,
        alternatives,
        dest,
        strip: r.strip.as_ref().map_or(1, |s| *s.as_ref() as usize),
        unpack,
    })
}

fn convert_alternative(doc: &Doc, raw: &Spanned<RawAlternative>, unpack: bool) -> Result<Alternative, RecipeError> {
    let r = raw.as_ref();
    let sha256 = check_sha256(doc, &r.sha256)?;
    check_version(doc, &r.version)?;
    if r.reason.as_ref().trim().is_empty() {
        return Err(doc.invalid(&r.reason, "reason must say why these bytes differ from upstream".into()));
    }
    let urls = urls(doc, r.url.as_ref(), &r.mirrors)?;
    let debian = r.debian.as_ref().map(|d| convert_debian(doc, d)).transpose()?;
    let pypi = r.pypi.as_ref().map(|p| convert_pypi(doc, p)).transpose()?;
    if urls.is_empty() && debian.is_none() && pypi.is_none() {
        return Err(doc
            .invalid(raw, "an alternative needs somewhere to come from: `url`, `mirrors`, `debian` or `pypi`".into()));
    }
    let (file, span) = match (&r.file, &r.url, &debian, &pypi) {
        (Some(f), _, _, _) => (check_file_name(doc, f, "file")?, f.span()),
        (None, Some(url), _, _) => (file_from_url(doc, url)?, url.span()),
        (None, None, Some(d), _) => (d.file.clone(), raw.span()),
        (None, None, None, Some(p)) => (p.file.clone(), raw.span()),
        (None, None, None, None) => {
            return Err(doc.invalid(raw, "an alternative with only `mirrors` needs `file`".into()));
        }
    };
    if unpack {
        check_unpackable(doc, &file, span)?;
    }
    Ok(Alternative {
        artifact: Artifact { file, sha256, urls, debian, pypi },
        version: r.version.as_ref().clone(),
        reason: r.reason.as_ref().clone(),
    })
}

/// `env` of `[build]` or `[build.arch.ARCH]`: names a shell can export.
fn convert_env(doc: &Doc, raw: BTreeMap<Spanned<String>, String>) -> Result<BTreeMap<String, String>, RecipeError> {
    let mut env = BTreeMap::new();
    for (key, value) in raw {
        let k = key.as_ref();
        let ok = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(
                doc.invalid(&key, format!("`{k}` is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"))
            );
        }
        env.insert(key.into_inner(), value);
    }
    Ok(env)
}

fn convert_configure_args(
    doc: &Doc,
    style: Style,
    raw: Option<Spanned<Vec<String>>>,
) -> Result<Vec<String>, RecipeError> {
    match raw {
        Some(args) if !matches!(style, Style::Autotools | Style::Cmake) => Err(doc.invalid(
            &args,
            format!("configure_args is only used by style = \"autotools\" or \"cmake\", not \"{}\"", style.name()),
        )),
        Some(args) => Ok(args.into_inner()),
        None => Ok(Vec::new()),
    }
}

/// Each `${NAME}` in an argument must be a variable the step's environment has ([`STEP_ENV`] or
/// the recipe's `env`): the step's shell expands it (`CC_FOR_BUILD=${HOSTCC}`), and a misspelt
/// one would silently expand to nothing.
fn check_expansions(
    doc: &Doc,
    args: Option<&Spanned<Vec<String>>>,
    field: &str,
    known: &dyn Fn(&str) -> bool,
) -> Result<(), RecipeError> {
    let Some(args) = args else { return Ok(()) };
    for arg in args.as_ref() {
        for reference in crate::recipe::expansions(arg) {
            match reference {
                Ok(name) if known(name) => {}
                Ok(name) => {
                    return Err(doc.invalid(
                        args,
                        format!("{field}: `${{{name}}}` is no variable of the step environment or the recipe's env"),
                    ))
                }
                Err(bad) => return Err(doc.invalid(args, format!("{field}: `{bad}` is not a `${{NAME}}` reference"))),
            }
        }
    }
    Ok(())
}

/// A list of package names (`depends`, `native`, `replaces`): each passes `check` first, then is
/// a valid package name listed once; returned with where each one is, for the errors that need
/// every recipe (an unknown name, one of the wrong kind).
fn name_list(
    doc: &Doc,
    raw: &[Spanned<String>],
    what: &str,
    check: impl Fn(&Spanned<String>) -> Result<(), RecipeError>,
) -> Result<(Vec<String>, Vec<Location>), RecipeError> {
    let mut names: Vec<String> = Vec::new();
    let mut at = Vec::new();
    for n in raw {
        check(n)?;
        check_package_name(doc, n, what)?;
        if names.contains(n.as_ref()) {
            return Err(doc.invalid(n, format!("{what} `{}` is listed twice", n.as_ref())));
        }
        names.push(n.as_ref().clone());
        at.push(doc.at(n.span()));
    }
    Ok((names, at))
}

/// A step's name is a [`TaskName`]: the engine's own task names are refused there.
fn convert_build(doc: &Doc, raw: Spanned<RawBuild>) -> Result<Build, RecipeError> {
    let span = raw.span();
    let b = raw.into_inner();
    let style = *b.style.as_ref();
    let env = convert_env(doc, b.env)?;
    let known = |name: &str| STEP_ENV.contains(&name) || env.contains_key(name);
    check_expansions(doc, b.make_args.as_ref(), "make_args", &known)?;
    check_expansions(doc, b.configure_args.as_ref(), "configure_args", &known)?;
    let configure_args = convert_configure_args(doc, style, b.configure_args)?;
    let mut per_arch = BTreeMap::new();
    for (key, raw) in b.arch {
        let arch: Arch = key
            .as_ref()
            .parse()
            .map_err(|_| doc.invalid(&key, format!("`{}` is not an architecture: x86_64 or aarch64", key.as_ref())))?;
        let arch_env = convert_env(doc, raw.env)?;
        let known = |name: &str| STEP_ENV.contains(&name) || env.contains_key(name) || arch_env.contains_key(name);
        check_expansions(doc, raw.make_args.as_ref(), "make_args", &known)?;
        check_expansions(doc, raw.configure_args.as_ref(), "configure_args", &known)?;
        let a = ArchBuild {
            configure_args: convert_configure_args(doc, style, raw.configure_args)?,
            make_args: raw.make_args.map(Spanned::into_inner).unwrap_or_default(),
            env: arch_env,
        };
        if per_arch.insert(arch, a).is_some() {
            return Err(doc.invalid(&key, format!("[build.arch.{arch}] is given twice (under another spelling)")));
        }
    }

    let mut steps: Vec<NamedStep> = Vec::new();
    for raw_step in &b.step {
        let name: &str = raw_step.as_ref().name.as_ref();
        let name = TaskName::parse(name).map_err(|e| doc.invalid(&raw_step.as_ref().name, e.to_string()))?;
        if steps.iter().any(|s| s.name == name) {
            return Err(doc.invalid(&raw_step.as_ref().name, format!("step `{name}` is defined twice")));
        }
        steps.push(NamedStep { name, script: raw_step.as_ref().script.clone() });
    }
    if !steps.is_empty() {
        if style != Style::Custom {
            return Err(doc.invalid(&b.style, "[[build.step]] needs style = \"custom\"".into()));
        }
        if b.configure.is_some() || b.compile.is_some() || b.install.is_some() {
            return Err(RecipeError::Invalid {
                at: doc.at(span),
                message: "give either [[build.step]] or configure/compile/install, not both".into(),
            });
        }
    }
    if style == Style::Custom && steps.is_empty() && b.configure.is_none() && b.compile.is_none() && b.install.is_none()
    {
        return Err(RecipeError::Invalid {
            at: doc.at(span),
            message: "style = \"custom\" has no default steps: give at least one of configure, compile, install, \
                      or [[build.step]]s"
                .into(),
        });
    }
    Ok(Build {
        style,
        env,
        configure_args,
        make_args: b.make_args.map(Spanned::into_inner).unwrap_or_default(),
        autoreconf: b.autoreconf,
        per_arch,
        configure: b.configure,
        compile: b.compile,
        install: b.install,
        steps,
    })
}

/// Checks that need every recipe: unique names, dependencies that exist and are of the same kind,
/// and one set of bytes per name under `sources/`.
pub(super) fn check_set(loaded: &[Loaded]) -> Result<(), RecipeError> {
    let mut by_name: BTreeMap<&str, &Loaded> = BTreeMap::new();
    for l in loaded {
        if let Some(first) = by_name.insert(&l.recipe.name, l) {
            return Err(RecipeError::Duplicate {
                at: l.name_at.clone(),
                name: l.recipe.name.clone(),
                first: first.recipe.path.clone(),
            });
        }
    }
    for l in loaded {
        let own = l.recipe.kind;
        let depends = l.recipe.depends.iter().zip(&l.depends_at).map(|(d, at)| (d, at, "dependency", own));
        let replaces = l.recipe.replaces.iter().zip(&l.replaces_at).map(|(d, at)| (d, at, "replaced package", own));
        let native = l.recipe.native.iter().zip(&l.native_at).map(|(d, at)| (d, at, "native tool", Kind::Native));
        for (dep, at, what, wanted) in depends.chain(replaces).chain(native) {
            let unknown =
                |reason: String| RecipeError::UnknownDependency { at: at.clone(), what, name: dep.clone(), reason };
            match by_name.get(dep.as_str()) {
                None => {
                    let dir = match wanted.subdir() {
                        "" => "recipes".to_string(),
                        sub => format!("recipes/{sub}"),
                    };
                    return Err(unknown(format!("there is no {dir}/{dep}.toml")));
                }
                Some(other) if other.recipe.kind != wanted && what == "native tool" => {
                    return Err(unknown(format!(
                        "`{dep}` is a {} recipe; `native` names recipes/native/ recipes",
                        other.recipe.kind
                    )));
                }
                Some(other) if other.recipe.kind != wanted => {
                    return Err(unknown(format!(
                        "`{dep}` is a {} recipe; a {own} recipe may only {} {own} recipes",
                        other.recipe.kind,
                        if what == "dependency" { "depend on" } else { "replace" },
                    )));
                }
                Some(_) => {}
            }
        }
    }
    let mut files: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for l in loaded {
        for (file, sha, at) in &l.artifacts_at {
            match files.get(file.as_str()) {
                Some((other_sha, other)) if other_sha != sha => {
                    return Err(RecipeError::FileClash {
                        at: at.clone(),
                        file: file.clone(),
                        other: format!("recipe `{other}`"),
                    });
                }
                Some(_) => {}
                None => {
                    files.insert(file, (sha, &l.recipe.name));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters_and_lines_start_at_one() {
        let doc = Doc { display: "r.toml".into(), text: "a = 1\nbé = \"x\"\n" };
        assert_eq!(doc.at(0..1).to_string(), "r.toml:1:1");
        // "bé = " is 6 bytes but 5 characters: the value starts at column 6.
        let offset = doc.text.find('"').unwrap();
        assert_eq!(doc.at(offset..offset + 1).to_string(), "r.toml:2:6");
    }

    #[test]
    fn versions() {
        for good in ["1.35.0", "4.3+dfsg", "2.40", "1.2.3~rc1", "12.2.0-14", "0.14.1"] {
            assert!(is_valid_version(good), "{good}");
        }
        for bad in ["", "v1.0", "1.0 beta", "1/2", ".1", "1:2"] {
            assert!(!is_valid_version(bad), "{bad}");
        }
    }
}

//! Kernel modules for the image: given a kernel's modules tree (`lib/modules/VERSION/`, as a
//! distribution's kernel package or `make modules_install` leaves it) and the modules an image
//! needs, by name and by [`Group`], find their closure and lay it out as an image layer:
//!
//! | in the layer | what |
//! |---|---|
//! | `lib/modules/VERSION/PATH.ko` | each module of the closure, at its path in the tree, decompressed if stored as `.ko.xz`/`.ko.zst` |
//! | `lib/modules/VERSION/modules.dep` | `PATH.ko: DEP.ko …` per module, every dependency (transitively) listed before its own dependencies, as depmod writes it (modprobe loads the list from its end) |
//! | `lib/modules/VERSION/modules.alias`, `modules.softdep` | the aliases and soft dependencies of those modules, in depmod's text format |
//! | `lib/modules/VERSION/modules.builtin` | copied from the tree: what is built into the kernel (modprobe treats those as loaded) |
//! | `lib/firmware/FILE` | firmware a module names (`firmware=`), when the tree's `lib/firmware/` has it |
//! | `etc/ovm/modules` | one name per line: the modules the config names (not their dependencies), in config order, then the groups' members, a member that only suits some CPUs (`cpu:` aliases: aesni_intel) followed by those aliases; the image's init loads exactly these with `modprobe`, such a member only on a CPU that matches |
//! | `etc/ovm/softdeps` | `pre NAME [CPU-ALIAS …]` / `post NAME …` per module answering a soft dependency of the closure: busybox's modprobe ignores `modules.softdep`, so the init loads these itself, and a module with `cpu:` aliases only on a CPU that matches one |
//!
//! The closure is what `modprobe --show-depends NAME` loads (kmod's lookup and order of
//! precedence): a name is a module file (`-` and `_` are the same), else a module alias (glob
//! patterns, as in modules.alias), else built into the kernel (`modules.builtin` or an alias in
//! `modules.builtin.modinfo`): nothing to carry. A module brings its `depends=` and its
//! `softdep=pre:`/`post:` names (each looked up the same way, all matches). Everything is read from
//! each module's `.modinfo` section ([`modinfo`]), because a kernel package need not ship a
//! `modules.dep` (Debian's does not: depmod runs when it is installed).
//!
//! [`resolve`] only reads (it is what a status check needs); [`Plan::signature`] covers every
//! byte the layer will hold; [`Plan::materialize`] writes the layer into a directory named by it.

pub mod groups;
pub mod modinfo;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
// "Did you mean": the Levenshtein distance in characters, from the crate arch and recipe names use.
use strsim::levenshtein as edit_distance;

pub use groups::Group;
pub use modinfo::{ModInfo, Stored};

/// The image file listing the modules its init loads.
pub const LOAD_LIST: &str = "etc/ovm/modules";
/// The image file listing the soft dependencies its init loads before (`pre`) and after (`post`)
/// the modules of [`LOAD_LIST`].
pub const SOFTDEP_LIST: &str = "etc/ovm/softdeps";

#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    #[error(
        "{}: no kernel modules there ({source}); run scripts/setup.sh (it unpacks Debian's kernel into \
         .cache/test-assets/ARCH/kernel) or set [kernel] modules_from to a directory holding lib/modules/VERSION/",
        path.display()
    )]
    NoModulesDir { path: PathBuf, source: io::Error },
    #[error("{}: no lib/modules/VERSION/ directory in it; [kernel] modules_from must name the directory that holds lib/modules/", path.display())]
    NoVersion { path: PathBuf },
    #[error("{}: several kernels ({}); choose one with [kernel] version", path.display(), versions.join(", "))]
    SeveralVersions { path: PathBuf, versions: Vec<String> },
    #[error("{}: no kernel {version} (it has {})", path.display(), if found.is_empty() { "none".to_string() } else { found.join(", ") })]
    VersionMissing { path: PathBuf, version: String, found: Vec<String> },
    #[error("no module, alias or built-in named `{name}` in the kernel {version} ({}){}", tree.display(), did_you_mean(suggestion))]
    UnknownModule { name: String, version: String, tree: PathBuf, suggestion: Option<String> },
    #[error("module {module} ({}) depends on `{dependency}`, which the kernel {version} has neither as a module nor built in", path.display())]
    MissingDependency { module: String, path: PathBuf, dependency: String, version: String },
    #[error("module {module} ({}) was built for the kernel {found}, not {version}: the tree mixes kernels", path.display())]
    WrongKernel { module: String, path: PathBuf, found: String, version: String },
    #[error("{}: not a kernel module: {reason}", path.display())]
    Elf { path: PathBuf, reason: String },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot decompress {}: {source}", path.display())]
    Decompress { path: PathBuf, source: io::Error },
    #[error("{}: module path is not UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("writing {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default()
}

/// A module's name as the kernel compares it: `-` and `_` are the same (`dm-crypt` is `dm_crypt`),
/// so it is kept with `_` only.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModuleName(String);

impl ModuleName {
    pub fn new(name: &str) -> ModuleName {
        ModuleName(name.replace('-', "_"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ModuleName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for ModuleName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// What the image asks for.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The directory holding `lib/modules/VERSION/` (`[kernel] modules_from`, ARCH replaced).
    pub modules_from: &'a Path,
    /// `[kernel] version`: which `lib/modules/` entry, when there are several.
    pub version: Option<&'a str>,
    /// `[kernel] modules`, in config order: each must exist (as a module, alias or built in).
    pub modules: &'a [String],
    /// `[kernel] groups`: members this kernel lacks are skipped.
    pub groups: &'a [Group],
}

/// One module file of the tree.
#[derive(Debug, Clone)]
struct ModFile {
    name: ModuleName,
    /// Relative to `lib/modules/VERSION/`, as stored (`kernel/fs/ext4/ext4.ko.xz`).
    rel: String,
    stored: Stored,
}

impl ModFile {
    /// Its path in the image: always a plain `.ko`.
    fn image_rel(&self) -> String {
        let stem = self.rel.strip_suffix(self.stored.suffix()).unwrap_or(&self.rel);
        format!("{stem}.ko")
    }
}

/// A kernel's modules tree, indexed by file name; module aliases are read only when a name is
/// not a module file (that reads every module's `.modinfo`).
struct ModulesTree {
    /// `MODULES_FROM/lib/modules/VERSION`.
    dir: PathBuf,
    modules_from: PathBuf,
    version: String,
    files: Vec<ModFile>,
    /// Module name → index into `files` (the first in depmod's search order).
    by_name: BTreeMap<ModuleName, usize>,
    builtin: BTreeSet<ModuleName>,
    /// `modules.builtin.modinfo`'s aliases: (normalised pattern, module).
    builtin_aliases: Vec<(String, ModuleName)>,
    /// `modules.order`: a module's position, for depmod's line order.
    order: HashMap<String, usize>,
    infos: HashMap<usize, ModInfo>,
    aliases: Option<Vec<(String, usize)>>,
}

/// What a name stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Module(usize),
    Builtin(ModuleName),
}

impl ModulesTree {
    fn open(modules_from: &Path, version: Option<&str>) -> Result<ModulesTree, KmodError> {
        let base = modules_from.join("lib/modules");
        let entries = std::fs::read_dir(&base)
            .map_err(|source| KmodError::NoModulesDir { path: modules_from.to_path_buf(), source })?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| KmodError::Read { path: base.clone(), source })?;
            if entry.path().is_dir() {
                found.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        found.sort();
        let version = match (version, found.as_slice()) {
            (Some(v), _) if found.iter().any(|f| f == v) => v.to_string(),
            (Some(v), _) => {
                return Err(KmodError::VersionMissing { path: base, version: v.to_string(), found });
            }
            (None, [one]) => one.clone(),
            (None, []) => return Err(KmodError::NoVersion { path: modules_from.to_path_buf() }),
            (None, _) => return Err(KmodError::SeveralVersions { path: base, versions: found }),
        };
        let dir = base.join(&version);
        let mut files = Vec::new();
        collect_modules(&dir, "", &mut files)?;
        // depmod's default search order: `updates/` before the rest; then by path, for determinism.
        files.sort_by(|a, b| (!a.rel.starts_with("updates/"), &a.rel).cmp(&(!b.rel.starts_with("updates/"), &b.rel)));
        let mut by_name = BTreeMap::new();
        for (i, f) in files.iter().enumerate() {
            by_name.entry(f.name.clone()).or_insert(i);
        }
        let read_opt = |name: &str| -> Result<Option<Vec<u8>>, KmodError> {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(KmodError::Read { path, source }),
            }
        };
        let builtin = read_opt("modules.builtin")?
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .lines()
                    .filter_map(|l| {
                        l.rsplit('/').next().and_then(Stored::of_file_name).map(|(_, s)| ModuleName::new(s))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut builtin_aliases = Vec::new();
        if let Some(b) = read_opt("modules.builtin.modinfo")? {
            for field in b.split(|&c| c == 0) {
                let field = String::from_utf8_lossy(field);
                if let Some((module, alias)) = field.split_once(".alias=") {
                    builtin_aliases.push((normalise_alias(alias), ModuleName::new(module)));
                }
            }
        }
        let order = read_opt("modules.order")?
            .map(|b| String::from_utf8_lossy(&b).lines().enumerate().map(|(i, l)| (l.to_string(), i)).collect())
            .unwrap_or_default();
        Ok(ModulesTree {
            dir,
            modules_from: modules_from.to_path_buf(),
            version,
            files,
            by_name,
            builtin,
            builtin_aliases,
            order,
            infos: HashMap::new(),
            aliases: None,
        })
    }

    fn path(&self, i: usize) -> PathBuf {
        self.dir.join(&self.files[i].rel)
    }

    /// The module's `.modinfo`, read once; checks it was built for this kernel.
    fn info(&mut self, i: usize) -> Result<&ModInfo, KmodError> {
        if !self.infos.contains_key(&i) {
            let path = self.path(i);
            let bytes = modinfo::read_module(&path, self.files[i].stored)?;
            let info = ModInfo::parse(&path, &bytes)?;
            if let Some(found) = info.release() {
                if found != self.version {
                    return Err(KmodError::WrongKernel {
                        module: self.files[i].name.to_string(),
                        path,
                        found: found.to_string(),
                        version: self.version.clone(),
                    });
                }
            }
            self.infos.insert(i, info);
        }
        Ok(&self.infos[&i])
    }

    /// Every module's aliases (normalised), reading every `.modinfo` the first time.
    fn aliases(&mut self) -> Result<&[(String, usize)], KmodError> {
        if self.aliases.is_none() {
            tracing::debug!("reading the aliases of {} modules in {}", self.files.len(), self.dir.display());
            let mut all = Vec::new();
            for i in 0..self.files.len() {
                for a in &self.info(i)?.aliases {
                    all.push((normalise_alias(a), i));
                }
            }
            self.aliases = Some(all);
        }
        Ok(self.aliases.as_deref().unwrap_or_default())
    }

    /// What `name` stands for, in kmod's order: a module file, a module alias (every match), a
    /// built-in module or a built-in's alias. Empty: nothing by that name.
    fn lookup(&mut self, name: &str) -> Result<Vec<Target>, KmodError> {
        let module = ModuleName::new(name);
        if let Some(&i) = self.by_name.get(&module) {
            return Ok(vec![Target::Module(i)]);
        }
        let wanted = normalise_alias(name);
        let mut hits: Vec<usize> =
            self.aliases()?.iter().filter(|(pattern, _)| glob_match(pattern, &wanted)).map(|(_, i)| *i).collect();
        hits.dedup();
        if !hits.is_empty() {
            return Ok(hits.into_iter().map(Target::Module).collect());
        }
        if self.builtin.contains(&module) {
            return Ok(vec![Target::Builtin(module)]);
        }
        Ok(self
            .builtin_aliases
            .iter()
            .filter(|(pattern, _)| glob_match(pattern, &wanted))
            .map(|(_, m)| Target::Builtin(m.clone()))
            .collect())
    }

    /// The module or built-in closest to `name`, for "did you mean".
    fn closest(&self, name: &str) -> Option<String> {
        let wanted = ModuleName::new(name);
        self.by_name
            .keys()
            .chain(self.builtin.iter())
            .map(|n| (edit_distance(wanted.as_str(), n.as_str()), n))
            .filter(|(d, n)| *d <= 2.max(n.as_str().len() / 4))
            .min()
            .map(|(_, n)| n.to_string())
    }
}

/// Every `*.ko`, `*.ko.xz`, `*.ko.zst` below `dir`, with paths relative to the walk's root.
fn collect_modules(dir: &Path, prefix: &str, out: &mut Vec<ModFile>) -> Result<(), KmodError> {
    let err = |source| KmodError::Read { path: dir.to_path_buf(), source };
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(err)?.collect::<Result<_, _>>().map_err(err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_str().ok_or_else(|| KmodError::NotUtf8 { path: entry.path() })?;
        let rel = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
        let kind = entry.file_type().map_err(|source| KmodError::Read { path: entry.path(), source })?;
        if kind.is_dir() {
            collect_modules(&entry.path(), &rel, out)?;
        } else if let Some((stored, stem)) = Stored::of_file_name(name) {
            if prefix.is_empty() {
                continue; // not a module of the tree: modules live in subdirectories
            }
            out.push(ModFile { name: ModuleName::new(stem), rel, stored });
        }
    }
    Ok(())
}

/// kmod's alias normalisation: `-` is `_`, except inside a `[...]` class of a pattern.
fn normalise_alias(alias: &str) -> String {
    let mut out = String::with_capacity(alias.len());
    let mut in_class = false;
    for c in alias.chars() {
        match c {
            '[' => in_class = true,
            ']' => in_class = false,
            _ => {}
        }
        out.push(if c == '-' && !in_class { '_' } else { c });
    }
    out
}

/// fnmatch(3) without flags, as kmod matches aliases: `*`, `?`, `[...]` (with `!`/`^` and ranges).
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => class_match(&p, pi, t[ti]),
            Some(&c) if c == t[ti] => Some(pi + 1),
            _ => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ti += 1;
            }
            (None, Some((sp, st))) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class opening at `p[start] == '['`; the index after it if it matches.
fn class_match(p: &[char], start: usize, c: char) -> Option<usize> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while let Some(&x) = p.get(i) {
        if x == ']' && !first {
            return (hit != negate).then_some(i + 1);
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
            hit |= x <= c && c <= p[i + 2];
            i += 3;
        } else {
            hit |= x == c;
            i += 1;
        }
    }
    // No closing bracket: `[` is an ordinary character.
    (c == '[').then_some(start + 1)
}

/// One file of the layer and where its bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    /// A file of the tree, decompressed if needed.
    Module {
        path: PathBuf,
        stored: Stored,
    },
    /// A firmware file, copied as it is.
    Copy(PathBuf),
    Text(Vec<u8>),
}

/// The layer [`resolve`] decided on: every file and its content, not yet written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub version: String,
    /// Layer path (`lib/modules/V/kernel/fs/ext4/ext4.ko`) → content.
    files: BTreeMap<String, Content>,
    /// The modules of the closure, by name.
    pub modules: Vec<ModuleName>,
    /// What `etc/ovm/modules` lists.
    pub load: Vec<String>,
    /// The `cpu:` aliases of a group member of `load` that only suits some CPUs.
    load_cpu: BTreeMap<String, Vec<String>>,
    /// Names the config gave that are built into the kernel (nothing to carry).
    pub builtin: Vec<ModuleName>,
    signature: String,
}

impl Plan {
    /// sha256 over every path and the bytes it will hold (a module by its stored bytes and how
    /// they are stored): a changed list, tree or module repacks the image.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// The layer's paths, in order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Writes the layer into `dir` (which must not exist yet) by way of a sibling temporary, so a
    /// killed write never leaves a partial layer under the real name.
    pub fn materialize(&self, dir: &Path) -> Result<(), KmodError> {
        let werr = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KmodError::Write { path, source }
        };
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.with_file_name(format!(".{name}.tmp"));
        match std::fs::remove_dir_all(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(KmodError::Write { path: tmp, source }),
        }
        for (rel, content) in &self.files {
            let path = tmp.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(werr(parent))?;
            }
            let bytes = match content {
                Content::Module { path, stored } => modinfo::read_module(path, *stored)?,
                Content::Copy(src) => {
                    std::fs::read(src).map_err(|source| KmodError::Read { path: src.clone(), source })?
                }
                Content::Text(t) => t.clone(),
            };
            std::fs::write(&path, bytes).map_err(werr(&path))?;
        }
        std::fs::create_dir_all(&tmp).map_err(werr(&tmp))?;
        std::fs::rename(&tmp, dir).map_err(werr(dir))
    }
}

/// The closure of what `req` names, as a [`Plan`]; reads the tree, writes nothing.
pub fn resolve(req: &Request<'_>) -> Result<Plan, KmodError> {
    let mut tree = ModulesTree::open(req.modules_from, req.version)?;
    let mut chosen: BTreeSet<usize> = BTreeSet::new();
    let mut load: Vec<String> = Vec::new();
    let mut load_cpu: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut builtin = Vec::new();

    let mut wanted: Vec<(String, Option<Group>)> = req.modules.iter().map(|m| (m.clone(), None)).collect();
    for g in req.groups {
        wanted.extend(g.members().iter().map(|m| (m.to_string(), Some(*g))));
    }
    for (name, group) in wanted {
        let targets = tree.lookup(&name)?;
        if targets.is_empty() {
            match group {
                Some(g) => {
                    tracing::debug!("group {g}: the kernel {} has no {name}; skipped", tree.version);
                    continue;
                }
                None => {
                    return Err(KmodError::UnknownModule {
                        suggestion: tree.closest(&name),
                        name,
                        version: tree.version.clone(),
                        tree: tree.dir.clone(),
                    })
                }
            }
        }
        let mut loads = false;
        // A group member every one of whose modules names CPUs (`cpu:` aliases) is loaded only on
        // a CPU that matches, as udev loads a CPU's accelerators; a name the config gives is
        // always tried (and a failure reported).
        let mut cpu: Option<Vec<String>> = group.map(|_| Vec::new());
        for t in targets {
            match t {
                Target::Module(i) => {
                    add_closure(&mut tree, i, &mut chosen)?;
                    loads = true;
                    let aliases = cpu_aliases(tree.info(i)?);
                    match &mut cpu {
                        Some(all) if !aliases.is_empty() => all.extend(aliases),
                        _ => cpu = None,
                    }
                }
                Target::Builtin(m) => {
                    cpu = None;
                    tracing::debug!("{name}: {m} is built into the kernel {}; nothing to carry", tree.version);
                    if group.is_none() && !builtin.contains(&m) {
                        builtin.push(m);
                    }
                }
            }
        }
        // Once per module name (`aesni-intel` in the config is the group's `aesni_intel`).
        if loads && !load.iter().any(|l| ModuleName::new(l) == ModuleName::new(&name)) {
            if let Some(aliases) = cpu.filter(|a| !a.is_empty()) {
                load_cpu.insert(name.clone(), aliases);
            }
            load.push(name);
        }
    }
    plan(&mut tree, &chosen, load, load_cpu, builtin)
}

/// A module's `cpu:` aliases: the CPU features it needs (empty: it suits every CPU).
fn cpu_aliases(info: &ModInfo) -> Vec<String> {
    info.aliases.iter().filter(|a| a.starts_with("cpu:")).cloned().collect()
}

/// Adds module `i`, its soft dependencies and its dependencies (transitively) to `chosen`.
fn add_closure(tree: &mut ModulesTree, i: usize, chosen: &mut BTreeSet<usize>) -> Result<(), KmodError> {
    if !chosen.insert(i) {
        return Ok(());
    }
    let info = tree.info(i)?.clone();
    for soft in info.softdep_pre.iter().chain(&info.softdep_post) {
        let targets = tree.lookup(soft)?;
        if targets.is_empty() {
            // modprobe skips a soft dependency it cannot find as well: it is optional.
            tracing::debug!(
                "{}: soft dependency {soft} not in the kernel {}; skipped",
                tree.files[i].name,
                tree.version
            );
        }
        for t in targets {
            if let Target::Module(j) = t {
                add_closure(tree, j, chosen)?;
            }
        }
    }
    for dep in &info.depends {
        match tree.by_name.get(dep) {
            Some(&j) => add_closure(tree, j, chosen)?,
            None if tree.builtin.contains(dep) => {}
            None => {
                return Err(KmodError::MissingDependency {
                    module: tree.files[i].name.to_string(),
                    path: tree.path(i),
                    dependency: dep.to_string(),
                    version: tree.version.clone(),
                })
            }
        }
    }
    Ok(())
}

/// The dependencies of `i` (transitively, `depends=` only), each before its own dependencies:
/// modprobe loads a modules.dep line from its end.
fn dep_list(tree: &ModulesTree, i: usize) -> Vec<usize> {
    fn visit(tree: &ModulesTree, i: usize, seen: &mut BTreeSet<usize>, out: &mut Vec<usize>) {
        for dep in tree.infos.get(&i).map(|info| info.depends.as_slice()).unwrap_or_default() {
            if let Some(&j) = tree.by_name.get(dep) {
                if seen.insert(j) {
                    visit(tree, j, seen, out);
                    out.push(j);
                }
            }
        }
    }
    let mut seen = BTreeSet::from([i]);
    let mut post = Vec::new();
    visit(tree, i, &mut seen, &mut post);
    post.reverse();
    post
}

fn plan(
    tree: &mut ModulesTree,
    chosen: &BTreeSet<usize>,
    load: Vec<String>,
    load_cpu: BTreeMap<String, Vec<String>>,
    builtin: Vec<ModuleName>,
) -> Result<Plan, KmodError> {
    let base = format!("lib/modules/{}", tree.version);
    // depmod's line order: modules.order first, the rest by path.
    let mut lines: Vec<usize> = chosen.iter().copied().collect();
    lines.sort_by_key(|&i| {
        let f = &tree.files[i];
        (tree.order.get(&f.rel).copied().unwrap_or(usize::MAX), f.rel.clone())
    });
    let mut files = BTreeMap::new();
    let mut dep = String::new();
    let mut alias = String::from("# Aliases extracted from modules themselves.\n");
    let mut softdep = String::from("# Soft dependencies extracted from modules themselves.\n");
    for &i in &lines {
        let f = &tree.files[i];
        dep.push_str(&f.image_rel());
        dep.push(':');
        for j in dep_list(tree, i) {
            dep.push(' ');
            dep.push_str(&tree.files[j].image_rel());
        }
        dep.push('\n');
        let info = &tree.infos[&i];
        for a in &info.aliases {
            alias.push_str(&format!("alias {a} {}\n", f.name));
        }
        if !info.softdep_pre.is_empty() || !info.softdep_post.is_empty() {
            let mut line = format!("softdep {}", f.name);
            for (what, names) in [("pre:", &info.softdep_pre), ("post:", &info.softdep_post)] {
                if !names.is_empty() {
                    line.push_str(&format!(" {what} {}", names.join(" ")));
                }
            }
            softdep.push_str(&line);
            softdep.push('\n');
        }
        files.insert(format!("{base}/{}", f.image_rel()), Content::Module { path: tree.path(i), stored: f.stored });
        for fw in &info.firmware {
            let found = ["", ".zst", ".xz"]
                .iter()
                .map(|s| (format!("lib/firmware/{fw}{s}"), tree.modules_from.join(format!("lib/firmware/{fw}{s}"))))
                .find(|(_, p)| p.is_file());
            match found {
                Some((rel, path)) => {
                    files.insert(rel, Content::Copy(path));
                }
                None => {
                    tracing::debug!("{}: firmware {fw} is not in {}/lib/firmware", f.name, tree.modules_from.display())
                }
            }
        }
    }
    files.insert(format!("{base}/modules.dep"), Content::Text(dep.into_bytes()));
    files.insert(format!("{base}/modules.alias"), Content::Text(alias.into_bytes()));
    files.insert(format!("{base}/modules.softdep"), Content::Text(softdep.into_bytes()));
    let builtin_file = tree.dir.join("modules.builtin");
    if builtin_file.is_file() {
        files.insert(format!("{base}/modules.builtin"), Content::Copy(builtin_file));
    }
    let load_line = |n: &String| list_line(n, load_cpu.get(n).map(Vec::as_slice).unwrap_or_default());
    files.insert(LOAD_LIST.to_string(), Content::Text(load.iter().map(load_line).collect::<String>().into_bytes()));
    files.insert(SOFTDEP_LIST.to_string(), Content::Text(softdep_list(tree, &lines)?.into_bytes()));

    let mut hasher = Sha256::new();
    for (rel, content) in &files {
        hasher.update((rel.len() as u64).to_le_bytes());
        hasher.update(rel.as_bytes());
        let (kind, digest) = match content {
            Content::Module { path, stored } => (format!("{stored:?}"), file_digest(path)?),
            Content::Copy(path) => ("copy".to_string(), file_digest(path)?),
            Content::Text(t) => ("text".to_string(), Sha256::digest(t).into()),
        };
        hasher.update((kind.len() as u64).to_le_bytes());
        hasher.update(kind.as_bytes());
        hasher.update(digest);
    }
    let modules = lines.iter().map(|&i| tree.files[i].name.clone()).collect();
    Ok(Plan {
        version: tree.version.clone(),
        files,
        modules,
        load,
        load_cpu,
        builtin,
        signature: crate::digest::hex(&hasher.finalize()),
    })
}

/// `etc/ovm/softdeps`: every module answering a `softdep=` name of a module in `lines` (all
/// matches, as modprobe takes them), `pre` ones first, each once, in `lines`' order. Why the image
/// needs it: busybox's modprobe reads modules.dep and modules.alias but not modules.softdep, so
/// without it ext4's `pre: crc32c` is loaded only when the kernel asks for crc32c while the root
/// is mounted, through a modprobe the kernel starts, once per implementation and per request. A
/// module with `cpu:` aliases (crc32c_intel: SSE4.2) carries them, so that the init loads it only
/// on a CPU whose modalias matches one, as udev's coldplug does: elsewhere its init fails with
/// ENODEV after the whole load (signature check included), which an emulated CPU pays dearly.
fn softdep_list(tree: &mut ModulesTree, lines: &[usize]) -> Result<String, KmodError> {
    let mut pre: Vec<usize> = Vec::new();
    let mut post: Vec<usize> = Vec::new();
    for &i in lines {
        let info = tree.info(i)?.clone();
        for (names, list) in [(&info.softdep_pre, &mut pre), (&info.softdep_post, &mut post)] {
            for name in names {
                for target in tree.lookup(name)? {
                    if let Target::Module(j) = target {
                        if !list.contains(&j) {
                            list.push(j);
                        }
                    }
                }
            }
        }
    }
    let mut out = String::new();
    for (when, list) in [("pre", &pre), ("post", &post)] {
        for &j in list {
            out.push_str(when);
            out.push(' ');
            let aliases = cpu_aliases(tree.info(j)?);
            out.push_str(&list_line(tree.files[j].name.as_str(), &aliases));
        }
    }
    Ok(out)
}

/// A line of the init's load lists: the module's name, then the `cpu:` aliases the CPU must
/// match for it to be loaded (none: every CPU).
fn list_line(name: &str, cpu_aliases: &[String]) -> String {
    let mut line = name.to_string();
    for alias in cpu_aliases {
        line.push(' ');
        line.push_str(alias);
    }
    line.push('\n');
    line
}

fn file_digest(path: &Path) -> Result<[u8; 32], KmodError> {
    crate::digest::sha256_file_raw(path).map_err(|source| KmodError::Read { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests;

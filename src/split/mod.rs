//! The package step's split (OpenEmbedded's do_package, OpenWrt's Package/install): one recipe's
//! install tree becomes several packages, so that what an image carries is what runs, and what a
//! dependent compiles against or a person debugs with is kept beside it.
//!
//! | part     | package      | default files                                                  | goes to            |
//! |----------|--------------|----------------------------------------------------------------|--------------------|
//! | runtime  | `PKG`        | everything no rule below claims                                | images, sysroots   |
//! | dev      | `PKG-dev`    | headers, `*.a`/`*.la`, `.pc`, cmake and aclocal files, `lib*.so` links | sysroots, SDKs |
//! | dbg      | `PKG-dbg`    | `usr/lib/debug/`: the debug info strip moved out (by build-id) | debug images       |
//! | doc      | `PKG-doc`    | man, info, doc and gtk-doc pages                               | nothing by default |
//! | locale   | `PKG-locale` | message catalogues and locale data                             | nothing by default |
//!
//! A recipe's own patterns (`[package] dev = ["usr/bin/*-config"]`) are tried before the
//! defaults, part by part in the table's order and in recipe order within a part: the first rule
//! that matches a path decides its part. A pattern is a
//! path relative to DESTDIR where `*` and `?` stay within one path component and a `**` component
//! matches any number of them.
//!
//! Stripping happens before the split and in the package's sandbox, with the toolchain's own
//! `objcopy` (see [`strip_script`]): only ovm's plan of which files and where their debug files go
//! is made here, on the host.
//!
//! Everything here is a pure function of the tree and the rules, walked in byte order of names,
//! so the same install always splits the same way; the rules are part of the package task's
//! signature ([`Rules::describe`]).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::elf::{self, ElfType};
pub use crate::layout::Part;

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    Elf { path: PathBuf, source: elf::ElfError },
    #[error("`{pattern}`: {reason}")]
    Pattern { pattern: String, reason: &'static str },
}

/// A path pattern: components, where `**` is any number of components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    parts: Vec<String>,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, SplitError> {
        let bad = |reason| SplitError::Pattern { pattern: text.to_string(), reason };
        let trimmed = text.strip_prefix('/').unwrap_or(text);
        if trimmed.is_empty() {
            return Err(bad("an empty pattern"));
        }
        let parts: Vec<String> = trimmed.split('/').map(String::from).collect();
        if parts.iter().any(|p| p.is_empty() || p == "." || p == "..") {
            return Err(bad("components must not be empty, `.` or `..`"));
        }
        if parts.iter().any(|p| p.contains("**") && p != "**") {
            return Err(bad("`**` must be a whole path component"));
        }
        Ok(Pattern { text: text.to_string(), parts })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` (relative, `/`-separated) matches; a pattern matching a directory also
    /// matches everything below it (`usr/include` claims `usr/include/zlib.h`).
    pub fn matches(&self, path: &str) -> bool {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        (0..=comps.len()).any(|n| match_parts(&self.parts, &comps[..n]))
    }
}

fn match_parts(pat: &[String], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => (0..=path.len()).any(|skip| match_parts(rest, &path[skip..])),
        Some((first, rest)) => {
            path.first().is_some_and(|c| match_component(first.as_bytes(), c.as_bytes()))
                && match_parts(rest, &path[1..])
        }
    }
}

/// `*` and `?` within one component.
fn match_component(pat: &[u8], s: &[u8]) -> bool {
    match pat.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| match_component(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && match_component(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && match_component(rest, &s[1..]),
    }
}

/// The rules one recipe splits by: its own, then the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rules {
    /// The recipe's `[package]` patterns: part by part (runtime, dev, dbg, doc, locale), each
    /// part's in recipe order.
    pub recipe: Vec<(Part, Pattern)>,
}

/// The default rules, in the order they are tried (see the table at the top).
const DEFAULTS: &[(Part, &str)] = &[
    (Part::Dbg, "usr/lib/debug"),
    (Part::Dbg, "**/.debug"),
    (Part::Dev, "usr/include"),
    (Part::Dev, "**/*.a"),
    (Part::Dev, "**/*.la"),
    (Part::Dev, "**/*.o"),
    (Part::Dev, "usr/lib/pkgconfig"),
    (Part::Dev, "usr/share/pkgconfig"),
    (Part::Dev, "usr/lib/cmake"),
    (Part::Dev, "usr/share/cmake"),
    (Part::Dev, "usr/share/aclocal"),
    (Part::Doc, "usr/share/man"),
    (Part::Doc, "usr/share/info"),
    (Part::Doc, "usr/share/doc"),
    (Part::Doc, "usr/share/gtk-doc"),
    (Part::Doc, "usr/man"),
    (Part::Locale, "usr/share/locale"),
    (Part::Locale, "usr/lib/locale"),
];

/// Bumped when the defaults or the meaning of a rule change: it is part of every package task's
/// signature, so packages split by older rules are split again.
const RULES_VERSION: &str = "1";

impl Rules {
    /// The part of the entry at `path`; `link` says whether it is a symlink: a `lib*.so` symlink
    /// is the development link (the runtime needs `libz.so.1`, only the linker asks for `libz.so`).
    pub fn part_of(&self, path: &str, link: bool) -> Part {
        if let Some((part, _)) = self.recipe.iter().find(|(_, p)| p.matches(path)) {
            return *part;
        }
        static PARSED: std::sync::LazyLock<Vec<(Part, Pattern)>> = std::sync::LazyLock::new(|| {
            DEFAULTS.iter().filter_map(|(part, p)| Pattern::parse(p).ok().map(|p| (*part, p))).collect()
        });
        if let Some((part, _)) = PARSED.iter().find(|(_, p)| p.matches(path)) {
            return *part;
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        if link && name.starts_with("lib") && name.ends_with(".so") {
            return Part::Dev;
        }
        Part::Runtime
    }

    /// The rules as one line, for the package task's signature.
    pub fn describe(&self) -> String {
        let own: Vec<String> = self.recipe.iter().map(|(part, p)| format!("{part}={}", p.as_str())).collect();
        format!("v{RULES_VERSION};{}", own.join(";"))
    }
}

fn walk(root: &Path) -> Result<Vec<crate::listing::Entry>, SplitError> {
    crate::listing::entries(root).map_err(|e| SplitError::Read { path: e.path, source: e.source })
}

/// One ELF to strip: where it is, where its debug file goes, its mode, and the other names
/// (hard links) of the same file, which get the stripped one back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripItem {
    pub file: String,
    pub debug_file: String,
    pub mode: u32,
    pub build_id: Option<String>,
    pub links: Vec<String>,
}

/// Where the debug info of a file goes: by its build-id when it has one
/// (`usr/lib/debug/.build-id/ab/cdef….debug`, where gdb and every debugger look first), else
/// under its own path (`usr/lib/debug/usr/bin/x.debug`, gdb's second place).
pub fn debug_path(file: &str, build_id: Option<&str>) -> String {
    match build_id {
        Some(id) if id.len() > 2 => format!("usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]),
        _ => format!("usr/lib/debug/{file}.debug"),
    }
}

/// The ELF programs and shared libraries below `dest` that still carry symbols or debug info and
/// are of `machine` (one of another machine is left for the QA check to name); relocatable
/// objects (`.o`, `.a` members, kernel modules) are linked later and keep theirs.
pub fn strip_plan(dest: &Path, machine: u16) -> Result<Vec<StripItem>, SplitError> {
    let mut items: Vec<StripItem> = Vec::new();
    let mut by_inode: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    for e in walk(dest)? {
        if !e.meta.file_type().is_file() || e.rel.starts_with("usr/lib/debug/") {
            continue;
        }
        if let Some(&i) = by_inode.get(&(e.meta.dev(), e.meta.ino())) {
            items[i].links.push(e.rel);
            continue;
        }
        let data = fs::read(&e.path).map_err(|source| SplitError::Read { path: e.path.clone(), source })?;
        let Some(f) = elf::read(&data).map_err(|source| SplitError::Elf { path: e.path.clone(), source })? else {
            continue;
        };
        if !f.unstripped || f.machine != machine || !matches!(f.kind, ElfType::Executable | ElfType::Shared) {
            continue;
        }
        if e.meta.nlink() > 1 {
            by_inode.insert((e.meta.dev(), e.meta.ino()), items.len());
        }
        items.push(StripItem {
            debug_file: debug_path(&e.rel, f.build_id.as_deref()),
            file: e.rel,
            mode: e.meta.permissions().mode() & 0o7777,
            build_id: f.build_id,
            links: Vec::new(),
        });
    }
    Ok(items)
}

/// Single quotes for the shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script that strips `items` in the package's sandbox, run from DESTDIR with the step
/// environment (`$OBJCOPY` is the toolchain's). Each file: its debug sections copied out
/// (`--only-keep-debug`), then the file stripped of every symbol and debug section with a
/// `.gnu_debuglink` to the debug file (for a debugger that does not look by build-id), written to
/// a temporary name and renamed, as GNU strip and zig's objcopy both would, so the mode is set
/// again. Every tool is called with an input and an output: zig's objcopy edits nothing in place.
pub fn strip_script(items: &[StripItem]) -> String {
    let mut s = String::from(
        "set -e\ncd \"$DESTDIR\"\n\
         strip_one() {\n\
         \tmkdir -p \"${2%/*}\"\n\
         \t\"$OBJCOPY\" --only-keep-debug \"$1\" \"$2\"\n\
         \tchmod 0644 \"$2\"\n\
         \t\"$OBJCOPY\" --strip-all \"$1\" \"$1.ovm-strip\"\n\
         \t\"$OBJCOPY\" --add-gnu-debuglink=\"$2\" \"$1.ovm-strip\" \"$1.ovm-link\"\n\
         \trm -f \"$1.ovm-strip\"\n\
         \tmv -f \"$1.ovm-link\" \"$1\"\n\
         \tchmod \"$3\" \"$1\"\n\
         }\n",
    );
    for i in items {
        s.push_str(&format!("strip_one {} {} {:o}\n", quote(&i.file), quote(&i.debug_file), i.mode));
        for l in &i.links {
            s.push_str(&format!("ln -f {} {}\n", quote(&i.file), quote(l)));
        }
    }
    s
}

/// What the split put where: each part's files (regular files and links), by relative path.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Split {
    pub files: BTreeMap<Part, Vec<String>>,
}

/// Copies everything below `dest` into `out/PART/…` by `rules`. Directories are recreated in each
/// part that has something below them, with their modes; an empty directory stays in the runtime
/// part (a package may need `/var/empty`); hard links stay hard links within a part. `out/runtime`
/// always exists, the other parts only when they hold something. `dest` is left as it was, so
/// the package task can run again on it (a change of the rules alone).
pub fn split(dest: &Path, out: &Path, rules: &Rules) -> Result<Split, SplitError> {
    let mut result = Split::default();
    let entries = walk(dest)?;
    let mkdir = |p: &Path| fs::create_dir_all(p).map_err(|source| SplitError::Write { path: p.to_path_buf(), source });
    mkdir(&out.join(Part::Runtime.name()))?;
    let mut non_empty_dirs = std::collections::BTreeSet::new();
    let mut linked: BTreeMap<(u64, u64), (Part, PathBuf)> = BTreeMap::new();
    for e in &entries {
        if !e.meta.is_dir() {
            let mut parent = Path::new(&e.rel).parent();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                non_empty_dirs.insert(p.to_string_lossy().into_owned());
                parent = p.parent();
            }
        }
    }
    for e in &entries {
        if e.meta.is_dir() {
            if !non_empty_dirs.contains(&e.rel) {
                let to = out.join(Part::Runtime.name()).join(&e.rel);
                make_parents(dest, &out.join(Part::Runtime.name()), &e.rel)?;
                mkdir(&to)?;
                copy_mode(&e.meta, &to)?;
            }
            continue;
        }
        let part = rules.part_of(&e.rel, e.meta.file_type().is_symlink());
        let root = out.join(part.name());
        make_parents(dest, &root, &e.rel)?;
        let to = root.join(&e.rel);
        let werr = |source| SplitError::Write { path: to.clone(), source };
        if e.meta.file_type().is_symlink() {
            let target = fs::read_link(&e.path).map_err(|source| SplitError::Read { path: e.path.clone(), source })?;
            std::os::unix::fs::symlink(&target, &to).map_err(werr)?;
        } else if let Some(first) = linked.get(&(e.meta.dev(), e.meta.ino())).filter(|(p, _)| *p == part) {
            // Another name of a file already copied into this part: a hard link again, as the
            // install made it (the image keeps one copy of busybox-style multi-call programs).
            fs::hard_link(&first.1, &to).map_err(werr)?;
        } else {
            fs::copy(&e.path, &to).map_err(werr)?;
            if e.meta.nlink() > 1 {
                linked.insert((e.meta.dev(), e.meta.ino()), (part, to.clone()));
            }
        }
        result.files.entry(part).or_default().push(e.rel.clone());
    }
    Ok(result)
}

/// Creates the parents of `rel` below `root`, each with the mode its namesake has below `dest`.
fn make_parents(dest: &Path, root: &Path, rel: &str) -> Result<(), SplitError> {
    let mut missing = Vec::new();
    let mut parent = Path::new(rel).parent();
    while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
        if root.join(p).is_dir() {
            break;
        }
        missing.push(p.to_path_buf());
        parent = p.parent();
    }
    for p in missing.into_iter().rev() {
        let to = root.join(&p);
        fs::create_dir_all(&to).map_err(|source| SplitError::Write { path: to.clone(), source })?;
        let from = dest.join(&p);
        let meta = fs::symlink_metadata(&from).map_err(|source| SplitError::Read { path: from.clone(), source })?;
        copy_mode(&meta, &to)?;
    }
    Ok(())
}

fn copy_mode(meta: &fs::Metadata, to: &Path) -> Result<(), SplitError> {
    fs::set_permissions(to, fs::Permissions::from_mode(meta.permissions().mode() & 0o7777))
        .map_err(|source| SplitError::Write { path: to.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn pat(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    #[test]
    fn every_default_rule_parses() {
        for (_, p) in DEFAULTS {
            assert!(Pattern::parse(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn patterns_match_components_and_what_lies_below_a_matched_directory() {
        assert!(pat("usr/include").matches("usr/include/zlib.h"));
        assert!(pat("**/*.a").matches("usr/lib/libz.a"));
        assert!(pat("**/*.a").matches("libz.a"));
        assert!(!pat("**/*.a").matches("usr/lib/libz.a.txt"));
        assert!(pat("usr/bin/*-config").matches("usr/bin/curl-config"));
        assert!(!pat("usr/bin/*-config").matches("usr/sbin/curl-config"));
        assert!(!pat("usr/*/zlib.h").matches("usr/include/sub/zlib.h"));
        assert!(pat("usr/**/zlib.h").matches("usr/include/sub/zlib.h"));
        assert!(pat("/usr/lib/lib?.so").matches("usr/lib/libz.so"));
        for bad in ["", "/", "usr//lib", "usr/../etc", "usr/a**"] {
            assert!(Pattern::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn the_defaults_put_headers_archives_docs_and_dev_links_apart_and_a_recipe_rule_comes_first() {
        let mut rules = Rules::default();
        let cases = [
            ("usr/include/zlib.h", false, Part::Dev),
            ("usr/lib/libz.a", false, Part::Dev),
            ("usr/lib/pkgconfig/zlib.pc", false, Part::Dev),
            ("usr/lib/libz.so", true, Part::Dev),
            ("usr/lib/libz.so", false, Part::Runtime),
            ("usr/lib/libz.so.1", true, Part::Runtime),
            ("usr/share/man/man3/zlib.3", false, Part::Doc),
            ("usr/share/locale/de/LC_MESSAGES/x.mo", false, Part::Locale),
            ("usr/lib/debug/.build-id/ab/cd.debug", false, Part::Dbg),
            ("usr/bin/lz4", false, Part::Runtime),
            ("usr/bin/curl-config", false, Part::Runtime),
        ];
        for (path, link, want) in cases {
            assert_eq!(rules.part_of(path, link), want, "{path}");
        }
        rules.recipe.push((Part::Dev, pat("usr/bin/*-config")));
        rules.recipe.push((Part::Runtime, pat("usr/share/man/man8/keep.8")));
        assert_eq!(rules.part_of("usr/bin/curl-config", false), Part::Dev);
        assert_eq!(rules.part_of("usr/share/man/man8/keep.8", false), Part::Runtime);
        assert_ne!(Rules::default().describe(), rules.describe());
    }

    #[test]
    fn split_moves_each_file_to_its_part_with_directory_modes_and_keeps_empty_dirs() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("dest");
        let out = d.path().join("out");
        for dir in ["usr/bin", "usr/include", "usr/lib/pkgconfig", "usr/share/man/man1", "var/empty"] {
            fs::create_dir_all(dest.join(dir)).unwrap();
        }
        fs::set_permissions(dest.join("var/empty"), fs::Permissions::from_mode(0o711)).unwrap();
        fs::set_permissions(dest.join("usr/include"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(dest.join("usr/bin/tool"), "x").unwrap();
        fs::write(dest.join("usr/include/t.h"), "h").unwrap();
        fs::write(dest.join("usr/lib/libt.so.1"), "so").unwrap();
        symlink("libt.so.1", dest.join("usr/lib/libt.so")).unwrap();
        fs::write(dest.join("usr/lib/pkgconfig/t.pc"), "pc").unwrap();
        fs::write(dest.join("usr/share/man/man1/tool.1"), "man").unwrap();

        let s = split(&dest, &out, &Rules::default()).unwrap();
        assert_eq!(s.files[&Part::Runtime], vec!["usr/bin/tool", "usr/lib/libt.so.1"]);
        assert_eq!(s.files[&Part::Dev], vec!["usr/include/t.h", "usr/lib/libt.so", "usr/lib/pkgconfig/t.pc"]);
        assert_eq!(s.files[&Part::Doc], vec!["usr/share/man/man1/tool.1"]);
        assert!(out.join("runtime/usr/bin/tool").is_file() && out.join("runtime/var/empty").is_dir());
        assert!(fs::symlink_metadata(out.join("dev/usr/lib/libt.so")).unwrap().file_type().is_symlink());
        let mode = |p: &str| fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("runtime/var/empty"), 0o711);
        assert_eq!(mode("dev/usr/include"), 0o750);
        assert!(!out.join("dbg").exists() && !out.join("locale").exists());
        assert!(dest.join("usr/bin/tool").exists(), "the install was consumed");
    }

    #[test]
    fn debug_files_go_by_build_id_else_by_path() {
        assert_eq!(debug_path("usr/bin/x", Some("abcdef")), "usr/lib/debug/.build-id/ab/cdef.debug");
        assert_eq!(debug_path("usr/bin/x", None), "usr/lib/debug/usr/bin/x.debug");
    }

    #[test]
    fn the_strip_plan_takes_unstripped_programs_of_the_machine_and_their_hard_links_once() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path();
        fs::create_dir_all(dest.join("bin")).unwrap();
        // Debian's own programs are stripped: none of them is planned.
        fs::copy("/bin/ls", dest.join("bin/ls")).unwrap();
        fs::write(dest.join("bin/script"), "#!/bin/sh\n").unwrap();
        #[cfg(target_arch = "x86_64")]
        assert!(strip_plan(dest, crate::arch::Arch::X86_64.elf_machine()).unwrap().is_empty());
        let script = strip_script(&[StripItem {
            file: "usr/bin/it's".into(),
            debug_file: "usr/lib/debug/.build-id/ab/cd.debug".into(),
            mode: 0o755,
            build_id: Some("abcd".into()),
            links: vec!["usr/bin/other".into()],
        }]);
        assert!(
            script.contains("strip_one 'usr/bin/it'\\''s' 'usr/lib/debug/.build-id/ab/cd.debug' 755\n"),
            "{script}"
        );
        assert!(script.contains("ln -f 'usr/bin/it'\\''s' 'usr/bin/other'\n"), "{script}");
    }
}

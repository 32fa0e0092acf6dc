//! Documents and comments name only files the repository has. The Markdown files and the comments
//! of the sources, tests, scripts, recipes and config are read when the test runs, and every
//!
//! * `NAME.md` must exist (from the repository root or from the mentioning file's directory);
//! * `src/…`, `tests/…`, `scripts/…`, `.ci/…` path with a file extension must exist (a `*` in it
//!   must match at least one file);
//! * bare `NAME.rs` / `NAME.sh` must be the name of a file of the repository's code;
//! * `README "Title"`, `PATH.md "Title"` (`docs/sandbox.md "Resource limits"`; also with the file
//!   name as a Markdown link, `[sandbox.md](sandbox.md) "Resource limits"`) and, inside a Markdown
//!   file, `see "Title"` (its own headings) must be the start of one of that document's headings;
//! * a Markdown link's target (`[x](sandbox.md#resource-limits)`, `[x](#resource-limits)`),
//!   relative to the linking file as a browser reads it, must exist, and its `#anchor` must be the
//!   GitHub anchor of one of the target's headings.
//!
//! And every command clap knows (hidden ones aside) has a row in the README's command table and a
//! section in `docs/commands.md`, so neither can fall behind the code.
//!
//! This file is not read: its examples are no references.
//! Placeholders (`recipes/NAME.toml`, `tests/ARCH.rs`: a run of capitals in a path) are not file
//! names and are skipped, as are the example projects tests write (in code, not in comments).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files whose prose is checked: Markdown at the root and under the project's directories, and
/// every file of `docs/`, `src/`, `tests/` (fixtures aside: they are inputs, not prose), `scripts/`,
/// `.ci/`, `recipes/`, `config/`, and the build script, `Containerfile`, `.gitignore` and
/// `.cargo/config.toml`.
fn documents(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "fixtures") {
                    walk(&p, out);
                }
            } else {
                out.push(p);
            }
        }
    }
    let mut files: Vec<PathBuf> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    for dir in ["docs", "src", "tests", "scripts", ".ci", "recipes", "config"] {
        walk(&root.join(dir), &mut files);
    }
    // The build script and the files whose comments say where their reasons are documented.
    for file in ["build.rs", "Containerfile", ".gitignore", ".cargo/config.toml"] {
        if root.join(file).is_file() {
            files.push(root.join(file));
        }
    }
    files.sort();
    files
}

/// The prose of a file: all of a Markdown file, the comments of code (what follows `//` in Rust,
/// `#` elsewhere).
fn prose(path: &Path, text: &str) -> Vec<(usize, String)> {
    let ext = path.extension().and_then(|x| x.to_str()).unwrap_or_default();
    let marker = match ext {
        "md" => None,
        "rs" | "c" => Some("//"),
        _ => Some("#"),
    };
    text.lines()
        .enumerate()
        .filter_map(|(n, line)| match marker {
            None => Some((n + 1, line.to_string())),
            Some(m) => line.find(m).map(|at| (n + 1, line[at..].to_string())),
        })
        .collect()
}

/// The names of the files of the repository's code, for bare `NAME.rs` / `NAME.sh`.
fn code_file_names(root: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let files = documents(root);
    for f in files {
        if let Some(n) = f.file_name().and_then(|n| n.to_str()) {
            names.insert(n.to_string());
        }
    }
    names
}

/// Whether `pattern` (a path from `root`, `*` in its last component at most) names a file.
fn exists(root: &Path, pattern: &str) -> bool {
    if !pattern.contains('*') {
        return root.join(pattern).exists();
    }
    let (dir, name) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    let Some((head, tail)) = name.split_once('*') else { return false };
    fs::read_dir(root.join(dir)).into_iter().flatten().flatten().any(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        n.len() >= head.len() + tail.len() && n.starts_with(head) && n.ends_with(tail)
    })
}

fn is_placeholder(word: &str) -> bool {
    let caps = word.chars().collect::<Vec<_>>();
    caps.windows(2).any(|w| w.iter().all(char::is_ascii_uppercase))
}

/// The headings of a Markdown file, without their `#`s.
fn headings(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.push(line.trim_start_matches('#').trim().to_string());
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, spaces to `-`, every other character but letters,
/// digits, `-` and `_` dropped (`` `ovm sandbox` — try it by hand `` → `ovm-sandbox--try-it-by-hand`).
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings; a repeated one gets `-1`, `-2` … as on GitHub.
fn anchors(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in headings(text) {
        let base = anchor(&h);
        let mut a = base.clone();
        let mut n = 0;
        while out.contains(&a) {
            n += 1;
            a = format!("{base}-{n}");
        }
        out.push(a);
    }
    out
}

fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_./*+-".contains(c)
}

/// The `(PATH.md, Title)` pairs of `line`: a Markdown file's name (bare, in backticks, or as a
/// link's target) followed by a quoted title.
fn md_titles(line: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    for (at, _) in line.match_indices(".md") {
        let start = line[..at].rfind(|c: char| !path_char(c)).map_or(0, |i| i + 1);
        let rest = &line[at + 3..];
        let rest = rest.strip_prefix([')', '`', ',']).unwrap_or(rest);
        let Some(quoted) = rest.strip_prefix(" \"") else { continue };
        if let Some(end) = quoted.find('"') {
            out.push((&line[start..at + 3], &quoted[..end]));
        }
    }
    out
}

/// The targets of the Markdown links in `line` (`[text](target)`), web addresses aside.
fn link_targets(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            rest.find(')').map(|end| &rest[..end])
        })
        .filter(|t| !t.contains("://") && !t.starts_with("mailto:"))
        .collect()
}

/// The quoted titles after `lead` in `line` (`README "Architecture"` → `Architecture`).
fn titles_after<'a>(line: &'a str, lead: &str) -> Vec<&'a str> {
    line.match_indices(lead)
        .filter_map(|(at, _)| {
            let rest = &line[at + lead.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// Every dangling reference in the repository at `root`, as `file:line: what`.
fn dangling(root: &Path) -> Vec<String> {
    let names = code_file_names(root);
    let readme = fs::read_to_string(root.join("README.md")).unwrap_or_default();
    let readme_headings = headings(&readme);
    let mut bad = Vec::new();
    // This file's examples of what is refused are no references.
    let this = root.join(file!());
    for file in documents(root).into_iter().filter(|f| *f != this) {
        let Ok(text) = fs::read_to_string(&file) else { continue };
        let shown = file.strip_prefix(root).unwrap_or(&file).display().to_string();
        let dir = file.parent().unwrap_or(root);
        let is_md = file.extension().is_some_and(|x| x == "md");
        let own_headings = if is_md { headings(&text) } else { Vec::new() };
        for (n, line) in prose(&file, &text) {
            for word in line.split(|c: char| !path_char(c)) {
                let word = word.trim_end_matches(['.', '-']);
                let missing = if word.ends_with(".md") && !word.starts_with('.') {
                    !exists(root, word) && !dir.join(word).exists()
                } else if ["src/", "tests/", "scripts/", ".ci/"].iter().any(|p| word.starts_with(p)) {
                    let ext = word.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
                    ["rs", "sh", "md", "toml", "c", "txt"].contains(&ext)
                        && !is_placeholder(word)
                        && !exists(root, word)
                } else if !word.contains('/')
                    && !word.starts_with('.')
                    && (word.ends_with(".rs") || word.ends_with(".sh"))
                {
                    !word.contains('*') && !is_placeholder(word) && !names.contains(word)
                } else {
                    false
                };
                if missing {
                    bad.push(format!("{shown}:{n}: `{word}` does not exist"));
                }
            }
            let mut titled: Vec<(&str, Vec<String>, String)> = Vec::new();
            for lead in ["README \"", "README section \""] {
                titled.extend(
                    titles_after(&line, lead).into_iter().map(|t| (t, readme_headings.clone(), "README.md".into())),
                );
            }
            for (path, title) in md_titles(&line) {
                // From the root or from the mentioning file, as for a file name; a missing file is
                // reported above.
                let found = [root.join(path), dir.join(path)].into_iter().find(|p| p.is_file());
                if let Some(doc) = found.and_then(|f| fs::read_to_string(&f).ok().map(|t| (f, t))) {
                    let shown_doc = doc.0.strip_prefix(root).unwrap_or(&doc.0).display().to_string();
                    titled.push((title, headings(&doc.1), shown_doc));
                }
            }
            if is_md {
                titled.extend(
                    titles_after(&line, "see \"").into_iter().map(|t| (t, own_headings.clone(), shown.clone())),
                );
                for target in link_targets(&line) {
                    let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
                    let linked = if path.is_empty() { file.clone() } else { dir.join(path) };
                    if !linked.exists() {
                        bad.push(format!("{shown}:{n}: link to `{target}`, which does not exist"));
                    } else if !fragment.is_empty() && linked.extension().is_some_and(|x| x == "md") {
                        let text = fs::read_to_string(&linked).unwrap_or_default();
                        if !anchors(&text).iter().any(|a| a == fragment) {
                            bad.push(format!(
                                "{shown}:{n}: link to `{target}`: no heading has the anchor `{fragment}`"
                            ));
                        }
                    }
                }
            }
            for (title, heads, doc) in titled {
                if !heads.iter().any(|h| h.starts_with(title)) {
                    bad.push(format!("{shown}:{n}: {doc} has no section \"{title}\""));
                }
            }
        }
    }
    bad
}

#[test]
fn documents_and_comments_name_only_files_the_repository_has() {
    let bad = dangling(&repo());
    assert!(bad.is_empty(), "references to files or sections that do not exist:\n{}", bad.join("\n"));
}

#[test]
fn a_dangling_reference_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for d in ["src", "scripts", "tests"] {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    fs::write(root.join("README.md"), "# ovm\n## Sandbox start-up\nsee \"Sandbox\", see \"Pack\"\n").expect("write");
    fs::write(root.join("scripts/test.sh"), "# runs tests/a_*.rs and tests/b_*.rs\n").expect("write");
    fs::write(root.join("tests/a_one.rs"), "").expect("write");
    let rust = "// see COMMON.md, README.md, scripts/test.sh, scripts/gone.sh, recipes/NAME.toml, lib.rs\n\
                // README \"Sandbox start-up\", README \"Layout\", tests/ARCH.rs, x.rs\n\
                const URL: &str = \"docs/NOWHERE.md\";\n";
    fs::write(root.join("src/lib.rs"), rust).expect("write");
    let bad = dangling(root);
    let want = [
        "README.md:3: README.md has no section \"Pack\"",
        "scripts/test.sh:1: `tests/b_*.rs` does not exist",
        "src/lib.rs:1: `COMMON.md` does not exist",
        "src/lib.rs:1: `scripts/gone.sh` does not exist",
        "src/lib.rs:2: `x.rs` does not exist",
        "src/lib.rs:2: README.md has no section \"Layout\"",
    ];
    assert_eq!(bad, want);
}

/// The commands clap knows that a user can see (`ovm help` lists them), in its order.
fn visible_commands() -> Vec<String> {
    use clap::CommandFactory;
    crate::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

/// The commands of `names` without a row in the README's command table (a row whose first cell
/// starts `` `ovm NAME``, in the section `## Commands`) or without a section `` ## `ovm NAME` `` in
/// `docs/commands.md`, as one line each.
fn undocumented_commands(root: &Path, names: &[String]) -> Vec<String> {
    let readme = fs::read_to_string(root.join("README.md")).unwrap_or_default();
    let section = readme.split("\n## Commands\n").nth(1).unwrap_or_default();
    let section = section.split("\n## ").next().unwrap_or_default();
    let rows: Vec<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|cell| cell.split(['`', '|']).next())
        .map(|c| c.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    let reference = fs::read_to_string(root.join("docs/commands.md")).unwrap_or_default();
    let sections = headings(&reference);
    let mut bad = Vec::new();
    for name in names {
        let command = format!("ovm {name}");
        if !rows.contains(&command) {
            bad.push(format!("README.md: no row for `{command}` in the command table (\"## Commands\")"));
        }
        if !sections.iter().any(|h| *h == format!("`{command}`")) {
            bad.push(format!("docs/commands.md: no section \"`{command}`\""));
        }
    }
    bad
}

#[test]
fn every_command_is_in_the_readme_table_and_in_the_command_reference() {
    let names = visible_commands();
    // The list is clap's own (a filter that dropped everything would pass).
    assert!(names.len() >= 10 && names.iter().any(|n| n == "build"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("__")), "hidden commands are no user's business: {names:?}");
    let bad = undocumented_commands(&repo(), &names);
    assert!(bad.is_empty(), "commands the documents do not describe:\n{}", bad.join("\n"));
}

#[test]
fn a_command_missing_from_the_table_or_the_reference_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    fs::create_dir_all(root.join("docs")).expect("mkdir");
    let readme = "# ovm\n## Commands\n| command | what |\n|---|---|\n| `ovm build ARCH [PKG…]` | builds |\n\
                  | `ovm pack ARCH` | packs |\n## Later\n| `ovm boot ARCH` | not in the table's section |\n";
    fs::write(root.join("README.md"), readme).expect("write");
    fs::write(root.join("docs/commands.md"), "# Commands\n## `ovm build`\n## `ovm boot`\n```\n## `ovm pack`\n```\n")
        .expect("write");
    let names = ["build", "pack", "boot"].map(String::from);
    let want = [
        "docs/commands.md: no section \"`ovm pack`\"",
        "README.md: no row for `ovm boot` in the command table (\"## Commands\")",
    ];
    assert_eq!(undocumented_commands(root, &names), want);
}

#[test]
fn a_page_section_or_a_link_anchor_that_does_not_exist_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for d in ["src", "docs"] {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    fs::write(
        root.join("README.md"),
        "# ovm\n## Where to go next\n[pack](docs/pack.md#layers), [gone](docs/gone.md)\n",
    )
    .expect("write");
    let pack = "# Pack\n## Layers\n## `ovm pack` — by hand\n## Layers\n\
                [a](#layers-1) [b](#ovm-pack--by-hand) [c](#layers-2) [d](../README.md#where-to-go-next)\n\
                see [sandbox.md](sandbox.md) \"Limits\", sandbox.md \"Resource limits\", [x](sandbox.md#limits)\n";
    fs::write(root.join("docs/pack.md"), pack).expect("write");
    fs::write(root.join("docs/sandbox.md"), "# Sandbox\n## Resource limits\n").expect("write");
    let rust = "// docs/pack.md \"Layers\", docs/pack.md \"Compression\", ARCHITECTURE.md \"Pipeline\"\n";
    fs::write(root.join("src/lib.rs"), rust).expect("write");
    let want = [
        "README.md:3: `docs/gone.md` does not exist",
        "README.md:3: link to `docs/gone.md`, which does not exist",
        "docs/pack.md:5: link to `#layers-2`: no heading has the anchor `layers-2`",
        "docs/pack.md:6: link to `sandbox.md#limits`: no heading has the anchor `limits`",
        "docs/pack.md:6: docs/sandbox.md has no section \"Limits\"",
        "src/lib.rs:1: docs/pack.md has no section \"Compression\"",
        "src/lib.rs:1: ARCHITECTURE.md has no section \"Pipeline\"",
    ];
    fs::write(root.join("ARCHITECTURE.md"), "# Architecture\n## 2. The pipeline\n").expect("write");
    assert_eq!(dangling(root), want);
}

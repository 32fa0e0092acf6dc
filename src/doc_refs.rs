//! Documents and comments name only files the repository has. The Markdown files and the comments
//! of the sources, tests, scripts, recipes and config are read when the test runs, and every
//!
//! * `NAME.md` must exist (from the repository root or from the mentioning file's directory);
//! * `src/…`, `tests/…`, `scripts/…`, `.ci/…` path with a file extension must exist (a `*` in it
//!   must match at least one file);
//! * bare `NAME.rs` / `NAME.sh` must be the name of a file of the repository's code;
//! * `README "Title"` (and, inside a Markdown file, `see "Title"`) must be the start of one of that
//!   README's headings.
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
/// every file of `src/`, `tests/` (fixtures aside: they are inputs, not prose), `scripts/`, `.ci/`,
/// `recipes/`, `config/`.
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
    for dir in ["src", "tests", "scripts", ".ci", "recipes", "config"] {
        walk(&root.join(dir), &mut files);
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
    let mut files = documents(root);
    files.push(root.join("build.rs"));
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
            let path_char = |c: char| c.is_ascii_alphanumeric() || "_./*+-".contains(c);
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
            let mut titled: Vec<(&str, &[String], &str)> = Vec::new();
            for lead in ["README \"", "README section \""] {
                titled.extend(titles_after(&line, lead).into_iter().map(|t| (t, &readme_headings[..], "README.md")));
            }
            if is_md {
                titled
                    .extend(titles_after(&line, "see \"").into_iter().map(|t| (t, &own_headings[..], shown.as_str())));
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

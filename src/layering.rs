//! The layering of ovm's modules, checked against the source. ARCHITECTURE.md's module table gives
//! every top-level module of the crate a layer; a module may name only modules of lower layers —
//! by `crate::X` (also in a `use crate::{…}` group) or by `super::` climbing to the crate root.
//!
//! The table is read from ARCHITECTURE.md and the code from `src/` when the test runs, so there is
//! one table, and the document cannot drift from the code: a module missing from the table, a
//! table row naming no module, or an import that goes up or sideways fails `cargo test --lib
//! layering`. Test modules count like the rest of a module's code: a test that needs a module
//! above belongs to that module (the sandbox's fast-path parser is checked against the full
//! command line in `cli`'s tests for that reason). Comments and string literals do not count.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The markers around the module table in ARCHITECTURE.md.
const TABLE_BEGIN: &str = "<!-- layers: begin -->";
const TABLE_END: &str = "<!-- layers: end -->";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The module table: module → layer, from the rows `| LAYER | `module` | … |` between the markers.
fn layer_table(doc: &str) -> Result<BTreeMap<String, u32>, String> {
    let start = doc.find(TABLE_BEGIN).ok_or(format!("no `{TABLE_BEGIN}` in ARCHITECTURE.md"))?;
    let end = doc[start..].find(TABLE_END).ok_or(format!("no `{TABLE_END}` after the table"))? + start;
    let mut table = BTreeMap::new();
    for row in doc[start..end].lines().filter(|l| l.trim_start().starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (Some(layer), Some(module)) = (cells.get(1), cells.get(2)) else { continue };
        let Ok(layer) = layer.parse::<u32>() else { continue }; // the header and the `---` row
        let module = module.trim_matches('`');
        if table.insert(module.to_string(), layer).is_some() {
            return Err(format!("`{module}` has two rows in the table"));
        }
    }
    Ok(table)
}

/// The top-level modules `src/lib.rs` declares, test-only ones (like this one) excepted.
fn lib_modules(lib: &str) -> Vec<String> {
    let mut modules = Vec::new();
    let mut test_only = false;
    for line in lib.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("pub mod ").or_else(|| line.strip_prefix("mod ")) {
            if !test_only {
                modules.push(rest.trim_end_matches(';').trim().to_string());
            }
        }
        test_only = line == "#[cfg(test)]";
    }
    modules
}

/// `code` with comments and the contents of string and char literals blanked out (newlines kept, so
/// line numbers still hold).
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && ident(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if (c[i] == 'r' || (c[i] == 'b' && c.get(i + 1) == Some(&'r')))
            && !prev_ident
            && raw_string_hashes(&c[i..]).is_some()
        {
            // r"…", r#"…"#, br"…": ends at `"` followed by as many `#`.
            let prefix = if c[i] == 'b' { 2 } else { 1 };
            let hashes = raw_string_hashes(&c[i..]).unwrap_or(0);
            let open = prefix + hashes + 1;
            out.extend(std::iter::repeat(' ').take(open));
            i += open;
            while i < c.len()
                && !(c[i] == '"' && c[i + 1..].iter().take(hashes).filter(|&&h| h == '#').count() == hashes)
            {
                blank(&mut out, c[i]);
                i += 1;
            }
            out.extend(std::iter::repeat(' ').take(1 + hashes));
            i += 1 + hashes;
        } else if c[i] == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c[i] == '\'' && !prev_ident {
            // A char literal ('x', '\n', '\u{1F600}'), or a lifetime ('a), which stays.
            let end = if c.get(i + 1) == Some(&'\\') {
                c[i + 2..].iter().position(|&ch| ch == '\'').map(|p| i + 2 + p)
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    out.extend(std::iter::repeat(' ').take(end + 1 - i));
                    i = end + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// At `r"` / `r#"` / `br##"`: the number of `#`s; `None` if this is no raw string.
fn raw_string_hashes(c: &[char]) -> Option<usize> {
    let after = if c.first() == Some(&'b') { &c[2..] } else { &c[1..] };
    let hashes = after.iter().take_while(|&&ch| ch == '#').count();
    (after.get(hashes) == Some(&'"')).then_some(hashes)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

/// The tokens of blanked code, each with its line.
fn tokens(code: &str) -> Vec<(Token, usize)> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            // A number (`0x1f`, `64u64`) is no identifier.
            if !ch.is_ascii_digit() {
                out.push((Token::Ident(word), line));
            }
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push((Token::PathSep, line));
            i += 2;
        } else {
            out.push((Token::Punct(ch), line));
            i += 1;
        }
    }
    out
}

/// A top-level module a file names, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    module: String,
    line: usize,
}

/// Every top-level module the code of a file names. `depth` is how many modules deep the file is
/// (`src/fault.rs`, `src/engine/mod.rs`: 1; `src/engine/build.rs`: 2), which says where `super::`
/// reaches the crate root; inline `mod x { … }` blocks add to it.
fn references(src: &str, depth: usize) -> Vec<Reference> {
    let toks = tokens(&code_only(src));
    let ident = |i: usize| match toks.get(i) {
        Some((Token::Ident(w), _)) => Some(w.as_str()),
        _ => None,
    };
    let is = |i: usize, t: &Token| toks.get(i).map(|(tok, _)| tok) == Some(t);
    let mut refs = Vec::new();
    let mut braces: Vec<bool> = Vec::new(); // per open `{`: whether it opened an inline module
    for i in 0..toks.len() {
        let line = toks[i].1;
        match &toks[i].0 {
            Token::Punct('{') => braces.push(i >= 2 && ident(i - 2) == Some("mod") && ident(i - 1).is_some()),
            Token::Punct('}') => {
                braces.pop();
            }
            Token::Ident(w)
                if w == "crate" && is(i + 1, &Token::PathSep) && (i == 0 || !is(i - 1, &Token::PathSep)) =>
            {
                refs.extend(path_heads(&toks, i + 2).into_iter().map(|module| Reference { module, line }));
            }
            Token::Ident(w) if w == "super" && (i == 0 || !is(i - 1, &Token::PathSep)) => {
                let mut j = i;
                let mut supers = 0;
                while ident(j) == Some("super") && is(j + 1, &Token::PathSep) {
                    supers += 1;
                    j += 2;
                }
                let here = depth + braces.iter().filter(|&&m| m).count();
                if supers > 0 && supers >= here {
                    refs.extend(path_heads(&toks, j).into_iter().map(|module| Reference { module, line }));
                }
            }
            _ => {}
        }
    }
    refs
}

/// The first segment of the path (or of each path of the `{…}` group) starting at token `i`; `*`
/// for a glob.
fn path_heads(toks: &[(Token, usize)], i: usize) -> Vec<String> {
    match toks.get(i).map(|(t, _)| t) {
        Some(Token::Ident(w)) => vec![w.clone()],
        Some(Token::Punct('*')) => vec!["*".into()],
        Some(Token::Punct('{')) => {
            let mut heads = Vec::new();
            let (mut depth, mut at_start) = (0, true);
            for (t, _) in &toks[i..] {
                match t {
                    Token::Punct('{') => {
                        depth += 1;
                        at_start = depth == 1;
                        continue;
                    }
                    Token::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Token::Punct(',') if depth == 1 => {
                        at_start = true;
                        continue;
                    }
                    Token::Ident(w) if at_start && depth == 1 && w != "self" => heads.push(w.clone()),
                    Token::Punct('*') if at_start && depth == 1 => heads.push("*".into()),
                    _ => {}
                }
                at_start = false;
            }
            heads
        }
        _ => Vec::new(),
    }
}

/// The `.rs` files of top-level module `name`: `src/NAME.rs` and everything under `src/NAME/`.
fn module_files(src: &Path, name: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    let file = src.join(format!("{name}.rs"));
    if file.is_file() {
        files.push(file);
    }
    walk(&src.join(name), &mut files);
    files.sort();
    files
}

/// How many modules deep a file under `src/` is.
fn depth_of(src: &Path, file: &Path) -> usize {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let n = rel.components().count();
    if rel.file_name().is_some_and(|f| f == "mod.rs") {
        n - 1
    } else {
        n
    }
}

/// Every reference that breaks the layering, as `file:line: message`.
fn violations(src: &Path, table: &BTreeMap<String, u32>) -> (Vec<String>, usize) {
    let mut bad = Vec::new();
    let mut seen = 0;
    for (module, &layer) in table {
        for file in module_files(src, module) {
            let text = read(&file);
            let shown = file.strip_prefix(repo()).unwrap_or(&file).display().to_string();
            if text.contains("#[path") {
                bad.push(format!("{shown}: #[path] moves a module where this check does not look"));
            }
            for r in references(&text, depth_of(src, &file)) {
                seen += 1;
                if r.module == *module {
                    continue;
                }
                match table.get(&r.module) {
                    Some(&l) if l < layer => {}
                    Some(&l) => bad.push(format!(
                        "{shown}:{}: `{module}` (layer {layer}) uses `{}` (layer {l}): a module may use only lower layers",
                        r.line, r.module
                    )),
                    None => bad.push(format!(
                        "{shown}:{}: `{module}` uses `crate::{}`, which is no module of the table",
                        r.line, r.module
                    )),
                }
            }
        }
    }
    (bad, seen)
}

#[test]
fn architecture_md_lists_exactly_the_modules_of_lib_rs() {
    let table = layer_table(&read(&repo().join("ARCHITECTURE.md"))).unwrap_or_else(|e| panic!("{e}"));
    let mut in_lib = lib_modules(&read(&repo().join("src/lib.rs")));
    in_lib.sort();
    let in_table: Vec<String> = table.keys().cloned().collect();
    assert_eq!(in_table, in_lib, "ARCHITECTURE.md's module table against src/lib.rs");
}

/// The README's Architecture section shows the layers as a short block (`N  module module …`):
/// it must say what ARCHITECTURE.md's table says.
#[test]
fn the_readme_shows_the_same_layers() {
    let table = layer_table(&read(&repo().join("ARCHITECTURE.md"))).unwrap_or_else(|e| panic!("{e}"));
    let readme = read(&repo().join("README.md"));
    let section = readme.split("\n## Architecture\n").nth(1).expect("README has an Architecture section");
    let block = section.split("```").nth(1).expect("the Architecture section opens with a code block");
    let mut shown = BTreeMap::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let layer: u32 =
            words.next().and_then(|w| w.parse().ok()).unwrap_or_else(|| panic!("not `N  modules`: {line}"));
        shown.extend(words.map(|m| (m.to_string(), layer)));
    }
    assert_eq!(shown, table, "README's Architecture block against ARCHITECTURE.md's table");
}

#[test]
fn no_module_uses_a_module_of_its_own_or_a_higher_layer() {
    let table = layer_table(&read(&repo().join("ARCHITECTURE.md"))).unwrap_or_else(|e| panic!("{e}"));
    let (bad, seen) = violations(&repo().join("src"), &table);
    assert!(bad.is_empty(), "layering violations (see ARCHITECTURE.md):\n{}", bad.join("\n"));
    // The scan itself found the crate's references (a parser that finds none would pass).
    assert!(seen > 100, "only {seen} references to crate modules found");
}

#[test]
fn references_are_read_from_code_only() {
    let src = r##"
use crate::recipe::Recipe;
use crate::{arch::Arch, layout::{Domain, Layout}, self};
// use crate::cli::Cli;
/* crate::boot /* nested */ crate::boot */
const S: &str = "crate::cli::x";
const R: &str = r#"crate::cli " still raw"#;
const C: char = '"';
fn f<'a>(x: &'a str) -> &'a str { crate::pack::f(x) }
mod tests {
    use super::*;
    use super::super::engine;
}
"##;
    let got: Vec<(String, usize)> = references(src, 1).into_iter().map(|r| (r.module, r.line)).collect();
    let want = [("recipe", 2), ("arch", 3), ("layout", 3), ("pack", 9), ("engine", 12)];
    assert_eq!(got, want.map(|(m, l)| (m.to_string(), l)));
    // In `src/engine/mod.rs` (depth 1) `super::x` is the crate's `x`; in `src/engine/build.rs` it is
    // the engine's.
    assert_eq!(references("use super::recipe;", 1), [Reference { module: "recipe".into(), line: 1 }]);
    assert!(references("use super::freshness;", 2).is_empty());
    assert_eq!(references("use super::super::{tree, *};", 2).len(), 2);
}

#[test]
fn a_use_of_a_higher_layer_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(dir.path().join("low")).expect("mkdir");
    fs::write(dir.path().join("low/mod.rs"), "use crate::high::X;\nuse crate::peer::Y;\n").expect("write");
    fs::write(dir.path().join("high.rs"), "use crate::low::Z;\nuse crate::nowhere::W;\n").expect("write");
    fs::write(dir.path().join("peer.rs"), "").expect("write");
    let table: BTreeMap<String, u32> = [("low", 0), ("peer", 0), ("high", 1)].map(|(m, l)| (m.to_string(), l)).into();
    let (bad, seen) = violations(dir.path(), &table);
    assert_eq!(seen, 4);
    assert_eq!(bad.len(), 3, "{bad:#?}");
    assert!(bad[0].contains("`high` uses `crate::nowhere`"), "{bad:#?}");
    assert!(
        bad[1].ends_with(":1: `low` (layer 0) uses `high` (layer 1): a module may use only lower layers"),
        "{bad:#?}"
    );
    assert!(bad[2].contains(":2: `low` (layer 0) uses `peer` (layer 0)"), "{bad:#?}");
}

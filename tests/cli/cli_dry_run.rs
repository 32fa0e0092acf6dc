//! `ovm build --dry-run`: the plan (which tasks of which packages a build would run, and why),
//! with nothing built, fetched or written — not a lock, stamp, cache note or directory: the project
//! tree (content, modes and mtimes of every file and directory) is the same before and after. The
//! plan is checked against what the next build really runs (context.log).

use crate::build_support;
use crate::engine_fixture;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use build_support::TestProject;
use engine_fixture::*;
use serde_json::Value;

/// Every entry under `root` (not following symlinks): kind, mode, mtime, and a file's size and
/// sha256; a symlink's target.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display())) {
            let path = e.expect("entry").path();
            let m = path.symlink_metadata().expect("metadata");
            let rel = path.strip_prefix(root).expect("under root").display().to_string();
            let stamp = format!("mode {:o} mtime {}.{}", m.mode(), m.mtime(), m.mtime_nsec());
            let what = if m.file_type().is_symlink() {
                format!("link {}", fs::read_link(&path).expect("readlink").display())
            } else if m.is_dir() {
                stack.push(path.clone());
                format!("dir {stamp}")
            } else {
                let bytes = fs::read(&path).expect("reading a project file");
                format!("file {stamp} size {} sha256 {}", bytes.len(), sha256(&bytes))
            };
            out.insert(rel, what);
        }
    }
    out
}

/// Runs `ovm ARGS` and asserts that it changed nothing in the project; returns its output.
fn untouched(p: &TestProject, args: &[&str]) -> String {
    let before = snapshot(p.path());
    let out = p.ok(args);
    let after = snapshot(p.path());
    for (path, was) in &before {
        assert_eq!(after.get(path), Some(was), "ovm {} changed {path}", args.join(" "));
    }
    let new: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(new.is_empty(), "ovm {} created {new:?}", args.join(" "));
    out
}

/// `(domain package, tasks)` of every line of a `--dry-run --json` plan that has work.
fn work(p: &TestProject, args: &[&str]) -> (Value, Vec<(String, Vec<String>)>) {
    let mut all = vec!["build", "--dry-run", "--json"];
    all.extend_from_slice(args);
    let plan: Value = serde_json::from_str(&untouched(p, &all)).expect("the plan is JSON");
    assert_eq!(plan["schema"], "ovm.plan/1");
    let lines = plan["packages"].as_array().expect("packages").iter().filter_map(|l| {
        let runs: Vec<String> = l["runs"].as_array()?.iter().filter_map(|t| t.as_str().map(String::from)).collect();
        let name = format!("{} {}", l["domain"].as_str()?, l["package"].as_str()?);
        (!runs.is_empty()).then_some((name, runs))
    });
    let lines = lines.collect();
    (plan, lines)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_dry_run_plans_what_the_build_then_runs_and_writes_nothing() {
    let p = project();
    write_greet_set(&p, "cli-dry-run");

    // Nothing built: every task of every package, because it was never built.
    let text = untouched(&p, &["build", "--dry-run", "x86_64"]);
    assert!(text.contains("nothing is built now"), "{text}");
    for pkg in ["libgreet", "hello", "zig", "make"] {
        assert!(text.lines().any(|l| l.split_whitespace().nth(1) == Some(pkg)), "{pkg} is not in the plan:\n{text}");
    }
    assert!(text.contains("because it was never built"), "{text}");
    let (plan, lines) = work(&p, &["x86_64"]);
    assert_eq!((plan["nothing_to_do"].as_bool(), plan["toolchain"].as_str()), (Some(false), Some("zig")));
    let of = |name: &str| lines.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone());
    assert_eq!(of("x86_64 libgreet"), Some(strings(ALL_TASKS)));
    assert_eq!(of("x86_64 hello"), Some(strings(ALL_TASKS)));
    assert_eq!(of("x86_64 image"), Some(strings(&["pack", "feed"])));

    p.ok(&["build", "x86_64"]);

    // Built: nothing to do. The build noted no output fingerprints, so this dry run re-hashes the
    // staged outputs, and still must not note them (`ovm status` would).
    let text = untouched(&p, &["build", "--dry-run", "x86_64"]);
    assert!(text.contains("nothing to do"), "{text}");
    let (plan, lines) = work(&p, &["x86_64"]);
    assert_eq!(plan["nothing_to_do"], true, "{lines:?}");
    let (_, lines) = work(&p, &["x86_64", "libgreet"]);
    assert!(lines.is_empty(), "{lines:?}");

    // A recipe edit: the plan names the changed input, and the build runs exactly the plan.
    edit(&p, "recipes/hello.toml", "HELLO_NAME = \"ovm\"", "HELLO_NAME = \"dry run\"");
    let text = untouched(&p, &["build", "--dry-run", "x86_64"]);
    assert!(text.contains("because env.HELLO_NAME changed (ovm → dry run)"), "{text}");
    assert!(!text.contains("libgreet"), "libgreet has nothing to do:\n{text}");
    let (_, lines) = work(&p, &["x86_64"]);
    assert_eq!(
        lines,
        [("x86_64 hello".to_string(), strings(FROM_UNPACK)), ("x86_64 image".to_string(), strings(&["pack", "feed"]))]
    );
    p.ok(&["build", "x86_64"]);
    assert_eq!(
        tasks_sorted(&p, "x86_64"),
        expect(&[chain("hello", FROM_UNPACK), vec!["image feed".into(), "image pack".into()]])
    );
}

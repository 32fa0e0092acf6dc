//! `ovm list`, `ovm info PKG` and `--json` on status, list and info, on the engine tests' small
//! greet set (libgreet ← hello): before a build every package is never built and each task never
//! ran; after it everything is built, each task's stamp is current, the output and logs are there.
//! The JSON is read back with serde_json (and once with `python3 -m json.tool`), field by field,
//! so a renamed field fails here.

use crate::build_support;
use crate::engine_fixture;

use std::process::Command;

use build_support::TestProject;
use engine_fixture::*;
use serde_json::Value;

/// Runs `ovm ARGS --json` and parses stdout; the exit code is returned too (status exits 1 when
/// something is not built).
fn json(p: &TestProject, args: &[&str]) -> (Value, Option<i32>) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = p.run(&all);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ovm {}: stdout is not JSON ({e}):\n{}", all.join(" "), build_support::text(&out)));
    (v, out.status.code())
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}")).iter().filter_map(Value::as_str).collect()
}

/// The `recipes` entry called `name` of `ovm list --json`.
fn entry<'v>(list: &'v Value, name: &str) -> &'v Value {
    list["recipes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("no recipe {name} in {list:#}"))
}

#[test]
fn list_and_info_before_and_after_a_build() {
    let p = project();
    write_greet_set(&p, "cli-inspect");

    // Before: every recipe listed with version and kind; nothing built.
    let (list, code) = json(&p, &["list", "x86_64"]);
    assert_eq!(code, Some(0));
    assert_eq!(list["schema"], "ovm.list/1");
    assert_eq!(list["toolchain"], "zig");
    let hello = entry(&list, "hello");
    assert_eq!((hello["version"].as_str(), hello["kind"].as_str()), (Some("1.0"), Some("target")));
    assert!(hello["recipe"].as_str().is_some_and(|r| r.ends_with("recipes/hello.toml")), "{hello:#}");
    let states: Vec<(&str, &str)> = hello["status"]
        .as_array()
        .expect("status lines")
        .iter()
        .map(|l| (l["domain"].as_str().unwrap_or("?"), l["state"].as_str().unwrap_or("?")))
        .collect();
    assert_eq!(states, [("x86_64", "never_built")]);
    assert_eq!(entry(&list, "make")["kind"], "tools");
    assert_eq!(entry(&list, "zig")["kind"], "toolchain");
    // gcc's parts are not used by the zig toolchain: no status line at all.
    assert_eq!(entry(&list, "binutils")["status"], Value::Array(vec![]));
    let text = p.ok(&["list", "x86_64"]);
    let line = text.lines().find(|l| l.starts_with("hello ")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("1.0") && line.contains("target") && line.contains("x86_64: never built"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("binutils ") && l.contains("unused (toolchain zig)")), "{text}");

    // info: the recipe inside out, with dependencies both ways.
    let (info, code) = json(&p, &["info", "hello", "x86_64"]);
    assert_eq!(code, Some(0));
    assert_eq!(info["schema"], "ovm.info/1");
    assert_eq!((info["name"].as_str(), info["style"].as_str()), (Some("hello"), Some("custom")));
    assert_eq!(strs(&info["depends"]), ["libgreet"]);
    assert_eq!(strs(&info["sysroot"]), ["libgreet"]);
    assert!(strs(&info["native"]).is_empty(), "hello names no native tool");
    let source = &info["sources"][0];
    assert!(source["sha256"].as_str().is_some_and(|s| s.len() == 64), "{source:#}");
    assert!(strs(&source["urls"]).iter().all(|u| u.starts_with("file://")), "{source:#}");
    assert_eq!(info["domain"], "x86_64");
    assert_eq!(info["status"]["state"], "never_built");
    let tasks: Vec<(&str, &str)> = info["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| (t["name"].as_str().unwrap_or("?"), t["state"].as_str().unwrap_or("?")))
        .collect();
    let names: Vec<&str> = tasks.iter().map(|t| t.0).collect();
    assert_eq!(names, ALL_TASKS);
    assert!(tasks.iter().all(|t| t.1 == "never_ran"), "{tasks:?}");
    // The fetch task's inputs are the declared sha256: known before anything ran.
    assert_eq!(info["tasks"][0]["inputs"]["source.0.sha256"], source["sha256"]);
    let (libgreet, _) = json(&p, &["info", "libgreet"]);
    assert_eq!(strs(&libgreet["required_by"]), ["hello"]);
    assert_eq!(strs(&libgreet["required_by_all"]), ["hello"]);
    assert!(libgreet["patches"][0].as_str().is_some_and(|p| p.ends_with("0001-greeting.patch")), "{libgreet:#}");
    assert_eq!(strs(&libgreet["files"]), ["libgreet/mark.h"]);

    // status --json: the same states, exit 1 as long as something is not built.
    let (status, code) = json(&p, &["status", "x86_64"]);
    assert_eq!(
        (status["schema"].as_str(), status["all_built"].as_bool(), code),
        (Some("ovm.status/1"), Some(false), Some(1))
    );

    p.ok(&["build", "x86_64"]);

    let (list, _) = json(&p, &["list", "x86_64"]);
    for name in ["hello", "libgreet", "make", "busybox-tools", "zig"] {
        let lines = entry(&list, name)["status"].as_array().cloned().unwrap_or_default();
        assert!(!lines.is_empty() && lines.iter().all(|l| l["state"] == "built"), "{name}: {lines:?}");
    }
    let (status, code) = json(&p, &["status", "x86_64"]);
    assert_eq!((status["all_built"].as_bool(), code), (Some(true), Some(0)), "{status:#}");
    let image = status["packages"].as_array().and_then(|a| a.iter().find(|l| l["package"] == "image"));
    assert!(image.is_some_and(|l| l["state"] == "built" && l["runs"] == Value::Array(vec![])), "{status:#}");

    let (info, _) = json(&p, &["info", "libgreet", "x86_64"]);
    assert_eq!(info["status"]["state"], "built");
    for t in info["tasks"].as_array().expect("tasks") {
        assert_eq!(t["state"], "current", "{t:#}");
        assert_eq!(t["stamp"]["signature"], t["signature"], "{t:#}");
        if ["configure", "compile", "install"].contains(&t["name"].as_str().unwrap_or("")) {
            assert_eq!(t["log_exists"], true, "a step's log: {t:#}");
        }
    }
    let compile =
        info["tasks"].as_array().and_then(|a| a.iter().find(|t| t["name"] == "configure")).expect("configure");
    assert_eq!(compile["inputs"]["build.style"], "make", "{compile:#}");
    assert!(compile["inputs"]["dep.libgreet"].is_null(), "libgreet has no dependency: {compile:#}");
    let output = &info["output"];
    assert_eq!(output["exists"], true);
    assert!(output["files"].as_u64() >= Some(2) && output["bytes"].as_u64() > Some(0), "{output:#}");
    assert_eq!(output["hash"].as_str(), Some(staged_hash(&p, "x86_64", "libgreet").as_str()));
    let (hello, _) = json(&p, &["info", "hello"]);
    let configure = hello["tasks"].as_array().and_then(|a| a.iter().find(|t| t["name"] == "configure")).expect("step");
    assert_eq!(configure["inputs"]["dep.libgreet"].as_str(), output["hash"].as_str(), "{configure:#}");

    // The text form names the same things.
    let text = p.ok(&["info", "hello"]);
    for want in [
        "hello 1.0 (target recipe, MIT)",
        "depends:      libgreet",
        "status:       built",
        "output:       staging/x86_64/hello",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    assert!(text.contains("env.HELLO_NAME = ovm"), "the configure inputs are listed:\n{text}");

    // One reader other than serde: python's own JSON parser takes every report.
    for args in [&["list", "--json"][..], &["info", "hello", "--json"], &["status", "--json"]] {
        let out = p.run(args);
        let mut py = Command::new("python3")
            .args(["-m", "json.tool"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("python3");
        std::io::Write::write_all(py.stdin.as_mut().expect("stdin"), &out.stdout).expect("feeding python");
        drop(py.stdin.take());
        assert!(py.wait().expect("python3").success(), "python3 -m json.tool refused ovm {args:?}");
    }
}

#[test]
fn info_of_an_unknown_package_names_it() {
    let p = TestProject::with_real_tools();
    let out = p.run(&["info", "no-such-package"]);
    assert!(!out.status.success());
    assert!(build_support::text(&out).contains("no recipe named `no-such-package`"), "{}", build_support::text(&out));
}

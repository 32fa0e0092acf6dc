//! The gcc toolchain's recipes, checked cheaply on every CI run (building them takes ~30 min per
//! target and is the slow tier: `scripts/slow-gcc.sh ARCH`, docs/toolchains.md "The gcc toolchain"):
//!
//! * binutils, gcc and linux-headers parse with the engine's parser and form the toolchain's parts;
//! * every source of theirs resolves in the offline mirror and sha256-verifies, fetched by ovm
//!   itself inside a network namespace with no network (the mirror is filled once per test run by
//!   `ovm download`, which reaches Debian's archive for the bytes upstream sites would serve);
//! * `ovm toolchain ARCH --dry-run` prints the task graph in the documented step order.

use crate::build_support;

use std::process::Command;

use build_support::{mirror, repo_root, require_tool, text, TestProject};
use ovm::recipe::RecipeSet;

/// The build steps, in order, as recipes/toolchain/README.md explains them.
const STEPS: &[&str] = &[
    "binutils configure",
    "binutils compile",
    "binutils install",
    "gcc prepare",
    "gcc musl-headers",
    "gcc configure",
    "gcc all-gcc",
    "gcc libgcc",
    "gcc musl",
    "gcc gcc",
    "gcc install",
    "linux-headers install",
];

fn repo_recipes() -> RecipeSet {
    let project = ovm::project::Project::open(&repo_root()).expect("opening the repository as a project");
    RecipeSet::load(&project).expect("the repository's recipes load")
}

#[test]
fn the_three_recipes_parse_as_toolchain_parts() {
    let recipes = repo_recipes();
    let parts = ovm::toolchain::gcc::parts(&recipes).expect("binutils, gcc, linux-headers are toolchain parts");
    let names: Vec<&str> = parts.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["binutils", "gcc", "linux-headers"]);
    assert_eq!(parts[1].depends, ["binutils"], "gcc's steps need binutils' as/ld in /ovm/sysroot");
    assert!(parts[0].depends.is_empty() && parts[2].depends.is_empty());
    // gcc carries musl and the in-tree libraries as sources of its own.
    let dests: Vec<String> = parts[1].sources.iter().map(|s| s.dest.display().to_string()).collect();
    assert_eq!(dests, ["", "gmp", "mpfr", "mpc", "isl", "musl"]);
    // Debian's repacks are alternatives with their own sha256, never silently the primary.
    for r in &parts {
        for s in &r.sources {
            for a in &s.alternatives {
                assert_ne!(a.artifact.sha256, s.primary.sha256, "{}: {}", r.name, a.artifact.file);
                assert!(!a.reason.is_empty() && !a.version.is_empty());
            }
        }
    }
}

#[test]
fn dry_run_prints_the_task_graph_in_step_order() {
    for arch in ["x86_64", "aarch64"] {
        let out = Command::new(env!("CARGO_BIN_EXE_ovm"))
            .arg("-C")
            .arg(repo_root())
            .args(["toolchain", arch, "--dry-run"])
            .output()
            .expect("running ovm toolchain --dry-run");
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = stdout.lines().collect();
        let domain = format!("cross-{arch} ");
        assert!(lines.iter().all(|l| l.starts_with(&domain)), "every task is in the {domain}domain:\n{t}");
        let tasks: Vec<&str> =
            lines.iter().map(|l| l[domain.len()..].split("  after ").next().unwrap_or_default()).collect();
        let steps: Vec<&str> = tasks
            .iter()
            .copied()
            .filter(|t| !["fetch", "unpack", "patch", "package"].contains(&t.rsplit(' ').next().unwrap_or_default()))
            .collect();
        assert_eq!(steps, STEPS, "{t}");
        // gcc starts once binutils is packaged; linux-headers waits for nothing.
        assert!(lines.contains(&format!("{domain}gcc fetch  after binutils package").as_str()), "{t}");
        assert!(lines.contains(&format!("{domain}linux-headers fetch").as_str()), "{t}");
        assert!(lines.contains(&format!("{domain}gcc libgcc  after gcc all-gcc").as_str()), "{t}");
    }
}

#[test]
fn sources_resolve_in_the_offline_mirror_and_verify() {
    require_tool("unshare");
    assert!(nix::unistd::geteuid().is_root(), "the offline fetch runs under `unshare --net`, which needs root");
    let dir = mirror();
    let p = TestProject::with_real_tools();
    let model = p.ovm();
    let out = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(model.get_program())
        .args(model.get_args())
        .args(["download", "binutils", "gcc", "linux-headers"])
        .envs(model.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .output()
        .expect("running unshare --net ovm download");
    let t = text(&out);
    assert!(out.status.success(), "offline download of the toolchain's sources failed:\n{t}");

    // Each source is in the project's sources/ with the bytes of one of its declared artifacts.
    let recipes = repo_recipes();
    for r in ovm::toolchain::gcc::parts(&recipes).expect("parts") {
        for s in &r.sources {
            let hit = s.artifacts().find_map(|a| {
                let path = p.path().join("sources").join(&a.file);
                path.is_file().then(|| (a, sha256_of(&path)))
            });
            let (a, sum) = hit.unwrap_or_else(|| {
                panic!(
                    "{}: none of {:?} in sources/ after the offline download (mirror {})",
                    r.name,
                    s.artifacts().map(|a| &a.file).collect::<Vec<_>>(),
                    dir.display()
                )
            });
            assert_eq!(sum, a.sha256, "{}: {} does not verify", r.name, a.file);
            // Bytes other than the primary's (another release, or Debian's repack) are never
            // taken silently: the download names the alternative and its version.
            if let Some(alt) = s.alternatives.iter().find(|alt| alt.artifact.file == a.file) {
                let mark = format!("[alternative {} {}]", alt.artifact.file, alt.version);
                assert!(t.contains(&mark), "{}: the use of {} is not announced as {mark}:\n{t}", r.name, a.file);
            }
        }
    }
}

fn sha256_of(path: &std::path::Path) -> String {
    ovm::digest::sha256_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// gcc is `ovm build`'s default toolchain (built from source): with the repository's own
/// config and no `--toolchain`, the plan of an arch starts with the cross toolchain's parts, and
/// the build tools wait for it; `--toolchain zig` is the way out, not the default.
#[test]
fn gcc_is_the_default_toolchain_of_a_build() {
    let p = TestProject::from_repo();
    std::fs::copy(repo_root().join("config/ovm.toml"), p.path().join("config/ovm.toml")).expect("the repo's config");
    for arch in ["x86_64", "aarch64"] {
        let out = p.run(&["status", arch]);
        let t = String::from_utf8_lossy(&out.stdout).into_owned();
        let cross = format!("cross-{arch}");
        for part in ["binutils", "gcc", "linux-headers"] {
            assert!(
                t.lines().any(|l| l.split_whitespace().take(2).eq([cross.as_str(), part])),
                "the default plan of {arch} has no {cross} {part}:\n{}",
                text(&out)
            );
        }
        assert!(!t.lines().any(|l| l.split_whitespace().nth(1) == Some("zig")), "zig planned by default:\n{t}");
    }
    // The pinned copy every other test uses plans zig and no cross toolchain.
    let pinned = TestProject::from_repo();
    let t = String::from_utf8_lossy(&pinned.run(&["status", "x86_64"]).stdout).into_owned();
    assert!(!t.contains("cross-x86_64"), "a zig-pinned project plans the gcc toolchain:\n{t}");
    assert!(t.lines().any(|l| l.split_whitespace().take(2).eq(["toolchain", "zig"])), "zig is not planned:\n{t}");
}

//! A recipe's own `[[build.step]]`s (what a cross toolchain needs: binutils, all-gcc, libgcc …):
//! each step is a task with its own stamp, log line and signature; a failing step is the one the
//! `await` marker names; a changed step restarts the package at unpack (the steps share DESTDIR);
//! and `ovm status --why` names the step whose script changed.

use crate::engine_fixture;

use engine_fixture::{fails, file, project, Pkg};

const STEPS_OK: &str = r#"style = "custom"
[[build.step]]
name = "first"
script = "cat /ovm/src/in.txt > /ovm/build/a"
[[build.step]]
name = "second"
script = "sed s/one/two/ /ovm/build/a > /ovm/build/b"
[[build.step]]
name = "ship"
script = "mkdir -p /ovm/dest/usr/share && cp /ovm/build/b /ovm/dest/usr/share/out.txt"
"#;

fn stepped(build: &str) -> Pkg {
    Pkg::new("stepped", vec![file("in.txt", "one\n")], build)
}

#[test]
fn named_steps_run_in_order_each_stamped_and_logged() {
    let p = project();
    stepped(STEPS_OK).write(&p, "named-steps-order");
    p.ok(&["build", "x86_64", "stepped"]);
    assert_eq!(
        p.tasks_run("x86_64"),
        [
            "stepped fetch",
            "stepped unpack",
            "stepped patch",
            "stepped first",
            "stepped second",
            "stepped ship",
            "stepped package"
        ]
    );
    for step in ["first", "second", "ship"] {
        assert!(p.path().join("states/x86_64").join(format!("stepped.{step}")).is_file(), "no stamp for {step}");
        assert!(p.path().join("logs/x86_64/stepped").join(format!("{step}.log")).is_file(), "no log for {step}");
    }
    assert_eq!(p.read("staging/x86_64/stepped/runtime/usr/share/out.txt"), "two\n");

    p.ok(&["build", "x86_64", "stepped"]);
    assert!(p.tasks_run("x86_64").is_empty(), "second build ran {:?}", p.tasks_run("x86_64"));
}

#[test]
fn a_failing_step_is_named_by_await_and_the_fixed_rerun_completes() {
    let p = project();
    stepped(&STEPS_OK.replace("sed s/one/two/", "false && sed s/one/two/")).write(&p, "named-steps-fail");
    let out = fails(&p, &["build", "x86_64", "stepped"]);
    assert!(out.contains("stepped failed at second"), "{out}");
    let awaiting = p.read("states/x86_64/await");
    assert!(awaiting.contains("\"task\": \"second\"") && awaiting.contains("second.log"), "{awaiting}");
    let status = String::from_utf8_lossy(&p.run(&["status", "x86_64"]).stdout).to_string();
    assert!(status.contains("FAILED at second"), "{status}");

    stepped(STEPS_OK).write(&p, "named-steps-fail");
    p.ok(&["build", "x86_64", "stepped"]);
    assert!(!p.path().join("states/x86_64/await").exists(), "await left behind");
    assert_eq!(p.read("staging/x86_64/stepped/runtime/usr/share/out.txt"), "two\n");
}

#[test]
fn editing_a_step_restarts_at_unpack_and_status_names_it() {
    let p = project();
    stepped(STEPS_OK).write(&p, "named-steps-edit");
    p.ok(&["build", "x86_64", "stepped"]);

    stepped(&STEPS_OK.replace("out.txt\"", "result.txt\"")).write(&p, "named-steps-edit");
    let why = String::from_utf8_lossy(&p.run(&["status", "x86_64", "--why"]).stdout).to_string();
    assert!(why.contains("stale from ship") && why.contains("script.ship changed"), "{why}");
    // The steps install into DESTDIR one after another, so even the last one cannot rerun alone.
    p.ok(&["build", "x86_64", "stepped"]);
    assert_eq!(
        p.tasks_run("x86_64"),
        ["stepped unpack", "stepped patch", "stepped first", "stepped second", "stepped ship", "stepped package"]
    );
    assert_eq!(p.read("staging/x86_64/stepped/runtime/usr/share/result.txt"), "two\n");

    // A middle step's change too: it never reruns on a tree it already wrote to.
    stepped(&STEPS_OK.replace("s/one/two/", "s/one/three/").replace("out.txt\"", "result.txt\""))
        .write(&p, "named-steps-edit");
    p.ok(&["build", "x86_64", "stepped"]);
    assert_eq!(
        p.tasks_run("x86_64"),
        ["stepped unpack", "stepped patch", "stepped first", "stepped second", "stepped ship", "stepped package"]
    );
    assert_eq!(p.read("staging/x86_64/stepped/runtime/usr/share/result.txt"), "three\n");
}

/// A runaway step (a bounded fork bomb) under the recipe's `[limits]` ends with an error naming the
/// limit and where to raise it, and commits nothing: no stamp, no staged output; the fixed recipe
/// then builds from the same state.
#[test]
fn a_fork_bomb_step_fails_naming_the_pids_limit_and_commits_nothing() {
    let p = project();
    let bomb = "style = \"custom\"\n[[build.step]]\nname = \"first\"\nscript = \"cat /ovm/src/in.txt > /ovm/build/a\"\n\
                [[build.step]]\nname = \"bomb\"\n\
                script = \"i=0; while [ $i -lt 2000 ]; do sleep 9873 & i=$((i+1)); done; wait\"\n\
                [[build.step]]\nname = \"ship\"\nscript = \"mkdir -p /ovm/dest/usr && cp /ovm/build/a /ovm/dest/usr/a\"\n\
                \n[limits]\npids = 64\n";
    stepped(bomb).write(&p, "fork-bomb");
    let out = fails(&p, &["build", "x86_64", "stepped"]);
    let setting = if nix::unistd::geteuid().is_root() { "pids.max=64" } else { "RLIMIT_NPROC=64" };
    assert!(
        out.contains(&format!("stepped: the bomb step hit the sandbox's pids limit ({setting})"))
            && out.contains("raise [sandbox] pids_max in config/ovm.toml or [limits] pids in recipes/stepped.toml"),
        "{out}"
    );
    let states = p.path().join("states/x86_64");
    assert!(states.join("stepped.first").is_file(), "the step before it is stamped");
    assert!(!states.join("stepped.bomb").exists(), "the failed step was stamped");
    assert!(!p.path().join("staging/x86_64/stepped").exists(), "a package whose step failed was staged");

    stepped(&bomb.replace("while [ $i -lt 2000 ]", "while [ $i -lt 8 ]").replace("sleep 9873", "true"))
        .write(&p, "fork-bomb");
    p.ok(&["build", "x86_64", "stepped"]);
    assert_eq!(p.read("staging/x86_64/stepped/runtime/usr/a"), "one\n");
}

/// make -k: a failing package stops only what depends on it. Here `afail` fails and comes first
/// in the run's order on one job, `bdep` depends on it (not run), and `zok` is independent: it is
/// built and staged, and the run still fails, naming the failure.
#[test]
fn a_failure_stops_only_its_dependents_and_the_rest_is_built() {
    let p = project();
    let fail = STEPS_OK.replace("sed s/one/two/", "false && sed s/one/two/");
    Pkg::new("afail", vec![file("in.txt", "one\n")], &fail).write(&p, "keep-going");
    Pkg::new("bdep", vec![file("in.txt", "one\n")], STEPS_OK).depends(&["afail"]).write(&p, "keep-going");
    Pkg::new("zok", vec![file("in.txt", "one\n")], STEPS_OK).write(&p, "keep-going");
    let out = fails(&p, &["build", "-j", "1", "x86_64", "afail", "bdep", "zok"]);
    assert!(out.contains("afail failed at second"), "{out}");
    assert_eq!(
        p.read("staging/x86_64/zok/runtime/usr/share/out.txt"),
        "two\n",
        "the independent package was not built"
    );
    assert!(!p.path().join("staging/x86_64/bdep").exists(), "a package whose dependency failed was built");
    let ran = p.tasks_run("x86_64");
    assert!(ran.iter().any(|t| t == "zok package") && !ran.iter().any(|t| t.starts_with("bdep ")), "{ran:?}");
    let afail_done = ran.iter().position(|t| t == "afail second");
    let zok_started = ran.iter().position(|t| t == "zok fetch");
    assert!(afail_done < zok_started, "zok ran before afail failed, so this shows nothing: {ran:?}");
}

/// `autoreconf = true`: a source with only `configure.ac` and `Makefile.am` (a git archive) gets its
/// `configure` from the build machine's autotools in a task of its own between `patch` and
/// `configure`, then builds in the strict sandbox as from a release tarball; a second build runs
/// nothing, and a patch to `configure.ac` runs the task again.
#[test]
fn autoreconf_regenerates_a_git_archive_s_build_system_before_configure() {
    let p = project();
    let sources = vec![
        file(
            "configure.ac",
            "AC_INIT([regen], [1.0])\nAM_INIT_AUTOMAKE([foreign])\nAC_PROG_CC\n\
             AC_DEFINE([GREETING], [\"from a regenerated configure\"], [what regen prints])\n\
             AC_CONFIG_HEADERS([config.h])\nAC_CONFIG_FILES([Makefile])\nAC_OUTPUT\n",
        ),
        file("Makefile.am", "bin_PROGRAMS = regen\nregen_SOURCES = regen.c\n"),
        file("regen.c", "#include \"config.h\"\n#include <stdio.h>\nint main(void) { puts(GREETING); return 0; }\n"),
    ];
    let pkg = Pkg::new("regen", sources, "style = \"autotools\"\nautoreconf = true\n");
    pkg.write(&p, "autoreconf");
    p.ok(&["build", "x86_64", "regen"]);
    let ran = p.tasks_run("x86_64");
    let order: Vec<&str> = ran.iter().filter_map(|t| t.strip_prefix("regen ")).collect();
    assert_eq!(
        order,
        ["fetch", "unpack", "patch", "autoreconf", "configure", "compile", "install", "package"],
        "{ran:?}"
    );
    let log = p.read("logs/x86_64/regen/autoreconf.log");
    assert!(log.contains("autoreconf: running: aclocal"), "{log}");
    assert!(p.path().join("work/x86_64/regen/src/configure").is_file(), "no configure in the source tree");
    let bin = p.path().join("staging/x86_64/regen/runtime/usr/bin/regen");
    let out = std::process::Command::new(&bin).output().expect("run the built program");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from a regenerated configure\n");

    p.ok(&["build", "x86_64", "regen"]);
    assert!(!p.tasks_run("x86_64").iter().any(|t| t.starts_with("regen ")), "an up-to-date package reran");

    p.write(
        "patches/regen-1.0.patch",
        "--- a/configure.ac\n+++ b/configure.ac\n@@ -1,4 +1,4 @@\n AC_INIT([regen], [1.0])\n \
         AM_INIT_AUTOMAKE([foreign])\n AC_PROG_CC\n-AC_DEFINE([GREETING], [\"from a regenerated configure\"], [what regen prints])\n\
         +AC_DEFINE([GREETING], [\"from a patched configure.ac\"], [what regen prints])\n",
    );
    p.ok(&["build", "x86_64", "regen"]);
    assert!(p.tasks_run("x86_64").iter().any(|t| t == "regen autoreconf"), "the patch did not rerun autoreconf");
    let out = std::process::Command::new(&bin).output().expect("run the rebuilt program");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from a patched configure.ac\n");
}

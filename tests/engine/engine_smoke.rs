//! The smallest whole build: the real zig toolchain and build tools, an empty image, then nothing
//! to do on the second run.

use crate::build_support;
use build_support::TestProject;

#[test]
fn second_build_runs_no_task() {
    let p = TestProject::with_real_tools();
    p.ok(&["build", "x86_64"]);
    let again = p.ok(&["build", "x86_64"]);
    assert!(again.contains("nothing to do"), "{again}");
    assert!(p.tasks_run("x86_64").is_empty(), "{:?}", p.tasks_run("x86_64"));
    assert!(p.tasks_run("tools").is_empty(), "{:?}", p.tasks_run("tools"));
}

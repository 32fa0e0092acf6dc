//! What a package's sysroot holds: the staged outputs of its declared dependencies and of theirs,
//! transitively (Yocto's recipe-sysroot; a static link chain needs the libraries of its
//! libraries), and nothing undeclared; and a change anywhere below a package rebuilds it.

use crate::engine_fixture;

use engine_fixture::{file, project, Pkg};

/// A package that ships `usr/share/NAME.txt` holding `text`, and with `check`, a step that runs
/// first and must succeed in its sandbox.
fn pkg(name: &str, text: &str, check: &str) -> Pkg {
    let build = format!(
        "style = \"custom\"\n[[build.step]]\nname = \"check\"\nscript = \"\"\"{check}\"\"\"\n\
         [[build.step]]\nname = \"ship\"\n\
         script = \"mkdir -p /ovm/dest/usr/share && cp /ovm/src/in.txt /ovm/dest/usr/share/{name}.txt\"\n"
    );
    Pkg::new(name, vec![file("in.txt", text)], &build)
}

#[test]
fn the_sysroot_is_the_closure_of_the_declared_dependencies_and_nothing_else() {
    let p = project();
    // base <- mid <- top; `other` is built too, but nobody declares it.
    pkg("base", "base 1\n", "true").write(&p, "sysroot-closure");
    pkg("other", "other\n", "true").write(&p, "sysroot-closure");
    pkg("mid", "mid\n", "test -f /ovm/sysroot/usr/share/base.txt").depends(&["base"]).write(&p, "sysroot-closure");
    let top_check = "cat /ovm/sysroot/usr/share/base.txt /ovm/sysroot/usr/share/mid.txt > /ovm/build/seen\n\
                     test ! -e /ovm/sysroot/usr/share/other.txt\n\
                     test -d /ovm/sysroot/usr/lib && test -d /ovm/sysroot/usr/include\n\
                     mkdir -p /ovm/dest/usr/share && cp /ovm/build/seen /ovm/dest/usr/share/seen.txt";
    pkg("top", "top\n", top_check).depends(&["mid"]).write(&p, "sysroot-closure");
    p.ok(&["build", "x86_64", "top", "other"]);
    assert_eq!(
        p.read("staging/x86_64/top/runtime/usr/share/seen.txt"),
        "base 1\nmid\n",
        "top did not see base through mid"
    );

    // base changes: top's inputs include base's output, so it rebuilds and sees the new one.
    pkg("base", "base 2\n", "true").write(&p, "sysroot-closure");
    p.ok(&["build", "x86_64", "top", "other"]);
    let ran = p.tasks_run("x86_64");
    assert!(ran.iter().any(|t| t == "top check"), "top was not rebuilt after base changed: {ran:?}");
    assert!(!ran.iter().any(|t| t.starts_with("other ")), "other was rebuilt: {ran:?}");
    assert_eq!(p.read("staging/x86_64/top/runtime/usr/share/seen.txt"), "base 2\nmid\n");
}

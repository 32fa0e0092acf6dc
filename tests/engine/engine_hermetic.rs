//! Hermeticity of the strict package sandbox: what the host has is not there for a build. A recipe
//! running `/usr/bin/perl` by its absolute path (so no PATH can be what hides it), one including
//! `/usr/include/stdio.h`, one linking the host's zlib with `-L/usr/lib/x86_64-linux-gnu -lz` each
//! fail with an error that names the missing host path itself — while the host does have all three
//! (checked first, so the test cannot pass because the host lacks them). The same test's control
//! run proves each check can fail: the very same steps built as build tools (the `toolchain`
//! profile, which binds the host's /usr read-only) run perl, get past the `#include`, and link. A
//! recipe including a header of a package it does not declare fails with "not found", and builds
//! once it declares it.

use crate::build_support;
use crate::engine_fixture;

use std::path::Path;

use engine_fixture::*;

fn custom(name: &str, entries: Vec<Entry>, compile: &str) -> Pkg {
    Pkg::new(
        name,
        entries,
        &format!(
            "style = \"custom\"\ncompile = '''\n{compile}\n'''\ninstall = '''\nmkdir -p \"$DESTDIR/usr/bin\"\ncp out \"$DESTDIR/usr/bin/{name}\"\n'''"
        ),
    )
}

/// Builds `pkg` alone, expects a failure at compile whose output and log say "not found" and
/// contain `detail`.
fn fails_not_found(p: &build_support::TestProject, pkg: &str, detail: &str) {
    let out = fails(p, &["build", "x86_64", pkg]);
    assert!(out.contains(&format!("{pkg} failed at compile")), "{out}");
    let log = p.read(&format!("logs/x86_64/{pkg}/compile.log"));
    for text in [&out, &log] {
        // "'greet.h' file not found"
        let squeezed = text.to_lowercase().replace(' ', "");
        assert!(
            squeezed.contains("notfound") && text.contains(detail),
            "{pkg}: expected `not found` and {detail:?} in:\n{text}"
        );
    }
}

/// One probe of the host: a compile step that reaches for a host path, and the error that step
/// must give when that path is not there, naming the path itself (as busybox sh, clang and zig's
/// linker word it). Package names avoid the words the errors contain, so a package name echoed
/// in a report cannot satisfy an assertion.
struct Probe {
    stem: &'static str,
    entries: fn() -> Vec<Entry>,
    compile: &'static str,
    missing: &'static str,
}

const PROBES: &[Probe] = &[
    Probe {
        stem: "interpreter",
        entries: || vec![file("x", "")],
        compile: "/usr/bin/perl -e 'print \"hi\\n\"' >out",
        missing: "/usr/bin/perl: not found",
    },
    Probe {
        stem: "header",
        entries: || vec![file("x.c", "#include \"/usr/include/stdio.h\"\nint main(void) { return 0; }\n")],
        compile: "$CC $CFLAGS -static -o out /ovm/src/x.c",
        missing: "'/usr/include/stdio.h' file not found",
    },
    Probe {
        stem: "library",
        entries: || {
            vec![file("x.c", "extern const char *zlibVersion(void);\nint main(void) { return zlibVersion() == 0; }\n")]
        },
        compile: "$CC $CFLAGS -static -o out /ovm/src/x.c -L/usr/lib/x86_64-linux-gnu -lz",
        missing: "unable to open library directory '/usr/lib/x86_64-linux-gnu': FileNotFound",
    },
];

impl Probe {
    /// The probe as a recipe named `name`: a target package, or with `kind_dir` "tools" a build
    /// tool (the `toolchain` profile: host /usr, /lib, /etc bound read-only; same compiler, same
    /// environment but PATH).
    fn pkg(&self, name: &str, kind_dir: &str) -> Pkg {
        let mut p = custom(name, (self.entries)(), self.compile);
        p.kind_dir = kind_dir.into();
        p
    }
}

fn probe(stem: &str) -> &'static Probe {
    PROBES.iter().find(|p| p.stem == stem).expect("a known probe")
}

#[test]
fn host_tools_headers_and_libraries_are_not_found() {
    for host in ["/usr/bin/perl", "/usr/include/stdio.h", "/usr/lib/x86_64-linux-gnu/libz.a"] {
        assert!(Path::new(host).exists(), "{host} is missing on this host: {}", build_support::SETUP_HINT);
    }
    let p = project();
    for pr in PROBES {
        pr.pkg(&format!("host-{}", pr.stem), "").write(&p, "hermetic");
    }
    for pr in PROBES {
        let pkg = format!("host-{}", pr.stem);
        let out = fails(&p, &["build", "x86_64", &pkg]);
        assert!(out.contains(&format!("{pkg} failed at compile")), "{out}");
        let log = p.read(&format!("logs/x86_64/{pkg}/compile.log"));
        for text in [&out, &log] {
            assert!(text.contains(pr.missing), "{pkg}: expected {:?} in:\n{text}", pr.missing);
        }
        if pr.stem == "interpreter" {
            // The shell's "not found" is exec's ENOENT: 127, not a perl that ran and failed.
            assert!(out.contains("exit status 127"), "{out}");
        }
    }

    // Control: the same steps with the host's /usr mounted (read-only), as build tools in the
    // `toolchain` profile. Each error above is gone, so each assertion above can fail: perl runs,
    // the host's zlib links, and the compiler opens /usr/include/stdio.h — then fails inside it, on
    // glibc internals musl does not have (why the strict check must name the file itself: "not
    // found" alone is in both errors).
    let c = project();
    for stem in ["interpreter", "library"] {
        probe(stem).pkg(&format!("ctl-{stem}"), "tools").write(&c, "hermetic-control");
    }
    c.ok(&["build", "x86_64"]);
    assert_eq!(c.read("staging/tools/ctl-interpreter/usr/bin/ctl-interpreter"), "hi\n", "host perl did not run");
    assert!(c.path().join("staging/tools/ctl-library/usr/bin/ctl-library").is_file(), "the host's zlib did not link");
    for stem in ["interpreter", "library"] {
        let log = c.read(&format!("logs/tools/ctl-{stem}/compile.log"));
        assert!(!log.contains(probe(stem).missing), "ctl-{stem} with host /usr mounted:\n{log}");
    }
    probe("header").pkg("ctl-header", "tools").write(&c, "hermetic-control");
    let out = fails(&c, &["build", "x86_64"]);
    assert!(out.contains("ctl-header failed at compile"), "{out}");
    let log = c.read("logs/tools/ctl-header/compile.log");
    assert!(!log.contains(probe("header").missing), "ctl-header with host /usr mounted:\n{log}");
    assert!(
        log.contains("In file included from /ovm/src/x.c:1:") && log.contains("/usr/include/stdio.h:"),
        "the compiler did not read the host's /usr/include/stdio.h:\n{log}"
    );
}

#[test]
fn an_undeclared_dependency_is_invisible_until_declared() {
    let p = project();
    libgreet("1.0").write(&p, "undeclared");
    p.write("patches/libgreet/0001-greeting.patch", &greet_patch("Hello"));
    p.write("config/libgreet/mark.h", "#define GREET_MARK \"!\"\n");
    let user = |deps: &[&str]| {
        custom(
            "greeter",
            vec![file(
                "x.c",
                "#include <stdio.h>\n#include <greet.h>\nint main(void) { puts(greet_word()); return 0; }\n",
            )],
            // Compile, then link: zig checks libraries before compiling, and the header is the point.
            "$CC $CFLAGS $CPPFLAGS -c -o x.o /ovm/src/x.c\n$CC -static -o out x.o $LDFLAGS -lgreet",
        )
        .depends(deps)
    };
    p.ok(&["build", "x86_64", "libgreet"]);
    assert!(p.path().join("staging/x86_64/libgreet/dev/usr/include/greet.h").is_file());

    user(&[]).write(&p, "undeclared");
    fails_not_found(&p, "greeter", "greet.h");

    user(&["libgreet"]).write(&p, "undeclared");
    p.ok(&["build", "x86_64", "greeter"]);
    let out =
        std::process::Command::new(p.path().join("staging/x86_64/greeter/runtime/usr/bin/greeter")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello\n");
}

/// `--no-sandbox` (the opt-out, warned about) runs the same commands on the host: the step's
/// script and make's recipe lines run with the build tools' busybox shell, and /ovm paths are
/// mapped to the host's. (No compiler here: zig's cache is keyed on paths, so a host-path build
/// would compile musl again for every scratch project; scripts/bench-engine.sh compiles busybox
/// both ways.)
#[test]
fn no_sandbox_runs_the_same_commands_with_the_tools_shell() {
    let p = project();
    let makefile = "all:\n\treadlink /proc/$$$$/exe >$(BUILD)/make-shell\n";
    Pkg::new(
        "probe",
        vec![file("Makefile", makefile)],
        r#"style = "custom"
compile = '''
readlink /proc/$$/exe >step-shell
echo "$SRC" >src-dir
make -C /ovm/src
'''
install = '''
mkdir -p "$DESTDIR/usr/share/probe"
cp step-shell make-shell src-dir "$DESTDIR/usr/share/probe/"
'''"#,
    )
    .toml("[package.waive]\nhost-path = \"the probe records the host paths the build saw, for the test to read\"\n")
    .write(&p, "no-sandbox");

    let out = p.ok(&["build", "--no-sandbox", "x86_64"]);
    assert!(out.contains("--no-sandbox: packages build on the host"), "no warning about --no-sandbox:\n{out}");
    let got = |f: &str| p.read(&format!("staging/x86_64/probe/runtime/usr/share/probe/{f}")).trim().to_string();
    let exe = |f: &str| std::fs::canonicalize(got(f)).unwrap();
    let tools_busybox = std::fs::canonicalize(p.path().join("toolchain/tools/bin/sh")).unwrap();
    assert_eq!(exe("step-shell"), tools_busybox, "the step's script ran with another shell");
    assert_eq!(exe("make-shell"), tools_busybox, "make's recipe lines ran with another shell");
    assert_eq!(got("src-dir"), p.path().join("work/x86_64/probe/src").display().to_string());
}

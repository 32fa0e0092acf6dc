//! The package step on real compiled packages (zig toolchain, strict sandbox): an install is
//! split into `PKG`, `PKG-dev`, `PKG-dbg`, `PKG-doc` and `PKG-locale`; programs are stripped with
//! their debug info kept under their build-id; the image takes the runtime packages only and a
//! dependent's sysroot the runtime and development ones. And every QA check, package and image,
//! tripped by a recipe of its own, with the file and the reason in the message.

use crate::build_support::{self, require_tool, TestProject};
use crate::engine_fixture::*;

use std::process::Command;

fn readelf(args: &[&str], file: &std::path::Path) -> String {
    let out = Command::new("readelf").args(args).arg(file).output().expect("running readelf");
    assert!(out.status.success(), "readelf {args:?} {}: {}", file.display(), build_support::text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn build_id(file: &std::path::Path) -> String {
    let notes = readelf(&["-n"], file);
    notes
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .unwrap_or_else(|| panic!("{} has no build-id:\n{notes}", file.display()))
        .to_string()
}

const TOOL_C: &str =
    "#include <stdio.h>\n#include \"tool.h\"\nint main(void) { printf(\"tool %d\\n\", tool_answer()); return 0; }\n";
const LIB_C: &str = "#include \"tool.h\"\nint tool_answer(void) { return 42; }\n";

/// `tool`: a program built with -g, its library (header, archive, .pc), a manual page, a message
/// catalogue and a `tool-config` script the recipe files under `-dev`.
fn tool() -> Pkg {
    Pkg::new(
        "tool",
        vec![
            file("tool.c", TOOL_C),
            file("lib.c", LIB_C),
            file("tool.h", "int tool_answer(void);\n"),
            file("tool.pc", "prefix=/usr\nName: tool\nVersion: 1.0\nDescription: t\nLibs: -ltool\n"),
            file("tool.1", ".TH TOOL 1\n"),
            file("tool.mo", "catalogue"),
            file("tool-config", "echo -ltool\n"),
        ],
        r#"style = "custom"
compile = '''
$CC -g -O1 -c /ovm/src/lib.c -o lib.o
$AR rcs libtool.a lib.o
$CC -g -O1 -static -I/ovm/src -o tool /ovm/src/tool.c lib.o
'''
install = '''
cd "$DESTDIR"
mkdir -p usr/bin usr/include usr/lib/pkgconfig usr/share/man/man1 usr/share/locale/de/LC_MESSAGES
cp /ovm/build/tool usr/bin/tool
cp /ovm/src/tool-config usr/bin/tool-config
cp /ovm/src/tool.h usr/include/
cp /ovm/build/libtool.a usr/lib/
cp /ovm/src/tool.pc usr/lib/pkgconfig/
cp /ovm/src/tool.1 usr/share/man/man1/
cp /ovm/src/tool.mo usr/share/locale/de/LC_MESSAGES/
'''"#,
    )
    .toml("[package]\ndev = [\"usr/bin/*-config\"]\n")
}

/// `user`: compiles against tool's header and archive from its sysroot, and says what else it saw.
fn user() -> Pkg {
    Pkg::new(
        "user",
        vec![file("user.c", "#include <tool.h>\nint main(void) { return tool_answer() == 42 ? 0 : 1; }\n")],
        r#"style = "custom"
compile = '''
$CC $CPPFLAGS -static -o user /ovm/src/user.c $LDFLAGS -ltool
for d in usr/share/man usr/lib/debug usr/share/locale usr/bin/tool-config; do if [ -e "$SYSROOT/$d" ]; then echo "$d"; fi; done > seen
'''
install = '''
mkdir -p "$DESTDIR/usr/bin" "$DESTDIR/usr/share/user"
cp user "$DESTDIR/usr/bin/user"
cp seen "$DESTDIR/usr/share/user/seen"
'''"#,
    )
    .depends(&["tool"])
    .toml("[package]\nstrip = false\n")
}

#[test]
fn an_install_is_split_stripped_and_its_debug_info_kept_under_the_build_id() {
    require_tool("readelf");
    let p = project();
    tool().write(&p, "split");
    user().write(&p, "split");
    p.ok(&["build", "x86_64"]);

    let staged = |rel: &str| p.path().join("staging/x86_64/tool").join(rel);
    for rel in [
        "runtime/usr/bin/tool",
        "dev/usr/bin/tool-config",
        "dev/usr/include/tool.h",
        "dev/usr/lib/libtool.a",
        "dev/usr/lib/pkgconfig/tool.pc",
        "doc/usr/share/man/man1/tool.1",
        "locale/usr/share/locale/de/LC_MESSAGES/tool.mo",
    ] {
        assert!(staged(rel).is_file(), "{rel} is not where the split puts it");
    }
    assert!(!staged("runtime/usr/include").exists() && !staged("runtime/usr/bin/tool-config").exists());

    // The program is stripped, with a debuglink; its debug file carries the DWARF, under its
    // build-id, and readelf reads the same build-id from both.
    let program = staged("runtime/usr/bin/tool");
    let sections = readelf(&["-S", "-W"], &program);
    assert!(!sections.contains(".symtab") && !sections.contains(".debug_"), "not stripped:\n{sections}");
    assert!(sections.contains(".gnu_debuglink"), "no debuglink:\n{sections}");
    let id = build_id(&program);
    let debug = staged(&format!("dbg/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]));
    assert!(debug.is_file(), "no debug file for build-id {id} at {}", debug.display());
    assert_eq!(build_id(&debug), id, "the debug file belongs to another build");
    assert!(readelf(&["-S", "-W"], &debug).contains(".debug_info"), "the debug file has no DWARF");
    let out = Command::new(&program).output().expect("running the stripped tool");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "tool 42\n");
    let log = p.read("logs/x86_64/tool/package.log");
    assert!(log.contains("stripped usr/bin/tool") && log.contains("tool-dev: 4 file(s)"), "{log}");

    // `strip = false` keeps the symbols, and there is no -dbg package.
    let user_bin = p.path().join("staging/x86_64/user/runtime/usr/bin/user");
    assert!(readelf(&["-S", "-W"], &user_bin).contains(".symtab"));
    assert!(!p.path().join("staging/x86_64/user/dbg").exists());

    // The dependent saw the runtime and development packages, not the docs, locales or debug info.
    let seen = p.read("staging/x86_64/user/runtime/usr/share/user/seen");
    assert_eq!(seen, "usr/bin/tool-config\n", "user's sysroot held more or less than tool and tool-dev");

    // The image: runtime packages only.
    let manifest = p.read("output/x86_64/manifest.txt");
    let paths: Vec<&str> = manifest.lines().filter_map(|l| l.split('\t').next()).collect();
    assert!(paths.contains(&"/usr/bin/tool") && paths.contains(&"/usr/bin/user"), "{manifest}");
    for banned in [
        "/usr/include",
        "/usr/lib/libtool.a",
        "/usr/lib/pkgconfig",
        "/usr/share/man",
        "/usr/share/locale",
        "/usr/lib/debug",
        "/usr/bin/tool-config",
    ] {
        assert!(!paths.iter().any(|p| p.starts_with(banned)), "{banned} is in the image:\n{manifest}");
    }

    // A change to the split rules alone reruns the package task, from the same install.
    let recipe = p.read("recipes/tool.toml").replace("dev = [\"usr/bin/*-config\"]", "doc = [\"usr/bin/*-config\"]");
    p.write("recipes/tool.toml", &recipe);
    p.ok(&["build", "x86_64", "tool"]);
    assert_eq!(p.tasks_run("x86_64"), vec!["tool package".to_string()]);
    assert!(staged("doc/usr/bin/tool-config").is_file() && !staged("dev/usr/bin/tool-config").exists());
    assert_eq!(build_id(&staged("runtime/usr/bin/tool")), id);
}

/// One QA case: a package whose install trips `check`, and what the message must say.
struct Case {
    name: &'static str,
    compile: &'static str,
    install: &'static str,
    waive: &'static str,
    check: &'static str,
    says: &'static [&'static str],
}

const FOO_SO: &str = "printf 'int foo(void){return 0;}\\n' > foo.c\n\
    printf 'int foo(void);\\nint main(void){return foo();}\\n' > m.c\n\
    $CC -shared -fPIC -Wl,-soname,libfoo.so foo.c -o libfoo.so\n";

const CASES: &[Case] = &[
    Case {
        name: "qa-host-path",
        compile: "true",
        install: "mkdir -p \"$DESTDIR/usr/share\"; echo 'builddir=/ovm/build/x' > \"$DESTDIR/usr/share/paths\"",
        waive: "",
        check: "host-path",
        says: &["/usr/share/paths", "/ovm/build", "path of the build sandbox"],
    },
    Case {
        name: "qa-arch",
        compile: "printf 'int main(void){return 0;}\\n' > a.c; aarch64-linux-musl-cc -static a.c -o arm",
        install: "mkdir -p \"$DESTDIR/usr/bin\"; cp arm \"$DESTDIR/usr/bin/arm\"",
        waive: "",
        check: "arch",
        says: &["/usr/bin/arm", "machine 183", "target's 62"],
    },
    Case {
        name: "qa-rpath",
        compile: "FOO_SO $CC m.c -L. -lfoo -Wl,-rpath,/opt/lib -o m",
        install: "mkdir -p \"$DESTDIR/usr/bin\"; cp m \"$DESTDIR/usr/bin/m\"",
        waive: "",
        check: "rpath",
        says: &["/usr/bin/m", "RPATH/RUNPATH /opt/lib"],
    },
    Case {
        name: "qa-setuid",
        compile: "true",
        install: "mkdir -p \"$DESTDIR/usr/bin\"; echo data > \"$DESTDIR/usr/bin/s\"; chmod 4755 \"$DESTDIR/usr/bin/s\"",
        waive: "",
        check: "setuid",
        says: &["/usr/bin/s", "setuid or setgid"],
    },
    Case {
        name: "qa-wrong-place",
        compile: "true",
        install: "mkdir -p \"$DESTDIR/usr/etc\"; echo x > \"$DESTDIR/usr/etc/x.conf\"",
        waive: "",
        check: "wrong-place",
        says: &["/usr/etc/x.conf", "under /usr/etc"],
    },
    Case {
        name: "qa-interpreter",
        compile: "FOO_SO $CC m.c -L. -lfoo -o m",
        install: "mkdir -p \"$DESTDIR/usr/bin\" \"$DESTDIR/usr/lib\"; cp m \"$DESTDIR/usr/bin/m\"; cp libfoo.so \"$DESTDIR/usr/lib/\"",
        waive: "",
        check: "interpreter",
        says: &["/usr/bin/m", "/lib/ld-musl-x86_64.so.1", "does not contain"],
    },
    Case {
        name: "qa-libraries",
        compile: "FOO_SO $CC m.c -L. -lfoo -o m",
        install: "mkdir -p \"$DESTDIR/usr/bin\"; cp m \"$DESTDIR/usr/bin/m\"",
        waive: "interpreter = \"the loader comes with the real image, not this test's\"",
        check: "libraries",
        says: &["/usr/bin/m", "needs libfoo.so"],
    },
    Case {
        name: "qa-shebang",
        compile: "true",
        install: "mkdir -p \"$DESTDIR/usr/bin\"; printf '#!/bin/bash\\necho hi\\n' > \"$DESTDIR/usr/bin/b\"",
        waive: "",
        check: "shebang",
        says: &["/usr/bin/b", "script for /bin/bash"],
    },
];

fn case_pkg(c: &Case, waive_it: bool) -> Pkg {
    let mut waive = c.waive.to_string();
    if waive_it {
        waive.push_str(&format!("\n{} = \"this test waives what it tripped\"", c.check));
    }
    let tail = if waive.trim().is_empty() { String::new() } else { format!("[package.waive]\n{waive}\n") };
    Pkg::new(
        c.name,
        vec![file("README", "a QA test package\n")],
        &format!(
            "style = \"custom\"\ncompile = '''\n{}\n'''\ninstall = '''\n{}\n'''",
            c.compile.replace("FOO_SO ", FOO_SO),
            c.install
        ),
    )
    .toml(&tail)
}

/// Each check fails its package (or, for the image checks, the pack) with the file and the
/// reason; the same recipe waiving the check by name builds.
#[test]
fn every_qa_check_trips_on_its_recipe_names_file_and_reason_and_can_be_waived() {
    let p = project();
    for c in CASES {
        case_pkg(c, false).write(&p, "qa");
        let image_check = ["interpreter", "libraries", "shebang"].contains(&c.check);
        let out = if image_check {
            // The package itself passes; the image it goes into does not.
            p.ok(&["build", "x86_64", c.name]);
            p.run(&["pack", "x86_64"])
        } else {
            p.run(&["build", "x86_64", c.name])
        };
        let text = build_support::text(&out);
        assert!(!out.status.success(), "{}: passed QA:\n{text}", c.name);
        assert!(text.contains(&format!("[{}]", c.check)), "{}: the check is not named:\n{text}", c.name);
        for want in c.says {
            assert!(text.contains(want), "{}: no {want:?} in:\n{text}", c.name);
        }
        if image_check {
            assert!(text.contains(&format!("{}: ", c.name)), "{}: the package is not named:\n{text}", c.name);
        } else {
            assert!(!p.path().join("staging/x86_64").join(c.name).exists(), "{}: a failed package was staged", c.name);
            assert!(text.contains(&format!("recipes/{}.toml", c.name)), "{}: the recipe is not named:\n{text}", c.name);
        }

        case_pkg(c, true).write(&p, "qa");
        p.ok(&["build", "x86_64", c.name]);
        if image_check {
            p.ok(&["pack", "x86_64"]);
        }
        // Out of the way of the next case's image.
        std::fs::remove_dir_all(p.path().join("staging/x86_64").join(c.name)).expect("removing the staged case");
        std::fs::remove_file(p.path().join(format!("recipes/{}.toml", c.name))).expect("removing the case");
    }
}

/// A waiver names a check that exists and says why.
#[test]
fn a_waiver_of_an_unknown_check_or_without_a_reason_is_a_recipe_error() {
    let p = TestProject::with_real_tools();
    let base = || Pkg::new("w", vec![file("README", "x\n")], "style = \"custom\"\ninstall = \"true\"");
    base().toml("[package.waive]\nrpaths = \"typo\"\n").write(&p, "waive");
    let text = build_support::text(&p.run(&["list"]));
    assert!(
        text.contains("recipes/w.toml") && text.contains("no QA check is named `rpaths`") && text.contains("rpath,"),
        "{text}"
    );
    base().toml("[package.waive]\nrpath = \" \"\n").write(&p, "waive");
    let text = build_support::text(&p.run(&["list"]));
    assert!(text.contains("package.waive.rpath: say why"), "{text}");
}

/// The `Packages` index as field maps, by package name.
fn index(text: &str) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for stanza in text.split("\n\n").filter(|s| !s.trim().is_empty()) {
        let fields: std::collections::BTreeMap<String, String> =
            stanza.lines().filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        out.insert(fields["Package"].clone(), fields);
    }
    out
}

/// The feed: one `.ipk` per non-empty part, each read by `dpkg-deb`; its `Packages` index says
/// what `dpkg-scanpackages` says of the same files, field by field; a second project building the
/// same recipes writes the same bytes.
#[test]
fn the_feed_is_read_by_dpkg_indexed_as_dpkg_scanpackages_does_and_reproducible() {
    require_tool("dpkg-deb");
    require_tool("dpkg-scanpackages");
    let feed_of = |p: &TestProject| {
        tool().write(p, "feed");
        user().write(p, "feed");
        p.ok(&["build", "x86_64"]);
        p.path().join("output/x86_64/feed")
    };
    let p = project();
    let feed = feed_of(&p);
    let mut names: Vec<String> =
        std::fs::read_dir(&feed).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Packages",
            "Packages.gz",
            "tool-dbg_1.0_x86_64.ipk",
            "tool-dev_1.0_x86_64.ipk",
            "tool-doc_1.0_x86_64.ipk",
            "tool-locale_1.0_x86_64.ipk",
            "tool_1.0_x86_64.ipk",
            "user_1.0_x86_64.ipk",
        ]
    );
    let dpkg = |args: &[&str], file: &str| {
        let out = Command::new("dpkg-deb").args(args).arg(feed.join(file)).output().expect("dpkg-deb");
        assert!(out.status.success(), "dpkg-deb {args:?} {file}: {}", build_support::text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let info = dpkg(&["--info"], "tool-dev_1.0_x86_64.ipk");
    for want in [
        "Package: tool-dev",
        "Version: 1.0",
        "Depends: tool (= 1.0)",
        "Architecture: x86_64",
        "License: MIT",
        "Source: tool",
    ] {
        assert!(info.contains(want), "no {want:?} in dpkg-deb --info:\n{info}");
    }
    let contents = dpkg(&["--contents"], "tool-dev_1.0_x86_64.ipk");
    for want in ["usr/include/tool.h", "usr/lib/libtool.a", "usr/lib/pkgconfig/tool.pc", "usr/bin/tool-config"] {
        assert!(contents.contains(want), "no {want} in dpkg-deb --contents:\n{contents}");
    }
    assert!(dpkg(&["--contents"], "tool_1.0_x86_64.ipk").contains("usr/bin/tool\n"));
    assert!(dpkg(&["--contents"], "tool-dbg_1.0_x86_64.ipk").contains("usr/lib/debug/.build-id/"));
    assert!(dpkg(&["--field"], "user_1.0_x86_64.ipk").contains("Depends: tool\n"), "user runs with tool");

    let scanned = Command::new("dpkg-scanpackages")
        .args(["-t", "ipk", "."])
        .current_dir(&feed)
        .output()
        .expect("dpkg-scanpackages");
    assert!(scanned.status.success(), "{}", build_support::text(&scanned));
    let theirs = index(&String::from_utf8_lossy(&scanned.stdout));
    let ours = index(&p.read("output/x86_64/feed/Packages"));
    assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>());
    for (name, fields) in &ours {
        for (k, v) in fields {
            let (their_key, their_value) = match k.as_str() {
                "SHA256sum" => ("SHA256", theirs[name].get("SHA256").cloned()),
                "Filename" => {
                    ("Filename", theirs[name].get("Filename").map(|f| f.trim_start_matches("./").to_string()))
                }
                k => (k, theirs[name].get(k).cloned()),
            };
            assert_eq!(their_value.as_deref(), Some(v.as_str()), "{name}: {k} (dpkg-scanpackages' {their_key})");
        }
    }
    let gz = std::fs::read(feed.join("Packages.gz")).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text).unwrap();
    assert_eq!(text, p.read("output/x86_64/feed/Packages"));

    // The same recipes in another project: the same feed, byte for byte.
    let q = project();
    let again = feed_of(&q);
    for name in &names {
        assert!(std::fs::read(feed.join(name)).unwrap() == std::fs::read(again.join(name)).unwrap(), "{name} differs");
    }
}

const LICENSED_BUILD: &str = r#"style = "custom"
install = '''
mkdir -p "$DESTDIR/usr/share"
cp /ovm/src/data "$DESTDIR/usr/share/licensed-data"
'''"#;

/// `ovm legal-info`: each package's license texts as its build kept them, its exact source
/// archives and patches, and a manifest; a license file the source tree lacks fails the package.
#[test]
fn legal_info_ships_every_license_text_source_and_patch_of_the_image() {
    let p = project();
    let licensed = |files: &[&str]| {
        Pkg::new(
            "licensed",
            vec![
                file("COPYING", "The licensed license, version 1.\n"),
                file("doc/NOTICE", "notice\n"),
                file("data", "a\n"),
            ],
            LICENSED_BUILD,
        )
        .license_files(files)
    };
    licensed(&["COPYING", "doc/NOTICE"]).write(&p, "legal");
    p.write("patches/licensed-1.0.patch", "--- a/data\n+++ b/data\n@@ -1 +1 @@\n-a\n+b\n");
    Pkg::new("unlicensed", vec![file("x", "x\n")], "style = \"custom\"\ninstall = \"true\"").write(&p, "legal");
    p.ok(&["build", "x86_64"]);
    let out = p.ok(&["legal-info", "x86_64"]);
    assert!(out.contains("output/x86_64/legal-info (2 packages)"), "{out}");
    let legal = |rel: &str| p.path().join("output/x86_64/legal-info").join(rel);
    let read = |rel: &str| std::fs::read_to_string(legal(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(read("licenses/licensed-1.0/COPYING"), "The licensed license, version 1.\n");
    assert_eq!(read("licenses/licensed-1.0/doc/NOTICE"), "notice\n");
    assert!(read("sources/licensed-1.0/patches/licensed-1.0.patch").contains("+b"));
    let recipe = p.read("recipes/licensed.toml");
    let tarball = recipe.lines().find_map(|l| l.strip_prefix("url = \"file://")).unwrap().trim_end_matches('"');
    let name = std::path::Path::new(tarball).file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(std::fs::read(legal(&format!("sources/licensed-1.0/{name}"))).unwrap(), std::fs::read(tarball).unwrap());
    let csv = read("manifest.csv");
    assert!(csv.starts_with("package,version,license,license files,source archives,source site\n"), "{csv}");
    assert!(csv.contains(&format!("licensed,1.0,MIT,COPYING doc/NOTICE,{name},file://{tarball}\n")), "{csv}");
    let readme = read("README");
    assert!(readme.contains("name no license file") && readme.contains("unlicensed"), "{readme}");

    // A license file the source tree does not have is a QA finding of the package.
    licensed(&["COPYING", "LICENSE.md"]).write(&p, "legal");
    let out = p.run(&["build", "x86_64", "licensed"]);
    let text = build_support::text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "LICENSE.md: is named in license_files but is no file of the unpacked source tree [license-file]"
        ),
        "{text}"
    );
}

/// pyspdxtools, ntia-checker and cyclonedx-python-lib's validator, pinned, in a virtualenv under
/// the test dir (made once, under a lock): Debian packages none of them.
fn spdx_tools() -> std::path::PathBuf {
    let venv = build_support::tmp_root().join("spdx-venv");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(build_support::tmp_root().join("spdx-venv.lock"))
        .expect("venv lock");
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).expect("flock");
    // Made once per set of tools: a venv of an older set is made again.
    let made = venv.join(".ovm-tools-2");
    if made.exists() {
        return venv;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        assert!(out.status.success(), "{cmd:?}: {}", build_support::text(&out));
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "spdx-tools==0.8.5",
        "ntia-conformance-checker==6.0.0",
        "cyclonedx-python-lib[json-validation]==11.12.0",
    ]));
    std::fs::write(&made, "").expect("venv marker");
    venv
}

/// `python -c CDX_VALIDATE FILE`: exits 1 with the first schema error unless FILE is valid
/// CycloneDX 1.5 JSON (cyclonedx-python-lib's strict validator: no property the schema lacks).
const CDX_VALIDATE: &str = "import sys\n\
from cyclonedx.schema import SchemaVersion\n\
from cyclonedx.validation.json import JsonStrictValidator\n\
error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
if error is not None:\n    print(str(error).splitlines()[0])\n    sys.exit(1)\n";

/// The image's SBOM: SPDX 2.3 that pyspdxtools validates and ntia-checker finds conformant,
/// naming each package with its license, source (sha256 and location), patch and files; the same
/// image gives the same document.
#[test]
fn the_sbom_validates_names_sources_patches_and_files_and_is_reproducible() {
    let venv = spdx_tools();
    let p = project();
    tool().license_files(&["tool.h"]).write(&p, "sbom");
    user().write(&p, "sbom");
    p.write(
        "patches/tool-1.0.patch",
        "--- a/tool.h\n+++ b/tool.h\n@@ -1 +1,2 @@\n+/* patched */\n int tool_answer(void);\n",
    );
    p.ok(&["build", "x86_64"]);
    let sbom = p.path().join("output/x86_64/sbom.spdx.json");

    let tool_run = |bin: &str, args: &[&str]| {
        let out = Command::new(venv.join("bin").join(bin)).args(args).arg(&sbom).output().expect(bin);
        let text = build_support::text(&out);
        assert!(out.status.success(), "{bin} {args:?} rejects the SBOM:\n{text}");
        text
    };
    tool_run("pyspdxtools", &["-i"]);
    let ntia = tool_run("ntia-checker", &["--comply", "ntia"]);
    assert!(ntia.contains("Conformant: True"), "{ntia}");

    let doc: serde_json::Value = serde_json::from_str(&p.read("output/x86_64/sbom.spdx.json")).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let packages = doc["packages"].as_array().unwrap();
    let package =
        |name: &str| packages.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("no package {name}"));
    let tool_pkg = package("tool");
    assert_eq!(tool_pkg["versionInfo"], "1.0");
    assert_eq!(tool_pkg["licenseDeclared"], "MIT");
    let recipe = p.read("recipes/tool.toml");
    let url = recipe.lines().find_map(|l| l.strip_prefix("url = \"")).unwrap().trim_end_matches('"');
    let sha = recipe.lines().find_map(|l| l.strip_prefix("sha256 = \"")).unwrap().trim_end_matches('"');
    // A file:// URL is no download location in SPDX's grammar: NOASSERTION, and said in sourceInfo.
    let source = packages
        .iter()
        .find(|p| p["primaryPackagePurpose"] == "SOURCE" && p["sourceInfo"] == format!("fetched from {url}"))
        .expect("tool's source");
    assert_eq!(source["downloadLocation"], "NOASSERTION");
    assert_eq!(source["checksums"][0]["checksumValue"], sha);
    let rels = doc["relationships"].as_array().unwrap();
    let related = |from: &str, kind: &str| -> Vec<String> {
        rels.iter()
            .filter(|r| r["spdxElementId"] == from && r["relationshipType"] == kind)
            .map(|r| r["relatedSpdxElement"].as_str().unwrap().to_string())
            .collect()
    };
    let generated = related("SPDXRef-Package-tool", "GENERATED_FROM");
    assert!(generated.contains(&source["SPDXID"].as_str().unwrap().to_string()), "{generated:?}");
    let files = doc["files"].as_array().unwrap();
    let file = |name: &str| files.iter().find(|f| f["fileName"] == name).unwrap_or_else(|| panic!("no file {name}"));
    assert!(generated.contains(&file("./patches/tool-1.0.patch")["SPDXID"].as_str().unwrap().to_string()));
    let bin = file("./usr/bin/tool");
    assert!(related("SPDXRef-Package-tool", "CONTAINS").contains(&bin["SPDXID"].as_str().unwrap().to_string()));
    let bytes = std::fs::read(p.path().join("staging/x86_64/tool/runtime/usr/bin/tool")).unwrap();
    assert_eq!(bin["checksums"][1]["checksumValue"], sha256(&bytes));
    assert!(related("SPDXRef-Package-user", "DEPENDS_ON").contains(&"SPDXRef-Package-tool".to_string()));
    // The package manifest beside them: the runtime packages the image installs, as OE lists them.
    assert_eq!(p.read("output/x86_64/packages.manifest"), "tool x86_64 1.0\nuser x86_64 1.0\n");

    // The same as CycloneDX 1.5 beside it: valid against the 1.5 JSON schema (cyclonedx-python-lib's
    // strict validator), the same image, recipes, license, patch and file hashes.
    let cdx_path = p.path().join("output/x86_64/sbom.cdx.json");
    let check =
        Command::new(venv.join("bin/python")).args(["-c", CDX_VALIDATE]).arg(&cdx_path).output().expect("python");
    assert!(check.status.success(), "the CycloneDX 1.5 schema rejects sbom.cdx.json:\n{}", build_support::text(&check));
    let cdx: serde_json::Value = serde_json::from_str(&p.read("output/x86_64/sbom.cdx.json")).unwrap();
    assert_eq!(cdx["specVersion"], "1.5");
    assert_eq!(
        cdx["metadata"]["component"]["hashes"][0]["content"],
        doc["packages"][0]["checksums"][0]["checksumValue"]
    );
    let components = cdx["components"].as_array().unwrap();
    let component =
        |name: &str| components.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no component {name}"));
    let tool_c = component("tool");
    assert_eq!(tool_c["version"], "1.0");
    assert_eq!(tool_c["licenses"][0]["expression"], "MIT");
    let patch = &tool_c["pedigree"]["patches"][0]["diff"];
    assert_eq!(patch["url"], "./patches/tool-1.0.patch");
    assert!(patch["text"]["content"].as_str().unwrap().contains("+/* patched */"), "{patch}");
    let bin_c =
        tool_c["components"].as_array().unwrap().iter().find(|f| f["name"] == "./usr/bin/tool").expect("tool's file");
    assert_eq!(bin_c["hashes"][1]["content"], sha256(&bytes));
    let deps = cdx["dependencies"].as_array().unwrap();
    let user_deps = deps.iter().find(|d| d["ref"] == "component:user").expect("user's dependencies");
    assert_eq!(user_deps["dependsOn"], serde_json::json!(["component:tool"]));

    // Another project with the same recipes (the same source URLs) and patch: the same SBOM,
    // byte for byte.
    let q = project();
    for rel in ["recipes/tool.toml", "recipes/user.toml", "patches/tool-1.0.patch"] {
        q.write(rel, &p.read(rel));
    }
    q.ok(&["build", "x86_64"]);
    for sbom in ["sbom.spdx.json", "sbom.cdx.json"] {
        let path = format!("output/x86_64/{sbom}");
        assert!(p.read(&path) == q.read(&path), "the {sbom} files differ");
    }
}

/// `ovm build ARCH --image NAME`: an install list resolved through the feed's Depends, an exclude
/// that keeps a package out, debug packages, postprocess commands in the strict sandbox, two
/// images sharing a package built once, and the errors of a bad list.
#[test]
fn images_from_install_lists_resolve_exclude_share_packages_and_postprocess_in_the_sandbox() {
    let p = project();
    tool().write(&p, "images");
    user().write(&p, "images");
    p.write(
        "images/rescue.toml",
        "description = \"user and what it needs, no debug info of tool\"\ninstall = [\"user\"]\ndebug = true\n\
         exclude = [\"tool-dbg\"]\ncompress = \"xz\"\ntar = true\n\
         postprocess = [\"mkdir -p $ROOTFS/etc && echo postprocessed > $ROOTFS/etc/motd\", \
         \"test ! -e /usr && test ! -e /ovm/src && test -x $ROOTFS/usr/bin/user\"]\n",
    );
    p.write("images/debug.toml", "install = [\"tool\", \"tool-dev\"]\ndebug = true\n");
    let out = p.ok(&["build", "x86_64", "--image", "rescue"]);
    assert!(out.contains("output/x86_64/images/rescue/initrd.cpio.xz"), "{out}");
    let manifest = p.read("output/x86_64/images/rescue/manifest.txt");
    let owner = |m: &str, path: &str| -> Option<String> {
        m.lines()
            .find(|l| l.split('\t').next() == Some(path))
            .map(|l| l.split('\t').nth(7).unwrap_or_default().to_string())
    };
    assert_eq!(owner(&manifest, "/usr/bin/user").as_deref(), Some("user"), "{manifest}");
    assert_eq!(owner(&manifest, "/usr/bin/tool").as_deref(), Some("tool"), "user depends on tool:\n{manifest}");
    assert_eq!(owner(&manifest, "/etc/motd").as_deref(), Some("postprocess"), "{manifest}");
    assert!(!manifest.contains("/usr/lib/debug"), "tool-dbg is excluded:\n{manifest}");
    assert!(!manifest.contains("/usr/include"), "no -dev package was asked for:\n{manifest}");
    // The package manifest names exactly the packages that own files in the image.
    let listed: std::collections::BTreeSet<String> = p
        .read("output/x86_64/images/rescue/packages.manifest")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!((f.len(), f[1], f[2]), (3, "x86_64", "1.0"), "packages.manifest line `{l}`");
            f[0].to_string()
        })
        .collect();
    let owners: std::collections::BTreeSet<String> = manifest
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('\t').nth(7))
        // The layers that are no package: the skeleton, the device table, what a command made.
        .filter(|o| !["rootfs", "device_table", "postprocess"].contains(o))
        .map(String::from)
        .collect();
    assert_eq!(listed, owners, "packages.manifest and the owners of manifest.txt");
    assert!(listed.contains("user") && listed.contains("tool") && !listed.contains("tool-dbg"), "{listed:?}");
    let log = p.read("logs/x86_64/image-rescue/postprocess.log");
    assert!(log.is_empty(), "{log}");
    // tar = true: the same tree as rootfs.tar.xz, which GNU tar lists entry for entry as the
    // manifest does, with the postprocessed file in it.
    build_support::require_tool("tar");
    let listed = std::process::Command::new("tar")
        .args(["-tJf"])
        .arg(p.path().join("output/x86_64/images/rescue/rootfs.tar.xz"))
        .output()
        .expect("running tar");
    assert!(listed.status.success(), "tar -tJf: {}", build_support::text(&listed));
    let mut in_tar: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| format!("/{}", l.trim_start_matches("./").trim_end_matches('/')))
        .collect();
    let mut in_manifest: Vec<String> = manifest
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('\t').next())
        .map(String::from)
        .collect();
    in_tar.sort();
    in_manifest.sort();
    in_manifest.dedup();
    in_tar.retain(|p| p != "/");
    in_manifest.retain(|p| p != "/");
    assert_eq!(in_tar, in_manifest, "rootfs.tar.xz and the manifest list other paths");
    assert!(in_tar.contains(&"/etc/motd".to_string()));

    // Its own SBOM: valid SPDX that passes NTIA's minimum elements, the recipes whose packages it
    // installs, each file under its recipe (or `postprocess`), checksummed as packed.
    let sbom = p.path().join("output/x86_64/images/rescue/sbom.spdx.json");
    let venv = spdx_tools();
    for (bin, args) in [("pyspdxtools", &["-i"][..]), ("ntia-checker", &["--comply", "ntia"][..])] {
        let out = Command::new(venv.join("bin").join(bin)).args(args).arg(&sbom).output().expect(bin);
        assert!(out.status.success(), "{bin} rejects the image's SBOM:\n{}", build_support::text(&out));
    }
    let cdx = p.path().join("output/x86_64/images/rescue/sbom.cdx.json");
    let out = Command::new(venv.join("bin/python")).args(["-c", CDX_VALIDATE]).arg(&cdx).output().expect("python");
    assert!(out.status.success(), "the image's CycloneDX SBOM:\n{}", build_support::text(&out));
    let doc: serde_json::Value = serde_json::from_str(&p.read("output/x86_64/images/rescue/sbom.spdx.json")).unwrap();
    assert_eq!(doc["packages"][0]["name"], "initrd.cpio.xz");
    let names: Vec<&str> = doc["packages"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains(&"user") && names.contains(&"tool") && names.contains(&"postprocess"), "{names:?}");
    let rels = doc["relationships"].as_array().unwrap();
    let contains = |pkg: &str, file: &str| {
        let id = doc["files"].as_array().unwrap().iter().find(|f| f["fileName"] == file).map(|f| f["SPDXID"].clone());
        let id = id.unwrap_or_else(|| panic!("no file {file} in the image's SBOM"));
        rels.iter().any(|r| {
            r["spdxElementId"] == format!("SPDXRef-Package-{pkg}")
                && r["relationshipType"] == "CONTAINS"
                && r["relatedSpdxElement"] == id
        })
    };
    assert!(contains("user", "./usr/bin/user") && contains("tool", "./usr/bin/tool"));
    assert!(contains("postprocess", "./etc/motd"), "the file a postprocess command made");

    // Reproducible: another project with the same recipes and image packs the same bytes.
    let q = project();
    for rel in ["recipes/tool.toml", "recipes/user.toml", "images/rescue.toml"] {
        q.write(rel, &p.read(rel));
    }
    q.ok(&["build", "x86_64", "--image", "rescue"]);
    for f in ["initrd.cpio.xz", "manifest.txt", "packages.manifest", "rootfs.tar.xz", "sbom.spdx.json", "sbom.cdx.json"]
    {
        let (a, b) = (
            p.path().join("output/x86_64/images/rescue").join(f),
            q.path().join("output/x86_64/images/rescue").join(f),
        );
        assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "{f} differs between two projects");
    }

    // A second image sharing tool: nothing is built again.
    p.ok(&["build", "x86_64", "--image", "debug"]);
    assert!(p.tasks_run("x86_64").iter().all(|t| !t.starts_with("tool ")), "{:?}", p.tasks_run("x86_64"));
    let manifest = p.read("output/x86_64/images/debug/manifest.txt");
    assert!(!p.path().join("output/x86_64/images/debug/rootfs.tar.gz").exists(), "debug.toml asks for no tar");
    assert_eq!(owner(&manifest, "/usr/include/tool.h").as_deref(), Some("tool-dev"), "{manifest}");
    assert!(
        manifest.lines().any(|l| l.starts_with("/usr/lib/debug/.build-id/") && l.contains("\ttool-dbg")),
        "{manifest}"
    );
    assert!(owner(&manifest, "/usr/bin/user").is_none(), "user is not in this image:\n{manifest}");
    // tool-dev's header is tool's in this image's SBOM; user is no package of it.
    let doc: serde_json::Value = serde_json::from_str(&p.read("output/x86_64/images/debug/sbom.spdx.json")).unwrap();
    let header = doc["files"].as_array().unwrap().iter().find(|f| f["fileName"] == "./usr/include/tool.h").unwrap();
    assert!(doc["relationships"].as_array().unwrap().iter().any(|r| r["spdxElementId"] == "SPDXRef-Package-tool"
        && r["relationshipType"] == "CONTAINS"
        && r["relatedSpdxElement"] == header["SPDXID"]));
    assert!(!doc["packages"].as_array().unwrap().iter().any(|p| p["name"] == "user"), "user is not in this image");
    // The default image is untouched by either.
    assert!(!p.path().join("output/x86_64/initrd.cpio.gz").exists());

    // With [kernel] modules, in a project whose default image was never packed (nothing has
    // written the modules' layer yet): the postprocessed image gets them too.
    let on = build_support::kernel_turned_on(&p.read("config/ovm.toml"), "modules = [\"virtio_blk\"]");
    p.write("config/ovm.toml", &on);
    p.ok(&["build", "x86_64", "--image", "rescue"]);
    let manifest = p.read("output/x86_64/images/rescue/manifest.txt");
    assert!(manifest.contains("/kernel/drivers/block/virtio_blk.ko\t"), "{manifest}");
    assert_eq!(owner(&manifest, "/etc/motd").as_deref(), Some("postprocess"), "{manifest}");

    // What a list cannot ask for, named.
    p.write("images/bad.toml", "install = [\"user\"]\nexclude = [\"tool\"]\n");
    let text = build_support::text(&p.run(&["build", "x86_64", "--image", "bad"]));
    assert!(text.contains("images/bad.toml: `tool` is excluded, but user depends on it"), "{text}");
    p.write("images/bad.toml", "install = [\"zlib\"]\n");
    let text = build_support::text(&p.run(&["build", "x86_64", "--image", "bad"]));
    assert!(text.contains("`zlib` no target recipe makes it"), "{text}");
    let text = build_support::text(&p.run(&["build", "x86_64", "--image", "nope"]));
    assert!(text.contains("no image named `nope`") && text.contains("images: bad, debug, rescue"), "{text}");
    p.write("images/bad.toml", "install = [\"user\"]\npostprocess = [\"echo failing; exit 3\"]\n");
    let text = build_support::text(&p.run(&["build", "x86_64", "--image", "bad"]));
    assert!(text.contains("the postprocess command `echo failing; exit 3` failed"), "{text}");
    assert!(p.read("logs/x86_64/image-bad/postprocess.log").contains("failing"));
}

/// A named image keeps its own stamp (`image pack-NAME`): built again with nothing changed it is
/// not repacked, and `--dry-run --image` says so; a changed definition, a changed rootfs/ or a
/// removed output repacks it, the dry run naming the task and why first. The default image is
/// another stamp, untouched by it.
#[test]
fn a_named_image_is_repacked_only_when_what_goes_into_it_changed() {
    let p = project();
    tool().write(&p, "named-stamp");
    user().write(&p, "named-stamp");
    p.write("images/small.toml", "install = [\"user\"]\ntar = true\n");
    let dry = |p: &TestProject| p.ok(&["build", "x86_64", "--image", "small", "--dry-run"]);
    let plan = dry(&p);
    assert!(plan.contains("pack-small") && plan.contains("because it waits for the packages"), "{plan}");

    p.ok(&["build", "x86_64", "--image", "small"]);
    assert!(p.tasks_run("x86_64").contains(&"image pack-small".to_string()), "{:?}", p.tasks_run("x86_64"));
    p.ok(&["build", "x86_64", "--image", "small"]);
    assert_eq!(p.tasks_run("x86_64"), Vec::<String>::new(), "nothing changed, yet something ran");
    let plan = dry(&p);
    assert!(plan.contains("nothing to do"), "{plan}");
    let json: serde_json::Value =
        serde_json::from_slice(&p.run(&["build", "x86_64", "--image", "small", "--dry-run", "--json"]).stdout).unwrap();
    assert_eq!(json["nothing_to_do"], true, "{json}");

    // The definition: compression.
    p.write("images/small.toml", "install = [\"user\"]\ntar = true\ncompress = \"xz\"\n");
    let plan = dry(&p);
    assert!(plan.contains("pack-small") && plan.contains("compress changed"), "{plan}");
    p.ok(&["build", "x86_64", "--image", "small"]);
    assert_eq!(p.tasks_run("x86_64"), ["image pack-small"]);
    assert!(p.path().join("output/x86_64/images/small/rootfs.tar.xz").is_file());
    // rootfs/, a layer of every image.
    p.write("rootfs/etc/issue", "named\n");
    let plan = dry(&p);
    assert!(plan.contains("layer.rootfs changed"), "{plan}");
    p.ok(&["build", "x86_64", "--image", "small"]);
    assert_eq!(p.tasks_run("x86_64"), ["image pack-small"]);
    assert!(p.read("output/x86_64/images/small/manifest.txt").contains("/etc/issue\t"));
    // What the last pack made, gone: the tar archive.
    std::fs::remove_file(p.path().join("output/x86_64/images/small/rootfs.tar.xz")).unwrap();
    let plan = dry(&p);
    assert!(plan.contains("the image in output/ is missing or was changed"), "{plan}");
    p.ok(&["build", "x86_64", "--image", "small"]);
    assert_eq!(p.tasks_run("x86_64"), ["image pack-small"]);
    assert!(p.path().join("output/x86_64/images/small/rootfs.tar.xz").is_file());
    // No tar any more: a changed input like any other; the pack removes the archive, and its
    // absence is then no reason to pack again.
    p.write("images/small.toml", "install = [\"user\"]\ncompress = \"xz\"\n");
    let plan = dry(&p);
    assert!(plan.contains("pack-small") && plan.contains("tar changed"), "{plan}");
    p.ok(&["build", "x86_64", "--image", "small"]);
    assert_eq!(p.tasks_run("x86_64"), ["image pack-small"]);
    assert!(!p.path().join("output/x86_64/images/small/rootfs.tar.xz").exists());
    assert!(dry(&p).contains("nothing to do"), "{}", dry(&p));

    // The default image has its own stamp: packing it does not make the named one stale.
    p.ok(&["build", "x86_64"]);
    assert!(dry(&p).contains("nothing to do"), "{}", dry(&p));
}

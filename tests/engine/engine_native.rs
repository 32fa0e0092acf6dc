//! Native tools (`recipes/native/`, `native = [...]`): built for the host in the tools domain, only
//! when a package being built names them; seen, at `/ovm/native/bin` first on PATH, only by the
//! packages that name them; part of those packages' signatures and nobody else's; and a step that
//! runs a program the sandbox lacks fails naming it and the field that would provide it.

use crate::engine_fixture;

use engine_fixture::{fails, file, project, status_of, steps, Pkg};

/// A native tool `name` that prints "NAME VERSION" (its source's `in.txt`).
fn tool(name: &str, version: &str) -> Pkg {
    let ship = format!(
        "mkdir -p /ovm/dest/bin\n\
         printf '#!/bin/sh\\necho \"{name} %s\"\\n' \"$(cat /ovm/src/in.txt)\" > /ovm/dest/bin/{name}\n\
         chmod 0755 /ovm/dest/bin/{name}"
    );
    Pkg::new(name, vec![file("in.txt", version)], &steps(&[("ship", &ship)])).native_tool()
}

/// A target package whose one step runs `script` and then ships `usr/share/NAME.txt` from
/// `/ovm/build/out`.
fn user(name: &str, script: &str) -> Pkg {
    let ship = format!("{script}\nmkdir -p /ovm/dest/usr/share\ncp /ovm/build/out /ovm/dest/usr/share/{name}.txt");
    Pkg::new(name, vec![file("README", name)], &steps(&[("ship", &ship)]))
}

#[test]
fn a_native_tool_is_seen_and_signed_only_by_the_packages_that_name_it() {
    let p = project();
    tool("greettool", "1").write(&p, "native-seen");
    tool("unused", "1").write(&p, "native-seen");
    user("user", "test \"$(command -v greettool)\" = /ovm/native/bin/greettool\ngreettool > /ovm/build/out")
        .native(&["greettool"])
        .write(&p, "native-seen");
    user("plain", "! command -v greettool\ntest ! -e /ovm/native\necho plain > /ovm/build/out")
        .write(&p, "native-seen");
    p.ok(&["build", "x86_64", "user", "plain"]);
    assert_eq!(p.read("staging/x86_64/user/runtime/usr/share/user.txt"), "greettool 1\n");
    assert!(p.path().join("staging/tools/greettool/bin/greettool").is_file());
    assert!(!p.path().join("staging/tools/unused").exists(), "a native tool nobody named was built");
    assert!(!p.path().join("toolchain/tools/bin/greettool").exists(), "a native tool joined the build tools");
    let info: serde_json::Value =
        serde_json::from_slice(&p.run(&["info", "user", "x86_64", "--json"]).stdout).expect("info JSON");
    assert_eq!(info["native"], serde_json::json!(["greettool"]), "{info:#}");

    // The tool changes: `status` has `user` wait for it and `plain` built, and the rebuild reruns
    // `user` (its signature holds the tool's output hash), not `plain`.
    tool("greettool", "2").write(&p, "native-seen");
    let why = crate::build_support::text(&p.run(&["status", "x86_64", "--why"]));
    assert!(status_of(&why, "greettool").contains("stale"), "{why}");
    assert!(status_of(&why, "user").contains("waits for the native tool greettool"), "{why}");
    assert!(status_of(&why, "plain").contains("built"), "plain waits for a tool it does not name:\n{why}");
    p.ok(&["build", "x86_64", "user", "plain"]);
    let ran = p.tasks_run("x86_64");
    assert!(ran.iter().any(|t| t == "user ship"), "user was not rebuilt after its tool changed: {ran:?}");
    assert!(!ran.iter().any(|t| t.starts_with("plain ")), "plain was rebuilt for a tool it does not name: {ran:?}");
    assert_eq!(p.read("staging/x86_64/user/runtime/usr/share/user.txt"), "greettool 2\n");
}

#[test]
fn a_step_running_a_missing_program_names_it_and_the_field_that_provides_it() {
    let p = project();
    tool("greettool", "1").write(&p, "native-missing");
    user("needy", "greettool > /ovm/build/out").write(&p, "native-missing");
    user("needcmake", "cmake -S /ovm/src -B /ovm/build > /ovm/build/out").write(&p, "native-missing");
    user("needmeson", "meson setup /ovm/build /ovm/src > /ovm/build/out").write(&p, "native-missing");
    let configure = file("Configure", "#!/usr/bin/env perl\nprint \"configured\\n\";\n");
    let configure = engine_fixture::Entry { mode: 0o755, ..configure };
    Pkg::new(
        "needperl",
        vec![configure],
        &steps(&[(
            "ship",
            "/ovm/src/Configure > /ovm/build/out\nmkdir -p /ovm/dest/usr && cp /ovm/build/out /ovm/dest/usr/",
        )]),
    )
    .write(&p, "native-missing");
    let out = fails(&p, &["build", "x86_64", "needy", "needcmake", "needmeson", "needperl"]);
    assert!(
        out.contains(
            "needy: the ship step failed running `greettool`, which is not in its sandbox; add `native = \
             [\"greettool\"]` to recipes/needy.toml (recipes/native/greettool.toml provides it)"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "needcmake: the ship step failed running `cmake`, which is not in its sandbox; add `native = \
             [\"cmake\"]` to recipes/needcmake.toml (recipes/native/cmake.toml provides it)"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "needmeson: the ship step failed running `meson`, which is not in its sandbox; no recipe in \
             recipes/native/ provides it: write one, then name it in `native` in recipes/needmeson.toml"
        ),
        "{out}"
    );
    assert!(
        out.contains("needperl: the ship step failed running `perl` (the interpreter of /ovm/src/Configure)"),
        "{out}"
    );
}

/// A library package shipping `.pc` files: `NAME.pc` in usr/lib/pkgconfig and, when `data`,
/// `NAME-data.pc` in usr/share/pkgconfig (where architecture-independent ones go).
fn library_with_pc(name: &str, data: bool) -> Pkg {
    let pc = format!(
        "prefix=/usr\nincludedir=${{prefix}}/include\nlibdir=${{prefix}}/lib\n\nName: {name}\nDescription: test\n\
         Version: 1.0\nCflags: -I${{includedir}}/{name}\nLibs: -L${{libdir}} -l{name}\n"
    );
    let mut ship = String::from("mkdir -p /ovm/dest/usr/lib/pkgconfig /ovm/dest/usr/share/pkgconfig\n");
    ship.push_str(&format!("cp /ovm/src/{name}.pc /ovm/dest/usr/lib/pkgconfig/\n"));
    if data {
        ship.push_str(&format!(
            "printf 'Name: {name}-data\\nDescription: d\\nVersion: 2.0\\n' > /ovm/dest/usr/share/pkgconfig/{name}-data.pc\n"
        ));
    }
    Pkg::new(name, vec![file(&format!("{name}.pc"), &pc)], &steps(&[("ship", &ship)]))
}

/// The repository's pkgconf (recipes/native/pkgconf.toml), built with the host's compiler, run by a
/// package: it finds the `.pc` files of the package's sysroot (its declared dependencies' and
/// theirs, in lib/ and share/) and no other, with the sysroot prefixed to their paths.
#[test]
fn pkgconf_finds_the_pc_files_of_the_declared_dependencies_and_no_other() {
    let p = project();
    library_with_pc("foo", true).write(&p, "native-pkgconf");
    library_with_pc("base", false).write(&p, "native-pkgconf");
    library_with_pc("bar", false).write(&p, "native-pkgconf");
    // foo <- mid <- app: base comes through mid, bar is built but undeclared.
    library_with_pc("mid", false).depends(&["base"]).write(&p, "native-pkgconf");
    let probe = "test \"$(command -v pkg-config)\" = /ovm/native/bin/pkg-config\n\
                 pkg-config --cflags --libs foo base > /ovm/build/out\n\
                 pkg-config --modversion foo-data >> /ovm/build/out\n\
                 if pkg-config --exists bar; then echo 'bar is visible' >> /ovm/build/out; fi\n\
                 pkg-config --list-all | cut -d' ' -f1 | sort | tr '\\n' ' ' >> /ovm/build/out";
    user("app", probe)
        .depends(&["foo", "mid"])
        .native(&["pkgconf"])
        .toml("[package.waive]\nhost-path = \"app.txt records pkg-config's answer, sysroot paths and all, for the test to read\"\n")
        .write(&p, "native-pkgconf");
    p.ok(&["build", "x86_64", "app", "bar"]);
    let out = p.read("staging/x86_64/app/runtime/usr/share/app.txt");
    let mut lines = out.lines();
    let flags = lines.next().unwrap_or_default();
    for want in ["-I/ovm/sysroot/usr/include/foo", "-I/ovm/sysroot/usr/include/base", "-lfoo", "-lbase"] {
        assert!(flags.split_whitespace().any(|f| f == want), "`{want}` missing from pkg-config's answer: {out}");
    }
    assert_eq!(lines.next(), Some("2.0"), "the share/pkgconfig .pc was not found: {out}");
    assert_eq!(lines.next(), Some("base foo foo-data mid "), "pkg-config saw other .pc files: {out}");
    assert!(!out.contains("bar is visible"), "{out}");
    // The program is static: it runs in a sandbox without the host's libraries.
    let pkgconf = p.path().join("staging/tools/pkgconf/bin/pkgconf");
    let head = std::fs::read(&pkgconf).expect("pkgconf staged");
    assert!(head.starts_with(b"\x7fELF"), "not an executable");
    let readelf = std::process::Command::new("readelf").arg("-l").arg(&pkgconf).output().expect("readelf");
    assert!(!String::from_utf8_lossy(&readelf.stdout).contains("INTERP"), "pkgconf is not static");
}

/// A static C library `base` built by hand (header, `libbase.a`), for the CMake projects below.
fn base_library() -> Pkg {
    let ship = "$CC $CFLAGS -c /ovm/src/base.c -o base.o\n$AR rcs libbase.a base.o\n\
                mkdir -p /ovm/dest/usr/include /ovm/dest/usr/lib\n\
                cp /ovm/src/base.h /ovm/dest/usr/include/\ncp libbase.a /ovm/dest/usr/lib/";
    Pkg::new(
        "base",
        vec![
            file("base.h", "const char *base_greeting(void);\n"),
            file("base.c", "#include \"base.h\"\nconst char *base_greeting(void) { return \"from base\"; }\n"),
        ],
        &steps(&[("ship", ship)]),
    )
}

/// A CMake project `name`: a program linking `base`, found with find_path/find_library (so only
/// in the sysroot), built with the recipe's `configure_args`; it also installs what CMake found.
fn cmake_app(name: &str, tools: &[&str]) -> Pkg {
    let lists = format!(
        "cmake_minimum_required(VERSION 3.18)\nproject({name} C)\n\
         find_path(BASE_INC base.h REQUIRED)\nfind_library(BASE_LIB base REQUIRED)\n\
         add_executable({name} main.c)\ntarget_include_directories({name} PRIVATE ${{BASE_INC}})\n\
         target_compile_definitions({name} PRIVATE WORD=\"${{WORD}}\")\n\
         target_link_libraries({name} ${{BASE_LIB}})\ntarget_link_options({name} PRIVATE -static)\n\
         include(GNUInstallDirs)\ninstall(TARGETS {name})\n\
         file(WRITE ${{CMAKE_BINARY_DIR}}/found.txt \"${{BASE_INC}} ${{BASE_LIB}} ${{CMAKE_CROSSCOMPILING}} \
         ${{CMAKE_SYSTEM_PROCESSOR}} ${{CMAKE_GENERATOR}} ${{CMAKE_INSTALL_FULL_SYSCONFDIR}}\\n\")\n\
         install(FILES ${{CMAKE_BINARY_DIR}}/found.txt DESTINATION share/{name})\n"
    );
    let main = "#include <stdio.h>\n#include \"base.h\"\n\
                int main(void) { printf(\"%s %s\\n\", WORD, base_greeting()); return 0; }\n";
    Pkg::new(
        name,
        vec![file("CMakeLists.txt", &lists), file("main.c", main)],
        "style = \"cmake\"\nconfigure_args = [\"-DWORD=${TARGET}\"]\n",
    )
    .depends(&["base"])
    .native(tools)
    .toml("[package.waive]\nhost-path = \"found.txt records the sysroot paths CMake found, for the test to read\"\n")
}

/// `style = "cmake"` with the repository's cmake and ninja (recipes/native/): the toolchain file
/// points CMake at the sandbox's cross compiler, finds headers and libraries in the sysroot only,
/// expands `${TARGET}` in `configure_args`, installs into DESTDIR under /usr; with ninja named,
/// the project is generated for ninja. The programs are static and run.
/// Slow tier: CMake from source takes 12 minutes of a fast machine and 25 of a slow one, more
/// than a CI run can give one test; `scripts/slow-cmake.sh` runs this test (`--ignored`) with
/// the shared state in which it has just built CMake, ninja and json-c.
#[test]
#[ignore = "slow tier: builds CMake from source; scripts/slow-cmake.sh runs it"]
fn the_cmake_style_cross_builds_against_the_sysroot_with_make_or_ninja() {
    let p = project();
    base_library().write(&p, "native-cmake");
    cmake_app("withmake", &["cmake"]).write(&p, "native-cmake");
    cmake_app("withninja", &["cmake", "ninja"]).write(&p, "native-cmake");
    p.ok(&["build", "x86_64", "withmake", "withninja"]);
    for (name, generator) in [("withmake", "Unix Makefiles"), ("withninja", "Ninja")] {
        let found = p.read(&format!("staging/x86_64/{name}/runtime/usr/share/{name}/found.txt"));
        assert_eq!(
            found,
            format!("/ovm/sysroot/usr/include /ovm/sysroot/usr/lib/libbase.a TRUE x86_64 {generator} /etc\n"),
            "{name}"
        );
        let program = p.path().join(format!("staging/x86_64/{name}/runtime/usr/bin/{name}"));
        let out = std::process::Command::new(&program).output().expect("running the program");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "x86_64-linux-musl from base\n", "{name}");
        let readelf = std::process::Command::new("readelf").arg("-lh").arg(&program).output().expect("readelf");
        let text = String::from_utf8_lossy(&readelf.stdout);
        assert!(!text.contains("INTERP") && text.contains("X86-64"), "{name} is not a static x86_64 program:\n{text}");
    }
    for tool in ["cmake", "ninja"] {
        let bin = p.path().join(format!("staging/tools/{tool}/bin/{tool}"));
        let readelf = std::process::Command::new("readelf").arg("-l").arg(&bin).output().expect("readelf");
        assert!(readelf.status.success(), "{tool} is not an ELF program");
        assert!(!String::from_utf8_lossy(&readelf.stdout).contains("INTERP"), "{tool} is not static");
    }
    assert!(p.path().join("staging/tools/cmake/share/cmake-3.25/Modules/CMakeDetermineCCompiler.cmake").is_file());
    // Only the package naming ninja has it in its signature.
    let info = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&p.run(&["info", name, "x86_64", "--json"]).stdout).expect("info JSON")
    };
    assert_eq!(info("withmake")["native"], serde_json::json!(["cmake"]));
    assert_eq!(info("withninja")["native"], serde_json::json!(["cmake", "ninja"]));
}

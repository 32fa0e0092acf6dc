//! Recipe loading: malformed recipes give the expected message at the expected line:column, good
//! ones load with their defaults, patches are discovered in order, and the dependency graph gives
//! topological orders, closures and cycles.

use std::fs;
use std::path::Path;

use ovm::project::Project;
use ovm::recipe::{Kind, RecipeError, RecipeSet, Style};

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A throw-away project with the given files (paths relative to the project root).
fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().unwrap();
    for d in ["recipes", "config", "patches"] {
        fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    for (path, text) in files {
        let p = dir.path().join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    let project = Project::open(dir.path()).unwrap();
    (dir, project)
}

/// A valid target recipe named `name`, with `extra` inserted before `[[source]]`.
fn recipe(name: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"1.0\"\nlicense = \"MIT\"\n{extra}\n[[source]]\nurl = \"https://example.org/{name}-1.0.tar.gz\"\nsha256 = \"{SHA_A}\"\n\n[build]\nstyle = \"make\"\n"
    )
}

fn load_err(files: &[(&str, &str)]) -> RecipeError {
    let (_dir, project) = project(files);
    match RecipeSet::load(&project) {
        Ok(_) => panic!("recipes loaded but should not have: {files:?}"),
        Err(e) => e,
    }
}

/// Asserts the error's position (`file:line:column`) and that its message says `needle`.
fn assert_error(files: &[(&str, &str)], position: &str, needle: &str) {
    let err = load_err(files);
    let msg = err.to_string();
    let at = err.location().unwrap_or_else(|| panic!("error without a location: {msg}")).to_string();
    assert_eq!(at, position, "wrong position in: {msg}");
    assert!(msg.starts_with(&format!("{position}: ")), "message does not start with the position: {msg}");
    assert!(msg.contains(needle), "expected `{needle}` in: {msg}");
}

#[test]
fn unknown_key_is_named_at_its_position() {
    let text = recipe("hello", "").replace("sha256 =", "sha265 =");
    assert_error(&[("recipes/hello.toml", &text)], "recipes/hello.toml:7:1", "unknown field `sha265`");
}

#[test]
fn missing_sha256_is_an_error() {
    let text = "name = \"hello\"\nversion = \"1.0\"\nlicense = \"MIT\"\n\n[[source]]\nurl = \"https://example.org/h.tar.gz\"\n\n[build]\nstyle = \"make\"\n";
    assert_error(&[("recipes/hello.toml", text)], "recipes/hello.toml:5:1", "missing field `sha256`");
}

#[test]
fn sha256_of_the_wrong_length_is_an_error() {
    let text = recipe("hello", "").replace(SHA_A, &SHA_A[1..]);
    assert_error(
        &[("recipes/hello.toml", &text)],
        "recipes/hello.toml:7:10",
        "sha256 must be 64 hexadecimal digits, found 63 characters",
    );
}

#[test]
fn sha256_with_non_hex_digits_is_an_error() {
    let bad = format!("{}g", &SHA_A[1..]);
    let text = recipe("hello", "").replace(SHA_A, &bad);
    assert_error(&[("recipes/hello.toml", &text)], "recipes/hello.toml:7:10", "found `g`");
}

#[test]
fn dependency_cycle_names_the_cycle() {
    let a = recipe("a", "depends = [\"b\"]");
    let b = recipe("b", "depends = [\"c\"]");
    let c = recipe("c", "depends = [\"a\"]");
    // Roots are visited in name order: a -> b -> c, and c's `depends` closes the cycle.
    assert_error(
        &[("recipes/a.toml", &a), ("recipes/b.toml", &b), ("recipes/c.toml", &c)],
        "recipes/c.toml:4:12",
        "dependency cycle: a -> b -> c -> a",
    );
}

#[test]
fn self_dependency_is_a_cycle() {
    let a = recipe("a", "depends = [\"a\"]");
    assert_error(&[("recipes/a.toml", &a)], "recipes/a.toml:4:12", "dependency cycle: a -> a");
}

#[test]
fn unknown_dependency_is_an_error() {
    let a = recipe("a", "depends = [\"zlib\"]");
    assert_error(
        &[("recipes/a.toml", &a)],
        "recipes/a.toml:4:12",
        "unknown dependency `zlib`: there is no recipes/zlib.toml",
    );
}

#[test]
fn dependency_on_another_kind_is_an_error() {
    let a = recipe("a", "depends = [\"make\"]");
    let make = recipe("make", "");
    assert_error(
        &[("recipes/a.toml", &a), ("recipes/tools/make.toml", &make)],
        "recipes/a.toml:4:12",
        "`make` is a tools recipe; a target recipe may only depend on target recipes",
    );
}

#[test]
fn native_tools_must_be_native_recipes_named_once_by_a_target_recipe() {
    let pkgconf = recipe("pkgconf", "");
    let native = ("recipes/native/pkgconf.toml", pkgconf.as_str());
    // A name no recipes/native/ recipe has.
    let a = recipe("a", "native = [\"cmake\"]");
    assert_error(
        &[("recipes/a.toml", &a), native],
        "recipes/a.toml:4:11",
        "unknown native tool `cmake`: there is no recipes/native/cmake.toml",
    );
    // A target (or tools) recipe is no native tool, even of the same name.
    let a = recipe("a", "native = [\"b\"]");
    let b = recipe("b", "");
    assert_error(
        &[("recipes/a.toml", &a), ("recipes/b.toml", &b)],
        "recipes/a.toml:4:11",
        "`b` is a target recipe; `native` names recipes/native/ recipes",
    );
    let a = recipe("a", "native = [\"pkgconf\", \"pkgconf\"]");
    assert_error(&[("recipes/a.toml", &a), native], "recipes/a.toml:4:22", "native tool `pkgconf` is listed twice");
    // Only target recipes name them: a native recipe lists its own needs in `depends`.
    let m4 = recipe("m4", "native = [\"pkgconf\"]");
    assert_error(
        &[("recipes/native/m4.toml", &m4), native],
        "recipes/native/m4.toml:4:11",
        "only target recipes name native tools; a native recipe lists the native recipes it needs in `depends`",
    );
    // A native recipe may depend on native recipes only.
    let m4 = recipe("m4", "depends = [\"a\"]");
    let a = recipe("a", "");
    assert_error(
        &[("recipes/native/m4.toml", &m4), ("recipes/a.toml", &a)],
        "recipes/native/m4.toml:4:12",
        "`a` is a target recipe; a native recipe may only depend on native recipes",
    );

    let a = recipe("a", "native = [\"pkgconf\"]");
    let (_dir, project) = project(&[("recipes/a.toml", &a), native]);
    let set = RecipeSet::load(&project).expect("valid set");
    assert_eq!(set.require("a").unwrap().native, vec!["pkgconf".to_string()]);
    assert_eq!(set.require("pkgconf").unwrap().kind, Kind::Native);
}

#[test]
fn missing_patch_is_an_error() {
    let a = recipe("a", "patches = [\"fix.patch\"]");
    assert_error(&[("recipes/a.toml", &a)], "recipes/a.toml:4:12", "patch `fix.patch` not found");
}

#[test]
fn missing_config_file_is_an_error() {
    let a = recipe("a", "files = [\"a.config\"]");
    assert_error(&[("recipes/a.toml", &a)], "recipes/a.toml:4:10", "file `a.config` not found");
}

#[test]
fn bad_version_string_is_an_error() {
    let a = recipe("a", "").replace("version = \"1.0\"", "version = \"v1.0\"");
    assert_error(
        &[("recipes/a.toml", &a)],
        "recipes/a.toml:2:11",
        "bad version `v1.0`: expected a digit first, then only letters, digits and . _ + ~ -",
    );
}

#[test]
fn duplicate_package_name_across_kinds_is_an_error() {
    let target = recipe("busybox", "");
    let tools = recipe("busybox", "");
    let err = load_err(&[("recipes/busybox.toml", &target), ("recipes/tools/busybox.toml", &tools)]);
    let msg = err.to_string();
    assert_eq!(err.location().unwrap().to_string(), "recipes/tools/busybox.toml:1:8", "{msg}");
    assert!(msg.contains("package `busybox` is already defined by") && msg.contains("recipes/busybox.toml"), "{msg}");
}

#[test]
fn name_must_match_the_file_name() {
    let a = recipe("other", "");
    assert_error(&[("recipes/a.toml", &a)], "recipes/a.toml:1:8", "name `other` must equal the file name `a`");
}

#[test]
fn unknown_build_style_lists_the_choices() {
    let a = recipe("a", "").replace("style = \"make\"", "style = \"meson\"");
    assert_error(
        &[("recipes/a.toml", &a)],
        "recipes/a.toml:10:9",
        "unknown variant `meson`, expected one of `autotools`, `make`, `kbuild`, `cmake`, `custom`",
    );
}

#[test]
fn dest_may_not_leave_the_tree() {
    let a = recipe("a", "").replace("[build]", "dest = \"../gmp\"\n\n[build]");
    assert_error(&[("recipes/a.toml", &a)], "recipes/a.toml:9:8", "dest `../gmp` must be a relative path without `..`");
}

#[test]
fn unsupported_url_scheme_is_an_error() {
    let a = recipe("a", "").replace("https://example.org/", "ftp://example.org/");
    assert_error(&[("recipes/a.toml", &a)], "recipes/a.toml:6:7", "scheme `ftp` is not supported");
}

#[test]
fn toml_syntax_error_has_a_position() {
    let a = recipe("a", "").replace("license = \"MIT\"", "license = \"MIT");
    assert_error(&[("recipes/a.toml", &a)], "recipes/a.toml:3:15", "invalid basic string, expected `\"`");
}

#[test]
fn target_recipe_without_build_is_an_error() {
    let a = recipe("a", "").replace("\n[build]\nstyle = \"make\"\n", "");
    assert_error(&[("recipes/a.toml", &a)], "recipes/a.toml:1:1", "missing [build] section");
}

#[test]
fn configure_args_only_for_autotools() {
    let a = recipe("a", "").replace("style = \"make\"", "style = \"make\"\nconfigure_args = [\"--x\"]");
    assert_error(
        &[("recipes/a.toml", &a)],
        "recipes/a.toml:11:18",
        "configure_args is only used by style = \"autotools\"",
    );
}

/// `style = "cmake"` runs cmake from /ovm/native: a target recipe naming the tool, with
/// `configure_args` as for autotools; anything else is an error at the style.
#[test]
fn the_cmake_style_needs_the_cmake_native_tool_and_takes_configure_args() {
    let cmake = recipe("cmake", "");
    let native = ("recipes/native/cmake.toml", cmake.as_str());
    let styled = |r: String| r.replace("style = \"make\"", "style = \"cmake\"\nconfigure_args = [\"-DX=${TARGET}\"]");
    let a = styled(recipe("a", ""));
    assert_error(
        &[("recipes/a.toml", &a), native],
        "recipes/a.toml:10:9",
        "style = \"cmake\" runs cmake: add `native = [\"cmake\"]` (recipes/native/cmake.toml provides it)",
    );
    let t = styled(recipe("t", ""));
    assert_error(
        &[("recipes/native/t.toml", &t), native],
        "recipes/native/t.toml:10:9",
        "style = \"cmake\" is for target recipes: a native recipe has no /ovm/native to run cmake from",
    );
    let a = styled(recipe("a", "native = [\"cmake\"]"));
    let (_d, p) = project(&[("recipes/a.toml", &a), native]);
    let set = RecipeSet::load(&p).expect("a cmake-style recipe naming cmake loads");
    let build = set.get("a").and_then(|r| r.build.as_ref()).expect("a has a [build]");
    assert_eq!(build.style, ovm::recipe::Style::Cmake);
    assert_eq!(build.configure_args, ["-DX=${TARGET}"]);
}

#[test]
fn unknown_archive_suffix_needs_unpack_false() {
    let a = recipe("a", "").replace("a-1.0.tar.gz", "a-1.0.rar");
    assert_error(&[("recipes/a.toml", &a)], "recipes/a.toml:6:7", "cannot tell how to unpack `a-1.0.rar`");
    let ok = recipe("a", "").replace("a-1.0.tar.gz", "a-1.0.rar").replace("[build]", "unpack = false\n\n[build]");
    let (_d, p) = project(&[("recipes/a.toml", &ok)]);
    assert!(!RecipeSet::load(&p).unwrap().get("a").unwrap().sources[0].unpack);
}

#[test]
fn one_file_name_with_two_hashes_is_an_error() {
    let a = recipe("a", "").replace("a-1.0.tar.gz", "common.tar.gz");
    let b = recipe("b", "").replace("b-1.0.tar.gz", "common.tar.gz").replace(SHA_A, SHA_B);
    assert_error(
        &[("recipes/a.toml", &a), ("recipes/b.toml", &b)],
        "recipes/b.toml:7:10",
        "source file name `common.tar.gz` is also used by recipe `a` with a different sha256",
    );
}

#[test]
fn alternative_with_the_primary_hash_is_an_error() {
    let alt = format!(
        "\n[[source.alternative]]\nsha256 = \"{SHA_A}\"\nversion = \"1.0+dfsg\"\nreason = \"repack\"\nurl = \"https://example.org/a_1.0.orig.tar.gz\"\n"
    );
    let a = recipe("a", "").replace("\n[build]", &format!("{alt}\n[build]"));
    assert_error(&[("recipes/a.toml", &a)], "recipes/a.toml:10:10", "an alternative must have other bytes");
}

#[test]
fn a_full_recipe_loads_with_every_field() {
    let text = format!(
        r#"name = "make"
version = "4.3"
license = "GPL-3.0-or-later"
homepage = "https://www.gnu.org/software/make/"
description = "GNU make"
depends = []
files = ["make.config"]
patches = ["extra/late.patch"]

[[source]]
url = "https://ftp.gnu.org/gnu/make/make-4.3.tar.gz"
sha256 = "{SHA_A}"
mirrors = ["https://ftpmirror.gnu.org/make/make-4.3.tar.gz"]
debian = {{ package = "make-dfsg", file = "make-dfsg_4.3.orig.tar.gz", version = "4.3-4.1" }}

[[source.alternative]]
sha256 = "{SHA_B}"
version = "4.3+dfsg"
reason = "Debian repack: doc/ removed"
debian = {{ package = "make-dfsg", file = "make-dfsg_4.3.orig.tar.gz" }}

[[source]]
url = "https://example.org/extra.patch.txt"
sha256 = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
unpack = false
dest = "./contrib"

[build]
style = "autotools"
env = {{ MAKEINFO = "true" }}
configure_args = ["--disable-nls"]
make_args = ["V=1"]
install = '''make DESTDIR="$DESTDIR" install-binPROGRAMS'''
"#
    );
    let (dir, p) = project(&[
        ("recipes/tools/make.toml", &text),
        ("config/make.config", "x"),
        ("patches/make-4.3.patch", ""),
        ("patches/make/0002-b.patch", ""),
        ("patches/make/0001-a.patch", ""),
        ("patches/make/README", "not a patch"),
        ("patches/extra/late.patch", ""),
    ]);
    let set = RecipeSet::load(&p).unwrap();
    let r = set.require("make").unwrap();
    assert_eq!(r.kind, Kind::Tools);
    assert_eq!(r.version, "4.3");
    assert_eq!(r.homepage.as_deref(), Some("https://www.gnu.org/software/make/"));
    assert_eq!(r.files[0].path, dir.path().join("config/make.config"));
    let patches: Vec<_> = r.patches.iter().map(|p| p.strip_prefix(dir.path()).unwrap().to_path_buf()).collect();
    assert_eq!(
        patches,
        [
            "patches/make-4.3.patch",
            "patches/make/0001-a.patch",
            "patches/make/0002-b.patch",
            "patches/extra/late.patch"
        ]
        .map(std::path::PathBuf::from)
    );
    let s = &r.sources[0];
    assert_eq!(s.primary.file, "make-4.3.tar.gz", "file defaults to the URL's last component");
    assert_eq!(s.primary.urls.len(), 2);
    assert_eq!(s.primary.debian.as_ref().unwrap().version.as_deref(), Some("4.3-4.1"));
    assert_eq!((s.strip, s.unpack, s.dest.as_os_str().is_empty()), (1, true, true));
    let alt = &s.alternatives[0];
    assert_eq!((alt.version.as_str(), alt.artifact.file.as_str()), ("4.3+dfsg", "make-dfsg_4.3.orig.tar.gz"));
    assert_eq!(r.sources[1].dest, Path::new("contrib"));
    let b = r.build.as_ref().unwrap();
    assert_eq!(b.style, Style::Autotools);
    assert_eq!(b.env["MAKEINFO"], "true");
    assert!(b.install.as_deref().unwrap().contains("install-binPROGRAMS"));
}

#[test]
fn toolchain_recipe_without_build_is_prebuilt() {
    let zig = recipe("zig", "").replace("\n[build]\nstyle = \"make\"\n", "");
    let (_d, p) = project(&[("recipes/toolchain/zig.toml", &zig)]);
    let set = RecipeSet::load(&p).unwrap();
    let r = set.get("zig").unwrap();
    assert!(r.is_prebuilt());
    assert_eq!(set.of_kind(Kind::Toolchain).count(), 1);
    assert_eq!(set.of_kind(Kind::Target).count(), 0);
}

#[test]
fn topological_order_closure_and_selection() {
    let files = [
        ("recipes/app.toml", recipe("app", "depends = [\"libb\", \"liba\"]")),
        ("recipes/liba.toml", recipe("liba", "depends = [\"libc0\"]")),
        ("recipes/libb.toml", recipe("libb", "depends = [\"libc0\"]")),
        ("recipes/libc0.toml", recipe("libc0", "")),
        ("recipes/other.toml", recipe("other", "")),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
    let (_d, p) = project(&files);
    let set = RecipeSet::load(&p).unwrap();
    let names = |rs: Vec<&ovm::recipe::Recipe>| rs.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    let order = names(set.topological_order());
    // Dependencies first; roots in name order, dependencies in the order listed: deterministic.
    assert_eq!(order, ["libc0", "libb", "liba", "app", "other"]);
    assert_eq!(order.len(), 5);
    assert_eq!(names(set.closure(&["liba"]).unwrap()), ["libc0", "liba"]);
    assert_eq!(names(set.select(&["app"]).unwrap()).len(), 4);
    assert_eq!(names(set.select(&["x86_64"]).unwrap()).len(), 5, "an architecture selects every recipe");
    assert_eq!(names(set.select::<&str>(&[]).unwrap()).len(), 5);
    let err = set.select(&["nope"]).unwrap_err().to_string();
    assert!(err.contains("no recipe named `nope`"), "{err}");
}

#[test]
fn the_projects_own_recipes_are_valid() {
    let project = Project::open(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    let set = RecipeSet::load(&project).unwrap();
    let zig = set.require("zig").unwrap();
    assert_eq!(zig.kind, Kind::Toolchain);
    assert!(zig.is_prebuilt());
    let source = &zig.sources[0];
    assert_eq!(source.primary.sha256, "6eb9d4d759b292c83810dbee2e9e8e3fbfbf01d864e6e9811bae711fd74e1c2f");
    assert_eq!(source.primary.pypi.as_ref().unwrap().package, "ziglang");
    // Unpacked as shipped: the toolchain signature reads the wheel's dist-info RECORD.
    assert_eq!(source.strip, 0);
}

/// A custom recipe with `[[build.step]]`s (`steps` is the TOML after `[build]`).
fn stepped(steps: &str) -> String {
    format!(
        "name = \"tc\"\nversion = \"1.0\"\nlicense = \"MIT\"\n\n[[source]]\nurl = \"https://example.org/tc-1.0.tar.gz\"\nsha256 = \"{SHA_A}\"\n\n[build]\n{steps}"
    )
}

#[test]
fn named_steps_load_in_order() {
    let text = stepped(
        "style = \"custom\"\n[[build.step]]\nname = \"all-gcc\"\nscript = \"make all-gcc\"\n[[build.step]]\nname = \"libgcc\"\nscript = \"make all-target-libgcc\"\n",
    );
    let (_d, p) = project(&[("recipes/toolchain/tc.toml", &text)]);
    let set = RecipeSet::load(&p).unwrap();
    let b = set.get("tc").unwrap().build.clone().unwrap();
    let names: Vec<&str> = b.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["all-gcc", "libgcc"]);
    assert_eq!(b.steps[1].script, "make all-target-libgcc");
}

#[test]
fn step_names_are_checked() {
    let bad_name = stepped("style = \"custom\"\n[[build.step]]\nname = \"All_gcc\"\nscript = \"x\"\n");
    assert_error(&[("recipes/tc.toml", &bad_name)], "recipes/tc.toml:12:8", "must match [a-z][a-z0-9-]*");
    let reserved = stepped("style = \"custom\"\n[[build.step]]\nname = \"package\"\nscript = \"x\"\n");
    assert_error(&[("recipes/tc.toml", &reserved)], "recipes/tc.toml:12:8", "reserved");
    let twice = stepped(
        "style = \"custom\"\n[[build.step]]\nname = \"a\"\nscript = \"x\"\n[[build.step]]\nname = \"a\"\nscript = \"y\"\n",
    );
    assert_error(&[("recipes/tc.toml", &twice)], "recipes/tc.toml:15:8", "defined twice");
}

#[test]
fn steps_need_the_custom_style_and_exclude_the_classic_snippets() {
    let not_custom = stepped("style = \"make\"\n[[build.step]]\nname = \"a\"\nscript = \"x\"\n");
    assert_error(&[("recipes/tc.toml", &not_custom)], "recipes/tc.toml:10:9", "needs style = \"custom\"");
    let both = stepped("style = \"custom\"\ncompile = \"make\"\n[[build.step]]\nname = \"a\"\nscript = \"x\"\n");
    assert_error(&[("recipes/tc.toml", &both)], "recipes/tc.toml:9:1", "not both");
}

#[test]
fn limits_are_read_and_bad_ones_named_at_their_position() {
    let (_dir, project) = project(&[("recipes/big.toml", &recipe("big", "[limits]\npids = 2048\nmemory = \"8G\"\n"))]);
    let set = RecipeSet::load(&project).unwrap();
    let limits = set.get("big").unwrap().limits;
    assert_eq!((limits.pids, limits.memory), (Some(2048), Some(8 << 30)));

    let zero = recipe("big", "[limits]\npids = 0\n");
    assert_error(
        &[("recipes/big.toml", &zero)],
        "recipes/big.toml:5:8",
        "limits.pids must be a number of processes above 0",
    );
    let unit = recipe("big", "[limits]\nmemory = \"8X\"\n");
    assert_error(&[("recipes/big.toml", &unit)], "recipes/big.toml:5:10", "limits.memory: \"8X\" is not a size");
    let typo = recipe("big", "[limits]\nprocs = 10\n");
    assert_error(&[("recipes/big.toml", &typo)], "recipes/big.toml:5:1", "unknown field `procs`");
}

/// Attack: a 250-character recipe name passed the character checks, then every file name ovm
/// derives from it (`states/ARCH/NAME.TASK.stamp.tmp`, …) exceeded the file system's 255-byte limit
/// and broke `ovm status`/`build` for the whole project. Names are refused at their position.
#[test]
fn overlong_package_and_step_names_are_refused() {
    let long = "a".repeat(250);
    let file = format!("recipes/{long}.toml");
    assert_error(&[(&file, &recipe(&long, ""))], &format!("{file}:1:8"), "250 characters long: at most 64");

    let dep = recipe("hello", &format!("depends = [\"{long}\"]"));
    assert_error(&[("recipes/hello.toml", &dep)], "recipes/hello.toml:4:12", "dependency is 250 characters long");

    let step = stepped(&format!("style = \"custom\"\n[[build.step]]\nname = \"{}\"\nscript = \"x\"\n", "s".repeat(65)));
    assert_error(&[("recipes/tc.toml", &step)], "recipes/tc.toml:12:8", "step name is 65 characters long: at most 64");

    // The limit itself is fine.
    let longest = "b".repeat(ovm::recipe::MAX_NAME_LEN);
    let (_d, p) = project(&[(&format!("recipes/{longest}.toml"), &recipe(&longest, ""))]);
    assert!(RecipeSet::load(&p).unwrap().get(&longest).is_some());
}

/// A recipe named `image` would share the image's stamp (`states/ARCH/image.pack`), its context-log
/// name and its `ovm status` line, and `ovm clean image` would forget both.
#[test]
fn a_package_named_like_the_image_is_refused() {
    assert_error(&[("recipes/image.toml", &recipe("image", ""))], "recipes/image.toml:1:8", "`image` is reserved");
}

/// A step named `running` used to validate, and its stamp `states/ARCH/tc.running` was the very
/// file that marks a task under way: clearing the marker deleted the stamp, so the package was
/// stale on every run. The name is refused at its position.
#[test]
fn a_step_named_like_the_running_marker_is_refused() {
    let running = stepped("style = \"custom\"\n[[build.step]]\nname = \"running\"\nscript = \"x\"\n");
    assert_error(&[("recipes/tc.toml", &running)], "recipes/tc.toml:12:8", "step name `running` is reserved");
}

/// `[build.arch.ARCH]` adds arguments and environment for one architecture; its key must be an
/// architecture, and what it holds is checked like `[build]`'s own fields.
#[test]
fn per_arch_build_settings_are_checked_at_their_position() {
    let autotools =
        |extra: &str| recipe("a", "").replace("style = \"make\"", &format!("style = \"autotools\"\n{extra}"));
    let ok = autotools(
        "configure_args = [\"--disable-nls\"]\n[build.arch.aarch64]\nconfigure_args = [\"--disable-asm\"]\nenv = { X = \"1\" }\n",
    );
    let (_d, p) = project(&[("recipes/a.toml", &ok)]);
    let set = RecipeSet::load(&p).unwrap();
    let build = set.get("a").unwrap().build.as_ref().unwrap();
    assert_eq!(build.configure_args_for(ovm::arch::Arch::Aarch64), ["--disable-nls", "--disable-asm"]);
    assert_eq!(build.configure_args_for(ovm::arch::Arch::X86_64), ["--disable-nls"]);
    assert_eq!(build.env_for(ovm::arch::Arch::Aarch64).get("X").map(String::as_str), Some("1"));

    let bad_arch = autotools("[build.arch.mips]\nmake_args = [\"V=1\"]\n");
    assert_error(&[("recipes/a.toml", &bad_arch)], "recipes/a.toml:11:13", "`mips` is not an architecture");
    let make_style = recipe("a", "")
        .replace("style = \"make\"", "style = \"make\"\n[build.arch.x86_64]\nconfigure_args = [\"--x\"]");
    assert_error(
        &[("recipes/a.toml", &make_style)],
        "recipes/a.toml:12:18",
        "configure_args is only used by style = \"autotools\"",
    );
    let unknown = autotools("[build.arch.x86_64]\nmake_args = [\"V=1\", \"X\"]\nfoo = 1\n");
    assert_error(&[("recipes/a.toml", &unknown)], "recipes/a.toml:13:1", "unknown field `foo`");
}

/// A `${NAME}` in `configure_args`/`make_args` is expanded by the step's shell; it must name a
/// variable the step has (the fixed environment or the recipe's `env`), never expand to nothing.
#[test]
fn argument_expansions_must_name_step_variables() {
    let with = |extra: &str| recipe("a", "").replace("style = \"make\"", &format!("style = \"autotools\"\n{extra}"));
    let ok = with("configure_args = [\"CC_FOR_BUILD=${HOSTCC}\", \"--with-x=${MYDIR}\"]\nenv = { MYDIR = \"/x\" }\n");
    let (_d, p) = project(&[("recipes/a.toml", &ok)]);
    assert!(RecipeSet::load(&p).is_ok());
    let typo = with("configure_args = [\"CC_FOR_BUILD=${HOSTC}\"]\n");
    assert_error(
        &[("recipes/a.toml", &typo)],
        "recipes/a.toml:11:18",
        "`${HOSTC}` is no variable of the step environment",
    );
    let malformed = with("make_args = [\"X=${1bad}\"]\n");
    assert_error(
        &[("recipes/a.toml", &malformed)],
        "recipes/a.toml:11:13",
        "make_args: `${1bad}` is not a `${NAME}` reference",
    );
    let arch_env = with("[build.arch.aarch64]\nmake_args = [\"X=${ONLY_ARM}\"]\nenv = { ONLY_ARM = \"1\" }\n");
    let (_d, p) = project(&[("recipes/a.toml", &arch_env)]);
    assert!(RecipeSet::load(&p).is_ok(), "an architecture's own env var is known to its arguments");
}

/// `[features.NAME]` (Yocto's PACKAGECONFIG): on by its default or by the project's `[features]`;
/// an enabled feature adds its dependencies and arguments, a disabled one its `_off` arguments, so
/// the loaded recipe is the resolved one.
#[test]
fn features_follow_their_default_and_the_projects_selection() {
    let with_features = recipe("a", "").replace("style = \"make\"", "style = \"autotools\"")
        + "\n[features.zlib]\ndefault = true\ndepends = [\"z\"]\nconfigure_args = [\"--with-zlib\"]\n\
           configure_args_off = [\"--without-zlib\"]\n\
           \n[features.ssl]\ndescription = \"TLS\"\nconfigure_args = [\"--with-ssl\"]\n";
    let z = recipe("z", "");
    let load = |config: &str| {
        let (d, p) =
            project(&[("recipes/a.toml", &with_features), ("recipes/z.toml", &z), ("config/ovm.toml", config)]);
        (d, RecipeSet::load(&p))
    };
    let (_d, set) = load("");
    let set = set.unwrap();
    let a = set.get("a").unwrap();
    assert_eq!(a.depends, ["z"]);
    assert_eq!(a.build.as_ref().unwrap().configure_args, ["--with-zlib"]);
    assert!(a.features["zlib"].enabled && !a.features["ssl"].enabled);
    assert_eq!(a.features["ssl"].description.as_deref(), Some("TLS"));

    let (_d, set) = load("[features]\na = [\"-zlib\", \"+ssl\"]\n");
    let set = set.unwrap();
    let a = set.get("a").unwrap();
    assert!(a.depends.is_empty(), "a disabled feature's dependency stayed: {:?}", a.depends);
    assert_eq!(a.build.as_ref().unwrap().configure_args, ["--with-ssl", "--without-zlib"]);

    for (config, want) in [
        (
            "[features]\na = [\"+tls\"]\n",
            "config/ovm.toml: [features] a: recipes/a.toml has no feature `tls` (it has: ssl, zlib)",
        ),
        (
            "[features]\na = [\"ssl\"]\n",
            "config/ovm.toml: [features] a: `ssl`: write +NAME to turn a feature on, -NAME to turn it off",
        ),
        ("[features]\na = [\"+ssl\", \"-ssl\"]\n", "config/ovm.toml: [features] a: feature `ssl` is selected twice"),
        ("[features]\nnosuch = [\"+x\"]\n", "config/ovm.toml: [features] nosuch: no recipe of that name"),
    ] {
        let (_d, set) = load(config);
        let err = set.err().unwrap_or_else(|| panic!("{config} was accepted")).to_string();
        assert_eq!(err, want);
    }
}

#[test]
fn the_image_selection_names_target_recipes_and_takes_their_dependencies() {
    let base = recipe("base", "");
    let app = recipe("app", "depends = [\"base\"]");
    let other = recipe("other", "");
    let make = recipe("make", "");
    let load = |config: &str| {
        let files = [
            ("recipes/base.toml", base.as_str()),
            ("recipes/app.toml", app.as_str()),
            ("recipes/other.toml", other.as_str()),
            ("recipes/tools/make.toml", make.as_str()),
            ("config/ovm.toml", config),
        ];
        let (dir, project) = project(&files);
        (dir, RecipeSet::load(&project))
    };
    let (_d, set) = load("[pack]\npackages = [\"app\"]\n");
    let set = set.expect("valid selection");
    let names = |v: Vec<&ovm::recipe::Recipe>| v.into_iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(set.image_packages(Some(&["app".to_string()])).unwrap()), ["base", "app"]);
    assert_eq!(names(set.image_packages(None).unwrap()), ["base", "app", "other"], "unset: every target recipe");

    for (config, want) in [
        (
            "[pack]\npackages = [\"ap\"]\n",
            "config/ovm.toml: [pack] packages: `ap`: no recipe of that name (did you mean app?)",
        ),
        (
            "[pack]\npackages = [\"make\"]\n",
            "config/ovm.toml: [pack] packages: `make`: a tools recipe; the image holds target packages (recipes/*.toml)",
        ),
    ] {
        let (_d, set) = load(config);
        let err = set.err().unwrap_or_else(|| panic!("{config} was accepted")).to_string();
        assert_eq!(err, want);
    }
}

#[test]
fn a_feature_is_checked_like_the_fields_it_mirrors() {
    let base = recipe("a", "").replace("style = \"make\"", "style = \"autotools\"");
    let bad_dep = base.clone() + "\n[features.x]\ndepends = [\"nosuch\"]\ndefault = true\n";
    assert_error(&[("recipes/a.toml", &bad_dep)], "recipes/a.toml:13:12", "unknown dependency `nosuch`");
    let make = recipe("a", "") + "\n[features.x]\nconfigure_args = [\"--x\"]\n";
    assert_error(
        &[("recipes/a.toml", &make)],
        "recipes/a.toml:13:18",
        "configure_args is only used by style = \"autotools\"",
    );
    let typo = base.clone() + "\n[features.x]\nmake_args = [\"CC=${HOSTC}\"]\n";
    assert_error(&[("recipes/a.toml", &typo)], "recipes/a.toml:13:13", "`${HOSTC}` is no variable");
    let name = base + "\n[features.X_y]\ndefault = true\n";
    assert_error(&[("recipes/a.toml", &name)], "recipes/a.toml:12:11", "feature name `X_y` must match");
}

/// `replaces`: the packages whose files this one may replace in the image. Each must be a recipe
/// of the same kind, never the package itself, and the replacing package is ordered after them
/// (here `aa` replaces `zz`, although `aa` sorts first).
#[test]
fn replaces_names_real_packages_and_orders_the_replacer_after_them() {
    let aa = recipe("aa", "replaces = [\"zz\"]\n");
    let (_d, p) = project(&[("recipes/aa.toml", &aa), ("recipes/zz.toml", &recipe("zz", ""))]);
    let set = RecipeSet::load(&p).unwrap();
    let order: Vec<&str> = set.topological_order().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(order, ["zz", "aa"]);
    assert_eq!(set.get("aa").unwrap().replaces, ["zz"]);

    assert_error(
        &[("recipes/aa.toml", &aa)],
        "recipes/aa.toml:4:13",
        "unknown replaced package `zz`: there is no recipes/zz.toml",
    );
    let itself = recipe("aa", "replaces = [\"aa\"]\n");
    assert_error(&[("recipes/aa.toml", &itself)], "recipes/aa.toml:4:13", "a package cannot replace itself");
    let to_tool = recipe("aa", "replaces = [\"tt\"]\n");
    assert_error(
        &[("recipes/aa.toml", &to_tool), ("recipes/tools/tt.toml", &recipe("tt", ""))],
        "recipes/aa.toml:4:13",
        "`tt` is a tools recipe; a target recipe may only replace target recipes",
    );
}

/// A kbuild recipe's kconfig file is its one `*.config` entry (what the default configure step
/// copies and `ovm menuconfig` edits); two would leave the choice to a guess, so they are refused
/// at the second. Other styles may list any files, and have no kconfig file.
#[test]
fn a_kbuild_recipe_has_at_most_one_kconfig_file() {
    let two = recipe("k", "files = [\"a.config\", \"b.config\"]").replace("style = \"make\"", "style = \"kbuild\"");
    assert_error(
        &[("recipes/k.toml", &two), ("config/a.config", ""), ("config/b.config", "")],
        "recipes/k.toml:4:22",
        "a kbuild recipe lists one kconfig file (`*.config`), not two: `a.config` and `b.config`",
    );

    let one = recipe("k", "files = [\"notes.txt\", \"k.config\"]").replace("style = \"make\"", "style = \"kbuild\"");
    let make = recipe("m", "files = [\"a.config\", \"b.config\"]");
    let files = [
        ("recipes/k.toml", one.as_str()),
        ("recipes/m.toml", make.as_str()),
        ("config/notes.txt", ""),
        ("config/k.config", ""),
        ("config/a.config", ""),
        ("config/b.config", ""),
    ];
    let (_dir, p) = project(&files);
    let set = RecipeSet::load(&p).unwrap();
    assert_eq!(set.require("k").unwrap().kconfig_file().map(|f| f.name.as_str()), Some("k.config"));
    assert_eq!(set.require("m").unwrap().kconfig_file(), None, "a make recipe has no kconfig file");
}

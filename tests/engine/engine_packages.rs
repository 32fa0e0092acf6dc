//! The packages an image holds (`[pack] packages` and their dependencies), and the repository's
//! real packages beyond busybox built in the strict sandbox: static, for the right machine, free of
//! host paths, and working. zlib and lz4 for both architectures (an lz4 round trip, and a program
//! that finds zlib through pkg-config and links it); popt, util-linux and e2fsprogs for x86_64
//! (e2fsprogs on util-linux's libblkid and libuuid, found through pkg-config: an ext4 image made,
//! checked, labelled and identified by blkid).

use std::path::Path;
use std::process::Command;

use crate::build_support::{self, repo_root, require_tool};
use crate::engine_fixture::{bye, edit, file, project, write_greet_set, Pkg};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let t = build_support::text(&out);
    assert!(out.status.success(), "{cmd:?} failed ({:?}):\n{t}", out.status);
    t
}

fn manifest_has(p: &crate::build_support::TestProject, path: &str) -> bool {
    p.read("output/x86_64/manifest.txt").lines().any(|l| l.starts_with(&format!("{path}\t")))
}

#[test]
fn the_image_holds_the_selected_packages_and_what_they_depend_on() {
    let p = project();
    write_greet_set(&p, "image-selection");
    bye().write(&p, "image-selection");
    edit(&p, "config/ovm.toml", "[pack]\n", "[pack]\npackages = [\"hello\"]\n");
    p.ok(&["build", "x86_64"]);
    assert!(p.path().join("staging/x86_64/libgreet").is_dir(), "hello's dependency was not built");
    assert!(!p.path().join("staging/x86_64/bye").exists(), "a package outside the image was built");
    assert!(manifest_has(&p, "/usr/bin/hello"));
    let status = build_support::text(&p.run(&["status", "x86_64"]));
    assert!(!status.lines().any(|l| l.split_whitespace().nth(1) == Some("bye")), "{status}");

    // Built on its own, it is staged but stays out of the image: `ovm build` and `ovm pack` alike.
    p.ok(&["build", "x86_64", "bye"]);
    assert!(p.path().join("staging/x86_64/bye/runtime/usr/bin/bye").is_file());
    p.ok(&["build", "x86_64"]);
    assert!(!manifest_has(&p, "/usr/bin/bye"), "{}", p.read("output/x86_64/manifest.txt"));
    p.ok(&["pack", "x86_64"]);
    assert!(!manifest_has(&p, "/usr/bin/bye") && manifest_has(&p, "/usr/bin/hello"));

    // Selected, it goes in.
    edit(&p, "config/ovm.toml", "packages = [\"hello\"]", "packages = [\"hello\", \"bye\"]");
    p.ok(&["build", "x86_64"]);
    assert!(manifest_has(&p, "/usr/bin/bye"));
}

/// A program that compresses and restores its input with zlib, built against the sysroot's zlib
/// with the flags pkg-config gives.
fn zround() -> Pkg {
    let c = "#include <stdio.h>\n#include <string.h>\n#include <zlib.h>\n\
             int main(void) {\n\
             \tconst char *in = \"ovm zlib round trip ovm zlib round trip ovm zlib round trip\";\n\
             \tunsigned char z[256], back[256]; uLongf zn = sizeof z, bn = sizeof back;\n\
             \tif (compress(z, &zn, (const Bytef *)in, strlen(in) + 1) != Z_OK) return 1;\n\
             \tif (uncompress(back, &bn, z, zn) != Z_OK || strcmp((char *)back, in)) return 2;\n\
             \tprintf(\"zlib %s: %lu -> %lu bytes and back\\n\", zlibVersion(), (unsigned long)(strlen(in) + 1), (unsigned long)zn);\n\
             \treturn 0;\n}\n";
    let build = "style = \"custom\"\ncompile = '''\n\
                 $CC $CFLAGS $(pkg-config --cflags zlib) -static -o zround /ovm/src/zround.c $LDFLAGS $(pkg-config --libs zlib)\n\
                 '''\ninstall = '''\nmkdir -p \"$DESTDIR/usr/bin\"\ncp zround \"$DESTDIR/usr/bin/zround\"\n'''";
    Pkg::new("zround", vec![file("zround.c", c)], build).depends(&["zlib"]).native(&["pkgconf"])
}

/// The repository's own recipes of these packages, into the test project.
fn copy_recipes(p: &crate::build_support::TestProject, names: &[&str]) {
    for name in names {
        std::fs::copy(repo_root().join(format!("recipes/{name}.toml")), p.path().join(format!("recipes/{name}.toml")))
            .expect("copy the repository's recipe");
    }
}

/// Asserts every ELF program under `staging` is static for `machine` (as `file` names it) and no
/// file there holds the project's path; returns the programs.
fn static_and_clean(p: &crate::build_support::TestProject, staging: &Path, machine: &str) -> Vec<std::path::PathBuf> {
    let programs = executables(staging);
    for exe in &programs {
        let info = run(Command::new("file").arg("-b").arg(exe));
        assert!(info.contains(machine) && info.contains("statically linked"), "{}: {info}", exe.display());
    }
    let project_path = p.path().to_string_lossy().into_owned();
    for f in walk(staging) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&bytes).contains(&project_path), "{} holds the project's path", f.display());
    }
    programs
}

/// Every regular file under `dir` that is an ELF executable.
fn executables(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        if bytes.starts_with(b"\x7fELF") && bytes.get(16) == Some(&2) {
            out.push(entry);
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let t = e.file_type().expect("file type");
        if t.is_dir() {
            out.extend(walk(&e.path()));
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn zlib_and_lz4_build_static_for_both_arches_and_work() {
    require_tool("qemu-aarch64");
    require_tool("file");
    let p = project();
    copy_recipes(&p, &["zlib", "lz4"]);
    zround().write(&p, "real-set");
    let input = p.path().join("lz4-input");
    std::fs::write(&input, "ovm ".repeat(10_000)).unwrap();

    for (arch, machine, runner) in [("x86_64", "x86-64", None), ("aarch64", "ARM aarch64", Some("qemu-aarch64"))] {
        p.ok(&["build", arch, "zlib", "lz4", "zround"]);
        let staging = p.path().join("staging").join(arch);
        for f in ["zlib/dev/usr/lib/libz.a", "zlib/dev/usr/include/zlib.h", "zlib/dev/usr/lib/pkgconfig/zlib.pc"] {
            assert!(staging.join(f).is_file(), "{arch}: {f} missing");
        }
        for f in ["lz4/dev/usr/lib/liblz4.a", "lz4/dev/usr/include/lz4.h", "lz4/dev/usr/lib/pkgconfig/liblz4.pc"] {
            assert!(staging.join(f).is_file(), "{arch}: {f} missing");
        }
        let programs = static_and_clean(&p, &staging, machine);
        assert!(programs.len() >= 2, "{arch}: expected lz4 and zround, found {programs:?}");

        let exe = |rel: &str| -> Command {
            let path = staging.join(rel);
            match runner {
                Some(r) => {
                    let mut c = Command::new(r);
                    c.arg(path);
                    c
                }
                None => Command::new(path),
            }
        };
        let said = run(&mut exe("zround/runtime/usr/bin/zround"));
        assert!(said.starts_with("zlib 1.2.13: 60 -> "), "{arch}: {said}");
        let packed = p.path().join(format!("lz4-{arch}.lz4"));
        let back = p.path().join(format!("lz4-{arch}.back"));
        run(exe("lz4/runtime/usr/bin/lz4").arg("-q").arg("-f").arg(&input).arg(&packed));
        run(exe("lz4/runtime/usr/bin/lz4").arg("-d").arg("-q").arg("-f").arg(&packed).arg(&back));
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&input).unwrap(), "{arch}: lz4 round trip");
        assert!(std::fs::metadata(&packed).unwrap().len() < 1000, "{arch}: 40 KB of repeats did not compress");
    }
}

#[test]
fn util_linux_and_e2fsprogs_build_static_and_make_check_and_identify_an_ext4_image() {
    require_tool("file");
    let p = project();
    // busybox's recipe too: util-linux names it in `replaces` (it is not built here).
    copy_recipes(&p, &["popt", "util-linux", "e2fsprogs", "busybox"]);
    // e2fsprogs must really configure here (its log is read below): an environment variable no
    // other build has keeps the run's shared-state cache, which the e2e test may have filled with
    // the very same e2fsprogs, from answering for it.
    let nonce = format!("{}.{}", std::process::id(), std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_nanos()));
    edit(&p, "recipes/e2fsprogs.toml", "[build]\n", &format!("[build]\nenv = {{ OVM_TEST_NONCE = \"{nonce}\" }}\n"));
    p.ok(&["build", "x86_64", "popt", "util-linux", "e2fsprogs"]);
    let staging = p.path().join("staging/x86_64");
    for f in ["popt/dev/usr/lib/libpopt.a", "popt/dev/usr/lib/pkgconfig/popt.pc", "popt/dev/usr/include/popt.h"] {
        assert!(staging.join(f).is_file(), "{f} missing");
    }
    for lib in ["blkid", "uuid", "mount"] {
        assert!(staging.join(format!("util-linux/dev/usr/lib/lib{lib}.a")).is_file(), "lib{lib}.a missing");
        assert!(staging.join(format!("util-linux/dev/usr/lib/pkgconfig/{lib}.pc")).is_file(), "{lib}.pc missing");
    }
    let programs = static_and_clean(&p, &staging, "x86-64");
    for want in [
        "util-linux/runtime/bin/mount",
        "util-linux/runtime/sbin/blkid",
        "util-linux/runtime/sbin/switch_root",
        "e2fsprogs/runtime/sbin/e2fsck",
    ] {
        assert!(programs.iter().any(|e| e.ends_with(want)), "{want} is not among the programs: {programs:?}");
    }
    // e2fsck and mke2fs are one program (recipes/e2fsprogs.toml): mke2fs is a link to it, which
    // the run below reaches by that name.
    let link = std::fs::read_link(staging.join("e2fsprogs/runtime/sbin/mke2fs")).expect("sbin/mke2fs is a link");
    assert_eq!(link, Path::new("e2fsck"));
    // util-linux's libraries, found through pkg-config, not e2fsprogs' private copies.
    let configure = p.read("logs/x86_64/e2fsprogs/configure.log");
    for said in ["Disabling private blkid library", "Disabling private uuid library"] {
        assert!(configure.contains(said), "e2fsprogs' configure did not say `{said}`");
    }

    let image = p.path().join("ext4.img");
    std::fs::File::create(&image).and_then(|f| f.set_len(8 << 20)).expect("image file");
    let tool = |rel: &str| Command::new(staging.join(rel));
    run(tool("e2fsprogs/runtime/sbin/mke2fs").args(["-q", "-F", "-t", "ext4", "-L", "ovmtest"]).arg(&image));
    let fsck = run(tool("e2fsprogs/runtime/sbin/e2fsck").arg("-fn").arg(&image));
    assert!(fsck.contains("11/2048 files"), "a fresh filesystem holds 11 inodes: {fsck}");
    let blkid = run(tool("util-linux/runtime/sbin/blkid").arg(&image));
    assert!(blkid.contains("TYPE=\"ext4\"") && blkid.contains("LABEL=\"ovmtest\""), "{blkid}");
}

//! Two kinds of tests: the wrappers' shell logic against a fake `zig` that records its arguments
//! (fast, no toolchain needed), and the real zig wheel compiling, archiving and stripping for both
//! arches (needs `scripts/setup.sh`, which unpacks the pinned wheel into `.cache/assets/`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::*;

// ---------- a fake wheel: the wrappers' shell logic ----------

/// A wheel-shaped directory whose `ziglang/zig` is a shell script printing one argument per line,
/// with the wrappers written from `wrapper_script`.
fn fake_toolchain() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("ziglang")).unwrap();
    fs::create_dir_all(dir.path().join("bin")).unwrap();
    // Like zig objcopy: the last argument is the output, which it creates.
    let fake = "#!/bin/sh\nfor a; do printf '%s\\n' \"$a\"; done\n\
                if [ \"$1\" = objcopy ]; then for last; do :; done; printf 'stripped\\n' >\"$last\"; fi\n";
    write_executable(&dir.path().join(ZIG_IN_WHEEL), fake.as_bytes()).unwrap();
    for arch in Arch::ALL {
        for tool in Tool::ALL {
            let path = dir.path().join("bin").join(tool_name(arch, tool));
            write_executable(&path, wrapper_script(arch, tool, "0.0-test", ZIG_IN_WHEEL).as_bytes()).unwrap();
        }
    }
    dir
}

fn run(program: &Path, args: &[&str], cwd: &Path) -> Output {
    output(Command::new(program).args(args).current_dir(cwd))
}

/// `cmd.output()`, retried on ETXTBSY: a script written a moment ago can still be open for writing
/// in a child another test thread is forking, and exec then fails with "Text file busy".
fn output(cmd: &mut Command) -> Output {
    let mut attempts = 0;
    loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result.unwrap(),
        }
    }
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn cc_fixes_the_target_and_drops_only_the_lld_incompatible_flags() {
    let tc = fake_toolchain();
    let cc = tc.path().join("bin/aarch64-linux-musl-cc");
    let out = run(
        &cc,
        &[
            "-Wl,--warn-common",
            "-O2",
            "-DMSG=\"a b\"",
            "-Wl,-Map,busybox.map",
            "",
            "-Wl,--verbose",
            "-Wl,--gc-sections",
        ],
        tc.path(),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        lines(&out),
        ["cc", "-target", "aarch64-linux-musl", "-Wl,--build-id=sha1", "-O2", "-DMSG=\"a b\"", "", "-Wl,--gc-sections"]
    );
}

/// A link gets a GNU build-id (the package step files debug info under it); a compile or a query
/// of the compiler gets no linker flag, which clang would call unused.
#[test]
fn cc_asks_for_a_build_id_only_when_it_links() {
    let tc = fake_toolchain();
    let cc = tc.path().join("bin/x86_64-linux-musl-cc");
    let link = run(&cc, &["-o", "x", "x.o"], tc.path());
    assert_eq!(lines(&link), ["cc", "-target", "x86_64-linux-musl", "-Wl,--build-id=sha1", "-o", "x", "x.o"]);
    for args in [&["-c", "x.c"][..], &["-E", "x.c"], &["--version"], &["-print-file-name=libc.a"]] {
        let out = run(&cc, args, tc.path());
        assert!(!lines(&out).iter().any(|l| l.contains("build-id")), "{args:?}: {:?}", lines(&out));
    }
}

#[test]
fn cxx_and_gcc_are_the_same_driver_for_their_languages() {
    let tc = fake_toolchain();
    let out = run(&tc.path().join("bin/x86_64-linux-musl-c++"), &["-c", "x.cc"], tc.path());
    assert_eq!(lines(&out), ["c++", "-target", "x86_64-linux-musl", "-c", "x.cc"]);
    let out = run(&tc.path().join("bin/x86_64-linux-musl-gcc"), &["-v"], tc.path());
    assert_eq!(lines(&out), ["cc", "-target", "x86_64-linux-musl", "-v"]);
}

#[test]
fn binutils_wrappers_pass_arguments_through() {
    let tc = fake_toolchain();
    for (tool, sub) in [("ar", "ar"), ("ranlib", "ranlib"), ("objcopy", "objcopy"), ("ld", "ld.lld")] {
        let out = run(&tc.path().join(format!("bin/x86_64-linux-musl-{tool}")), &["x y", "z"], tc.path());
        assert!(out.status.success(), "{tool}: {out:?}");
        assert_eq!(lines(&out)[..3], [sub, "x y", "z"], "{tool}");
    }
}

#[test]
fn strip_works_in_place_and_keeps_hard_links_and_mode() {
    let tc = fake_toolchain();
    let f = tc.path().join("prog");
    fs::write(&f, "unstripped\n").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o751)).unwrap();
    fs::hard_link(&f, tc.path().join("link")).unwrap();
    let out = run(&tc.path().join("bin/x86_64-linux-musl-strip"), &["prog"], tc.path());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(lines(&out)[..2], ["objcopy", "--strip-all"]);
    assert_eq!(fs::read_to_string(tc.path().join("link")).unwrap(), "stripped\n");
    assert_eq!(fs::metadata(&f).unwrap().permissions().mode() & 0o7777, 0o751);
    let leftovers: Vec<_> = fs::read_dir(tc.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ovm-strip"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn strip_accepts_busybox_final_strip_and_maps_debug_options() {
    let tc = fake_toolchain();
    let strip = tc.path().join("bin/aarch64-linux-musl-strip");
    // Exactly what busybox's Makefile runs for the final binary.
    let out = run(
        &strip,
        &["-s", "--remove-section=.note", "--remove-section=.comment", "busybox_unstripped", "-o", "busybox"],
        tc.path(),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(lines(&out), ["objcopy", "--strip-all", "busybox_unstripped", "busybox"]);
    for opt in ["-g", "-S", "--strip-debug", "--strip-unneeded"] {
        fs::write(tc.path().join("x.o"), "obj\n").unwrap();
        let out = run(&strip, &[opt, "x.o"], tc.path());
        assert_eq!(lines(&out)[..2], ["objcopy", "--strip-debug"], "{opt}");
    }
}

#[test]
fn strip_refuses_what_zig_objcopy_cannot_do() {
    let tc = fake_toolchain();
    let strip = tc.path().join("bin/x86_64-linux-musl-strip");
    for (args, why) in [
        (&["-R", ".text", "f"][..], "cannot remove section .text"),
        (&["-K", "main", "f"][..], "unsupported option -K"),
        (&["-o", "out", "a", "b"][..], "exactly one input"),
        (&[][..], "no input files"),
    ] {
        let out = run(&strip, args, tc.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(why) && err.contains("x86_64-linux-musl-strip"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: zig was run: {out:?}");
    }
}

#[test]
fn nm_fails_as_not_found_with_the_reason() {
    let tc = fake_toolchain();
    let out = run(&tc.path().join("bin/aarch64-linux-musl-nm"), &["x.o"], tc.path());
    assert_eq!(out.status.code(), Some(127));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("aarch64-linux-musl-nm") && err.contains("no nm"), "{err}");
}

#[test]
fn wrappers_find_zig_relative_to_themselves_after_a_move() {
    let tc = fake_toolchain();
    let moved = tempfile::tempdir().unwrap();
    let new_root = moved.path().join("elsewhere");
    fs::rename(tc.path(), &new_root).unwrap();
    // Through PATH (how builds call it), by a relative path, and by an absolute path.
    let via_path = output(
        Command::new("x86_64-linux-musl-cc").arg("-c").env("PATH", new_root.join("bin")).current_dir(moved.path()),
    );
    let relative = run(Path::new("./x86_64-linux-musl-cc"), &["-c"], &new_root.join("bin"));
    let absolute = run(&new_root.join("bin/x86_64-linux-musl-cc"), &["-c"], Path::new("/"));
    for out in [via_path, relative, absolute] {
        assert!(out.status.success(), "{out:?}");
        assert_eq!(lines(&out)[0], "cc");
    }
}

#[test]
fn wrapper_text_has_no_absolute_path_and_names_the_version() {
    for arch in Arch::ALL {
        for tool in Tool::ALL {
            let text = wrapper_script(arch, tool, "9.9.9", ZIG_IN_WHEEL);
            assert!(text.starts_with("#!/bin/sh\n"), "{tool:?}");
            assert!(text.contains("zig 9.9.9") && text.contains(&tool_name(arch, tool)), "{tool:?}");
            assert!(!text.contains("/ovm/") && !text.contains("/usr/"), "{tool:?} hard-codes a path");
        }
    }
}

// ---------- open() and signature() on a wheel-shaped directory ----------

/// How the wheel was unpacked: as is (unzip) or with its top directory stripped (recipe strip = 1).
#[derive(Clone, Copy, Debug)]
enum Layout {
    Wheel,
    Stripped,
}

/// A wheel directory whose `ziglang/zig` is only an ELF header for `machine` (not runnable).
fn fake_wheel(machine: u16, recorded_size: Option<u64>) -> tempfile::TempDir {
    fake_wheel_in(Layout::Wheel, machine, recorded_size)
}

fn fake_wheel_in(layout: Layout, machine: u16, recorded_size: Option<u64>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (zig, info) = match layout {
        Layout::Wheel => (dir.path().join(ZIG_IN_WHEEL), dir.path().join("ziglang-0.14.1.dist-info")),
        Layout::Stripped => (dir.path().join(ZIG_STRIPPED), dir.path().to_path_buf()),
    };
    fs::create_dir_all(zig.parent().unwrap()).unwrap();
    fs::create_dir_all(&info).unwrap();
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[18..20].copy_from_slice(&machine.to_le_bytes());
    fs::write(&zig, &elf).unwrap();
    fs::write(info.join("METADATA"), "Metadata-Version: 2.4\nName: ziglang\nVersion: 0.14.1\n").unwrap();
    let size = recorded_size.unwrap_or(elf.len() as u64);
    fs::write(info.join("RECORD"), format!("ziglang/LICENSE,sha256=abc,10\nziglang/zig,sha256=xyz,{size}\n")).unwrap();
    dir
}

fn host_machine() -> u16 {
    match std::env::consts::ARCH {
        "x86_64" => 62,
        "aarch64" => 183,
        other => panic!("tests run on x86_64 or aarch64, not {other}"),
    }
}

#[test]
fn open_reads_the_version_and_install_writes_every_wrapper_in_both_layouts() {
    for (layout, zig_rel) in [(Layout::Wheel, "ziglang/zig"), (Layout::Stripped, "zig")] {
        let wheel = fake_wheel_in(layout, host_machine(), None);
        let tc = ZigToolchain::open(wheel.path()).unwrap();
        assert_eq!(tc.version(), "0.14.1", "{layout:?}");
        assert_eq!(tc.zig(), wheel.path().join(zig_rel), "{layout:?}");
        let written = tc.install_wrappers().unwrap();
        assert_eq!(written.len(), Arch::ALL.len() * Tool::ALL.len());
        for path in &written {
            let mode = fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755, "{}", path.display());
            let text = fs::read_to_string(path).unwrap();
            assert!(text.contains(&format!("zig=$bin/../{zig_rel}\n")), "{layout:?}: {}", path.display());
        }
        assert_eq!(fs::metadata(tc.zig()).unwrap().permissions().mode() & 0o111, 0o111, "zig made executable");
    }
}

#[test]
fn open_rejects_a_truncated_zig_a_foreign_zig_and_a_non_wheel() {
    let wheel = fake_wheel(host_machine(), Some(164_675_136));
    let err = ZigToolchain::open(wheel.path()).unwrap_err();
    assert!(matches!(err, ToolchainError::ZigSize { expected: 164_675_136, actual: 64, .. }), "{err}");

    let other = if host_machine() == 62 { 183 } else { 62 };
    let wheel = fake_wheel(other, None);
    let err = ZigToolchain::open(wheel.path()).unwrap_err().to_string();
    assert!(err.contains("but this host is"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = ZigToolchain::open(empty.path()).unwrap_err().to_string();
    assert!(err.contains("not an unpacked ziglang wheel"), "{err}");
}

#[test]
fn signature_is_stable_and_follows_wrappers_and_record() {
    let wheel = fake_wheel(host_machine(), None);
    let tc = ZigToolchain::open(wheel.path()).unwrap();
    let missing = tc.signature().unwrap_err().to_string();
    assert!(missing.contains("install the toolchain's wrappers"), "{missing}");

    tc.install_wrappers().unwrap();
    let first = tc.signature().unwrap();
    assert_eq!(first.len(), 64);
    assert_eq!(first, tc.signature().unwrap());

    let cc = tc.tool_path(Arch::Aarch64, Tool::Cc);
    let original = fs::read(&cc).unwrap();
    fs::write(&cc, [original.as_slice(), b"# edited\n"].concat()).unwrap();
    let edited = tc.signature().unwrap();
    assert_ne!(first, edited, "an edited wrapper must change the signature");
    tc.install_wrappers().unwrap();
    assert_eq!(first, tc.signature().unwrap(), "reinstalling restores the signature");

    let record = wheel.path().join("ziglang-0.14.1.dist-info/RECORD");
    let text = fs::read_to_string(&record).unwrap().replace("sha256=abc", "sha256=abd");
    fs::write(&record, text).unwrap();
    assert_ne!(first, tc.signature().unwrap(), "another wheel content must change the signature");
}

#[test]
fn recorded_size_matches_the_path_field_exactly() {
    let record = "ziglang/zig.exe,sha256=a,1\nziglang/zig,sha256=b,42\nziglang/zigx,sha256=c,3\n";
    assert_eq!(recorded_size(record, "ziglang/zig"), Some(42));
    assert_eq!(recorded_size(record, "ziglang/zag"), None);
}

// ---------- the real zig wheel ----------

/// The pinned wheel unpacked by scripts/setup.sh, in a fresh directory that links to it, so the
/// wrappers are installed in a temp dir (never into the shared asset) — which also shows that zig
/// works through symlinks, in either layout.
fn real_toolchain(layout: Layout) -> (tempfile::TempDir, ZigToolchain, PathBuf) {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/assets");
    let wheel = assets.join("ziglang-0.14.1");
    assert!(
        wheel.join(ZIG_IN_WHEEL).is_file(),
        "{} missing: run scripts/setup.sh (it fetches and unpacks the pinned ziglang wheel)",
        wheel.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let links: &[(&str, &str)] = match layout {
        Layout::Wheel => &[("ziglang", "ziglang"), ("ziglang-0.14.1.dist-info", "ziglang-0.14.1.dist-info")],
        Layout::Stripped => &[
            ("ziglang/zig", "zig"),
            ("ziglang/lib", "lib"),
            ("ziglang-0.14.1.dist-info/METADATA", "METADATA"),
            ("ziglang-0.14.1.dist-info/RECORD", "RECORD"),
        ],
    };
    for (from, to) in links {
        std::os::unix::fs::symlink(wheel.join(from), dir.path().join(to)).unwrap();
    }
    let tc = ZigToolchain::open(dir.path()).unwrap();
    tc.install_wrappers().unwrap();
    // Shared across runs: musl is compiled once per arch (~25 s) and then reused.
    let cache = assets.join("zig-cache");
    (dir, tc, cache)
}

fn tool(tc: &ZigToolchain, cache: &Path, arch: Arch, t: Tool, args: &[&str], cwd: &Path) -> Output {
    let out =
        output(Command::new(tc.tool_path(arch, t)).args(args).current_dir(cwd).env("ZIG_GLOBAL_CACHE_DIR", cache));
    assert!(out.status.success(), "{} {args:?} failed: {}", tool_name(arch, t), String::from_utf8_lossy(&out.stderr));
    out
}

fn file_of(path: &Path) -> String {
    let out = Command::new("file").arg("-b").arg(path).output().expect("`file` missing: run scripts/setup.sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn elf_machine(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86-64",
        Arch::Aarch64 => "ARM aarch64",
    }
}

#[test]
fn real_zig_builds_static_musl_executables_for_each_arch() {
    let (_dir, tc, cache) = real_toolchain(Layout::Wheel);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    fs::write(w.join("hello.c"), "#include <stdio.h>\nint main(void){puts(\"hello from musl\");return 0;}\n").unwrap();
    fs::write(w.join("greet.c"), "int greet(void){return 42;}\n").unwrap();
    fs::write(w.join("hello.cc"), "#include <string>\nstd::string s(){return \"x\";}\n").unwrap();
    for arch in Arch::ALL {
        let a = arch.name();
        let exe = format!("hello-{a}");
        // Link flags busybox passes must not break the link.
        // -g: zig strips by default without it, and the strip below needs something to remove.
        tool(&tc, &cache, arch, Tool::Cc, &["-g", "-Os", "-static", "-Wl,--warn-common", "hello.c", "-o", &exe], w);
        let desc = file_of(&w.join(&exe));
        assert!(desc.contains("ELF 64-bit") && desc.contains(elf_machine(arch)), "{a}: {desc}");
        assert!(desc.contains("statically linked") && !desc.contains("interpreter"), "{a}: {desc}");
        assert!(desc.contains("not stripped"), "{a}: {desc}");

        let stripped = format!("hello-{a}-s");
        fs::copy(w.join(&exe), w.join(&stripped)).unwrap();
        tool(&tc, &cache, arch, Tool::Strip, &[&stripped], w);
        let desc = file_of(&w.join(&stripped));
        assert!(desc.contains(", stripped") && desc.contains(elf_machine(arch)), "{a}: {desc}");
        assert!(fs::metadata(w.join(&stripped)).unwrap().len() < fs::metadata(w.join(&exe)).unwrap().len());

        if Arch::host() == Some(arch) {
            for bin in [&exe, &stripped] {
                let out = output(&mut Command::new(w.join(bin)));
                assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from musl\n", "{bin}");
            }
        }

        // Objects, archives and a relocatable link: what kbuild and libtool do with the rest.
        let (obj, lib, rel) = (format!("greet-{a}.o"), format!("libgreet-{a}.a"), format!("both-{a}.o"));
        tool(&tc, &cache, arch, Tool::Gcc, &["-c", "greet.c", "-o", &obj], w);
        tool(&tc, &cache, arch, Tool::Ar, &["rc", &lib, &obj], w);
        tool(&tc, &cache, arch, Tool::Ranlib, &[&lib], w);
        let members = tool(&tc, &cache, arch, Tool::Ar, &["t", &lib], w);
        assert_eq!(String::from_utf8_lossy(&members.stdout).trim(), obj);
        let hello_o = format!("hello-{a}.o");
        tool(&tc, &cache, arch, Tool::Cc, &["-c", "hello.c", "-o", &hello_o], w);
        tool(&tc, &cache, arch, Tool::Ld, &["-r", &hello_o, &obj, "-o", &rel], w);
        let desc = file_of(&w.join(&rel));
        assert!(desc.contains("relocatable") && desc.contains(elf_machine(arch)), "{a}: {desc}");
        let cxx_o = format!("hello-cc-{a}.o");
        tool(&tc, &cache, arch, Tool::Cxx, &["-c", "hello.cc", "-o", &cxx_o], w);
        let desc = file_of(&w.join(&cxx_o));
        assert!(desc.contains("relocatable") && desc.contains(elf_machine(arch)), "{a}: {desc}");
        let raw = format!("greet-{a}.bin");
        tool(&tc, &cache, arch, Tool::Objcopy, &["-O", "binary", "--only-section=.text", &obj, &raw], w);
        assert!(fs::metadata(w.join(&raw)).unwrap().len() > 0);
    }
    let sig = tc.signature().unwrap();
    assert_eq!(sig.len(), 64);
}

#[test]
fn real_zig_works_with_the_top_directory_stripped() {
    // The layout the zig recipe produces (strip = 1): zig and lib/ directly under the root.
    let (_dir, tc, cache) = real_toolchain(Layout::Stripped);
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("t.c"), "int main(void){return 0;}\n").unwrap();
    for arch in Arch::ALL {
        let exe = format!("t-{}", arch.name());
        // -Os like the test above: zig builds musl once per optimisation mode, so sharing it
        // keeps this test from paying for another musl build on a fresh cache.
        tool(&tc, &cache, arch, Tool::Cc, &["-Os", "t.c", "-o", &exe], work.path());
        let desc = file_of(&work.path().join(&exe));
        assert!(desc.contains(elf_machine(arch)) && desc.contains("statically linked"), "{desc}");
    }
}

//! How `ovm toolchain ARCH` drives the engine, with stand-in parts (the real ones take ~30 min per
//! target: that is the slow tier, scripts/slow-gcc.sh). Fake `binutils`, `gcc` and `linux-headers`
//! recipes with the real ones' step names write small files where the real ones install theirs, so
//! these tests run in seconds on every CI run and show:
//!
//! * each `[[build.step]]` is a task of the `cross-ARCH` domain, with `$TARGET` of that arch;
//! * a failing gcc step stops with `await` on that step, and the rerun after the fix does not run a
//!   single binutils task;
//! * `toolchain/ARCH/` is the union of the three parts, remade only when one changed;
//! * `--sdk` writes the same bytes twice, with hard links kept;
//! * `ovm build --toolchain gcc` builds the host's and the target's toolchain first, compiles the
//!   build tools with the host's only, and binds both for the target's packages (`$HOSTCC`).

use crate::build_support;
use crate::engine_fixture;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use build_support::{text, TestProject};
use engine_fixture::{file, steps, toolchain_part, Pkg};

/// The three parts; `gcc_all_gcc` is the script of gcc's all-gcc step.
pub(crate) fn write_parts(p: &TestProject, salt: &str, gcc_all_gcc: &str) {
    toolchain_part(
        "binutils",
        steps(&[
            ("configure", "echo \"$TARGET\" > target"),
            ("compile", "cp target as.out"),
            (
                "install",
                "mkdir -p /ovm/dest/bin \"/ovm/dest/$TARGET/bin\"\n\
                 printf '#!/bin/sh\\necho as\\n' > \"/ovm/dest/bin/$TARGET-as\"\n\
                 chmod 755 \"/ovm/dest/bin/$TARGET-as\"\n\
                 cp \"/ovm/dest/bin/$TARGET-as\" \"/ovm/dest/$TARGET/bin/as\"",
            ),
        ]),
    )
    .write(p, salt);
    toolchain_part(
        "gcc",
        steps(&[
            ("prepare", "test -x \"/ovm/sysroot/bin/$TARGET-as\""),
            ("musl-headers", "mkdir -p sysroot/usr/include && echo '/* musl */' > sysroot/usr/include/stdio.h"),
            ("configure", "echo configured > config.status"),
            ("all-gcc", gcc_all_gcc),
            ("libgcc", "echo libgcc > libgcc.a"),
            ("musl", "echo libc > libc.a"),
            ("gcc", "test -f libgcc.a"),
            (
                "install",
                "mkdir -p /ovm/dest/bin \"/ovm/dest/$TARGET/sys-root/usr/include\"\n\
                 cp cc1 \"/ovm/dest/bin/$TARGET-gcc\"\n\
                 ln \"/ovm/dest/bin/$TARGET-gcc\" \"/ovm/dest/bin/$TARGET-gcc-12\"\n\
                 ln -s \"$TARGET-gcc\" \"/ovm/dest/bin/$TARGET-cc\"\n\
                 cp sysroot/usr/include/stdio.h \"/ovm/dest/$TARGET/sys-root/usr/include/\"",
            ),
        ]),
    )
    .depends(&["binutils"])
    .write(p, salt);
    toolchain_part(
        "linux-headers",
        steps(&[(
            "install",
            "mkdir -p \"/ovm/dest/$TARGET/sys-root/usr/include/linux\"\n\
             echo '#define LINUX_VERSION_CODE 393472' > \"/ovm/dest/$TARGET/sys-root/usr/include/linux/version.h\"",
        )]),
    )
    .write(p, salt);
}

pub(crate) const ALL_GCC_OK: &str = "echo cc1 > cc1";
const ALL_GCC_BROKEN: &str = "echo 'all-gcc: injected failure' >&2; exit 3";

#[test]
fn a_failed_gcc_step_awaits_and_the_rerun_keeps_binutils() {
    let p = TestProject::empty();
    write_parts(&p, "resume", ALL_GCC_BROKEN);

    let out = p.run(&["toolchain", "aarch64"]);
    let t = text(&out);
    assert!(!out.status.success(), "the broken all-gcc step must fail the run:\n{t}");
    assert!(t.contains("all-gcc"), "the failure names the step:\n{t}");
    let awaiting = p.read("states/cross-aarch64/await");
    assert!(awaiting.contains("\"gcc\"") && awaiting.contains("\"all-gcc\""), "{awaiting}");
    let first = p.tasks_run("cross-aarch64");
    for task in ["binutils configure", "binutils compile", "binutils install", "gcc prepare", "gcc all-gcc"] {
        assert!(first.contains(&task.to_string()), "{task} ran in the first run: {first:?}");
    }
    assert!(!first.contains(&"gcc libgcc".to_string()), "nothing after the failed step runs: {first:?}");
    // The steps saw the target's triple, not the host's.
    assert_eq!(p.read("work/cross-aarch64/binutils/build/target"), "aarch64-linux-musl\n");

    write_parts(&p, "resume", ALL_GCC_OK);
    p.ok(&["toolchain", "aarch64"]);
    let second = p.tasks_run("cross-aarch64");
    assert!(second.iter().all(|t| !t.starts_with("binutils ")), "binutils was rebuilt: {second:?}");
    for task in ["gcc all-gcc", "gcc libgcc", "gcc install", "gcc package"] {
        assert!(second.contains(&task.to_string()), "{task} ran after the fix: {second:?}");
    }
    assert!(!p.path().join("states/cross-aarch64/await").exists(), "the await marker is cleared");

    // toolchain/aarch64 is the union of the three parts.
    let tc = p.path().join("toolchain/aarch64");
    for f in [
        "bin/aarch64-linux-musl-as",
        "bin/aarch64-linux-musl-gcc",
        "aarch64-linux-musl/bin/as",
        "aarch64-linux-musl/sys-root/usr/include/stdio.h",
        "aarch64-linux-musl/sys-root/usr/include/linux/version.h",
    ] {
        assert!(tc.join(f).is_file(), "toolchain/aarch64/{f} is missing");
    }
    assert_eq!(
        fs::read_link(tc.join("bin/aarch64-linux-musl-cc")).expect("cc link").to_str(),
        Some("aarch64-linux-musl-gcc")
    );

    // Nothing changed: nothing runs, and the composed dir stays.
    let marker = p.read("states/cross-aarch64/composed");
    p.ok(&["toolchain", "aarch64"]);
    assert_eq!(p.tasks_run("cross-aarch64"), Vec::<String>::new());
    assert_eq!(p.read("states/cross-aarch64/composed"), marker);
}

#[test]
fn the_sdk_tarball_is_deterministic_and_keeps_hard_links() {
    let p = TestProject::empty();
    write_parts(&p, "sdk", ALL_GCC_OK);
    let out = p.ok(&["toolchain", "x86_64", "--sdk"]);
    let sdk = p.path().join("output/x86_64/ovm-sdk-x86_64.tar.gz");
    assert!(out.contains(&sdk.display().to_string()), "the SDK's path is printed:\n{out}");
    let first = fs::read(&sdk).expect("reading the SDK");
    fs::remove_file(&sdk).expect("removing the SDK");
    p.ok(&["toolchain", "x86_64", "--sdk"]);
    assert_eq!(fs::read(&sdk).expect("reading the SDK again"), first, "the same toolchain gives the same bytes");

    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(&first[..]));
    let entries: Vec<(String, tar::EntryType, u32)> = a
        .entries()
        .expect("tar entries")
        .map(|e| {
            let e = e.expect("tar entry");
            (
                e.path().expect("path").display().to_string(),
                e.header().entry_type(),
                e.header().uid().unwrap_or(1) as u32,
            )
        })
        .collect();
    let find = |n: &str| entries.iter().find(|e| e.0 == n).unwrap_or_else(|| panic!("{n} not in the SDK: {entries:?}"));
    assert_eq!(find("ovm-sdk-x86_64/bin/x86_64-linux-musl-gcc").1, tar::EntryType::Regular);
    assert_eq!(find("ovm-sdk-x86_64/bin/x86_64-linux-musl-gcc-12").1, tar::EntryType::Link);
    assert_eq!(find("ovm-sdk-x86_64/bin/x86_64-linux-musl-cc").1, tar::EntryType::Symlink);
    find("ovm-sdk-x86_64/x86_64-linux-musl/sys-root/usr/include/linux/version.h");
    assert!(entries.iter().all(|e| e.2 == 0), "every entry is owned by uid 0");
    let names: Vec<&String> = entries.iter().map(|e| &e.0).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are in path order");

    // Unpacked anywhere, its environment-setup puts that copy's compiler in the environment.
    for place in ["one", "two/deeper"] {
        let dir = p.path().join("unpacked").join(place);
        fs::create_dir_all(&dir).expect("unpack dir");
        tar::Archive::new(flate2::read::GzDecoder::new(&first[..])).unpack(&dir).expect("unpacking the SDK");
        let sdk = dir.join("ovm-sdk-x86_64");
        // The stand-in gcc is a data file ("cc1"); a real one is executable, which `command -v` needs.
        let gcc = sdk.join("bin/x86_64-linux-musl-gcc");
        fs::set_permissions(&gcc, fs::Permissions::from_mode(0o755)).expect("chmod the stand-in gcc");
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                ". '{}/environment-setup' && echo \"$OVM_SDK|$SYSROOT|$CROSS_COMPILE|$(command -v \"$CC\")\" && cat \"$(command -v \"$CC\")\"",
                sdk.display()
            ))
            .current_dir("/")
            .output()
            .expect("bash");
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        let s = sdk.display();
        let want =
            format!("{s}|{s}/x86_64-linux-musl/sys-root|x86_64-linux-musl-|{s}/bin/x86_64-linux-musl-gcc\ncc1\n");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{t}");
    }
    // From a shell that cannot locate it, it says so instead of half-setting the environment.
    let script = p.path().join("unpacked/one/ovm-sdk-x86_64/environment-setup");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(". '{}'; echo \"rc=$? CC=${{CC:-}}\"", script.display()))
        .env_remove("OVM_SDK")
        .env_remove("CC")
        .output()
        .expect("sh");
    let t = text(&out);
    assert!(t.contains("cannot find the SDK") && t.contains("rc=1 CC=\n"), "{t}");
}

#[test]
fn dry_run_of_a_broken_part_names_the_file() {
    let p = TestProject::empty();
    write_parts(&p, "dry", ALL_GCC_OK);
    // gcc depending on something that is not an earlier part is refused, naming the recipe.
    let gcc = p.read("recipes/toolchain/gcc.toml").replace("depends = [\"binutils\"]", "depends = [\"linux-headers\"]");
    p.write("recipes/toolchain/gcc.toml", &gcc);
    let out = p.run(&["toolchain", "x86_64", "--dry-run"]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("gcc.toml") && t.contains("linux-headers"), "{t}");
}

#[test]
fn build_with_gcc_equips_tools_with_the_host_toolchain_and_targets_with_both() {
    build_support::require_tool("busybox");
    let p = TestProject::empty();
    write_parts(&p, "equip", ALL_GCC_OK);
    // A stand-in for the build tools: the host's static busybox (the strict sandbox's /bin/sh). Its
    // step records which compilers the tools' sandbox offers.
    let mut tools = Pkg::new(
        "busybox-tools",
        vec![file("README", "stand-in\n")],
        &steps(&[(
            "install",
            "mkdir -p /ovm/dest/bin && cp /bin/busybox /ovm/dest/bin/busybox && ln -s busybox /ovm/dest/bin/ls\n\
             ls /ovm/toolchain/bin > /ovm/dest/compilers-seen-by-tools",
        )]),
    );
    tools.kind_dir = "tools".into();
    tools.write(&p, "equip");
    // A target package, in the strict sandbox, that lists the compilers it can call.
    Pkg::new(
        "probe",
        vec![file("README", "probe\n")],
        &steps(&[(
            "install",
            "mkdir -p /ovm/dest/usr/share\n\
             if [ -e /usr ]; then echo 'host /usr is visible' >&2; exit 1; fi\n\
             ls /ovm/toolchain/bin > /ovm/dest/usr/share/compilers",
        )]),
    )
    .write(&p, "equip");

    p.ok(&["build", "aarch64", "probe", "--toolchain", "gcc"]);
    let tools_saw =
        fs::read_to_string(p.path().join("staging/tools/busybox-tools/compilers-seen-by-tools")).expect("tools' list");
    assert!(tools_saw.contains("x86_64-linux-musl-gcc"), "{tools_saw}");
    assert!(
        !tools_saw.contains("aarch64-linux-musl"),
        "the build tools must not depend on the target's toolchain:\n{tools_saw}"
    );
    let probe_saw = p.read("staging/aarch64/probe/runtime/usr/share/compilers");
    for tool in ["aarch64-linux-musl-gcc", "aarch64-linux-musl-cc", "x86_64-linux-musl-cc"] {
        assert!(probe_saw.lines().any(|l| l == tool), "{tool} missing from the target's toolchain:\n{probe_saw}");
    }
    assert!(p.path().join("toolchain/x86_64/bin/x86_64-linux-musl-gcc").is_file());
    assert!(p.path().join("toolchain/aarch64/bin/aarch64-linux-musl-gcc").is_file());

    // x86_64 next: its toolchain and the build tools are reused as they are.
    p.ok(&["build", "x86_64", "probe", "--toolchain", "gcc"]);
    assert_eq!(p.tasks_run("tools"), Vec::<String>::new(), "x86_64 reuses the build tools made for aarch64");
    assert_eq!(p.tasks_run("cross-x86_64"), Vec::<String>::new());
    let probe_saw = p.read("staging/x86_64/probe/runtime/usr/share/compilers");
    assert!(probe_saw.contains("x86_64-linux-musl-cc") && !probe_saw.contains("aarch64"), "{probe_saw}");

    // A changed gcc recipe (another compiler comes out) rebuilds gcc alone among the parts, then
    // everything compiled with that toolchain: the build tools and the package.
    write_parts(&p, "equip", "echo cc1-v2 > cc1");
    p.ok(&["build", "x86_64", "probe", "--toolchain", "gcc"]);
    let cross = p.tasks_run("cross-x86_64");
    assert!(cross.contains(&"gcc all-gcc".to_string()), "{cross:?}");
    assert!(!cross.iter().any(|t| t.starts_with("binutils ") || t.starts_with("linux-headers ")), "{cross:?}");
    assert!(p.tasks_run("tools").contains(&"busybox-tools install".to_string()), "{:?}", p.tasks_run("tools"));
    assert!(p.tasks_run("x86_64").contains(&"probe install".to_string()), "{:?}", p.tasks_run("x86_64"));
    assert_eq!(p.read("toolchain/x86_64/bin/x86_64-linux-musl-gcc"), "cc1-v2\n");
}

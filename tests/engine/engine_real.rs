//! A small real recipe set — `libgreet` (C library: header + static lib, built by its Makefile
//! with GNU make from the build tools) and `hello` (includes `<greet.h>` from the sysroot, links
//! `-lgreet`) — goes through every task in the strict sandbox for both architectures, and what
//! comes out runs: natively on x86_64, under `qemu-aarch64` (Debian's qemu-user) for aarch64.
//! Also: `ovm spec` prints the sandbox that compile step runs in.

use crate::build_support;
use crate::engine_fixture;

use std::process::Command;

use build_support::require_tool;
use engine_fixture::*;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let t = build_support::text(&out);
    assert!(out.status.success(), "{cmd:?} failed ({:?}):\n{t}", out.status);
    t
}

#[test]
fn hello_with_its_library_builds_for_both_arches_and_runs() {
    require_tool("qemu-aarch64");
    require_tool("file");
    let p = project();
    write_greet_set(&p, "real");

    for arch in ["x86_64", "aarch64"] {
        p.ok(&["build", arch]);
        let every_task = expect(&[chain("libgreet", ALL_TASKS), chain("hello", ALL_TASKS), image_tasks()]);
        assert_eq!(tasks_sorted(&p, arch), every_task, "{arch}: not every task ran");
        // Each step wrote its log.
        for pkg in ["libgreet", "hello"] {
            for task in ["unpack", "patch", "configure", "compile", "install"] {
                let log = p.path().join(format!("logs/{arch}/{pkg}/{task}.log"));
                assert!(log.exists(), "{} missing", log.display());
            }
        }
        assert!(p.path().join(format!("staging/{arch}/libgreet/dev/usr/include/greet.h")).is_file());
        assert!(p.path().join(format!("staging/{arch}/libgreet/dev/usr/lib/libgreet.a")).is_file());
    }

    let expected = "Hello, ovm! (libgreet 1.0)\n";
    let x86 = p.path().join("staging/x86_64/hello/runtime/usr/bin/hello");
    assert_eq!(run(&mut Command::new(&x86)), expected);
    let info = run(Command::new("file").arg("-b").arg(&x86));
    assert!(info.contains("x86-64") && info.contains("statically linked"), "file says: {info}");

    let arm = p.path().join("staging/aarch64/hello/runtime/usr/bin/hello");
    let info = run(Command::new("file").arg("-b").arg(&arm));
    assert!(info.contains("ARM aarch64") && info.contains("statically linked"), "file says: {info}");
    assert_eq!(run(Command::new("qemu-aarch64").arg(&arm)), expected);

    // The image of each arch carries the program.
    for arch in ["x86_64", "aarch64"] {
        let manifest = p.read(&format!("output/{arch}/manifest.txt"));
        assert!(manifest.lines().any(|l| l.starts_with("/usr/bin/hello\t") && l.contains("\thello\t")), "{manifest}");
    }
}

#[test]
fn spec_prints_the_strict_sandbox_of_the_compile_step() {
    let p = project();
    write_greet_set(&p, "spec");
    // The toolchain and tools exist (the spec names them), libgreet's output does not need to.
    let json = p.ok(&["spec", "hello", "--arch", "aarch64"]);
    let spec: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}:\n{json}"));

    let args: Vec<&str> = spec["process"]["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(&args[..2], ["/bin/sh", "-ec"]);
    assert!(args[2].contains("-lgreet"), "the compile snippet: {}", args[2]);
    assert_eq!(spec["process"]["cwd"], "/ovm/build");
    let env: Vec<&str> = spec["process"]["env"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    for want in ["CC=aarch64-linux-musl-cc", "PATH=/ovm/tools/bin:/ovm/toolchain/bin", "HELLO_NAME=ovm", "LC_ALL=C"] {
        assert!(env.contains(&want), "{want} not in {env:?}");
    }
    assert!(env.iter().any(|e| e.starts_with("MAKEFLAGS=") && e.contains("--jobserver-auth=")), "{env:?}");

    let mounts = spec["mounts"].as_array().unwrap();
    let mount =
        |dst: &str| mounts.iter().find(|m| m["destination"] == dst).unwrap_or_else(|| panic!("no {dst}: {mounts:?}"));
    let ro = |m: &serde_json::Value| m["options"].as_array().is_some_and(|o| o.iter().any(|x| x == "ro"));
    for dst in ["/ovm/toolchain", "/ovm/tools", "/ovm/sysroot", "/ovm/files", "/bin/sh"] {
        assert!(ro(mount(dst)), "{dst} must be read-only: {:?}", mount(dst));
    }
    for dst in ["/ovm/src", "/ovm/build", "/ovm/dest"] {
        assert!(!ro(mount(dst)), "{dst} must be writable");
        let src = mount(dst)["source"].as_str().unwrap();
        assert!(src.ends_with(&format!("work/aarch64/hello/{}", &dst[5..])), "{dst} from {src}");
    }
    for host in ["/usr", "/lib", "/etc", "/bin"] {
        assert!(!mounts.iter().any(|m| m["destination"] == host), "{host} must not be in a package sandbox");
    }
    let namespaces: Vec<&str> =
        spec["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    for ns in ["user", "mount", "pid", "network"] {
        assert!(namespaces.contains(&ns), "{ns} namespace missing: {namespaces:?}");
    }

    let err = build_support::text(&p.run(&["spec", "nosuch"]));
    assert!(err.contains("no recipe named `nosuch`"), "{err}");
}

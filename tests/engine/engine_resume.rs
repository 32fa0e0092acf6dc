//! Failure and resume. A compile failure leaves `states/ARCH/await` (package, task, log), prints
//! the last lines of the log and its path and exits non-zero; the next run throws the package's
//! dirty work dir away and resumes at that package, without redoing any other. SIGKILL of ovm at
//! exact points (the `OVM_FAULT` hook) and from outside while a compile runs is followed by a
//! rerun that completes with outputs identical to a clean build, and leaves state from which a
//! further build has nothing to do.

use crate::build_support;
use crate::engine_fixture;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use build_support::TestProject;
use engine_fixture::*;

/// A package that depends on hello (so it builds last) and whose compile fails unless `$JOBS`
/// is at least 2 — `-j` is deliberately not an input, so this is a failure that goes away
/// without any input changing, like a full disk or an OOM kill. Before failing it marks its
/// source tree, and it refuses to build in a tree so marked: a resume that reuses the failed
/// run's work dir fails.
fn wobbly(extra_cflags: &str) -> Pkg {
    Pkg::new(
        "wobbly",
        vec![file(
            "wobbly.c",
            "#ifdef BROKEN\n#error \"wobbly is broken\"\n#endif\n\
             #if WOBBLY_JOBS < 2\n#error \"wobbly needs -j 2 or more\"\n#endif\n\
             int wobbly(void) { return 2; }\n",
        )],
        &format!(
            r#"style = "custom"
compile = '''
if [ -e /ovm/src/half-done ]; then echo "wobbly: this work dir is left over from a failed run" >&2; exit 1; fi
touch /ovm/src/half-done
i=1
while [ $i -le 40 ]; do printf 'noise %02d\n' $i; i=$((i + 1)); done
$CC $CFLAGS {extra_cflags} -DWOBBLY_JOBS=$JOBS -c -o wobbly.o /ovm/src/wobbly.c
'''
install = '''
mkdir -p "$DESTDIR/usr/lib"
cp wobbly.o "$DESTDIR/usr/lib/wobbly.o"
'''"#
        ),
    )
    .depends(&["hello"])
}

#[test]
fn a_failed_compile_leaves_await_and_the_rerun_resumes_there() {
    let p = project();
    write_greet_set(&p, "await");
    wobbly("-DBROKEN").write(&p, "await");

    // A real compile error.
    let out = fails(&p, &["build", "-j", "2", "x86_64"]);
    let log = p.path().join("logs/x86_64/wobbly/compile.log");
    assert!(out.contains("ovm: wobbly failed at compile"), "{out}");
    assert!(out.contains(&format!("---- last 30 lines of {} ----", log.display())), "{out}");
    assert!(out.contains("#error \"wobbly is broken\"") && out.contains("noise 40"), "{out}");
    assert!(!out.contains("noise 01"), "more than the last 30 lines were printed:\n{out}");
    assert!(out.contains(&format!("log: {}", log.display())), "{out}");
    let awaiting: serde_json::Value = serde_json::from_str(&p.read("states/x86_64/await")).unwrap();
    assert_eq!(awaiting["package"], "wobbly");
    assert_eq!(awaiting["task"], "compile");
    assert_eq!(awaiting["log"], log.display().to_string());
    let status = build_support::text(&p.run(&["status", "x86_64"]));
    assert!(status.contains(&format!("FAILED at compile (log: {})", log.display())), "{status}");

    // The fix: only wobbly runs, from a fresh unpack (a reused tree would fail on half-done).
    wobbly("").write(&p, "await");
    p.ok(&["build", "-j", "2", "x86_64"]);
    assert_eq!(tasks_sorted(&p, "x86_64"), expect(&[chain("wobbly", FROM_UNPACK), image_tasks()]));
    assert!(!p.path().join("states/x86_64/await").exists());

    // A failure that needs no fix (-j is not an input): the rerun has no input changed, resumes
    // at wobbly and throws its dirty work dir away by itself.
    wobbly("").write(&p, "await-again");
    let out = fails(&p, &["build", "-j", "1", "x86_64"]);
    assert!(out.contains("wobbly needs -j 2 or more"), "{out}");
    assert_eq!(
        tasks_sorted(&p, "x86_64"),
        expect(&[chain("wobbly", &["fetch", "unpack", "patch", "configure", "compile"])])
    );
    assert!(p.path().join("work/x86_64/wobbly/src/half-done").exists());
    p.ok(&["build", "-j", "2", "x86_64"]);
    // The same output as before the failure: the image stays as it is.
    assert_eq!(tasks_sorted(&p, "x86_64"), expect(&[chain("wobbly", FROM_UNPACK)]));
    assert!(!p.path().join("states/x86_64/await").exists());
    p.ok(&["status", "x86_64"]);
}

/// hello with a second source (so `unpack.source` falls between two tarballs).
fn write_kill_set(p: &TestProject, salt: &str) {
    write_greet_set(p, salt);
    hello_with_motd().write(p, salt);
}

const PACKAGES: &[&str] = &["libgreet", "hello"];

fn outputs(p: &TestProject) -> Outputs {
    Outputs::of(p, PACKAGES)
}

/// After a recovery: the same bytes as the clean build, nothing marked failed or interrupted,
/// nothing left to do.
fn consistent(p: &TestProject, clean: &Outputs, after: &str) {
    assert_eq!(&outputs(p), clean, "after {after}: the outputs differ from a clean build");
    let states = std::fs::read_dir(p.path().join("states/x86_64")).unwrap();
    for e in states {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(name != "await" && !name.starts_with(".tmp"), "after {after}: {name} left in states/");
    }
    // Running markers live in states/ARCH/running/, one file per package with a task under way.
    if let Ok(markers) = std::fs::read_dir(p.path().join("states/x86_64/running")) {
        let left: Vec<_> = markers.map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "after {after}: running markers {left:?} left in states/x86_64/running/");
    }
    let status = p.run(&["status", "x86_64"]);
    assert!(status.status.success(), "after {after}: {}", build_support::text(&status));
    p.ok(&["build", "x86_64"]);
    assert_eq!(p.tasks_run("x86_64"), Vec::<String>::new(), "after {after}: the build after the recovery did work");
}

#[test]
fn sigkill_at_each_point_then_a_rerun_gives_the_clean_build() {
    let clean = Outputs::of_clean_build(write_kill_set, "reference", PACKAGES);

    let p = project();
    let points = [
        "unpack.source@hello",
        "compile.running@libgreet",
        "install.running@libgreet",
        "install.end@hello",
        "package.exchanged@libgreet",
        "package.stamped@hello",
        "configure.begin@hello",
        "image.begin",
        "image.packed",
    ];
    for (round, point) in points.iter().enumerate() {
        // New source bytes each round: every package builds again from fetch (and no cache
        // entry stands in for it); what it outputs stays the same.
        write_kill_set(&p, &format!("kill-{round}"));
        if point.starts_with("image.") {
            // Outputs never change here; without an image there is one to pack.
            std::fs::remove_file(p.path().join("output/x86_64/initrd.cpio.gz")).unwrap();
        }
        let out = p.ovm().env("OVM_FAULT", point).args(["build", "x86_64"]).output().unwrap();
        assert_eq!(out.status.signal(), Some(9), "OVM_FAULT={point} did not kill ovm:\n{}", build_support::text(&out));
        assert!(build_support::text(&out).contains(&format!("SIGKILL at {}", point.split('@').next().unwrap())));
        if *point == "compile.running@libgreet" {
            let status = build_support::text(&p.run(&["status", "x86_64"]));
            assert!(status.contains("interrupted during compile"), "{status}");
        }
        p.ok(&["build", "x86_64"]);
        consistent(&p, &clean, point);
    }

    let typo =
        build_support::text(&p.ovm().env("OVM_FAULT", "compile.runing").args(["build", "x86_64"]).output().unwrap());
    assert!(typo.contains("unknown fault point `compile.runing`") && typo.contains("compile.running"), "{typo}");
}

/// The host processes whose command line is exactly `args`.
fn processes(args: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = args.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

#[test]
fn an_outside_sigkill_mid_compile_takes_the_sandbox_down_and_the_rerun_recovers() {
    let clean = Outputs::of_clean_build(write_greet_set, "outside-reference", PACKAGES);

    // hello's compile stalls under -j 1 (not an input, so the rerun with -j 2 changes nothing
    // else); the sleep's argument is unique to this test process, to find it among host processes.
    let p = project();
    write_greet_set(&p, "outside");
    let nap = format!("{}", 900_000 + std::process::id() % 90_000);
    let mut h = hello("ovm");
    h.build = h.build.replace(
        "$CC $CFLAGS",
        &format!("if [ \"$JOBS\" = 1 ]; then touch /ovm/build/stalled; sleep {nap}; fi\n$CC $CFLAGS"),
    );
    h.write(&p, "outside");

    let mut child = p
        .ovm()
        .args(["build", "-j", "1", "x86_64"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stalled = p.path().join("work/x86_64/hello/build/stalled");
    let t0 = Instant::now();
    while !stalled.exists() {
        assert!(t0.elapsed() < Duration::from_secs(300), "hello's compile never started");
        assert!(child.try_wait().unwrap().is_none(), "ovm ended before hello's compile stalled");
        std::thread::sleep(Duration::from_millis(50));
    }
    // `stalled` exists a moment before the shell has exec'd the sleep: wait for it, briefly.
    let t0 = Instant::now();
    while processes(&["sleep", &nap]).len() != 1 {
        assert!(t0.elapsed() < Duration::from_secs(10), "the stalled compile is not running");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // The sandbox (and the sleep in it) dies with ovm, promptly.
    let t0 = Instant::now();
    while !processes(&["sleep", &nap]).is_empty() {
        if t0.elapsed() > Duration::from_secs(5) {
            for pid in processes(&["sleep", &nap]) {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
            panic!("the compile kept running after ovm was killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = build_support::text(&p.run(&["status", "x86_64"]));
    assert!(status.contains("interrupted during compile"), "{status}");

    p.ok(&["build", "-j", "2", "x86_64"]);
    assert_eq!(
        tasks_sorted(&p, "x86_64"),
        expect(&[chain("hello", &["unpack", "patch", "configure", "compile", "install", "package"]), image_tasks()])
    );
    assert!(!Path::new(&stalled).exists());
    consistent(&p, &clean, "an outside SIGKILL during compile");
}

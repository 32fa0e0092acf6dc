//! The scheduler and the lock. Two independent packages build at the same time (their compile
//! tasks overlap in context.log), their makes share one jobserver so that all make jobs of the
//! run together never exceed `-j N` (each job records its start and end from /proc/uptime, which
//! every sandbox sees alike), and `-j 1` serialises everything. A second `ovm build` on the same
//! project waits for the first and says so, or with `--no-wait` is refused, naming the holder.

use crate::build_support;
use crate::engine_fixture;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use build_support::TestProject;
use engine_fixture::*;

const JOBS_PER_PACKAGE: usize = 8;

/// A make-style package whose Makefile has `JOBS_PER_PACKAGE` independent targets, each logging
/// its start and end (seconds of /proc/uptime) to /ovm/build/jobs.log around a 0.3 s sleep.
fn busy(name: &str) -> Pkg {
    let targets: Vec<String> = (1..=JOBS_PER_PACKAGE).map(|i| format!("t{i}")).collect();
    let makefile = format!(
        "all: {t}\n.PHONY: all {t}\n{t}:\n\
         \t@read up idle </proc/uptime; echo \"start $$up {name} $@\" >>/ovm/build/jobs.log\n\
         \t@usleep 300000\n\
         \t@read up idle </proc/uptime; echo \"end $$up {name} $@\" >>/ovm/build/jobs.log\n\
         install:\n\tmkdir -p $(DESTDIR)/usr/share/{name}\n\tcp /ovm/build/jobs.log $(DESTDIR)/usr/share/{name}/\n",
        t = targets.join(" ")
    );
    Pkg::new(name, vec![file("Makefile", &makefile)], "style = \"make\"")
}

/// (time, +1 start / -1 end) of every make job of both packages.
fn job_events(p: &TestProject) -> Vec<(f64, i32)> {
    let mut events = Vec::new();
    for pkg in ["par-a", "par-b"] {
        let log = p.read(&format!("work/x86_64/{pkg}/build/jobs.log"));
        let mut starts = 0;
        for l in log.lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            let t: f64 = w[1].parse().unwrap();
            match w[0] {
                "start" => {
                    starts += 1;
                    events.push((t, 1));
                }
                "end" => events.push((t, -1)),
                other => panic!("{other} in {pkg}'s jobs.log"),
            }
        }
        assert_eq!(starts, JOBS_PER_PACKAGE, "{pkg}: not every make job ran:\n{log}");
    }
    events
}

/// The most jobs running at once. /proc/uptime has 10 ms steps: at equal times an end counts
/// before a start (a job's end is logged before its token goes back, a start after it is taken).
fn max_concurrency(mut events: Vec<(f64, i32)>) -> i32 {
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut max) = (0, 0);
    for (_, d) in events {
        now += d;
        max = max.max(now);
    }
    max
}

fn compile_span(p: &TestProject, pkg: &str) -> (std::time::SystemTime, std::time::SystemTime) {
    let s = spans(p, "x86_64").into_iter().find(|s| s.package == pkg && s.task == "compile").expect("compile span");
    (s.start, s.end.expect("compile finished"))
}

fn build_with_jobs(p: &TestProject, salt: &str, jobs: &str) -> i32 {
    busy("par-a").write(p, salt);
    busy("par-b").write(p, salt);
    let out = p.ok(&["build", "-j", jobs, "x86_64"]);
    for pkg in ["par-a", "par-b"] {
        let log = p.read(&format!("logs/x86_64/{pkg}/compile.log"));
        assert!(!log.contains("jobserver unavailable"), "{pkg}'s make did not join the jobserver:\n{log}");
    }
    assert!(out.contains("par-a") && out.contains("par-b"), "{out}");
    let max = max_concurrency(job_events(p));
    eprintln!("-j {jobs}: at most {max} make jobs at once");
    max
}

#[test]
fn independent_packages_overlap_and_share_the_job_limit() {
    let p = project();

    let max = build_with_jobs(&p, "j4", "4");
    let (a0, a1) = compile_span(&p, "par-a");
    let (b0, b1) = compile_span(&p, "par-b");
    assert!(a0 < b1 && b0 < a1, "par-a and par-b did not compile at the same time: {a0:?}..{a1:?} vs {b0:?}..{b1:?}");
    assert!(max <= 4, "{max} make jobs ran at once under -j 4");
    // More than one job per package at once: the makes really drew extra tokens.
    assert!(max >= 3, "only {max} make jobs at once under -j 4: the makes did not run in parallel");

    let max = build_with_jobs(&p, "j2", "2");
    assert!(max <= 2, "{max} make jobs ran at once under -j 2");

    let max = build_with_jobs(&p, "j1", "1");
    assert_eq!(max, 1, "make jobs overlapped under -j 1");
    let all = spans(&p, "x86_64");
    for a in all.iter().filter(|s| s.package == "par-a") {
        for b in all.iter().filter(|s| s.package == "par-b") {
            let (a1, b1) = (a.end.unwrap(), b.end.unwrap());
            assert!(a1 <= b.start || b1 <= a.start, "-j 1: par-a {} and par-b {} overlapped", a.task, b.task);
        }
    }
}

/// Collects a child's stderr lines in the background.
fn stderr_lines(child: &mut Child) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let err = child.stderr.take().unwrap();
    let sink = text.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let mut t = sink.lock().unwrap();
            t.push_str(&l);
            t.push('\n');
        }
    });
    text
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_build_waits_for_the_lock_or_is_refused() {
    let p = project();
    Pkg::new(
        "slow",
        vec![file("README", "holds the build until the test creates /ovm/src/release\n")],
        r#"style = "custom"
compile = '''
touch /ovm/build/holding
while [ ! -e /ovm/src/release ]; do usleep 50000; done
'''
install = '''
mkdir -p "$DESTDIR/usr/share/slow"
'''"#,
    )
    .write(&p, "lock");

    let mut first = p.ovm().args(["build", "x86_64"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("the first build to reach slow's compile", Duration::from_secs(300), || {
        assert!(first.try_wait().unwrap().is_none(), "the first build ended early");
        p.path().join("work/x86_64/slow/build/holding").exists()
    });

    // --no-wait: refused at once, naming the holder.
    let t0 = Instant::now();
    let refused = fails(&p, &["build", "--no-wait", "x86_64"]);
    assert!(t0.elapsed() < Duration::from_secs(10));
    let holder = format!("another ovm is working on this project (pid {}: ", first.id());
    assert!(refused.contains(&holder) && refused.contains("build x86_64"), "{refused}");
    let clean = fails(&p, &["clean", "x86_64"]);
    assert!(clean.contains(&holder), "{clean}");

    // Without it: waits, and says for whom.
    let mut second = p.ovm().args(["build", "x86_64"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let said = stderr_lines(&mut second);
    wait_for("the second build to say it waits", Duration::from_secs(30), || {
        said.lock().unwrap().contains("waiting for another ovm on this project")
    });
    assert!(said.lock().unwrap().contains(&format!("(pid {}: ", first.id())), "{}", said.lock().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    assert!(second.try_wait().unwrap().is_none(), "the second build did not wait");

    std::fs::write(p.path().join("work/x86_64/slow/src/release"), "").unwrap();
    assert!(first.wait().unwrap().success(), "the first build failed");
    let out = second.wait_with_output().unwrap();
    assert!(out.status.success(), "the second build failed:\n{}", said.lock().unwrap());
    // It ran after the first had finished everything.
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"));
    assert_eq!(p.tasks_run("x86_64"), Vec::<String>::new());
}

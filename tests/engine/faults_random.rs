//! SIGKILL at random instants of a build, again and again, then the same bytes as a clean build.
//!
//! `engine_resume.rs` kills ovm at ten hand-picked points; this harness draws the points from a
//! seeded generator instead, so every run of CI tries another combination and a failure can be
//! replayed exactly: the seed is printed, and
//! `OVM_FAULT_SEED=N cargo test --test engine faults_random::` draws the same sequence. Points are
//! drawn category by category (download, unpack, compile, install, commit, pack: each pass over the
//! six in a shuffled order), a random point of the category for a random package, so at least 24
//! kills cover every stage of a build at least four times. That is checked against what the build
//! left, not against the draw: after each kill,
//! the killed run's lines in `logs/x86_64/context.log` must show the drawn package's task of
//! that stage started and not finished (for `fetch.partial`, which fires in the prefetch outside
//! any task: a `.part` of that package written by the run), and the final count per stage only
//! counts such kills.
//!
//! The run after a kill is the recovery, and it is itself armed with the next point: a crash
//! during a recovery is the nastier case. A drawn point the build does not reach any more (its
//! task is already done) lets that run finish; then the outputs and the image must equal the
//! clean build's, nothing may be left over (`.part`, temporaries, `*.running`, `await`), and the
//! recipes get new source bytes (same outputs) so every point can be reached again. At the end, a
//! last unarmed run, the same checks, and a build after it with nothing to do. A second test does
//! the same on the real busybox at three points.

use crate::build_support;
use crate::engine_fixture;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use build_support::TestProject;
use engine_fixture::*;

/// How many kills the run must have seen (≥ 20, a multiple of the six categories).
const KILLS: usize = 24;
/// The variable that replays a sequence.
const SEED_ENV: &str = "OVM_FAULT_SEED";

/// splitmix64: a few lines, well mixed, and the same sequence everywhere for one seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

const PACKAGES: &[&str] = &["libgreet", "hello", "bye"];

/// The categories and their points; `@` in a point pins its package (the `running` points need a
/// step that writes to its log: libgreet's make echoes its commands).
const CATEGORIES: &[(&str, &[&str])] = &[
    ("download", &["fetch.begin", "fetch.partial", "fetch.end", "fetch.stamped"]),
    (
        "unpack",
        &["unpack.begin", "unpack.source", "unpack.end", "unpack.stamped", "patch.begin", "patch.end", "patch.stamped"],
    ),
    (
        "compile",
        &[
            "configure.begin",
            "configure.stamped",
            "compile.begin",
            "compile.running@libgreet",
            "compile.end",
            "compile.stamped",
        ],
    ),
    ("install", &["install.begin", "install.running@libgreet", "install.end", "install.stamped"]),
    ("commit", &["package.begin", "package.exchanged", "package.end", "package.stamped"]),
    ("pack", &["image.begin", "image.packed"]),
];

/// libgreet (patch, config file) ← hello (two sources), and bye on its own.
fn write_set(p: &TestProject, salt: &str) {
    write_greet_set(p, salt);
    hello_with_motd().write(p, salt);
    bye().write(p, salt);
}

fn outputs(p: &TestProject) -> Outputs {
    Outputs::of(p, PACKAGES)
}

/// The task a point interrupts, as `package task` the way the context log names it: the point's
/// own task (`compile.running@p` → `p compile`, `unpack.source@p` → `p unpack`,
/// `package.exchanged@p` → `p package`, `image.*` → `image pack`).
fn interrupted_task(point: &str) -> String {
    let (name, pkg) = point.split_once('@').unwrap_or((point, "image"));
    if name.starts_with("image.") {
        return "image pack".into();
    }
    let task = name.split('.').next().unwrap();
    format!("{pkg} {task}")
}

/// The x86_64 tasks that the run of ovm process `pid` started and neither finished nor failed, per
/// its part of `logs/x86_64/context.log` (every fault point but `fetch.partial` lies between a
/// task's `start` and `done` lines). Empty if that run never got to write there.
fn in_flight_at_kill(p: &TestProject, pid: u32) -> Vec<String> {
    let text = std::fs::read_to_string(p.path().join("logs/x86_64/context.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let header = format!("(pid {pid})");
    let Some(run) = lines.iter().rposition(|l| l.split_whitespace().nth(1) == Some("run") && l.ends_with(&header))
    else {
        return Vec::new();
    };
    let mut open: Vec<String> = Vec::new();
    for l in &lines[run + 1..] {
        let w: Vec<&str> = l.split_whitespace().collect();
        let [_, event, _domain, pkg, task, ..] = w[..] else { continue };
        let key = format!("{pkg} {task}");
        match event {
            "start" => open.push(key),
            "done" | "failed" => open.retain(|k| *k != key),
            _ => {}
        }
    }
    open
}

/// The `.part` files in sources/ with their size and mtime: a `fetch.partial` kill happens in the
/// prefetch, outside any task, and what it leaves is a half-written download.
fn parts(p: &TestProject) -> Vec<(String, u64, std::time::SystemTime)> {
    let Ok(rd) = std::fs::read_dir(p.path().join("sources")) else { return Vec::new() };
    let mut v: Vec<_> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let md = e.metadata().ok()?;
            let mtime = md.modified().ok()?;
            name.ends_with(".part").then_some((name, md.len(), mtime))
        })
        .collect();
    v.sort();
    v
}

/// Whether the project shows that the run killed at `point` (ovm process `pid`) died inside the
/// drawn package's task of that stage: the engine's own record, independent of the fault hook's
/// message. For `fetch.partial`: a `.part` of that package written by this run; otherwise: the
/// point's task in flight in the context log. `Err` says what was found instead.
fn landed_where_drawn(
    p: &TestProject,
    point: &str,
    pid: u32,
    parts_before: &[(String, u64, std::time::SystemTime)],
) -> Result<(), String> {
    if let Some(pkg) = point.strip_prefix("fetch.partial@") {
        let written: Vec<String> =
            parts(p).into_iter().filter(|part| !parts_before.contains(part)).map(|(name, ..)| name).collect();
        return match written.iter().any(|n| n.starts_with(&format!("{pkg}-"))) {
            true => Ok(()),
            false => Err(format!("{point}: .part files written by the run: {written:?}")),
        };
    }
    let in_flight = in_flight_at_kill(p, pid);
    match in_flight.contains(&interrupted_task(point)) {
        true => Ok(()),
        false => Err(format!("{point}: in flight {in_flight:?}")),
    }
}

/// Leftovers of an interrupted run, anywhere in the project: downloads not renamed (`.part`),
/// temporaries of stamps, packs, tool composition and sstate restores, and markers of tasks that
/// never finished. Unpacked source trees and the zig toolchain are not looked into: their file
/// names are upstream's.
fn leftovers(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let name = e.file_name().to_string_lossy().into_owned();
            let stray = name.ends_with(".part")
                || name.ends_with(".bad")
                || name.starts_with(".tmp")
                || name.starts_with(".initrd.")
                || name.starts_with(".manifest.")
                || name == ".tools.new"
                || (name.starts_with('.') && name.ends_with(".sstate"))
                || (rel.starts_with("states/") && (rel.contains("/running/") || name == "await"));
            if stray {
                found.push(rel.clone());
            }
            let parts: Vec<&str> = rel.split('/').collect();
            let skip = rel == "toolchain/zig" || rel == "upstream" || (parts.len() == 4 && parts[0] == "work");
            if e.file_type().unwrap().is_dir() && !skip {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The state after a finished run: a clean build's bytes, no leftovers, nothing left to do.
fn check_recovered(p: &TestProject, clean: &Outputs, history: &[String]) {
    let what = || format!("after {}", history.join(", "));
    assert_eq!(&outputs(p), clean, "{}: outputs differ from a clean build", what());
    assert_eq!(leftovers(p.path()), Vec::<String>::new(), "{}: leftovers in the project", what());
    let status = p.run(&["status", "x86_64"]);
    assert!(status.status.success(), "{}: {}", what(), build_support::text(&status));
    p.ok(&["build", "x86_64"]);
    assert_eq!(p.tasks_run("x86_64"), Vec::<String>::new(), "{}: the next build still had work to do", what());
}

#[test]
fn random_sigkills_across_every_stage_then_the_clean_build() {
    #[allow(clippy::disallowed_methods)] // The test's own knob, not ovm's settings.
    let seed = std::env::var(SEED_ENV)
        .ok()
        .map(|s| s.parse::<u64>().unwrap_or_else(|_| panic!("{SEED_ENV}={s} is not a number")))
        .unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
    eprintln!("faults_random: {SEED_ENV}={seed} (set it to replay this sequence)");
    let mut rng = Rng(seed);

    let clean = Outputs::of_clean_build(write_set, "random-reference", PACKAGES);

    let p = project();
    let mut salt = 0;
    write_set(&p, &format!("random-{salt}"));
    let mut history: Vec<String> = Vec::new();
    // Kills per category that the engine's own log shows landed in the drawn task; and the
    // others, with what the log showed in flight instead.
    let mut kills_per_category = vec![0usize; CATEGORIES.len()];
    let mut misplaced: Vec<String> = Vec::new();
    let mut order: Vec<usize> = Vec::new();
    let mut runs = 0;
    while history.len() < KILLS {
        if order.is_empty() {
            order = (0..CATEGORIES.len()).collect();
            rng.shuffle(&mut order);
            order.reverse(); // popped from the end
        }
        let category = *order.last().unwrap();
        let (cat_name, points) = CATEGORIES[category];
        let drawn = *rng.pick(points);
        let point = if drawn.contains('@') || drawn.starts_with("image.") {
            drawn.to_string()
        } else {
            format!("{drawn}@{}", rng.pick(PACKAGES))
        };
        if point.starts_with("image.") {
            // The packages' outputs never change here, so only a missing image is packed again.
            let _ = std::fs::remove_file(p.path().join("output/x86_64/initrd.cpio.gz"));
        }
        runs += 1;
        assert!(runs <= 4 * KILLS, "seed {seed}: {runs} runs for {} kills; history: {history:?}", history.len());
        let parts_before = parts(&p);
        let child = p
            .ovm()
            .env("OVM_FAULT", &point)
            .args(["build", "x86_64"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        let text = build_support::text(&out);
        if out.status.signal() == Some(9) {
            let at = point.split('@').next().unwrap();
            assert!(text.contains(&format!("SIGKILL at {at}")), "seed {seed}: killed, but not at {point}:\n{text}");
            history.push(format!("{point} ({cat_name})"));
            match landed_where_drawn(&p, &point, pid, &parts_before) {
                Ok(()) => kills_per_category[category] += 1,
                Err(found) => misplaced.push(found),
            }
            order.pop();
            continue;
        }
        assert!(out.status.success(), "seed {seed}: the run armed with {point} after {history:?} failed:\n{text}");
        // Finished without reaching the point: a recovery is complete. Check it, then new source
        // bytes so the next draw finds every task to do again.
        check_recovered(&p, &clean, &history);
        salt += 1;
        write_set(&p, &format!("random-{salt}"));
    }
    p.ok(&["build", "x86_64"]);
    check_recovered(&p, &clean, &history);
    eprintln!("faults_random: seed {seed}: {} kills in {runs} armed runs: {history:?}", history.len());
    // The claim "every stage was interrupted at least four times", from the build's record rather
    // than from this loop's bookkeeping (which draws four per category by construction): a fault
    // hook that fired in another package's task, or outside its task, does not count.
    for (i, (name, _)) in CATEGORIES.iter().enumerate() {
        assert!(
            kills_per_category[i] >= KILLS / CATEGORIES.len(),
            "seed {seed}: the context log shows only {} kills inside a {name} task; kills that landed \
             elsewhere: {misplaced:#?}",
            kills_per_category[i]
        );
    }
}

/// The real busybox (kbuild, ~1,000 objects) killed while compiling, while being committed and
/// after its image was written; each rerun recovers and the last image equals a clean build's.
/// Its recipe gets an environment variable nothing reads, so its signature is new (no cache
/// entry stands in for the compile) while its output stays the clean one.
#[test]
fn real_busybox_killed_mid_compile_mid_commit_and_after_pack_gives_the_clean_image() {
    let sstate = project().sstate.clone(); // the build tools, already cached
    let mut reference = TestProject::from_repo();
    reference.sstate = sstate.clone();
    reference.ok(&["build", "x86_64"]);
    let clean = image_sha(&reference, "x86_64");

    let mut p = TestProject::from_repo();
    p.sstate = sstate;
    let nonce = format!("{}-{}", std::process::id(), std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos());
    edit(&p, "recipes/busybox.toml", "env = { ", &format!("env = {{ OVM_FAULTS_NONCE = \"{nonce}\", "));
    let mut history = Vec::new();
    for point in ["compile.running@busybox", "package.exchanged@busybox", "image.packed"] {
        let out = p.ovm().env("OVM_FAULT", point).args(["build", "x86_64"]).output().unwrap();
        assert_eq!(out.status.signal(), Some(9), "{point} was not reached:\n{}", build_support::text(&out));
        history.push(point.to_string());
    }
    p.ok(&["build", "x86_64"]);
    assert_eq!(image_sha(&p, "x86_64"), clean, "after {history:?}: the image differs from a clean build");
    assert_eq!(leftovers(p.path()), Vec::<String>::new(), "after {history:?}: leftovers in the project");
    p.ok(&["build", "x86_64"]);
    assert_eq!(p.tasks_run("x86_64"), Vec::<String>::new(), "after {history:?}: the next build had work to do");
}

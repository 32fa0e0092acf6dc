//! What a run tells whoever watches it, as it goes: typed events to an [`Observer`], and the
//! arithmetic of "how far along, how long still" ([`Tally`]) that any display of them needs.
//!
//! The engine only reports; drawing is the caller's (the command line's live bars or plain lines,
//! nothing at all with `-q`, a recording in tests). Events come from the places that also write
//! `context.log` (`package::execute`, `package::fetch`, the image pack) and from the phases
//! (`build::prefetch` announces the [`Plan`]), so the two never disagree about what ran.
//!
//! The estimate of the time left uses what earlier runs recorded: every `done` line of a domain's
//! `context.log` says how long a task took. A task's expected duration is its last recorded one;
//! the time left is the expected work not yet done, divided by the pace this run keeps (expected
//! work finished so far per second of wall time, which takes in both the parallelism of this run
//! and how this machine compares with the one that recorded the durations). A task that never ran
//! has no expectation: it is counted, not guessed.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::context_log::{self, TaskEventKind};
use crate::layout::{Domain, Layout, TaskName};

/// One task of one package, as events name it.
#[derive(Debug, Clone, Copy)]
pub struct TaskRef<'a> {
    pub domain: Domain,
    pub package: &'a str,
    pub task: &'a TaskName,
}

/// Something a run did.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The tasks the run expects to run, known before the first starts (a package found stale
    /// later, because a dependency's output changed, adds its tasks as they start).
    Planned(&'a Plan),
    Started {
        task: TaskRef<'a>,
        log: &'a Path,
    },
    Finished {
        task: TaskRef<'a>,
        elapsed: Duration,
    },
    Failed {
        task: TaskRef<'a>,
        elapsed: Duration,
        log: &'a Path,
    },
    /// A package that ran no task: up to date, or (`from_cache`) restored from the shared-state
    /// cache.
    Reused {
        domain: Domain,
        package: &'a str,
        from_cache: bool,
    },
}

/// Whoever watches a run. Called from the scheduler's worker threads, so it must be `Sync` and
/// should return quickly.
pub trait Observer: Sync {
    fn event(&self, event: &Event<'_>);

    /// The run is over (done or failed) and its outcome is about to be printed: a live display
    /// clears itself here.
    fn run_ended(&self) {}
}

/// Watches nothing: library callers, and runs whose output is only their summary.
pub struct Unobserved;

impl Observer for Unobserved {
    fn event(&self, _: &Event<'_>) {}
}

/// One task a run expects to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTask {
    pub domain: Domain,
    pub package: String,
    pub task: TaskName,
    /// How long it took the last time it ran (from `context.log`), if it ever did.
    pub expected: Option<Duration>,
}

/// What a run expects to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub tasks: Vec<PlannedTask>,
}

/// How much of `context.log` is read for the durations of earlier runs: its end only, since the
/// file grows by every run and the most recent durations are the ones wanted. A line is ~100
/// bytes, so this holds the last few thousand task events.
const HISTORY_BYTES: u64 = 512 << 10;

/// The last recorded duration of each task of `domain`, from the end of its `context.log`.
/// Nothing (an empty map) when there is no log yet.
pub fn history(layout: &Layout, domain: Domain) -> HashMap<(String, String), Duration> {
    parse_history(&super::steplog::tail_bytes(&layout.context_log(domain), HISTORY_BYTES))
}

/// `(package, task) → duration` of the `done` lines of a `context.log` text, later lines winning.
/// The first line may be cut (the text is the file's end): a line that does not parse is skipped.
pub fn parse_history(text: &str) -> HashMap<(String, String), Duration> {
    let mut out = HashMap::new();
    for e in context_log::runs(text).into_iter().flat_map(|r| r.events) {
        // A restore from the shared-state cache is logged as a `sstate` task of zero seconds: not a
        // duration of the package's own tasks.
        if let TaskEventKind::Done(took) = e.kind {
            if e.task != "sstate" {
                out.insert((e.package, e.task), took);
            }
        }
    }
    out
}

/// An estimate of the time left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eta {
    /// The time left for the tasks with a recorded duration.
    pub left: Duration,
    /// Tasks left that never ran before: not in `left`, so the estimate is a lower bound.
    pub unknown: usize,
}

/// The time left: `work` seconds of expected work (as recorded) at `pace` (expected seconds done
/// per second of wall time). The pace is clamped to `[1/4, jobs]`: a run cannot go faster than
/// all its jobs busy with work of the recorded speed, and an early slow task must not make the
/// estimate explode.
pub fn eta(work: Duration, unknown: usize, pace: f64, jobs: usize) -> Eta {
    let pace = if pace.is_finite() { pace.clamp(0.25, jobs.max(1) as f64) } else { 1.0 };
    Eta { left: Duration::from_secs_f64(work.as_secs_f64() / pace), unknown }
}

type Key = (Domain, String, TaskName);

fn key(t: &TaskRef<'_>) -> Key {
    (t.domain, t.package.to_string(), t.task.clone())
}

/// Counts of a run as its events arrive: tasks done and expected in all, which run now and since
/// when, and the estimate of the time left. The display keeps one and feeds it every event.
#[derive(Debug, Default)]
pub struct Tally {
    /// Planned tasks not started yet, with their expected durations.
    waiting: HashMap<Key, Option<Duration>>,
    /// Running tasks: since when, and what they are expected to take.
    running: HashMap<Key, (Instant, Option<Duration>)>,
    done: usize,
    failed: usize,
    total: usize,
    /// When the first task started.
    first_start: Option<Instant>,
    /// The expected durations of the tasks finished in this run that had one.
    finished_expected: Duration,
    /// The wall time those took in this run, summed per task.
    finished_took: Duration,
}

impl Tally {
    pub fn new() -> Tally {
        Tally::default()
    }

    /// Takes one event in, at time `now`.
    pub fn apply(&mut self, event: &Event<'_>, now: Instant) {
        match event {
            Event::Planned(plan) => {
                for t in &plan.tasks {
                    let k = (t.domain, t.package.clone(), t.task.clone());
                    if !self.running.contains_key(&k) && self.waiting.insert(k, t.expected).is_none() {
                        self.total += 1;
                    }
                }
            }
            Event::Started { task, .. } => {
                let k = key(task);
                let expected = match self.waiting.remove(&k) {
                    Some(e) => e,
                    None => {
                        // Not planned: found stale only now (a dependency's output changed).
                        self.total += 1;
                        None
                    }
                };
                self.first_start.get_or_insert(now);
                self.running.insert(k, (now, expected));
            }
            Event::Finished { task, elapsed } | Event::Failed { task, elapsed, .. } => {
                let k = key(task);
                let running = self.running.remove(&k);
                // A task can end without having started: a source prefetch could not fetch
                // fails its package's fetch task there and then.
                let waiting = self.waiting.remove(&k).is_some();
                if running.is_none() && !waiting {
                    self.total += 1;
                }
                if let Some((_, Some(expected))) = running {
                    self.finished_expected += expected;
                    self.finished_took += *elapsed;
                }
                self.done += 1;
                if matches!(event, Event::Failed { .. }) {
                    self.failed += 1;
                    // The package's later tasks will not run.
                    self.forget_package(task.domain, task.package);
                }
            }
            Event::Reused { domain, package, .. } => self.forget_package(*domain, package),
        }
    }

    /// Drops the waiting tasks of a package that will not run them.
    fn forget_package(&mut self, domain: Domain, package: &str) {
        let before = self.waiting.len();
        self.waiting.retain(|(d, p, _), _| !(*d == domain && p == package));
        self.total -= before - self.waiting.len();
    }

    /// Tasks finished (or failed) so far.
    pub fn done(&self) -> usize {
        self.done
    }

    pub fn failed(&self) -> usize {
        self.failed
    }

    /// Tasks of the run in all, as known now.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The estimate of the time left at `now` with `jobs` jobs; `None` before anything is known
    /// (nothing planned has a recorded duration).
    pub fn eta(&self, now: Instant, jobs: usize) -> Option<Eta> {
        let mut work = Duration::ZERO;
        let mut known = false;
        let mut unknown = 0;
        for expected in self.waiting.values() {
            match expected {
                Some(d) => {
                    work += *d;
                    known = true;
                }
                None => unknown += 1,
            }
        }
        for (since, expected) in self.running.values() {
            match expected {
                Some(d) => {
                    work += d.saturating_sub(now.saturating_duration_since(*since));
                    known = true;
                }
                None => unknown += 1,
            }
        }
        if !known {
            return None;
        }
        // The pace: expected work finished per second of wall time, once there is enough of
        // either to say; until then the recorded durations are taken as they are.
        let wall = self.first_start.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let pace = if self.finished_expected >= Duration::from_secs(1) && wall >= Duration::from_secs(1) {
            self.finished_expected.as_secs_f64() / wall.as_secs_f64()
        } else {
            1.0
        };
        Some(eta(work, unknown, pace, jobs))
    }
}

/// The last line of a task's log, for a running task's line on the terminal; `None` when the log
/// is empty or not there yet. Reads only the file's end.
pub fn last_log_line(log: &Path) -> Option<String> {
    super::steplog::tail(log, 1).into_iter().next().map(|l| l.trim_end().to_string()).filter(|l| !l.is_empty())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::arch::Arch;
    use std::path::PathBuf;

    const D: Domain = Domain::Target(Arch::X86_64);

    /// A task's name; the engine's own (`fetch`, `unpack`, `patch`, `package`) are reserved to it.
    fn task(name: &str) -> TaskName {
        match name {
            "fetch" => TaskName::fetch(),
            "unpack" => TaskName::unpack(),
            "package" => TaskName::package(),
            _ => TaskName::parse(name).unwrap(),
        }
    }

    fn planned(pkg: &str, name: &str, secs: Option<u64>) -> PlannedTask {
        PlannedTask { domain: D, package: pkg.into(), task: task(name), expected: secs.map(Duration::from_secs) }
    }

    #[test]
    fn durations_are_read_back_from_context_log_lines_the_last_one_winning() {
        let text = "x86_64 busybox compile 9.00s sig=aa\n\
            2026-01-01T00:00:00.000Z run    ovm build x86_64 (pid 1)\n\
            2026-01-01T00:00:00.100Z start  x86_64 busybox compile sig=aa\n\
            2026-01-01T00:01:00.000Z done   x86_64 busybox compile 59.90s sig=aa\n\
            2026-01-01T00:01:00.000Z failed x86_64 hello compile 0.50s log=logs/x86_64/hello/compile.log\n\
            2026-01-01T00:02:00.000Z done   x86_64 busybox compile 41.25s sig=bb\n\
            2026-01-01T00:02:00.000Z done   x86_64 hello sstate 0.00s sig=cc\n\
            2026-01-01T00:02:00.000Z done   x86_64 hello install nonsense sig=cc\n";
        let h = parse_history(text);
        assert_eq!(h.get(&("busybox".into(), "compile".into())), Some(&Duration::from_millis(41_250)));
        assert_eq!(h.len(), 1, "{h:?}");
    }

    #[test]
    fn the_estimate_divides_the_work_left_by_the_pace_within_bounds() {
        let work = Duration::from_secs(120);
        assert_eq!(eta(work, 0, 1.0, 2).left, Duration::from_secs(120));
        assert_eq!(eta(work, 3, 2.0, 2), Eta { left: Duration::from_secs(60), unknown: 3 });
        // Faster than every job busy is not believed; nor is a pace of nearly nothing.
        assert_eq!(eta(work, 0, 10.0, 2).left, Duration::from_secs(60));
        assert_eq!(eta(work, 0, 0.01, 2).left, Duration::from_secs(480));
        assert_eq!(eta(work, 0, f64::NAN, 4).left, Duration::from_secs(120));
    }

    #[test]
    fn the_tally_counts_tasks_and_estimates_from_the_recorded_durations() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let plan = Plan {
            tasks: vec![
                planned("a", "compile", Some(10)),
                planned("a", "package", Some(2)),
                planned("b", "compile", Some(20)),
                planned("c", "compile", None),
                planned("d", "compile", Some(5)),
            ],
        };
        let mut t = Tally::new();
        t.apply(&Event::Planned(&plan), t0);
        assert_eq!((t.done(), t.total()), (0, 5));
        assert_eq!(t.eta(t0, 1), Some(Eta { left: Duration::from_secs(37), unknown: 1 }));

        let log = PathBuf::from("l");
        let (compile, package) = (task("compile"), task("package"));
        let a_compile = TaskRef { domain: D, package: "a", task: &compile };
        t.apply(&Event::Started { task: a_compile, log: &log }, at(0));
        // 4 s into a 10 s task: 6 s of it left.
        assert_eq!(t.eta(at(4), 1).map(|e| e.left), Some(Duration::from_secs(33)));
        // It took 5 s, half its recorded time: this run goes at twice the recorded pace.
        t.apply(&Event::Finished { task: a_compile, elapsed: Duration::from_secs(5) }, at(5));
        assert_eq!((t.done(), t.total()), (1, 5));
        assert_eq!(t.eta(at(5), 4).map(|e| e.left), Some(Duration::from_secs_f64(27.0 / 2.0)));

        // d is reused: its planned task leaves the total; b fails: done, and nothing more of b.
        t.apply(&Event::Reused { domain: D, package: "d", from_cache: true }, at(5));
        assert_eq!(t.total(), 4);
        let b_compile = TaskRef { domain: D, package: "b", task: &compile };
        t.apply(&Event::Started { task: b_compile, log: &log }, at(5));
        t.apply(&Event::Failed { task: b_compile, elapsed: Duration::from_secs(1), log: &log }, at(6));
        assert_eq!((t.done(), t.failed(), t.total()), (2, 1, 4));

        // A planned task that fails without having started (prefetch could not fetch its source)
        // is done; the rest of its package is not going to run.
        t.apply(
            &Event::Planned(&Plan { tasks: vec![planned("f", "fetch", None), planned("f", "unpack", None)] }),
            at(6),
        );
        assert_eq!(t.total(), 6);
        let f_fetch = task("fetch");
        let f = TaskRef { domain: D, package: "f", task: &f_fetch };
        t.apply(&Event::Failed { task: f, elapsed: Duration::ZERO, log: &log }, at(6));
        assert_eq!((t.done(), t.failed(), t.total()), (3, 2, 5));

        // A task nobody planned (its package turned stale during the run) joins the total.
        let e_package = TaskRef { domain: D, package: "e", task: &package };
        t.apply(&Event::Started { task: e_package, log: &log }, at(6));
        assert_eq!(t.total(), 6);
        // Only unknown tasks are left of c and e; a's package still has its 2 s.
        assert_eq!(t.eta(at(6), 1).map(|e| e.unknown), Some(2));
    }

    /// The recorded sequence of a run's events (the recording fake the renderer stands in for).
    #[derive(Default)]
    pub(crate) struct Recording(pub std::sync::Mutex<Vec<String>>);

    impl Observer for Recording {
        fn event(&self, event: &Event<'_>) {
            let line = match event {
                Event::Planned(p) => format!(
                    "planned {}",
                    p.tasks.iter().map(|t| format!("{}:{}", t.package, t.task)).collect::<Vec<_>>().join(" ")
                ),
                Event::Started { task, .. } => format!("started {} {}", task.package, task.task),
                Event::Finished { task, .. } => format!("finished {} {}", task.package, task.task),
                Event::Failed { task, log, .. } => {
                    format!("failed {} {} {}", task.package, task.task, log.file_name().unwrap().to_string_lossy())
                }
                Event::Reused { package, from_cache, .. } => {
                    format!("reused {package}{}", if *from_cache { " from cache" } else { "" })
                }
            };
            self.0.lock().unwrap().push(line);
        }
    }
}

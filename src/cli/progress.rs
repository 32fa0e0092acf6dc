//! The console side of a build's progress: the engine's events (`engine::progress`) drawn as
//! live lines on a terminal, as plain lines in a log, or not at all with `-q`.
//!
//! * On a terminal (stderr): one line per running task (package, task, elapsed, the last line of
//!   its log) above an overall bar (tasks done of all, time spent, the estimate of the time left);
//!   each finished task leaves a line above them, as in the plain form. Colour unless `NO_COLOR`.
//! * Otherwise: one line per finished or failed task, `[12/40] busybox compile 41.2 s`.
//!
//! While the live lines are drawn, log messages go through them ([`log_writer`]) so neither tears
//! the other. The counting and the estimate are the engine's (`engine::progress::Tally`); this
//! file only draws.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::progress::{last_log_line, Eta, Event, Observer, Tally, TaskRef};
use crate::engine::steplog::cut;
use crate::layout::Domain;
use crate::settings::Settings;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Live lines on a terminal; `colour` says whether they may be coloured.
    Live { colour: bool },
    /// One plain line per finished task.
    Lines,
    /// Nothing (`-q`).
    Silent,
}

impl Mode {
    /// The mode for this process: `-q` silences; a terminal on stderr gets live lines (coloured
    /// unless `NO_COLOR`); anything else plain lines.
    pub fn chosen(quiet: bool, settings: &Settings) -> Mode {
        if quiet {
            Mode::Silent
        } else if std::io::stderr().is_terminal() {
            Mode::Live { colour: !settings.no_color }
        } else {
            Mode::Lines
        }
    }
}

/// The console's observer of one run.
pub struct Display {
    inner: Inner,
}

enum Inner {
    Silent,
    Lines(Mutex<Tally>),
    Live(Arc<Live>, Mutex<Option<std::thread::JoinHandle<()>>>),
}

impl Display {
    /// A display in `mode`; `jobs` is the run's job count (0: one per core), for the estimate.
    pub fn new(mode: Mode, jobs: usize) -> Display {
        let jobs = if jobs > 0 { jobs } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
        let inner = match mode {
            Mode::Silent => Inner::Silent,
            Mode::Lines => Inner::Lines(Mutex::new(Tally::new())),
            Mode::Live { colour } => {
                let live = Arc::new(Live::new(colour, jobs));
                let ticker = Arc::clone(&live);
                // Elapsed times, log lines and the estimate move on their own between events.
                let handle = std::thread::Builder::new()
                    .name("ovm-progress".into())
                    .spawn(move || {
                        while !ticker.stop.load(Ordering::Relaxed) {
                            ticker.refresh();
                            // Parked, not asleep: the end of the run wakes it at once, so a
                            // no-op build does not wait out a tick.
                            std::thread::park_timeout(TICK);
                        }
                    })
                    .ok();
                Inner::Live(live, Mutex::new(handle))
            }
        };
        Display { inner }
    }
}

impl Observer for Display {
    fn event(&self, event: &Event<'_>) {
        match &self.inner {
            Inner::Silent => {}
            Inner::Lines(tally) => {
                let Ok(mut tally) = tally.lock() else { return };
                tally.apply(event, Instant::now());
                if let Some(line) = line_for(event, &tally, false) {
                    eprintln!("{line}");
                }
            }
            Inner::Live(live, _) => live.event(event),
        }
    }

    fn run_ended(&self) {
        if let Inner::Live(live, ticker) = &self.inner {
            live.stop.store(true, Ordering::Relaxed);
            if let Some(handle) = ticker.lock().ok().and_then(|mut h| h.take()) {
                handle.thread().unpark();
                let _ = handle.join();
            }
            live.clear();
        }
    }
}

/// How often the live lines are redrawn.
const TICK: Duration = Duration::from_millis(200);
/// The most of a log line a running task's line shows.
const LOG_LINE_MAX: usize = 80;

/// What a running task's line needs.
struct Running {
    bar: ProgressBar,
    log: PathBuf,
}

type Key = (Domain, String, String);

struct Live {
    multi: MultiProgress,
    overall: ProgressBar,
    running: Mutex<HashMap<Key, Running>>,
    tally: Mutex<Tally>,
    colour: bool,
    jobs: usize,
    started: Instant,
    stop: AtomicBool,
    /// Whether `overall` has been added to `multi` (at the first task).
    overall_shown: AtomicBool,
}

impl Live {
    fn new(colour: bool, jobs: usize) -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        // Not drawn until the first task starts: before that the fetcher may be drawing its
        // download bars on the same terminal.
        let overall = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        let template = if colour {
            "{bar:30.green/white} {pos}/{len} tasks  {msg}"
        } else {
            "[{bar:30}] {pos}/{len} tasks  {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            overall.set_style(style.progress_chars("=> "));
        }
        *LIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(multi.clone());
        Live {
            multi,
            overall,
            running: Mutex::new(HashMap::new()),
            tally: Mutex::new(Tally::new()),
            colour,
            jobs,
            started: Instant::now(),
            stop: AtomicBool::new(false),
            overall_shown: AtomicBool::new(false),
        }
    }

    fn event(&self, event: &Event<'_>) {
        let now = Instant::now();
        let (line, done, total) = {
            let Ok(mut tally) = self.tally.lock() else { return };
            tally.apply(event, now);
            (line_for(event, &tally, self.colour), tally.done(), tally.total())
        };
        match event {
            Event::Started { task, log } => {
                if !self.overall_shown.swap(true, Ordering::Relaxed) {
                    self.multi.add(self.overall.clone());
                }
                let bar = self.multi.insert_before(&self.overall, ProgressBar::new_spinner());
                let template = if self.colour {
                    "{spinner:.cyan} {prefix:.bold} {elapsed:>4} {wide_msg:.dim}"
                } else {
                    "{spinner} {prefix} {elapsed:>4} {wide_msg}"
                };
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style);
                }
                bar.set_prefix(name(task));
                if let Ok(mut running) = self.running.lock() {
                    running.insert(key(task), Running { bar, log: log.to_path_buf() });
                }
            }
            Event::Finished { task, .. } | Event::Failed { task, .. } => {
                if let Some(r) = self.running.lock().ok().and_then(|mut m| m.remove(&key(task))) {
                    r.bar.finish_and_clear();
                    self.multi.remove(&r.bar);
                }
            }
            Event::Planned(_) | Event::Reused { .. } => {}
        }
        if let Some(line) = line {
            if self.multi.println(&line).is_err() {
                eprintln!("{line}");
            }
        }
        self.overall.set_length(total as u64);
        self.overall.set_position(done as u64);
        self.refresh();
    }

    /// Redraws what moves without events: each running task's last log line, the estimate.
    fn refresh(&self) {
        if let Ok(running) = self.running.lock() {
            for r in running.values() {
                let line = last_log_line(&r.log).unwrap_or_default();
                r.bar.set_message(cut(&line, LOG_LINE_MAX));
                r.bar.tick();
            }
        }
        let eta = self.tally.lock().ok().and_then(|t| t.eta(Instant::now(), self.jobs));
        self.overall.set_message(format!("{} spent{}", short(self.started.elapsed()), eta_text(eta)));
    }

    fn clear(&self) {
        if let Ok(mut running) = self.running.lock() {
            for (_, r) in running.drain() {
                r.bar.finish_and_clear();
            }
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
        *LIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The live display being drawn, if any: log messages go through it.
static LIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Where log messages are written: stderr, through the live display while one is drawn (above it,
/// without tearing it). For `tracing_subscriber::fmt().with_writer(log_writer)`.
pub fn log_writer() -> LogWriter {
    LogWriter
}

pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let live = LIVE.lock().ok().and_then(|l| l.clone());
        match live {
            Some(multi) => multi.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `busybox compile`; a package of another domain than the target's is named with it
/// (`tools:make compile`).
fn name(task: &TaskRef<'_>) -> String {
    match task.domain {
        Domain::Target(_) => format!("{} {}", task.package, task.task),
        d => format!("{}:{} {}", d.dir_name(), task.package, task.task),
    }
}

fn key(task: &TaskRef<'_>) -> Key {
    (task.domain, task.package.to_string(), task.task.to_string())
}

/// The line an event leaves: one per finished or failed task, `[done/total] name 41.2 s`.
fn line_for(event: &Event<'_>, tally: &Tally, colour: bool) -> Option<String> {
    let count = format!("[{}/{}]", tally.done(), tally.total());
    match event {
        Event::Finished { task, elapsed } => {
            Some(format!("{} {} {:.1} s", paint(&count, GREEN, colour), name(task), elapsed.as_secs_f64()))
        }
        Event::Failed { task, elapsed, log } => Some(format!(
            "{} {} {} after {:.1} s (log {})",
            paint(&count, RED, colour),
            name(task),
            paint("FAILED", RED, colour),
            elapsed.as_secs_f64(),
            log.display()
        )),
        Event::Planned(plan) => {
            let eta = tally.eta(Instant::now(), 1);
            Some(format!("ovm: {} task(s) to run{}", plan.tasks.len(), eta_text(eta)))
        }
        Event::Started { .. } | Event::Reused { .. } => None,
    }
}

const GREEN: &str = "32";
const RED: &str = "1;31";

/// `text` in an SGR colour when colour is on.
fn paint(text: &str, sgr: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// `, ETA 1m20s` (`≥` when tasks without a recorded duration are left), or nothing.
fn eta_text(eta: Option<Eta>) -> String {
    match eta {
        Some(Eta { left, unknown }) => format!(", ETA {}{}", if unknown > 0 { "≥" } else { "" }, short(left)),
        None => String::new(),
    }
}

/// `41s`, `3m05s`, `1h02m`.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::engine::progress::{Plan, PlannedTask};
    use crate::layout::TaskName;
    use std::path::Path;

    #[test]
    fn lines_say_count_name_and_time_and_colour_only_when_asked() {
        let d = Domain::Target(Arch::X86_64);
        let compile = TaskName::parse("compile").unwrap();
        let plan = Plan {
            tasks: vec![PlannedTask {
                domain: d,
                package: "busybox".into(),
                task: compile.clone(),
                expected: Some(Duration::from_secs(90)),
            }],
        };
        let mut tally = Tally::new();
        let now = Instant::now();
        let planned = Event::Planned(&plan);
        tally.apply(&planned, now);
        assert_eq!(line_for(&planned, &tally, false).unwrap(), "ovm: 1 task(s) to run, ETA 1m30s");
        let task = TaskRef { domain: d, package: "busybox", task: &compile };
        tally.apply(&Event::Started { task, log: Path::new("l") }, now);
        let done = Event::Finished { task, elapsed: Duration::from_millis(41_240) };
        tally.apply(&done, now);
        assert_eq!(line_for(&done, &tally, false).unwrap(), "[1/1] busybox compile 41.2 s");
        assert_eq!(line_for(&done, &tally, true).unwrap(), "\x1b[32m[1/1]\x1b[0m busybox compile 41.2 s");
        let tools = TaskRef { domain: Domain::Tools(Arch::X86_64), package: "make", task: &compile };
        let failed = Event::Failed {
            task: tools,
            elapsed: Duration::from_secs(2),
            log: Path::new("logs/tools/make/compile.log"),
        };
        assert_eq!(
            line_for(&failed, &tally, false).unwrap(),
            "[1/1] tools:make compile FAILED after 2.0 s (log logs/tools/make/compile.log)"
        );
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short(Duration::from_secs(41)), "41s");
        assert_eq!(short(Duration::from_secs(185)), "3m05s");
        assert_eq!(short(Duration::from_secs(3720)), "1h02m");
        assert_eq!(cut("abcdef", 3), "abc…");
    }
}

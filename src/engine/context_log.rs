//! `logs/ARCH/context.log`: one line per task event, appended by every run, so a person (or a
//! test) can see which tasks a run executed, in which order, how long each took and with which
//! signature. Lines are written with a single `write` on an `O_APPEND` file, so lines from
//! parallel workers never interleave.
//!
//! ```text
//! 2026-11-21T10:00:00.123Z run    ovm build x86_64 (pid 4242)
//! 2026-11-21T10:00:00.200Z start  x86_64 busybox compile sig=3f2a…
//! 2026-11-21T10:01:30.010Z done   x86_64 busybox compile 89.81s sig=3f2a…
//! 2026-11-21T10:01:30.010Z failed x86_64 hello compile 0.52s log=logs/x86_64/hello/compile.log
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::EngineError;

#[derive(Debug)]
pub(crate) struct ContextLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl ContextLog {
    pub fn open(path: &Path) -> io::Result<ContextLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(ContextLog { path: path.to_path_buf(), file: Mutex::new(file) })
    }

    /// A log that keeps nothing: for the commands that assess tasks but run none (status, info,
    /// spec), whose `Ctx` needs a log to hand to tasks that will never start.
    pub fn discard() -> Result<ContextLog, EngineError> {
        let path = Path::new("/dev/null");
        ContextLog::open(path).map_err(|source| EngineError::Write { path: path.into(), source })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn line(&self, event: &str, rest: &str) {
        let ts = humantime::format_rfc3339_millis(SystemTime::now());
        let line = format!("{ts} {event:<6} {rest}\n");
        // A log line that cannot be written must not fail the build it describes.
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }

    pub fn run_started(&self, what: &str) {
        self.line("run", &format!("{what} (pid {})", std::process::id()));
    }

    pub fn start(&self, domain: &str, pkg: &str, task: &str, sig: &str) {
        self.line("start", &format!("{domain} {pkg} {task} sig={}", short(sig)));
    }

    pub fn done(&self, domain: &str, pkg: &str, task: &str, took: Duration, sig: &str) {
        self.line("done", &format!("{domain} {pkg} {task} {:.2}s sig={}", took.as_secs_f64(), short(sig)));
    }

    pub fn failed(&self, domain: &str, pkg: &str, task: &str, took: Duration, log: &Path) {
        self.line("failed", &format!("{domain} {pkg} {task} {:.2}s log={}", took.as_secs_f64(), log.display()));
    }
}

fn short(sig: &str) -> &str {
    &sig[..sig.len().min(16)]
}

/// One parsed `start` line: what tests and `ovm status` use to see what ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub domain: String,
    pub package: String,
    pub task: String,
}

/// The tasks started by the last run recorded in `text` (everything after the last `run` line).
pub fn tasks_of_last_run(text: &str) -> Vec<Started> {
    let Some(last) = runs(text).pop() else { return Vec::new() };
    last.events
        .into_iter()
        .filter(|e| e.kind == TaskEventKind::Start)
        .map(|e| Started { domain: e.domain, package: e.package, task: e.task })
        .collect()
}

/// What one task line of a context log says happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TaskEventKind {
    Start,
    /// Finished, after the time given (`sstate`: restored from the shared-state cache, with no
    /// start line; logs of older ovm versions give it zero time).
    Done(Duration),
    Failed(Duration),
}

/// One `start`, `done` or `failed` line, parsed back.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvent {
    /// When the line was written: a task's start, or its end.
    pub at: SystemTime,
    pub kind: TaskEventKind,
    pub domain: String,
    pub package: String,
    pub task: String,
}

/// One run of ovm as a context log records it: its `run` header and the task lines after it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRun {
    /// The header's time; for task lines before any header (a log from an older ovm), the first
    /// line's.
    pub at: SystemTime,
    /// The command (`ovm build x86_64`).
    pub what: String,
    /// The ovm process: the runs of one build in the logs of several domains share it.
    pub pid: Option<u32>,
    pub events: Vec<TaskEvent>,
}

/// Every run recorded in `text`, oldest first. Lines that do not parse (a torn last line of a run
/// that was killed while writing, a hand edit) are skipped: the log describes a build, it does not
/// decide one.
pub fn runs(text: &str) -> Vec<LoggedRun> {
    let mut runs: Vec<LoggedRun> = Vec::new();
    for line in text.lines() {
        let Some((ts, rest)) = line.split_once(' ') else { continue };
        let Ok(at) = humantime::parse_rfc3339(ts) else { continue };
        let rest = rest.trim_start();
        let (event, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let rest = rest.trim_start();
        if event == "run" {
            let (what, pid) = match rest.rsplit_once(" (pid ") {
                Some((what, pid)) => (what, pid.strip_suffix(')').and_then(|p| p.parse().ok())),
                None => (rest, None),
            };
            runs.push(LoggedRun { at, what: what.to_string(), pid, events: Vec::new() });
            continue;
        }
        let mut w = rest.split_whitespace();
        let (Some(domain), Some(package), Some(task)) = (w.next(), w.next(), w.next()) else { continue };
        let took = || w.clone().next().and_then(|t| t.strip_suffix('s')?.parse::<f64>().ok());
        let took = || took().and_then(|s| Duration::try_from_secs_f64(s).ok());
        let kind = match event {
            "start" => TaskEventKind::Start,
            "done" => match took() {
                Some(d) => TaskEventKind::Done(d),
                None => continue,
            },
            "failed" => match took() {
                Some(d) => TaskEventKind::Failed(d),
                None => continue,
            },
            _ => continue,
        };
        let event = TaskEvent { at, kind, domain: domain.into(), package: package.into(), task: task.into() };
        match runs.last_mut() {
            Some(run) => run.events.push(event),
            None => runs.push(LoggedRun { at, what: String::new(), pid: None, events: vec![event] }),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_run_tasks_are_parsed_back() {
        let d = tempfile::tempdir().unwrap();
        let log = ContextLog::open(&d.path().join("logs/x86_64/context.log")).unwrap();
        log.run_started("ovm build x86_64");
        log.start("x86_64", "old", "compile", "aa");
        log.run_started("ovm build x86_64");
        log.start("x86_64", "hello", "configure", "0123456789abcdef0123");
        log.done("x86_64", "hello", "configure", Duration::from_millis(1500), "0123456789abcdef0123");
        log.failed("x86_64", "hello", "compile", Duration::from_millis(20), Path::new("logs/x/hello/compile.log"));
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(text.contains("done   x86_64 hello configure 1.50s sig=0123456789abcdef\n"), "{text}");
        let started = tasks_of_last_run(&text);
        assert_eq!(
            started,
            vec![Started { domain: "x86_64".into(), package: "hello".into(), task: "configure".into() }]
        );
    }
    #[test]
    fn runs_are_read_back_with_times_and_durations() {
        let d = tempfile::tempdir().unwrap();
        let log = ContextLog::open(&d.path().join("context.log")).unwrap();
        log.start("x86_64", "stray", "compile", "aa");
        log.run_started("ovm build x86_64");
        log.start("x86_64", "hello", "configure", "0123456789abcdef0123");
        log.done("x86_64", "hello", "configure", Duration::from_millis(1500), "0123456789abcdef0123");
        log.failed("x86_64", "hello", "compile", Duration::from_millis(20), Path::new("logs/x/hello/compile.log"));
        log.done("x86_64", "bye", "sstate", Duration::ZERO, "bb");
        let mut text = std::fs::read_to_string(log.path()).unwrap();
        text.push_str("2026-11-21T10:00:00.123Z done   x86_64 torn\n");
        let runs = runs(&text);
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert_eq!((runs[0].pid, runs[0].events.len()), (None, 1));
        let run = &runs[1];
        assert_eq!((run.what.as_str(), run.pid), ("ovm build x86_64", Some(std::process::id())));
        let kinds: Vec<_> = run.events.iter().map(|e| (e.package.as_str(), e.task.as_str(), e.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("hello", "configure", TaskEventKind::Start),
                ("hello", "configure", TaskEventKind::Done(Duration::from_millis(1500))),
                ("hello", "compile", TaskEventKind::Failed(Duration::from_millis(20))),
                ("bye", "sstate", TaskEventKind::Done(Duration::ZERO)),
            ]
        );
        assert!(run.events.windows(2).all(|w| w[0].at <= w[1].at) && run.at <= run.events[0].at);
    }
}

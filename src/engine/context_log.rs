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
    let lines: Vec<&str> = text.lines().collect();
    let last_run = lines.iter().rposition(|l| l.split_whitespace().nth(1) == Some("run")).map_or(0, |i| i + 1);
    lines[last_run..]
        .iter()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let _ts = w.next()?;
            if w.next()? != "start" {
                return None;
            }
            Some(Started { domain: w.next()?.into(), package: w.next()?.into(), task: w.next()?.into() })
        })
        .collect()
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
}

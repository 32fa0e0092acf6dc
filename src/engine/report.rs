//! What `ovm build` tells the person who ran it: a summary when it worked (packages built, reused
//! or taken from the shared-state cache, time, image path, size and sha256); when it failed, for
//! each failed task the last lines of its log and the log's path, then everything on one screen: a
//! table of the failed tasks (package, task, the first error line of its log, the log) and, when
//! sources failed because no place answered, one line saying so with what to do offline.

use std::io::Write;
use std::process::ExitCode;

use crate::project::Project;
use crate::settings;

use super::build::{self, BuildFailure, BuildOptions};
use super::package::{self, Failure, Outcome};
use super::progress::Observer;
use super::steplog;
use super::EngineError;

/// Runs `ovm build`, telling `observer` what it does, and prints its outcome; the exit code is the
/// process's.
pub fn build(project: &Project, opts: &BuildOptions, quiet: bool, observer: &dyn Observer) -> ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let result = build::build(project, opts, observer);
    // The live display is gone before the outcome is printed under it.
    observer.run_ended();
    match result {
        Ok(summary) => {
            let mut out = stdout.lock();
            let count = |f: &dyn Fn(&Outcome) -> bool| summary.packages.iter().filter(|p| f(&p.outcome)).count();
            let built = count(&|o| matches!(o, Outcome::Built(_)));
            let cached = count(&|o| matches!(o, Outcome::FromCache));
            let reused = count(&|o| matches!(o, Outcome::Reused));
            if !quiet {
                for p in &summary.packages {
                    let _ = writeln!(out, "  {:<10} {:<16} {}", p.domain.to_string(), p.name, p.outcome);
                }
            }
            if built == 0 && cached == 0 {
                let _ = writeln!(out, "ovm: nothing to do: reused all {reused} packages");
            } else {
                let _ = writeln!(out, "ovm: {built} built, {cached} from cache, {reused} reused");
            }
            if let Some(line) = summary.cache.as_ref().and_then(cache_line) {
                let _ = writeln!(out, "ovm: cache: {line}");
            }
            if let Some(img) = &summary.image {
                let _ = writeln!(
                    out,
                    "ovm: image {} ({} bytes, {:.2} MB){}",
                    img.path.display(),
                    img.size,
                    img.size as f64 / 1e6,
                    if img.repacked { "" } else { ", unchanged" }
                );
                let _ = writeln!(out, "ovm: manifest {}", img.manifest.display());
                let _ = writeln!(out, "{}  {}", img.sha256, img.path.display());
            }
            let _ = writeln!(out, "ovm: done in {:.1} s", summary.elapsed.as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(failure) => {
            print_failure(&failure, &mut stderr.lock());
            ExitCode::FAILURE
        }
    }
}

/// The summary's cache line: hits by tier, misses, uploads; `None` when the run asked no cache
/// and has no remote.
fn cache_line(c: &super::sstate::CacheCounts) -> Option<String> {
    let asked = c.local_hits + c.remote_hits + c.misses;
    if asked == 0 && !c.remote {
        return None;
    }
    let mb = |b: u64| b as f64 / 1e6;
    let mut line = format!("{} hit, {} missed", c.local_hits + c.remote_hits, c.misses);
    if c.remote {
        line.push_str(&format!(
            " ({} local, {} remote, {:.1} MB downloaded); {} uploaded ({:.1} MB)",
            c.local_hits,
            c.remote_hits,
            mb(c.bytes_down),
            c.uploads,
            mb(c.bytes_up)
        ));
    }
    Some(line)
}

/// A run that stopped (`ovm build`, `ovm toolchain`): each failed task's log tail and path, the
/// run's own error, the table of failed tasks, the network cause if that is what it was, and how
/// to go on. A source that failed because no place answered gets no block of its own: the table
/// names it and the cause line says why, once for all of them.
pub(crate) fn print_failure(failure: &BuildFailure, err: &mut dyn Write) {
    let offline: Vec<&Failure> = failure.failures.iter().filter(|f| unreachable(f)).collect();
    for f in failure.failures.iter().filter(|f| !unreachable(f)) {
        package::report_failure(f, err);
    }
    if let Some(e) = &failure.error {
        let _ = writeln!(err, "ovm: error: {e}");
    }
    if failure.failures.is_empty() {
        return;
    }
    print_table(&failure.failures, err);
    if !offline.is_empty() {
        let _ = writeln!(err, "{}", offline_cause(offline.len()));
    }
    let _ = writeln!(err, "ovm: fix the cause and run the same command again: it resumes where it stopped");
}

/// Whether a failure is a source no place answered for.
fn unreachable(f: &Failure) -> bool {
    matches!(&f.error, EngineError::Fetch(e) if e.unreachable())
}

/// The one line for every source that failed for want of a network, with the way to build
/// offline.
fn offline_cause(sources: usize) -> String {
    format!(
        "ovm: cause: no network: {sources} source(s) could not be fetched, no place answered (name not resolved, \
         connection refused or timed out); offline, fill a mirror directory on a machine with network \
         (scripts/fill-mirror.sh DIR) and build with {}=DIR (or [fetch] mirrors in config/ovm.toml)",
        settings::MIRRORS
    )
}

/// The most of an error line the table shows.
const TABLE_ERROR_MAX: usize = 100;

/// `package  task  first error line  log`, one row per failed task, columns aligned.
fn print_table(failures: &[Failure], err: &mut dyn Write) {
    let rows: Vec<[String; 4]> = failures
        .iter()
        .map(|f| {
            let log = if f.log.as_os_str().is_empty() { "-".to_string() } else { f.log.display().to_string() };
            [f.package.clone(), f.task.to_string(), first_error_line(f), log]
        })
        .collect();
    let header = ["package", "task", "error", "log"].map(String::from);
    let width = |i: usize| rows.iter().chain([&header]).map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let _ = writeln!(err, "ovm: {} failed task(s):", rows.len());
    for r in std::iter::once(&header).chain(&rows) {
        let _ = writeln!(err, "  {:<w0$}  {:<w1$}  {:<w2$}  {}", r[0], r[1], r[2], r[3]);
    }
}

/// What the table says went wrong: for a source, the first place's answer (apt's words stay in the
/// log); for a task, the first line of the end of its log that reads like an error, else its last
/// line, else the error itself.
pub(crate) fn first_error_line(f: &Failure) -> String {
    let line = match &f.error {
        EngineError::Fetch(e) if e.unreachable() => "no place answered (network)".to_string(),
        EngineError::Fetch(crate::fetch::FetchError::Exhausted { attempts, file, .. }) => attempts
            .iter()
            .find(|a| a.kind != crate::fetch::AttemptKind::Apt)
            .map(|a| format!("{} ({})", a.error, a.place))
            .unwrap_or_else(|| format!("cannot fetch {file}")),
        _ => error_line_of_log(&f.log).unwrap_or_else(|| f.error.to_string()),
    };
    steplog::cut(line.lines().next().unwrap_or_default().trim(), TABLE_ERROR_MAX)
}

/// Lines of a log's end searched for the first error line.
const ERROR_SCAN_LINES: usize = 200;

/// The first line among the last [`ERROR_SCAN_LINES`] of `log` that reads like an error (a
/// compiler's `error:`, make's `***`, a shell's `not found`), else the last non-empty line.
fn error_line_of_log(log: &std::path::Path) -> Option<String> {
    let lines = steplog::tail(log, ERROR_SCAN_LINES);
    const MARKS: &[&str] =
        &["error", "fatal", "***", "not found", "no such file", "cannot", "undefined reference", "permission denied"];
    let is_error = |l: &str| {
        let l = l.to_ascii_lowercase();
        MARKS.iter().any(|m| l.contains(m))
    };
    lines
        .iter()
        .find(|l| is_error(l))
        .or_else(|| lines.iter().rev().find(|l| !l.trim().is_empty()))
        .map(|l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::{Attempt, AttemptKind, FetchError};
    use crate::layout::TaskName;
    use std::path::PathBuf;

    fn fetch_failure(pkg: &str, log: PathBuf, attempts: Vec<Attempt>) -> Failure {
        let error = FetchError::Exhausted { recipe: pkg.into(), file: format!("{pkg}.tar.gz"), attempts };
        Failure { package: pkg.into(), task: TaskName::fetch(), log, error: EngineError::Fetch(error), started: true }
    }

    fn attempt(place: &str, error: &str, kind: AttemptKind) -> Attempt {
        Attempt { place: place.into(), error: error.into(), kind }
    }

    const APT: &str = "apt-get -q --download-only --only-source source busybox failed (exit status: 100): \
                       E: You must put some 'deb-src' URIs in your sources.list";

    /// The offline first run: every source's places unreachable, apt failing in its own words. The
    /// console gets the table and one cause line naming OVM_MIRRORS and scripts/fill-mirror.sh;
    /// apt's words are only in the logs; a compile failure keeps its log tail and row.
    #[test]
    fn offline_sources_collapse_into_one_cause_line_and_apt_stays_in_the_log() {
        let d = tempfile::tempdir().unwrap();
        let mut failures = Vec::new();
        for pkg in ["busybox", "make"] {
            let log = d.path().join(format!("logs/x86_64/{pkg}/fetch.log"));
            let f = fetch_failure(
                pkg,
                log.clone(),
                vec![
                    attempt(
                        "https://mirror.example/x",
                        "dns error: failed to lookup address",
                        AttemptKind::Unreachable,
                    ),
                    attempt("Debian source package busybox (busybox.orig.tar.bz2)", APT, AttemptKind::Apt),
                ],
            );
            super::super::step::write_log(&log, &f.error.to_string()).unwrap();
            failures.push(f);
        }
        let log = d.path().join("logs/x86_64/hello/compile.log");
        super::super::step::write_log(
            &log,
            "cc -c hello.c
hello.c:3:1: error: expected ';'
make: *** [all] Error 1
",
        )
        .unwrap();
        failures.push(Failure {
            package: "hello".into(),
            task: TaskName::parse("compile").unwrap(),
            log: log.clone(),
            error: EngineError::Internal("step compile exited with status 2".into()),
            started: true,
        });
        let mut out = Vec::new();
        print_failure(&BuildFailure { failures, error: None }, &mut out);
        let text = String::from_utf8(out).unwrap();

        assert!(
            !text.contains("deb-src") && !text.contains("E: "),
            "apt's words on the console:
{text}"
        );
        assert!(std::fs::read_to_string(d.path().join("logs/x86_64/busybox/fetch.log")).unwrap().contains("deb-src"));
        let causes: Vec<&str> = text.lines().filter(|l| l.starts_with("ovm: cause:")).collect();
        assert_eq!(causes.len(), 1, "{text}");
        assert!(causes[0].contains("OVM_MIRRORS") && causes[0].contains("scripts/fill-mirror.sh"), "{text}");
        assert!(causes[0].contains("2 source(s)"), "{text}");
        assert!(
            !text.contains("dns error"),
            "per-place network errors are the cause line's:
{text}"
        );
        // The compile failure keeps its block; the table has all three rows, in order.
        assert!(text.contains("ovm: hello failed at compile"), "{text}");
        let table: Vec<&str> =
            text.lines().skip_while(|l| !l.starts_with("ovm: 3 failed task(s):")).skip(1).take(4).collect();
        assert!(table[0].split_whitespace().eq(["package", "task", "error", "log"]), "{text}");
        assert!(table[1].contains("busybox") && table[1].contains("no place answered (network)"), "{text}");
        assert!(table[3].contains("hello.c:3:1: error: expected ';'") && table[3].contains(&log.display().to_string()));
        // The table comes after the blocks, the cause after the table.
        let at = |needle: &str| text.find(needle).unwrap();
        assert!(at("ovm: hello failed at compile") < at("ovm: 3 failed task(s):"));
        assert!(at("ovm: 3 failed task(s):") < at("ovm: cause:"));
    }

    /// A source that is broken rather than unreachable (a 404, a wrong sha256) is no network
    /// cause: it keeps its own block with every place tried, apt's words still left out.
    #[test]
    fn a_broken_source_is_reported_with_its_places_and_no_network_cause() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("fetch.log");
        let f = fetch_failure(
            "hello",
            log,
            vec![
                attempt("https://a.example/x", "dns error", AttemptKind::Unreachable),
                attempt("https://b.example/x", "HTTP 404 Not Found", AttemptKind::Answered),
                attempt("Debian source package hello (x)", APT, AttemptKind::Apt),
            ],
        );
        let mut out = Vec::new();
        print_failure(&BuildFailure { failures: vec![f], error: None }, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("hello: cannot fetch hello.tar.gz; tried:") && text.contains("HTTP 404"), "{text}");
        assert!(!text.contains("ovm: cause:") && !text.contains("deb-src"), "{text}");
        assert!(text.contains("apt-get failed (its messages are in the log)"), "{text}");
    }
}

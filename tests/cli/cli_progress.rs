//! Progress during a build, on stand-in toolchain parts (`standin`) built by `ovm toolchain`:
//!
//! * on a terminal, a line per running task (its name and the last line of its log) and the
//!   overall bar (`N/M tasks`), with the estimate once an earlier run recorded durations, and
//!   colour; with `NO_COLOR=1` not one colour escape;
//! * without a terminal, one plain line per finished task (`[3/9] cross-x86_64:gcc all-gcc 0.5 s`)
//!   and no log-line duplicate of it;
//! * `-q`: neither.

use crate::build_support::{text, TestProject};
use crate::standin::{self, ovm, STEP_SAYS};
use crate::terminal_support::Terminal;

use std::time::Duration;

/// A cold run on a loaded CI machine: an upper bound, not an expectation.
const PATIENCE: Duration = Duration::from_secs(180);

/// The ANSI colour escapes (SGR, `ESC [ … m`) in `screen`.
fn colour_escapes(screen: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in screen.match_indices("\x1b[") {
        let rest = &screen[i + 2..];
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ';')).unwrap_or(rest.len());
        if rest[end..].starts_with('m') {
            found.push(format!("ESC[{}m", &rest[..end]));
        }
    }
    found
}

/// The plain `[done/total] NAME SECONDS s` lines of `out`.
fn plain_lines(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| {
            let Some(rest) = l.strip_prefix('[') else { return false };
            let Some((count, name)) = rest.split_once("] ") else { return false };
            count.split_once('/').is_some_and(|(a, b)| a.parse::<usize>().is_ok() && b.parse::<usize>().is_ok())
                && name.ends_with(" s")
        })
        .collect()
}

#[test]
fn a_terminal_shows_running_tasks_and_the_bar_with_colour_and_an_estimate_from_the_last_run() {
    let p = TestProject::empty();
    standin::write_parts(&p, "live-1", "1", "true");
    // A first run records every task's duration in context.log.
    let out = ovm(&p, &["toolchain", "x86_64"]).output().expect("running ovm");
    assert!(out.status.success(), "{}", text(&out));

    // Every task stale again (another salt): this run has durations to estimate from.
    standin::write_parts(&p, "live-2", "2", "true");
    let mut term = Terminal::spawn(ovm(&p, &["toolchain", "x86_64"]));
    // A running task's line: its name, and the last line of its log.
    let at = term.expect_within("binutils configure", 0, PATIENCE);
    term.expect_within(STEP_SAYS, at, PATIENCE);
    // The overall bar, with the estimate.
    term.expect_within(" tasks", 0, PATIENCE);
    term.expect_within("ETA ", 0, PATIENCE);
    assert_eq!(term.wait_within(PATIENCE), Some(0), "{}", term.screen());
    let screen = term.screen();
    // Each finished task left its line; the last one counts all of them.
    assert!(screen.contains("cross-x86_64:gcc all-gcc"), "{screen}");
    assert!(!colour_escapes(&screen).is_empty(), "no colour on a terminal:\n{screen:?}");
    assert!(!screen.contains("INFO"), "log lines besides the progress:\n{screen}");
}

#[test]
fn no_color_leaves_the_progress_without_colour_escapes() {
    let p = TestProject::empty();
    standin::write_parts(&p, "nocolor", "1", "true");
    let mut cmd = ovm(&p, &["toolchain", "x86_64"]);
    cmd.env("NO_COLOR", "1");
    let mut term = Terminal::spawn(cmd);
    let at = term.expect_within("binutils configure", 0, PATIENCE);
    term.expect_within(STEP_SAYS, at, PATIENCE);
    term.expect_within(" tasks", 0, PATIENCE);
    assert_eq!(term.wait_within(PATIENCE), Some(0), "{}", term.screen());
    let screen = term.screen();
    assert!(screen.contains("cross-x86_64:binutils compile"), "{screen}");
    assert_eq!(colour_escapes(&screen), Vec::<String>::new(), "colour despite NO_COLOR:\n{screen:?}");
}

#[test]
fn without_a_terminal_each_finished_task_is_one_plain_line_and_quiet_shows_none() {
    let p = TestProject::empty();
    standin::write_parts(&p, "plain", "0", "true");
    let out = ovm(&p, &["toolchain", "x86_64"]).output().expect("running ovm");
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = plain_lines(&stderr);
    // fetch, unpack, patch, 3 steps, package for binutils and gcc; 1 step for linux-headers.
    let total = 7 + 7 + 5;
    assert_eq!(lines.len(), total, "{stderr}");
    assert!(lines.iter().all(|l| l.ends_with(&format!("/{total}]")) || l.contains(&format!("/{total}] "))), "{stderr}");
    assert!(lines.last().is_some_and(|l| l.starts_with(&format!("[{total}/{total}] "))), "{stderr}");
    assert!(lines.iter().any(|l| l.contains("] cross-x86_64:gcc all-gcc ")), "{stderr}");
    assert!(!stderr.contains("\x1b["), "escapes in a log:\n{stderr:?}");
    assert!(!stderr.contains("INFO"), "a log line besides the progress line:\n{stderr}");

    // -q: no progress at all (the toolchain's path is still printed on stdout).
    standin::write_parts(&p, "plain-quiet", "0", "true");
    let out = ovm(&p, &["-q", "toolchain", "x86_64"]).output().expect("running ovm");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(plain_lines(&stderr), Vec::<&str>::new(), "{stderr}");
    assert!(!stderr.contains(" tasks"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("toolchain/x86_64"), "{}", text(&out));
}

#[test]
fn quiet_on_a_terminal_draws_no_progress() {
    let p = TestProject::empty();
    standin::write_parts(&p, "quiet-tty", "1", "true");
    let mut term = Terminal::spawn(ovm(&p, &["-q", "toolchain", "x86_64"]));
    assert_eq!(term.wait_within(PATIENCE), Some(0), "{}", term.screen());
    let screen = term.screen();
    assert!(screen.contains("toolchain/x86_64"), "{screen}");
    for shown in [" tasks", "binutils configure", STEP_SAYS, "[1/"] {
        assert!(!screen.contains(shown), "-q showed {shown:?}:\n{screen}");
    }
}

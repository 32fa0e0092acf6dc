//! A step's log and what a failure report shows of it, both bounded whatever the step prints.
//!
//! A step's stdout and stderr are one pipe that ovm relays into `logs/DOMAIN/PKG/STEP.log` (rather
//! than handing the step the file): that is what lets the log stop growing at `[build] log_max`
//! while the step itself runs on undisturbed. Past the cap, the log keeps its head as written, a
//! line saying that the cap was reached, and, once the step ends, the count of bytes cut and the
//! last bytes of the output (at most 1 MiB, half the cap if that is less): the start shows how
//! the step began, the end how it failed, and the middle of a runaway output is what nobody reads.
//!
//! The failure report prints the last [`REPORT_LINES`] lines of a log, each cut to
//! [`REPORT_LINE_MAX`] bytes: one 20 MB line stays a line on the terminal, with the count of
//! bytes it lost, and the report ends with the log's path.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, ExitStatus};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// The most of a capped output's end the log keeps (held in memory while the step runs).
const TAIL_MAX: u64 = 1 << 20;
/// Lines of the log a failure report prints.
pub const REPORT_LINES: usize = 30;
/// Bytes of one line a failure report prints; the rest is counted, not shown.
pub const REPORT_LINE_MAX: usize = 400;
/// How much of a log the report reads at a time while it looks for its last lines.
const SCAN_CHUNK: usize = 64 << 10;
/// What ovm still drains from the pipe after the step's process has exited, should something it
/// left behind (only possible with `--no-sandbox`) hold the pipe open and keep writing.
const DRAIN_AFTER_EXIT: usize = 1 << 20;

/// A log that keeps the head of what is written to it up to `max` bytes, then only a bounded tail.
pub struct CappedLog<W: Write> {
    out: W,
    max: u64,
    head_max: u64,
    head: u64,
    tail: VecDeque<u8>,
    tail_max: usize,
    cut: u64,
}

impl<W: Write> CappedLog<W> {
    pub fn new(out: W, max: u64) -> CappedLog<W> {
        let tail_max = (max / 2).min(TAIL_MAX);
        CappedLog {
            out,
            max,
            head_max: max - tail_max,
            head: 0,
            tail: VecDeque::new(),
            tail_max: tail_max as usize,
            cut: 0,
        }
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let room = (self.head_max - self.head).min(data.len() as u64) as usize;
        let (head, rest) = data.split_at(room);
        if !head.is_empty() {
            self.out.write_all(head)?;
            self.head += head.len() as u64;
        }
        // Past the head, the output waits in memory: it goes to the log whole at the end if it
        // fits the cap, else only its last `tail_max` bytes do.
        self.tail.extend(rest);
        let excess = self.tail.len().saturating_sub(self.tail_max);
        if excess > 0 {
            if self.cut == 0 {
                // Said at once, for whoever follows the log while the step runs.
                let note = format!(
                    "\n[ovm: this log reached log_max ({} bytes): the output is cut from here on; its last {} bytes follow when the step ends]\n",
                    self.max, self.tail_max
                );
                self.out.write_all(note.as_bytes())?;
            }
            self.tail.drain(..excess);
            self.cut += excess as u64;
        }
        Ok(())
    }

    /// Writes what is held of the output's end and gives the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        if self.cut > 0 {
            let note = format!(
                "\n[ovm: {} bytes cut here; the last {} bytes of the output follow]\n",
                self.cut,
                self.tail.len()
            );
            self.out.write_all(note.as_bytes())?;
        }
        let (a, b) = self.tail.as_slices();
        self.out.write_all(a)?;
        self.out.write_all(b)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// How a relayed step ended.
pub struct Relayed {
    pub status: ExitStatus,
    /// The log could not be written (full disk, …): the step ran to its end all the same.
    pub log_error: Option<io::Error>,
}

/// Copies what `child` writes into `pipe` (the read end; the caller holds no write end) into
/// `log` until the pipe is closed or, once `child` has exited, drained; then reaps `child`.
/// `first_output` runs once: after the first bytes reached the log, or when the step ended
/// without writing any. Must run on the thread that spawned `child` (its death signal is tied to
/// that thread, see `sandbox::command`).
pub fn relay(
    pipe: &OwnedFd,
    log: CappedLog<File>,
    child: &mut Child,
    first_output: impl FnOnce(),
) -> io::Result<Relayed> {
    let mut log = Some(log);
    let mut log_error = None;
    let mut first_output = Some(first_output);
    let mut exited = None;
    let mut after_exit = 0;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if exited.is_none() {
            exited = child.try_wait()?;
        }
        if exited.is_some() && after_exit >= DRAIN_AFTER_EXIT {
            break;
        }
        // While the step runs, wake up now and then to notice its exit (see DRAIN_AFTER_EXIT);
        // the pipe's hang-up normally comes first.
        let timeout = if exited.is_some() { PollTimeout::ZERO } else { PollTimeout::from(250u16) };
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) if exited.is_some() => break,
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let n = match nix::unistd::read(pipe, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(e) => return Err(e.into()),
        };
        if exited.is_some() {
            after_exit += n;
        }
        if let Some(l) = log.as_mut() {
            if let Err(e) = l.write(&buf[..n]) {
                // Keep draining: a step blocked on a full pipe would never end.
                log_error = Some(e);
                log = None;
            }
        }
        if let Some(f) = first_output.take() {
            f();
        }
    }
    let status = match exited {
        Some(s) => s,
        None => child.wait()?,
    };
    if let Some(l) = log {
        if let Err(e) = l.finish() {
            log_error.get_or_insert(e);
        }
    }
    if let Some(f) = first_output.take() {
        f();
    }
    Ok(Relayed { status, log_error })
}

/// The last `max` bytes of a log as text (invalid UTF-8 replaced), for searching a failed step's
/// end for what ended it; empty when the log cannot be read.
pub fn tail_bytes(log: &Path, max: u64) -> String {
    let Ok(f) = File::open(log) else { return String::new() };
    let len = f.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(max);
    let mut bytes = vec![0u8; (len - from) as usize];
    match f.read_exact_at(&mut bytes, from) {
        Ok(()) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

/// The last `n` lines of a log, for the failure report; a line longer than [`REPORT_LINE_MAX`]
/// bytes is cut there and says how many bytes it lost. The file is read backwards, only as far as
/// its last `n` line breaks (at most the whole log, which `log_max` bounds), and of each line only
/// what is shown.
pub fn tail(log: &Path, n: usize) -> Vec<String> {
    let Ok(f) = File::open(log) else { return Vec::new() };
    let Ok(len) = f.metadata().map(|m| m.len()) else { return Vec::new() };
    if n == 0 || len == 0 {
        return Vec::new();
    }
    let mut last = [0u8];
    if f.read_exact_at(&mut last, len - 1).is_err() {
        return Vec::new();
    }
    // A final newline ends the last line; it does not start another.
    let mut line_end = if last[0] == b'\n' { len - 1 } else { len };
    let mut lines = Vec::new();
    let mut pos = line_end;
    let mut buf = vec![0u8; SCAN_CHUNK];
    'scan: while pos > 0 {
        let from = pos.saturating_sub(SCAN_CHUNK as u64);
        let chunk = &mut buf[..(pos - from) as usize];
        if f.read_exact_at(chunk, from).is_err() {
            break;
        }
        for (i, _) in chunk.iter().enumerate().rev().filter(|(_, &b)| b == b'\n') {
            let newline = from + i as u64;
            lines.push((newline + 1, line_end));
            line_end = newline;
            if lines.len() == n {
                break 'scan;
            }
        }
        pos = from;
    }
    if lines.len() < n && pos == 0 {
        lines.push((0, line_end));
    }
    lines.iter().rev().map(|&(from, to)| shown_line(&f, from, to)).collect()
}

/// At most `max` characters of `s` (a log line on one screen line), `…` saying it was cut.
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// `line` with every control character but tab written out as `\xNN`: the report goes to the
/// user's terminal, and a build's output must not drive it (escape sequences can retitle it, write
/// the clipboard (OSC 52), or on some terminals answer queries into the shell's input).
fn inert(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if c.is_control() && c != '\t' {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn shown_line(f: &File, from: u64, to: u64) -> String {
    let len = (to - from) as usize;
    let mut bytes = vec![0u8; len.min(REPORT_LINE_MAX)];
    if f.read_exact_at(&mut bytes, from).is_err() {
        return String::new();
    }
    let mut text = inert(&String::from_utf8_lossy(&bytes));
    if len > REPORT_LINE_MAX {
        // A character cut in two shows as U+FFFD; drop it rather than print half of it.
        if text.ends_with('\u{fffd}') {
            text.pop();
        }
        text.push_str(&format!("… ({} bytes cut)", len - REPORT_LINE_MAX));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capped(max: u64, writes: &[&[u8]]) -> String {
        let mut log = CappedLog::new(Vec::new(), max);
        for w in writes {
            log.write(w).unwrap();
        }
        String::from_utf8(log.finish().unwrap()).unwrap()
    }

    #[test]
    fn below_the_cap_the_log_is_the_output() {
        assert_eq!(capped(1000, &[b"abc\n", b"def\n"]), "abc\ndef\n");
        assert_eq!(capped(8, &[b"12345678"]), "12345678");
    }

    /// Attack: a step printing without end filled the disk through its log. The log keeps its head
    /// and its tail, says how much it cut, and never holds much more than the cap.
    #[test]
    fn past_the_cap_the_log_keeps_head_and_tail_and_counts_the_cut() {
        let chunk = [b'x'; 1000];
        let mut writes: Vec<&[u8]> = vec![b"HEAD\n"];
        writes.extend(std::iter::repeat_n(&chunk[..], 100));
        writes.push(b"\nTAIL\n");
        let log = capped(4000, &writes);
        assert!(log.starts_with("HEAD\nxx"), "{log}");
        assert!(log.ends_with("xx\nTAIL\n"), "{log}");
        assert!(log.contains("reached log_max (4000 bytes)"), "{log}");
        // 100_011 bytes written, 2000 of head and 2000 of tail kept.
        assert!(log.contains("[ovm: 96011 bytes cut here; the last 2000 bytes of the output follow]"), "{log}");
        assert!(log.len() < 4000 + 300, "{}", log.len());
    }

    fn log_file(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        f
    }

    #[test]
    fn the_report_shows_the_last_lines() {
        let text: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        let f = log_file(text.as_bytes());
        let lines = tail(f.path(), 3);
        assert_eq!(lines, ["line 38", "line 39", "line 40"]);
        assert_eq!(tail(log_file(b"").path(), 3), Vec::<String>::new());
        assert_eq!(tail(log_file(b"only").path(), 3), ["only"]);
    }

    /// Attack: one 20 MB line in the log of a failed step went to the terminal whole.
    #[test]
    fn a_huge_line_is_cut_in_the_report_with_its_size() {
        let mut content = b"start\n".to_vec();
        content.extend(std::iter::repeat_n(b'y', 3 << 20));
        content.extend(b"\nexit 1\n");
        let f = log_file(&content);
        let lines = tail(f.path(), 30);
        assert_eq!(lines.len(), 3, "{:?}", lines.iter().map(String::len).collect::<Vec<_>>());
        assert_eq!(lines[0], "start");
        assert_eq!(lines[1], format!("{}… ({} bytes cut)", "y".repeat(REPORT_LINE_MAX), (3 << 20) - REPORT_LINE_MAX));
        assert_eq!(lines[2], "exit 1");
        // Invalid UTF-8 does not end the report early.
        let f = log_file(b"a\n\xff\xfe\nb\n");
        assert_eq!(tail(f.path(), 30), ["a", "\u{fffd}\u{fffd}", "b"]);
    }

    #[test]
    fn the_report_shows_control_characters_instead_of_sending_them_to_the_terminal() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("step.log");
        std::fs::write(&log, "ok\tline\n\x1b]52;c;ZWNobyBwd25lZA==\x07evil\x1b[2J\r\n\u{9b}31m\n").unwrap();
        let lines = tail(&log, 10);
        assert_eq!(lines[0], "ok\tline");
        assert_eq!(lines[1], "\\x1b]52;c;ZWNobyBwd25lZA==\\x07evil\\x1b[2J\\x0d");
        assert_eq!(lines[2], "\\x9b31m");
        assert!(lines.iter().all(|l| !l.chars().any(|c| c.is_control() && c != '\t')), "{lines:?}");
    }

    #[test]
    fn tail_bytes_reads_the_end_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("step.log");
        std::fs::write(&log, "head\nhit the sandbox's pids limit (pids.max=64)\n").unwrap();
        assert_eq!(tail_bytes(&log, 10), "s.max=64)\n");
        assert_eq!(tail_bytes(&log, 1 << 20), "head\nhit the sandbox's pids limit (pids.max=64)\n");
        assert_eq!(tail_bytes(&dir.path().join("missing.log"), 10), "");
    }
}

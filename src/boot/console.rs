//! Reading the serial console: split it into lines, strip terminal escape sequences, and notice the
//! two things `ovm boot` decides on — the expected marker and a kernel panic.
//!
//! Pure logic over bytes, so every rule is unit-tested without qemu. The marker counts only when
//! it ends a line (`TEXT\r\n` or `TEXT\n`): `OVM-INIT-OK x86_64-extra` or a half-written line must
//! not pass. Escape sequences are removed first because on x86 the firmware leaves `ESC c`,
//! `ESC [?7l` … on the console and they can precede the marker on the same line.

/// What the kernel prints when it panics (followed by the reason).
pub const PANIC_TEXT: &str = "Kernel panic - not syncing";

#[derive(Debug, Default)]
pub struct Scanner {
    expect: Option<String>,
    line: Vec<u8>,
    marker_seen: bool,
    panic_line: Option<String>,
    /// The kernel's complaint about /init (e.g. `Failed to execute /init (error -8)`), for the report.
    init_failure: Option<String>,
}

impl Scanner {
    pub fn new(expect: Option<&str>) -> Scanner {
        Scanner { expect: expect.map(str::to_string), ..Scanner::default() }
    }

    /// Feeds console bytes in any chunking.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                self.end_line(true);
            } else {
                self.line.push(b);
            }
        }
    }

    /// The console closed: a last unterminated line can still show a panic, never the marker.
    pub fn finish(&mut self) {
        self.end_line(false);
    }

    pub fn marker_seen(&self) -> bool {
        self.marker_seen
    }
    pub fn panic_line(&self) -> Option<&str> {
        self.panic_line.as_deref()
    }
    pub fn init_failure(&self) -> Option<&str> {
        self.init_failure.as_deref()
    }

    fn end_line(&mut self, terminated: bool) {
        if self.line.is_empty() {
            return;
        }
        let text = strip_escapes(&self.line);
        self.line.clear();
        let text = String::from_utf8_lossy(&text);
        if self.panic_line.is_none() {
            if let Some(at) = text.find(PANIC_TEXT) {
                self.panic_line = Some(text[at..].trim_end().to_string());
            }
        }
        if self.init_failure.is_none() && (text.contains("Failed to execute /init") || text.contains("No working init"))
        {
            let start = text.find(']').map_or(0, |i| i + 1);
            self.init_failure = Some(text[start..].trim().to_string());
        }
        if terminated && !self.marker_seen {
            if let Some(expect) = &self.expect {
                self.marker_seen = text.ends_with(expect.as_str());
            }
        }
    }
}

/// Removes ANSI/VT100 escape sequences: CSI (`ESC [` … final byte), OSC (`ESC ]` … BEL or `ESC \`),
/// and two-byte escapes (`ESC c`, `ESC 7`, …). Other control bytes except TAB are dropped too.
pub fn strip_escapes(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b != 0x1b {
            if b >= 0x20 || b == b'\t' {
                out.push(b);
            }
            i += 1;
            continue;
        }
        match line.get(i + 1) {
            Some(b'[') => {
                i += 2;
                while i < line.len() && !(0x40..=0x7e).contains(&line[i]) {
                    i += 1;
                }
                i += 1; // the final byte
            }
            Some(b']') => {
                i += 2;
                while i < line.len() {
                    if line[i] == 0x07 {
                        i += 1;
                        break;
                    }
                    if line[i] == 0x1b && line.get(i + 1) == Some(&b'\\') {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            Some(_) => i += 2,
            None => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_after_escape_codes_in_small_chunks() {
        let mut s = Scanner::new(Some("OVM-INIT-OK x86_64"));
        let console = b"\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS\r\n[ 1.0] Run /init\r\n\x1b[0mOVM-INIT-OK x86_64\r\n";
        for chunk in console.chunks(3) {
            s.feed(chunk);
        }
        assert!(s.marker_seen());
        assert!(s.panic_line().is_none());
    }

    #[test]
    fn marker_must_end_the_line() {
        for console in [&b"OVM-INIT-OK x86_64-extra\n"[..], b"OVM-INIT-OK x86", b"OVM-INIT-OK x86_64"] {
            let mut s = Scanner::new(Some("OVM-INIT-OK x86_64"));
            s.feed(console);
            s.finish();
            assert!(!s.marker_seen(), "{:?}", String::from_utf8_lossy(console));
        }
        let mut s = Scanner::new(Some("OVM-INIT-OK x86_64"));
        s.feed(b"+ echo OVM-INIT-OK x86_64\n");
        assert!(s.marker_seen(), "text before the marker on its line is allowed");
    }

    #[test]
    fn panic_and_the_init_failure_are_reported() {
        let mut s = Scanner::new(Some("OK"));
        s.feed(b"[    1.2] Failed to execute /init (error -8)\r\n[    1.3] Kernel panic - not syncing: No working init found.  Try passing init= option to kernel.\r\n");
        assert_eq!(s.init_failure(), Some("Failed to execute /init (error -8)"));
        assert!(s.panic_line().unwrap().starts_with("Kernel panic - not syncing: No working init found."));
        assert!(!s.marker_seen());
    }

    #[test]
    fn an_unterminated_last_line_still_shows_a_panic() {
        let mut s = Scanner::new(None);
        s.feed(b"Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100");
        s.finish();
        assert!(s.panic_line().unwrap().contains("Attempted to kill init"));
    }

    #[test]
    fn strips_csi_osc_and_short_escapes() {
        assert_eq!(strip_escapes(b"\x1b[1;32mgreen\x1b[0m \x1b]0;title\x07x\x1bcy\x01"), b"green xy");
    }
}

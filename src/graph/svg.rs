//! The little SVG the pictures need, written by hand: a crate for it would be heavier than the
//! rectangles, lines and text it would write. Every piece of text goes through [`esc`].

use std::fmt::Write as _;

/// The fonts: a sans-serif every browser has; widths are estimated from the character count.
pub const FONT: &str = "DejaVu Sans, Verdana, Arial, sans-serif";
pub const MONO: &str = "DejaVu Sans Mono, Menlo, Consolas, monospace";

/// `text` made safe for XML character data and attribute values: markup characters escaped, and
/// characters XML 1.0 does not allow at all (most control characters) replaced by U+FFFD, so a
/// package or file name can never break out of the element it labels.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A rough width of `text` in pixels at `size` px: what layouts reserve for a label.
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.62
}

/// `text`, shortened with an ellipsis to about `width` px at `size` px.
pub fn fit(text: &str, width: f64, size: f64) -> String {
    let max = (width / (size * 0.62)).floor().max(1.0) as usize;
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{keep}…")
}

/// An SVG document being written.
pub struct Svg {
    out: String,
}

impl Svg {
    /// A document of `width` × `height` px with a white background and `title` (what a browser
    /// tab shows).
    pub fn new(width: f64, height: f64, title: &str) -> Svg {
        let mut out = String::new();
        let _ = write!(
            out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             font-family=\"{FONT}\" font-size=\"12\">\n<title>{t}</title>\n\
             <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\n",
            w = num(width),
            h = num(height),
            t = esc(title),
        );
        Svg { out }
    }

    /// Raw markup (definitions, groups); the caller escapes what it puts in.
    pub fn raw(&mut self, markup: &str) {
        self.out.push_str(markup);
        self.out.push('\n');
    }

    #[allow(clippy::too_many_arguments)] // an SVG rect has this many attributes
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, extra: &str, tooltip: Option<&str>) {
        let _ = write!(
            self.out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\"{}{extra}",
            num(x),
            num(y),
            num(w.max(0.0)),
            num(h.max(0.0)),
            if extra.is_empty() { "" } else { " " },
        );
        match tooltip {
            Some(t) => {
                let _ = writeln!(self.out, "><title>{}</title></rect>", esc(t));
            }
            None => self.out.push_str("/>\n"),
        }
    }

    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, extra: &str) {
        let _ = writeln!(
            self.out,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{stroke}\" {extra}/>",
            num(x1),
            num(y1),
            num(x2),
            num(y2),
        );
    }

    /// Text at (x, y) (the baseline); `attrs` like `text-anchor="end" font-weight="bold"`.
    pub fn text(&mut self, x: f64, y: f64, text: &str, attrs: &str) {
        let _ = writeln!(self.out, "<text x=\"{}\" y=\"{}\" {attrs}>{}</text>", num(x), num(y), esc(text));
    }

    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

/// A coordinate with at most two decimals and no trailing zeros: short, and the same bytes for the
/// same layout on every run.
pub fn num(v: f64) -> String {
    let v = if v.is_finite() { (v * 100.0).round() / 100.0 } else { 0.0 };
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// Bytes as people read them: `512 B`, `12.3 KiB`, `1.95 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else if v >= 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

/// A qualitative palette (Tableau 10 and its lighter half): distinct, readable with dark text.
pub const PALETTE: [&str; 20] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#edc948", "#b07aa1", "#76b7b2", "#ff9da7", "#9c755f", "#bab0ac", "#e15759",
    "#a0cbe8", "#ffbe7d", "#8cd17d", "#f1ce63", "#d4a6c8", "#86bcb6", "#fabfd2", "#d7b5a6", "#79706e", "#ff9d9a",
];

/// A colour for `name` that does not depend on what else is drawn (FNV-1a over its bytes).
pub fn colour_of(name: &str) -> &'static str {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    PALETTE[h as usize % PALETTE.len()]
}

/// Whether dark text reads better than white on `fill` (`#rrggbb`).
pub fn dark_text_on(fill: &str) -> bool {
    let hex = fill.trim_start_matches('#');
    let c = |i: usize| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("80"), 16).unwrap_or(128) as f64;
    0.299 * c(0) + 0.587 * c(2) + 0.114 * c(4) > 150.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_escape_its_element() {
        assert_eq!(esc("a<b>&\"c'\u{1}\u{7}x"), "a&lt;b&gt;&amp;&quot;c&#39;\u{fffd}\u{fffd}x");
        assert_eq!(esc("</text><script>alert(1)</script>"), "&lt;/text&gt;&lt;script&gt;alert(1)&lt;/script&gt;");
        let mut s = Svg::new(10.0, 10.0, "t<");
        s.text(1.0, 2.0, "x&y", "");
        let doc = s.finish();
        assert!(doc.contains("<title>t&lt;</title>") && doc.contains(">x&amp;y</text>"), "{doc}");
    }

    #[test]
    fn numbers_and_sizes_read_well() {
        assert_eq!([num(1.0), num(1.005), num(-0.001), num(12.5), num(f64::NAN)], ["1", "1", "0", "12.5", "0"]);
        assert_eq!(
            [bytes(5), bytes(2048), bytes(1_982_256), bytes(150 << 20)],
            ["5 B", "2.00 KiB", "1.89 MiB", "150 MiB"]
        );
        assert_eq!(fit("abcdefghij", 5.0 * 12.0 * 0.62, 12.0), "abcd…");
        assert!(dark_text_on("#edc948") && !dark_text_on("#4e79a7"));
        assert_eq!(colour_of("busybox"), colour_of("busybox"));
    }
}

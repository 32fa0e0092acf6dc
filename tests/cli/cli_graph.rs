//! `ovm graph build|size|depends ARCH`: pictures of a real (small) build, checked the way a person
//! would look at them — opened in a browser (headless Chromium), which must draw something that is
//! not blank and names the packages — and by their content: the critical path, the sizes, the dot
//! file (which Graphviz must accept, where it is installed).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build_support::{self, on_path, text, TestProject};
use crate::engine_fixture::{bye, project, write_greet_set};

/// The browser the pictures are checked in (Debian's `chromium`, installed by scripts/setup.sh).
const CHROMIUM: &str = "chromium";

/// Whether the browser checks can run; when they cannot, says so loudly (CI has it: setup.sh).
fn chromium_or_skip(what: &str) -> bool {
    if on_path(CHROMIUM) {
        return true;
    }
    eprintln!(
        "\n{bar}\n!! SKIPPED: {what}: `{CHROMIUM}` is not installed, so the pictures were NOT opened in a \
         browser.\n!! {hint}\n{bar}\n",
        bar = "!".repeat(100),
        hint = build_support::SETUP_HINT
    );
    false
}

/// What Chromium makes of a picture: the screenshot's pixels and the document as it parsed it.
struct Rendered {
    width: usize,
    height: usize,
    /// RGB, row by row.
    rgb: Vec<[u8; 3]>,
    dom: String,
}

fn render(file: &Path, scratch: &Path) -> Rendered {
    let url = format!("file://{}", file.display());
    let profile =
        scratch.join(format!("chromium-profile-{}", file.file_name().and_then(|n| n.to_str()).unwrap_or("x")));
    let shot = scratch.join(format!("{}.png", file.file_name().and_then(|n| n.to_str()).unwrap_or("shot")));
    let chromium = |extra: &[&str]| {
        let out = Command::new(CHROMIUM)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,800"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(&url)
            .env("HOME", scratch)
            .output()
            .expect("running chromium");
        assert!(out.status.success(), "chromium {extra:?} {url} failed:\n{}", text(&out));
        out
    };
    chromium(&[&format!("--screenshot={}", shot.display())]);
    let dom = String::from_utf8_lossy(&chromium(&["--dump-dom"]).stdout).into_owned();
    let (width, height, rgb) = decode_png(&fs::read(&shot).expect("chromium wrote no screenshot"));
    Rendered { width, height, rgb, dom }
}

/// A PNG as Chromium writes it (8-bit RGB or RGBA, not interlaced) → its pixels: the few lines of
/// the format this needs, on the zlib the crate already has.
fn decode_png(png: &[u8]) -> (usize, usize, Vec<[u8; 3]>) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut width, mut height, mut channels) = (0usize, 0usize, 0usize);
    let mut idat = Vec::new();
    let mut at = 8;
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes")) as usize;
        let kind = &png[at + 4..at + 8];
        let data = &png[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
                height = u32::from_be_bytes(data[4..8].try_into().expect("4 bytes")) as usize;
                assert_eq!((data[8], data[12]), (8, 0), "only 8-bit, non-interlaced PNGs are decoded here");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("PNG colour type {other} is not decoded here"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&idat[..]), &mut raw).expect("inflating IDAT");
    let stride = width * channels;
    assert_eq!(raw.len(), height * (stride + 1), "PNG data of the wrong size");
    let mut prev = vec![0u8; stride];
    let mut pixels = Vec::with_capacity(width * height);
    for row in raw.chunks(stride + 1) {
        let (filter, data) = (row[0], &row[1..]);
        let mut cur = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= channels { cur[i - channels] } else { 0 };
            let b = prev[i];
            let c = if i >= channels { prev[i - channels] } else { 0 };
            let predicted = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = ((p - i16::from(a)).abs(), (p - i16::from(b)).abs(), (p - i16::from(c)).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("PNG filter {f}"),
            };
            cur[i] = data[i].wrapping_add(predicted);
        }
        pixels.extend(cur.chunks(channels).map(|p| [p[0], p[1], p[2]]));
        prev = cur;
    }
    (width, height, pixels)
}

/// Opens `file` in Chromium and checks that it is a picture: it parsed (no XML error page), has
/// colour, is not mostly empty, and its text names every one of `names`.
fn assert_looks_like_a_picture(file: &Path, scratch: &Path, names: &[&str]) -> PathBuf {
    let r = render(file, scratch);
    assert!(
        !r.dom.contains("This page contains the following errors") && !r.dom.contains("parsererror"),
        "{} is not well-formed for the browser:\n{}",
        file.display(),
        r.dom
    );
    for name in names {
        assert!(r.dom.contains(name), "{} does not name `{name}` once rendered:\n{}", file.display(), r.dom);
    }
    let mut colours = std::collections::BTreeSet::new();
    let background = [255u8, 255, 255];
    let mut inked = 0usize;
    for p in &r.rgb {
        colours.insert(*p);
        if *p != background {
            inked += 1;
        }
    }
    let share = inked as f64 / r.rgb.len() as f64;
    eprintln!(
        "{}: {}x{} screenshot, {} distinct colours, {:.1} % of pixels not background",
        file.display(),
        r.width,
        r.height,
        colours.len(),
        share * 100.0
    );
    assert!(colours.len() > 8, "{} renders in {} colours: blank?", file.display(), colours.len());
    assert!(share > 0.02, "{} is {:.2} % ink: a blank page?", file.display(), share * 100.0);
    scratch.join(format!("{}.png", file.file_name().and_then(|n| n.to_str()).unwrap_or("shot")))
}

/// The picture files `ovm graph WHAT x86_64` printed, which must exist.
fn graph(p: &TestProject, what: &str) -> Vec<PathBuf> {
    let out = p.run(&["graph", what, "x86_64"]);
    assert!(out.status.success(), "ovm graph {what} x86_64 failed:\n{}", text(&out));
    let files: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout).lines().map(PathBuf::from).collect();
    assert!(!files.is_empty(), "ovm graph {what} printed no file:\n{}", text(&out));
    for f in &files {
        assert!(
            f.starts_with(p.path().join("output/x86_64/graphs")),
            "{} is not in output/x86_64/graphs/",
            f.display()
        );
        assert!(f.is_file(), "{} was printed but not written", f.display());
    }
    files
}

#[test]
fn the_three_pictures_of_a_real_build_render_and_name_its_packages() {
    let p = project();
    write_greet_set(&p, "graph");
    bye().write(&p, "graph");
    p.ok(&["build", "x86_64"]);
    let scratch = tempfile::tempdir().expect("scratch dir");

    // build: every task of every package, the critical path and its length.
    let build = graph(&p, "build");
    let svg = fs::read_to_string(&build[0]).expect("build.svg");
    for name in ["libgreet", "hello", "bye", "image", "compile", "install", "critical path"] {
        assert!(svg.contains(name), "build.svg does not show `{name}`");
    }
    let critical = svg
        .lines()
        .find(|l| l.contains("critical path ") && l.contains("→"))
        .unwrap_or_else(|| panic!("build.svg does not say what the critical path is:\n{svg}"));
    // The chain starts at the toolchain, the first phase, and ends at the image; in between it is
    // libgreet then hello (which waits for it) or bye, whichever took longer on this machine.
    let path = critical.split(": ").nth(1).and_then(|p| p.split('<').next()).unwrap_or_default();
    assert!(
        path.starts_with("zig → ") && (path.ends_with("libgreet → hello → image") || path.ends_with("bye → image")),
        "the critical path should run from zig to the image through libgreet and hello, or bye: {critical}"
    );
    assert_eq!(graph(&p, "build"), build);
    assert_eq!(fs::read_to_string(&build[0]).expect("build.svg"), svg, "the same build must draw the same picture");

    // size: by package and by file.
    let size = graph(&p, "size");
    let svg = fs::read_to_string(&size[0]).expect("size.svg");
    for name in ["hello", "bye", "/usr/bin/hello", "/usr/bin/bye", "by package", "largest files"] {
        assert!(svg.contains(name), "size.svg does not show `{name}`");
    }
    // libgreet is a static library: its header and archive are libgreet-dev's, not the image's.
    assert!(!svg.contains("libgreet"), "size.svg shows libgreet, which puts nothing in the image");

    // depends: SVG and dot.
    let depends = graph(&p, "depends");
    assert_eq!(
        depends.iter().map(|f| f.extension().and_then(|e| e.to_str())).collect::<Vec<_>>(),
        [Some("svg"), Some("dot")]
    );
    let dot = fs::read_to_string(&depends[1]).expect("depends.dot");
    assert!(dot.contains("\"hello\" -> \"libgreet\";"), "depends.dot lacks hello → libgreet:\n{dot}");
    for name in ["busybox-tools", "make", "zig"] {
        assert!(dot.contains(&format!("\"{name}\" [label")), "depends.dot lacks the {name} node:\n{dot}");
    }
    if on_path("dot") {
        let out = Command::new("dot").arg("-Tsvg").arg(&depends[1]).output().expect("running dot");
        assert!(out.status.success() && out.stdout.starts_with(b"<?xml"), "dot rejects depends.dot:\n{}", text(&out));
    } else {
        eprintln!("note: Graphviz `dot` is not installed; depends.dot was not fed to it");
    }

    if chromium_or_skip("the_three_pictures_of_a_real_build_render_and_name_its_packages") {
        let names = ["libgreet", "hello", "bye"];
        assert_looks_like_a_picture(&build[0], scratch.path(), &[&names[..], &["critical path"]].concat());
        assert_looks_like_a_picture(&size[0], scratch.path(), &["hello", "bye", "/usr/bin/hello"]);
        assert_looks_like_a_picture(&depends[0], scratch.path(), &[&names[..], &["make", "zig"]].concat());
    }
}

/// A context log written by hand: names no recipe could have (a hand edit, an older ovm) still
/// come out as text in a well-formed picture, and nothing is needed but the log.
#[test]
fn hostile_names_in_a_hand_written_log_stay_text() {
    let p = TestProject::empty();
    let ts = |s: u32| format!("2026-01-02T03:04:{s:02}.000Z");
    let log = format!(
        "{} run    ovm build x86_64 (pid 42)\n\
         {} start  x86_64 a<b>&\"c compile sig=00\n\
         {} done   x86_64 a<b>&\"c compile 3.00s sig=00\n\
         {} start  x86_64 </text><script>alert(1)</script> install sig=00\n\
         {} done   x86_64 </text><script>alert(1)</script> install 1.00s sig=00\n",
        ts(0),
        ts(1),
        ts(4),
        ts(2),
        ts(3)
    );
    p.write("logs/x86_64/context.log", &log);
    let build = graph(&p, "build");
    let svg = fs::read_to_string(&build[0]).expect("build.svg");
    assert!(!svg.contains("<script>") && svg.contains("a&lt;b&gt;&amp;&quot;c"), "{svg}");
    if chromium_or_skip("hostile_names_in_a_hand_written_log_stay_text") {
        let scratch = tempfile::tempdir().expect("scratch dir");
        let r = render(&build[0], scratch.path());
        assert!(!r.dom.contains("This page contains the following errors"), "{}", r.dom);
        assert!(r.dom.contains("a&lt;b&gt;&amp;\"c"), "the name is not text in the rendered page:\n{}", r.dom);
        assert!(!r.dom.contains("<script>"), "a name became markup:\n{}", r.dom);
    }
}

#[test]
fn without_a_build_graph_says_what_to_run_first() {
    let p = TestProject::empty();
    for (what, says) in [("build", "run `ovm build x86_64` first"), ("size", "manifest")] {
        let out = p.run(&["graph", what, "x86_64"]);
        assert!(!out.status.success(), "ovm graph {what} with nothing built succeeded:\n{}", text(&out));
        assert!(text(&out).contains(says), "ovm graph {what} should say `{says}`:\n{}", text(&out));
    }
    let out = p.run(&["graph", "pictures", "x86_64"]);
    assert_eq!(out.status.code(), Some(2), "an unknown picture is a usage error:\n{}", text(&out));
}

//! `ovm graph size ARCH`: what takes the room in the image (Buildroot's `graph-size`), from the
//! manifest the pack writes next to it, which records every path's owner and size.
//!
//! Only regular files count: a hard link's data is stored once (with its first name, a `file`
//! entry), and directories, symlinks and devices take no data worth drawing.

use std::collections::BTreeMap;

use crate::pack::manifest::{escape, EntryType, Manifest};

use super::svg::{self, Svg};

/// One owner (a package, `rootfs`, `overlay`, `device_table`, `[kernel]`) and what it put in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub bytes: u64,
    pub files: usize,
    /// Every entry it owns, files or not.
    pub entries: usize,
}

/// One file of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// As the manifest writes it (printable, `\xNN` for odd bytes).
    pub path: String,
    pub owner: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizes {
    pub arch: String,
    /// The image file's name, compression and size, from the manifest's header.
    pub image: String,
    pub compress: String,
    pub image_bytes: u64,
    /// Largest first, then by name.
    pub owners: Vec<Owner>,
    /// The largest files, largest first, then by path.
    pub largest: Vec<File>,
    pub total_bytes: u64,
    pub total_files: usize,
}

/// How many of the largest files the picture lists.
pub const LARGEST: usize = 25;

pub fn from_manifest(m: &Manifest) -> Sizes {
    let mut owners: BTreeMap<&str, Owner> = BTreeMap::new();
    let mut files = Vec::new();
    for e in &m.entries {
        let o = owners.entry(e.owner.as_str()).or_insert_with(|| Owner {
            name: e.owner.clone(),
            bytes: 0,
            files: 0,
            entries: 0,
        });
        o.entries += 1;
        if e.kind == EntryType::File {
            o.bytes += e.size;
            o.files += 1;
            files.push(File { path: escape(&e.path), owner: e.owner.clone(), bytes: e.size });
        }
    }
    let mut owners: Vec<Owner> = owners.into_values().collect();
    owners.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    let total_bytes = files.iter().map(|f| f.bytes).sum();
    let total_files = files.len();
    files.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    files.truncate(LARGEST);
    Sizes {
        arch: m.arch.clone(),
        image: m.image.file_name.clone(),
        compress: m.image.compress.clone(),
        image_bytes: m.image.size,
        owners,
        largest: files,
        total_bytes,
        total_files,
    }
}

/// The colour of an owner: the same in both charts, and on every run.
fn owner_colour(name: &str) -> &'static str {
    match name {
        "rootfs" => "#bab0ac",
        "device_table" => "#79706e",
        "overlay" => "#d7b5a6",
        n => svg::colour_of(n),
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0 %".into();
    }
    format!("{:.1} %", part as f64 * 100.0 / whole as f64)
}

/// The picture's width, and the height of a row of its bar charts.
const W: f64 = 1200.0;
const ROW: f64 = 22.0;

/// One row of a bar chart.
struct BarRow {
    /// Already fitted to the room before the bars.
    label: String,
    bar_w: f64,
    fill: &'static str,
    tip: String,
    /// What the row says after its bar.
    value: String,
}

/// A bar chart's rows from `top`: odd rows on a light stripe, each label right-aligned before `x0`
/// (in `label_attrs`), its bar from `x0`, its value after the bar.
fn bar_rows(s: &mut Svg, top: f64, x0: f64, label_attrs: &str, rows: impl Iterator<Item = BarRow>) {
    for (i, r) in rows.enumerate() {
        let y = top + i as f64 * ROW;
        if i % 2 == 1 {
            s.rect(16.0, y, W - 32.0, ROW, "#fafafa", "", None);
        }
        s.text(x0 - 8.0, y + 15.0, &r.label, label_attrs);
        s.rect(x0, y + 4.0, r.bar_w, ROW - 8.0, r.fill, "rx=\"2\"", Some(&r.tip));
        s.text(x0 + r.bar_w + 6.0, y + 15.0, &r.value, "font-size=\"11\" fill=\"#444\"");
    }
}

/// The picture: a bar of shares, a horizontal bar per owner, and the largest files coloured by
/// owner.
pub fn svg(z: &Sizes) -> String {
    let label_w = z.owners.iter().map(|o| svg::text_width(&o.name, 12.0)).fold(0.0, f64::max).clamp(90.0, 260.0) + 16.0;
    let x0 = 16.0 + label_w;
    let x1 = W - 260.0;
    let max = z.owners.first().map_or(1, |o| o.bytes).max(1);
    let owners_y = 132.0;
    let files_title_y = owners_y + z.owners.len() as f64 * ROW + 40.0;
    let files_y = files_title_y + 14.0;
    let height = files_y + z.largest.len() as f64 * ROW + 40.0;

    let title = format!("ovm image size ({}): {}", z.arch, z.image);
    let mut s = Svg::new(W, height, &title);
    s.text(16.0, 26.0, &title, "font-size=\"18\" font-weight=\"bold\" fill=\"#222\"");
    s.text(
        16.0,
        46.0,
        &format!(
            "{} as {} ({}), {} of file data in {} from {} owners",
            svg::bytes(z.image_bytes),
            if z.compress.is_empty() { "-" } else { z.compress.as_str() },
            z.image,
            svg::bytes(z.total_bytes),
            count(z.total_files, "file", "files"),
            z.owners.len()
        ),
        "font-size=\"13\" fill=\"#444\"",
    );

    // The shares, one stacked bar.
    let (sx0, sx1, sy) = (16.0, W - 16.0, 62.0);
    let mut at = sx0;
    for o in &z.owners {
        let w = if z.total_bytes == 0 { 0.0 } else { (sx1 - sx0) * o.bytes as f64 / z.total_bytes as f64 };
        if w <= 0.0 {
            continue;
        }
        let tip = format!("{}: {} ({})", o.name, svg::bytes(o.bytes), percent(o.bytes, z.total_bytes));
        s.rect(at, sy, w, 26.0, owner_colour(&o.name), "stroke=\"#fff\" stroke-width=\"1\"", Some(&tip));
        if w > svg::text_width(&o.name, 11.0) + 8.0 {
            let ink = if svg::dark_text_on(owner_colour(&o.name)) { "#222" } else { "#fff" };
            s.text(at + 4.0, sy + 17.0, &o.name, &format!("font-size=\"11\" fill=\"{ink}\""));
        }
        at += w;
    }

    // By owner.
    s.text(16.0, owners_y - 14.0, "by package", "font-size=\"14\" font-weight=\"bold\" fill=\"#222\"");
    let owners = z.owners.iter().map(|o| BarRow {
        label: svg::fit(&o.name, label_w - 8.0, 12.0),
        bar_w: ((x1 - x0) * o.bytes as f64 / max as f64).max(if o.bytes > 0 { 1.5 } else { 0.0 }),
        fill: owner_colour(&o.name),
        tip: format!(
            "{}: {} in {} ({})",
            o.name,
            svg::bytes(o.bytes),
            count(o.files, "file", "files"),
            count(o.entries, "entry", "entries")
        ),
        value: format!(
            "{} · {} · {}, {}",
            svg::bytes(o.bytes),
            percent(o.bytes, z.total_bytes),
            count(o.files, "file", "files"),
            count(o.entries, "entry", "entries")
        ),
    });
    bar_rows(&mut s, owners_y, x0, "font-size=\"12\" fill=\"#222\" text-anchor=\"end\"", owners);

    // The largest files.
    s.text(
        16.0,
        files_title_y,
        &format!("the {} largest files", z.largest.len()),
        "font-size=\"14\" font-weight=\"bold\" fill=\"#222\"",
    );
    let fmax = z.largest.first().map_or(1, |f| f.bytes).max(1);
    let path_w = 420.0;
    let fx0 = 16.0 + path_w;
    let files = z.largest.iter().map(|f| BarRow {
        label: svg::fit(&f.path, path_w - 16.0, 12.0),
        bar_w: ((x1 - fx0) * f.bytes as f64 / fmax as f64).max(1.5),
        fill: owner_colour(&f.owner),
        tip: format!("{} ({}): {}", f.path, f.owner, svg::bytes(f.bytes)),
        value: format!("{} · {}", svg::bytes(f.bytes), f.owner),
    });
    let path_attrs = format!("font-family=\"{}\" font-size=\"12\" fill=\"#222\" text-anchor=\"end\"", svg::MONO);
    bar_rows(&mut s, files_y, fx0, &path_attrs, files);
    s.text(
        16.0,
        height - 12.0,
        "ovm graph size: from output/ARCH/manifest.txt; file data before compression, hard links counted once",
        "font-size=\"11\" fill=\"#888\"",
    );
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "# ovm initrd manifest v1\n# arch\tx86_64\n# mtime\t0\n\
        # image\tinitrd.cpio.gz\tgzip\tabc\t4000\n\
        # path\ttype\tmode\tuid\tgid\tsize\tsha256\towner\ttarget\n\
        /\tdir\t0755\t0\t0\t0\t-\trootfs\t-\n\
        /bin/busybox\tfile\t4755\t0\t0\t9000\taa\tbusybox\t-\n\
        /bin/sh\tsymlink\t0777\t0\t0\t7\t-\tbusybox\tbusybox\n\
        /usr/bin/hello\tfile\t0755\t0\t0\t3000\tbb\thello\t-\n\
        /usr/bin/hi\thardlink\t0755\t0\t0\t3000\tbb\thello\t/usr/bin/hello\n\
        /etc/a<b>\tfile\t0644\t0\t0\t3000\tcc\trootfs\t-\n\
        /dev/console\tchar\t0600\t0\t0\t0\t-\tdevice_table\t5:1\n";

    #[test]
    fn sizes_count_file_data_once_per_owner() {
        let z = from_manifest(&Manifest::parse(MANIFEST).unwrap());
        let owners: Vec<(&str, u64, usize, usize)> =
            z.owners.iter().map(|o| (o.name.as_str(), o.bytes, o.files, o.entries)).collect();
        assert_eq!(
            owners,
            [("busybox", 9000, 1, 2), ("hello", 3000, 1, 2), ("rootfs", 3000, 1, 2), ("device_table", 0, 0, 1)]
        );
        let files: Vec<&str> = z.largest.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(files, ["/bin/busybox", "/etc/a<b>", "/usr/bin/hello"]);
        assert_eq!((z.total_bytes, z.total_files, z.image_bytes), (15000, 3, 4000));
        let doc = svg(&z);
        assert!(doc.contains("/etc/a&lt;b&gt;") && !doc.contains("a<b>"), "{doc}");
        assert!(doc.contains(">busybox</text>") && doc.contains("60.0 %"), "{doc}");
        assert_eq!(
            doc,
            svg(&from_manifest(&Manifest::parse(MANIFEST).unwrap())),
            "the same input draws the same bytes"
        );
    }
}

//! `output/ARCH/manifest.txt`: one line per archive entry, in archive order, so a person can see
//! what is in the image and where it came from, and tests can compare it with what `cpio -t` and
//! `bsdtar -t` read back.
//!
//! ```text
//! # ovm initrd manifest v1
//! # arch  x86_64
//! # mtime  1700000000
//! # image  initrd.cpio.gz  gzip  <sha256 of the image>  <bytes>
//! # path  type  mode  uid  gid  size  sha256  owner  target
//! /  dir  0755  0  0  0  -  rootfs  -
//! /bin/busybox  file  4755  0  0  1982256  9f…  busybox  -
//! /bin/sh  symlink  0777  0  0  7  -  busybox  busybox
//! /bin/b  hardlink  0644  0  0  6  5891…  rootfs  /bin/a
//! /dev/console  char  0600  0  0  0  -  device_table  5:1
//! ```
//!
//! Columns are TAB-separated (shown with spaces above). `type` is dir, file, hardlink, symlink, char, block or fifo; `mode`
//! is the octal permission bits (with setuid/setgid/sticky); `size` is the content length (the link
//! target's length for symlinks); `sha256` is the content hash for files and hard links, `-`
//! otherwise; `owner` is the package, `rootfs`, `overlay` or `device_table`; `target` is the
//! symlink target, the first name of a hard-linked inode, or `major:minor` for devices. A path or
//! target byte that is a backslash, TAB, newline, another control character or not UTF-8 is written
//! `\\`, `\t`, `\n` or `\xNN`. The header line `# image` names the image the manifest describes.

use std::fmt::Write as _;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest line {line}: {message}")]
    Parse { line: usize, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    Dir,
    File,
    Hardlink,
    Symlink,
    Char,
    Block,
    Fifo,
}

impl EntryType {
    pub fn name(self) -> &'static str {
        match self {
            EntryType::Dir => "dir",
            EntryType::File => "file",
            EntryType::Hardlink => "hardlink",
            EntryType::Symlink => "symlink",
            EntryType::Char => "char",
            EntryType::Block => "block",
            EntryType::Fifo => "fifo",
        }
    }
    fn parse(s: &str) -> Option<EntryType> {
        [
            EntryType::Dir,
            EntryType::File,
            EntryType::Hardlink,
            EntryType::Symlink,
            EntryType::Char,
            EntryType::Block,
            EntryType::Fifo,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Absolute path in the image, as raw bytes (`/bin/sh`).
    pub path: Vec<u8>,
    pub kind: EntryType,
    /// Permission bits (0..=0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Hex sha256 of the content, for files and hard links.
    pub sha256: Option<String>,
    pub owner: String,
    /// Symlink target, first name of a hard link group, or `major:minor` for devices.
    pub target: Option<Vec<u8>>,
}

/// What the manifest says about the image itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageInfo {
    pub file_name: String,
    pub compress: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub arch: String,
    pub mtime: u64,
    pub image: ImageInfo,
    pub entries: Vec<ManifestEntry>,
}

const MAGIC_LINE: &str = "# ovm initrd manifest v1";
const COLUMNS: &str = "# path\ttype\tmode\tuid\tgid\tsize\tsha256\towner\ttarget";

impl Manifest {
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(64 + self.entries.len() * 120);
        out.push_str(MAGIC_LINE);
        out.push('\n');
        let i = &self.image;
        let _ = writeln!(out, "# arch\t{}\n# mtime\t{}", self.arch, self.mtime);
        let _ = writeln!(out, "# image\t{}\t{}\t{}\t{}", i.file_name, i.compress, i.sha256, i.size);
        out.push_str(COLUMNS);
        out.push('\n');
        for e in &self.entries {
            let _ = writeln!(
                out,
                "{}\t{}\t{:04o}\t{}\t{}\t{}\t{}\t{}\t{}",
                escape(&e.path),
                e.kind.name(),
                e.mode,
                e.uid,
                e.gid,
                e.size,
                e.sha256.as_deref().unwrap_or("-"),
                e.owner,
                e.target.as_deref().map_or_else(|| "-".to_string(), escape),
            );
        }
        out
    }

    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let mut m = Manifest::default();
        for (idx, line) in text.lines().enumerate() {
            let err = |message: String| ManifestError::Parse { line: idx + 1, message };
            if idx == 0 && line != MAGIC_LINE {
                return Err(err(format!("expected `{MAGIC_LINE}`")));
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let f: Vec<&str> = rest.split('\t').collect();
                match f.as_slice() {
                    ["arch", a] => m.arch = a.to_string(),
                    ["mtime", t] => m.mtime = t.parse().map_err(|_| err(format!("bad mtime `{t}`")))?,
                    ["image", name, compress, sha, size] => {
                        m.image = ImageInfo {
                            file_name: name.to_string(),
                            compress: compress.to_string(),
                            sha256: sha.to_string(),
                            size: size.parse().map_err(|_| err(format!("bad image size `{size}`")))?,
                        }
                    }
                    _ => {}
                }
                continue;
            }
            let f: Vec<&str> = line.split('\t').collect();
            let [path, kind, mode, uid, gid, size, sha, owner, target] = f.as_slice() else {
                return Err(err(format!("expected 9 TAB-separated columns, found {}", f.len())));
            };
            let num = |s: &str, what: &str| s.parse::<u64>().map_err(|_| err(format!("bad {what} `{s}`")));
            m.entries.push(ManifestEntry {
                path: unescape(path).map_err(&err)?,
                kind: EntryType::parse(kind).ok_or_else(|| err(format!("unknown type `{kind}`")))?,
                mode: u32::from_str_radix(mode, 8).map_err(|_| err(format!("bad mode `{mode}`")))?,
                uid: u32::try_from(num(uid, "uid")?).map_err(|_| err("uid out of range".into()))?,
                gid: u32::try_from(num(gid, "gid")?).map_err(|_| err("gid out of range".into()))?,
                size: num(size, "size")?,
                sha256: (*sha != "-").then(|| sha.to_string()),
                owner: owner.to_string(),
                target: if *target == "-" { None } else { Some(unescape(target).map_err(&err)?) },
            });
        }
        Ok(m)
    }
}

/// Printable UTF-8 stays as is; everything else becomes an escape.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'\\') => out.push(b'\\'),
            Some(b't') => out.push(b'\t'),
            Some(b'n') => out.push(b'\n'),
            Some(b'x') => {
                let hex = text.get(i + 2..i + 4).ok_or_else(|| format!("truncated \\x escape in `{text}`"))?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad \\x escape in `{text}`"))?);
                i += 2;
            }
            _ => return Err(format!("bad escape in `{text}`")),
        }
        i += 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses_back() {
        let m = Manifest {
            arch: "aarch64".into(),
            mtime: 1_700_000_000,
            image: ImageInfo {
                file_name: "initrd.cpio.xz".into(),
                compress: "xz".into(),
                sha256: "ab".into(),
                size: 9,
            },
            entries: vec![
                ManifestEntry {
                    path: b"/".to_vec(),
                    kind: EntryType::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    size: 0,
                    sha256: None,
                    owner: "rootfs".into(),
                    target: None,
                },
                ManifestEntry {
                    path: b"/odd\tname\n\\\xff\x01 \xc3\xa9".to_vec(),
                    kind: EntryType::Symlink,
                    mode: 0o777,
                    uid: 1,
                    gid: 2,
                    size: 3,
                    sha256: None,
                    owner: "pkg".into(),
                    target: Some(b"a b".to_vec()),
                },
            ],
        };
        let text = m.render();
        assert!(text.contains("/odd\\tname\\n\\\\\\xff\\x01 é\tsymlink\t0777\t1\t2\t3\t-\tpkg\ta b\n"), "{text}");
        assert_eq!(Manifest::parse(&text).unwrap(), m);
    }

    #[test]
    fn rejects_foreign_text_with_a_line_number() {
        let msg = Manifest::parse("hello\n").unwrap_err().to_string();
        assert!(msg.contains("line 1"), "{msg}");
        let msg = Manifest::parse(&format!("{MAGIC_LINE}\n/a\tfile\n")).unwrap_err().to_string();
        assert!(msg.contains("line 2") && msg.contains("9 TAB-separated"), "{msg}");
    }
}

//! Archive builders for the unpack tests. Hostile entries need raw headers: the `tar` crate's own
//! `set_path`/`set_link_name` refuse `..` and absolute names, which is exactly what these tests
//! must be able to write.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

pub const MTIME: u64 = 1_600_000_000;

pub enum Entry<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str, u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Char(&'a str),
    Block(&'a str),
    Fifo(&'a str),
}

fn raw_header(name: &str, kind: tar::EntryType, size: u64, mode: u32, link: &str) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    assert!(name.len() <= 100 && link.len() <= 100, "test names must fit a ustar header");
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(MTIME);
    h.set_cksum();
    h
}

pub fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        use tar::EntryType as T;
        let (h, data): (tar::Header, &[u8]) = match e {
            Entry::File(n, d, m) => (raw_header(n, T::Regular, d.len() as u64, *m, ""), d),
            Entry::Dir(n, m) => (raw_header(n, T::Directory, 0, *m, ""), b""),
            Entry::Symlink(n, t) => (raw_header(n, T::Symlink, 0, 0o777, t), b""),
            Entry::Hardlink(n, t) => (raw_header(n, T::Link, 0, 0o644, t), b""),
            Entry::Char(n) => (raw_header(n, T::Char, 0, 0o666, ""), b""),
            Entry::Block(n) => (raw_header(n, T::Block, 0, 0o660, ""), b""),
            Entry::Fifo(n) => (raw_header(n, T::Fifo, 0, 0o644, ""), b""),
        };
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Writes `entries` as the archive `path`, compressed as its suffix says.
pub fn write_archive(path: &Path, entries: &[Entry]) {
    let tar = tar_bytes(entries);
    let name = path.file_name().unwrap().to_str().unwrap();
    let bytes = compress(name, &tar);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

pub fn compress(name: &str, tar: &[u8]) -> Vec<u8> {
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(tar).unwrap();
        e.finish().unwrap()
    } else if name.ends_with(".tar.xz") {
        let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(tar).unwrap();
        e.finish().unwrap()
    } else if name.ends_with(".tar.bz2") {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        e.write_all(tar).unwrap();
        e.finish().unwrap()
    } else if name.ends_with(".tar.zst") {
        // With a content checksum, as the zstd command line writes by default: without one a
        // flipped byte inside a frame can decode to other bytes undetected (the sha256 check
        // before unpacking still catches that for downloaded sources).
        let mut e = zstd::Encoder::new(Vec::new(), 3).unwrap();
        e.include_checksum(true).unwrap();
        e.write_all(tar).unwrap();
        e.finish().unwrap()
    } else if name.ends_with(".tar") {
        tar.to_vec()
    } else {
        panic!("no compressor for {name}")
    }
}

/// A zip (or wheel) with files, directories and symlinks; names are written verbatim.
pub fn write_zip(path: &Path, entries: &[Entry]) {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for e in entries {
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        match e {
            Entry::File(n, d, m) => {
                z.start_file(*n, opts.unix_permissions(*m)).unwrap();
                z.write_all(d).unwrap();
            }
            Entry::Dir(n, m) => z.add_directory(*n, opts.unix_permissions(*m)).unwrap(),
            Entry::Symlink(n, t) => z.add_symlink(*n, *t, opts).unwrap(),
            _ => panic!("zip test archives hold files, directories and symlinks only"),
        }
    }
    let bytes = z.finish().unwrap().into_inner();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// Everything under `root` (type, mode, content or link target), to prove nothing changed.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let mode = meta.permissions().mode();
        let desc = if meta.file_type().is_symlink() {
            format!("link {}", fs::read_link(&path).unwrap().display())
        } else if meta.is_dir() {
            walk(root, &path, out);
            format!("dir {mode:o}")
        } else {
            format!("file {mode:o} ino-links {} {:?}", meta.nlink(), fs::read(&path).unwrap())
        };
        out.insert(rel, desc);
    }
}

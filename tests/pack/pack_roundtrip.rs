//! Round trip: what `ovm pack` writes, read back by independent implementations. GNU `cpio -t -v`
//! and libarchive's `bsdtar -tv` must list exactly the manifest's entries, types, modes, owners
//! and link targets; GNU `cpio -i` must reproduce every file's content, every hard link, symlink
//! and device, with mtime = SOURCE_DATE_EPOCH.

use crate::pack_support;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::{Command, Stdio};

use ovm::pack::manifest::{EntryType, Manifest, ManifestEntry};
use pack_support::*;

/// One line of `cpio -tv` / `bsdtar -tv`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    kind: EntryType,
    mode: u32,
    nlink: u32,
    uid: u32,
    gid: u32,
    /// Size, or `major,minor` for devices.
    size: String,
    name: String,
    /// `-> target` (symlink) or `link to target` (bsdtar's hard links).
    symlink: Option<String>,
    hardlink: Option<String>,
}

/// `drwsr-xr-t` → (type, 0o5755).
fn parse_perm(perm: &str) -> (EntryType, u32) {
    let b = perm.as_bytes();
    assert_eq!(b.len(), 10, "odd permission string {perm}");
    let kind = match b[0] {
        b'd' => EntryType::Dir,
        b'-' => EntryType::File,
        b'l' => EntryType::Symlink,
        b'c' => EntryType::Char,
        b'b' => EntryType::Block,
        b'p' => EntryType::Fifo,
        other => panic!("unknown type {}", other as char),
    };
    let mut mode = 0;
    for (i, c) in b[1..].iter().enumerate() {
        let bit = 1 << (8 - i);
        let (set, special) = match c {
            b'r' | b'w' | b'x' => (true, false),
            b's' | b't' => (true, true),
            b'S' | b'T' => (false, true),
            b'-' => (false, false),
            other => panic!("bad permission char {}", *other as char),
        };
        if set {
            mode |= bit;
        }
        if special {
            mode |= match i {
                2 => 0o4000,
                5 => 0o2000,
                8 => 0o1000,
                _ => panic!("misplaced s/t in {perm}"),
            };
        }
    }
    (kind, mode)
}

/// Parses `perm nlink uid gid size|maj, min|maj,min month day year name [-> t | link to t]`.
fn parse_listing(out: &str) -> Vec<Listed> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut rest = line;
            let mut next = || {
                rest = rest.trim_start();
                let end = rest.find(' ').unwrap_or(rest.len());
                let (tok, r) = rest.split_at(end);
                rest = r;
                tok.to_string()
            };
            let perm = next();
            let nlink = next().parse().unwrap();
            let uid = next().parse().unwrap();
            let gid = next().parse().unwrap();
            let mut size = next();
            if size.ends_with(',') {
                size.push_str(&next()); // GNU cpio: "5,   1"
            }
            let _date = (next(), next(), next());
            let name_part = rest.strip_prefix(' ').unwrap_or(rest).to_string();
            let (kind, mode) = parse_perm(&perm);
            let (name, symlink, hardlink) = if let Some((n, t)) = name_part.split_once(" -> ") {
                (n.to_string(), Some(t.to_string()), None)
            } else if let Some((n, t)) = name_part.split_once(" link to ") {
                (n.to_string(), None, Some(t.to_string()))
            } else {
                (name_part, None, None)
            };
            Listed { kind, mode, nlink, uid, gid, size, name, symlink, hardlink }
        })
        .collect()
}

fn archive_name(e: &ManifestEntry) -> String {
    let p = String::from_utf8(e.path.clone()).unwrap();
    if p == "/" {
        ".".into()
    } else {
        p[1..].to_string()
    }
}

/// A project with a skeleton, two packages, an overlay and a table using every rule type.
fn packed_project() -> (tempfile::TempDir, Manifest, std::path::PathBuf) {
    let proj = new_project();
    let p = proj.path();
    sample_tree(&p.join("rootfs"));
    write(&p.join("staging/x86_64/alpha/runtime/usr/bin/alpha"), b"#!/bin/sh\n", 0o755);
    write(&p.join("staging/x86_64/alpha/runtime/etc/motd"), b"package motd, hidden by rootfs\n", 0o644);
    write(&p.join("staging/x86_64/beta/runtime/usr/lib/libbeta.so"), &noise(9, 3000), 0o755);
    write(&p.join("overlay/etc/issue"), b"overlay issue\n", 0o644);
    let mut table = std::fs::read_to_string(p.join("config/device_table.txt")).unwrap();
    table.push_str(
        "/bin/tool f 4755 0 0\n/srv r 750 svc svc\n/dev/ttyS c 660 0 5 4 64 0 1 2\n/dev/sda b 660 0 6 8 0\n/run/initctl p 600 0 0\n",
    );
    std::fs::write(p.join("config/device_table.txt"), table).unwrap();
    std::fs::write(p.join("config/ovm.toml"), "[pack]\noverlay = \"overlay\"\n").unwrap();
    let out = ovm_in(p, &["pack", "x86_64"]);
    assert!(out.status.success(), "ovm pack failed: {}", text(&out));
    let manifest = Manifest::parse(&std::fs::read_to_string(p.join("output/x86_64/manifest.txt")).unwrap()).unwrap();
    let image = p.join("output/x86_64/initrd.cpio.gz");
    let cpio = p.join("initrd.cpio");
    let raw = run(Command::new("gzip").arg("-dc").arg(&image)).stdout;
    std::fs::write(&cpio, raw).unwrap();
    (proj, manifest, cpio)
}

fn by_name(listed: Vec<Listed>) -> BTreeMap<String, Listed> {
    let n = listed.len();
    let map: BTreeMap<_, _> = listed.into_iter().map(|l| (l.name.clone(), l)).collect();
    assert_eq!(map.len(), n, "duplicate names in the listing");
    map
}

/// Checks one listing against the manifest; `hardlink_names` says how the tool shows later names.
fn compare(manifest: &Manifest, listed: &BTreeMap<String, Listed>, tool: &str) {
    let expected: Vec<String> = manifest.entries.iter().map(archive_name).collect();
    let got: Vec<String> = listed.keys().cloned().collect();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(got, sorted, "{tool} lists other entries than the manifest");
    let group_size = |first: &str| {
        manifest
            .entries
            .iter()
            .filter(|e| {
                let links_here = e.kind == EntryType::Hardlink
                    && e.target.as_deref().is_some_and(|t| String::from_utf8_lossy(t) == format!("/{first}"));
                archive_name(e) == first || links_here
            })
            .count() as u32
    };
    for e in &manifest.entries {
        let name = archive_name(e);
        let l = &listed[&name];
        let want_kind = if e.kind == EntryType::Hardlink { EntryType::File } else { e.kind };
        assert_eq!((l.kind, l.mode, l.uid, l.gid), (want_kind, e.mode, e.uid, e.gid), "{tool}: {name}");
        let target = e.target.as_deref().map(|t| String::from_utf8(t.to_vec()).unwrap());
        match e.kind {
            EntryType::Symlink => assert_eq!(l.symlink, target, "{tool}: symlink target of {name}"),
            EntryType::Char | EntryType::Block => {
                assert_eq!(l.size.replace(' ', ""), target.unwrap().replace(':', ","), "{tool}: device {name}")
            }
            EntryType::Hardlink => {
                let first = target.unwrap()[1..].to_string();
                assert_eq!(l.nlink, group_size(&first), "{tool}: nlink of {name}");
                if tool == "bsdtar" {
                    assert_eq!(l.hardlink.as_deref(), Some(first.as_str()), "bsdtar: {name} should link to {first}");
                }
            }
            EntryType::File => {
                assert!(l.hardlink.is_none(), "{tool}: {name} is not a hard link");
                if l.nlink == 1 {
                    assert_eq!(l.size, e.size.to_string(), "{tool}: size of {name}");
                } else {
                    assert_eq!(l.nlink, group_size(&name), "{tool}: nlink of {name}");
                }
            }
            EntryType::Dir | EntryType::Fifo => {}
        }
    }
}

#[test]
fn gnu_cpio_and_bsdtar_list_exactly_the_manifest() {
    require_tool("cpio");
    require_tool("bsdtar");
    require_tool("gzip");
    let (_proj, manifest, cpio) = packed_project();

    let gnu = run(Command::new("cpio").args(["-t", "-v", "--numeric-uid-gid", "--quiet", "-F"]).arg(&cpio)).stdout;
    compare(&manifest, &by_name(parse_listing(&String::from_utf8(gnu).unwrap())), "GNU cpio");
    let bsd = run(Command::new("bsdtar").arg("-tvf").arg(&cpio)).stdout;
    compare(&manifest, &by_name(parse_listing(&String::from_utf8(bsd).unwrap())), "bsdtar");

    // The rules that made this tree interesting really are in the manifest.
    let find = |p: &str| manifest.entries.iter().find(|e| e.path == p.as_bytes()).unwrap_or_else(|| panic!("{p}"));
    assert_eq!((find("/bin/tool").mode, find("/bin/tool").owner.as_str()), (0o4755, "rootfs"));
    assert_eq!((find("/srv/data/a.txt").uid, find("/srv/data/a.txt").gid), (101, 102));
    assert_eq!(find("/dev/ttyS1").target.as_deref(), Some(&b"4:65"[..]));
    assert_eq!(find("/etc/motd").owner, "rootfs", "the skeleton wins over a package");
    assert_eq!(find("/etc/issue").owner, "overlay");
    assert_eq!(find("/usr/bin/alpha").owner, "alpha");
    assert_eq!(find("/usr/lib/libbeta.so").owner, "beta");
    assert_eq!(find("/tmp").mode, 0o1777);
    assert_eq!(find("/usr/bin/zz-alias").kind, EntryType::Hardlink);
    assert_eq!(find("/usr/bin/zz-alias").target.as_deref(), Some(&b"/usr/bin/alias-one"[..]));
}

#[test]
fn gnu_cpio_extracts_the_same_contents_links_and_times() {
    require_tool("cpio");
    require_tool("gzip");
    require_root("extracting device nodes and owners");
    let (proj, manifest, cpio) = packed_project();
    let dest = proj.path().join("extracted");
    std::fs::create_dir(&dest).unwrap();
    let input = std::fs::File::open(&cpio).unwrap();
    let out = Command::new("cpio")
        .args(["-i", "-d", "-m", "--quiet", "--no-absolute-filenames"])
        .current_dir(&dest)
        .stdin(Stdio::from(input))
        .output()
        .unwrap();
    assert!(out.status.success(), "cpio -i failed: {}", text(&out));

    let mut inode_of_first: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for e in &manifest.entries {
        let rel = String::from_utf8(e.path.clone()).unwrap();
        let path = dest.join(rel.trim_start_matches('/'));
        let meta = std::fs::symlink_metadata(&path).unwrap_or_else(|err| panic!("{rel} not extracted: {err}"));
        let ft = meta.file_type();
        if e.kind != EntryType::Symlink {
            assert_eq!(meta.mode() & 0o7777, e.mode, "{rel}: mode");
        }
        assert_eq!((meta.uid(), meta.gid()), (e.uid, e.gid), "{rel}: owner");
        match e.kind {
            EntryType::Dir => assert!(ft.is_dir(), "{rel}"),
            EntryType::File | EntryType::Hardlink => {
                assert!(ft.is_file(), "{rel}");
                assert_eq!(meta.len(), e.size, "{rel}: size");
                assert_eq!(Some(sha256_file(&path)), e.sha256, "{rel}: content");
                assert_eq!(meta.mtime(), manifest.mtime as i64, "{rel}: mtime");
                if e.kind == EntryType::File && meta.nlink() > 1 {
                    inode_of_first.insert(e.path.clone(), meta.ino());
                }
                if let Some(first) = e.target.as_ref().filter(|_| e.kind == EntryType::Hardlink) {
                    assert_eq!(
                        Some(&meta.ino()),
                        inode_of_first.get(first),
                        "{rel} is not a hard link of the first name"
                    );
                }
            }
            EntryType::Symlink => {
                assert!(ft.is_symlink(), "{rel}");
                let target = std::fs::read_link(&path).unwrap();
                assert_eq!(target.as_os_str().as_encoded_bytes(), e.target.as_deref().unwrap(), "{rel}: target");
            }
            EntryType::Char | EntryType::Block => {
                assert!(if e.kind == EntryType::Char { ft.is_char_device() } else { ft.is_block_device() }, "{rel}");
                let dev = format!("{}:{}", libc::major(meta.rdev()), libc::minor(meta.rdev()));
                assert_eq!(dev.as_bytes(), e.target.as_deref().unwrap(), "{rel}: device numbers");
            }
            EntryType::Fifo => assert!(ft.is_fifo(), "{rel}"),
        }
    }
    // And the content matches the source tree, not just the manifest.
    let src = proj.path().join("rootfs/usr/share/doc/big.txt");
    assert_eq!(sha256_file(&src), sha256_file(&dest.join("usr/share/doc/big.txt")));
    assert_hardlinks_in_manifest(&manifest);
}

fn assert_hardlinks_in_manifest(m: &Manifest) {
    let names: Vec<_> = m.entries.iter().filter(|e| e.kind == EntryType::Hardlink).map(archive_name).collect();
    assert_eq!(names, ["usr/bin/multi", "usr/bin/zz-alias"], "hard link group of three in path order");
}

//! The repository's package set in an image and at work inside the booted guest: busybox, lz4,
//! util-linux, e2fsprogs, dropbear and lvm2 in `[pack] packages`, built offline in the strict
//! sandbox with zig for x86_64. Booted with `ovm.test=3`, its check (rootfs/init) runs an lz4
//! round trip, makes (labelled), checks and identifies an ext4 file system with the image's own
//! tools, logs in over SSH to dropbear and runs dmsetup.
//!
//! The set's last member, cryptsetup, is not built here: its json-c is built with CMake, and CMake
//! from source is 12 minutes of a fast machine's CPU and 25 of a slow one's, the longest task of
//! the whole suite (as long as the rest of the end-to-end group together). The slow tier builds it
//! with everything it brings and boots the LUKS root on both architectures:
//! `scripts/slow-cmake.sh` (CMake, json-c and the cmake-style engine test) and
//! `scripts/slow-crypt.sh` (this test's set with cryptsetup, its guest checks, a LUKS2 root made
//! by the image's cryptsetup, unlocked with a key file and switched to, and a wrong key).

use crate::build_support::TestProject;
use crate::e2e_support::*;

/// The `[pack] packages` line of the set (its file says why these) without cryptsetup (the
/// module comment says why).
fn set_line() -> String {
    let whole = include_str!("../fixtures/package-set.toml")
        .lines()
        .find(|l| l.starts_with("packages = ["))
        .expect("tests/fixtures/package-set.toml has a `packages = [...]` line");
    let line = whole.replace(", \"cryptsetup\"", "");
    assert_ne!(line, whole, "tests/fixtures/package-set.toml no longer names cryptsetup last");
    line
}
/// e_machine of x86_64 (the ELF specification's EM_X86_64).
const EM_X86_64: u16 = 62;
const CHECKS: &[&str] = &[
    "lz4 round trip",
    "mkfs.ext4 -L",
    "e2fsck -fn",
    "blkid finds ext4 and its label",
    "mount is util-linux's",
    "dropbearkey makes and reads an ed25519 key",
    "ssh login to dropbear with a key",
    "dmsetup runs (libdevmapper)",
];

#[test]
fn the_package_set_boots_and_its_tools_work_in_the_guest() {
    let p = TestProject::from_repo();
    let config = p.read("config/ovm.toml");
    assert!(config.contains("\npackages = [\"busybox\"]\n"), "config/ovm.toml no longer selects busybox alone");
    p.write("config/ovm.toml", &config.replace("\npackages = [\"busybox\"]\n", &format!("\n{}\n", set_line())));
    offline_ok(&p, &["build", "--sandbox", "x86_64"]);

    // util-linux's programs won the paths busybox's applets also install.
    let m = manifest(&p, "x86_64");
    for path in ["/bin/mount", "/sbin/blkid", "/sbin/switch_root"] {
        let e = entry(&m, path).unwrap_or_else(|| panic!("{path} is not in the image"));
        assert_eq!(e.owner, "util-linux", "{path} comes from {}", e.owner);
    }
    for path in
        ["/usr/bin/lz4", "/sbin/mke2fs", "/sbin/e2fsck", "/etc/mke2fs.conf", "/usr/sbin/dropbear", "/usr/bin/dbclient"]
    {
        assert!(entry(&m, path).is_some(), "{path} is not in the image");
    }

    // The image holds runtime packages only, stripped (docs/packages.md): no headers, static
    // libraries, .pc files, manuals or debug info, and no ELF with symbols.
    let mut elves = 0;
    let repo = crate::build_support::repo_root().to_string_lossy().into_owned();
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for e in &m.entries {
        let path = String::from_utf8_lossy(&e.path).into_owned();
        let dev_or_doc = path.starts_with("/usr/include/")
            || path.ends_with(".a")
            || path.ends_with(".la")
            || path.ends_with(".pc")
            || path.contains("/share/man/")
            || path.starts_with("/usr/lib/debug/");
        assert!(!dev_or_doc, "{path} ({}) is in the image", e.owner);
        if e.kind != ovm::pack::manifest::EntryType::File || e.owner == "rootfs" {
            continue;
        }
        let staged = p.path().join("staging/x86_64").join(&e.owner).join("runtime").join(&path[1..]);
        let data = std::fs::read(&staged).unwrap_or_else(|err| panic!("{}: {err}", staged.display()));
        // No path of the machine that built it: the project's, the repository's, the sandbox's.
        for host in [p.path().to_string_lossy().into_owned(), repo.clone(), "/ovm/".into()] {
            assert!(!contains(&data, host.as_bytes()), "{path} ({}) contains `{host}`", e.owner);
        }
        if let Some(f) = ovm::elf::read(&data).unwrap_or_else(|err| panic!("{path}: {err}")) {
            assert!(!f.unstripped, "{path} ({}) is not stripped", e.owner);
            assert_eq!(f.machine, EM_X86_64, "{path} ({}) is not an x86_64 program", e.owner);
            assert_eq!(f.interpreter, None, "{path} ({}) is not static", e.owner);
            assert!(f.needed.is_empty(), "{path} ({}) needs {:?}", e.owner, f.needed);
            elves += 1;
        }
    }
    // busybox, lz4, blkid, mount, switch_root, e2fsprogs (e2fsck and mke2fs in one), dropbear (with
    // its links), dmsetup.
    assert!(elves >= 8, "only {elves} ELF files in the image");
    // e2fsck's debug info is in e2fsprogs-dbg, under the build-id the stripped program carries.
    let e2fsck = std::fs::read(p.path().join("staging/x86_64/e2fsprogs/runtime/sbin/e2fsck")).unwrap();
    let id = ovm::elf::read(&e2fsck).unwrap().unwrap().build_id.expect("e2fsck has a build-id");
    let debug =
        p.path().join(format!("staging/x86_64/e2fsprogs/dbg/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]));
    let debug = ovm::elf::read(&std::fs::read(&debug).unwrap_or_else(|err| panic!("{}: {err}", debug.display())))
        .unwrap()
        .unwrap();
    assert_eq!(debug.build_id.as_deref(), Some(id.as_str()));
    eprintln!("e2e_set: the x86_64 image of {} is {} bytes gzipped, {elves} ELF files", set_line(), m.image.size);
    assert!(m.image.size < 2_000_000, "the image is {} bytes", m.image.size);

    let marker = "OVM-SET-PASS x86_64";
    let (code, out) = boot(&p, "x86_64", "ovm.test=3", marker);
    assert_eq!(code, 0, "`ovm boot x86_64 --append ovm.test=3 --expect '{marker}'` did not pass:\n{out}");
    for check in CHECKS {
        assert!(out.contains(&format!("ovm-settest: ok   {check}")), "`{check}` not reported ok:\n{out}");
    }
}

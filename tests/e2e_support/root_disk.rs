//! A real root file system for the initrd to switch to: a raw disk image with an MBR partition
//! table whose one partition holds ext4 made by `mke2fs -d`, and the checks that the image's
//! /init finds it (`root=UUID=…`, `root=PARTUUID=…`), mounts it and hands over to its
//! /sbin/init, and fails the way it says it does. Used by the e2e tests only: it drives a
//! terminal (`terminal_support`), which the other groups that share `e2e_support` do not link.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::build_support::{
    kernel_turned_on, repo_root, require_tool, text, TestProject, KERNEL_MODULES_EXAMPLE, SETUP_HINT,
};
use crate::e2e_support::{boot_with, entry, kernel, manifest, manifest_in, offline_ok, BOOT_TIMEOUT};
use crate::terminal_support::Terminal;

/// A disk made by [`make`].
pub struct RootDisk {
    pub image: PathBuf,
    /// The ext4 file system's UUID (`root=UUID=…`).
    pub uuid: String,
    /// Its partition's, from the MBR's disk signature (`root=PARTUUID=…`, as the kernel writes it).
    pub partuuid: String,
    /// The line the disk's /sbin/init prints first: text found nowhere but on this disk.
    pub marker: String,
}

/// The lines around /proc/modules in what the disk's init prints.
const MODULES_START: &str = "OVM-PROC-MODULES-START";
const MODULES_END: &str = "OVM-PROC-MODULES-END";

/// The module names /proc/modules listed on the console, newest first (the kernel's order).
fn loaded_modules(console: &str) -> Vec<&str> {
    console
        .lines()
        .skip_while(|l| l.trim_end() != MODULES_START)
        .skip(1)
        .take_while(|l| l.trim_end() != MODULES_END)
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

/// The partition starts at 1 MiB (LBA 2048), where fdisk puts the first one.
const FIRST_LBA: usize = 2048;

/// A root disk in `dir` whose /sbin/init (a script run by Debian's static busybox for `arch` as
/// /bin/sh) prints [`RootDisk::marker`], /proc/mounts and /proc/modules, then powers off. Fresh identifiers
/// each time, so nothing on the console can come from an earlier boot or another disk.
pub fn make(dir: &Path, arch: &str) -> RootDisk {
    require_tool("mke2fs");
    let nonce = std::time::UNIX_EPOCH.elapsed().expect("clock").as_nanos() as u64 ^ u64::from(std::process::id());
    let uuid = format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        nonce >> 32,
        (nonce >> 16) & 0xffff,
        nonce & 0xfff,
        (nonce >> 12) & 0xfff,
        nonce & 0xffff_ffff_ffff
    );
    let signature = (nonce as u32) | 1; // 0 would mean "no signature"
    let marker = format!("OVM-REAL-ROOT {arch} {nonce:016x}");

    let tree = dir.join(format!("root-{arch}"));
    for d in ["bin", "sbin", "etc", "dev", "proc", "sys", "run", "tmp"] {
        std::fs::create_dir_all(tree.join(d)).expect("root tree");
    }
    let busybox = repo_root().join(".cache/test-assets").join(arch).join("busybox");
    std::fs::copy(&busybox, tree.join("bin/busybox"))
        .unwrap_or_else(|e| panic!("{}: {e}: {SETUP_HINT} (it calls scripts/fetch-test-assets.sh)", busybox.display()));
    symlink("busybox", tree.join("bin/sh")).expect("bin/sh");
    let init = tree.join("sbin/init");
    std::fs::write(
        &init,
        format!(
            "#!/bin/sh\necho \"{marker}\"\n/bin/busybox cat /proc/mounts\necho {MODULES_START}\n\
             /bin/busybox cat /proc/modules\necho {MODULES_END}\n/bin/busybox poweroff -f\n"
        ),
    )
    .expect("sbin/init");
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).expect("chmod init");

    let fs = dir.join(format!("root-{arch}.ext4"));
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-U", &uuid, "-d"])
        .arg(&tree)
        .arg(&fs)
        .arg("16M")
        .output()
        .expect("running mke2fs");
    assert!(out.status.success(), "mke2fs -d failed: {}", text(&out));

    let image = dir.join(format!("root-{arch}.img"));
    std::fs::write(&image, mbr_disk(&std::fs::read(&fs).expect("read ext4 image"), signature)).expect("disk image");
    RootDisk { image, uuid, partuuid: format!("{signature:08x}-01"), marker }
}

/// An MBR partition table with one Linux partition (type 0x83) from [`FIRST_LBA`] holding `fs`.
/// The kernel reads only the LBA fields; CHS stays zero.
fn mbr_disk(fs: &[u8], signature: u32) -> Vec<u8> {
    let mut disk = vec![0u8; FIRST_LBA * 512];
    disk[440..444].copy_from_slice(&signature.to_le_bytes());
    let sectors = u32::try_from(fs.len() / 512).expect("small file system");
    let entry = &mut disk[446..462];
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&(FIRST_LBA as u32).to_le_bytes());
    entry[12..16].copy_from_slice(&sectors.to_le_bytes());
    disk[510..512].copy_from_slice(&[0x55, 0xaa]);
    disk.extend_from_slice(fs);
    disk
}

fn mount_line<'a>(console: &'a str, dev: &str, at: &str) -> Option<&'a str> {
    console.lines().map(str::trim).find(|l| l.starts_with(&format!("{dev} {at} ext4 ")))
}

/// Turns on the `[kernel]` example of the repository's config/ovm.toml as it is
/// (`build_support::kernel_turned_on`) and rebuilds: only the image is repacked, now with the
/// modules and /etc/ovm/modules.
fn enable_kernel_modules(p: &TestProject, arch: &str) {
    let on = kernel_turned_on(&p.read("config/ovm.toml"), KERNEL_MODULES_EXAMPLE);
    p.write("config/ovm.toml", &on);
    offline_ok(p, &["build", "--sandbox", arch]);
    assert_eq!(p.tasks_run(arch), ["image pack"], "{arch}: turning on [kernel] did more than repack");
    let m = manifest(p, arch);
    let modules = entry(&m, "/etc/ovm/modules").unwrap_or_else(|| panic!("{arch}: no /etc/ovm/modules in the image"));
    assert_eq!(modules.owner, ovm::pack::KERNEL_MODULES_LAYER, "{arch}: /etc/ovm/modules");
    assert!(
        m.entries.iter().any(|e| e.path.ends_with(b"/kernel/drivers/block/virtio_blk.ko")),
        "{arch}: the image has no virtio_blk.ko"
    );
}

/// The image's /init as an initrd, on `arch`, once `[kernel]` put the modules in the image
/// (virtio_blk, ext4 … are modules in Debian's kernel: without them no disk appears):
/// 1. `root=UUID=… rootwait` with the root on the second disk: the disk's own init runs and
///    /proc/mounts there shows /dev/vdb1 as `/`;
/// 2. a UUID no disk has, `rootdelay=5`: the emergency shell after saying why, and no switch;
/// 3. `root=PARTUUID=… rd.break`: a shell before switch_root, typed into on the console, that
///    sees the root mounted on /sysroot; leaving it goes on into the real root.
pub fn assert_switches_to_a_disk_root(p: &TestProject, arch: &str) {
    enable_kernel_modules(p, arch);
    let disk = make(p.path(), arch);
    let blank = p.path().join("blank.img");
    std::fs::write(&blank, vec![0u8; 1 << 20]).expect("blank disk");
    let (blank_s, disk_s) = (blank.to_str().expect("utf-8"), disk.image.to_str().expect("utf-8"));

    let append = format!("root=UUID={} rootwait", disk.uuid);
    let (code, out) =
        boot_with(p, arch, &["--disk", blank_s, "--disk", disk_s, "--append", &append, "--expect", &disk.marker]);
    assert_eq!(code, 0, "{arch}: root=UUID= on the second disk did not reach its init:\n{out}");
    assert!(out.contains(&format!("ovm-init: root device UUID={} is /dev/vdb1", disk.uuid)), "{out}");
    let root = mount_line(&out, "/dev/vdb1", "/")
        .unwrap_or_else(|| panic!("{arch}: /proc/mounts on the real root does not show /dev/vdb1 as /:\n{out}"));
    assert!(root.contains(" ro,"), "{arch}: the root is mounted ro unless `rw` is given: {root}");
    assert!(!out.contains("cannot mount the root file system"), "{out}");
    // ext4's soft dependency crc32c was loaded by /init before ext4 (/etc/ovm/softdeps), not by
    // the kernel in the middle of the mount: /proc/modules lists the newest first.
    let loaded = loaded_modules(&out);
    let at = |name: &str| {
        loaded.iter().position(|m| *m == name).unwrap_or_else(|| panic!("{arch}: {name} not loaded: {loaded:?}"))
    };
    assert!(at("crc32c_generic") > at("ext4"), "{arch}: crc32c_generic was loaded after ext4: {loaded:?}");
    assert!(!out.contains("could not load the modules"), "{out}");

    let wrong = "0badc0de-0000-4000-8000-000000000000";
    let append = format!("root=UUID={wrong} rootdelay=5");
    let (code, out) = boot_with(
        p,
        arch,
        &["--disk", disk_s, "--append", &append, "--expect", "ovm-init: emergency shell (exit it to try again)"],
    );
    assert_eq!(code, 0, "{arch}: a wrong UUID did not end in the emergency shell:\n{out}");
    assert!(out.contains(&format!("ovm-init: waiting up to 5 s for the root device UUID={wrong}")), "{out}");
    let reason =
        format!("ovm-init: cannot mount the root file system: no device with UUID={wrong} appeared within 5 s");
    assert!(out.lines().any(|l| l.trim_end() == reason), "{arch}: no `{reason}` line:\n{out}");
    assert!(!out.contains(&disk.marker), "{arch}: switched to a root it should not have found:\n{out}");

    let k = kernel(arch);
    let append = format!("root=PARTUUID={} rd.break", disk.partuuid);
    let mut cmd = p.ovm();
    cmd.args(["boot", arch, "--kernel", k.to_str().expect("utf-8"), "--timeout", BOOT_TIMEOUT]);
    cmd.args(["--disk", disk_s, "--append", &append]);
    let mut console = Terminal::spawn(cmd);
    let wait = Duration::from_secs(240);
    let at = console.expect_within(
        "ovm-init: rd.break: a shell before switch_root; the root file system is on /sysroot, exit to go on",
        0,
        wait,
    );
    assert!(!console.screen().contains(&disk.marker), "{arch}: the real init ran before the rd.break shell");
    console.type_line("echo BREAK-$((6*7)); grep ' /sysroot ' /proc/mounts; exit");
    let at = console.expect_within("BREAK-42", at, wait);
    let at = console.expect_within("/dev/vda1 /sysroot ext4 ro,", at, wait);
    console.expect_within(&disk.marker, at, wait);
    assert_eq!(console.wait_within(wait), Some(0), "{arch}: ovm boot did not pass:\n{}", console.screen());
    assert!(
        mount_line(&console.screen(), "/dev/vda1", "/").is_some(),
        "{arch}: after rd.break the real root is not /:\n{}",
        console.screen()
    );
}

/// images/initrd.toml on `arch`, the image made for the real root (busybox-mini, the `[kernel]`
/// modules, xz), once [`assert_switches_to_a_disk_root`] turned the modules on:
/// 1. `ovm build --image initrd` builds busybox-mini and packs output/ARCH/images/initrd/: an
///    xz cpio smaller than the default image, its busybox busybox-mini's, its postprocess step
///    having removed the boot tests and udhcpc's script;
/// 2. `root=PARTUUID=… rootwait` (the partition table read with this busybox's hexdump): its
///    /init mounts the root and switches to it, and /proc/mounts there shows it as `/`;
/// 3. a UUID no disk has: the emergency shell, saying why.
///
/// Its size against dracut's and initramfs-tools' images is the benchmark's to measure
/// (scripts/bench-initrd.sh), with the peers' three drivers; this image also has dm_crypt.
pub fn assert_the_initrd_image_switches(p: &TestProject, arch: &str) {
    offline_ok(p, &["build", "--sandbox", arch, "--image", "initrd"]);
    let dir = format!("output/{arch}/images/initrd");
    let m = manifest_in(p, &dir);
    assert_eq!(m.image.compress, "xz", "{arch}: images/initrd.toml says compress = \"xz\"");
    let image = p.path().join(&dir).join(&m.image.file_name);
    let size = std::fs::metadata(&image).expect("the initrd image").len();
    let default = manifest(p, arch);
    let default_size = std::fs::metadata(p.path().join("output").join(arch).join(&default.image.file_name))
        .expect("the default image")
        .len();
    assert!(
        size < default_size,
        "{arch}: the initrd image ({size} bytes) is not smaller than the default ({default_size})"
    );
    let busybox = entry(&m, "/bin/busybox").unwrap_or_else(|| panic!("{arch}: no /bin/busybox in {dir}"));
    assert_eq!(busybox.owner, "busybox-mini", "{arch}: /bin/busybox of the initrd image");
    for gone in ["/usr/lib/ovm/boot-tests", "/usr/share/udhcpc/default.script", "/bin/vi", "/usr/bin/awk"] {
        assert!(entry(&m, gone).is_none(), "{arch}: the initrd image has {gone}");
    }
    for kept in ["/init", "/sbin/switch_root", "/sbin/modprobe", "/usr/bin/hexdump", "/etc/ovm/modules"] {
        assert!(entry(&m, kept).is_some(), "{arch}: the initrd image lacks {kept}");
    }

    // A disk of its own (assert_switches_to_a_disk_root made one in the project dir).
    let disk_dir = p.path().join("initrd-image-disk");
    std::fs::create_dir_all(&disk_dir).expect("disk dir");
    let disk = make(&disk_dir, arch);
    let (image_s, disk_s) = (image.to_str().expect("utf-8"), disk.image.to_str().expect("utf-8"));
    let append = format!("root=PARTUUID={} rootwait", disk.partuuid);
    let (code, out) =
        boot_with(p, arch, &["--initrd", image_s, "--disk", disk_s, "--append", &append, "--expect", &disk.marker]);
    assert_eq!(code, 0, "{arch}: the initrd image did not reach the real root's init:\n{out}");
    assert!(mount_line(&out, "/dev/vda1", "/").is_some(), "{arch}: /dev/vda1 is not / on the real root:\n{out}");
    assert!(!out.contains("setup steps failed"), "{arch}: /init's setup failed with busybox-mini:\n{out}");

    let wrong = "0badc0de-0000-4000-8000-00000000beef";
    let append = format!("root=UUID={wrong} rootdelay=3");
    let expect = "ovm-init: emergency shell (exit it to try again)";
    let (code, out) =
        boot_with(p, arch, &["--initrd", image_s, "--disk", disk_s, "--append", &append, "--expect", expect]);
    assert_eq!(code, 0, "{arch}: a wrong UUID did not end in the initrd image's emergency shell:\n{out}");
    let reason =
        format!("ovm-init: cannot mount the root file system: no device with UUID={wrong} appeared within 3 s");
    assert!(out.lines().any(|l| l.trim_end() == reason), "{arch}: no `{reason}` line:\n{out}");
}

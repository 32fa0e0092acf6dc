//! The user's main job on x86_64, end to end, from a clean copy of the repository's inputs:
//! `ovm build --sandbox x86_64` with no network (sources only from the mirror, the zig toolchain),
//! the initrd's content, its size, booting it in qemu (the init marker and the in-guest
//! self-check), then what a second build does after nothing, a busybox config edit and a rootfs
//! edit, the console shell of a normal boot, and last, with `[kernel]` modules and `root=`, the
//! image as an initrd switching to an ext4 root on a virtio disk (`root_disk`), then the image
//! made for that job (images/initrd.toml) doing it too. One test: the
//! steps build on each other, and each build costs a minute.

use crate::build_support;
use crate::e2e_support;
use crate::root_disk;
use crate::terminal_support;

use build_support::TestProject;
use e2e_support::*;
use terminal_support::Terminal;

/// The x86_64 gzip initrd must stay within this (issue 6; Debian's glibc-static busybox initrd
/// is 1.03 MB at gzip -9).
const SIZE_BUDGET: u64 = 700_000;

fn tasks(p: &TestProject, domain: &str) -> Vec<String> {
    p.tasks_run(domain)
}

fn assert_only_tasks(p: &TestProject, want: &[&str], after: &str) {
    assert_eq!(tasks(p, "x86_64"), want, "x86_64 tasks run after {after}");
    assert!(tasks(p, "tools").is_empty(), "build tools rebuilt after {after}: {:?}", tasks(p, "tools"));
    assert!(tasks(p, "toolchain").is_empty(), "toolchain redone after {after}: {:?}", tasks(p, "toolchain"));
}

/// After the busybox config edit: busybox's tasks from configure (or from an earlier task: the
/// engine may restart a stale configure at a fresh unpack) through package, then the pack and the
/// feed (busybox's output changed); never its fetch, never another package.
fn assert_busybox_rebuilt_and_repacked(p: &TestProject) {
    const BUSYBOX: [&str; 6] = ["unpack", "patch", "configure", "compile", "install", "package"];
    let ran = tasks(p, "x86_64");
    let from = |start: usize| -> Vec<String> {
        let image = ["image pack".to_string(), "image feed".to_string()];
        BUSYBOX[start..].iter().map(|t| format!("busybox {t}")).chain(image).collect()
    };
    assert!((0..=2).any(|start| ran == from(start)), "x86_64 tasks run after editing config/busybox.config: {ran:?}");
    assert_only_tasks(p, &ran.iter().map(String::as_str).collect::<Vec<_>>(), "editing config/busybox.config");
}

#[test]
fn x86_64_initrd_builds_offline_boots_and_rebuilds_only_what_changed() {
    let p = from_repo_with_busybox_to_build();
    let mut steps = Steps::new("x86_64");

    // A clean project, no network: everything from the mirror, built in the strict sandbox.
    let first = offline_ok(&p, &["build", "--sandbox", "x86_64"]);
    assert_package_made(&first, &tasks(&p, "x86_64"), "x86_64");
    assert!(tasks(&p, "x86_64").iter().any(|t| t == "image pack"), "the first build packed no image");
    steps.done("offline build from a clean project");

    // The summary prints the size; it is the image's, and within budget.
    let size = summary_image_size(&first);
    let image = p.path().join("output/x86_64/initrd.cpio.gz");
    assert_eq!(size, std::fs::metadata(&image).expect("the initrd exists").len(), "summary size != file size");
    eprintln!("e2e: x86_64 initrd.cpio.gz is {size} bytes ({:.3} MB)", size as f64 / 1e6);
    assert!(size <= SIZE_BUDGET, "the x86_64 initrd is {size} bytes, over the {SIZE_BUDGET}-byte budget");

    assert_own_musl_busybox(&p, "x86_64");
    assert_boots_to_marker(&p, "x86_64");
    assert_selftest_passes(&p, "x86_64");
    steps.done("image checks and two boots");

    // Nothing changed: nothing runs, and the summary says so.
    let before = manifest(&p, "x86_64");
    let again = offline_ok(&p, &["build", "--sandbox", "x86_64"]);
    assert!(again.contains("ovm: nothing to do: reused all "), "second build did work:\n{again}");
    assert!(again.contains("), unchanged"), "second build repacked the image:\n{again}");
    assert_only_tasks(&p, &[], "a no-op build");
    assert_eq!(manifest(&p, "x86_64").image.sha256, before.image.sha256);
    steps.done("no-op build");

    // A real option change: drop the `yes` applet. busybox is reconfigured and rebuilt, the image
    // repacked; nothing else. The shared-state cache is off so the rebuild cannot be skipped.
    let config = p.read("config/busybox.config");
    assert!(config.contains("\nCONFIG_YES=y\n"), "config/busybox.config no longer enables yes");
    p.write("config/busybox.config", &config.replace("\nCONFIG_YES=y\n", "\n# CONFIG_YES is not set\n"));
    let out = p.ovm().env("OVM_SSTATE_DIR", "").args(["build", "--sandbox", "x86_64"]).output().expect("ovm");
    assert!(out.status.success(), "build after the config edit failed:\n{}", build_support::text(&out));
    assert_busybox_rebuilt_and_repacked(&p);
    let edited = manifest(&p, "x86_64");
    assert!(entry(&edited, "/usr/bin/yes").is_none(), "the image still has the dropped applet");
    assert!(entry(&edited, "/usr/bin/seq").is_some(), "the image lost an applet that stayed configured");
    assert_ne!(
        entry(&edited, "/bin/busybox").and_then(|e| e.sha256.clone()),
        entry(&before, "/bin/busybox").and_then(|e| e.sha256.clone()),
        "busybox was not rebuilt with the new configuration"
    );
    steps.done("rebuild after a busybox config edit");

    // A rootfs edit only repacks.
    let os_release = p.read("rootfs/etc/os-release");
    p.write("rootfs/etc/os-release", &os_release.replace("PRETTY_NAME=\"ovm initrd", "PRETTY_NAME=\"edited initrd"));
    let out = p.ovm().env("OVM_SSTATE_DIR", "").args(["build", "--sandbox", "x86_64"]).output().expect("ovm");
    let t = build_support::text(&out);
    assert!(out.status.success(), "build after the rootfs edit failed:\n{t}");
    assert!(t.contains("ovm: nothing to do: reused all "), "a rootfs edit rebuilt a package:\n{t}");
    assert_only_tasks(&p, &["image pack"], "editing rootfs/etc/os-release");
    assert!(!t.contains("), unchanged"), "the summary says the image is unchanged after a rootfs edit:\n{t}");
    let repacked = manifest(&p, "x86_64");
    assert_eq!(
        entry(&repacked, "/bin/busybox").and_then(|e| e.sha256.clone()),
        entry(&edited, "/bin/busybox").and_then(|e| e.sha256.clone())
    );
    // The repacked image boots and shows the edit (the banner prints PRETTY_NAME).
    let booted = assert_boots_to_marker(&p, "x86_64");
    assert!(booted.contains("edited initrd 0.1.0 (x86_64)"), "the booted image lacks the rootfs edit:\n{booted}");
    steps.done("repack after a rootfs edit, and a boot");

    // Without a test argument /init hands over to busybox init: a console shell with job
    // control, and `poweroff` ends the machine cleanly.
    let k = kernel("x86_64");
    let mut cmd = p.ovm();
    cmd.args(["boot", "x86_64", "--kernel", k.to_str().expect("utf-8 path"), "--timeout", BOOT_TIMEOUT]);
    let mut console = Terminal::spawn(cmd);
    let wait = std::time::Duration::from_secs(240);
    let at = console.expect_within("root@ovm:~# ", 0, wait);
    console.type_line("echo JOB-$((6*7)); sleep 100 &");
    let at = console.expect_within("JOB-42", at, wait);
    console.type_line("jobs");
    let at = console.expect_within("Running", at, wait);
    console.type_line("poweroff");
    console.expect_within("reboot: Power down", at, wait);
    assert_eq!(console.wait_within(wait), Some(0), "ovm boot did not pass:\n{}", console.screen());
    assert!(!console.screen().contains("job control turned off"), "no job control:\n{}", console.screen());
    steps.done("interactive boot to the console shell");

    // Last, as it changes the config: with [kernel] modules and root=, the image is an initrd
    // that loads them and switches to a root file system on a disk.
    root_disk::assert_switches_to_a_disk_root(&p, "x86_64");
    steps.done("[kernel] on: switch_root into an ext4 disk, a wrong root, rd.break");
    root_disk::assert_the_initrd_image_switches(&p, "x86_64");
    steps.done("images/initrd.toml: busybox-mini, xz, root=PARTUUID=, a wrong root");
}

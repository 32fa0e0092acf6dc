//! The user's main job on aarch64, end to end, from a clean copy of the repository's inputs:
//! `ovm build --sandbox aarch64` with no network (sources only from the mirror, the zig toolchain
//! cross-compiling from this x86_64 host), ovm's own musl busybox in the image, and the image
//! booting in qemu to the init marker and through the in-guest self-check; then, with `[kernel]`
//! modules and `root=`, as an initrd: into an ext4 root on a virtio disk, a wrong root, rd.break
//! (`root_disk`).

use crate::e2e_support;
use crate::root_disk;

use e2e_support::*;

#[test]
fn aarch64_initrd_builds_offline_and_boots() {
    let p = from_repo_with_busybox_to_build();
    let mut steps = Steps::new("aarch64");
    let summary = offline_ok(&p, &["build", "--sandbox", "aarch64"]);
    assert_package_made(&summary, &p.tasks_run("aarch64"), "aarch64");
    let size = summary_image_size(&summary);
    steps.done("offline build from a clean project");
    eprintln!("e2e: aarch64 initrd.cpio.gz is {size} bytes ({:.3} MB)", size as f64 / 1e6);

    assert_own_musl_busybox(&p, "aarch64");
    assert_boots_to_marker(&p, "aarch64");
    assert_selftest_passes(&p, "aarch64");
    steps.done("image checks and two boots");

    root_disk::assert_switches_to_a_disk_root(&p, "aarch64");
    steps.done("[kernel] on: switch_root into an ext4 disk, a wrong root, rd.break");
}

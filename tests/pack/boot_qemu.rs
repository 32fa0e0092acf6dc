//! A bootable image with nothing built: a scratch project whose rootfs/ holds Debian's static
//! busybox (from scripts/fetch-test-assets.sh) and an /init that prints `OVM-INIT-OK $(uname -m)`
//! and powers off, packed with `ovm pack` and booted with `ovm boot --expect` on both arches.
//! Then every failure the verdict distinguishes, each with its own exit code.
//!
//! Boots run under TCG on a shared machine: a few seconds each, timeouts generous.

use crate::pack_support;

use std::path::Path;

use ovm::pack::manifest::Manifest;
use pack_support::*;

const TIMEOUT: &str = "120";

fn init_script(body: &str) -> Vec<u8> {
    format!("#!/bin/busybox sh\n{body}\n").into_bytes()
}

/// A project with busybox of `busybox_arch` as /bin/busybox and `init` as /init.
fn project(busybox_arch: &str, init: &str) -> tempfile::TempDir {
    let proj = new_project();
    let rootfs = proj.path().join("rootfs");
    write(&rootfs.join("bin/busybox"), &std::fs::read(asset(busybox_arch, "busybox")).unwrap(), 0o755);
    write(&rootfs.join("init"), &init_script(init), 0o755);
    proj
}

const GOOD_INIT: &str = "/bin/busybox echo \"OVM-INIT-OK $(/bin/busybox uname -m)\"\n/bin/busybox poweroff -f";

fn pack(proj: &Path, arch: &str, extra: &[&str]) {
    let mut args = vec!["pack", arch];
    args.extend_from_slice(extra);
    let out = ovm_in(proj, &args);
    assert!(out.status.success(), "ovm pack {arch} failed: {}", text(&out));
}

/// `ovm boot ARCH --kernel <Debian's> ARGS`; returns (exit code, stdout+stderr).
fn boot(proj: &Path, arch: &str, args: &[&str]) -> (i32, String) {
    require_tool(if arch == "x86_64" { "qemu-system-x86_64" } else { "qemu-system-aarch64" });
    let kernel = asset(arch, "vmlinuz");
    let mut all = vec!["boot", arch, "--kernel", kernel.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = ovm_in(proj, &all);
    (out.status.code().unwrap_or(-1), text(&out))
}

fn boots_and_prints_the_marker(arch: &str) {
    let proj = project(arch, GOOD_INIT);
    pack(proj.path(), arch, &[]);
    let marker = format!("OVM-INIT-OK {arch}");
    let (code, out) = boot(proj.path(), arch, &["--expect", &marker, "--timeout", TIMEOUT]);
    assert_eq!(code, 0, "boot failed:\n{out}");
    assert!(out.contains("PASS"), "{out}");
    let log = std::fs::read_to_string(proj.path().join("logs").join(arch).join("boot.log")).unwrap();
    assert!(log.contains(&format!("{marker}\r\n")) || log.contains(&format!("{marker}\n")), "marker not in boot.log");
    assert!(log.starts_with("# qemu-system-"), "boot.log starts with the qemu command line");
}

#[test]
fn x86_64_busybox_initrd_boots_to_the_marker() {
    boots_and_prints_the_marker("x86_64");
}

#[test]
fn aarch64_busybox_initrd_boots_to_the_marker() {
    boots_and_prints_the_marker("aarch64");
}

/// The kernel unpacks our xz (CRC32) and zstd images too, and `ovm boot` finds the image the
/// manifest names after the compression changed.
#[test]
fn aarch64_boots_xz_and_zstd_images() {
    let proj = project("aarch64", GOOD_INIT);
    for format in ["xz", "zstd"] {
        pack(proj.path(), "aarch64", &["--compress", format]);
        let m = Manifest::parse(&std::fs::read_to_string(proj.path().join("output/aarch64/manifest.txt")).unwrap())
            .unwrap();
        assert_eq!(m.image.compress, format);
        let (code, out) = boot(proj.path(), "aarch64", &["--expect", "OVM-INIT-OK aarch64", "--timeout", TIMEOUT]);
        assert_eq!(code, 0, "{format} image did not boot:\n{out}");
    }
}

#[test]
fn an_init_that_exits_is_a_kernel_panic() {
    let proj = project("aarch64", "/bin/busybox echo 'init giving up'\nexit 3");
    pack(proj.path(), "aarch64", &[]);
    let (code, out) = boot(proj.path(), "aarch64", &["--expect", "OVM-INIT-OK aarch64", "--timeout", TIMEOUT]);
    assert_eq!(code, 11, "expected the kernel-panic code:\n{out}");
    assert!(out.contains("KERNEL PANIC") && out.contains("Attempted to kill init"), "{out}");
}

#[test]
fn a_wrong_arch_busybox_is_a_kernel_panic_with_a_hint() {
    // x86-64 busybox under the arm64 kernel: /init's interpreter cannot be executed.
    let proj = project("x86_64", GOOD_INIT);
    pack(proj.path(), "aarch64", &[]);
    let (code, out) = boot(proj.path(), "aarch64", &["--expect", "OVM-INIT-OK aarch64", "--timeout", TIMEOUT]);
    assert_eq!(code, 11, "expected the kernel-panic code:\n{out}");
    assert!(out.contains("error -8") && out.contains("exec format error"), "{out}");
}

#[test]
fn a_guest_that_never_prints_the_marker_is_marker_missing() {
    let proj = project("aarch64", "/bin/busybox echo 'something else'\n/bin/busybox poweroff -f");
    pack(proj.path(), "aarch64", &[]);
    let (code, out) = boot(proj.path(), "aarch64", &["--expect", "OVM-INIT-OK aarch64", "--timeout", TIMEOUT]);
    assert_eq!(code, 12, "expected the marker-missing code:\n{out}");
    // The marker must end a line: a longer line with the marker as prefix does not count.
    let proj = project("aarch64", "/bin/busybox echo 'OVM-INIT-OK aarch64 but more'\n/bin/busybox poweroff -f");
    pack(proj.path(), "aarch64", &[]);
    let (code, out) = boot(proj.path(), "aarch64", &["--expect", "OVM-INIT-OK aarch64", "--timeout", TIMEOUT]);
    assert_eq!(code, 12, "a marker followed by more text passed:\n{out}");
}

#[test]
fn a_guest_that_hangs_is_a_timeout() {
    let proj = project("aarch64", "/bin/busybox sleep 1000");
    pack(proj.path(), "aarch64", &[]);
    let started = std::time::Instant::now();
    let (code, out) = boot(proj.path(), "aarch64", &["--expect", "OVM-INIT-OK aarch64", "--timeout", "3"]);
    assert_eq!(code, 10, "expected the timeout code:\n{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "qemu was not stopped at the timeout");
}

#[test]
fn a_file_qemu_cannot_boot_is_a_qemu_failure() {
    let proj = project("x86_64", GOOD_INIT);
    pack(proj.path(), "x86_64", &[]);
    let bogus = proj.path().join("not-a-kernel");
    std::fs::write(&bogus, b"").unwrap();
    require_tool("qemu-system-x86_64");
    let out = ovm_in(
        proj.path(),
        &["boot", "x86_64", "--kernel", bogus.to_str().unwrap(), "--expect", "x", "--timeout", TIMEOUT],
    );
    assert_eq!(out.status.code(), Some(13), "expected the qemu-failure code:\n{}", text(&out));
    assert!(text(&out).contains("QEMU FAILED"), "{}", text(&out));
}

#[test]
fn a_missing_kernel_says_how_to_get_one() {
    let proj = project("aarch64", GOOD_INIT);
    pack(proj.path(), "aarch64", &[]);
    // No --kernel and no [boot] kernel: the default is the project's own .cache/test-assets.
    let out = ovm_in(proj.path(), &["boot", "aarch64", "--expect", "x"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("no kernel for aarch64") && msg.contains("scripts/fetch-test-assets.sh"), "{msg}");
}

#[test]
fn a_missing_disk_is_an_error_naming_it_before_qemu_starts() {
    let proj = project("x86_64", GOOD_INIT);
    pack(proj.path(), "x86_64", &[]);
    let kernel = asset("x86_64", "vmlinuz");
    let missing = proj.path().join("no-such-root.img");
    let out = ovm_in(
        proj.path(),
        &["boot", "x86_64", "--kernel", kernel.to_str().unwrap(), "--disk", missing.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains(&format!("no disk image at {}", missing.display())), "{msg}");
    // Refused before qemu ran: no console log was started.
    assert!(!proj.path().join("logs/x86_64/boot.log").exists(), "qemu was started:\n{msg}");
}

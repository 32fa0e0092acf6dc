//! `ovm pack` as a user meets it: layers from rootfs/, staging/ARCH/* and the overlay, and clear
//! errors that name the file, package or line at fault.

use crate::pack_support;

use ovm::pack::manifest::{EntryType, Manifest};
use pack_support::*;

fn manifest(proj: &std::path::Path, arch: &str) -> Manifest {
    Manifest::parse(&std::fs::read_to_string(proj.join("output").join(arch).join("manifest.txt")).unwrap()).unwrap()
}

#[test]
fn packs_staging_in_name_order_and_prints_the_sha256() {
    let proj = new_project();
    let p = proj.path();
    write(&p.join("rootfs/init"), b"#!/bin/sh\n", 0o755);
    write(&p.join("staging/aarch64/zlib/runtime/usr/lib/libz.a"), b"z", 0o644);
    write(&p.join("staging/aarch64/busybox/runtime/bin/busybox"), b"bb", 0o755);
    std::fs::create_dir_all(p.join("staging/aarch64/.musl.tmp/junk")).unwrap();
    let out = ovm_in(p, &["pack", "aarch64", "-j", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let image = p.join("output/aarch64/initrd.cpio.gz");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim(), format!("{}  {}", sha256_file(&image), image.display()));
    let m = manifest(p, "aarch64");
    let owner = |path: &str| m.entries.iter().find(|e| e.path == path.as_bytes()).map(|e| e.owner.clone());
    assert_eq!(owner("/bin/busybox").as_deref(), Some("busybox"));
    assert_eq!(owner("/usr/lib/libz.a").as_deref(), Some("zlib"));
    assert_eq!(owner("/junk"), None, "dot-directories in staging are unfinished commits");
    assert_eq!(m.image.sha256, sha256_file(&image));
}

#[test]
fn a_file_from_two_packages_is_an_error_naming_both() {
    let proj = new_project();
    let p = proj.path();
    write(&p.join("staging/x86_64/busybox/runtime/bin/sh"), b"1", 0o755);
    write(&p.join("staging/x86_64/dash/runtime/bin/sh"), b"2", 0o755);
    let out = ovm_in(p, &["pack", "x86_64"]);
    assert_eq!(out.status.code(), Some(1));
    let msg = text(&out);
    assert!(msg.contains("/bin/sh") && msg.contains("busybox") && msg.contains("dash"), "{msg}");
    assert!(!p.join("output/x86_64/initrd.cpio.gz").exists());
}

#[test]
fn a_bad_table_line_or_missing_inputs_are_named() {
    let proj = new_project();
    let p = proj.path();
    write(&p.join("rootfs/init"), b"#!/bin/sh\n", 0o755);
    std::fs::write(p.join("config/device_table.txt"), "/dev/console c 600 0 0 5 1\n/dev/bad z 600 0 0\n").unwrap();
    let msg = text(&ovm_in(p, &["pack", "x86_64"]));
    assert!(msg.contains("device_table.txt:2") && msg.contains("unknown type `z`"), "{msg}");

    std::fs::remove_file(p.join("config/device_table.txt")).unwrap();
    let msg = text(&ovm_in(p, &["pack", "x86_64"]));
    assert!(msg.contains("device_table.txt") && msg.contains("No such file"), "{msg}");

    std::fs::copy(repo_root().join("config/device_table.txt"), p.join("config/device_table.txt")).unwrap();
    let msg = text(&ovm_in(p, &["pack", "x86_64", "--overlay", "/nonexistent/overlay"]));
    assert!(msg.contains("/nonexistent/overlay") && msg.contains("does not exist"), "{msg}");

    let msg = text(&ovm_in(p, &["pack", "x86_64", "--compress", "lz4"]));
    assert!(msg.contains("lz4") && msg.contains("[possible values: none, gzip, xz, zstd]"), "{msg}");
}

#[test]
fn changing_compression_replaces_the_image_and_keeps_one_manifest() {
    let proj = new_project();
    let p = proj.path();
    write(&p.join("rootfs/init"), b"#!/bin/sh\n", 0o755);
    for (format, name) in [("gzip", "initrd.cpio.gz"), ("zstd", "initrd.cpio.zst"), ("none", "initrd.cpio")] {
        let out = ovm_in(p, &["pack", "x86_64", "--compress", format]);
        assert!(out.status.success(), "{}", text(&out));
        let images: Vec<String> = std::fs::read_dir(p.join("output/x86_64"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("initrd"))
            .collect();
        assert_eq!(images, [name]);
        assert_eq!(manifest(p, "x86_64").image.file_name, name);
    }
}

/// The attack: `ln -s /etc rootfs` made the image hold the host's /etc, `/etc/shadow` included.
/// `rootfs/` is followed (it is the skeleton's root), so like a patch or a config file it must
/// lead to the project's own files; the links inside it are packed as links, never followed.
#[test]
fn a_rootfs_leading_out_of_the_project_is_refused() {
    let proj = new_project();
    let p = proj.path();
    std::os::unix::fs::symlink("/etc", p.join("rootfs")).unwrap();
    let out = ovm_in(p, &["pack", "x86_64"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains(&format!("{} resolves to /etc, outside the project", p.join("rootfs").display())), "{msg}");
    assert!(!p.join("output/x86_64/initrd.cpio.gz").exists());

    // The same through a parent: the project's own `skel/` is fine, a `skel -> /` is not.
    std::fs::remove_file(p.join("rootfs")).unwrap();
    write(&p.join("skel/rootfs/init"), b"#!/bin/sh\n", 0o755);
    std::os::unix::fs::symlink("skel/rootfs", p.join("rootfs")).unwrap();
    let out = ovm_in(p, &["pack", "x86_64"]);
    assert!(out.status.success(), "a skeleton linked from inside the project:\n{}", text(&out));
    std::fs::remove_dir_all(p.join("skel")).unwrap();
    std::os::unix::fs::symlink("/", p.join("skel")).unwrap();
    std::fs::remove_file(p.join("rootfs")).unwrap();
    std::os::unix::fs::symlink("skel/etc", p.join("rootfs")).unwrap();
    let msg = text(&ovm_in(p, &["pack", "x86_64"]));
    assert!(msg.contains("rootfs resolves to /etc, outside the project"), "{msg}");

    // A real rootfs/ with `etc -> /etc` inside: packed as that symlink, nothing of the host's /etc.
    std::fs::remove_file(p.join("rootfs")).unwrap();
    write(&p.join("rootfs/init"), b"#!/bin/sh\n", 0o755);
    std::os::unix::fs::symlink("/etc", p.join("rootfs/etc")).unwrap();
    let out = ovm_in(p, &["pack", "x86_64"]);
    assert!(out.status.success(), "{}", text(&out));
    let m = manifest(p, "x86_64");
    let etc = m.entries.iter().find(|e| e.path == b"/etc").expect("/etc in the manifest");
    assert_eq!((&etc.kind, etc.target.as_deref()), (&EntryType::Symlink, Some(&b"/etc"[..])), "{etc:?}");
    assert!(!m.entries.iter().any(|e| e.path.starts_with(b"/etc/")), "the host's /etc was followed");
}

/// The engine never commits a package output holding a FIFO or a device node (engine tests show
/// it); a staging directory changed by hand could, and `ovm pack` must not ship it either.
#[test]
fn a_fifo_in_a_staged_package_is_not_shipped() {
    let proj = new_project();
    let p = proj.path();
    write(&p.join("rootfs/init"), b"#!/bin/sh\n", 0o755);
    write(&p.join("staging/x86_64/evil/runtime/usr/bin/tool"), b"x", 0o755);
    nix::unistd::mkfifo(
        &p.join("staging/x86_64/evil/runtime/usr/bin/pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let out = ovm_in(p, &["pack", "x86_64"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains(&format!(
            "package evil: {} is a fifo",
            p.join("staging/x86_64/evil/runtime/usr/bin/pipe").display()
        )),
        "{msg}"
    );
    assert!(!p.join("output/x86_64/initrd.cpio.gz").exists());
}

/// Attack: `ovm pack` ran without the project lock, so it packed whatever a running build had
/// half committed to staging/. It takes the lock now: with `--no-wait` it refuses and names the
/// holder, without it waits (saying for whom) and packs once the lock is free, as `ovm build` does.
#[test]
fn pack_takes_the_project_lock_waiting_for_a_build_or_refusing_with_no_wait() {
    use std::io::{BufRead, Write};
    let proj = new_project();
    let p = proj.path();
    write(&p.join("rootfs/init"), b"#!/bin/sh\n", 0o755);
    let image = p.join("output/x86_64/initrd.cpio.gz");
    // A build at work, as the lock sees it: flock(2) on states/.lock, the holder's line inside.
    std::fs::create_dir_all(p.join("states")).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(p.join("states/.lock"))
        .unwrap();
    file.write_all(b"pid 4242: ovm build x86_64\n").unwrap();
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();

    let out = ovm_in(p, &["pack", "x86_64", "--no-wait"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("another ovm is working on this project (pid 4242: ovm build x86_64)"),
        "{}",
        text(&out)
    );
    assert!(!image.exists(), "packed while a build held the lock");

    let mut child = ovm()
        .arg("-C")
        .arg(p)
        .args(["pack", "x86_64"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("waiting for another ovm") {
        let mut line = String::new();
        // EOF: ovm ended without waiting (the bug).
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "ovm pack did not wait for the lock:\n{said}");
        said.push_str(&line);
    }
    assert!(said.contains("pid 4242: ovm build x86_64"), "{said}");
    assert!(!image.exists(), "packed while a build held the lock");
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{said}{}", text(&out));
    assert!(image.exists());
}

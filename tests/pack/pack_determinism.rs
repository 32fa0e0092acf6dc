//! Determinism: the image's sha256 depends on the tree's content only. The same tree packed after
//! `touch`ing everything, after a copy elsewhere (new inodes), after `chown`ing it to another
//! user, after a copy made under another umask, and with 1 vs 2 compression threads must give
//! the same bytes, for gzip, xz and zstd. Also: an interrupted pack never leaves a broken image
//! under the real name.

use crate::pack_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use ovm::arch::Arch;
use ovm::pack::{pack, Compression, Layer, PackRequest};
use pack_support::*;

const FORMATS: [Compression; 3] = [Compression::Gzip, Compression::Xz, Compression::Zstd];

fn request(tree: &Path, out: &Path, compress: Compression, threads: usize) -> PackRequest {
    PackRequest {
        arch: Arch::X86_64,
        layers: vec![Layer::rootfs(tree.join("rootfs")), Layer::package("pkg", tree.join("pkg"), false)],
        kernel_modules: None,
        device_table: Some(repo_root().join("config/device_table.txt")),
        compress,
        tar: false,
        threads,
        source_date_epoch: 1_700_000_000,
        output_dir: out.to_path_buf(),
        owners: None,
    }
}

/// sha256 of the image for each format (and a check that the manifest's hash is the file's).
fn shas(tree: &Path, scratch: &Path, threads: usize) -> Vec<String> {
    FORMATS
        .iter()
        .map(|&c| {
            let out = scratch.join(format!("out-{}-{threads}", c.name()));
            let o = pack(&request(tree, &out, c, threads)).unwrap_or_else(|e| panic!("pack {c}: {e}"));
            assert_eq!(o.sha256, sha256_file(&o.image));
            o.sha256
        })
        .collect()
}

fn make_tree(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    sample_tree(&tree.join("rootfs"));
    write(&tree.join("pkg/usr/bin/prog"), &noise(5, 200_000), 0o755);
    write(&tree.join("pkg/usr/share/prog/data"), &prose(6, 50_000), 0o644);
    tree
}

fn sh(script: &str) {
    run(Command::new("sh").arg("-c").arg(script));
}

#[test]
fn same_bytes_after_touch_copy_chown_umask_and_thread_change() {
    require_tool("cp");
    require_tool("touch");
    require_root("chown to another user");
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let tree = make_tree(s);
    let base = shas(&tree, s, 1);

    assert_eq!(shas(&tree, s, 2), base, "1 vs 2 compression threads");

    let moved = s.join("moved");
    copy_tree(&tree, &moved);
    assert_eq!(shas(&moved, s, 2), base, "a copy elsewhere (new inodes, new path)");

    sh(&format!("find '{}' -exec touch -h -d '2001-02-03 04:05:06' {{}} +", moved.display()));
    assert_eq!(shas(&moved, s, 2), base, "after touching every entry");

    sh(&format!("chown -R -h 65534:65534 '{}'", moved.display()));
    assert_eq!(shas(&moved, s, 2), base, "after chown to nobody:nogroup");

    let masked = s.join("masked");
    sh(&format!("umask 077 && cp -r --preserve=links '{}' '{}'", tree.display(), masked.display()));
    let mode = std::fs::metadata(masked.join("rootfs/etc/passwd")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o600, "umask took effect");
    assert_eq!(shas(&masked, s, 1), base, "a copy made under umask 077");

    let other = s.join("other");
    copy_tree(&tree, &other);
    std::fs::write(other.join("rootfs/etc/motd"), b"welcome!\n").unwrap();
    assert!(shas(&other, s, 1).iter().zip(&base).all(|(a, b)| a != b), "a content change must change every image");
}

/// xz and zstd are only really parallel once the input spans several of their fixed blocks/jobs
/// (4 MiB): this tree is ~7 MiB so 1 and 2 threads really split the work differently.
#[test]
fn multi_block_images_do_not_depend_on_the_thread_count() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let tree = s.join("tree");
    const { assert!(ovm::pack::compress::XZ_BLOCK < 6 << 20 && ovm::pack::compress::ZSTD_JOB < 6 << 20) };
    write(&tree.join("rootfs/big/text"), &prose(11, 6 << 20), 0o644);
    write(&tree.join("rootfs/big/noise"), &noise(12, 1 << 20), 0o644);
    std::fs::create_dir_all(tree.join("pkg")).unwrap();
    let one = shas(&tree, s, 1);
    let two = shas(&tree, s, 2);
    for ((c, a), b) in FORMATS.iter().zip(&one).zip(&two) {
        assert_eq!(a, b, "{c}: 1 vs 2 threads");
    }
}

#[test]
fn an_interrupted_pack_leaves_the_previous_image_in_place() {
    let proj = new_project();
    let p = proj.path();
    write(&p.join("rootfs/etc/motd"), b"first\n", 0o644);
    std::fs::write(p.join("config/ovm.toml"), "[pack]\ncompress = \"xz\"\nthreads = 1\n").unwrap();
    let first = ovm_in(p, &["pack", "x86_64"]);
    assert!(first.status.success(), "{}", text(&first));
    let image = p.join("output/x86_64/initrd.cpio.xz");
    let manifest = p.join("output/x86_64/manifest.txt");
    let (image_sha, manifest_text) = (sha256_file(&image), std::fs::read_to_string(&manifest).unwrap());

    // ~40 MB of noise at xz -6 on one thread takes many seconds: time enough to kill it mid-write.
    write(&p.join("rootfs/big"), &noise(13, 40 << 20), 0o644);
    let mut child = ovm().arg("-C").arg(p).args(["pack", "x86_64"]).spawn().unwrap();
    let out_dir = p.join("output/x86_64");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let temp_growing = std::fs::read_dir(&out_dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".initrd.") && e.metadata().unwrap().len() > 0);
        if temp_growing {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "pack finished before it could be interrupted");
        assert!(std::time::Instant::now() < deadline, "no temporary image appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(sha256_file(&image), image_sha, "the image under the real name changed");
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), manifest_text, "the manifest changed");

    // The next pack cleans up the killed one's temporary file and completes.
    std::fs::remove_file(p.join("rootfs/big")).unwrap();
    write(&p.join("rootfs/etc/motd"), b"second\n", 0o644);
    let again = ovm_in(p, &["pack", "x86_64"]);
    assert!(again.status.success(), "{}", text(&again));
    assert_ne!(sha256_file(&image), image_sha);
    let leftovers: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".initrd.") || n.starts_with(".manifest."))
        .collect();
    assert!(leftovers.is_empty(), "stale temporary files: {leftovers:?}");
}

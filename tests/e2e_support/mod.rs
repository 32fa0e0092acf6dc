//! Helpers of the end-to-end tests (e2e_*): a build with no network at all, booting the result
//! with Debian's kernel, reading the build summary and the image, and a pseudo-terminal to drive
//! an interactive `ovm shell` the way a person at a terminal would.
//!
//! Each e2e test starts from `TestProject::from_repo()`: the repository's own recipes, config,
//! patches and rootfs in a scratch directory, so what is tested is exactly what a user builds.
#![allow(dead_code)] // each test binary uses a different subset

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use crate::build_support::{mirror, repo_root, require_tool, text, TestProject, SETUP_HINT};
use ovm::pack::manifest::{EntryType, Manifest, ManifestEntry};

/// Boots run under TCG on a shared, loaded machine: generous.
pub const BOOT_TIMEOUT: &str = "240";

/// `ovm ARGS` in `p`, with the shared mirror and caches, inside a new network namespace that has
/// nothing but a loopback interface that is down: whatever the build needs must come from the
/// mirror directory (`OVM_MIRRORS`) or the caches, since no host, not even a Debian or PyPI
/// fallback, can be reached. Needs root (CI runs the suite as root).
pub fn offline(p: &TestProject, args: &[&str]) -> Output {
    require_tool("unshare");
    assert!(
        nix::unistd::geteuid().is_root(),
        "the offline build runs under `unshare --net`, which needs root; CI runs scripts/test.sh as root"
    );
    // Fill the mirror first: that is the one step that may use the network.
    mirror();
    let inner = p.ovm().args(args).get_args().map(OsString::from).collect::<Vec<_>>();
    let model = p.ovm();
    let mut cmd = Command::new("unshare");
    cmd.arg("--net").arg("--").arg(model.get_program()).args(&inner);
    for (k, v) in model.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.output().expect("running unshare --net ovm")
}

/// Like `TestProject::ok`, but offline (see [`offline`]).
pub fn offline_ok(p: &TestProject, args: &[&str]) -> String {
    let out = offline(p, args);
    let t = text(&out);
    assert!(out.status.success(), "offline `ovm {}` failed ({:?}):\n{t}", args.join(" "), out.status);
    t
}

/// Debian's kernel for `arch`, from scripts/fetch-test-assets.sh.
pub fn kernel(arch: &str) -> PathBuf {
    let k = repo_root().join(".cache/test-assets").join(arch).join("vmlinuz");
    assert!(k.is_file(), "{} is missing: {SETUP_HINT} (it calls scripts/fetch-test-assets.sh)", k.display());
    k
}

/// `ovm boot ARCH --append APPEND --expect EXPECT` on the project's image; (exit code, output).
pub fn boot(p: &TestProject, arch: &str, append: &str, expect: &str) -> (i32, String) {
    boot_with(p, arch, &["--append", append, "--expect", expect])
}

/// `ovm boot ARCH --kernel <Debian's> --timeout BOOT_TIMEOUT ARGS`; (exit code, output).
pub fn boot_with(p: &TestProject, arch: &str, args: &[&str]) -> (i32, String) {
    require_tool(if arch == "x86_64" { "qemu-system-x86_64" } else { "qemu-system-aarch64" });
    let k = kernel(arch);
    let mut all = vec!["boot", arch, "--kernel", k.to_str().expect("utf-8 path"), "--timeout", BOOT_TIMEOUT];
    all.extend_from_slice(args);
    let out = p.run(&all);
    (out.status.code().unwrap_or(-1), text(&out))
}

/// Boots with `ovm.test=1` and asserts the init's marker.
pub fn assert_boots_to_marker(p: &TestProject, arch: &str) -> String {
    let marker = format!("OVM-INIT-OK {arch}");
    let (code, out) = boot(p, arch, "ovm.test=1", &marker);
    assert_eq!(code, 0, "`ovm boot {arch} --append ovm.test=1 --expect '{marker}'` did not pass:\n{out}");
    out
}

/// The checks rootfs/init's `ovm.test=2` must report as passed: the mount table,
/// /dev/null, `busybox --list`, `ip link` shows lo) and the rest of what /init sets up.
pub const SELFTEST_CHECKS: &[&str] = &[
    "proc on /proc",
    "sysfs on /sys",
    "devtmpfs on /dev",
    "devpts on /dev/pts",
    "tmpfs on /dev/shm",
    "tmpfs on /run",
    "/dev/null usable",
    "busybox --list non-empty",
    "ip link shows lo up",
    "init's setup steps all succeeded",
];

/// Boots with `ovm.test=2` and asserts the self-check passed, each listed check reporting `ok`.
pub fn assert_selftest_passes(p: &TestProject, arch: &str) -> String {
    let marker = format!("OVM-SELFTEST-PASS {arch}");
    let (code, out) = boot(p, arch, "ovm.test=2", &marker);
    assert_eq!(code, 0, "`ovm boot {arch} --append ovm.test=2 --expect '{marker}'` did not pass:\n{out}");
    for check in SELFTEST_CHECKS {
        assert!(out.contains(&format!("ovm-selftest: ok   {check}")), "self-check `{check}` not reported ok:\n{out}");
    }
    assert!(!out.contains("ovm-selftest: FAIL"), "a self-check failed:\n{out}");
    out
}

/// The image size the build summary prints: `ovm: image PATH (N bytes, X MB)`.
pub fn summary_image_size(summary: &str) -> u64 {
    let line = summary
        .lines()
        .find(|l| l.starts_with("ovm: image "))
        .unwrap_or_else(|| panic!("the build summary names no image:\n{summary}"));
    let inner = line.split('(').nth(1).unwrap_or_else(|| panic!("no size in `{line}`"));
    let bytes = inner.split(" bytes").next().unwrap_or_else(|| panic!("no byte count in `{line}`"));
    bytes.trim().parse().unwrap_or_else(|e| panic!("size in `{line}`: {e}"))
}

pub fn manifest(p: &TestProject, arch: &str) -> Manifest {
    manifest_in(p, &format!("output/{arch}"))
}

/// The manifest in `dir` (relative to the project): `output/ARCH`, `output/ARCH/images/NAME`.
pub fn manifest_in(p: &TestProject, dir: &str) -> Manifest {
    let t = p.read(&format!("{dir}/manifest.txt"));
    Manifest::parse(&t).unwrap_or_else(|e| panic!("{dir}/manifest.txt does not parse: {e}"))
}

pub fn entry<'m>(m: &'m Manifest, path: &str) -> Option<&'m ManifestEntry> {
    m.entries.iter().find(|e| e.path == path.as_bytes())
}

/// The image as GNU cpio sees it: `path` (no leading `/`) extracted from output/ARCH's image.
pub fn extract_from_image(p: &TestProject, arch: &str, path: &str) -> Vec<u8> {
    require_tool("cpio");
    let m = manifest(p, arch);
    assert_eq!(m.image.compress, "gzip", "the default image is gzip");
    let image = p.path().join("output").join(arch).join(&m.image.file_name);
    let mut cpio = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&image).expect("open image"))
        .read_to_end(&mut cpio)
        .expect("gunzip image");
    let mut child = Command::new("cpio")
        .args(["-i", "--to-stdout", "--quiet", path])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cpio");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &cpio));
    let out = child.wait_with_output().expect("cpio");
    writer.join().expect("writer thread").expect("feeding cpio");
    assert!(out.status.success(), "cpio -i {path}: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!out.stdout.is_empty(), "{path} is not in {}", image.display());
    out.stdout
}

/// `file -b` of some bytes.
pub fn file_type(bytes: &[u8], dir: &Path) -> String {
    require_tool("file");
    let f = dir.join("probe.bin");
    std::fs::write(&f, bytes).expect("write probe");
    let out = Command::new("file").arg("-b").arg(&f).output().expect("file");
    let _ = std::fs::remove_file(&f);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The initrd's /bin/busybox is ovm's own: owned by package `busybox` in the manifest, the same
/// bytes in the image, a static ELF for `arch` without glibc's GNU/Linux ABI note (musl has none),
/// and not Debian's busybox-static.
pub fn assert_own_musl_busybox(p: &TestProject, arch: &str) {
    let m = manifest(p, arch);
    assert_eq!(m.arch, arch);
    let e = entry(&m, "/bin/busybox").unwrap_or_else(|| panic!("no /bin/busybox in the {arch} manifest"));
    assert_eq!(e.kind, EntryType::File, "/bin/busybox is a regular file");
    assert_eq!(e.owner, "busybox", "/bin/busybox must come from package busybox, not {}", e.owner);
    for applet in ["/bin/sh", "/sbin/mdev", "/sbin/switch_root", "/sbin/ip"] {
        let a = entry(&m, applet).unwrap_or_else(|| panic!("no {applet} in the {arch} image"));
        assert_eq!(a.owner, "busybox", "{applet} must be a busybox applet link");
    }

    let bytes = extract_from_image(p, arch, "bin/busybox");
    let sha = ovm::signature::sha256_hex(&bytes);
    assert_eq!(Some(&sha), e.sha256.as_ref(), "the image's /bin/busybox differs from the manifest's");
    let want_arch = if arch == "x86_64" { "x86-64" } else { "ARM aarch64" };
    let ft = file_type(&bytes, p.path());
    assert!(ft.starts_with("ELF 64-bit LSB executable"), "{arch} /bin/busybox is not an ELF executable: {ft}");
    assert!(ft.contains(want_arch), "{arch} /bin/busybox is for another machine: {ft}");
    assert!(ft.contains("statically linked"), "{arch} /bin/busybox is not static: {ft}");
    // glibc's crt1.o carries the .note.ABI-tag `file` shows as "for GNU/Linux 3.2.0"; musl's has none.
    assert!(!ft.contains("GNU/Linux"), "{arch} /bin/busybox is a glibc binary: {ft}");
    assert!(!contains(&bytes, b"GLIBC_"), "{arch} /bin/busybox carries glibc symbol versions");

    let debian = repo_root().join(".cache/test-assets").join(arch).join("busybox");
    let theirs = std::fs::read(&debian)
        .unwrap_or_else(|e| panic!("{}: {e}: {SETUP_HINT} (it calls scripts/fetch-test-assets.sh)", debian.display()));
    assert_ne!(theirs, bytes, "the {arch} initrd carries Debian's busybox-static, not ovm's");
}

/// Prints how long each step of a test took (`cargo test -- --nocapture` shows them), so the
/// e2e tier's cost is visible in CI logs; the budget is checked by reading them, never asserted.
pub struct Steps {
    arch: &'static str,
    started: Instant,
    last: Instant,
}

impl Steps {
    pub fn new(arch: &'static str) -> Steps {
        let now = Instant::now();
        Steps { arch, started: now, last: now }
    }

    pub fn done(&mut self, what: &str) {
        let now = Instant::now();
        eprintln!(
            "e2e {}: {what}: {:.1} s (total {:.1} s)",
            self.arch,
            (now - self.last).as_secs_f64(),
            (now - self.started).as_secs_f64()
        );
        self.last = now;
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `TestProject::from_repo()` whose busybox no other build of this `cargo test` run can supply:
/// a comment naming this test process is appended to config/busybox.config. The recipe's
/// configure step compares only the `CONFIG_` lines and kconfig drops comments, so the image is
/// the same bytes, but the file is an input of busybox's signature: the shared-state cache (which
/// the Podman test or the other e2e test may have filled with the very same busybox) has no entry
/// for it, and the first build must really compile busybox. The toolchain and build tools still
/// come from the cache, as in every engine test.
pub fn from_repo_with_busybox_to_build() -> TestProject {
    let p = TestProject::from_repo();
    let nonce = std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_nanos());
    let config = p.read("config/busybox.config");
    p.write(
        "config/busybox.config",
        &format!("{config}# e2e test {} {nonce}: a comment only, so no cached busybox matches\n", std::process::id()),
    );
    p
}

/// On a project from [`from_repo_with_busybox_to_build`], ARCH's busybox was really built in this
/// run: its summary line says `built (from unpack)` and configure..package ran. Never answered by
/// the shared-state cache (that project's busybox has a signature no other build has).
pub fn assert_package_made(summary: &str, tasks: &[String], arch: &str) {
    let line = summary
        .lines()
        .find(|l| l.split_whitespace().take(2).eq([arch, "busybox"]))
        .unwrap_or_else(|| panic!("the summary does not list {arch} busybox:\n{summary}"));
    assert!(line.ends_with("built (from unpack)"), "{arch} busybox was not built from scratch: `{line}`");
    for t in ["busybox configure", "busybox compile", "busybox install", "busybox package"] {
        assert!(tasks.iter().any(|r| r == t), "`{t}` did not run on a clean project: {tasks:?}");
    }
}

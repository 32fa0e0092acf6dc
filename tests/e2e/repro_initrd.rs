//! Reproducibility: the same inputs give the same initrd bytes, whoever builds them, wherever,
//! whenever. Two builds of the repository's own recipes (busybox for the initrd, with the zig
//! toolchain, in the strict sandbox), for x86_64 and aarch64, that differ in everything a build
//! must not depend on:
//!
//! | | build A | build B |
//! |---|---|---|
//! | user | root | the unprivileged `ovmtest` (created here, as the sandbox tests do) |
//! | project path | `target/tmp/ovm-project-XXXX` | `$TMPDIR/ovm-repro-PID/a/much/deeper/path-…/project` |
//! | wall time | now | minutes later |
//! | input file times | as checked out | every file of the project dated ~3 years ahead |
//! | umask | 022 | 077 |
//! | locale, TZ | `LANG=C`, `TZ=UTC` | `LANG=de_DE.UTF-8`, `TZ=Asia/Tokyo` |
//! | HOME | the caller's | its own directory |
//! | host name | the machine's | another one (a UTS namespace) |
//! | make jobs | `-j 1` (serial) | `-j 3` (parallel) |
//! | zig object cache | the tests' shared one | a fresh, empty one |
//!
//! `SOURCE_DATE_EPOCH` is the project's (unset in the environment), the same for both.
//!
//! How it is ensured that busybox (the initrd's package) is really compiled twice and not
//! restored from the shared-state cache: the busybox recipe of both projects carries the same
//! per-run nonce in `build.env`, so no earlier test or run can have filed its output; after build A
//! its entries (found by the signature in A's own `package` stamps) are removed from the shared
//! cache before build B; B's zig cache starts empty so no compiled object is shared either; and
//! both builds' task logs are checked to contain `busybox compile` for each arch. The toolchain
//! (the unpacked zig wheel) and the host build tools may come from the run's shared cache: they are
//! not part of the image.
//!
//! On a mismatch the test prints `scripts/repro-check.sh`'s report (first differing file). The
//! image's SBOMs (SPDX and CycloneDX) and package feed are compared byte for byte as well, and so
//! is the image built from an install list, `ovm build --image initrd` for x86_64
//! (images/initrd.toml: busybox-mini, the same nonce, compiled by both sides, and a postprocess
//! command run in the sandbox), with its manifest and its own SBOMs.

use crate::build_support;
use crate::sandbox_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use build_support::{copy_tree, mirror, repo_root, require_tool, text, TestProject, SETUP_HINT};

const ARCHES: [&str; 2] = ["x86_64", "aarch64"];
const LOCALE_B: &str = "de_DE.UTF-8";
const HOSTNAME_B: &str = "repro-other-host";

/// The packages both sides must compile themselves: busybox, the default image's, and
/// busybox-mini, the initrd image's.
const COMPILED: [&str; 2] = ["busybox", "busybox-mini"];
/// The named image built (for x86_64) and compared besides the default ones.
const NAMED_IMAGE: &str = "initrd";

/// The per-run nonce goes into the `[build] env` of the recipes of [`COMPILED`] (their builds
/// never read it): their signatures are then ones no earlier build can have filed in a
/// shared-state cache.
fn add_nonce(project: &Path, nonce: &str) {
    for name in COMPILED {
        let path = project.join(format!("recipes/{name}.toml"));
        let mut recipe: toml::Table = fs::read_to_string(&path).unwrap().parse().unwrap();
        let build = recipe.get_mut("build").and_then(|b| b.as_table_mut()).expect("the recipe has [build]");
        let env = build.entry("env").or_insert_with(|| toml::Value::Table(toml::Table::new()));
        env.as_table_mut().expect("build.env is a table").insert("OVM_REPRO_NONCE".into(), nonce.into());
        fs::write(path, toml::to_string(&recipe).unwrap()).unwrap();
    }
}

/// busybox's banner carries the build date: it must be SOURCE_DATE_EPOCH's, not the clock's.
fn assert_banner_dated_by_epoch(project: &Path, arch: &str) {
    let epoch = ovm::project::Project::open(project).unwrap().config.build.source_date_epoch;
    let date =
        Command::new("date").args(["-u", "-d", &format!("@{epoch}"), "+%Y-%m-%d %H:%M:%S UTC"]).output().unwrap();
    let banner = format!("BusyBox v1.35.0 ({})", String::from_utf8_lossy(&date.stdout).trim());
    let binary = fs::read(project.join("staging").join(arch).join("busybox/runtime/bin/busybox")).unwrap();
    assert!(
        binary.windows(banner.len()).any(|w| w == banner.as_bytes()),
        "{}: {arch} busybox does not carry the banner `{banner}`",
        project.display()
    );
}

fn initrd_sha256(project: &Path, arch: &str) -> String {
    let m = fs::read_to_string(project.join("output").join(arch).join("manifest.txt")).unwrap();
    let m = ovm::pack::manifest::Manifest::parse(&m).unwrap();
    let image = fs::read(project.join("output").join(arch).join(&m.image.file_name)).unwrap();
    let got = ovm::digest::sha256_hex(&image);
    assert_eq!(got, m.image.sha256, "{}: the manifest's image hash is not the image's", project.display());
    got
}

/// The `package` stamp's signature of `pkg` for `arch`: the key of its shared-state entry.
fn package_signature(project: &Path, arch: &str, pkg: &str) -> String {
    let stamp = fs::read_to_string(project.join("states").join(arch).join(format!("{pkg}.package"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&stamp).unwrap();
    v["signature"].as_str().unwrap().to_string()
}

fn tasks_run(project: &Path, arch: &str) -> Vec<String> {
    let log = fs::read_to_string(project.join("logs").join(arch).join("context.log")).unwrap_or_default();
    ovm::engine::context_log::tasks_of_last_run(&log).into_iter().map(|s| format!("{} {}", s.package, s.task)).collect()
}

fn assert_compiled(project: &Path, arch: &str, pkg: &str, who: &str) {
    let ran = tasks_run(project, arch);
    assert!(
        ran.iter().any(|t| *t == format!("{pkg} compile")),
        "build {who} did not compile {pkg} for {arch} (restored from a cache?); tasks run: {ran:?}"
    );
}

/// Every file of output/x86_64/images/NAMED_IMAGE (image, manifest, SBOM), relative to the project.
fn named_image_files(project: &Path) -> Vec<String> {
    let dir = format!("output/x86_64/images/{NAMED_IMAGE}");
    let mut names: Vec<String> = fs::read_dir(project.join(&dir))
        .unwrap_or_else(|e| panic!("{}: {e}", project.join(&dir).display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.contains(&"manifest.txt".to_string()) && names.contains(&"sbom.spdx.json".to_string()), "{names:?}");
    names.into_iter().map(|n| format!("{dir}/{n}")).collect()
}

/// The files a build writes beside the image: `output/ARCH/sbom.spdx.json`, `sbom.cdx.json` and
/// every file of `output/ARCH/feed/`, relative to the project.
fn written_with_the_image(project: &Path, arch: &str) -> Vec<String> {
    let mut out = vec![format!("output/{arch}/sbom.spdx.json"), format!("output/{arch}/sbom.cdx.json")];
    let feed = project.join("output").join(arch).join("feed");
    let mut names: Vec<String> = fs::read_dir(&feed)
        .unwrap_or_else(|e| panic!("{}: {e}", feed.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.iter().any(|n| n.ends_with(".ipk")) && names.contains(&"Packages".to_string()), "{names:?}");
    out.extend(names.into_iter().map(|n| format!("output/{arch}/feed/{n}")));
    out
}

/// `scripts/repro-check.sh ARCH A B`: exit status and report.
fn repro_check(arch: &str, a: &Path, b: &Path) -> (bool, String) {
    let out = Command::new(repo_root().join("scripts/repro-check.sh")).arg(arch).arg(a).arg(b).output().unwrap();
    (out.status.success(), text(&out))
}

fn has_locale(name: &str) -> bool {
    let out = Command::new("locale").arg("-a").output().expect("running locale -a");
    let want = name.to_lowercase().replace("utf-8", "utf8");
    String::from_utf8_lossy(&out.stdout).lines().any(|l| l.to_lowercase() == want)
}

fn chown_r(path: &Path, user: &str) {
    let st = Command::new("chown").arg("-R").arg(format!("{user}:{user}")).arg(path).status().unwrap();
    assert!(st.success(), "chown -R {user} {}", path.display());
}

fn link_or_copy(from: &Path, to: &Path) {
    if fs::hard_link(from, to).is_err() {
        fs::copy(from, to).unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
    }
}

/// Every ancestor directory of `p` lets others through: the unprivileged user can read `p`.
fn reachable_by_others(p: &Path) -> bool {
    p.ancestors().all(|d| fs::metadata(d).map(|m| m.permissions().mode() & 0o005 == 0o005).unwrap_or(false))
}

/// Build B's environment, laid out in `$TMPDIR` (the checkout may be closed to other users): the
/// ovm binary, a copy of the mirror, the project, HOME and an empty zig cache, all owned by `user`.
struct OtherSide {
    base: PathBuf,
    ovm: PathBuf,
    mirror: PathBuf,
    project: PathBuf,
    home: PathBuf,
    zig_cache: PathBuf,
    sstate: PathBuf,
}

impl OtherSide {
    fn new(user: &str, nonce: &str, shared_sstate: &Path) -> OtherSide {
        let base = std::env::temp_dir().join(format!("ovm-repro-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();

        let ovm = base.join("ovm");
        link_or_copy(Path::new(build_support::ovm_bin()), &ovm);
        let mirror_dir = base.join("mirror");
        fs::create_dir(&mirror_dir).unwrap();
        for e in fs::read_dir(mirror()).unwrap().flatten() {
            if e.file_type().unwrap().is_file() {
                link_or_copy(&e.path(), &mirror_dir.join(e.file_name()));
            }
        }
        // A different depth and name than A's project: no path may leak into the image.
        let project = base.join("a/much/deeper/path-with-another-name.d/project");
        for d in ["recipes", "config", "patches", "rootfs", "images"] {
            copy_tree(&repo_root().join(d), &project.join(d));
        }
        add_nonce(&project, nonce);
        // Time must not leak in through the inputs' modification times either. (ovm is a static
        // binary, so an LD_PRELOAD clock shifter such as faketime cannot move its own clock.)
        let ahead = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 1111 * 86_400;
        let touched = Command::new("find")
            .arg(&project)
            .args(["-exec", "touch", "-h", "-d", &format!("@{ahead}"), "{}", "+"])
            .status()
            .expect("running find/touch");
        assert!(touched.success(), "dating build B's inputs ahead failed");
        let home = base.join("home");
        let zig_cache = base.join("zig-cache");
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(&zig_cache).unwrap();
        // The tests' shared cache when this user can read it (its toolchain and build tools then
        // come from there, copied since another user's files cannot be hard-linked); else an empty
        // one of its own, and B builds those too.
        let sstate = if reachable_by_others(shared_sstate) { shared_sstate.to_path_buf() } else { base.join("sstate") };
        fs::create_dir_all(&sstate).unwrap();
        for d in ["a", "mirror", "home", "zig-cache"] {
            chown_r(&base.join(d), user);
        }
        if sstate.starts_with(&base) {
            chown_r(&sstate, user);
        }
        OtherSide { base, ovm, mirror: mirror_dir, project, home, zig_cache, sstate }
    }

    /// `ovm -C PROJECT build --sandbox ARCH` as `user`, umask 077, another locale, time zone, HOME
    /// and host name, three make jobs; `extra` arguments after ARCH.
    fn build(&self, user: &str, arch: &str, extra: &[&str]) -> Output {
        let script = "hostname \"$1\" && umask 077 && shift && exec \"$@\"";
        let mut cmd = Command::new("unshare");
        cmd.args(["--uts", "--", "/bin/sh", "-c", script, "sh", HOSTNAME_B])
            .arg("setpriv")
            .arg(format!("--reuid={user}"))
            .arg(format!("--regid={user}"))
            .arg("--init-groups")
            .arg("--")
            .arg(&self.ovm)
            .arg("-C")
            .arg(&self.project)
            .args(["build", "--sandbox", arch, "--toolchain", "zig", "-j", "3"])
            .args(extra);
        cmd.env_clear()
            .current_dir(&self.home)
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &self.home)
            .env("USER", user)
            .env("LOGNAME", user)
            .env("LANG", LOCALE_B)
            .env("LC_ALL", LOCALE_B)
            .env("TZ", "Asia/Tokyo")
            .env("OVM_MIRRORS", &self.mirror)
            .env("OVM_SSTATE_DIR", &self.sstate)
            .env("OVM_BUILD_CACHE_DIR", &self.zig_cache);
        cmd.output().expect("running build B")
    }
}

impl Drop for OtherSide {
    #[allow(clippy::disallowed_methods)] // The test's own knob, not ovm's settings.
    fn drop(&mut self) {
        if std::env::var_os("OVM_TEST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.base);
        }
    }
}

/// Build A: root, umask 022, `LANG=C`, UTC, serial make, the tests' shared caches; `extra`
/// arguments after ARCH.
fn build_a(p: &TestProject, arch: &str, extra: &[&str]) -> Output {
    let mut cmd = Command::new("/bin/sh");
    let inner = p.ovm();
    cmd.args(["-c", "umask 022 && exec \"$@\"", "sh"]).arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.args(["build", "--sandbox", arch, "--toolchain", "zig", "-j", "1"])
        .args(extra)
        .env("LANG", "C")
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .output()
        .expect("running build A")
}

#[test]
fn initrd_is_bit_identical_across_user_path_time_umask_locale_and_host() {
    assert!(sandbox_support::is_root(), "this test builds as root and as a test user: run it as root (CI does)");
    for tool in ["setpriv", "unshare", "cpio", "hostname"] {
        require_tool(tool);
    }
    assert!(has_locale(LOCALE_B), "the locale {LOCALE_B} is not generated: {SETUP_HINT}");
    let user = sandbox_support::unprivileged_user();
    let nonce = format!("{}-{}", std::process::id(), SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos());

    let a = TestProject::from_repo();
    add_nonce(a.path(), &nonce);
    let b = OtherSide::new(&user, &nonce, &a.sstate);
    let started = Instant::now();

    let mut sha_a = Vec::new();
    // B must compile busybox (and busybox-mini) itself, not get A's output from the shared cache.
    let forget = |arch: &str, pkg: &str| {
        if b.sstate == a.sstate {
            let sig = package_signature(a.path(), arch, pkg);
            let entry = a.sstate.join(&sig[..2]).join(&sig);
            fs::remove_dir_all(&entry).unwrap_or_else(|e| panic!("removing A's {pkg} from the cache: {e}"));
        }
    };
    for arch in ARCHES {
        let out = build_a(&a, arch, &[]);
        assert!(out.status.success(), "build A ({arch}, root) failed:\n{}", text(&out));
        assert_compiled(a.path(), arch, "busybox", "A");
        assert_banner_dated_by_epoch(a.path(), arch);
        sha_a.push(initrd_sha256(a.path(), arch));
        forget(arch, "busybox");
    }
    let out = build_a(&a, "x86_64", &["--image", NAMED_IMAGE]);
    assert!(out.status.success(), "build A (x86_64 --image {NAMED_IMAGE}, root) failed:\n{}", text(&out));
    assert_compiled(a.path(), "x86_64", "busybox-mini", "A");
    forget("x86_64", "busybox-mini");
    eprintln!("repro: build A (root) took {:.0?}", started.elapsed());

    let started = Instant::now();
    for arch in ARCHES {
        let out = b.build(&user, arch, &[]);
        assert!(out.status.success(), "build B ({arch}, {user}) failed:\n{}", text(&out));
        assert_compiled(&b.project, arch, "busybox", "B");
        assert_banner_dated_by_epoch(&b.project, arch);
    }
    let out = b.build(&user, "x86_64", &["--image", NAMED_IMAGE]);
    assert!(out.status.success(), "build B (x86_64 --image {NAMED_IMAGE}, {user}) failed:\n{}", text(&out));
    assert_compiled(&b.project, "x86_64", "busybox-mini", "B");
    eprintln!("repro: build B ({user}) took {:.0?}", started.elapsed());

    let mut failures = Vec::new();
    for (arch, sha_a) in ARCHES.iter().zip(sha_a) {
        let sha_b = initrd_sha256(&b.project, arch);
        eprintln!("repro: {arch}: A {sha_a} B {sha_b}");
        let (same, report) = repro_check(arch, a.path(), &b.project);
        assert_eq!(same, sha_a == sha_b, "scripts/repro-check.sh disagrees with the hashes:\n{report}");
        if !same {
            failures.push(format!("{arch}: the initrds differ (A {sha_a}, B {sha_b}):\n{report}"));
        }
        // The image's SBOM and its package feed: the same bytes too.
        for rel in written_with_the_image(a.path(), arch) {
            let (fa, fb) = (fs::read(a.path().join(&rel)), fs::read(b.project.join(&rel)));
            if fa.as_ref().ok() != fb.as_ref().ok() {
                failures.push(format!("{rel} differs between A and B"));
            }
        }
    }
    // The image from the install list, its manifest and SBOM.
    let named = named_image_files(a.path());
    assert_eq!(named, named_image_files(&b.project), "A and B wrote other files for the image {NAMED_IMAGE}");
    for rel in named {
        if fs::read(a.path().join(&rel)).ok() != fs::read(b.project.join(&rel)).ok() {
            failures.push(format!("{rel} differs between A and B"));
        }
    }
    assert!(failures.is_empty(), "the build is not reproducible:\n{}", failures.join("\n"));
}

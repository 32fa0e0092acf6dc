//! The package-archive fallbacks for real, against deb.debian.org and PyPI (reachable here and in
//! CI; upstream hosts such as busybox.net and ftp.gnu.org are not): `ovm download` on real-shaped
//! recipes (tests/fixtures/recipes/real, copies of the project's) succeeds from a fresh tree; with
//! the URLs forced unreachable each fallback is shown to be the one used; a wrong sha256 on such a
//! source is rejected like any other; and the zig wheel unpacks into a working compiler.

use crate::copy_dir;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ovm::fetch::{FetchError, Fetcher, Origin, Variant};
use ovm::project::Project;
use ovm::recipe::{RecipeSet, Source};

const BUSYBOX_SHA: &str = "faeeb244c35a348a334f4a59e44626ee870fb07b6884d68c10ae8bc19f83a694";
const MAKE_DFSG_SHA: &str = "be4c17542578824e745f83bcd2a9ba264206187247cb6a5f5df99b0a9d1f9047";
const ZIG_SHA: &str = "6eb9d4d759b292c83810dbee2e9e8e3fbfbf01d864e6e9811bae711fd74e1c2f";
/// Nothing listens on the discard port: the connection is refused at once.
const UNREACHABLE: &str = "http://127.0.0.1:9/unreachable/";

/// A fresh copy of the real-shaped fixture project (no sources/, no apt state).
fn fresh_project() -> (tempfile::TempDir, Project) {
    let t = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recipes/real"), t.path());
    let p = Project::open(t.path()).unwrap();
    (t, p)
}

/// The recipe's first source with every URL replaced by an unreachable one.
fn without_urls(set: &RecipeSet, name: &str) -> Source {
    let mut s = set.require(name).unwrap().sources[0].clone();
    for artifact in std::iter::once(&mut s.primary).chain(s.alternatives.iter_mut().map(|a| &mut a.artifact)) {
        let unreachable = format!("{UNREACHABLE}{}", artifact.file);
        artifact.urls = if artifact.urls.is_empty() { vec![] } else { vec![unreachable] };
    }
    s
}

fn sources_listing(p: &Project) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p.layout().sources())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".locks")
        .collect();
    v.sort();
    v
}

fn require_apt() {
    let ok = Command::new("apt-get").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "apt-get is needed for the Debian fallback tests: run scripts/setup.sh on a Debian machine");
}

#[test]
fn ovm_download_on_real_recipes_succeeds_from_a_fresh_tree() {
    require_apt();
    let (t, p) = fresh_project();
    // A relative -C: apt runs elsewhere and must still find ovm's apt state.
    let (parent, name) = (t.path().parent().unwrap(), t.path().file_name().unwrap());
    let out = Command::new(env!("CARGO_BIN_EXE_ovm"))
        .current_dir(parent)
        .arg("-C")
        .arg(name)
        .arg("download")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ovm download failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("3 of 3 sources ready"), "{stdout}");
    let sha = |f: &str| ovm::fetch::sha256_file(&p.layout().sources().join(f)).unwrap();
    assert_eq!(sha("busybox-1.35.0.tar.bz2"), BUSYBOX_SHA);
    assert_eq!(
        sha("ziglang-0.14.1-py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.musllinux_1_1_x86_64.whl"),
        ZIG_SHA
    );
    // make: upstream where reachable, else Debian's repack (ftp.gnu.org does not resolve here).
    let listing = sources_listing(&p);
    assert!(listing.iter().any(|f| f == "make-4.3.tar.gz" || f == "make-dfsg_4.3.orig.tar.gz"), "{listing:?}");
    assert!(
        listing.iter().all(|f| !f.ends_with(".dsc") && !f.contains(".debian.") && !f.ends_with(".part")),
        "{listing:?}"
    );

    // A second run needs no network at all.
    let out = Command::new(env!("CARGO_BIN_EXE_ovm")).arg("-C").arg(t.path()).arg("download").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(stdout.matches("already present").count(), 3, "{stdout}");

    // The wheel unpacks (strip = 1) into a working zig, as the toolchain recipe says.
    let set = RecipeSet::load(&p).unwrap();
    let zig = set.require("zig").unwrap();
    let wheel = Fetcher::new(&p).unwrap().ensure(&zig.sources[0]).unwrap();
    let dest = t.path().join("toolchain/zig");
    ovm::unpack::place_source(&zig.sources[0], &wheel.path, &dest).unwrap();
    let version = Command::new(dest.join("zig")).arg("version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), "0.14.1");
}

#[test]
fn busybox_comes_from_debian_when_upstream_is_unreachable() {
    require_apt();
    let (_t, p) = fresh_project();
    let set = RecipeSet::load(&p).unwrap();
    let src = without_urls(&set, "busybox");
    let got = Fetcher::new(&p).unwrap().ensure(&src).unwrap();
    assert_eq!(got.origin, Origin::Debian { package: "busybox".into() });
    assert_eq!(got.variant, Variant::Primary);
    assert_eq!(got.path, p.layout().sources().join("busybox-1.35.0.tar.bz2"), "stored under the recipe's name");
    assert_eq!(ovm::fetch::sha256_file(&got.path).unwrap(), BUSYBOX_SHA);
    // Only the named file is kept: no .dsc, no debian.tar, nothing left in apt's scratch area.
    assert_eq!(sources_listing(&p), ["busybox-1.35.0.tar.bz2"]);
    let scratch = p.layout().cache().join("apt/download");
    assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0, "scratch left in {}", scratch.display());
    // The derived deb-src entries live in ovm's own apt state.
    let derived = fs::read_to_string(p.layout().cache().join("apt/etc/sources.list.d/derived.sources")).unwrap()
        + &fs::read_to_string(p.layout().cache().join("apt/etc/sources.list")).unwrap();
    assert!(derived.contains("deb-src"), "{derived}");
}

#[test]
fn make_falls_back_to_the_debian_repack_alternative() {
    require_apt();
    let (_t, p) = fresh_project();
    let set = RecipeSet::load(&p).unwrap();
    let src = without_urls(&set, "make");
    let got = Fetcher::new(&p).unwrap().ensure(&src).unwrap();
    assert_eq!(got.variant, Variant::Alternative { index: 0, version: "4.3+dfsg".into() });
    assert_eq!(got.origin, Origin::Debian { package: "make-dfsg".into() });
    assert_eq!(got.sha256, MAKE_DFSG_SHA);
    assert_eq!(sources_listing(&p), ["make-dfsg_4.3.orig.tar.gz"]);
}

#[test]
fn a_wrong_sha256_on_a_debian_source_is_rejected() {
    require_apt();
    let (_t, p) = fresh_project();
    let set = RecipeSet::load(&p).unwrap();
    let mut src = without_urls(&set, "busybox");
    src.primary.sha256 = "0".repeat(64);
    let err = Fetcher::new(&p).unwrap().ensure(&src).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::Exhausted { .. }), "{msg}");
    assert!(msg.contains("Debian source package busybox (busybox_1.35.0.orig.tar.bz2): sha256 mismatch"), "{msg}");
    assert!(msg.contains(BUSYBOX_SHA), "{msg}");
    assert!(msg.contains(&format!("{UNREACHABLE}busybox-1.35.0.tar.bz2")), "every place tried is listed: {msg}");
    assert_eq!(sources_listing(&p), ["busybox-1.35.0.tar.bz2.bad"], "never under the real name");
}

#[test]
fn zig_comes_from_pypi_when_its_url_is_unreachable() {
    let (_t, p) = fresh_project();
    let set = RecipeSet::load(&p).unwrap();
    let src = without_urls(&set, "zig");
    let got = Fetcher::new(&p).unwrap().ensure(&src).unwrap();
    match &got.origin {
        Origin::Pypi { url } => assert!(url.ends_with(&src.primary.file), "{url}"),
        other => panic!("expected PyPI, got {other}"),
    }
    assert_eq!(ovm::fetch::sha256_file(&got.path).unwrap(), ZIG_SHA);
    assert_eq!(sources_listing(&p), std::slice::from_ref(&src.primary.file));
}

#[test]
fn a_wrong_sha256_on_a_pypi_source_is_rejected_before_downloading() {
    let (_t, p) = fresh_project();
    let set = RecipeSet::load(&p).unwrap();
    let mut src = without_urls(&set, "zig");
    src.primary.sha256 = "1".repeat(64);
    let err = Fetcher::new(&p).unwrap().ensure(&src).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("the index lists sha256 {ZIG_SHA} for it, the recipe expects {}", "1".repeat(64))),
        "{msg}"
    );
    let listing: Vec<PathBuf> = fs::read_dir(p.layout().sources()).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(listing.iter().all(|f| f.ends_with(".locks")), "nothing fetched: {listing:?}");
}

/// Digest of the system's apt source configuration, to show ovm never changes it.
fn system_apt_sources() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(rd.map(|e| e.unwrap().path()));
    }
    files.sort();
    files.into_iter().map(|f| (f.clone(), fs::read(&f).unwrap_or_default())).collect()
}

/// The upstream URL of the fixture's busybox recipe, which the no-root test replaces.
const BUSYBOX_URL: &str = "https://busybox.net/downloads/busybox-1.35.0.tar.bz2";

#[test]
fn debian_fallback_needs_no_root_and_leaves_the_system_apt_config_alone() {
    require_apt();
    let (t, p) = fresh_project();
    fs::remove_file(p.layout().recipes().join("toolchain/zig.toml")).unwrap();
    fs::remove_file(p.layout().recipes().join("tools/make.toml")).unwrap();
    // Upstream refused at once (busybox.net answers from some networks): only the Debian archive
    // can supply the file, and ovm's report must say that it did.
    let recipe = p.layout().recipes().join("busybox.toml");
    let text = fs::read_to_string(&recipe).unwrap();
    assert!(text.contains(BUSYBOX_URL), "the fixture's busybox recipe no longer has {BUSYBOX_URL}:\n{text}");
    fs::write(&recipe, text.replace(BUSYBOX_URL, &format!("{UNREACHABLE}busybox-1.35.0.tar.bz2"))).unwrap();
    let before = system_apt_sources();
    let mut cmd = if nix::unistd::geteuid().is_root() {
        // Run as `nobody`, in a project it owns.
        let status = Command::new("chown").args(["-R", "nobody"]).arg(t.path()).status().unwrap();
        assert!(status.success());
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(env!("CARGO_BIN_EXE_ovm"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_ovm"))
    };
    let out =
        cmd.arg("-C").arg(t.path()).arg("download").env("HOME", t.path()).env_remove("OVM_MIRRORS").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("ok ") && l.contains("busybox-1.35.0.tar.bz2 (from Debian source package busybox)")),
        "the report does not say the file came from the Debian archive:\n{stdout}"
    );
    // Debian's busybox_1.35.0.orig.tar.bz2, byte for byte (it is upstream's tarball, same sha256).
    assert_eq!(ovm::fetch::sha256_file(&p.layout().sources().join("busybox-1.35.0.tar.bz2")).unwrap(), BUSYBOX_SHA);
    assert_eq!(before, system_apt_sources(), "the system's apt sources changed");
}

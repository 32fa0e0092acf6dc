//! scripts/fill-mirror.sh fills a plain directory that a machine without network then uses as
//! its only mirror.

use crate::fetch_support;

use std::fs;
use std::path::Path;
use std::process::Command;

use fetch_support::{content, sha256, Route, Server};

fn project(dir: &Path, url: &str, sha: &str) {
    fs::create_dir_all(dir.join("recipes")).unwrap();
    fs::create_dir_all(dir.join("config")).unwrap();
    fs::write(dir.join("config/ovm.toml"), "[fetch]\nretries = 0\ndebian = false\npypi = false\n").unwrap();
    fs::write(
        dir.join("recipes/pkg.toml"),
        format!(
            "name = \"pkg\"\nversion = \"1.0\"\nlicense = \"MIT\"\n\n[[source]]\nurl = \"{url}\"\nsha256 = \"{sha}\"\n\n[build]\nstyle = \"make\"\n"
        ),
    )
    .unwrap();
}

#[test]
fn fill_mirror_then_use_it_offline() {
    let srv = Server::start();
    let body = content(30_000, 42);
    srv.route("/pkg-1.0.tar.gz", Route::ok(&body));
    let t = tempfile::tempdir().unwrap();
    let online = t.path().join("online");
    project(&online, &srv.url("/pkg-1.0.tar.gz"), &sha256(&body));
    let mirror = t.path().join("mirror");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fill-mirror.sh");
    let out = Command::new(&script)
        .arg(&mirror)
        .env("OVM", env!("CARGO_BIN_EXE_ovm"))
        .env("OVM_PROJECT", &online)
        .env_remove("OVM_MIRRORS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(fs::read(mirror.join("pkg-1.0.tar.gz")).unwrap(), body);
    let sums = fs::read_to_string(mirror.join("SHA256SUMS")).unwrap();
    assert_eq!(sums, format!("{}  pkg-1.0.tar.gz\n", sha256(&body)));
    assert!(!online.join("sources").exists(), "the project's own sources/ is left alone");
    assert_eq!(srv.requests().len(), 1);

    // An "offline" project whose upstream URL is unreachable gets everything from the mirror.
    let offline = t.path().join("offline");
    project(&offline, "http://127.0.0.1:9/pkg-1.0.tar.gz", &sha256(&body));
    let out = Command::new(env!("CARGO_BIN_EXE_ovm"))
        .arg("-C")
        .arg(&offline)
        .arg("download")
        .env("OVM_MIRRORS", &mirror)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("from {}", mirror.join("pkg-1.0.tar.gz").display())), "{stdout}");
    assert_eq!(srv.requests().len(), 1, "no network access");
}

//! The fetcher against a real HTTP server on 127.0.0.1 that records what it was asked: mirrors in
//! order, resume with `Range` after a dropped connection, servers that ignore `Range`, wrong bytes,
//! zero requests for a verified file already present, retries, timeouts, alternatives, bounded
//! parallelism, and `ovm download`'s exit status and report.

use crate::fetch_support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fetch_support::{content, sha256, Route, Seen, Server};
use ovm::fetch::{FetchError, FetchOptions, Fetcher, Mirror, Origin, ProgressMode, Variant};
use ovm::recipe::{Alternative, Artifact, Source};

fn options() -> FetchOptions {
    FetchOptions {
        jobs: 4,
        retries: 3,
        backoff: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        mirrors: vec![],
        backup: vec![],
        debian: false,
        pypi: false,
        pypi_index: "http://127.0.0.1:9/simple/".into(),
        progress: ProgressMode::Lines,
        max_size: 1 << 30,
        project_root: None,
    }
}

fn fetcher(dir: &Path, options: FetchOptions) -> Fetcher {
    Fetcher::with_options(dir.join("sources"), &dir.join(".cache"), options).unwrap()
}

fn artifact(file: &str, bytes: &[u8], urls: Vec<String>) -> Artifact {
    Artifact { file: file.into(), sha256: sha256(bytes), urls, debian: None, pypi: None }
}

fn source(recipe: &str, primary: Artifact) -> Source {
    Source { recipe: recipe.into(), primary, alternatives: vec![], dest: "".into(), strip: 1, unpack: true }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.retain(|n| n != ".locks");
    names.sort();
    names
}

#[test]
fn first_mirror_404_then_second_mirror_is_used() {
    let srv = Server::start();
    let body = content(50_000, 1);
    srv.route("/m2/pkg-1.0.tar.gz", Route::ok(&body));
    srv.route("/upstream/pkg-1.0.tar.gz", Route::ok(&body));
    let t = tempfile::tempdir().unwrap();
    let mut opts = options();
    opts.mirrors =
        vec![Mirror::parse(&srv.url("/m1"), t.path()).unwrap(), Mirror::parse(&srv.url("/m2/"), t.path()).unwrap()];
    let f = fetcher(t.path(), opts);
    let got =
        f.ensure(&source("pkg", artifact("pkg-1.0.tar.gz", &body, vec![srv.url("/upstream/pkg-1.0.tar.gz")]))).unwrap();
    assert_eq!(srv.paths(), ["/m1/pkg-1.0.tar.gz", "/m2/pkg-1.0.tar.gz"], "mirrors in order, upstream never asked");
    assert_eq!(got.origin, Origin::Url(srv.url("/m2/pkg-1.0.tar.gz")));
    assert_eq!(got.variant, Variant::Primary);
    assert_eq!(fs::read(&got.path).unwrap(), body);
    assert_eq!(listing(&t.path().join("sources")), ["pkg-1.0.tar.gz"], "no .part or .bad left");
}

#[test]
fn dropped_connection_resumes_with_range() {
    let srv = Server::start();
    let body = content(100_000, 2);
    srv.route("/f.tar.xz", Route { drop_first: 1, cut_at: 30_000, ..Route::ok(&body) });
    let t = tempfile::tempdir().unwrap();
    let f = fetcher(t.path(), options());
    let got = f.ensure(&source("pkg", artifact("f.tar.xz", &body, vec![srv.url("/f.tar.xz")]))).unwrap();
    assert_eq!(
        srv.requests(),
        [
            Seen { path: "/f.tar.xz".into(), range: None },
            Seen { path: "/f.tar.xz".into(), range: Some("bytes=30000-".into()) },
        ]
    );
    assert_eq!(fs::read(&got.path).unwrap(), body);
    assert_eq!(listing(&t.path().join("sources")), ["f.tar.xz"]);
}

#[test]
fn a_part_left_by_an_earlier_run_is_resumed() {
    let srv = Server::start();
    let body = content(80_000, 3);
    srv.route("/f.tgz", Route::ok(&body));
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("sources")).unwrap();
    fs::write(t.path().join("sources/f.tgz.part"), &body[..12_345]).unwrap();
    let f = fetcher(t.path(), options());
    let got = f.ensure(&source("pkg", artifact("f.tgz", &body, vec![srv.url("/f.tgz")]))).unwrap();
    assert_eq!(srv.requests(), [Seen { path: "/f.tgz".into(), range: Some("bytes=12345-".into()) }]);
    assert_eq!(fs::read(got.path).unwrap(), body);
}

#[test]
fn server_ignoring_range_restarts_from_zero() {
    let srv = Server::start();
    let body = content(100_000, 4);
    srv.route("/f.tar.gz", Route { drop_first: 1, cut_at: 40_000, honor_range: false, ..Route::ok(&body) });
    let t = tempfile::tempdir().unwrap();
    let f = fetcher(t.path(), options());
    let got = f.ensure(&source("pkg", artifact("f.tar.gz", &body, vec![srv.url("/f.tar.gz")]))).unwrap();
    let seen = srv.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].range.as_deref(), Some("bytes=40000-"), "it asked to resume");
    assert_eq!(fs::read(&got.path).unwrap(), body, "and the 200 answer replaced the partial file");
}

#[test]
fn wrong_bytes_are_an_error_and_never_land_under_the_real_name() {
    let srv = Server::start();
    let good = content(20_000, 5);
    let evil = content(20_000, 6);
    srv.route("/f.tar.gz", Route::ok(&evil));
    let t = tempfile::tempdir().unwrap();
    let f = fetcher(t.path(), options());
    let err = f.ensure(&source("pkg", artifact("f.tar.gz", &good, vec![srv.url("/f.tar.gz")]))).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::Exhausted { .. }), "{msg}");
    assert!(msg.contains(&srv.url("/f.tar.gz")) && msg.contains("sha256 mismatch"), "{msg}");
    assert!(msg.contains(&sha256(&evil)) && msg.contains(&sha256(&good)), "{msg}");
    let sources = t.path().join("sources");
    assert!(!sources.join("f.tar.gz").exists());
    assert_eq!(listing(&sources), ["f.tar.gz.bad"]);
    assert_eq!(fs::read(sources.join("f.tar.gz.bad")).unwrap(), evil, "kept aside for inspection");
}

#[test]
fn a_verified_file_already_present_costs_no_request() {
    let srv = Server::start();
    let body = content(10_000, 7);
    srv.route("/f.tar.bz2", Route::ok(&body));
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("sources")).unwrap();
    fs::write(t.path().join("sources/f.tar.bz2"), &body).unwrap();
    let f = fetcher(t.path(), options());
    let src = source("pkg", artifact("f.tar.bz2", &body, vec![srv.url("/f.tar.bz2")]));
    let got = f.ensure(&src).unwrap();
    assert_eq!(got.origin, Origin::Present);
    assert_eq!(srv.requests(), []);

    // A file there with other bytes is moved aside and fetched again.
    fs::write(t.path().join("sources/f.tar.bz2"), b"stale").unwrap();
    let got = f.ensure(&src).unwrap();
    assert_eq!(got.origin, Origin::Url(srv.url("/f.tar.bz2")));
    assert_eq!(srv.requests().len(), 1);
    assert_eq!(fs::read(t.path().join("sources/f.tar.bz2.bad")).unwrap(), b"stale");
}

#[test]
fn transient_errors_are_retried_with_backoff() {
    let srv = Server::start();
    let body = content(5_000, 8);
    srv.route("/f.tar.gz", Route { fail_first: 2, ..Route::ok(&body) });
    let t = tempfile::tempdir().unwrap();
    let f = fetcher(t.path(), options());
    f.ensure(&source("pkg", artifact("f.tar.gz", &body, vec![srv.url("/f.tar.gz")]))).unwrap();
    assert_eq!(srv.requests().len(), 3, "two 503 answers, then success");

    // With no retries left, the 503 is the reported reason.
    srv.route("/g.tar.gz", Route { fail_first: 5, ..Route::ok(&body) });
    let mut opts = options();
    opts.retries = 1;
    let f = fetcher(t.path(), opts);
    let err = f.ensure(&source("pkg", artifact("g.tar.gz", &body, vec![srv.url("/g.tar.gz")]))).unwrap_err();
    assert!(err.to_string().contains("HTTP 503 Service Unavailable (gave up after 2 attempts)"), "{err}");
}

#[test]
fn a_silent_server_times_out() {
    let srv = Server::start();
    srv.route("/f.tar.gz", Route { stall: true, ..Route::ok(b"x") });
    let t = tempfile::tempdir().unwrap();
    let mut opts = options();
    opts.retries = 0;
    opts.read_timeout = Duration::from_millis(300);
    let f = fetcher(t.path(), opts);
    let err = f.ensure(&source("pkg", artifact("f.tar.gz", b"x", vec![srv.url("/f.tar.gz")]))).unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[test]
fn local_mirrors_and_backups_are_looked_up_by_file_name() {
    let srv = Server::start();
    let body = content(3_000, 9);
    let t = tempfile::tempdir().unwrap();
    let mirror = t.path().join("mirror");
    fs::create_dir_all(&mirror).unwrap();
    fs::write(mirror.join("f.tar.gz"), &body).unwrap();
    srv.route("/backup/g.tar.gz", Route::ok(&body));

    let mut opts = options();
    opts.mirrors = vec![Mirror::parse(&format!("file://{}", mirror.display()), t.path()).unwrap()];
    opts.backup = vec![Mirror::parse(&srv.url("/backup"), t.path()).unwrap()];
    let f = fetcher(t.path(), opts);
    let got = f.ensure(&source("a", artifact("f.tar.gz", &body, vec![srv.url("/up/f.tar.gz")]))).unwrap();
    assert_eq!(got.origin, Origin::Local(mirror.join("f.tar.gz")));
    assert!(srv.requests().is_empty(), "the local mirror comes first");

    // Not on the mirror, not upstream: the backup, tried last, has it.
    let got = f.ensure(&source("b", artifact("g.tar.gz", &body, vec![srv.url("/up/g.tar.gz")]))).unwrap();
    assert_eq!(got.origin, Origin::Url(srv.url("/backup/g.tar.gz")));
    assert_eq!(srv.paths(), ["/up/g.tar.gz", "/backup/g.tar.gz"]);
}

#[test]
fn alternative_bytes_are_used_only_when_the_primary_cannot_be_had() {
    let srv = Server::start();
    let upstream = content(4_000, 10);
    let repack = content(3_500, 11);
    srv.route("/make-dfsg_4.3.orig.tar.gz", Route::ok(&repack));
    let t = tempfile::tempdir().unwrap();
    let f = fetcher(t.path(), options());
    let mut src = source("make", artifact("make-4.3.tar.gz", &upstream, vec![srv.url("/make-4.3.tar.gz")]));
    src.alternatives.push(Alternative {
        artifact: artifact("make-dfsg_4.3.orig.tar.gz", &repack, vec![srv.url("/make-dfsg_4.3.orig.tar.gz")]),
        version: "4.3+dfsg".into(),
        reason: "doc/ removed".into(),
    });
    let got = f.ensure(&src).unwrap();
    assert_eq!(got.variant, Variant::Alternative { index: 0, version: "4.3+dfsg".into() });
    assert_eq!(got.sha256, sha256(&repack));
    assert_eq!(srv.paths(), ["/make-4.3.tar.gz", "/make-dfsg_4.3.orig.tar.gz"]);

    // Once upstream bytes are available they are preferred, and the present alternative is not
    // touched again (no request for it).
    srv.route("/make-4.3.tar.gz", Route::ok(&upstream));
    fs::remove_file(&got.path).unwrap();
    let got = f.ensure(&src).unwrap();
    assert_eq!(got.variant, Variant::Primary);
}

#[test]
fn fetch_all_reports_every_failure_and_completes_the_rest_in_bounded_parallel() {
    let srv = Server::start();
    let t = tempfile::tempdir().unwrap();
    let mut opts = options();
    opts.jobs = 2;
    opts.retries = 0;
    opts.mirrors = vec![Mirror::parse(&srv.url("/mirror"), t.path()).unwrap()];
    let f = fetcher(t.path(), opts);
    let mut sources = Vec::new();
    for i in 0..6u32 {
        let body = content(20_000, 100 + i);
        let file = format!("p{i}.tar.gz");
        srv.route(&format!("/up/{file}"), Route { delay: Duration::from_millis(150), ..Route::ok(&body) });
        sources.push(source(&format!("p{i}"), artifact(&file, &body, vec![srv.url(&format!("/up/{file}"))])));
    }
    sources.push(source("broken", artifact("broken.tar.gz", b"x", vec![srv.url("/up/broken.tar.gz")])));
    let refs: Vec<&Source> = sources.iter().collect();
    let report = f.fetch_all(&refs);
    assert!(!report.is_success());
    assert_eq!(report.items.len(), 7);
    let failures: Vec<_> = report.failures().collect();
    assert_eq!(failures.len(), 1);
    let msg = failures[0].1.to_string();
    assert!(msg.contains(&srv.url("/mirror/broken.tar.gz")) && msg.contains(&srv.url("/up/broken.tar.gz")), "{msg}");
    assert_eq!(msg.matches("HTTP 404 Not Found").count(), 2, "{msg}");
    assert_eq!(srv.max_concurrent(), 2, "jobs = 2 bounds concurrent downloads (and they did overlap)");
    let summary = report.to_string();
    assert!(summary.contains("FAILED  broken") && summary.contains("6 of 7 sources ready, 1 failed"), "{summary}");
}

/// `ovm download` on a project whose recipes point at the test server.
fn cli_project(srv: &Server, good: &[u8]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("recipes")).unwrap();
    fs::create_dir_all(t.path().join("config")).unwrap();
    fs::write(t.path().join("config/ovm.toml"), "[fetch]\nretries = 0\ndebian = false\npypi = false\n").unwrap();
    let recipe = |name: &str, sha: &str| {
        format!(
            "name = \"{name}\"\nversion = \"1.0\"\nlicense = \"MIT\"\n\n[[source]]\nurl = \"{}\"\nsha256 = \"{sha}\"\n\n[build]\nstyle = \"make\"\n",
            srv.url(&format!("/{name}-1.0.tar.gz"))
        )
    };
    fs::write(t.path().join("recipes/good.toml"), recipe("good", &sha256(good))).unwrap();
    fs::write(t.path().join("recipes/bad.toml"), recipe("bad", &sha256(b"other"))).unwrap();
    t
}

#[test]
fn ovm_download_exits_non_zero_on_failure_and_still_fetches_the_rest() {
    let srv = Server::start();
    let good = content(9_000, 12);
    srv.route("/good-1.0.tar.gz", Route::ok(&good));
    let t = cli_project(&srv, &good);
    let out = Command::new(env!("CARGO_BIN_EXE_ovm")).arg("-C").arg(t.path()).arg("download").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ok      good") && stdout.contains("FAILED  bad"), "{stdout}");
    assert!(stdout.contains(&format!("{}: HTTP 404 Not Found", srv.url("/bad-1.0.tar.gz"))), "{stdout}");
    assert_eq!(fs::read(t.path().join("sources/good-1.0.tar.gz")).unwrap(), good);

    // Selecting only the good package succeeds, from what is already there.
    let out =
        Command::new(env!("CARGO_BIN_EXE_ovm")).arg("-C").arg(t.path()).args(["download", "good"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already present"));
    let mut paths = srv.paths();
    paths.sort();
    assert_eq!(paths, ["/bad-1.0.tar.gz", "/good-1.0.tar.gz"], "no second request for the present file");
}

#[test]
fn ovm_mirrors_from_the_environment_come_first() {
    let srv = Server::start();
    let good = content(9_000, 13);
    let t = cli_project(&srv, &good);
    let mirror = t.path().join("dist");
    fs::create_dir_all(&mirror).unwrap();
    fs::write(mirror.join("good-1.0.tar.gz"), &good).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ovm"))
        .arg("-C")
        .arg(t.path())
        .args(["download", "good"])
        .env("OVM_MIRRORS", &mirror)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(srv.requests().is_empty());
}

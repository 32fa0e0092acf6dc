//! The remote tier of the shared-state cache (`[cache] remote`) against a real nginx (WebDAV, the
//! layout of bazel-remote's HTTP protocol): a fresh tree, another user, read-only, gets every
//! package from what another tree uploaded; and every way a remote can be wrong — down, 500, too
//! slow, a truncated body, a flipped byte in a stored blob, an entry whose blob is gone, a refused
//! write, two writers at once — ends in a local build or a clean hit, never a failed build or a
//! wrong staging dir.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::build_support::{self, TestProject};
use crate::cache_support::{Fault, FaultServer, Nginx, PASSWORD, USER};
use crate::engine_fixture::{self, bye, project, staged_hash, write_greet_set};

/// The config's `[cache]` pointed at `url`.
fn use_remote(p: &TestProject, url: &str, write: bool, timeout: u64) {
    let mut cfg = p.read("config/ovm.toml");
    if !cfg.contains("\n[cache]\n") {
        // A project with a config of its own: the repository's [cache] defaults.
        cfg.push_str("\n[cache]\nremote = []\nwrite = false\ntimeout = 30\n");
    }
    let mut set = cfg.clone();
    for (from, to) in [
        ("\nremote = []\n".to_string(), format!("\nremote = [{url:?}]\n")),
        ("\nwrite = false\n".to_string(), format!("\nwrite = {write}\n")),
        ("\ntimeout = 30\n".to_string(), format!("\ntimeout = {timeout}\n")),
    ] {
        assert_eq!(set.matches(&from).count(), 1, "config/ovm.toml's [cache] has no single {from:?}");
        set = set.replace(&from, &to);
    }
    p.write("config/ovm.toml", &set);
}

/// `ovm build x86_64 [PKG]` with the cache's credentials (or none).
fn build(p: &TestProject, pkg: Option<&str>, auth: bool) -> (bool, String) {
    let mut c = p.ovm();
    if auth {
        c.env("OVM_CACHE_AUTH", format!("{USER}:{PASSWORD}"));
    } else {
        c.env_remove("OVM_CACHE_AUTH");
    }
    c.env("NETRC", "/nonexistent");
    let out = c.args(["build", "x86_64"]).args(pkg).output().expect("running ovm");
    (out.status.success(), build_support::text(&out))
}

/// The `package` signature of `pkg` in `p` (from its stamp).
fn package_sig(p: &TestProject, pkg: &str) -> String {
    let stamp: serde_json::Value =
        serde_json::from_str(&p.read(&format!("states/x86_64/{pkg}.package"))).expect("package stamp");
    stamp["signature"].as_str().expect("signature").to_string()
}

/// Removes `sig`'s entry from the local cache `sstate`, so the next tree asks the remote.
fn forget_locally(sstate: &Path, sig: &str) {
    let _ = fs::remove_dir_all(sstate.join(&sig[..2]).join(sig));
}

/// The tasks a run started in `domain` that build: fetching a source and packing the image aside.
fn built(p: &TestProject, domain: &str) -> Vec<String> {
    p.tasks_run(domain).into_iter().filter(|t| !t.ends_with(" fetch") && !t.starts_with("image ")).collect()
}

#[test]
fn a_fresh_tree_of_another_user_builds_nothing_with_a_read_only_remote() {
    let nginx = Nginx::start();
    let a = project();
    write_greet_set(&a, "remote-two-trees");
    use_remote(&a, &nginx.url, true, 30);
    let (ok, out) = build(&a, None, true);
    assert!(ok, "{out}");
    assert!(out.contains("uploaded"), "{out}");
    assert!(!nginx.stored("ac").is_empty(), "tree A wrote no entry");

    // Tree B: another directory, another user, its own empty local cache, read-only by config
    // (and without credentials the server would refuse writes anyway).
    let b = TestProject::empty();
    build_support::copy_tree(&a.path().join("recipes"), &b.path().join("recipes"));
    build_support::copy_tree(&a.path().join("patches"), &b.path().join("patches"));
    build_support::copy_tree(&a.path().join("config"), &b.path().join("config"));
    let cfg = b.read("config/ovm.toml").replace("write = true", "write = false");
    b.write("config/ovm.toml", &cfg);
    let user = crate::sandbox_support::unprivileged_user();
    let home = b.path().join(".local-cache");
    fs::create_dir_all(&home).unwrap();
    chown_tree(b.path(), &user);
    let as_b = |args: &[&str]| {
        let mut c = crate::sandbox_support::command_as(
            crate::sandbox_support::As::Unprivileged,
            Path::new(build_support::ovm_bin()),
        );
        c.arg("-C").arg(b.path()).args(args);
        c.env("OVM_MIRRORS", build_support::mirror())
            .env("OVM_SSTATE_DIR", home.join("sstate"))
            .env("OVM_BUILD_CACHE_DIR", home.join("build-cache"))
            .env("NETRC", "/nonexistent")
            .env_remove("OVM_CACHE_AUTH")
            .env_remove("SOURCE_DATE_EPOCH");
        c.output().expect("running ovm as the other user")
    };
    // Before building, status already knows where everything will come from.
    let status = build_support::text(&as_b(&["status", "x86_64"]));
    for pkg in ["libgreet", "hello"] {
        assert!(engine_fixture::status_of(&status, pkg).contains("from the shared-state cache"), "{status}");
    }
    for pkg in ["zig", "make", "busybox-tools"] {
        assert!(engine_fixture::status_of(&status, pkg).contains("not needed"), "{status}");
    }
    let out = as_b(&["build", "x86_64"]);
    let text = build_support::text(&out);
    assert!(out.status.success(), "tree B failed:\n{text}");
    for domain in ["x86_64", "tools", "toolchain"] {
        let ran = built(&b, domain);
        assert!(ran.is_empty(), "tree B ran tasks in {domain}: {ran:?}\n{text}");
    }
    assert!(text.contains(" 0 missed (0 local, "), "tree B's packages did not all come from the remote:\n{text}");
    assert_eq!(
        engine_fixture::image_sha(&b, "x86_64"),
        engine_fixture::image_sha(&a, "x86_64"),
        "tree B's image differs from tree A's"
    );
    for pkg in ["libgreet", "hello"] {
        assert_eq!(staged_hash(&b, "x86_64", pkg), staged_hash(&a, "x86_64", pkg), "{pkg}");
    }
    // Setscene: with every package in the cache, the toolchain and the build tools were neither
    // restored nor fetched (BitBake: "the compiler is not even downloaded").
    assert!(text.contains("2 hit, 0 missed (0 local, 2 remote, "), "{text}");
    for absent in ["toolchain/zig", "toolchain/tools", "staging/toolchain", "staging/tools"] {
        assert!(!b.path().join(absent).exists(), "tree B has {absent}:\n{text}");
    }
    let fetched: Vec<String> = fs::read_dir(b.path().join("sources"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(
        !fetched.iter().any(|f| f.starts_with("ziglang") || f.starts_with("make") || f.starts_with("busybox")),
        "{fetched:?}"
    );

    let stats = build_support::text(&as_b(&["cache", "stats"]));
    assert!(stats.contains("last build: 0 local hits, 2 remote hits, 0 misses"), "{stats}");

    // A second build has nothing to do, and status agrees.
    let again = as_b(&["build", "x86_64"]);
    let again_text = build_support::text(&again);
    assert!(again.status.success() && again_text.contains("nothing to do"), "{again_text}");
    let status = build_support::text(&as_b(&["status", "x86_64"]));
    for pkg in ["libgreet", "hello", "image"] {
        assert!(engine_fixture::status_of(&status, pkg).trim_end().ends_with(" built"), "{status}");
    }
    assert!(engine_fixture::status_of(&status, "zig").contains("not needed"), "{status}");
    // `ovm shell` runs the compiler: it gets the toolchain (here from the cache) that the build
    // did without.
    let shell = as_b(&["shell", "hello", "--", "sh", "-c", "$CC --version"]);
    let shell_text = build_support::text(&shell);
    assert!(shell.status.success() && shell_text.contains("clang version"), "{shell_text}");
    assert!(b.path().join("toolchain/zig").exists(), "{shell_text}");

    // `ovm cache` on tree B's own local cache: what the build and the shell filed (the two
    // packages, the toolchain and the two build tools), checked, then evicted.
    let cache = |args: &[&str]| {
        let out = b.ovm().env("OVM_SSTATE_DIR", home.join("sstate")).arg("cache").args(args).output().unwrap();
        (out.status.success(), build_support::text(&out))
    };
    let (ok, stats) = cache(&["stats"]);
    assert!(
        ok && stats.contains("last build: 0 local hits, 0 remote hits, 0 misses"),
        "the no-op build asked nothing: {stats}"
    );
    assert!(stats.contains("entries: 5\n") && stats.contains("(read-only)"), "{stats}");
    assert!(cache(&["verify"]).1.contains("verified 5 entries: 5 good, 0 bad"));
    let hello_file = walk_files(&home.join("sstate"))
        .into_iter()
        .find(|f| f.ends_with("usr/bin/hello"))
        .expect("hello in the cache");
    fs::remove_file(&hello_file).unwrap();
    fs::write(&hello_file, "not hello").unwrap();
    let (ok, verify) = cache(&["verify"]);
    assert!(!ok && verify.contains("4 good, 1 bad") && verify.contains("evicted "), "{verify}");
    let (ok, prune) = cache(&["prune", "--max-size", "1"]);
    assert!(ok && prune.contains("pruned 4 entries"), "{prune}");
    assert!(cache(&["stats"]).1.contains("entries: 0\n"));
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(walk_files(&e.path()));
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    out
}

fn chown_tree(dir: &Path, user: &str) {
    let st = std::process::Command::new("chown").arg("-R").arg(user).arg(dir).status().expect("chown");
    assert!(st.success(), "chown -R {user} {}", dir.display());
}

/// Builds `bye` in a tree writing to `nginx` (the entry every case below is offered), and
/// returns that tree and `bye`'s signature, forgotten by the local cache.
fn seed(nginx: &Nginx, salt: &str) -> (TestProject, String) {
    let seed = project();
    bye().write(&seed, salt);
    use_remote(&seed, &nginx.url, true, 30);
    let (ok, out) = build(&seed, Some("bye"), true);
    assert!(ok, "{out}");
    let sig = package_sig(&seed, "bye");
    forget_locally(&seed.sstate, &sig);
    (seed, sig)
}

/// A tree with the seed's `bye` against `url`: it must build `bye` itself (a miss) or restore
/// it (a hit), say so, and stage exactly the seed's output either way.
fn expect(seed: &TestProject, salt: &str, url: &str, hit: bool, warning: &str, timeout: u64) {
    let t = project();
    bye().write(&t, salt);
    use_remote(&t, url, false, timeout);
    let (ok, out) = build(&t, Some("bye"), false);
    assert!(ok, "a remote's fault failed the build ({url}):\n{out}");
    let ran = built(&t, "x86_64");
    if hit {
        assert!(ran.is_empty(), "expected a clean hit, ran {ran:?}:\n{out}");
    } else {
        assert!(ran.iter().any(|r| r == "bye compile"), "expected a local build, ran {ran:?}:\n{out}");
    }
    assert!(out.contains(warning), "expected the warning {warning:?}:\n{out}");
    assert_eq!(staged_hash(&t, "x86_64", "bye"), staged_hash(seed, "x86_64", "bye"));
    assert!(!t.path().join("work/x86_64/.bye.sstate").exists(), "a restore's temporary was left");
    forget_locally(&t.sstate, &package_sig(&t, "bye"));
}

/// A seeded nginx, then a tree against what `fault` makes of it: `expect`ed to hit or to build,
/// with `warning` in its output.
fn fault_case(
    salt: &str,
    fault: impl FnOnce(&Nginx) -> (Option<FaultServer>, String),
    hit: bool,
    warning: &str,
    timeout: u64,
) {
    let nginx = Nginx::start();
    let (seed, _sig) = seed(&nginx, salt);
    let (_server, url) = fault(&nginx);
    expect(&seed, salt, &url, hit, warning, timeout);
}

/// A scripted server in front of the seeded nginx's data, answering as `fault` says.
fn through(fault: Fault) -> impl FnOnce(&Nginx) -> (Option<FaultServer>, String) {
    move |n| {
        let s = FaultServer::start(&n.data, fault);
        let url = s.url.clone();
        (Some(s), url)
    }
}

#[test]
fn a_good_entry_is_a_clean_hit() {
    fault_case("remote-good", |n| (None, n.url.clone()), true, "1 remote", 30);
}

#[test]
fn a_server_that_is_down_is_a_miss() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    fault_case("remote-down", |_| (None, format!("http://{closed}")), false, "is not answering", 30);
}

#[test]
fn a_500_is_a_miss() {
    fault_case("remote-500", through(Fault::Status500), false, "500", 30);
}

#[test]
fn a_server_slower_than_the_timeout_is_a_miss() {
    fault_case("remote-slow", through(Fault::Silent(Duration::from_secs(30))), false, "is not answering", 1);
}

#[test]
fn a_truncated_body_is_a_miss() {
    fault_case("remote-truncated", through(Fault::TruncatedBlobs), false, "entry unusable", 30);
}

#[test]
fn a_flipped_byte_in_a_stored_blob_is_a_miss() {
    // A byte flipped in every stored blob: no sha256 matches any more.
    let fault = |n: &Nginx| {
        for b in n.stored("cas") {
            let mut bytes = fs::read(&b).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
            fs::write(&b, &bytes).unwrap();
        }
        (None, n.url.clone())
    };
    fault_case("remote-flipped", fault, false, "corrupt", 30);
}

#[test]
fn an_entry_whose_blobs_are_gone_is_a_miss() {
    let fault = |n: &Nginx| {
        for b in n.stored("cas") {
            fs::remove_file(&b).unwrap();
        }
        (None, n.url.clone())
    };
    fault_case("remote-gone", fault, false, "is gone", 30);
}

#[test]
fn a_refused_write_makes_the_run_read_only() {
    let nginx = Nginx::start();
    let salt = "remote-writers";
    let t = project();
    bye().write(&t, salt);
    use_remote(&t, &nginx.url, true, 30);
    let (ok, out) = build(&t, Some("bye"), false);
    assert!(ok, "{out}");
    assert!(out.contains("refused a write") && out.contains("read-only for the rest of this run"), "{out}");
    assert_eq!(out.matches("refused a write").count(), 1, "one warning, not one per package:\n{out}");
    assert!(nginx.stored("ac").is_empty(), "an unauthenticated write was stored");
    forget_locally(&t.sstate, &package_sig(&t, "bye"));
}

#[test]
fn two_writers_at_once_leave_one_good_entry() {
    let nginx = Nginx::start();
    let salt = "remote-two-writers";
    // Two trees upload the same outputs at once, both with credentials.
    let (w1, w2) = (project(), project());
    for w in [&w1, &w2] {
        bye().write(w, salt);
        use_remote(w, &nginx.url, true, 30);
    }
    let (r1, r2) = std::thread::scope(|s| {
        let h1 = s.spawn(|| build(&w1, Some("bye"), true));
        let h2 = s.spawn(|| build(&w2, Some("bye"), true));
        (h1.join().unwrap(), h2.join().unwrap())
    });
    assert!(r1.0, "{}", r1.1);
    assert!(r2.0, "{}", r2.1);
    forget_locally(&w1.sstate, &package_sig(&w1, "bye"));
    expect(&w1, salt, &nginx.url, true, "1 remote", 30);
}

/// The same two trees over REAPI (`grpc://`) against a real BuildGrid: tree A uploads through
/// ByteStream and UpdateActionResult, a fresh tree B gets every package and no toolchain, and a
/// stopped server is a miss, then a local build.
#[test]
fn a_reapi_server_serves_a_fresh_tree_too() {
    let Some(grid) = crate::cache_support::BuildGrid::start() else { return };
    let salt = "remote-reapi";
    let a = project();
    write_greet_set(&a, salt);
    use_remote(&a, &grid.url, true, 30);
    let (ok, out) = build(&a, None, false);
    assert!(ok, "{out}");
    assert!(out.contains("uploaded") && !out.contains("0 uploaded"), "{out}");

    let b = TestProject::empty();
    for d in ["recipes", "patches", "config"] {
        build_support::copy_tree(&a.path().join(d), &b.path().join(d));
    }
    b.write("config/ovm.toml", &b.read("config/ovm.toml").replace("write = true", "write = false"));
    let private = b.path().join(".local-cache");
    let out = b
        .ovm()
        .env("OVM_SSTATE_DIR", private.join("sstate"))
        .env("OVM_BUILD_CACHE_DIR", private.join("build-cache"))
        .env("NETRC", "/nonexistent")
        .args(["build", "x86_64"])
        .output()
        .unwrap();
    let text = build_support::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("2 hit, 0 missed (0 local, 2 remote, "), "{text}");
    for domain in ["x86_64", "tools", "toolchain"] {
        assert!(built(&b, domain).is_empty(), "tree B built in {domain}:\n{text}");
    }
    assert!(!b.path().join("toolchain/zig").exists(), "{text}");
    assert_eq!(engine_fixture::image_sha(&b, "x86_64"), engine_fixture::image_sha(&a, "x86_64"));

    // The server gone: one warning, a local build.
    drop(grid);
    let c = project();
    write_greet_set(&c, salt);
    for pkg in ["libgreet", "hello"] {
        forget_locally(&c.sstate, &package_sig(&a, pkg));
    }
    let cfg = c.read("config/ovm.toml");
    let url = b.read("config/ovm.toml").lines().find(|l| l.starts_with("remote = ")).unwrap().to_string();
    c.write("config/ovm.toml", &cfg.replace("remote = []", &url).replace("timeout = 30", "timeout = 5"));
    let (ok, out) = build(&c, None, false);
    assert!(ok, "{out}");
    assert!(out.contains("is not answering"), "{out}");
    assert!(built(&c, "x86_64").iter().any(|t| t == "hello compile"), "{out}");
}

/// Setscene with the gcc toolchain (stand-in parts, as in toolchain_engine.rs: the real ones take
/// ~15 min): a fresh tree whose package is cached neither builds nor fetches binutils, gcc or
/// linux-headers, nor the build tools.
#[test]
fn with_the_gcc_toolchain_a_fresh_tree_never_builds_or_fetches_it() {
    build_support::require_tool("busybox");
    let nginx = Nginx::start();
    let salt = "remote-gcc";
    let a = TestProject::empty();
    crate::toolchain_engine::write_parts(&a, salt, crate::toolchain_engine::ALL_GCC_OK);
    let mut tools = engine_fixture::Pkg::new(
        "busybox-tools",
        vec![engine_fixture::file("README", "stand-in\n")],
        &engine_fixture::steps(&[("install", "mkdir -p /ovm/dest/bin && cp /bin/busybox /ovm/dest/bin/busybox")]),
    );
    tools.kind_dir = "tools".into();
    tools.write(&a, salt);
    engine_fixture::Pkg::new(
        "probe",
        vec![engine_fixture::file("README", "probe\n")],
        &engine_fixture::steps(&[(
            "install",
            "mkdir -p /ovm/dest/usr/share && ls /ovm/toolchain/bin > /ovm/dest/usr/share/compilers",
        )]),
    )
    .write(&a, salt);
    use_remote(&a, &nginx.url, true, 30);
    let gcc_build = |p: &TestProject, sstate: &Path, auth: bool| {
        let mut c = p.ovm();
        c.env("OVM_SSTATE_DIR", sstate).env("NETRC", "/nonexistent");
        if auth {
            c.env("OVM_CACHE_AUTH", format!("{USER}:{PASSWORD}"));
        }
        let out = c.args(["build", "x86_64", "probe", "--toolchain", "gcc"]).output().unwrap();
        (out.status.success(), build_support::text(&out))
    };
    let (ok, out) = gcc_build(&a, &a.path().join(".sstate"), true);
    assert!(ok, "{out}");
    assert!(!a.tasks_run("cross-x86_64").is_empty(), "tree A built no toolchain part:\n{out}");

    let b = TestProject::empty();
    for d in ["recipes", "config"] {
        build_support::copy_tree(&a.path().join(d), &b.path().join(d));
    }
    b.write("config/ovm.toml", &b.read("config/ovm.toml").replace("write = true", "write = false"));
    let (ok, out) = gcc_build(&b, &b.path().join(".sstate"), false);
    assert!(ok, "{out}");
    for domain in ["cross-x86_64", "tools", "x86_64"] {
        assert!(built(&b, domain).is_empty(), "tree B ran {:?} in {domain}:\n{out}", b.tasks_run(domain));
    }
    assert!(b.tasks_run("cross-x86_64").is_empty() && b.tasks_run("tools").is_empty(), "tree B fetched a part:\n{out}");
    assert!(out.contains("1 hit, 0 missed (0 local, 1 remote, "), "{out}");
    assert!(!b.path().join("toolchain/x86_64").exists() && !b.path().join("staging/cross-x86_64").exists(), "{out}");
    let fetched: Vec<String> = fs::read_dir(b.path().join("sources"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(
        fetched.iter().all(|f| f.starts_with("probe-") || f.starts_with('.')),
        "tree B fetched more than probe's source: {fetched:?}"
    );
    assert_eq!(staged_hash(&b, "x86_64", "probe"), staged_hash(&a, "x86_64", "probe"));
}

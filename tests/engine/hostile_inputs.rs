//! Hostile inputs, end to end through `ovm build`: each case fails with its own message (or is
//! neutralised, where that is the contract) and leaves the state of everything else as it was.
//!
//! What the module tests already show, and is not repeated here: hostile archives
//! (`unpack_hostile.rs`: traversal, absolute names, escaping and written-through symlinks, hard
//! links, devices, setuid bits in tar headers), patch paths on their own (`patch_series.rs`),
//! recipe fields (`recipe_validation.rs`: `dest` with `..`, unknown keys, …), dropped and wrong
//! downloads (`fetch_http.rs`), pack conflicts and a `rootfs/` leading out of the project
//! (`pack_cli.rs`). Here each threat is a recipe or a project file given to a real build (or to
//! `ovm download`, as root and as an unprivileged user), and what it left behind is checked.

use crate::build_support;
use crate::engine_fixture;
use crate::sandbox_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use build_support::TestProject;
use engine_fixture::*;
use sandbox_support::As;

/// Everything a build keeps, as `path → mode and content hash` (files) or `→ target`
/// (symlinks): the target domain's states, staged outputs, the image and manifest, and the
/// verified sources. Lock files (whose content is the last holder) are left out.
fn snapshot(p: &TestProject) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for top in ["states/x86_64", "staging/x86_64", "output/x86_64", "sources"] {
        let mut stack = vec![p.path().join(top)];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else { continue };
            for e in rd {
                let e = e.unwrap();
                let path = e.path();
                let rel = path.strip_prefix(p.path()).unwrap().to_string_lossy().into_owned();
                let ft = e.file_type().unwrap();
                if ft.is_dir() {
                    if rel != "sources/.locks" {
                        stack.push(path);
                    }
                } else if ft.is_symlink() {
                    out.insert(rel, format!("-> {}", std::fs::read_link(&path).unwrap().display()));
                } else if !rel.ends_with(".lock") {
                    let mode = e.metadata().unwrap().permissions().mode();
                    out.insert(rel, format!("{:o} {}", mode, sha256(&std::fs::read(&path).unwrap())));
                }
            }
        }
    }
    out
}

/// Fails naming the entries that differ (not the whole maps).
fn assert_unchanged(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>, what: &str) {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| format!("{k}: {:?} -> {:?}", before.get(k), after.get(k)))
        .collect();
    assert!(diff.is_empty(), "{what} changed the state:\n{}", diff.join("\n"));
}

/// A project with `bye` built: the state that every hostile case must leave alone.
fn built_project(salt: &str) -> TestProject {
    let p = project();
    bye().write(&p, salt);
    p.ok(&["build", "x86_64"]);
    p
}

/// The snapshot without the entries of `pkg` (which the failed build may record: its log, its
/// await marker), to compare with the one taken before.
fn others(p: &TestProject, pkg: &str) -> BTreeMap<String, String> {
    snapshot(p)
        .into_iter()
        .filter(|(k, _)| {
            !k.contains(&format!("/{pkg}")) && !k.contains(&format!("/{pkg}.")) && k != "states/x86_64/await"
        })
        .collect()
}

/// A custom recipe `name` with a trivial source and this install snippet.
fn custom(name: &str, install: &str) -> Pkg {
    Pkg::new(
        name,
        vec![file("README", "a package of the hostile-input tests\n")],
        &format!("style = \"custom\"\ninstall = '''\n{install}\n'''"),
    )
}

#[test]
fn recipes_cannot_point_outside_the_project() {
    let p = built_project("outside");
    let before = snapshot(&p);
    // `../x.patch` (relative to patches/) exists: the refusal is about the path, not a missing file.
    p.write("x.patch", "--- a/README\n+++ b/README\n");
    let cases: [(&str, &str); 4] = [
        ("patches = [\"../x.patch\"]", "patch `../x.patch` must be a relative path without `..`"),
        ("patches = [\"/etc/passwd\"]", "patch `/etc/passwd` must be a relative path without `..`"),
        ("files = [\"/etc/passwd\"]", "file `/etc/passwd` must be a relative path without `..`"),
        ("files = [\"../../etc/passwd\"]", "file `../../etc/passwd` must be a relative path without `..`"),
    ];
    for (line, message) in cases {
        custom("evil", "true").write(&p, "outside");
        // The fixture writes `files = [...]` itself; replace its line with the hostile one.
        let recipe = p.read("recipes/evil.toml");
        let recipe = if line.starts_with("files") {
            recipe.replace("files = []", line)
        } else {
            recipe.replace("files = []", &format!("files = []\n{line}"))
        };
        p.write("recipes/evil.toml", &recipe);
        let out = fails(&p, &["build", "x86_64"]);
        assert!(out.contains("recipes/evil.toml:") && out.contains(message), "{line}:\n{out}");
        assert_unchanged(&before, &snapshot(&p), line);
    }

    // The same through a symlink planted inside the project: `patches/evil/x.patch` and
    // `config/evil.conf` pointing at host files. Their content would become build input.
    std::fs::create_dir_all(p.path().join("patches/evil")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p.path().join("patches/evil/0001-x.patch")).unwrap();
    custom("evil", "true").write(&p, "outside");
    let out = fails(&p, &["build", "x86_64"]);
    assert!(out.contains("0001-x.patch") && out.contains("outside the project"), "{out}");
    std::fs::remove_dir_all(p.path().join("patches/evil")).unwrap();

    std::os::unix::fs::symlink("/etc/passwd", p.path().join("config/evil.conf")).unwrap();
    let recipe = p.read("recipes/evil.toml").replace("files = []", "files = [\"evil.conf\"]");
    p.write("recipes/evil.toml", &recipe);
    let out = fails(&p, &["build", "x86_64"]);
    assert!(out.contains("evil.conf") && out.contains("outside the project"), "{out}");
    assert_unchanged(&before, &snapshot(&p), "a refused symlink");

    std::fs::remove_file(p.path().join("config/evil.conf")).unwrap();
    std::fs::remove_file(p.path().join("recipes/evil.toml")).unwrap();
    p.ok(&["build", "x86_64"]);
    assert_eq!(p.tasks_run("x86_64"), Vec::<String>::new());
}

#[test]
fn a_patch_cannot_write_outside_the_source_tree() {
    let p = built_project("patch-escape");
    let before = others(&p, "evil");
    let cases = [
        ("--- a/../../../escaped\n+++ b/../../../escaped\n@@ -0,0 +1 @@\n+x\n", "path contains `..`"),
        ("--- /dev/null\n+++ /tmp/escaped-by-patch\n@@ -0,0 +1 @@\n+x\n", "`/tmp/escaped-by-patch`: absolute path"),
    ];
    for (text, message) in cases {
        custom("evil", "true").write(&p, "patch-escape");
        p.write("patches/evil/0001-escape.patch", text);
        let out = fails(&p, &["build", "x86_64"]);
        assert!(out.contains("ovm: evil failed at patch") && out.contains(message), "{out}");
        assert!(out.contains("patches/evil/0001-escape.patch"), "{out}");
        let awaiting: serde_json::Value = serde_json::from_str(&p.read("states/x86_64/await")).unwrap();
        assert_eq!((awaiting["package"].as_str(), awaiting["task"].as_str()), (Some("evil"), Some("patch")));
        assert!(!p.path().join("work/escaped").exists() && !p.path().parent().unwrap().join("escaped").exists());
        assert!(!Path::new("/tmp/escaped-by-patch").exists());
        assert_unchanged(&before, &others(&p, "evil"), "the failed patch");
    }
    std::fs::remove_dir_all(p.path().join("patches/evil")).unwrap();
    std::fs::remove_file(p.path().join("recipes/evil.toml")).unwrap();
    p.ok(&["build", "x86_64"]);
}

#[test]
fn an_install_step_has_nothing_writable_outside_its_own_directories() {
    let p = built_project("install-escape");
    let host = p.path().display().to_string();
    let targets = [
        "/escape".to_string(),
        "/ovm/escape".into(),
        "/ovm/sysroot/escape".into(),
        "/ovm/toolchain/escape".into(),
        "/ovm/tools/escape".into(),
        "/ovm/files/escape".into(),
        "/bin/escape".into(),
        "/etc/escape".into(),
        "/usr/escape".into(),
        "/proc/escape".into(),
        "/proc/sys/kernel/hostname".into(),
        "$DESTDIR/../escape".into(),
        "$DESTDIR/../../escape".into(),
        format!("{host}/escape"),
        format!("{host}/staging/x86_64/bye/runtime/escape"),
    ];
    let attempts: String = targets
        .iter()
        .map(|t| format!("if (echo x > \"{t}\") 2>/dev/null; then echo \"WROTE {t}\"; else echo \"DENIED {t}\"; fi\n"))
        .collect();
    let install = format!(
        "{attempts}\
         if mkdir /newdir 2>/dev/null; then echo 'WROTE /newdir'; else echo 'DENIED /newdir'; fi\n\
         if ln -s /etc /ovm/dest/../link 2>/dev/null; then echo 'WROTE /ovm/link'; else echo 'DENIED /ovm/link'; fi\n\
         awk '{{ print \"MOUNT\", $2, substr($4, 1, 2) }}' /proc/self/mounts\n\
         mkdir -p \"$DESTDIR/usr/share\" && echo inside > \"$DESTDIR/usr/share/evil-ok\""
    );
    let staged_bye = snapshot(&p);
    custom("evil", &install).write(&p, "install-escape");
    p.ok(&["build", "x86_64"]);
    let log = p.read("logs/x86_64/evil/install.log");
    assert!(!log.contains("WROTE"), "the install step wrote outside its directories:\n{log}");
    for t in &targets {
        let t = t.replace("$DESTDIR", "/ovm/dest");
        assert!(log.contains(&format!("DENIED {t}")), "{t} not tried:\n{log}");
    }
    // The only writable mounts: the package's own src/build/dest, the compiler cache, and what
    // is the sandbox's own and dies with it: the tmpfs /tmp and /dev (which holds the bound
    // null/zero/full/random/urandom/tty nodes) and /proc (its sysctls read-only, above).
    let writable: Vec<&str> =
        log.lines().filter_map(|l| l.strip_prefix("MOUNT ")).filter_map(|l| l.strip_suffix(" rw")).collect();
    let allowed = ["/ovm/src", "/ovm/build", "/ovm/dest", "/ovm/cache", "/tmp", "/proc"];
    for m in &writable {
        assert!(
            allowed.contains(m) || *m == "/dev" || m.starts_with("/dev/"),
            "{m} is writable in the sandbox:\n{log}"
        );
    }
    assert!(writable.contains(&"/ovm/dest"), "{log}");
    for escaped in [p.path().join("escape"), p.path().join("staging/x86_64/bye/runtime/escape"), "/escape".into()] {
        assert!(!escaped.exists(), "{} exists", escaped.display());
    }
    assert_eq!(p.read("staging/x86_64/evil/runtime/usr/share/evil-ok"), "inside\n");
    let bye = |m: BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.into_iter().filter(|(k, _)| k.starts_with("staging/x86_64/bye")).collect()
    };
    assert_unchanged(&bye(staged_bye), &bye(snapshot(&p)), "the escaping install");
}

/// The mode of `name` in a gzip'd cpio newc archive.
fn cpio_mode(image: &Path, name: &str) -> Option<u32> {
    let mut data = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(image).unwrap()).read_to_end(&mut data).unwrap();
    let field =
        |h: &[u8], i: usize| u32::from_str_radix(std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).unwrap(), 16).unwrap();
    let pad = |n: usize| (n + 3) & !3;
    let mut at = 0;
    while at + 110 <= data.len() {
        let h = &data[at..at + 110];
        assert_eq!(&h[..6], b"070701", "not a cpio newc header at {at}");
        let (mode, size, namesize) = (field(h, 1), field(h, 6) as usize, field(h, 11) as usize);
        let entry = std::str::from_utf8(&data[at + 110..at + 110 + namesize - 1]).unwrap().to_string();
        if entry == "TRAILER!!!" {
            return None;
        }
        if entry == name {
            return Some(mode);
        }
        at = pad(pad(at + 110 + namesize) + size);
    }
    None
}

fn manifest_mode(p: &TestProject, path: &str) -> String {
    let m = p.read("output/x86_64/manifest.txt");
    let line = m.lines().find(|l| l.split('\t').next() == Some(path)).unwrap_or_else(|| panic!("{path} not in\n{m}"));
    line.split('\t').nth(2).unwrap().to_string()
}

#[test]
fn a_setuid_binary_loses_the_bit_unless_the_device_table_grants_it() {
    let p = project();
    let install = "mkdir -p \"$DESTDIR/usr/bin\"\n\
                   printf '#!/bin/sh\\necho root\\n' > \"$DESTDIR/usr/bin/suid\"\n\
                   cp \"$DESTDIR/usr/bin/suid\" \"$DESTDIR/usr/bin/sgid\"\n\
                   chmod 4755 \"$DESTDIR/usr/bin/suid\"\n\
                   chmod 2755 \"$DESTDIR/usr/bin/sgid\"\n\
                   ls -l \"$DESTDIR/usr/bin\"";
    custom("suid", install)
        .toml(
            "[package.waive]\nsetuid = \"the bits are dropped; the device table grants them in the image\"\n\
               shebang = \"the image of this test has no /bin/sh: the scripts are never run\"\n",
        )
        .write(&p, "setuid");
    p.ok(&["build", "x86_64"]);
    let log = p.read("logs/x86_64/suid/install.log");
    assert!(log.contains("-rwsr-xr-x") && log.contains("-rwxr-sr-x"), "the bits were not set inside:\n{log}");
    // Not on the host either: a setuid file owned by whoever ran ovm (root, in CI) must not sit in
    // the project for anyone to run.
    for f in ["suid", "sgid"] {
        let mode = std::fs::metadata(p.path().join("staging/x86_64/suid/runtime/usr/bin").join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7000, 0, "staging/x86_64/suid/runtime/usr/bin/{f} has mode {mode:o}");
    }
    let image = p.path().join("output/x86_64/initrd.cpio.gz");
    assert_eq!(manifest_mode(&p, "/usr/bin/suid"), "0755");
    assert_eq!(manifest_mode(&p, "/usr/bin/sgid"), "0755");
    assert_eq!(cpio_mode(&image, "usr/bin/suid"), Some(0o100755));
    assert_eq!(cpio_mode(&image, "usr/bin/sgid"), Some(0o100755));

    // The device table is the one place that grants it.
    append(&p, "config/device_table.txt", "/usr/bin/suid f 4755 0 0 - - - - -\n");
    p.ok(&["build", "x86_64"]);
    assert_eq!(manifest_mode(&p, "/usr/bin/suid"), "4755");
    assert_eq!(manifest_mode(&p, "/usr/bin/sgid"), "0755");
    assert_eq!(cpio_mode(&image, "usr/bin/suid"), Some(0o104755));
}

/// An HTTP server that answers `/endless/…` with a body that never ends (no length) and
/// `/huge/…` with a 64 GiB `Content-Length` (and then a trickle), counting the bytes it sent.
struct Hostile {
    port: u16,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

fn hostile_server() -> Hostile {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut req = [0u8; 4096];
                let n = conn.read(&mut req).unwrap_or(0);
                let head = String::from_utf8_lossy(&req[..n]).into_owned();
                let huge = head.starts_with("GET /huge/");
                let header = if huge {
                    "HTTP/1.1 200 OK\r\nContent-Length: 68719476736\r\nConnection: close\r\n\r\n"
                } else {
                    "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                };
                if conn.write_all(header.as_bytes()).is_err() {
                    return;
                }
                let chunk = vec![0x5au8; 64 * 1024];
                while conn.write_all(&chunk).is_ok() {
                    counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    Hostile { port, sent }
}

#[test]
fn an_endless_or_enormous_download_is_cut_at_the_size_limit() {
    let p = built_project("endless");
    let srv = hostile_server();
    let cfg = p.read("config/ovm.toml").replace("[fetch]\n", "[fetch]\nmax_size = 1048576\nretries = 0\n");
    p.write("config/ovm.toml", &cfg);
    p.ok(&["build", "x86_64"]); // the limit is not an input of anything built
    let before = snapshot(&p);
    for (route, message) in [
        ("endless", "the response grew past the size limit of 1048576 bytes ([fetch] max_size)"),
        ("huge", "the server announces 68719476736 bytes, more than the size limit of 1048576 bytes"),
    ] {
        let file = format!("{route}-1.0.tar.gz");
        let recipe = format!(
            "name = \"{route}\"\nversion = \"1.0\"\nlicense = \"MIT\"\n\n[[source]]\n\
             url = \"http://127.0.0.1:{}/{route}/{file}\"\nsha256 = \"{}\"\n\n[build]\nstyle = \"custom\"\ninstall = \"true\"\n",
            srv.port,
            "ab".repeat(32)
        );
        p.write(&format!("recipes/{route}.toml"), &recipe);
        let t0 = Instant::now();
        let out = p.ovm().env("NO_PROXY", "127.0.0.1").args(["build", "x86_64"]).output().unwrap();
        let text = build_support::text(&out);
        assert!(!out.status.success(), "{text}");
        assert!(t0.elapsed() < Duration::from_secs(120), "the download was not cut off in time");
        assert!(text.contains(&format!("{route}: cannot fetch {file}")) && text.contains(message), "{text}");
        let listing: Vec<String> = std::fs::read_dir(p.path().join("sources"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(route))
            .collect();
        assert_eq!(listing, Vec::<String>::new(), "left in sources/");
        std::fs::remove_file(p.path().join(format!("recipes/{route}.toml"))).unwrap();
        assert_unchanged(&before, &others(&p, route), route);
    }
    // Bounded by the limit (plus what sat in socket buffers), not by the server's patience.
    let sent = srv.sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(sent < 64 << 20, "the server got to send {sent} bytes");
}

/// Runs ovm with a deadline: a pack that follows a symlink loop would never end.
fn run_with_deadline(p: &TestProject, args: &[&str], limit: Duration) -> std::process::Output {
    let mut child =
        p.ovm().args(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            child.kill().unwrap();
            panic!("ovm {} did not finish within {limit:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn symlink_loops_in_rootfs_are_packed_as_links_or_named_never_followed() {
    let p = built_project("loops");
    let rootfs = p.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc/deep")).unwrap();
    std::os::unix::fs::symlink("self", rootfs.join("self")).unwrap();
    std::os::unix::fs::symlink("ping", rootfs.join("pong")).unwrap();
    std::os::unix::fs::symlink("pong", rootfs.join("ping")).unwrap();
    std::os::unix::fs::symlink("../..", rootfs.join("etc/deep/up")).unwrap();
    std::os::unix::fs::symlink("/", rootfs.join("etc/root")).unwrap();
    let out = run_with_deadline(&p, &["build", "x86_64"], Duration::from_secs(120));
    assert!(out.status.success(), "{}", build_support::text(&out));
    let m = p.read("output/x86_64/manifest.txt");
    for (path, target) in
        [("/self", "self"), ("/ping", "pong"), ("/pong", "ping"), ("/etc/deep/up", "../.."), ("/etc/root", "/")]
    {
        let line = m.lines().find(|l| l.split('\t').next() == Some(path)).unwrap_or_else(|| panic!("{path}:\n{m}"));
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!((f[1], f[8]), ("symlink", target), "{line}");
    }
    assert!(!m.contains("/etc/deep/up/"), "a looping link was followed:\n{m}");

    // Where ovm must follow a link — the rootfs and overlay directories themselves — a loop is
    // an error naming the path and the cause.
    let image = snapshot(&p);
    std::os::unix::fs::symlink("loop", p.path().join("loop")).unwrap();
    let looping = p.path().join("loop").display().to_string();
    let out = run_with_deadline(&p, &["pack", "x86_64", "--overlay", &looping], Duration::from_secs(60));
    let text = build_support::text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("loop") && text.contains("os error 40"), "{text}");
    std::fs::rename(&rootfs, p.path().join("rootfs.real")).unwrap();
    std::os::unix::fs::symlink("rootfs", &rootfs).unwrap();
    let out = run_with_deadline(&p, &["build", "x86_64"], Duration::from_secs(60));
    let text = build_support::text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("rootfs") && text.contains("os error 40"), "{text}");
    assert_unchanged(&image, &snapshot(&p), "a refused pack");
}

/// Runs `cmd` to its end, or kills it after `limit` and fails: a source that blocks (a FIFO)
/// would otherwise hang the test forever.
fn output_within(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{cmd:?} did not finish within {limit:?}; it said:\n{}", build_support::text(&out));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// Files outside any project that a recipe's `file://` URL can name: `secret` (root's, mode
/// 0600, like /etc/shadow), `fifo`, and `big` (2 GiB, sparse).
fn host_files() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("ovm-host-files.").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "root-only secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    nix::unistd::mkfifo(&dir.path().join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    let big = std::fs::File::create(dir.path().join("big")).unwrap();
    big.set_len(2 << 30).unwrap();
    std::fs::set_permissions(dir.path().join("big"), std::fs::Permissions::from_mode(0o644)).unwrap();
    dir
}

/// A project owned by `who` whose recipes are `(name, url, sha256)`, for `ovm download`.
fn download_project(who: As, recipes: &[(&str, &str, &str)], fetch_config: &str) -> PathBuf {
    let dir = sandbox_support::owned_dir(who, "download");
    let mut files = vec![(
        "config/ovm.toml".to_string(),
        format!("[fetch]\nretries = 0\ndebian = false\npypi = false\n{fetch_config}"),
    )];
    for (name, url, sha) in recipes {
        files.push((
            format!("recipes/{name}.toml"),
            format!(
                "name = \"{name}\"\nversion = \"1.0\"\nlicense = \"MIT\"\n\n[[source]]\nurl = \"{url}\"\n\
                 sha256 = \"{sha}\"\nunpack = false\n\n[build]\nstyle = \"custom\"\ninstall = \"true\"\n"
            ),
        ));
    }
    for d in ["recipes", "config"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    for (rel, text) in &files {
        std::fs::write(dir.join(rel), text).unwrap();
    }
    if sandbox_support::is_root() {
        let (uid, gid) = (sandbox_support::uid_of(who), sandbox_support::gid_of(who));
        for rel in ["recipes", "config"].iter().map(|s| s.to_string()).chain(files.into_iter().map(|(r, _)| r)) {
            std::os::unix::fs::chown(dir.join(rel), Some(uid), Some(gid)).unwrap();
        }
    }
    dir
}

/// `ovm -C project download` as `who`, with no mirror unless `mirrors` names one.
fn download(who: As, project: &Path, mirrors: Option<&Path>) -> (bool, String) {
    let mut cmd = sandbox_support::ovm(who, &["-C", &project.display().to_string(), "download"]);
    cmd.env_remove("OVM_MIRRORS");
    if let Some(m) = mirrors {
        cmd.env("OVM_MIRRORS", m);
    }
    let out = output_within(cmd, Duration::from_secs(60));
    (out.status.success(), build_support::text(&out))
}

/// What `sources/` holds (not its lock directory).
fn sources_of(project: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(project.join("sources")) else { return Vec::new() };
    let mut names: Vec<String> =
        rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n != ".locks").collect();
    names.sort();
    names
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

/// The attack: `url = "file:///etc/shadow"` copied a root-only file into `sources/shadow.bad`,
/// world-readable. As root the copy (verified or quarantined) is never readable by more users
/// than the original; as an unprivileged user the read fails with a message naming the file.
#[test]
fn a_file_url_cannot_make_a_root_only_file_readable() {
    let host = host_files();
    let secret = host.path().join("secret");
    let url = format!("file://{}", secret.display());
    let right = sha256(b"root-only secret\n");
    let wrong = "ab".repeat(32);

    let p = download_project(As::Root, &[("shadow", url.as_str(), wrong.as_str())], "");
    let (ok, text) = download(As::Root, &p, None);
    assert!(!ok, "{text}");
    assert!(text.contains("shadow: cannot fetch secret") && text.contains("sha256 mismatch"), "{text}");
    // A recipe reading host files says which.
    assert!(text.contains(&format!("shadow: secret: reading {}, outside the project", secret.display())), "{text}");
    assert_eq!(sources_of(&p), ["secret.bad"]);
    let bad = p.join("sources/secret.bad");
    assert_eq!(mode_of(&bad) & 0o077, 0, "{} has mode {:o}", bad.display(), mode_of(&bad));

    // With the right hash the copy is kept with the original's bits.
    std::fs::remove_file(&bad).unwrap();
    let recipe = std::fs::read_to_string(p.join("recipes/shadow.toml")).unwrap().replace(&wrong, &right);
    std::fs::write(p.join("recipes/shadow.toml"), recipe).unwrap();
    let (ok, text) = download(As::Root, &p, None);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("(from {})", secret.display())), "the listing names the origin:\n{text}");
    assert_eq!(std::fs::read_to_string(p.join("sources/secret")).unwrap(), "root-only secret\n");
    assert_eq!(mode_of(&p.join("sources/secret")) & !0o600, 0);

    // A wrong file already in sources/ is moved aside private too, whatever its mode was.
    std::fs::write(p.join("sources/secret"), "not the secret\n").unwrap();
    std::fs::set_permissions(p.join("sources/secret"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, text) = download(As::Root, &p, None);
    assert!(ok, "{text}");
    assert_eq!(mode_of(&bad), 0o600, "{text}");

    // The unprivileged user cannot read it, and is told so; nothing lands in sources/.
    let p = download_project(As::Unprivileged, &[("shadow", url.as_str(), right.as_str())], "");
    let (ok, text) = download(As::Unprivileged, &p, None);
    assert!(!ok, "{text}");
    assert!(
        text.contains("shadow: cannot fetch secret")
            && text.contains(&format!("{}: cannot read it: Permission denied", secret.display())),
        "{text}"
    );
    assert_eq!(sources_of(&p), Vec::<String>::new());
}

/// The attacks: `file:///dev/zero` wrote 2 GB before anything stopped it, a FIFO source hung
/// forever. A local source must be a regular file within `[fetch] max_size`; anything else is
/// refused without being read (the 60 s limit of `download` catches a hang), as root and as an
/// unprivileged user, and a mirror directory's entry is held to the same.
#[test]
fn a_device_a_fifo_or_an_oversized_file_is_refused_as_a_source() {
    let host = host_files();
    let fifo = host.path().join("fifo");
    let big = host.path().join("big");
    let zero_sha = "00".repeat(32);
    let (fifo_url, big_url) = (format!("file://{}", fifo.display()), format!("file://{}", big.display()));
    let recipes = [
        ("zero", "file:///dev/zero", zero_sha.as_str()),
        ("fifo", fifo_url.as_str(), zero_sha.as_str()),
        ("big", big_url.as_str(), zero_sha.as_str()),
    ];
    for who in [As::Root, As::Unprivileged] {
        let p = download_project(who, &recipes, "max_size = 1048576\n");
        let (ok, text) = download(who, &p, None);
        assert!(!ok, "{who:?}: {text}");
        for expected in [
            "zero: cannot fetch zero".to_string(),
            "/dev/zero: a character device, not a regular file".into(),
            "fifo: cannot fetch fifo".into(),
            format!("{}: a FIFO, not a regular file", fifo.display()),
            "big: cannot fetch big".into(),
            format!(
                "{}: the file is 2147483648 bytes, more than the size limit of 1048576 bytes ([fetch] max_size)",
                big.display()
            ),
        ] {
            assert!(text.contains(&expected), "{who:?}: no {expected:?} in:\n{text}");
        }
        assert_eq!(sources_of(&p), Vec::<String>::new(), "{who:?}");
    }

    // A mirror directory whose entry is a FIFO: refused, and the recipe's own URL is used.
    let mirror = host.path().join("mirror");
    std::fs::create_dir(&mirror).unwrap();
    std::fs::set_permissions(&mirror, std::fs::Permissions::from_mode(0o755)).unwrap();
    nix::unistd::mkfifo(&mirror.join("pkg-1.0.tar.gz"), nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    let good = host.path().join("pkg-1.0.tar.gz");
    std::fs::write(&good, "the real bytes\n").unwrap();
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o644)).unwrap();
    let good_url = format!("file://{}", good.display());
    let p = download_project(As::Unprivileged, &[("pkg", good_url.as_str(), sha256(b"the real bytes\n").as_str())], "");
    let (ok, text) = download(As::Unprivileged, &p, Some(&mirror));
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("{}: a FIFO, not a regular file", mirror.join("pkg-1.0.tar.gz").display())),
        "{text}"
    );
    assert_eq!(sources_of(&p), ["pkg-1.0.tar.gz"]);
    // Never wider than the original (the umask may narrow it).
    assert_eq!(mode_of(&p.join("sources/pkg-1.0.tar.gz")) & !0o644, 0);
}

/// The attack: an install step leaving a FIFO in `$DESTDIR`. The output was committed to staging
/// before the check refused it, `ovm pack` then shipped it, and the error named a log that did
/// not exist. Now the output is checked where the steps left it: staging keeps the previous good
/// output, the image does not get the FIFO, and the log named holds the error.
#[test]
fn a_fifo_left_in_destdir_never_reaches_staging_or_the_image() {
    let p = built_project("fifo-out");
    custom("evil", "mkdir -p \"$DESTDIR/usr/bin\"\necho good > \"$DESTDIR/usr/bin/evil\"").write(&p, "fifo-out");
    p.ok(&["build", "x86_64"]);
    let kept = |m: BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.into_iter().filter(|(k, _)| k.starts_with("staging/") || k.starts_with("output/")).collect()
    };
    let before = kept(snapshot(&p));
    assert!(before.contains_key("staging/x86_64/evil/runtime/usr/bin/evil"), "{before:?}");

    custom(
        "evil",
        "mkdir -p \"$DESTDIR/usr/bin\"\necho bad > \"$DESTDIR/usr/bin/evil\"\nmkfifo \"$DESTDIR/usr/bin/pipe\"",
    )
    .write(&p, "fifo-out");
    let out = fails(&p, &["build", "x86_64"]);
    let pipe = p.path().join("work/x86_64/evil/dest/usr/bin/pipe");
    assert!(
        out.contains(&format!(
            "ovm: evil failed at package: {} is a FIFO: a package output holds only files, directories and symlinks",
            pipe.display()
        )),
        "{out}"
    );
    let log = out.lines().find_map(|l| l.strip_prefix("log: ")).unwrap_or_else(|| panic!("no log named:\n{out}"));
    let logged = std::fs::read_to_string(log).unwrap_or_else(|e| panic!("the log named, {log}: {e}\n{out}"));
    assert!(logged.contains("is a FIFO"), "{log}:\n{logged}");
    assert!(!p.path().join("staging/x86_64/evil/runtime/usr/bin/pipe").exists());
    assert_unchanged(&before, &kept(snapshot(&p)), "the refused output");

    // `ovm pack` packs what staging holds: the previous good output, no FIFO.
    p.ok(&["pack", "x86_64"]);
    let m = p.read("output/x86_64/manifest.txt");
    assert!(m.lines().any(|l| l.starts_with("/usr/bin/evil\t")), "{m}");
    assert!(!m.contains("/usr/bin/pipe"), "the FIFO was packed:\n{m}");

    std::fs::remove_file(p.path().join("recipes/evil.toml")).unwrap();
}

/// The command lines (`/proc/PID/cmdline`, readable by every user of the host) that contain
/// `needle`, as `PID: ARGS` (cut to 200 characters).
fn command_lines_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if cmdline.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            let args: String = String::from_utf8_lossy(&cmdline).replace('\0', " ").chars().take(200).collect();
            found.push(format!("{pid}: {args} ({} bytes)", cmdline.len()));
        }
    }
    found
}

/// The parent pid of process `pid` (field 4 of /proc/PID/stat, after the parenthesised name).
fn parent_of(pid: &str) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// Attack: every step's OCI spec went to `ovm __sandbox-exec` as one argument, and its script to
/// `/bin/sh -c` as another: an install snippet over 128 KiB (MAX_ARG_STRLEN) failed with E2BIG,
/// and the recipe's environment and scripts were on show in `ps` to every user while it ran.
/// Now the spec is read from a descriptor and the script from a file: the snippet runs, and
/// while it runs no command line on the host holds the recipe's secret.
#[test]
fn a_step_spec_is_on_no_command_line_and_may_exceed_the_argument_limit() {
    let p = built_project("spec-fd");
    let secret = "hunter2-a-recipe-secret-of-spec-fd";
    let filler = format!("# {}", "x".repeat(160 << 10));
    // Waits (boundedly) for the test to look at the host's processes.
    let install = format!(
        "{filler}\necho \"token=$API_TOKEN\"\necho waiting\n\
         i=0; while [ ! -e /ovm/src/go ] && [ $i -lt 900 ]; do sleep 1; i=$((i+1)); done\n\
         mkdir -p \"$DESTDIR/usr/share\" && echo big > \"$DESTDIR/usr/share/big-ok\""
    );
    let build = format!("style = \"custom\"\nenv = {{ API_TOKEN = \"{secret}\" }}\ninstall = '''\n{install}\n'''");
    Pkg::new("bigspec", vec![file("README", "a package with a large install snippet\n")], &build).write(&p, "spec-fd");
    let mut child = p
        .ovm()
        .args(["build", "x86_64"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log = p.path().join("logs/x86_64/bigspec/install.log");
    let t0 = Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("waiting") {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "ovm ended ({status}) before the install step ran:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(t0.elapsed() < Duration::from_secs(900), "the install step never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let showing_secret = command_lines_with(secret);
    // This build's runners only: other projects' builds may run on the host meanwhile.
    let runners: Vec<String> = command_lines_with("__sandbox-exec")
        .into_iter()
        .filter(|r| parent_of(r.split(':').next().unwrap_or_default()) == Some(child.id()))
        .collect();
    std::fs::write(p.path().join("work/x86_64/bigspec/src/go"), "").unwrap();
    let status = child.wait().unwrap();
    assert!(showing_secret.is_empty(), "the recipe's secret is on command lines: {showing_secret:?}");
    // The look above saw the step's runner, or it proved nothing.
    assert!(!runners.is_empty(), "no ovm __sandbox-exec ran while the step waited");
    for r in &runners {
        assert!(r.contains("__sandbox-exec --spec-fd ") && !r.contains('{'), "{r}");
    }
    assert!(status.success(), "{status}:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    assert!(std::fs::read_to_string(&log).unwrap().contains(&format!("token={secret}")));
    assert_eq!(p.read("staging/x86_64/bigspec/runtime/usr/share/big-ok"), "big\n");
}

/// Attack: a failing step that printed one 20 MB line had the failure report copy all of it to
/// the terminal; and nothing bounded the size of a step's log. The report prints the last lines,
/// each cut to 400 bytes with the count of what it lost, and names the log; the log stops at
/// `[build] log_max`, keeping its head and tail and saying what it cut.
#[test]
fn a_failing_step_printing_a_20_mb_line_gives_a_short_report_and_a_capped_log() {
    let p = built_project("big-output");
    let noisy = "echo first line\nhead -c 20000000 /dev/zero | tr '\\0' x\necho\necho the last words\nexit 3";
    custom("noisy", noisy).write(&p, "big-output");
    let log = p.path().join("logs/x86_64/noisy/install.log");

    let out = p.run(&["build", "x86_64"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.stderr.len() < 64 << 10, "{} bytes of report on stderr", out.stderr.len());
    assert!(out.stdout.len() < 64 << 10, "{} bytes on stdout", out.stdout.len());
    assert!(err.contains("the install step failed (exit status 3)"), "{err}");
    assert!(err.contains(&format!("log: {}", log.display())), "{err}");
    assert!(err.contains(&format!("{}… (19999600 bytes cut)\nthe last words\n", "x".repeat(400))), "{err}");
    // The default cap (64M) holds the whole output.
    assert!(std::fs::metadata(&log).unwrap().len() > 20_000_000);

    // With a 1 MiB cap: the step still runs to its end (its exit status is the failure).
    edit(&p, "config/ovm.toml", "log_max = \"64M\"", "log_max = \"1M\"");
    let out = p.run(&["build", "x86_64"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("(exit status 3)"), "{err}");
    assert!(out.stderr.len() < 64 << 10, "{} bytes of report on stderr", out.stderr.len());
    let len = std::fs::metadata(&log).unwrap().len();
    assert!(len <= (1 << 20) + 512, "the capped log holds {len} bytes");
    let content = String::from_utf8(std::fs::read(&log).unwrap()).unwrap();
    assert!(content.starts_with("first line\nxxxx"), "{}", &content[..100]);
    assert!(content.contains("[ovm: this log reached log_max (1048576 bytes)"), "no note of the cap");
    let cut = 11 + 20_000_001 + 15 - (1 << 20);
    assert!(content.contains(&format!("[ovm: {cut} bytes cut here; the last 524288 bytes of the output follow]")));
    assert!(content.ends_with("xxxx\nthe last words\n"), "{}", &content[content.len() - 100..]);
    std::fs::remove_file(p.path().join("recipes/noisy.toml")).unwrap();
}

/// Attack: `SOURCE_DATE_EPOCH=-1` or `abc` fell back to the default timestamp without a word, so a
/// build meant to be stamped with one time was stamped with another. reproducible-builds.org: a
/// malformed value must be an error. It is, naming the variable and the value.
#[test]
fn a_malformed_source_date_epoch_is_refused_naming_it() {
    let p = build_support::TestProject::empty();
    for bad in ["-1", "abc", "", "1.5", "+5"] {
        for args in [&["build", "x86_64"][..], &["pack", "x86_64"], &["status", "x86_64"]] {
            let out = p.ovm().env("SOURCE_DATE_EPOCH", bad).args(args).output().unwrap();
            let text = build_support::text(&out);
            assert!(!out.status.success(), "{bad:?} {args:?}:\n{text}");
            assert!(text.contains(&format!("SOURCE_DATE_EPOCH={bad:?} is malformed")), "{bad:?} {args:?}:\n{text}");
        }
    }
    assert!(!p.path().join("output").exists());
}

/// Attack: `-j 100000` wrote 99999 tokens into the jobserver pipe, which holds 64 KiB: ovm blocked
/// forever before building anything. Job counts past what the pipe holds are refused at once,
/// saying why (run with a deadline, so a regression fails instead of hanging).
#[test]
fn a_job_count_the_jobserver_pipe_cannot_hold_is_refused_at_once() {
    let p = build_support::TestProject::empty();
    let out = run_with_deadline(&p, &["build", "x86_64", "-j", "100000"], Duration::from_secs(120));
    let text = build_support::text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("-j 100000: at most 4096 jobs (the jobserver pipe holds one byte per job)"), "{text}");
    append(&p, "config/ovm.toml", "\n[build]\njobs = 5000\n");
    let out = run_with_deadline(&p, &["build", "x86_64"], Duration::from_secs(120));
    let text = build_support::text(&out);
    assert!(!out.status.success() && text.contains("[build] jobs = 5000: at most 4096 jobs"), "{text}");
}

//! Incremental builds: a second build runs no task; an edit reruns exactly the tasks it affects
//! and the packages depending on a changed output — asserted as the exact task list of the run
//! (from logs/DOMAIN/context.log) — and `ovm status --why` names the input that changed first.
//! A description edit reruns nothing; an edit that leaves a package's output byte-identical stops
//! there (its dependents and the image are not redone).
//!
//! "Affected" is the engine's rule: a package whose patch, configure or compile task is stale
//! reruns from a fresh unpack (those tasks must not run on a tree their earlier run wrote to);
//! a stale install reruns on the compiled tree.

use crate::build_support;
use crate::engine_fixture;

use std::fs;
use std::process::Command;

use build_support::TestProject;
use engine_fixture::*;

fn status_why(p: &TestProject) -> String {
    let out = p.run(&["status", "x86_64", "--why"]);
    build_support::text(&out)
}

fn hello_says(p: &TestProject) -> String {
    let out =
        Command::new(p.path().join("staging/x86_64/hello/runtime/usr/bin/hello")).output().expect("running hello");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// With an external toolchain nothing builds in the `toolchain` domain, whose log then still ends
/// with an older run: pass only the domains this build logged to.
fn nothing_ran_in(p: &TestProject, domains: &[&str]) {
    for d in domains {
        assert_eq!(p.tasks_run(d), Vec::<String>::new(), "{d}: a task ran in a build that had nothing to do");
    }
}

#[test]
fn each_kind_of_edit_reruns_exactly_what_it_affects() {
    let p = project();
    write_greet_set(&p, "incremental");
    bye().write(&p, "incremental");
    p.ok(&["build", "x86_64"]);
    assert_eq!(
        tasks_sorted(&p, "x86_64"),
        expect(&[chain("libgreet", ALL_TASKS), chain("hello", ALL_TASKS), chain("bye", ALL_TASKS), image_tasks()])
    );
    assert_eq!(hello_says(&p), "Hello, ovm! (libgreet 1.0)\n");

    // Nothing changed: nothing runs, and status says so (exit 0).
    let again = p.ok(&["build", "x86_64"]);
    assert!(again.contains("nothing to do"), "{again}");
    nothing_ran_in(&p, &["toolchain", "tools", "x86_64"]);
    p.ok(&["status", "x86_64"]);

    // description is no input of a package, only of the feed, whose control files carry it.
    edit(&p, "recipes/hello.toml", "hello, a test package", "hello, a re-described test package");
    let status = p.run(&["status", "x86_64"]);
    let text = build_support::text(&status);
    assert!(text.contains("image            stale from feed (package.hello.description"), "{text}");
    assert!(text.contains("x86_64     hello            built"), "{text}");
    p.ok(&["build", "x86_64"]);
    nothing_ran_in(&p, &["toolchain", "tools"]);
    assert_eq!(p.tasks_run("x86_64"), ["image feed"]);
    assert!(p.read("output/x86_64/feed/Packages").contains("hello, a re-described test package"));

    // A patch: libgreet, hello (its dependency's output changed), the image.
    p.write("patches/libgreet/0001-greeting.patch", &greet_patch("Howdy"));
    let why = status_why(&p);
    let lg = status_of(&why, "libgreet");
    assert!(lg.contains("stale from patch") && lg.contains("patch.0.0001-greeting.patch changed"), "{why}");
    assert!(status_of(&why, "bye").contains("built"), "{why}");
    p.ok(&["build", "x86_64"]);
    assert_eq!(
        tasks_sorted(&p, "x86_64"),
        expect(&[chain("libgreet", FROM_UNPACK), chain("hello", FROM_UNPACK), image_tasks()])
    );
    assert_eq!(hello_says(&p), "Howdy, ovm! (libgreet 1.0)\n");

    // A config file (`files`): libgreet, hello, the image.
    p.write("config/libgreet/mark.h", "#define GREET_MARK \"?\"\n");
    let why = status_why(&p);
    let lg = status_of(&why, "libgreet");
    assert!(lg.contains("stale from configure") && lg.contains("file.libgreet/mark.h changed"), "{why}");
    p.ok(&["build", "x86_64"]);
    assert_eq!(
        tasks_sorted(&p, "x86_64"),
        expect(&[chain("libgreet", FROM_UNPACK), chain("hello", FROM_UNPACK), image_tasks()])
    );
    assert_eq!(hello_says(&p), "Howdy, ovm? (libgreet 1.0)\n");

    // A recipe field, build.env: hello alone, the image.
    edit(&p, "recipes/hello.toml", "HELLO_NAME = \"ovm\"", "HELLO_NAME = \"world\"");
    let why = status_why(&p);
    let h = status_of(&why, "hello");
    assert!(h.contains("stale from configure") && h.contains("env.HELLO_NAME changed (ovm → world)"), "{why}");
    p.ok(&["build", "x86_64"]);
    assert_eq!(tasks_sorted(&p, "x86_64"), expect(&[chain("hello", FROM_UNPACK), image_tasks()]));
    assert_eq!(hello_says(&p), "Howdy, world? (libgreet 1.0)\n");

    // A recipe field, build.make_args: part of libgreet's make command lines, so its compile is
    // stale (a make-style recipe has no configure command). make alone would take greet.o as
    // current; the fresh tree is what makes the new tag reach hello.
    edit(&p, "recipes/libgreet.toml", "GREET_TAG=1.0", "GREET_TAG=1.1");
    let why = status_why(&p);
    let lg = status_of(&why, "libgreet");
    assert!(lg.contains("stale from compile") && lg.contains("script.compile changed"), "{why}");
    p.ok(&["build", "x86_64"]);
    assert_eq!(
        tasks_sorted(&p, "x86_64"),
        expect(&[chain("libgreet", FROM_UNPACK), chain("hello", FROM_UNPACK), image_tasks()])
    );
    assert_eq!(hello_says(&p), "Howdy, world? (libgreet 1.1)\n");

    // Only the install step: hello's install and package, the image.
    edit(
        &p,
        "recipes/hello.toml",
        "cp hello \"$DESTDIR/usr/bin/hello\"",
        "cp hello \"$DESTDIR/usr/bin/hello\"\nln -s hello \"$DESTDIR/usr/bin/hi\"",
    );
    let why = status_why(&p);
    assert!(status_of(&why, "hello").contains("stale from install") && why.contains("script.install changed"), "{why}");
    p.ok(&["build", "x86_64"]);
    assert_eq!(tasks_sorted(&p, "x86_64"), expect(&[chain("hello", &["install", "package"]), image_tasks()]));
    assert!(p.path().join("staging/x86_64/hello/runtime/usr/bin/hi").is_symlink());

    // An input whose change leaves libgreet's output byte-identical: libgreet reruns, and that is
    // all (early cutoff: hello's inputs are libgreet's output, not its signatures).
    edit(&p, "recipes/libgreet.toml", "style = \"make\"", "style = \"make\"\nenv = { UNUSED_BY_THE_MAKEFILE = \"1\" }");
    let why = status_why(&p);
    assert!(status_of(&why, "libgreet").contains("env.UNUSED_BY_THE_MAKEFILE added (1)"), "{why}");
    p.ok(&["build", "x86_64"]);
    assert_eq!(tasks_sorted(&p, "x86_64"), expect(&[chain("libgreet", FROM_UNPACK)]));

    p.ok(&["build", "x86_64"]);
    nothing_ran_in(&p, &["toolchain", "tools", "x86_64"]);

    // An output changed behind ovm's back is noticed (its hash is checked on every build) and
    // made again. (Staged files share inodes with the shared-state cache's copy, so that copy is
    // damaged too; it fails its own hash check and is dropped, and bye is rebuilt.)
    let bye_before = staged_hash(&p, "x86_64", "bye");
    fs::write(p.path().join("staging/x86_64/bye/runtime/usr/bin/bye"), "damaged").unwrap();
    let out = p.ok(&["build", "x86_64"]);
    let bye_line = out.lines().find(|l| l.split_whitespace().nth(1) == Some("bye")).unwrap_or_default();
    assert!(bye_line.contains("built") || bye_line.contains("from the shared-state cache"), "{out}");
    assert_eq!(staged_hash(&p, "x86_64", "bye"), bye_before);
}

/// A test build-tools recipe: Debian's static busybox (busybox-static) copied from the host, so
/// that a toolchain change — which rebuilds the build tools — costs seconds, not the minutes of
/// compiling busybox and make. It builds in the `toolchain` profile, where host /bin is visible.
fn host_busybox_tools() -> Pkg {
    let mut p = Pkg::new(
        "hostbox",
        vec![file("README", "the host's busybox-static, as build tools\n")],
        r#"style = "custom"
install = '''
mkdir -p "$DESTDIR/bin"
cp /bin/busybox "$DESTDIR/bin/busybox"
for applet in $(/bin/busybox --list); do
	[ "$applet" = busybox ] || ln -s busybox "$DESTDIR/bin/$applet"
done
'''"#,
    );
    p.kind_dir = "tools".into();
    p
}

#[test]
fn a_toolchain_change_rebuilds_the_tools_and_every_package() {
    assert!(
        std::path::Path::new("/bin/busybox").is_file(),
        "Debian's busybox-static is not installed: {}",
        build_support::SETUP_HINT
    );
    let p = project();
    for tool in ["busybox-tools", "make"] {
        fs::remove_file(p.path().join(format!("recipes/tools/{tool}.toml"))).unwrap();
    }
    host_busybox_tools().write(&p, "toolchain");
    // The zig toolchain (from the cache) and the tools, to make an external toolchain of.
    p.ok(&["build", "x86_64"]);

    // An external toolchain: a copy of zig's (hard links; files are replaced, never edited).
    let ext = p.path().join("ext");
    let cp = Command::new("cp").arg("-al").arg(p.path().join("toolchain/zig")).arg(&ext).status().unwrap();
    assert!(cp.success());
    p.write("config/ovm.toml", "[toolchain]\nkind = \"external\"\npath = \"ext\"\n");
    bye().write(&p, "toolchain");
    p.ok(&["build", "x86_64"]);
    assert_eq!(
        tasks_sorted(&p, "tools"),
        expect(&[chain("hostbox", FROM_UNPACK)]),
        "the tools are the toolchain's products"
    );
    assert_eq!(tasks_sorted(&p, "x86_64"), expect(&[chain("bye", ALL_TASKS), image_tasks()]));
    p.ok(&["build", "x86_64"]);
    nothing_ran_in(&p, &["tools", "x86_64"]);

    // A new build of the compiler driver.
    let cc = ext.join("bin/x86_64-linux-musl-cc");
    let text = fs::read_to_string(&cc).unwrap() + "# rebuilt: toolchain release 2\n";
    let tmp = ext.join("bin/.cc.new");
    fs::write(&tmp, text).unwrap();
    fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    fs::rename(&tmp, &cc).unwrap();

    let why = status_why(&p);
    assert!(status_of(&why, "hostbox").contains("toolchain changed"), "{why}");
    assert!(status_of(&why, "bye").contains("toolchain changed"), "{why}");
    p.ok(&["build", "x86_64"]);
    assert_eq!(tasks_sorted(&p, "tools"), expect(&[chain("hostbox", FROM_UNPACK)]));
    // bye is rebuilt with the new compiler; its bytes are the same, so the image is not repacked.
    assert_eq!(tasks_sorted(&p, "x86_64"), expect(&[chain("bye", FROM_UNPACK)]));
}

/// `ovm -C DIR` with a relative DIR, from the project's parent directory.
fn ovm_relative(p: &TestProject, args: &[&str]) -> String {
    let parent = p.path().parent().unwrap();
    let name = p.path().file_name().unwrap();
    let out = Command::new(build_support::ovm_bin())
        .current_dir(parent)
        .arg("-C")
        .arg(name)
        .args(args)
        .env("OVM_MIRRORS", build_support::mirror())
        .env("OVM_SSTATE_DIR", &p.sstate)
        .env("OVM_BUILD_CACHE_DIR", build_support::build_cache())
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    let t = build_support::text(&out);
    assert!(out.status.success(), "ovm -C {} {} failed:\n{t}", name.to_string_lossy(), args.join(" "));
    t
}

#[test]
fn clean_forgets_a_package_an_arch_or_everything() {
    let p = project();
    write_greet_set(&p, "clean");
    bye().write(&p, "clean");
    // A relative -C works like an absolute one (the sandbox needs absolute binds).
    ovm_relative(&p, &["build", "x86_64"]);
    let hello_before = staged_hash(&p, "x86_64", "hello");
    let exists = |rel: &str| p.path().join(rel).exists();

    // One package: its work dir, output, logs and stamps; the image must be repacked.
    let removed = p.ok(&["clean", "x86_64", "hello"]);
    for rel in ["work/x86_64/hello", "staging/x86_64/hello", "logs/x86_64/hello"] {
        assert!(removed.contains(&p.path().join(rel).display().to_string()), "{rel} not reported:\n{removed}");
        assert!(!exists(rel), "{rel} survived");
    }
    assert!(!exists("states/x86_64/hello.package") && !exists("states/x86_64/image.pack"));
    assert!(exists("states/x86_64/libgreet.package") && exists("staging/x86_64/libgreet/dev/usr/lib/libgreet.a"));
    let status = build_support::text(&p.run(&["status", "x86_64"]));
    let hello_line = status.lines().find(|l| l.split_whitespace().nth(1) == Some("hello")).unwrap();
    assert!(hello_line.contains("never built"), "{status}");
    assert!(status.lines().any(|l| l.contains(" libgreet ") && l.ends_with(" built")), "{status}");

    // The next build brings hello back (from the shared-state cache: same inputs, same bytes)
    // and repacks; libgreet and bye are not touched.
    let out = p.ok(&["build", "x86_64"]);
    assert!(out.contains("hello") && out.contains("from the shared-state cache"), "{out}");
    assert_eq!(tasks_sorted(&p, "x86_64"), vec!["hello fetch", "image feed", "image pack"]);
    assert_eq!(staged_hash(&p, "x86_64", "hello"), hello_before);

    // One architecture: everything of x86_64, nothing of the tools or the toolchain.
    p.ok(&["clean", "x86_64", "--yes"]);
    for rel in ["work/x86_64", "staging/x86_64", "states/x86_64", "logs/x86_64", "output/x86_64"] {
        assert!(!exists(rel), "{rel} survived `ovm clean x86_64`");
    }
    assert!(exists("toolchain/zig") && exists("staging/tools/make") && exists("states/tools"));

    // Everything generated; sources/ stays (verified by hash, never stale).
    p.ok(&["clean", "--yes"]);
    for rel in ["work", "staging", "logs", "output", "toolchain", "states/tools", "states/toolchain"] {
        assert!(!exists(rel), "{rel} survived `ovm clean`");
    }
    assert!(exists("sources") && std::fs::read_dir(p.path().join("sources")).unwrap().count() > 0);
    ovm_relative(&p, &["build", "x86_64"]);
    assert_eq!(staged_hash(&p, "x86_64", "hello"), hello_before);
}

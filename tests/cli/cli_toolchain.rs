//! The toolchain as a project setting, and the sharp edges a new user cut themselves on:
//!
//! * `ovm build --toolchain zig` is remembered: `status`, `shell` and `spec` use zig afterwards and
//!   never start on gcc (once they said every package was stale and built gcc for an hour);
//! * `ovm pack` refuses an image with none of the project's packages built;
//! * `ovm clean` asks before deleting `toolchain/` or `output/` on a terminal, refuses without
//!   one unless `--yes`;
//! * `ovm config` prints TOML that parses back; unknown enum values fail at load at file:line:col;
//! * ARCH is positional everywhere (`ovm shell PKG ARCH`), `--arch` still accepted where it was;
//! * "did you mean" for architectures, packages and commands;
//! * `ovm boot` says how to quit qemu before qemu takes the terminal;
//! * a download interrupted into a `.part` says that it resumes.

use crate::build_support::{self, ovm_bin, text, TestProject};
use crate::engine_fixture;
use crate::fetch_support::{self, Route, Server};
use crate::terminal_support::Terminal;

use std::path::Path;
use std::process::{Command, Output};

/// `ovm -C DIR ARGS` with stdin not a terminal and without the shared mirror (these projects
/// fetch nothing of the real recipes).
fn ovm_at(dir: &Path, args: &[&str]) -> Output {
    Command::new(ovm_bin()).arg("-C").arg(dir).args(args).env_remove("OVM_MIRRORS").output().expect("running ovm")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The path: `ovm build --toolchain zig x86_64` in a project whose config says gcc, then
/// status, shell and spec — with zig, and not a byte of gcc. A later `ovm build` without the flag
/// reuses everything; a config edit after the flag is the newer choice and wins.
#[test]
fn a_toolchain_chosen_with_the_flag_serves_status_shell_and_spec_without_gcc() {
    let p = engine_fixture::project();
    let config = p.read("config/ovm.toml").replace("\nkind = \"zig\"\n", "\nkind = \"gcc\"\n");
    assert!(config.contains("\nkind = \"gcc\"\n"), "{config}");
    p.write("config/ovm.toml", &config);
    engine_fixture::bye().write(&p, "cli-toolchain");

    p.ok(&["build", "--toolchain", "zig", "x86_64"]);
    let record = p.read("states/toolchain.toml");
    assert!(record.contains("kind = \"zig\"") && record.contains("config = \"gcc\""), "{record}");

    // status: everything built (exit 0), judged against zig, and says so first.
    let out = p.run(&["status", "x86_64"]);
    let status = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        status.lines().next(),
        Some("toolchain: zig (set by ovm build --toolchain zig; config/ovm.toml says gcc)"),
        "{status}"
    );
    assert!(!status.contains("stale") && !status.contains("cross-x86_64"), "{status}");

    // shell (positional ARCH) and spec: zig's sandbox, nothing built.
    p.ok(&["shell", "bye", "x86_64", "--", "sh", "-c", "test -x /ovm/toolchain/bin/x86_64-linux-musl-cc"]);
    assert_eq!(p.tasks_run("x86_64"), Vec::<String>::new(), "the shell rebuilt something");
    let spec = stdout(&p.run(&["spec", "bye"]));
    assert!(spec.contains(&p.path().join("toolchain/zig").display().to_string()), "{spec}");

    // A build without the flag keeps the project's choice: nothing to do.
    let again = p.ok(&["build", "x86_64"]);
    assert!(again.contains("nothing to do"), "{again}");

    // No gcc anywhere: no cross domain, no gcc toolchain, no gcc sources fetched.
    for rel in ["toolchain/x86_64", "states/cross-x86_64", "work/cross-x86_64", "logs/cross-x86_64"] {
        assert!(!p.path().join(rel).exists(), "{rel} exists: the gcc toolchain was started");
    }
    let sources: Vec<String> = std::fs::read_dir(p.path().join("sources"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(
        !sources.iter().any(|s| ["gcc", "binutils", "gmp", "mpfr", "mpc", "musl"].iter().any(|g| s.starts_with(g))),
        "{sources:?}"
    );

    // The config is edited to say zig after the flag: the newer choice, still fresh; the next
    // build drops the record and the config rules alone.
    p.write("config/ovm.toml", &config.replace("\nkind = \"gcc\"\n", "\nkind = \"zig\"\n"));
    let status = stdout(&p.run(&["status", "x86_64"]));
    assert!(status.starts_with("toolchain: zig (config/ovm.toml [toolchain], edited after"), "{status}");
    p.ok(&["build", "x86_64"]);
    assert!(!p.path().join("states/toolchain.toml").exists());
    let status = stdout(&p.run(&["status", "x86_64"]));
    assert!(status.starts_with("toolchain: zig (config/ovm.toml [toolchain])\n"), "{status}");
}

/// `ovm pack x86_64` with nothing built used to write a 3 kB image that cannot boot, and succeed.
#[test]
fn pack_refuses_when_none_of_the_packages_is_built() {
    let p = TestProject::from_repo();
    let out = ovm_at(p.path(), &["pack", "x86_64"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("no package is built for x86_64")
            && msg.contains("ovm build x86_64")
            && msg.contains("--allow-empty"),
        "{msg}"
    );
    assert!(!p.path().join("output/x86_64").exists(), "an image was written");
    let out = ovm_at(p.path(), &["pack", "x86_64", "--allow-empty"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(p.path().join("output/x86_64/initrd.cpio.gz").is_file());
}

/// A project with a toolchain, an image and a recorded toolchain choice, all made by hand.
fn cleanable() -> TestProject {
    let p = TestProject::empty();
    for rel in ["toolchain/zig/bin/zig", "output/x86_64/initrd.cpio.gz", "work/x86_64/a/x", "states/x86_64/a.fetch"] {
        p.write(rel, "x");
    }
    p.write("states/toolchain.toml", "kind = \"zig\"\nconfig = \"gcc\"\n");
    p
}

/// Without a terminal nobody can answer: refused, naming `--yes`, nothing removed; with `--yes`
/// everything generated goes but the toolchain setting. A clean that touches neither toolchain/
/// nor output/ does not ask.
#[test]
fn clean_without_a_terminal_refuses_unless_yes() {
    let p = cleanable();
    let exists = |rel: &str| p.path().join(rel).exists();
    for args in [&["clean"][..], &["clean", "x86_64"]] {
        let out = ovm_at(p.path(), args);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {msg}");
        assert!(msg.contains("--yes") && msg.contains("not a terminal") && msg.contains("output/"), "{msg}");
        assert!(exists("toolchain/zig/bin/zig") && exists("output/x86_64") && exists("work/x86_64/a/x"));
    }
    let msg = text(&ovm_at(p.path(), &["clean"]));
    assert!(msg.contains("toolchain/ and output/"), "{msg}");

    let out = ovm_at(p.path(), &["clean", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    for rel in ["toolchain", "output", "work", "states/x86_64"] {
        assert!(!exists(rel), "{rel} survived `ovm clean --yes`");
    }
    assert!(exists("states/toolchain.toml"), "the toolchain setting is not a build product");

    // Nothing precious left: no question.
    p.write("work/x86_64/a/x", "x");
    let out = ovm_at(p.path(), &["clean"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!exists("work"));
}

/// On a terminal `ovm clean` lists what it would delete and asks; anything but yes keeps it.
#[test]
fn clean_on_a_terminal_asks_first() {
    let p = cleanable();
    let clean = || {
        let mut c = Command::new(ovm_bin());
        c.arg("-C").arg(p.path()).arg("clean");
        c
    };
    let mut t = Terminal::spawn(clean());
    let at = t.expect(&p.path().join("toolchain").display().to_string(), 0);
    t.expect("Delete them? [y/N] ", at);
    t.type_line("n");
    assert_eq!(t.wait(), Some(1), "{}", t.screen());
    assert!(t.screen().contains("nothing removed"), "{}", t.screen());
    assert!(p.path().join("toolchain/zig/bin/zig").exists() && p.path().join("output/x86_64").exists());

    let mut t = Terminal::spawn(clean());
    t.expect("Delete them? [y/N] ", 0);
    t.type_line("y");
    assert_eq!(t.wait(), Some(0), "{}", t.screen());
    assert!(!p.path().join("toolchain").exists() && !p.path().join("output").exists(), "{}", t.screen());
}

/// `ovm config` printed a Rust Debug dump; it prints TOML now, which parses back to the same
/// configuration, defaults included.
#[test]
fn config_prints_toml_that_parses_back() {
    let p = TestProject::from_repo();
    let out = ovm_at(p.path(), &["config"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = stdout(&out);
    assert!(!printed.contains("Config {"), "a Debug dump:\n{printed}");
    let parsed: ovm::project::Config = toml::from_str(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
    let project = ovm::project::Project::open(p.path()).unwrap();
    assert_eq!(format!("{parsed:?}"), format!("{:?}", project.config), "{printed}");
    assert!(printed.contains("[toolchain]\nkind = \"zig\"") && printed.contains("compress = \"gzip\""), "{printed}");
}

/// `compress = "bzip2"` was accepted and failed only at the first pack; `kind = "clang"` gave the
/// parser's report without the file. Both fail when the config is loaded, at file:line:column.
#[test]
fn unknown_config_values_fail_at_load_with_file_line_and_column() {
    let p = TestProject::empty();
    let file = p.path().join("config/ovm.toml");
    for (config, at, word) in
        [("[pack]\ncompress = \"bzip2\"\n", ":2:12: ", "bzip2"), ("[toolchain]\nkind = \"clang\"\n", ":2:8: ", "clang")]
    {
        p.write("config/ovm.toml", config);
        for args in [&["config"][..], &["status", "x86_64"]] {
            let out = ovm_at(p.path(), args);
            let msg = text(&out);
            assert!(!out.status.success(), "{args:?}: {msg}");
            assert!(msg.contains(&format!("{}{at}", file.display())) && msg.contains(word), "{args:?}: {msg}");
        }
    }
}

/// ARCH is positional for every command; `--arch` (shell and spec had only that) still works and
/// means the same; both at once is a usage error.
#[test]
fn arch_is_positional_for_spec_and_shell_too() {
    let p = TestProject::from_repo();
    let positional = ovm_at(p.path(), &["spec", "busybox", "aarch64"]);
    assert!(positional.status.success(), "{}", text(&positional));
    let flag = ovm_at(p.path(), &["spec", "busybox", "--arch", "arm64"]);
    assert_eq!(stdout(&positional), stdout(&flag));
    assert!(stdout(&positional).contains("aarch64-linux-musl"), "{}", stdout(&positional));
    assert_ne!(stdout(&positional), stdout(&ovm_at(p.path(), &["spec", "busybox"])), "ARCH was ignored");
    let both = ovm_at(p.path(), &["spec", "busybox", "aarch64", "--arch", "x86_64"]);
    assert_eq!(both.status.code(), Some(2), "{}", text(&both));
    // shell parses the same way (the usage error comes before any build).
    let out = ovm_at(p.path(), &["shell", "busybox", "arm64x", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("'aarch64'"), "{}", text(&out));
}

/// A mistyped architecture, package or command gets a suggestion wherever it is typed.
#[test]
fn typos_get_a_did_you_mean() {
    let p = TestProject::from_repo();
    for (args, hint) in [
        (&["build", "x86-65"][..], "a similar value exists: 'x86_64'"),
        (&["status", "arm64x"], "a similar value exists: 'aarch64'"),
        (&["pack", "amd46"], "a similar value exists: 'x86_64'"),
        (&["biuld", "x86_64"], "a similar subcommand exists: 'build'"),
        (&["download", "busybx"], "no recipe named `busybx` (did you mean busybox?)"),
        (&["download", "x86-65"], "(did you mean the architecture x86_64?)"),
        (&["clean", "arm64x"], "(did you mean the architecture aarch64?)"),
        (&["shell", "busyboxx", "--", "true"], "no recipe named `busyboxx` (did you mean busybox?)"),
        (&["spec", "mkae"], "(did you mean make?)"),
        (&["build", "x86_64", "busybx"], "(did you mean busybox?)"),
    ] {
        let out = ovm_at(p.path(), args);
        let msg = text(&out);
        assert!(!out.status.success() && msg.contains(hint), "ovm {args:?}:\n{msg}");
    }
    // Far from everything: no made-up suggestion.
    let msg = text(&ovm_at(p.path(), &["download", "riscv64"]));
    assert!(msg.contains("no recipe named `riscv64`") && !msg.contains("did you mean"), "{msg}");
}

/// On a terminal `ovm boot` says how to quit before qemu takes it over — and that key quits. Not
/// on a terminal (scripts, `--expect`) it says nothing of the kind.
#[test]
fn boot_says_how_to_quit_before_qemu_takes_the_terminal() {
    build_support::require_tool("qemu-system-x86_64");
    let kernel = build_support::repo_root().join(".cache/test-assets/x86_64/vmlinuz");
    assert!(kernel.is_file(), "{} is missing: {}", kernel.display(), build_support::SETUP_HINT);
    let p = TestProject::empty();
    p.write("initrd.img", "not a real initrd: the test quits before the kernel reads it");
    let args = |c: &mut Command| {
        c.arg("-C").arg(p.path()).args(["boot", "x86_64", "--kernel"]).arg(&kernel);
        c.arg("--initrd").arg(p.path().join("initrd.img"));
    };
    let mut c = Command::new(ovm_bin());
    args(&mut c);
    let mut t = Terminal::spawn(c);
    t.expect("to quit qemu press Ctrl-A, then X", 0);
    t.send(b"\x01x");
    t.wait();
    assert!(t.screen().contains("QEMU: Terminated"), "Ctrl-A X did not quit qemu:\n{}", t.screen());

    let mut c = Command::new(ovm_bin());
    args(&mut c);
    let out = c.arg("--timeout").arg("1").output().expect("running ovm boot");
    assert!(!text(&out).contains("Ctrl-A"), "{}", text(&out));
}

/// Ctrl-C during a download leaves `sources/FILE.part`; the next run continues it with a Range
/// request — and now says so.
#[test]
fn an_interrupted_download_says_it_resumes() {
    let body = fetch_support::content(600_000, 7);
    let server = Server::start();
    server.route("/resume-1.0.tar.gz", Route::ok(&body));
    let p = TestProject::empty();
    p.write(
        "recipes/resume.toml",
        &format!(
            "name = \"resume\"\nversion = \"1.0\"\nlicense = \"MIT\"\ndescription = \"a download\"\n\n\
             [[source]]\nurl = \"{}\"\nsha256 = \"{}\"\n\n[build]\nstyle = \"custom\"\ncompile = \"true\"\n",
            server.url("/resume-1.0.tar.gz"),
            fetch_support::sha256(&body)
        ),
    );
    std::fs::create_dir_all(p.path().join("sources")).unwrap();
    std::fs::write(p.path().join("sources/resume-1.0.tar.gz.part"), &body[..250_000]).unwrap();

    let out = ovm_at(p.path(), &["download", "resume"]);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(msg.contains("resuming resume-1.0.tar.gz at 244.14 KiB"), "{msg}");
    assert_eq!(server.requests().last().and_then(|r| r.range.clone()).as_deref(), Some("bytes=250000-"));
    assert_eq!(std::fs::read(p.path().join("sources/resume-1.0.tar.gz")).unwrap(), body);
}

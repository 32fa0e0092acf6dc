//! `ovm shell busybox`: a command, or an interactive shell on a terminal, inside exactly the
//! sandbox busybox's compile step runs in — no host /usr, the cross compiler in the environment,
//! the build dir as the working directory — and back out with the shell's exit status.

use crate::build_support;
use crate::terminal_support;

use std::sync::Mutex;
use std::time::Duration;

use build_support::{text, TestProject};
use terminal_support::Terminal;

/// Serialises the first `ovm shell` of each test: on a cold shared-state cache the first one
/// builds the build tools, and the second should find them there rather than build them too.
static PREPARE: Mutex<()> = Mutex::new(());

/// A clean project with busybox prepared up to `patch` for `arch` (what `ovm shell` does first).
fn prepared(arch: &str) -> TestProject {
    let _one_at_a_time = PREPARE.lock().unwrap_or_else(|e| e.into_inner());
    let p = TestProject::from_repo();
    p.ok(&["shell", "busybox", "--arch", arch, "--", "true"]);
    p
}

#[test]
fn shell_command_runs_in_the_build_sandbox() {
    let p = prepared("x86_64");
    assert!(std::path::Path::new("/usr/bin").is_dir(), "positive control: the host has a /usr");
    let out = p.run(&["shell", "busybox", "--", "sh", "-c", "ls /usr; echo $CC; pwd"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ovm shell failed:\n{}", text(&out));
    assert_eq!(stdout, "x86_64-linux-musl-cc\n/ovm/build\n", "stderr:\n{stderr}");
    assert!(stderr.contains("ls: /usr: No such file or directory"), "the host's /usr is visible:\n{stderr}");

    // The command's own status comes back, and the other architecture's sandbox has its compiler.
    let out = p.run(&["shell", "busybox", "--", "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let p = prepared("aarch64");
    let out = p.run(&["shell", "busybox", "--arch", "aarch64", "--", "sh", "-c", "echo $CC; ls /ovm/src/Makefile"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "aarch64-linux-musl-cc\n/ovm/src/Makefile\n");
}

#[test]
fn interactive_shell_on_a_terminal() {
    let p = prepared("x86_64");
    let mut cmd = p.ovm();
    cmd.args(["shell", "busybox"]);
    let mut term = Terminal::spawn(cmd);
    let wait = Duration::from_secs(120);
    let prompt = "[ovm x86_64 busybox] /ovm/build # ";
    let at = term.expect_within(prompt, 0, wait);

    // A command whose output differs from its echo, a file left in the build dir, a cd.
    term.type_line("echo OUT-$((6*7)) in $(pwd) as $(id -u); touch left-by-shell; cd /ovm/src");
    let at = term.expect_within("OUT-42 in /ovm/build as 0", at, wait);
    let at = term.expect_within("[ovm x86_64 busybox] /ovm/src # ", at, wait);
    term.type_line("exit 7");
    term.expect_within("exit 7", at, wait);
    assert_eq!(term.wait_within(wait), Some(7), "ovm shell did not return the shell's status:\n{}", term.screen());

    let screen = term.screen();
    assert!(!screen.contains("job control turned off"), "the shell has no job control:\n{screen}");
    assert!(
        p.path().join("work/x86_64/busybox/build/left-by-shell").is_file(),
        "a file made in the shell's build dir did not stay"
    );
}

/// The attack: a program in `ovm shell` pushes a command into its terminal (TIOCSTI) and exits.
/// `ovm shell` gives the sandbox a pty of its own, so the command never reaches the shell `ovm
/// shell` was started from; that outer shell also gets the exit status and its terminal back in
/// its own mode (`ovm shell`'s prompt and `exit 7` are in `interactive_shell_on_a_terminal`).
#[test]
fn input_injected_in_the_shell_never_reaches_the_callers_shell() {
    let p = prepared("x86_64");
    // A static probe, put in the build dir (bound at /ovm/build) once the shell is up.
    let probe = p.path().join("inject-probe");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sandbox/probe.c");
    let cc = std::process::Command::new("cc").args(["-static", "-O2", "-o"]).arg(&probe).arg(src).output();
    assert!(cc.is_ok_and(|o| o.status.success()), "cc -static probe.c: run scripts/setup.sh");
    let marker = p.path().join("INJECTED");

    let ovm = p.ovm();
    let mut outer = std::process::Command::new("/bin/sh");
    outer.arg("-i").env("PS1", "outer$ ");
    for (key, value) in ovm.get_envs() {
        match value {
            Some(v) => outer.env(key, v),
            None => outer.env_remove(key),
        };
    }
    let quoted = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy());
    let mut line: Vec<String> = vec![quoted(ovm.get_program())];
    line.extend(ovm.get_args().map(quoted));
    line.extend(["shell".into(), "busybox".into()]);

    let mut term = Terminal::spawn(outer);
    let wait = Duration::from_secs(120);
    let at = term.expect_within("outer$ ", 0, wait);
    term.type_line(&line.join(" "));
    let at = term.expect_within("[ovm x86_64 busybox] /ovm/build # ", at, wait);
    std::fs::copy(&probe, p.path().join("work/x86_64/busybox/build/inject-probe")).expect("copying the probe");
    // The probe replaces the sandbox's shell, so what it injects is left for whoever reads the
    // terminal next once `ovm shell` is over: on the caller's terminal, the caller's shell.
    term.type_line(&format!("exec ./inject-probe tty 'echo INJECTED > {}'", marker.display()));
    let at = term.expect_within("TIOCSTI: ", at, wait);
    let at = term.expect_within("outer$ ", at, wait);
    // Injected bytes would be read by the outer shell before this line.
    term.type_line("echo status=$?");
    let at = term.expect_within("echo status=$?", at, wait);
    term.expect_within("status=0", at, wait);
    assert!(
        !marker.exists(),
        "ISOLATION BROKEN: input injected in `ovm shell` ran in the caller's shell:\n{}",
        term.screen()
    );
    term.type_line("exit");
    term.wait_within(wait);
}

//! Terminals: the sandbox never holds the caller's terminal. Without `--tty` it has no controlling
//! terminal; with `--tty` it gets a pty of its own, which ovm relays, and an interactive shell in
//! it has job control, Ctrl-C, window size and exit status. Either way nothing inside can push
//! input into the caller's shell (TIOCSTI), and ovm's seccomp filter refuses TIOCSTI and TIOCLINUX
//! as a second wall. The tests run ovm on a new pty (`sandbox_support::terminal`), as a user's
//! terminal would, and wait for what the screen shows.

use crate::sandbox_support;
use crate::terminal_support;

use std::path::Path;
use std::time::Duration;

use nix::sys::termios::{tcgetattr, LocalFlags};
use sandbox_support::*;
use terminal_support::Terminal;

fn probe_args(extra: &str, inject: &str) -> String {
    let f = fixtures();
    format!("{} sandbox {extra} --ro {}:/probe -- /probe tty {inject}", f.ovm.display(), f.probe.display())
}

/// The probe's `what:` line on the screen, once it shows.
fn screen_line(term: &Terminal, what: &str) -> String {
    let at = term.expect(&format!("{what}: "), 0);
    let screen = term.screen();
    screen[at..].lines().next().unwrap_or_default().to_string()
}

/// `ovm sandbox [extra] -- /probe tty` run directly on a new pty, as `who`.
fn probe_on_terminal(who: As, extra: &[&str]) -> Terminal {
    let f = fixtures();
    let mut cmd = command_as(who, &f.ovm);
    cmd.arg("sandbox").args(extra).arg("--ro").arg(format!("{}:/probe", f.probe.display()));
    cmd.args(["--", "/probe", "tty"]);
    let mut term = Terminal::spawn(cmd);
    assert_eq!(term.wait(), Some(0), "the probe failed:\n{}", term.screen());
    term
}

#[test]
fn without_tty_the_sandbox_cannot_reach_the_callers_terminal() {
    for who in [As::Root, As::Unprivileged] {
        let term = probe_on_terminal(who, &[]);
        let text = term.screen();
        assert!(text.contains("open /dev/tty: DENIED ENXIO"), "the sandbox still has a controlling terminal: {text}");
        assert!(text.contains("TIOCSTI: DENIED"), "TIOCSTI injected input into the caller's terminal: {text}");
        assert!(
            screen_line(&term, "TIOCLINUX").contains("DENIED EPERM"),
            "the seccomp filter let TIOCLINUX by: {text}"
        );
    }
}

#[test]
fn with_tty_the_sandbox_gets_a_terminal_of_its_own() {
    for who in [As::Root, As::Unprivileged] {
        let term = probe_on_terminal(who, &["--tty"]);
        let text = term.screen();
        // Positive control: the command has a controlling terminal (the shell's job control needs it)…
        assert!(text.contains("open /dev/tty: ALLOWED"), "--tty gave the sandbox no terminal: {text}");
        // … but it is not the caller's.
        let inside = screen_line(&term, "stdin tty");
        assert!(!inside.is_empty() && inside != "none", "the command's stdin is not a terminal: {text}");
        assert_ne!(inside, term.rdev, "ISOLATION BROKEN: the sandbox holds the caller's terminal {}", term.rdev);
        // The second wall: the pty is its controlling terminal, so only the filter can refuse these.
        assert!(screen_line(&term, "TIOCSTI").contains("DENIED EPERM"), "TIOCSTI was not refused: {text}");
        assert!(screen_line(&term, "TIOCLINUX").contains("DENIED EPERM"), "TIOCLINUX was not refused: {text}");
    }
}

/// The attack: a command in the sandbox pushes `echo INJECTED > FILE` into its terminal; if that is
/// the caller's, the caller's shell runs it after ovm exits. It must never run, with `--tty` or not.
#[test]
fn injected_input_never_reaches_the_callers_shell() {
    for who in [As::Root, As::Unprivileged] {
        for extra in ["", "--tty"] {
            let dir = owned_dir(who, "inject");
            let file = dir.join("INJECTED");
            let mut shell = command_as(who, Path::new("/bin/sh"));
            shell.arg("-i").env("PS1", "outer$ ");
            let mut term = Terminal::spawn(shell);
            let at = term.expect("outer$ ", 0);
            term.type_line(&probe_args(extra, &format!("'echo INJECTED > {}'", file.display())));
            let at = term.expect("TIOCSTI: ", at);
            let at = term.expect("outer$ ", at);
            // The caller's shell reads its input in order: injected bytes would come before this line.
            term.type_line("echo DONE-$((6*7))");
            // The line's echo shows the terminal is back in its own (cooked) mode after the relay.
            let at = term.expect("echo DONE-$((6*7))", at);
            term.expect("DONE-42", at);
            assert!(
                !file.exists(),
                "ISOLATION BROKEN ({who:?}, `ovm sandbox {extra}`): input injected in the sandbox ran in the caller's shell:\n{}",
                term.screen()
            );
            term.type_line("exit");
            term.wait();
        }
    }
}

#[test]
fn interactive_shell_with_tty_has_job_control_ctrl_c_resize_and_exit_status() {
    for who in [As::Root, As::Unprivileged] {
        let mut cmd = command_as(who, &fixtures().ovm);
        cmd.args(["sandbox", "--tty", "--ro", "/bin/busybox:/bin/busybox", "--env", "PS1=ovm$ ", "--env", "PATH=/bin"]);
        cmd.args(["--", "/bin/busybox", "sh", "-i"]);
        let mut term = Terminal::spawn(cmd);
        let mut at = term.expect("ovm$ ", 0);

        // Job control: Ctrl-Z stops the foreground job, `jobs` lists it. The job says when it runs
        // (RE''ADY: the typed line's echo does not match); until then the shell may still be in
        // the foreground, where Ctrl-Z does nothing, so it is sent until the job is stopped.
        term.type_line("/bin/busybox sh -c 'echo STOP-RE''ADY; exec /bin/busybox sleep 100'");
        at = term.expect("STOP-READY", at);
        let deadline = std::time::Instant::now() + terminal_support::PATIENCE;
        while !term.screen()[at..].contains("Stopped") {
            assert!(std::time::Instant::now() < deadline, "Ctrl-Z did not stop the job:\n{}", term.screen());
            term.send(b"\x1a");
            std::thread::sleep(Duration::from_millis(200));
        }
        term.type_line("jobs");
        at = term.expect("Stopped", term.expect("jobs", at));
        term.type_line("kill -9 %1");
        at = term.expect("ovm$ ", at);

        // Ctrl-C interrupts the foreground job, not the shell.
        term.type_line("/bin/busybox sh -c 'echo INT-RE''ADY; exec /bin/busybox sleep 100'");
        at = term.expect("INT-READY", at);
        term.send(b"\x03");
        term.type_line("echo status=$?");
        at = term.expect("status=130", at);

        // The window size reaches the sandbox's terminal when the caller's changes (SIGWINCH).
        term.resize(33, 77);
        term.type_line("/bin/busybox stty size");
        at = term.expect("33 77", at);

        term.type_line("exit 7");
        term.expect("exit 7", at);
        assert_eq!(term.wait(), Some(7), "ovm did not pass the shell's exit status through:\n{}", term.screen());
        let screen = term.screen();
        assert!(!screen.contains("job control turned off"), "the shell has no job control:\n{screen}");
        // The caller's terminal is out of raw mode again.
        let modes = tcgetattr(term.master()).expect("tcgetattr").local_flags;
        assert!(modes.contains(LocalFlags::ECHO | LocalFlags::ICANON), "the terminal was left raw: {modes:?}");
    }
}

#[test]
fn without_a_controlling_terminal_the_terminal_on_stdio_is_still_out_of_reach() {
    // ovm skips setsid when its caller has no controlling terminal; stdio may still be a terminal
    // (here: `setsid` detaches ovm from the pty, which stays its stdin/stdout).
    for who in [As::Root, As::Unprivileged] {
        let f = fixtures();
        let mut cmd = command_as(who, Path::new("/usr/bin/setsid"));
        cmd.arg("--wait").arg(&f.ovm).arg("sandbox").arg("--ro").arg(format!("{}:/probe", f.probe.display()));
        cmd.args(["--", "/probe", "tty"]);
        let mut term = Terminal::spawn(cmd);
        assert_eq!(term.wait(), Some(0), "the probe failed:\n{}", term.screen());
        let text = term.screen();
        assert!(text.contains("open /dev/tty: DENIED ENXIO"), "the sandbox has a controlling terminal: {text}");
        assert!(text.contains("TIOCSTI: DENIED"), "TIOCSTI injected input into the terminal: {text}");
    }
}

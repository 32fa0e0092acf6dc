//! Terminals: without `--tty` the sandbox has no controlling terminal, so it cannot inject input
//! into the caller's (TIOCSTI); with `--tty` an interactive shell gets job control. `script`
//! provides the pseudo-terminal, as a user's terminal would.

mod sandbox_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sandbox_support::*;

/// Run `command` under `script` (a new pty as controlling terminal), feeding `input` slowly.
fn in_terminal(who: As, command: &str, input: &[&str]) -> String {
    let mut cmd = command_as(who, Path::new("/usr/bin/script"));
    cmd.args(["--quiet", "--return", "--command", command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("script: {e}: run scripts/setup.sh (bsdutils)"));
    let mut stdin = child.stdin.take().unwrap();
    for line in input {
        std::thread::sleep(Duration::from_millis(300));
        stdin.write_all(line.as_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn probe_command(extra: &str) -> String {
    let f = fixtures();
    format!("{} sandbox {extra} --ro {}:/probe -- /probe tty", f.ovm.display(), f.probe.display())
}

#[test]
fn without_tty_the_sandbox_cannot_reach_the_callers_terminal() {
    for who in [As::Root, As::Unprivileged] {
        let text = in_terminal(who, &probe_command(""), &[]);
        assert!(text.contains("open /dev/tty: DENIED ENXIO"), "the sandbox still has a controlling terminal: {text}");
        assert!(text.contains("TIOCSTI: DENIED"), "TIOCSTI injected input into the caller's terminal: {text}");
        // Positive control: the same probe, with the terminal passed through, reaches it.
        let text = in_terminal(who, &probe_command("--tty"), &[]);
        assert!(text.contains("open /dev/tty: ALLOWED"), "--tty did not pass the terminal through: {text}");
    }
}

#[test]
fn interactive_shell_gets_job_control_with_tty() {
    for who in [As::Root, As::Unprivileged] {
        let command = format!(
            "{} sandbox --tty --ro /bin/busybox:/bin/busybox --env PS1=ovm$ --env PATH=/bin -- /bin/busybox sh -i",
            fixtures().ovm.display()
        );
        let text = in_terminal(
            who,
            &command,
            &["/bin/busybox sleep 30 &\n", "jobs\n", "kill %1\n", "echo JOBS-DONE-$((6*7))\n", "exit\n"],
        );
        assert!(!text.contains("job control turned off"), "the shell has no job control: {text}");
        assert!(text.contains("[1]") && text.contains("sleep 30"), "`jobs` did not list the background job: {text}");
        assert!(text.contains("JOBS-DONE-42"), "the shell did not run the input: {text}");
    }
    let _ = Command::new("true");
}

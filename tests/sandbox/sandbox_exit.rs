//! Exit statuses, signals and process lifetime: the command's status passes through (128+N for a
//! signal), setup failures are 125 and exec failures 126/127, ovm dying takes the whole sandbox
//! with it, orphans are reaped, and the engine's way of starting sandboxes (a `Command` from a
//! multi-threaded process, output to log files, a jobserver pipe passed through) works.

use crate::sandbox_support;

use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sandbox_support::*;

fn status_of(who: As, probe_args: &[&str]) -> Option<i32> {
    probe(who, &[], probe_args).status.code()
}

#[test]
fn exit_status_passes_through() {
    for who in [As::Root, As::Unprivileged] {
        for code in ["0", "1", "42"] {
            assert_eq!(status_of(who, &["exit", code]), code.parse().ok(), "exit {code} as {who:?}");
        }
    }
}

#[test]
fn death_by_signal_is_128_plus_the_signal() {
    for who in [As::Root, As::Unprivileged] {
        for (sig, code) in [("9", 137), ("15", 143), ("11", 139)] {
            assert_eq!(status_of(who, &["signal", sig]), Some(code), "signal {sig} as {who:?}");
        }
    }
}

#[test]
fn command_not_found_is_127() {
    let out = run(ovm(As::Root, &["sandbox", "--", "/no/such/program"]));
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("/no/such/program: command not found"), "{}", stderr(&out));
    let out = run(ovm(As::Root, &["sandbox", "--env", "PATH=/bin:/usr/bin", "--", "nosuchcommand"]));
    assert_eq!(out.status.code(), Some(127), "PATH search: {}", stderr(&out));
}

#[test]
fn command_not_executable_is_126() {
    let file = fixtures().dir.join("not-executable");
    fs::write(&file, "#!/bin/busybox sh\ntrue\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let bind = format!("{}:/script", file.display());
    let out = run(ovm(As::Root, &["sandbox", "--ro", &bind, "--", "/script"]));
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(stderr(&out).contains("EACCES"), "{}", stderr(&out));
}

#[test]
fn setup_failures_are_125_and_name_the_cause() {
    let out = run(ovm(As::Root, &["sandbox", "--ro", "/does/not/exist:/x", "--", "/bin/true"]));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("/does/not/exist") && stderr(&out).contains("ENOENT"), "{}", stderr(&out));
    let out = run(ovm(As::Unprivileged, &["sandbox", "--cwd", "/nowhere", "--", "/bin/true"]));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("working directory /nowhere"), "{}", stderr(&out));
}

#[test]
fn orphaned_zombies_are_reaped() {
    for who in [As::Root, As::Unprivileged] {
        let out = probe(who, &[], &["zombies"]);
        assert_eq!(line(&out, "zombies"), "zombies: 0", "pid 1 left an orphan unreaped (as {who:?})");
    }
}

/// Processes whose parent is `pid`, recursively.
fn descendants(pid: i32) -> Vec<i32> {
    let mut parents = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        if let Some(ppid) = rest.split(' ').nth(1).and_then(|p| p.parse::<i32>().ok()) {
            parents.push((child, ppid));
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(child, ppid) in &parents {
            if ppid == p {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => stat.rfind(')').and_then(|i| stat[i + 2..].chars().next()).is_some_and(|state| state != 'Z'),
    }
}

/// How long a sandbox may take to start or to go: a bound for a loaded 2-core machine, never an
/// expected time. What the tests assert is that nothing is left, not how fast: the kernel ends a
/// pid namespace's processes as soon as its init dies (milliseconds on an idle machine).
const PATIENCE: Duration = Duration::from_secs(30);

/// Start `ovm sandbox … busybox sleep 1000` as `who` and wait until init and sleep exist.
fn start_sleeper(who: As) -> (Child, Vec<i32>) {
    let mut child = ovm(who, &["sandbox", "--ro", "/bin/busybox:/bin/busybox", "--", "/bin/busybox", "sleep", "1000"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let procs = descendants(child.id() as i32);
        let sleeping =
            procs.iter().any(|p| fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "busybox"));
        // With setpriv in front (unprivileged runs), ovm is exec'd in the same process.
        if sleeping && procs.len() >= 2 {
            return (child, procs);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("ovm exited early: {status}");
        }
        assert!(Instant::now() < deadline, "the sandboxed sleep did not start within {PATIENCE:?}: {procs:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until ovm has exited and none of `procs` is alive, polling; fails (killing what is left)
/// if that has not happened within [`PATIENCE`].
fn assert_all_gone(ovm: &mut Child, procs: &[i32], what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        let status = ovm.try_wait().unwrap();
        let left: Vec<i32> = procs.iter().copied().filter(|&p| alive(p)).collect();
        if let (Some(status), true) = (status, left.is_empty()) {
            return status;
        }
        if start.elapsed() > PATIENCE {
            let _ = ovm.kill();
            for p in &left {
                let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
            }
            panic!("{what}: processes left behind after {PATIENCE:?}: {left:?} (ovm exited: {status:?})");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_to_ovm_ends_the_whole_sandbox() {
    for who in [As::Root, As::Unprivileged] {
        let (mut child, procs) = start_sleeper(who);
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        let status = assert_all_gone(&mut child, &procs, "SIGTERM");
        // The signal was forwarded, so the command's death by SIGTERM is ovm's status.
        assert_eq!(status.code(), Some(143), "as {who:?}: {status}");
    }
}

#[test]
fn sigkill_to_ovm_ends_the_whole_sandbox() {
    for who in [As::Root, As::Unprivileged] {
        let (mut child, procs) = start_sleeper(who);
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        assert_all_gone(&mut child, &procs, "SIGKILL (no chance to forward)");
    }
}

#[test]
fn engine_style_commands_run_from_threads_with_logs_and_a_jobserver_pipe() {
    let exe = Path::new(env!("CARGO_BIN_EXE_ovm"));
    let logs = tempfile::tempdir().unwrap();
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let log = logs.path().join(format!("{i}.log"));
            std::thread::spawn(move || {
                // Like a jobserver: a pipe whose write end the sandboxed command inherits.
                let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
                let fd = write_end.as_raw_fd();
                let script = format!("echo token-{i} >&{fd}; echo log-{i}; echo err-{i} >&2; exit {i}");
                let spec = ovm::sandbox::SandboxBuilder::new(["/bin/busybox", "sh", "-c", &script])
                    .ro_bind("/bin/busybox", "/bin/busybox")
                    .preserve_fds(&[fd])
                    .build()
                    .unwrap();
                let file = fs::File::create(&log).unwrap();
                let status = ovm::sandbox::command_with_exe(exe, &spec)
                    .unwrap()
                    .stdout(file.try_clone().unwrap())
                    .stderr(file)
                    .status()
                    .unwrap();
                drop(write_end);
                let mut token = String::new();
                fs::File::from(read_end).read_to_string(&mut token).unwrap();
                (i, status.code(), token, fs::read_to_string(&log).unwrap())
            })
        })
        .collect();
    for h in handles {
        let (i, code, token, log) = h.join().unwrap();
        assert_eq!(code, Some(i), "exit status of sandbox {i}; log: {log}");
        assert_eq!(token.trim(), format!("token-{i}"), "the preserved pipe did not reach sandbox {i}; log: {log}");
        assert!(log.contains(&format!("log-{i}")) && log.contains(&format!("err-{i}")), "log of {i}: {log}");
    }
}

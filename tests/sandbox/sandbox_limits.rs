//! Resource limits: a fork bomb and a memory hog in `ovm sandbox` end with an error naming the limit
//! they hit, and leave nothing behind. As root this host enforces them with cgroup v1 (its pids and
//! memory controllers are v1 hierarchies; the cgroup2 mount has none), as the unprivileged user with
//! rlimits (RLIMIT_NPROC, RLIMIT_DATA). Delegated cgroup v2 is not available here: its detection
//! and its sequence of steps are unit-tested in `src/sandbox/limits.rs`.
//!
//! Every attack is bounded (2000 background sleeps, 512 MiB), so a broken limit fails the test
//! instead of taking the host down.

use crate::sandbox_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sandbox_support::*;

/// Processes whose command line is exactly `words` (NUL-separated in /proc).
fn running(words: &[&str]) -> Vec<i32> {
    let wanted: Vec<u8> = words.iter().flat_map(|w| w.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

/// Waits (at most 30 s, a bound no healthy run comes near) until no such process is left.
fn assert_none_left(words: &[&str]) {
    let start = Instant::now();
    while !running(words).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(30), "left running after the sandbox: {:?}", running(words));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The cgroup v1 group ovm (pid `pid`) makes below this process's group in `controller`.
fn v1_group(controller: &str, pid: u32) -> PathBuf {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = own
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
            list.split(',').any(|c| c == controller).then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no cgroup v1 {controller} hierarchy on this host"));
    PathBuf::from(format!("/sys/fs/cgroup/{controller}{}/ovm/{pid}", path.trim_end_matches('/')))
}

/// Runs `ovm sandbox` with `args` as `who`; returns its output and pid (the name of its group).
fn sandbox(who: As, args: &[&str]) -> (std::process::Output, u32) {
    let f = fixtures();
    let probe_bind = format!("{}:/probe", f.probe.display());
    let busybox_bind = format!("{BUSYBOX}:{BUSYBOX}");
    let mut all = vec!["sandbox", "--ro", &probe_bind, "--ro", &busybox_bind];
    all.extend_from_slice(args);
    let child = ovm(who, &all)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning ovm sandbox");
    let pid = child.id();
    (child.wait_with_output().expect("waiting for ovm sandbox"), pid)
}

both!(fork_bomb_ends_naming_the_pids_limit, |who| {
    let mark = if who == As::Root { "9871" } else { "9872" };
    let bomb = format!(
        "i=0; while [ $i -lt 2000 ]; do /bin/busybox sleep {mark} & i=$((i+1)); done; echo survived 2000 forks; wait"
    );
    let (out, pid) = sandbox(who, &["--pids-max", "64", "--", "/bin/busybox", "sh", "-c", &bomb]);
    let err = stderr(&out);
    assert!(!out.status.success(), "the fork bomb was not stopped:\n{err}");
    assert!(!stdout(&out).contains("survived"), "2000 processes ran under a limit of 64:\n{err}");
    assert!(err.contains("can't fork"), "the shell did not meet the limit:\n{err}");
    match who {
        As::Root => {
            assert!(err.contains("hit the sandbox's pids limit (pids.max=64, cgroup v1)"), "{err}");
            assert_eq!(out.status.code(), Some(2), "the shell's own status passes through");
            for controller in ["pids", "memory"] {
                let group = v1_group(controller, pid);
                assert!(!group.exists(), "the sandbox's cgroup {} was left behind", group.display());
            }
        }
        As::Unprivileged => assert!(err.contains("under the rlimits RLIMIT_NPROC=64"), "{err}"),
    }
    assert_none_left(&["/bin/busybox", "sleep", mark]);
});

both!(memory_hog_ends_naming_the_memory_limit, |who| {
    let (out, pid) = sandbox(who, &["--memory-max", "64M", "--", "/probe", "hog", "512"]);
    let err = stderr(&out);
    assert!(!stdout(&out).contains("hog: ALLOWED"), "512 MiB allocated under a 64M limit:\n{err}");
    match who {
        As::Root => {
            assert_eq!(out.status.code(), Some(137), "the OOM killer's SIGKILL passes through: {err}");
            assert!(err.contains("hit the sandbox's memory limit (memory.limit_in_bytes=64M, cgroup v1)"), "{err}");
            for controller in ["pids", "memory"] {
                let group = v1_group(controller, pid);
                assert!(!group.exists(), "the sandbox's cgroup {} was left behind", group.display());
            }
        }
        As::Unprivileged => {
            assert!(line(&out, "hog").contains("DENIED ENOMEM"), "{}", stdout(&out));
            assert!(err.contains("RLIMIT_DATA=64M"), "{err}");
        }
    }
});

both!(limits_that_are_not_hit_change_nothing, |who| {
    // Positive control: the same probe gets its memory and the shell its forks under roomy limits.
    let (out, _) = sandbox(who, &["--memory-max", "256M", "--", "/probe", "hog", "64"]);
    assert!(line(&out, "hog").contains("ALLOWED 64 MiB"), "{}", stderr(&out));
    let (out, _) = sandbox(
        who,
        &[
            "--pids-max",
            "64",
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do /bin/busybox true & done; wait",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
});

#[test]
fn doctor_names_the_mechanism_in_force() {
    for (who, expected) in [(As::Root, "resource limits: cgroup v1"), (As::Unprivileged, "resource limits: rlimits")] {
        let out = run(ovm(who, &["doctor"]));
        assert!(stdout(&out).contains(expected), "{who:?}:\n{}", stdout(&out));
    }
}

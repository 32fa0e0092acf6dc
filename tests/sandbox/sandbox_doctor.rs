//! `ovm doctor` passes on this host, and when user namespaces are blocked — by an exhausted
//! `user.max_user_namespaces` in a nested user namespace, or by a Docker-like seccomp filter — both
//! `ovm doctor` and `ovm sandbox` name the cause and the fix instead of failing vaguely or panicking.

use crate::sandbox_support;

use std::path::Path;

use sandbox_support::*;

fn doctor_passes(who: As) {
    let out = run(ovm(who, &["doctor"]));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "ovm doctor failed as {who:?}:\n{text}{}", stderr(&out));
    assert!(text.contains("[ok  ] trial sandbox"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    // scripts/setup.sh installs what the default (gcc) toolchain's build takes from the host.
    assert!(text.contains("[ok  ] gcc toolchain host tools: gcc, g++, make, m4"), "{text}");
    if Path::new("/.dockerenv").exists() {
        assert!(text.contains("[info] container: found /.dockerenv"), "container markers are information: {text}");
    }
}

#[test]
fn doctor_passes_here_as_root() {
    doctor_passes(As::Root);
}

#[test]
fn doctor_passes_here_as_unprivileged() {
    doctor_passes(As::Unprivileged);
}

fn assert_no_panic(out: &std::process::Output) {
    let err = stderr(out);
    assert!(!err.contains("panicked"), "ovm panicked: {err}");
}

/// Run `ovm ARGS` inside a new user namespace whose user-namespace limit is 0.
fn with_no_user_namespaces_left(who: As, args: &[&str]) -> std::process::Output {
    let script = r#"echo 0 > /proc/sys/user/max_user_namespaces && exec "$@""#;
    let ovm = fixtures().ovm.to_string_lossy().into_owned();
    let mut cmd = command_as(who, Path::new("/usr/bin/unshare"));
    cmd.args(["--user", "--map-root-user", "/bin/sh", "-c", script, "sh", &ovm]).args(args);
    run(cmd)
}

#[test]
fn exhausted_user_namespace_limit_is_named_with_its_fix() {
    for who in [As::Root, As::Unprivileged] {
        let out = with_no_user_namespaces_left(who, &["doctor"]);
        let text = stdout(&out);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(1), "doctor must fail as {who:?}:\n{text}{}", stderr(&out));
        assert!(text.contains("[FAIL] user.max_user_namespaces: 0"), "{text}");
        assert!(text.contains("[FAIL] trial sandbox") && text.contains("ENOSPC"), "{text}");
        assert!(text.contains("fix: sudo sysctl -w user.max_user_namespaces="), "{text}");

        let out = with_no_user_namespaces_left(who, &["sandbox", "--", "/bin/true"]);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("user namespace limit is reached") && err.contains("sysctl -w user.max_user_namespaces"),
            "{err}"
        );
    }
}

#[test]
fn seccomp_blocked_user_namespaces_are_named_with_the_docker_fix() {
    for who in [As::Root, As::Unprivileged] {
        let ovm = fixtures().ovm.to_string_lossy().into_owned();
        let mut cmd = command_as(who, &fixtures().deny_userns);
        cmd.args([&ovm, "doctor"]);
        let out = run(cmd);
        let text = stdout(&out);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(1), "doctor must fail as {who:?}:\n{text}{}", stderr(&out));
        assert!(text.contains("[FAIL] trial sandbox") && text.contains("EPERM"), "{text}");
        assert!(text.contains("--security-opt seccomp=unconfined"), "{text}");

        let mut cmd = command_as(who, &fixtures().deny_userns);
        cmd.args([&ovm, "sandbox", "--", "/bin/true"]);
        let out = run(cmd);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        assert!(stderr(&out).contains("unshare) failed: EPERM"), "{}", stderr(&out));
        assert!(stderr(&out).contains("seccomp=unconfined"), "{}", stderr(&out));
    }
}

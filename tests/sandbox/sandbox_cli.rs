//! `ovm sandbox` as people use it: `--print-spec`, exactly the requested mounts in the root,
//! exactly the requested environment, nested mounts in command-line order.

use crate::sandbox_support;

use std::fs;

use sandbox_support::*;

#[test]
fn print_spec_prints_the_oci_spec_without_running() {
    let out = run(ovm(
        As::Unprivileged,
        &["sandbox", "--print-spec", "--ro", "/bin/busybox:/bin/sh", "--env", "A=b", "--", "/no/such/cmd", "arg"],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let spec: oci_spec::runtime::Spec = serde_json::from_slice(&out.stdout).unwrap();
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.args().as_ref().unwrap(), &["/no/such/cmd", "arg"]);
    assert!(process.env().as_ref().unwrap().contains(&"A=b".to_string()));
    let mounts = spec.mounts().as_ref().unwrap();
    let sh = mounts.iter().find(|m| m.destination().to_str() == Some("/bin/sh")).expect("the bind is in the spec");
    assert_eq!(sh.source().as_ref().unwrap().to_str(), Some("/bin/busybox"));
    assert!(sh.options().as_ref().unwrap().contains(&"ro".to_string()));
    let uid = spec.linux().as_ref().unwrap().uid_mappings().as_ref().unwrap()[0].host_id();
    assert_eq!(uid, uid_of(As::Unprivileged), "the invoking uid is what gets mapped to root");
}

#[test]
fn root_holds_exactly_the_requested_mounts() {
    let out = run(ovm(
        As::Unprivileged,
        &["sandbox", "--ro", "/bin/busybox:/bin/busybox", "--", "/bin/busybox", "ls", "-a", "/"],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let entries: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().split_whitespace().collect();
    assert_eq!(entries, [".", "..", "bin", "dev", "proc", "tmp"], "unexpected entries in the sandbox root");
}

#[test]
fn environment_is_exactly_the_specs() {
    let out = run(ovm(
        As::Unprivileged,
        &[
            "sandbox",
            "--env",
            "SOURCE_DATE_EPOCH=1",
            "--env",
            "PATH=/ovm/tools/bin",
            "--ro",
            "/bin/busybox:/bin/busybox",
            "--",
            "/bin/busybox",
            "env",
        ],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut env: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    env.sort();
    assert_eq!(env, ["HOME=/tmp", "LC_ALL=C", "PATH=/ovm/tools/bin", "SOURCE_DATE_EPOCH=1", "TZ=UTC"]);
}

#[test]
fn mounts_nest_in_command_line_order() {
    let outer = owned_dir(As::Unprivileged, "outer");
    let inner = owned_dir(As::Unprivileged, "inner");
    fs::write(inner.join("file"), "inner").unwrap();
    let args = [
        "sandbox",
        "--rw",
        &format!("{}:/w", outer.display()),
        "--ro",
        &format!("{}:/w/in", inner.display()),
        "--tmpfs",
        "/w/scratch",
        "--ro",
        "/bin/busybox:/bin/busybox",
        "--",
        "/bin/busybox",
        "sh",
        "-c",
        "cat /w/in/file && touch /w/scratch/t && touch /w/top",
    ];
    let out = run(ovm(As::Unprivileged, &args));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "inner");
    assert!(outer.join("top").exists(), "the rw bind was not writable");
    assert!(outer.join("in").is_dir(), "the nested mount point is created inside the rw bind, as runc does");
    assert!(!outer.join("scratch/t").exists(), "the tmpfs inside the bind leaked to the host");
}

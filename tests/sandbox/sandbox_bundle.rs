//! `ovm sandbox --bundle DIR` writes the very spec ovm runs as an OCI bundle; Debian's runc, run as
//! root, must execute it with the same visible files, environment, identity and capabilities as
//! ovm's own runtime. (The one intended difference — under runc the command is pid 1, under ovm pid
//! 1 is a reaper — is left out of the comparison.)

use crate::sandbox_support;

use std::fs;
use std::process::{Command, Stdio};

use sandbox_support::*;

/// Lists every visible file (outside /proc) with type, mode and owner, then identity, environment
/// and capabilities.
const SURVEY: &str = r#"cd /
/bin/busybox find / -path /proc -prune -o -print | /bin/busybox sort | while read f; do
  /bin/busybox stat -c "%n %F %a %u %g" "$f"
done
/bin/busybox cat /data/hello
/bin/busybox id
/bin/busybox hostname
/bin/busybox grep Cap /proc/self/status
/bin/busybox cat /proc/self/uid_map /proc/self/gid_map
/bin/busybox grep -c . /proc/self/mountinfo
/bin/busybox env | /bin/busybox sort
/bin/busybox touch /data/x 2>&1 || true
/bin/busybox touch /x 2>&1 || true
/bin/busybox cat /proc/sys/kernel/hostname
echo 1 2>&1 > /proc/sys/kernel/domainname || true"#;

#[test]
fn runc_runs_the_bundle_with_the_same_result() {
    assert!(is_root(), "the runc comparison runs runc as root: run the tests as root (scripts/test.sh in CI does)");
    let runc = Command::new("runc").arg("--version").output();
    assert!(
        runc.as_ref().is_ok_and(|o| o.status.success()),
        "runc is missing: run scripts/setup.sh (Debian package runc)"
    );

    let work = tempfile::Builder::new().prefix("ovm-bundle-").tempdir().unwrap();
    let data = work.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("hello"), "hello from the host\n").unwrap();
    let bundle = work.path().join("bundle");
    let data_bind = format!("{}:/data", data.display());
    let sandbox_args =
        ["--ro", "/bin/busybox:/bin/busybox", "--ro", &data_bind, "--", "/bin/busybox", "sh", "-c", SURVEY];

    let mut write = vec!["sandbox", "--bundle", bundle.to_str().unwrap()];
    write.extend_from_slice(&sandbox_args);
    let out = run(ovm(As::Root, &write));
    assert!(out.status.success(), "writing the bundle failed: {}", stderr(&out));
    assert!(bundle.join("config.json").is_file() && bundle.join("rootfs").is_dir());

    let state = work.path().join("runc-state");
    let id = format!("ovm-test-{}", std::process::id());
    let by_runc = Command::new("runc")
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = Command::new("runc").arg("--root").arg(&state).args(["delete", "--force", &id]).output();
    assert!(by_runc.status.success(), "runc failed: {}", stderr(&by_runc));

    let mut direct = vec!["sandbox"];
    direct.extend_from_slice(&sandbox_args);
    let by_ovm = run(ovm(As::Root, &direct));
    assert!(by_ovm.status.success(), "ovm failed: {}", stderr(&by_ovm));

    let (runc_text, ovm_text) = (stdout(&by_runc), stdout(&by_ovm));
    assert!(ovm_text.contains("/bin/busybox regular file") && ovm_text.contains("hello from the host"), "{ovm_text}");
    assert!(ovm_text.contains("Read-only file system"), "writes must fail on both: {ovm_text}");
    assert_eq!(runc_text, ovm_text, "runc and ovm show different sandboxes for the same spec");
}

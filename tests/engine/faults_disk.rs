//! The world changing under a build: the disk filling up at the instant a package is committed, a
//! verified source disappearing from `sources/`, staged outputs and the image damaged behind
//! ovm's back. Each case checks the message the user gets and that the state afterwards is one a
//! rerun completes from, with the bytes of a clean build.
//!
//! (A staged file whose content was changed is also in `engine_incremental.rs`; here it is a
//! staged file removed, and the image.)

use crate::build_support;
use crate::engine_fixture;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use build_support::TestProject;
use engine_fixture::*;

/// A tmpfs mounted for the test's lifetime (lazily unmounted on drop, also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test mounts a small tmpfs and must run as root (CI does; run `sudo cargo test --test engine faults_disk::`)"
        );
        std::fs::create_dir_all(at).unwrap();
        let st =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "ovm-test"]).arg(at).status();
        assert!(st.unwrap().success(), "mount -t tmpfs at {} failed", at.display());
        Tmpfs(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.0).status();
        assert!(st.unwrap().success(), "remounting {} failed", self.0.display());
    }

    /// Writes zeros to `name` until the filesystem is full.
    fn fill(&self, name: &str) -> u64 {
        let mut f = std::fs::File::create(self.0.join(name)).unwrap();
        let chunk = vec![0u8; 4096];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", self.0.display()),
            }
        }
        written
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The process state letter of `pid` (`T` = stopped).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

const PACKAGES: &[&str] = &["libgreet", "hello"];

fn outputs(p: &TestProject) -> Outputs {
    Outputs::of(p, PACKAGES)
}

fn same(p: &TestProject, clean: &Outputs, when: &str) {
    assert_eq!(&outputs(p), clean, "{when}: the outputs differ from a clean build");
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn a_full_disk_at_commit_names_the_package_and_a_rerun_with_space_completes() {
    let clean = Outputs::of_clean_build(write_greet_set, "enospc", PACKAGES);

    // The state dir is a 2 MiB tmpfs; first a complete build on it, then new source bytes (the
    // same outputs) so that both packages are built and committed again.
    let p = project();
    let fs = Tmpfs::mount(&p.path().join("states/x86_64"), "2m");
    write_greet_set(&p, "enospc-first");
    p.ok(&["build", "x86_64"]);
    // (Not the reference's salt: its outputs are in the shared-state cache, restored, not built.)
    write_greet_set(&p, "enospc-second");
    let libgreet_stamps_before: Vec<String> =
        names_in(&p.path().join("states/x86_64")).into_iter().filter(|n| n.starts_with("libgreet.")).collect();

    // Stop ovm when hello's package task begins, fill the disk, let it go on: the commit's stamp
    // cannot be written.
    let mut child = p
        .ovm()
        .env("OVM_FAULT", "package.begin@hello")
        .env("OVM_FAULT_ACTION", "stop")
        .args(["build", "x86_64"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while proc_state(child.id()) != Some('T') {
        assert!(child.try_wait().unwrap().is_none(), "ovm ended before hello's package task");
        assert!(t0.elapsed() < Duration::from_secs(300), "hello's package task never began");
        std::thread::sleep(Duration::from_millis(20));
    }
    let filled = fs.fill("filler");
    assert!(filled > 0, "the tmpfs had no room to fill");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGCONT).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = build_support::text(&out);
    assert!(!out.status.success() && out.status.signal().is_none(), "{text}");
    assert!(text.contains("ovm: hello failed at package"), "{text}");
    assert!(text.contains("states/x86_64/hello.package") && text.contains("No space left on device"), "{text}");

    // State: nothing torn or half-written; libgreet's stamps as they were written by this run;
    // hello not recorded as packaged, so `status` says it has work to do.
    let names = names_in(&p.path().join("states/x86_64"));
    assert!(!names.iter().any(|n| n.starts_with(".tmp")), "temporary files left: {names:?}");
    assert!(!names.contains(&"hello.package".to_string()), "{names:?}");
    let libgreet_stamps: Vec<String> = names.iter().filter(|n| n.starts_with("libgreet.")).cloned().collect();
    assert_eq!(libgreet_stamps, libgreet_stamps_before);
    for n in names.iter().filter(|n| n.contains('.') && !n.ends_with(".running")) {
        let text = std::fs::read_to_string(p.path().join("states/x86_64").join(n)).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("{n} is torn ({e}): {text:?}"));
    }
    assert_eq!(staged_hash(&p, "x86_64", "libgreet"), clean.staged("libgreet"));
    let status = build_support::text(&p.run(&["status", "x86_64"]));
    assert!(status.contains("hello"), "{status}");

    // More space: the rerun finishes hello alone and the result is a clean build's.
    fs.resize("16m");
    p.ok(&["build", "x86_64"]);
    let ran = tasks_sorted(&p, "x86_64");
    assert!(ran.iter().all(|t| t.starts_with("hello ") || t.starts_with("image ")), "{ran:?}");
    same(&p, &clean, "the rerun after the full disk");
    p.ok(&["build", "x86_64"]);
    assert_eq!(p.tasks_run("x86_64"), Vec::<String>::new());
    drop(fs);
}

/// The name of hello's main tarball in `sources/` (the one without `-data-`).
fn hello_tarball(p: &TestProject) -> String {
    names_in(&p.path().join("sources"))
        .into_iter()
        .find(|n| n.starts_with("hello-1.0-") && n.ends_with(".tar.gz"))
        .expect("hello's tarball in sources/")
}

#[test]
fn a_source_deleted_after_verification_is_refetched_or_named() {
    let clean = Outputs::of_clean_build(write_greet_set, "deleted", PACKAGES);

    let p = project();
    write_greet_set(&p, "deleted-here");
    p.ok(&["build", "x86_64"]);
    let file = hello_tarball(&p);
    let bytes = std::fs::read(p.path().join("sources").join(&file)).unwrap();

    // Gone from sources/: nothing needs it while nothing changed, …
    std::fs::remove_file(p.path().join("sources").join(&file)).unwrap();
    p.ok(&["build", "x86_64"]);
    assert_eq!(p.tasks_run("x86_64"), Vec::<String>::new());
    // … and when hello must be unpacked again it is fetched again (from its URL), verified.
    edit(&p, "recipes/hello.toml", "HELLO_NAME = \"ovm\"", "HELLO_NAME = \"ovm\", UNUSED = \"1\"");
    p.ok(&["build", "x86_64"]);
    assert_eq!(std::fs::read(p.path().join("sources").join(&file)).unwrap(), bytes, "refetched bytes differ");
    same(&p, &clean, "the refetch");

    // Gone from sources/ and from everywhere it can be fetched: an error naming the package, the
    // file and every place tried; libgreet and the image untouched.
    std::fs::remove_file(p.path().join("sources").join(&file)).unwrap();
    let upstream = p.path().join("upstream").join(&file);
    std::fs::rename(&upstream, p.path().join("upstream-hidden")).unwrap();
    edit(&p, "recipes/hello.toml", "UNUSED = \"1\"", "UNUSED = \"2\"");
    let out = fails(&p, &["build", "x86_64"]);
    assert!(out.contains(&format!("hello: cannot fetch {file}; tried:")), "{out}");
    assert!(out.contains(&upstream.display().to_string()), "{out}");
    assert!(!p.path().join("sources").join(format!("{file}.part")).exists());
    assert_eq!(staged_hash(&p, "x86_64", "libgreet"), clean.staged("libgreet"));
    assert_eq!(image_sha(&p, "x86_64"), clean.image);

    std::fs::rename(p.path().join("upstream-hidden"), &upstream).unwrap();
    p.ok(&["build", "x86_64"]);
    same(&p, &clean, "the source coming back");
}

#[test]
fn a_staged_file_removed_and_a_damaged_image_are_noticed_and_made_again() {
    let p = project();
    bye().write(&p, "damaged");
    p.ok(&["build", "x86_64"]);
    let bye_before = staged_hash(&p, "x86_64", "bye");
    let image_before = image_sha(&p, "x86_64");

    std::fs::remove_file(p.path().join("staging/x86_64/bye/runtime/usr/bin/bye")).unwrap();
    p.ok(&["build", "x86_64"]);
    assert_eq!(staged_hash(&p, "x86_64", "bye"), bye_before);
    assert_eq!(image_sha(&p, "x86_64"), image_before);

    // A no-op check reads no staged bytes while the tree's metadata is unchanged; damage that keeps
    // the size and the mtime (written in place, mtime put back) must still be noticed.
    p.ok(&["build", "x86_64"]);
    assert!(p.tasks_run("x86_64").is_empty());
    let bin = p.path().join("staging/x86_64/bye/runtime/usr/bin/bye");
    let mtime = std::fs::metadata(&bin).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&bin).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&bin, &bytes).unwrap();
    std::fs::File::options().write(true).open(&bin).unwrap().set_modified(mtime).unwrap();
    p.ok(&["build", "x86_64"]);
    assert!(p.tasks_run("x86_64").contains(&"bye unpack".to_string()), "{:?}", p.tasks_run("x86_64"));
    assert_eq!(staged_hash(&p, "x86_64", "bye"), bye_before);
    assert_eq!(image_sha(&p, "x86_64"), image_before);

    let image = p.path().join("output/x86_64/initrd.cpio.gz");
    let mut bytes = std::fs::read(&image).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&image, &bytes).unwrap();
    p.ok(&["build", "x86_64"]);
    assert_eq!(p.tasks_run("x86_64"), vec!["image pack".to_string()]);
    assert_eq!(image_sha(&p, "x86_64"), image_before);
}

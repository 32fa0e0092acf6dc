//! `ovm menuconfig busybox`, driven as a person drives it: in a terminal (tmux), keys sent with
//! `send-keys`, the menu read back with `capture-pane`. Every wait polls the screen for what must
//! appear, with a generous bound for a loaded machine; no sleep stands for an assertion.
//!
//! * one option toggled and saved: the recipe's config file changes in exactly that option (its
//!   comments kept), the diff is printed, and `ovm status --why` names the file as the input that
//!   makes busybox stale;
//! * saving without a change, or quitting without saving, leaves the file's bytes alone;
//! * a package without a kconfig file, and a caller without a terminal, are refused.

use crate::build_support;
use crate::engine_fixture;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use build_support::{require_tool, text, TestProject};

/// Unpacking busybox and compiling kconfig's menu on a loaded machine, or a screen to redraw.
const BOUND: Duration = Duration::from_secs(600);

const CONFIG: &str = "config/busybox.config";
/// The option the tests toggle: the fourth entry of the Settings menu, off in the repository's config.
const OPTION_TITLE: &str = "Enable obsolete features removed before SUSv3";
const OPTION_OFF: &str = "# CONFIG_INCLUDE_SUSv2 is not set";
const OPTION_ON: &str = "CONFIG_INCLUDE_SUSv2=y";
/// The main menu's frame title (the title bar above it says "BusyBox 1.35.0 Configuration").
const MAIN_MENU: &str = " Busybox Configuration ";

/// A tmux server of its own (its socket in the test project, so it goes with it), running one
/// `ovm` command in a 120x40 window; the window's shell prints `ovm-exit=N` when ovm ends. The
/// server is killed when dropped.
struct Tmux {
    socket: PathBuf,
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Tmux {
    fn start(p: &TestProject, args: &[&str]) -> Tmux {
        require_tool("tmux");
        let nonce = std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_nanos());
        let socket = p.path().join(format!("tmux-{nonce}.sock"));
        // ovm exactly as `p.ovm()` would run it: its program, arguments and environment.
        let model = p.ovm();
        let mut line = String::from("env");
        // env's options (`-u NAME`) before its assignments.
        for (k, _) in model.get_envs().filter(|(_, v)| v.is_none()) {
            line.push_str(&format!(" -u {}", sh_quote(&k.to_string_lossy())));
        }
        for (k, v) in model.get_envs() {
            if let Some(v) = v {
                line.push_str(&format!(" {}", sh_quote(&format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))));
            }
        }
        line.push_str(&format!(" {}", sh_quote(&model.get_program().to_string_lossy())));
        for a in model.get_args().map(|a| a.to_string_lossy().into_owned()).chain(args.iter().map(|a| a.to_string())) {
            line.push_str(&format!(" {}", sh_quote(&a)));
        }
        line.push_str("; echo ovm-exit=$?; exec sleep 3600");
        let t = Tmux { socket };
        t.tmux(&["-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "40", "sh", "-c", &line]);
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-S").arg(&self.socket).args(args).output().expect("running tmux");
        assert!(out.status.success(), "tmux {args:?} failed: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// What the window shows now.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p"])
    }

    /// Everything the window printed, scrolled-off lines included (a full-screen program's
    /// screen is gone once it exits; what came before and after it stays).
    fn history(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-"])
    }

    /// Polls until `read()` shows `what`; returns that text.
    fn wait(&self, what: &str, read: impl Fn(&Self) -> String) -> String {
        let started = Instant::now();
        loop {
            let now = read(self);
            if now.contains(what) {
                return now;
            }
            // ovm ended without showing it: no point in waiting on.
            let ended = !what.starts_with("ovm-exit=") && self.history().contains("ovm-exit=");
            assert!(!ended, "ovm ended before `{what}` appeared:\n{}", self.history());
            assert!(
                started.elapsed() < BOUND,
                "`{what}` did not appear within {BOUND:?}; the window shows:\n{now}\n---- history ----\n{}",
                self.history()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_screen(&self, what: &str) -> String {
        self.wait(what, Self::screen)
    }

    /// Waits for ovm to end; returns the window's history, which ends with `ovm-exit=N`.
    fn wait_exit(&self) -> (i32, String) {
        let all = self.wait("ovm-exit=", Self::history);
        let code = all
            .lines()
            .find_map(|l| l.trim().strip_prefix("ovm-exit="))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no exit status in:\n{all}"));
        (code, all)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-S").arg(&self.socket).arg("kill-server").output();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// In the main menu: into Settings, onto the SUSv2 option, and `key` (`y` or `n`) on it.
fn set_the_option(t: &Tmux, key: &str, shown: &str) {
    t.wait_screen(MAIN_MENU);
    t.wait_screen("Settings  --->");
    t.keys(&["Enter"]);
    t.wait_screen(OPTION_TITLE);
    t.keys(&["Down", "Down", "Down", key]);
    t.wait_screen(&format!("{shown} {OPTION_TITLE}"));
    // Out of Settings, then out of the main menu: the save question (the options changed).
    t.keys(&["Escape", "Escape"]);
    t.wait_screen(MAIN_MENU);
    t.keys(&["Escape", "Escape"]);
    t.wait_screen("Do you wish to save your new configuration?");
}

fn config_path(p: &TestProject) -> PathBuf {
    p.path().join(CONFIG)
}

#[test]
fn menuconfig_writes_one_toggled_option_back_and_the_package_goes_stale() {
    // The toolchain and build tools come from the run's shared-state cache (built once per run).
    let _tools = engine_fixture::project();
    let p = TestProject::from_repo();
    p.ok(&["build", "x86_64", "busybox"]);
    let before = p.read(CONFIG);
    assert!(before.lines().any(|l| l == OPTION_OFF), "positive control: the option starts off");

    let t = Tmux::start(&p, &["menuconfig", "busybox", "x86_64"]);
    set_the_option(&t, "y", "[*]");
    t.keys(&["Enter"]);
    let (code, out) = t.wait_exit();
    assert_eq!(code, 0, "ovm menuconfig failed:\n{out}");

    // The file changed in exactly that option; every other line, comments included, is as it was.
    let after = p.read(CONFIG);
    assert_eq!(before.lines().count(), after.lines().count(), "lines came or went:\n{after}");
    let changed: Vec<(&str, &str)> = before.lines().zip(after.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(changed, [(OPTION_OFF, OPTION_ON)], "the config file changed in more than the one option");

    // The diff was printed, and what happened to the file.
    for line in [
        "--- a/config/busybox.config",
        "+++ b/config/busybox.config",
        &format!("-{OPTION_OFF}"),
        &format!("+{OPTION_ON}"),
        "ovm: wrote config/busybox.config; the package rebuilds from its configure step at the next `ovm build`",
    ] {
        assert!(out.lines().any(|l| l.trim_end() == line), "`{line}` was not printed:\n{out}");
    }
    let removed = out.lines().filter(|l| l.starts_with('-') && !l.starts_with("---")).count();
    let added = out.lines().filter(|l| l.starts_with('+') && !l.starts_with("+++")).count();
    assert_eq!((removed, added), (1, 1), "the diff shows more than the one option:\n{out}");

    // The file is an input of busybox's configure step: the next build rebuilds busybox from there.
    let status = p.run(&["status", "x86_64", "--why"]);
    let status = text(&status);
    let lines: Vec<&str> = status.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.split_whitespace().take(2).eq(["x86_64", "busybox"]) && l.contains("stale from configure"))
        .unwrap_or_else(|| panic!("status does not say busybox is stale from configure:\n{status}"));
    let why: Vec<&str> = lines[at + 1..].iter().copied().take_while(|l| l.trim_start().starts_with("- ")).collect();
    let why = why.join("\n");
    assert!(why.contains("file.busybox.config changed"), "status does not name the config file:\n{status}");
    assert!(!why.contains("toolchain") && !why.contains("script."), "other inputs changed too:\n{status}");
}

#[test]
fn menuconfig_without_a_change_leaves_the_file_alone() {
    // No build: the menu needs only busybox's source (and the host's cc and ncurses).
    let p = TestProject::from_repo();
    let path = config_path(&p);
    let before = std::fs::read(&path).expect("reading the config");
    let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).expect("mtime");

    // Straight out, and "Yes" to saving (kconfig asks even so): it saves the same options, in its
    // own layout without the file's comments.
    let t = Tmux::start(&p, &["menuconfig", "busybox"]);
    t.wait_screen(MAIN_MENU);
    t.wait_screen("Settings  --->");
    t.keys(&["Escape", "Escape"]);
    t.wait_screen("Do you wish to save your new configuration?");
    t.keys(&["Enter"]);
    let (code, out) = t.wait_exit();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ovm: config/busybox.config unchanged (the saved configuration has the same options)"),
        "{out}"
    );
    assert!(!out.contains("+++ b/"), "a diff was printed for no change:\n{out}");
    drop(t);

    // A change, then "No" to saving it.
    let t = Tmux::start(&p, &["menuconfig", "busybox"]);
    set_the_option(&t, "y", "[*]");
    t.keys(&["n"]);
    let (code, out) = t.wait_exit();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ovm: config/busybox.config unchanged (menuconfig exited without saving)"), "{out}");

    assert_eq!(std::fs::read(&path).expect("reading the config"), before, "the file's bytes changed");
    assert_eq!(std::fs::metadata(&path).and_then(|m| m.modified()).expect("mtime"), mtime, "the file was rewritten");
}

#[test]
fn menuconfig_refuses_a_package_without_kconfig_and_a_caller_without_a_terminal() {
    let p = TestProject::from_repo();
    let out = p.run(&["menuconfig", "make"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("make has no kconfig configuration to edit")
            && t.contains("style = \"kbuild\"")
            && t.contains("recipes/tools/make.toml has style \"autotools\""),
        "{t}"
    );

    // No terminal (the test's stdin and stdout are not one): refused before anything is unpacked.
    let out = p.ovm().args(["menuconfig", "busybox"]).stdin(std::process::Stdio::null()).output().expect("ovm");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("`ovm menuconfig busybox` needs a terminal"), "{}", text(&out));
    assert!(!p.path().join("work/x86_64/busybox").exists(), "busybox was prepared for a refused menuconfig");
}

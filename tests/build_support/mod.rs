//! Helpers shared by the tests that run whole builds (engine_*, e2e_*): scratch projects made from
//! the repository's own inputs or from test recipes, and the three things those builds share so a
//! test run does not download or compile the same thing twice:
//!
//! * sources: `ovm download` into the repository's own `sources/` once per `cargo test` run, used by
//!   every scratch project as a plain-directory mirror (`OVM_MIRRORS`) — the Debian-filled mirror;
//! * the zig compiler cache (`OVM_BUILD_CACHE_DIR`): only a cache of compiled objects, kept across
//!   runs under `.cache/test-build-cache`;
//! * the shared-state cache (`OVM_SSTATE_DIR`): shared by the tests of ONE `cargo test` invocation
//!   (keyed by cargo's pid, the test binaries' common parent), fresh for the next one, so the build
//!   tools are compiled once per run and a test that must see a package really built is not
//!   served an output from an earlier run.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const SETUP_HINT: &str = "run scripts/setup.sh";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn ovm_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ovm")
}

pub fn tmp_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// The sstate dir of this `cargo test` invocation (see the module comment).
pub fn run_sstate() -> PathBuf {
    let parent = nix::unistd::getppid().as_raw();
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| remove_finished_runs(parent));
    let dir = tmp_root().join(format!("sstate-run-{parent}"));
    fs::create_dir_all(&dir).expect("creating the run's sstate dir");
    dir
}

/// A file that the test binaries of this `cargo test` invocation share (keyed like the sstate dir),
/// e.g. a result one test computes and another reuses; the caller writes it. Removed with the
/// run's sstate once the run has ended.
pub fn run_record(name: &str) -> PathBuf {
    let sstate = run_sstate();
    let run = sstate.file_name().and_then(|n| n.to_str()).expect("the run's sstate dir has a name");
    tmp_root().join(format!("{run}.{name}"))
}

/// Each run's sstate holds a zig toolchain (~340 MB): those of `cargo test` runs that have ended
/// (no such process any more) are removed, or every run would leave one behind; so are their
/// records (`run_record`).
fn remove_finished_runs(current: i32) {
    let Ok(entries) = fs::read_dir(tmp_root()) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("sstate-run-"))
            .and_then(|p| p.split('.').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid != current && !Path::new(&format!("/proc/{pid}")).exists() {
            let path = e.path();
            let _ = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        }
    }
}

pub fn build_cache() -> PathBuf {
    let dir = repo_root().join(".cache").join("test-build-cache");
    fs::create_dir_all(&dir).expect("creating the shared zig cache dir");
    dir
}

/// `ovm download` of every real recipe into the repository's `sources/`, once per test binary (and
/// cheap when already done: verified files cost no network). Returns the mirror directory.
pub fn mirror() -> &'static Path {
    static MIRROR: OnceLock<PathBuf> = OnceLock::new();
    MIRROR.get_or_init(|| {
        let root = repo_root();
        let out = Command::new(ovm_bin())
            .arg("-C")
            .arg(&root)
            .arg("download")
            .output()
            .expect("running ovm download for the test mirror");
        assert!(
            out.status.success(),
            "filling the test mirror with `ovm -C {} download` failed (network to Debian/PyPI needed once):\n{}",
            root.display(),
            text(&out)
        );
        root.join("sources")
    })
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Every test project builds with the zig toolchain unless the test says otherwise: ovm's default,
/// the gcc toolchain built from source, takes ~12 min per arch on idle cores and is the slow tier
/// (scripts/slow-gcc.sh); tests/engine/toolchain_*.rs check its recipes and engine tasks cheaply.
const PIN_ZIG: &str = "[toolchain]\nkind = \"zig\"\n";

/// A scratch project under the target dir (same filesystem as the caches: sstate restores are
/// hard links, not copies).
pub struct TestProject {
    pub dir: tempfile::TempDir,
    pub sstate: PathBuf,
}

impl TestProject {
    /// An empty project (recipes/, config/, patches/, rootfs/).
    pub fn empty() -> TestProject {
        let dir = tempfile::Builder::new().prefix("ovm-project-").tempdir_in(tmp_root()).expect("scratch project");
        for d in ["recipes/tools", "recipes/toolchain", "config", "patches", "rootfs"] {
            fs::create_dir_all(dir.path().join(d)).expect("project layout");
        }
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod project");
        let p = TestProject { dir, sstate: run_sstate() };
        p.write("config/ovm.toml", PIN_ZIG);
        p
    }

    /// A copy of the repository's own inputs: recipes/, config/, patches/, rootfs/.
    pub fn from_repo() -> TestProject {
        let p = TestProject::empty();
        let root = repo_root();
        for d in ["recipes", "config", "patches", "rootfs", "images"] {
            copy_tree(&root.join(d), &p.path().join(d));
        }
        p.pin_zig();
        p
    }

    /// Only the toolchain, build-tool and native-tool recipes of the repository (and their config
    /// files and patches): the base on which tests put their own target recipes, all of which the
    /// image holds (the repository's `[pack] packages` is dropped).
    pub fn with_real_tools() -> TestProject {
        let p = TestProject::empty();
        let root = repo_root();
        for d in ["recipes/tools", "recipes/native", "recipes/toolchain", "config", "patches"] {
            copy_tree(&root.join(d), &p.path().join(d));
        }
        p.pin_zig();
        // The test's own target recipes are its image, not the repository's busybox.
        let cfg = p.read("config/ovm.toml");
        let all = cfg.replace("\npackages = [\"busybox\"]\n", "\n");
        assert_ne!(cfg, all, "config/ovm.toml has no `packages = [\"busybox\"]` line to drop");
        p.write("config/ovm.toml", &all);
        p
    }

    /// The repository's config with `[toolchain] kind = "zig"` instead of its default gcc.
    fn pin_zig(&self) {
        let cfg = self.read("config/ovm.toml");
        let pinned = cfg.replace("\nkind = \"gcc\"\n", "\nkind = \"zig\"\n");
        assert_ne!(cfg, pinned, "config/ovm.toml has no `kind = \"gcc\"` line to pin to zig");
        self.write("config/ovm.toml", &pinned);
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path().join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, content).expect("write project file");
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    /// `ovm -C project ARGS` with the shared mirror and caches.
    pub fn ovm(&self) -> Command {
        let mut c = Command::new(ovm_bin());
        c.arg("-C").arg(self.path());
        c.env("OVM_MIRRORS", mirror());
        c.env("OVM_SSTATE_DIR", &self.sstate);
        c.env("OVM_BUILD_CACHE_DIR", build_cache());
        c.env_remove("SOURCE_DATE_EPOCH");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.ovm().args(args).output().expect("running ovm")
    }

    /// Runs and asserts success, returning stdout+stderr.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let t = text(&out);
        assert!(out.status.success(), "ovm {} failed ({:?}):\n{t}", args.join(" "), out.status);
        t
    }

    /// The tasks the last run started in `domain` (x86_64, aarch64, tools, toolchain), as
    /// `package task` strings, from logs/DOMAIN/context.log.
    pub fn tasks_run(&self, domain: &str) -> Vec<String> {
        let log = self.path().join("logs").join(domain).join("context.log");
        let text = fs::read_to_string(&log).unwrap_or_default();
        ovm::engine::context_log::tasks_of_last_run(&text)
            .into_iter()
            .map(|s| format!("{} {}", s.package, s.task))
            .collect()
    }
}

/// The `modules` line of config/ovm.toml's `[kernel]` example, commented out there with `# `.
pub const KERNEL_MODULES_EXAMPLE: &str = "modules = [\"virtio_blk\", \"virtio_pci\", \"ext4\", \"dm_crypt\"]";

/// `config` (a copy of the repository's config/ovm.toml) with its `[kernel]` example turned on
/// (the default image carries no modules): `modules_from` at the repository's test assets (a
/// scratch project has no `.cache/test-assets`) and `modules_line` in place of the example's.
pub fn kernel_turned_on(config: &str, modules_line: &str) -> String {
    let assets = repo_root().join(".cache/test-assets/ARCH/kernel");
    let from = format!("modules_from = {:?}", assets.display().to_string());
    let mut on = config.to_string();
    for (line, replacement) in [
        ("# modules_from = \".cache/test-assets/ARCH/kernel\"".to_string(), from.as_str()),
        (format!("# {KERNEL_MODULES_EXAMPLE}"), modules_line),
    ] {
        let turned = on.replace(&format!("\n{line}\n"), &format!("\n{replacement}\n"));
        assert_ne!(on, turned, "config/ovm.toml no longer has the line `{line}`");
        on = turned;
    }
    on
}

pub fn copy_tree(from: &Path, to: &Path) {
    if !from.exists() {
        return;
    }
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let t = to.join(e.file_name());
        let ft = e.file_type().expect("file type");
        if ft.is_dir() {
            copy_tree(&e.path(), &t);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path()).expect("readlink"), &t).expect("symlink");
        } else {
            fs::copy(e.path(), &t).expect("copy");
        }
    }
}

/// Whether a host tool is on the test's `PATH`.
pub fn on_path(name: &str) -> bool {
    #[allow(clippy::disallowed_methods)] // The test's own PATH, not ovm's settings.
    let path = std::env::var_os("PATH");
    path.is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// Fails (never skips) when a host tool is missing.
pub fn require_tool(name: &str) {
    assert!(on_path(name), "`{name}` is not installed: {SETUP_HINT}");
}

//! One build step in its sandbox: the work dir it starts from (a fresh build dir, DESTDIR,
//! sysroot and files for the first step), the sandbox it runs in (what is bound where, its
//! environment, the jobserver, its limits), its output relayed into a capped log, and the error
//! a failure becomes (a hit limit named as such).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::fault;
use crate::layout::{Profile, TaskName, WorkDirs};
use crate::recipe::Recipe;
use crate::sandbox::{self, SandboxBuilder};
use crate::tree;

use super::ctx::{Ctx, Isolation};
use super::env;
use super::steplog;
use super::task::StepTask;
use super::EngineError;

pub(super) fn run_step_task(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    name: &TaskName,
    step: &StepTask,
    dirs: &WorkDirs,
    log: &Path,
) -> Result<(), EngineError> {
    let werr = |source| EngineError::Write { path: log.to_path_buf(), source };
    if step.first {
        // A fresh build: nothing from an earlier configuration may leak in.
        for d in [&dirs.build, &dirs.dest, &dirs.sysroot, &dirs.files] {
            tree::remove_all(d)?;
        }
        mkdir(&dirs.build)?;
        mkdir(&dirs.dest)?;
        compose_sysroot(ctx, recipe, dirs)?;
        copy_files(recipe, dirs)?;
    }
    if step.prebuilt_install {
        // Used as shipped: the patched source tree is the product; wrappers make it a toolchain.
        tree::remove_all(&dirs.dest)?;
        fs::rename(&dirs.src, &dirs.dest).map_err(|source| EngineError::Write { path: dirs.dest.clone(), source })?;
        let zig = crate::toolchain::zig::ZigToolchain::open(&dirs.dest)?;
        let made = zig.install_wrappers()?;
        write_log(log, &format!("installed {} wrappers in {}\n", made.len(), dirs.dest.join("bin").display()))
            .map_err(werr)?;
        return Ok(());
    }
    if step.cleans_dest {
        tree::remove_all(&dirs.dest)?;
        mkdir(&dirs.dest)?;
    }
    match &step.script {
        Some(script) => run_step(ctx, recipe, name, script, dirs, log),
        None => write_log(log, "(nothing to do for this step)\n").map_err(werr),
    }
}

fn copy_files(recipe: &Recipe, dirs: &WorkDirs) -> Result<(), EngineError> {
    mkdir(&dirs.files)?;
    for f in &recipe.files {
        let to = dirs.files.join(&f.name);
        if let Some(p) = to.parent() {
            mkdir(p)?;
        }
        fs::copy(&f.path, &to).map_err(|source| EngineError::Write { path: to.clone(), source })?;
    }
    Ok(())
}

/// Makes the directories a compile sandbox binds exist (for `ovm shell` on a package that was
/// only prepared up to `patch`); an existing build dir is left as the person left it.
pub fn ready_for_shell(ctx: &Ctx<'_>, recipe: &Recipe) -> Result<(), EngineError> {
    let dirs = ctx.dirs(&recipe.name);
    for d in [&dirs.src, &dirs.build, &dirs.dest] {
        mkdir(d)?;
    }
    tree::remove_all(&dirs.sysroot)?;
    compose_sysroot(ctx, recipe, &dirs)?;
    tree::remove_all(&dirs.files)?;
    copy_files(recipe, &dirs)
}

fn compose_sysroot(ctx: &Ctx<'_>, recipe: &Recipe, dirs: &WorkDirs) -> Result<(), EngineError> {
    let mut layers = Vec::new();
    for dep in ctx.sysroot_deps(recipe)? {
        let dir = ctx.layout.staging(ctx.domain, &dep.name);
        if !dir.is_dir() {
            return Err(EngineError::MissingDependency { package: recipe.name.clone(), dep: dep.name.clone() });
        }
        layers.push((dep.name.clone(), dir));
    }
    tree::compose(&layers, &dirs.sysroot)?;
    // Always there, even empty: `-L/ovm/sysroot/usr/lib` into a missing directory makes every
    // link warn "unable to open library directory".
    for d in ["usr/include", "usr/lib"] {
        mkdir(&dirs.sysroot.join(d))?;
    }
    Ok(())
}

/// The sandbox a step of `recipe` runs in. `args` is what runs; `terminal` passes the caller's tty.
pub fn step_spec(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    args: Vec<String>,
    terminal: bool,
) -> Result<oci_spec::runtime::Spec, EngineError> {
    Ok(step_sandbox(ctx, recipe, args, terminal)?.build()?)
}

/// Where a step's script is, inside its sandbox. The script is a file, not an argument of
/// `/bin/sh -c`: one argument may hold 128 KiB at most (a larger snippet failed with E2BIG), and
/// every user of the host can read a process's arguments.
const STEP_SCRIPT: &str = "/ovm/step.sh";

fn step_sandbox(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    args: Vec<String>,
    terminal: bool,
) -> Result<SandboxBuilder, EngineError> {
    let dirs = ctx.dirs(&recipe.name);
    let eq = &ctx.equipment;
    // The cross domain's empty toolchain exists only once a sandbox binds it (see
    // `toolchain::gcc::no_toolchain`).
    if eq.toolchain_dir == ctx.layout.no_toolchain() {
        mkdir(&eq.toolchain_dir)?;
    }
    let mut b = SandboxBuilder::new(args)
        .ro_bind(&eq.toolchain_dir, env::TOOLCHAIN_DIR)
        .rw_bind(&dirs.src, env::SRC_DIR)
        .rw_bind(&dirs.build, env::BUILD_DIR)
        .rw_bind(&dirs.dest, env::DEST_DIR)
        .ro_bind(&dirs.sysroot, env::SYSROOT_DIR)
        .ro_bind(&dirs.files, env::FILES_DIR)
        .rw_bind(&ctx.cache_dir, env::CACHE_DIR)
        .tmpfs("/tmp")
        .cwd(env::BUILD_DIR)
        .hostname("ovm")
        .terminal(terminal)
        .proc_mode(sandbox::ProcMode::chosen(ctx.settings)?)
        .limits(ctx.step_limits(recipe));
    match ctx.domain.profile() {
        Profile::Package => {
            let tools = eq.tools_dir.as_ref().ok_or_else(|| EngineError::Internal("no build tools".into()))?;
            b = b.ro_bind(tools, env::TOOLS_DIR).ro_bind(tools.join("bin/busybox"), "/bin/sh");
        }
        // The host's userland, read-only: the host compiler builds the tools (and gcc).
        Profile::Toolchain => b = with_host_userland(b),
    }
    for (k, v) in ctx.step_env(recipe) {
        b = b.env(k, v);
    }
    let js = ctx.slots.server();
    let (r, w) = js.fds();
    b = b.env("MAKEFLAGS", js.makeflags()).preserve_fds(&[r, w]);
    Ok(b)
}

/// The `toolchain` profile's view of the host: its userland (/usr, /bin, /lib…, /etc), read-only.
pub(super) fn with_host_userland(mut b: SandboxBuilder) -> SandboxBuilder {
    for p in ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"] {
        if Path::new(p).exists() {
            b = b.ro_bind(p, p);
        }
    }
    b
}

/// How much of a failed step's log is searched for the limit it hit: the sandbox's own report is
/// its last line, and a build's complaint about a failed fork or allocation is near the end.
const LOG_TAIL: u64 = 16 * 1024;

/// The error for a failed sandboxed step: [`EngineError::LimitHit`] when the sandbox reported a
/// hit cgroup limit, or when only rlimits were in force and the log shows a failed fork or
/// allocation (rlimits leave no other trace); [`EngineError::StepFailed`] otherwise.
fn step_failure(ctx: &Ctx<'_>, recipe: &Recipe, step: &TaskName, log: &Path, status: Option<i32>) -> EngineError {
    let tail = steplog::tail_bytes(log, LOG_TAIL);
    let recipe_file = recipe.path.strip_prefix(ctx.root()).unwrap_or(&recipe.path).to_path_buf();
    let hit = |kind, setting, evidence| EngineError::LimitHit {
        package: recipe.name.clone(),
        step: step.to_string(),
        kind,
        setting,
        evidence,
        recipe: recipe_file.clone(),
    };
    if let Some((kind, setting)) = sandbox::limits::hit_in_text(&tail) {
        return hit(kind, setting, None);
    }
    if matches!(ctx.isolation, Isolation::Sandbox { .. }) {
        if let Some((kind, sign)) = sandbox::limits::exhaustion_in_text(&tail) {
            let mechanism = sandbox::limits::detect();
            if let sandbox::Mechanism::Rlimits { .. } = mechanism {
                let limits = ctx.step_limits(recipe);
                if let Some((_, setting)) = mechanism.settings(&limits).into_iter().find(|(k, _)| *k == kind) {
                    return hit(kind, setting, Some(sign));
                }
            }
        }
    }
    EngineError::StepFailed { package: recipe.name.clone(), step: step.to_string(), status }
}

/// Runs the step `name` of `recipe` (its `script`) in its sandbox, its output going to `log`.
fn run_step(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    name: &TaskName,
    script: &str,
    dirs: &WorkDirs,
    log: &Path,
) -> Result<(), EngineError> {
    let werr = |source| EngineError::Write { path: log.to_path_buf(), source };
    let file = File::create(log).map_err(werr)?;
    let script_file = dirs.step_script.clone();
    let write_script = |text: &str| {
        fs::write(&script_file, text).map_err(|source| EngineError::Write { path: script_file.clone(), source })
    };
    let mut cmd = match &ctx.isolation {
        Isolation::Sandbox { exe } => {
            write_script(script)?;
            let args = vec!["/bin/sh".to_string(), "-e".to_string(), STEP_SCRIPT.to_string()];
            let spec = step_sandbox(ctx, recipe, args, false)?.ro_bind(&script_file, STEP_SCRIPT).build()?;
            sandbox::command_with_exe(exe, &spec)?
        }
        Isolation::Host => {
            let (cmd, mapped) = host_command(ctx, recipe, script, dirs);
            write_script(&mapped)?;
            let mut cmd = cmd;
            cmd.arg("-e").arg(&script_file);
            cmd
        }
    };
    // Output goes through ovm (see `steplog`), so the log stays within [build] log_max.
    let spawn_err = |source| EngineError::Spawn { what: name.to_string(), source };
    let (pipe, out) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| spawn_err(e.into()))?;
    let err = out.try_clone().map_err(spawn_err)?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let mut child = cmd.spawn().map_err(spawn_err)?;
    // The write ends (and the spec's descriptor) live in `cmd`: only the step may hold them now,
    // or the pipe would never report its end.
    drop(cmd);
    let running = format!("{name}.running");
    // The step counts as running once it has written something: then its sandbox is up.
    let relayed = steplog::relay(&pipe, steplog::CappedLog::new(file, ctx.log_max), &mut child, || {
        fault::point(&running, &recipe.name)
    });
    let relayed = match relayed {
        Ok(r) => r,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(spawn_err(e));
        }
    };
    if !relayed.status.success() {
        return Err(step_failure(ctx, recipe, name, log, relayed.status.code()));
    }
    match relayed.log_error {
        Some(source) => Err(werr(source)),
        None => Ok(()),
    }
}

/// `--no-sandbox`: the same environment with the /ovm paths mapped to host paths, and `script`
/// mapped likewise (returned, for the caller to write and name as the shell's script).
fn host_command(ctx: &Ctx<'_>, recipe: &Recipe, script: &str, dirs: &WorkDirs) -> (Command, String) {
    let eq = &ctx.equipment;
    let map = |v: &str| -> String {
        let mut v = v.to_string();
        let pairs: Vec<(&str, PathBuf)> = vec![
            (env::TOOLCHAIN_DIR, eq.toolchain_dir.clone()),
            (env::TOOLS_DIR, eq.tools_dir.clone().unwrap_or_default()),
            (env::SRC_DIR, dirs.src.clone()),
            (env::BUILD_DIR, dirs.build.clone()),
            (env::DEST_DIR, dirs.dest.clone()),
            (env::SYSROOT_DIR, dirs.sysroot.clone()),
            (env::FILES_DIR, dirs.files.clone()),
            (env::CACHE_DIR, ctx.cache_dir.clone()),
        ];
        for (from, to) in pairs {
            v = v.replace(from, &to.to_string_lossy());
        }
        v
    };
    // The shell of the sandbox, where /bin/sh is the build tools' busybox: the step's script and,
    // through MAKEFLAGS, every make recipe line run with it, so the commands are the same ones
    // (only `#!/bin/sh` scripts, like the toolchain wrappers, get the host's /bin/sh).
    let tools_sh = eq.tools_dir.as_ref().map(|t| t.join("bin/sh")).filter(|sh| sh.exists());
    let mut cmd = Command::new(tools_sh.as_deref().unwrap_or(Path::new("/bin/sh")));
    cmd.env_clear();
    for (k, v) in ctx.step_env(recipe) {
        if k == "PATH" {
            cmd.env(k, format!("{}:/usr/bin:/bin", map(&v)));
        } else {
            cmd.env(k, map(&v));
        }
    }
    let mut makeflags = ctx.slots.server().makeflags();
    if let Some(sh) = tools_sh.as_ref().map(|sh| sh.to_string_lossy()).filter(|sh| !sh.contains(char::is_whitespace)) {
        makeflags.push_str(&format!(" -- SHELL={sh}"));
    }
    cmd.env("MAKEFLAGS", makeflags);
    let (r, w) = ctx.slots.server().fds();
    // SAFETY: between fork and exec only fcntl on two descriptors this process owns.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            for fd in [r, w] {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.current_dir(&dirs.build);
    (cmd, map(script))
}

/// Prints a failure: the last lines (each cut to a bounded length),
pub(super) fn mkdir(p: &Path) -> Result<(), EngineError> {
    fs::create_dir_all(p).map_err(|source| EngineError::Write { path: p.to_path_buf(), source })
}

pub(super) fn write_log(log: &Path, text: &str) -> io::Result<()> {
    if let Some(d) = log.parent() {
        fs::create_dir_all(d)?;
    }
    fs::write(log, text)
}

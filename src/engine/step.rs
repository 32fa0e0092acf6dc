//! One build step in its sandbox: the work dir it starts from (a fresh build dir, DESTDIR,
//! sysroot and files for the first step), the sandbox it runs in (what is bound where, its
//! environment, the jobserver, its limits), its output relayed into a capped log, and the error
//! a failure becomes (a hit limit named as such).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::fault;
use crate::layout::{Domain, Part, Profile, TaskName, WorkDirs};
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
        for d in [&dirs.build, &dirs.dest, &dirs.sysroot, &dirs.native, &dirs.files] {
            tree::remove_all(d)?;
        }
        make_bound_dirs(dirs)?;
        compose_sysroot(ctx, recipe, dirs)?;
        compose_native(ctx, recipe, dirs)?;
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
        Some(script) => run_step(ctx, recipe, name, script, dirs, log, ctx.domain.profile()),
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
    make_bound_dirs(&dirs)?;
    tree::remove_all(&dirs.sysroot)?;
    compose_sysroot(ctx, recipe, &dirs)?;
    tree::remove_all(&dirs.native)?;
    compose_native(ctx, recipe, &dirs)?;
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
        if !ctx.domain.splits() {
            layers.push((dep.name.clone(), dir));
            continue;
        }
        // What a dependent compiles and links against: the runtime and development packages,
        // never the debug info, manuals or message catalogues.
        for part in [Part::Runtime, Part::Dev] {
            let dir = ctx.layout.staged_part(ctx.domain, &dep.name, part);
            if dir.is_dir() {
                layers.push((part.package_name(&dep.name), dir));
            }
        }
    }
    tree::compose(&layers, &dirs.sysroot)?;
    // Always there, even empty: `-L/ovm/sysroot/usr/lib` into a missing directory makes every
    // link warn "unable to open library directory".
    for d in ["usr/include", "usr/lib"] {
        mkdir(&dirs.sysroot.join(d))?;
    }
    Ok(())
}

/// `/ovm/native`: the staged outputs of the native tools `recipe` names (and of the native recipes
/// they depend on), from the tools domain, hard-linked into one tree like the sysroot. Made only
/// for a recipe that names some: the others get no `/ovm/native` at all.
fn compose_native(ctx: &Ctx<'_>, recipe: &Recipe, dirs: &WorkDirs) -> Result<(), EngineError> {
    let natives = ctx.native_deps(recipe)?;
    if natives.is_empty() {
        return Ok(());
    }
    let mut layers = Vec::new();
    for tool in natives {
        let dir = ctx.layout.staging(Domain::Tools(ctx.host), &tool.name);
        if !dir.is_dir() {
            return Err(EngineError::MissingDependency { package: recipe.name.clone(), dep: tool.name.clone() });
        }
        layers.push((tool.name.clone(), dir));
    }
    tree::compose(&layers, &dirs.native)?;
    Ok(())
}

/// The sandbox a step of `recipe` runs in. `args` is what runs; `terminal` passes the caller's tty.
pub fn step_spec(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    args: Vec<String>,
    terminal: bool,
) -> Result<oci_spec::runtime::Spec, EngineError> {
    Ok(step_sandbox(ctx, recipe, args, terminal, ctx.domain.profile())?.build()?)
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
    profile: Profile,
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
    match profile {
        Profile::Package => {
            let tools = eq.tools_dir.as_ref().ok_or_else(|| EngineError::Internal("no build tools".into()))?;
            b = b.ro_bind(tools, env::TOOLS_DIR).ro_bind(tools.join("bin/busybox"), "/bin/sh");
            if !recipe.native.is_empty() {
                b = b.ro_bind(&dirs.native, env::NATIVE_DIR);
            }
        }
        // The host's userland, read-only: the host compiler builds the tools (and gcc).
        Profile::Toolchain => b = with_host_userland(b),
    }
    for (k, v) in ctx.step_env_as(recipe, profile) {
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
    let missing = missing_tool(&tail, |p| fs::read(sandbox_to_host(p, &ctx.dirs(&recipe.name))?).ok());
    // A tool the recipe names already and still missing is that tool recipe's fault: the plain
    // failure and its log say more than advice to add what is there.
    let provider = missing.as_ref().and_then(|m| native_provider(ctx, &m.tool));
    if let Some(missing) = missing.filter(|_| !provider.as_ref().is_some_and(|p| recipe.native.contains(p))) {
        return EngineError::ToolMissing(Box::new(super::error::ToolMissing {
            package: recipe.name.clone(),
            step: step.to_string(),
            provider,
            tool: missing.tool,
            via: missing.via,
            recipe: recipe_file,
        }));
    }
    EngineError::StepFailed { package: recipe.name.clone(), step: step.to_string(), status }
}

/// A program a failed step could not run, as its log tells.
#[derive(Debug, PartialEq, Eq)]
struct MissingTool {
    tool: String,
    /// The script that names `tool` on its `#!` line, when the shell reported the script.
    via: Option<String>,
}

/// How many of a failed log's last lines may hold the "not found" that explains the failure:
/// a configure script probing for optional programs says so early and goes on.
const NOT_FOUND_LINES: usize = 12;

/// The program behind the last "not found" near the end of a failed step's log: the shell's
/// `sh: cmake: not found` (busybox ash, also as `/ovm/step.sh: line 3: cmake: not found`), GNU
/// make's `make: cmake: No such file or directory` / `cmake: Command not found`, busybox env's
/// `env: can't execute 'perl'`. A path reported not found that exists (`/ovm/src/Configure`) is a
/// script whose interpreter is missing: `read` gives its bytes, and its `#!` line names the tool.
fn missing_tool(tail: &str, read: impl Fn(&str) -> Option<Vec<u8>>) -> Option<MissingTool> {
    let lines: Vec<&str> = tail.lines().collect();
    let start = lines.len().saturating_sub(NOT_FOUND_LINES);
    for line in lines[start..].iter().rev() {
        let line = line.trim();
        let named = if let Some((_, rest)) = line.split_once("can't execute '") {
            rest.split('\'').next()
        } else if let Some(rest) = line.strip_suffix(": not found") {
            rest.rsplit(": ").next()
        } else if let Some(rest) =
            line.strip_suffix(": No such file or directory").or_else(|| line.strip_suffix(": Command not found"))
        {
            // make[2]: cmake: No such file or directory
            let mut parts = rest.split(": ");
            parts.next().filter(|first| first.starts_with("make")).and(parts.next())
        } else {
            None
        };
        let Some(name) = named.map(str::trim).filter(|n| !n.is_empty() && !n.contains(char::is_whitespace)) else {
            continue;
        };
        if name.contains('/') {
            if let Some(tool) = read(name).and_then(|bytes| interpreter(&bytes)) {
                return Some(MissingTool { tool, via: Some(name.to_string()) });
            }
            continue;
        }
        return Some(MissingTool { tool: name.to_string(), via: None });
    }
    None
}

/// The program a `#!` line runs: `#!/usr/bin/perl -w` → perl, `#!/usr/bin/env python3` → python3.
fn interpreter(script: &[u8]) -> Option<String> {
    let first = script.strip_prefix(b"#!")?.split(|b| *b == b'\n').next()?;
    let first = String::from_utf8_lossy(first);
    let mut words = first.split_whitespace();
    let program = words.next()?.rsplit('/').next()?.to_string();
    let tool = if program == "env" { words.find(|w| !w.starts_with('-'))?.to_string() } else { program };
    Some(tool)
}

/// A host path for a sandbox path of the package's writable trees (where scripts live).
fn sandbox_to_host(path: &str, dirs: &WorkDirs) -> Option<PathBuf> {
    let rel = |prefix: &str| path.strip_prefix(prefix).and_then(|r| r.strip_prefix('/'));
    if let Some(r) = rel(env::SRC_DIR) {
        Some(dirs.src.join(r))
    } else {
        rel(env::BUILD_DIR).map(|r| dirs.build.join(r))
    }
}

/// The native recipe that provides `tool`: one of that name, or one whose staged output has
/// `bin/TOOL` (pkgconf's `pkg-config`).
fn native_provider(ctx: &Ctx<'_>, tool: &str) -> Option<String> {
    let natives: Vec<&Recipe> = ctx.recipes.of_kind(crate::recipe::Kind::Native).collect();
    if let Some(r) = natives.iter().find(|r| r.name == tool) {
        return Some(r.name.clone());
    }
    let staged = |r: &&&Recipe| ctx.layout.staging(Domain::Tools(ctx.host), &r.name).join("bin").join(tool).exists();
    natives.iter().find(staged).map(|r| r.name.clone())
}

/// Runs the step `name` of `recipe` (its `script`) in the sandbox of `profile` (see
/// [`Ctx::step_env_as`]; a step's own is `ctx.domain.profile()`), its output going to `log`; also
/// the package task's strip script and the autoreconf task.
pub(super) fn run_step(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    name: &TaskName,
    script: &str,
    dirs: &WorkDirs,
    log: &Path,
    profile: Profile,
) -> Result<(), EngineError> {
    make_bound_dirs(dirs)?;
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
            let spec = step_sandbox(ctx, recipe, args, false, profile)?.ro_bind(&script_file, STEP_SCRIPT).build()?;
            sandbox::command_with_exe(exe, &spec)?
        }
        Isolation::Host => {
            let (cmd, mapped) = host_command(ctx, recipe, script, dirs, profile);
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
fn host_command(ctx: &Ctx<'_>, recipe: &Recipe, script: &str, dirs: &WorkDirs, profile: Profile) -> (Command, String) {
    let eq = &ctx.equipment;
    let map = |v: &str| -> String {
        let mut v = v.to_string();
        let pairs: Vec<(&str, PathBuf)> = vec![
            (env::TOOLCHAIN_DIR, eq.toolchain_dir.clone()),
            (env::TOOLS_DIR, eq.tools_dir.clone().unwrap_or_default()),
            (env::NATIVE_DIR, dirs.native.clone()),
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
    let tools_sh =
        eq.tools_dir.as_ref().map(|t| t.join("bin/sh")).filter(|sh| sh.exists() && profile == Profile::Package);
    let mut cmd = Command::new(tools_sh.as_deref().unwrap_or(Path::new("/bin/sh")));
    cmd.env_clear();
    for (k, v) in ctx.step_env_as(recipe, profile) {
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

/// Makes the work dirs every step's sandbox binds (not `/ovm/native`, bound only once composed).
/// A task before the first step (autoreconf) and `ovm shell` on a package prepared only up to
/// `patch` find just the source: the sandbox cannot bind what is not there. Existing ones are left
/// as they are; the first step empties them itself.
fn make_bound_dirs(dirs: &WorkDirs) -> Result<(), EngineError> {
    for d in [&dirs.src, &dirs.build, &dirs.dest, &dirs.sysroot, &dirs.files] {
        mkdir(d)?;
    }
    Ok(())
}

/// `mkdir -p`, its failure naming the directory.
pub(super) fn mkdir(p: &Path) -> Result<(), EngineError> {
    fs::create_dir_all(p).map_err(|source| EngineError::Write { path: p.to_path_buf(), source })
}

pub(super) fn write_log(log: &Path, text: &str) -> io::Result<()> {
    if let Some(d) = log.parent() {
        fs::create_dir_all(d)?;
    }
    fs::write(log, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(tail: &str) -> Option<MissingTool> {
        let script = |p: &str| match p {
            "/ovm/src/Configure" => Some(b"#!/usr/bin/env perl\n# configure\n".to_vec()),
            "/ovm/src/gen.py" => Some(b"#! /usr/bin/python3 -u\n".to_vec()),
            "/ovm/build/plain" => Some(b"not a script\n".to_vec()),
            _ => None,
        };
        missing_tool(tail, script)
    }

    fn tool(name: &str) -> Option<MissingTool> {
        Some(MissingTool { tool: name.into(), via: None })
    }

    #[test]
    fn the_missing_program_is_read_from_each_way_a_build_reports_it() {
        assert_eq!(found("+ cmake -S /ovm/src\n/ovm/step.sh: line 2: cmake: not found\n"), tool("cmake"));
        assert_eq!(found("sh: pkg-config: not found\n"), tool("pkg-config"));
        assert_eq!(
            found("make[2]: bison: No such file or directory\nmake[2]: *** [Makefile:9: y.c] Error 127\n"),
            tool("bison")
        );
        assert_eq!(found("make: flex: Command not found\nmake: *** [x] Error 127\n"), tool("flex"));
        assert_eq!(found("env: can't execute 'python3': No such file or directory\n"), tool("python3"));
    }

    #[test]
    fn a_script_reported_not_found_names_its_interpreter() {
        let via = |t: &str, s: &str| Some(MissingTool { tool: t.into(), via: Some(s.into()) });
        assert_eq!(found("/bin/sh: /ovm/src/Configure: not found\n"), via("perl", "/ovm/src/Configure"));
        assert_eq!(found("sh: /ovm/src/gen.py: not found\n"), via("python3", "/ovm/src/gen.py"));
        // A path that is no script (or not there) names nothing.
        assert_eq!(found("sh: /ovm/build/plain: not found\n"), None);
        assert_eq!(found("sh: /ovm/build/gone: not found\n"), None);
    }

    #[test]
    fn only_a_not_found_near_the_end_explains_the_failure() {
        let mut log = String::from("checking for gawk... sh: gawk: not found\n");
        for i in 0..NOT_FOUND_LINES {
            log.push_str(&format!("cc -c f{i}.c\n"));
        }
        log.push_str("f.c:1: error: expected ';'\n");
        assert_eq!(found(&log), None, "an early probe is not the cause");
        // Other lines ending the same way are not programs.
        assert_eq!(found("ls: /ovm/src/x: No such file or directory\ncp: can't stat 'a b': not found\n"), None);
    }

    #[test]
    fn sandbox_paths_map_to_the_work_dirs_and_nothing_else() {
        let dirs = crate::layout::Layout::new("/p".into())
            .work_dirs(crate::layout::Domain::Tools(crate::arch::Arch::X86_64), "x");
        assert_eq!(sandbox_to_host("/ovm/src/Configure", &dirs), Some(dirs.src.join("Configure")));
        assert_eq!(sandbox_to_host("/ovm/build/a/b", &dirs), Some(dirs.build.join("a/b")));
        assert_eq!(sandbox_to_host("/ovm/srcx/a", &dirs), None);
        assert_eq!(sandbox_to_host("/etc/passwd", &dirs), None);
    }
}

//! `ovm menuconfig PKG [ARCH]`: edit a kconfig package's configuration in its own menu, the way
//! Buildroot's `busybox-menuconfig` followed by `busybox-update-config` does.
//!
//! 1. The package's source is prepared as a build prepares it — fetch, unpack, patch, through the
//!    engine's own tasks (`package::prepare_source`) in the package's work dir.
//! 2. The recipe's kconfig file (`Recipe::kconfig_file`: the `*.config` of a `style = "kbuild"`
//!    recipe) becomes `.config` in a menuconfig dir of its own (`WorkDirs::menuconfig`, kconfig's
//!    `O=`), so neither the source tree (bound read-only) nor the build dir is touched.
//! 3. `make menuconfig` runs on the user's terminal, in a sandbox of the **toolchain profile**:
//!    host /usr read-only, no network. The menu is an ncurses program kconfig compiles from the
//!    package's source with the host's `cc`; the strict package profile has no ncurses (and no
//!    host compiler), and a native ncurses recipe would mean building ncurses and a host compiler
//!    for it before anyone can change one option. The menu is an interactive host tool whose only
//!    product is a text file, which the configure step then checks in the strict sandbox — the
//!    build itself stays strict. So the host needs `cc`, `make` and ncurses' headers (Debian:
//!    `libncurses-dev`, in scripts/setup.sh).
//! 4. On exit, the saved `.config` goes back to the recipe's file, atomically (temp + rename), as a
//!    *full* config: busybox's kconfig has no `savedefconfig`, and the busybox recipe's configure
//!    step wants every option written down anyway. The file's own comments survive
//!    ([`keep_notes`]): its header and each note above an option stay where they were, so the
//!    diff shows only what changed. Quitting without saving, or saving the same options, leaves
//!    the file untouched.
//!
//! The file is an input of the package's first build step (`file.NAME` in its signature), so the
//! next `ovm build` rebuilds the package from its configure step, and `ovm status --why` names the
//! file as the changed input.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::IsTerminal;
use std::path::PathBuf;

use crate::arch::Arch;
use crate::project::Project;
use crate::sandbox::{self, SandboxBuilder};

use super::build::{open_log, open_run};
use super::devshell::domain_of;
use super::env;
use super::package;
use super::step::{self, mkdir};
use super::EngineError;

/// What `ovm menuconfig` did to the recipe's kconfig file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// The file was rewritten; `diff` is the unified diff of the change.
    Changed { file: PathBuf, diff: String },
    /// The file was left as it was: the menu was quit without saving (`saved: false`), or what it
    /// saved holds the same options.
    Unchanged { file: PathBuf, saved: bool },
}

impl std::fmt::Display for Edit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Edit::Changed { file, .. } => write!(
                f,
                "ovm: wrote {}; the package rebuilds from its configure step at the next `ovm build`",
                file.display()
            ),
            Edit::Unchanged { file, saved: false } => {
                write!(f, "ovm: {} unchanged (menuconfig exited without saving)", file.display())
            }
            Edit::Unchanged { file, saved: true } => {
                write!(f, "ovm: {} unchanged (the saved configuration has the same options)", file.display())
            }
        }
    }
}

/// `ovm menuconfig PKG [ARCH]` (see the module comment); `arch` defaults to the host's.
pub fn menuconfig(project: &Project, pkg: &str, arch: Option<Arch>, quiet: bool) -> Result<Edit, EngineError> {
    let (_lock, run) = open_run(project, 0, false, false)?;
    let recipe = run.recipes.require(pkg)?;
    let shown_recipe = recipe.path.strip_prefix(project.root()).unwrap_or(&recipe.path).to_path_buf();
    let kconfig = recipe.kconfig_file().ok_or_else(|| EngineError::NoKconfig {
        package: pkg.into(),
        recipe: shown_recipe.clone(),
        style: recipe.build.as_ref().map_or("none", |b| b.style.name()),
    })?;
    let shown = kconfig.path.strip_prefix(project.root()).unwrap_or(&kconfig.path).to_path_buf();
    // Refused before any work: the menu cannot be drawn anywhere else.
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(EngineError::NotATerminal { package: pkg.into() });
    }

    let arch = arch.unwrap_or(run.host);
    let domain = domain_of(recipe, arch, run.host);
    // Only the source is needed: no toolchain, build tools or dependency is built for a menu.
    let eq = run.equipment_now(&run.toolchain(None)?, domain, arch)?;
    let log = open_log(project.layout(), domain, &format!("ovm menuconfig {pkg}"))?;
    let ctx = run.ctx(domain, &log, eq);
    let dep_outputs: BTreeMap<String, String> = ctx.dep_outputs(recipe, |d| ctx.states.staged_hash(d))?;
    package::prepare_source(&ctx, recipe, &dep_outputs).map_err(|f| {
        package::report_failure(&f, &mut std::io::stderr());
        f.error
    })?;

    let dirs = ctx.dirs(pkg);
    mkdir(&dirs.menuconfig)?;
    let original =
        fs::read_to_string(&kconfig.path).map_err(|source| EngineError::Read { path: kconfig.path.clone(), source })?;
    let dot_config = dirs.menuconfig.join(".config");
    fs::write(&dot_config, &original).map_err(|source| EngineError::Write { path: dot_config.clone(), source })?;

    let recipe_env: Vec<(String, String)> =
        recipe.build.as_ref().map(|b| b.env_for(arch).into_iter().collect()).unwrap_or_default();
    let term = project.settings().term.clone().unwrap_or_else(|| "vt100".into());
    // `O=`: kbuild's out-of-tree mode, the way the kbuild recipes build. HOSTCC on the command
    // line: busybox's Makefile assigns `HOSTCC = gcc`, which only an argument overrides.
    let args = ["make", "-C", env::SRC_DIR, "O=/ovm/build", "HOSTCC=cc", "menuconfig"];
    let mut b = SandboxBuilder::new(args)
        .ro_bind(&dirs.src, env::SRC_DIR)
        .rw_bind(&dirs.menuconfig, env::BUILD_DIR)
        .tmpfs("/tmp")
        .cwd(env::BUILD_DIR)
        .hostname("ovm")
        .terminal(true)
        .proc_mode(sandbox::ProcMode::chosen(ctx.settings)?)
        .limits(ctx.step_limits(recipe));
    b = step::with_host_userland(b);
    for (k, v) in env::menuconfig_env(arch, &term, &recipe_env) {
        b = b.env(k, v);
    }
    let spec = b.build()?;
    if !quiet {
        eprintln!(
            "ovm: {pkg}: menuconfig on {} (host /usr read-only: kconfig's menu needs the host's cc and ncurses)",
            shown.display()
        );
    }
    let status = sandbox::command(&spec, project.settings())?
        .status()
        .map_err(|source| EngineError::Spawn { what: "menuconfig".into(), source })?;
    if !status.success() {
        return Err(EngineError::MenuconfigFailed { package: pkg.into(), status: status.code() });
    }

    let saved =
        fs::read_to_string(&dot_config).map_err(|source| EngineError::Read { path: dot_config.clone(), source })?;
    if saved == original {
        return Ok(Edit::Unchanged { file: shown, saved: false });
    }
    let updated = keep_notes(&original, &saved);
    if updated == original {
        return Ok(Edit::Unchanged { file: shown, saved: true });
    }
    crate::tree::write_atomic(&kconfig.path, updated.as_bytes())
        .map_err(|source| EngineError::Write { path: kconfig.path.clone(), source })?;
    let name = shown.display();
    let diff = diffy::DiffOptions::new()
        .set_original_filename(format!("a/{name}"))
        .set_modified_filename(format!("b/{name}"))
        .create_patch(&original, &updated)
        .to_string();
    Ok(Edit::Changed { file: shown, diff })
}

/// The option a kconfig line sets: `CONFIG_X=…` or `# CONFIG_X is not set`.
fn option_of(line: &str) -> Option<&str> {
    if let Some(rest) = line.strip_prefix("# ") {
        return rest.strip_suffix(" is not set").filter(|s| s.starts_with("CONFIG_"));
    }
    line.split_once('=').map(|(name, _)| name).filter(|n| n.starts_with("CONFIG_"))
}

/// A comment paragraph of the file (not one kconfig writes), kept above the option it annotates.
struct Note<'a> {
    /// A blank line came before it.
    blank_before: bool,
    lines: Vec<&'a str>,
}

/// Puts `note` at the end of `out`, after a blank line if it had one before it.
fn push_note<'a>(out: &mut Vec<&'a str>, note: &Note<'a>) {
    if note.blank_before && out.last().is_some_and(|l| !l.is_empty()) {
        out.push("");
    }
    out.extend(&note.lines);
}

/// kconfig's `saved` configuration with the comments a person wrote in `original` put back:
/// `original`'s header (everything above its first option) replaces kconfig's "Automatically
/// generated" one, and every other comment paragraph goes back above the option it stood above.
/// A comment line is kconfig's own when `saved` has the same line (its menu titles, `#`); notes
/// whose option kconfig no longer writes, and notes below the last option, go to the end.
/// `keep_notes(original, kconfig's own rendering of original)` is `original` again, so the diff
/// of an edit shows only the options that changed.
pub fn keep_notes(original: &str, saved: &str) -> String {
    let is_note = |l: &str| l.starts_with('#') && option_of(l).is_none();
    let saved_lines: Vec<&str> = saved.lines().collect();
    // kconfig's header: the comment lines above its first option.
    let body = &saved_lines[saved_lines.iter().position(|l| !is_note(l)).unwrap_or(saved_lines.len())..];
    let kconfig_lines: BTreeSet<&str> = body.iter().copied().collect();

    let orig: Vec<&str> = original.lines().collect();
    let first_option = orig.iter().position(|l| option_of(l).is_some()).unwrap_or(orig.len());
    let mut out: Vec<&str> = orig[..first_option].to_vec();
    let mut notes: Vec<(&str, Note<'_>)> = Vec::new();
    let mut pending: Option<Note<'_>> = None;
    for (i, line) in orig.iter().enumerate().skip(first_option) {
        if let Some(option) = option_of(line) {
            if let Some(note) = pending.take() {
                notes.push((option, note));
            }
        } else if is_note(line) && !kconfig_lines.contains(line) {
            pending
                .get_or_insert_with(|| Note { blank_before: i > 0 && orig[i - 1].is_empty(), lines: Vec::new() })
                .lines
                .push(line);
        }
    }

    let mut by_option: BTreeMap<&str, Vec<Note<'_>>> = BTreeMap::new();
    for (option, note) in notes {
        by_option.entry(option).or_default().push(note);
    }
    for line in body {
        if let Some(notes) = option_of(line).and_then(|o| by_option.remove(o)) {
            for note in &notes {
                push_note(&mut out, note);
            }
        }
        out.push(line);
    }
    // Trailing blank lines of kconfig's output stay last.
    let trailing = out.iter().rev().take_while(|l| l.is_empty()).count();
    let tail: Vec<&str> = out.split_off(out.len() - trailing);
    for note in by_option.values().flatten() {
        push_note(&mut out, &Note { blank_before: true, lines: note.lines.clone() });
    }
    if let Some(note) = &pending {
        push_note(&mut out, note);
    }
    out.extend(tail);
    let mut text = out.join("\n");
    if saved.ends_with('\n') || original.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = "\
# A hand-written header.
#
# It says why.

CONFIG_HAVE_DOT_CONFIG=y

#
# Settings
#
CONFIG_LFS=y

# No PAM in an initrd.
# CONFIG_PAM is not set
CONFIG_FEATURE_DEVPTS=y
# CONFIG_SUS is not set
#
# Shells
#
#
# Options common to all shells
#

# One shell is enough.
# CONFIG_HUSH is not set
# a trailing remark
";

    /// What kconfig writes for ORIGINAL: its own header, no notes.
    fn kconfig_rendering(original: &str) -> String {
        let mut out =
            String::from("#\n# Automatically generated make config: don't edit\n# Busybox version: 1.35.0\n#\n");
        for l in original.lines().skip_while(|l| option_of(l).is_none()) {
            let menu = l == "#" || ["# Settings", "# Shells", "# Options common to all shells"].contains(&l);
            if option_of(l).is_some() || menu || l.is_empty() {
                out.push_str(l);
                out.push('\n');
            }
        }
        // kconfig has no blank line before a note's option: remove those the notes brought.
        out.replace("\n\n# CONFIG_PAM", "\n# CONFIG_PAM").replace("#\n\n# CONFIG_HUSH", "#\n# CONFIG_HUSH")
    }

    #[test]
    fn kconfigs_own_rendering_gives_the_file_back() {
        let saved = kconfig_rendering(ORIGINAL);
        assert!(!saved.contains("No PAM") && saved.starts_with("#\n# Automatically"), "{saved}");
        assert_eq!(keep_notes(ORIGINAL, &saved), ORIGINAL);
    }

    #[test]
    fn an_edit_changes_only_its_option_and_keeps_the_notes() {
        let saved = kconfig_rendering(ORIGINAL).replace("# CONFIG_SUS is not set", "CONFIG_SUS=y");
        let kept = keep_notes(ORIGINAL, &saved);
        assert_eq!(kept, ORIGINAL.replace("# CONFIG_SUS is not set", "CONFIG_SUS=y"));
    }

    #[test]
    fn a_note_whose_option_is_gone_moves_to_the_end() {
        let saved = kconfig_rendering(ORIGINAL).replace("# CONFIG_PAM is not set\n", "");
        let kept = keep_notes(ORIGINAL, &saved);
        assert!(!kept.contains("# CONFIG_PAM"), "{kept}");
        let tail: Vec<&str> = kept.lines().rev().take(3).collect();
        assert_eq!(tail, ["# a trailing remark", "# No PAM in an initrd.", ""], "{kept}");
    }

    #[test]
    fn a_file_without_notes_becomes_kconfigs_output() {
        let saved = "#\n# Automatically generated make config: don't edit\n#\nCONFIG_A=y\n# CONFIG_B is not set\n";
        let plain = "CONFIG_A=y\nCONFIG_B=y\n";
        assert_eq!(keep_notes(plain, saved), "CONFIG_A=y\n# CONFIG_B is not set\n");
    }

    #[test]
    fn options_are_read_from_both_spellings() {
        assert_eq!(option_of("CONFIG_ASH=y"), Some("CONFIG_ASH"));
        assert_eq!(option_of("CONFIG_PID_FILE_PATH=\"/run\""), Some("CONFIG_PID_FILE_PATH"));
        assert_eq!(option_of("# CONFIG_HUSH is not set"), Some("CONFIG_HUSH"));
        assert_eq!(option_of("# No PAM = none"), None);
        assert_eq!(option_of("# Settings"), None);
    }
}

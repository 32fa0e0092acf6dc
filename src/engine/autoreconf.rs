//! The `autoreconf` task: a recipe whose source has no `configure` (a git archive, as Debian's
//! orig tarballs of cryptsetup are) or whose patches touch `configure.ac`/`Makefile.am` asks for
//! `[build] autoreconf = true`, and the build system is regenerated in the patched source tree
//! before its first step (Buildroot's `AUTORECONF = YES`, OpenEmbedded's autotools class).
//!
//! | question                  | answer                                                            |
//! |---------------------------|-------------------------------------------------------------------|
//! | which autotools           | the build machine's (Debian's autoconf, automake, libtool,        |
//! |                           | autopoint, pkgconf's pkg.m4; `scripts/setup.sh` installs them)     |
//! | where it runs             | the `toolchain` profile's sandbox: the host's userland read-only, |
//! |                           | the source tree writable, no network, like make's own regeneration |
//! | why not in the package's  | autoconf and automake are Perl programs: the strict sandbox has no |
//! | strict sandbox            | Perl, and what they write is text the package's steps then run    |
//! |                           | there, in the strict sandbox, as for any release tarball           |
//! | signature                 | the patch task's, plus each tool's version line: another autoconf |
//! |                           | writes another `configure`, so the package rebuilds                |
//!
//! The tools' versions are asked once per run ([`HostAutotools::versions`]); a missing tool fails
//! the package before anything runs, naming the program and what installs it.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use crate::layout::{Profile, TaskName, WorkDirs};
use crate::recipe::Recipe;

use super::ctx::Ctx;
use super::EngineError;

/// What the task runs, in `/ovm/src`. `--install` copies the auxiliary files a git archive lacks
/// (config.sub, libtool's main script, gettext's po/ infrastructure); `--force` regenerates even
/// what is there, so the result depends on the tools alone, not on what the archive happened to
/// hold.
pub const SCRIPT: &str = "cd /ovm/src\nautoreconf --force --install --verbose\n";

/// The programs `autoreconf` runs, each asked for its version.
const TOOLS: [&str; 5] = ["autoreconf", "autoconf", "automake", "libtoolize", "autopoint"];

/// The build machine's autotools, as far as a signature needs them.
#[derive(Debug, Default)]
pub struct HostAutotools {
    versions: OnceLock<Result<String, String>>,
}

impl HostAutotools {
    /// One line per tool, `NAME: first line of NAME --version`, asked once per run.
    pub fn versions(&self) -> Result<&str, EngineError> {
        self.versions
            .get_or_init(|| probe(version_of))
            .as_deref()
            .map_err(|tool| EngineError::HostAutotoolMissing { tool: tool.clone() })
    }
}

fn version_of(tool: &str) -> Option<String> {
    let out = Command::new(tool).arg("--version").env("LC_ALL", "C").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success().then(|| text.lines().next().unwrap_or_default().trim().to_string())
}

/// The version lines of [`TOOLS`], or the first one missing.
fn probe(version: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut text = String::new();
    for tool in TOOLS {
        let v = version(tool).ok_or_else(|| tool.to_string())?;
        text.push_str(&format!("{tool}: {v}\n"));
    }
    Ok(text)
}

/// Runs the task for `recipe`: [`SCRIPT`] in the `toolchain` profile's sandbox, its output in `log`.
pub(super) fn run(
    ctx: &Ctx<'_>,
    recipe: &Recipe,
    name: &TaskName,
    dirs: &WorkDirs,
    log: &Path,
) -> Result<(), EngineError> {
    // Asked first: a machine without autotools gets the error naming the tool, not a step log
    // saying `autoreconf: not found`.
    ctx.host_autotools.versions()?;
    super::step::run_step(ctx, recipe, name, SCRIPT, dirs, log, Profile::Toolchain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_versions_name_every_tool_or_the_first_missing_one() {
        let all = probe(|t| Some(format!("{t} (GNU) 1.0"))).unwrap();
        assert_eq!(all.lines().count(), TOOLS.len());
        assert!(all.starts_with("autoreconf: autoreconf (GNU) 1.0\n"), "{all}");
        assert_eq!(probe(|t| (t != "libtoolize").then(|| "x".to_string())), Err("libtoolize".to_string()));
    }
}

//! Fault injection, a test hook: `OVM_FAULT=POINT` (or `POINT@PKG`) makes ovm kill itself with
//! SIGKILL the first time a build reaches POINT (for package PKG only, when given).
//!
//! Why: "SIGKILL at any moment never corrupts state" is a claim about the order in which the engine
//! writes things (outputs, then stamps; temp names, then renames). An external `kill -9` lands at a
//! random instant and almost always between two interesting steps; naming the instant makes the
//! tests exact and repeatable. The points sit between the engine's own writes — never inside a
//! library call — so each one is an instant at which a real crash could happen.
//!
//! [`POINTS`] is the complete list (tests pick from it; an unknown name is refused by [`check`] at
//! the start of a run, so a typo cannot turn a crash test into a test that never crashes).
//! The hook costs one load of a `OnceLock` per point when `OVM_FAULT` is unset. The variables are
//! read with the rest of ovm's settings (`settings`); [`arm`] records them for the process at the
//! CLI's entry, since the points sit deep in the engine and the fetcher, where no settings travel.
//!
//! `OVM_FAULT_ACTION=stop` makes the point stop the process with SIGSTOP instead (it goes on after
//! SIGCONT): a test can then change the world at that exact instant — fill the disk just before a
//! commit — and let the build meet it, which a kill cannot show.

use std::io::Write;
use std::sync::OnceLock;

use crate::settings::Settings;

/// The environment variable that arms the hook.
pub const ENV: &str = crate::settings::FAULT;
/// `kill` (the default) or `stop`: what happens at the armed point.
pub const ACTION_ENV: &str = crate::settings::FAULT_ACTION;

/// Every point, in the order a package's build reaches them. Per task (`fetch` … `package`):
/// `TASK.begin` (its `running` marker is set, nothing done), `TASK.end` (its work is done, no
/// stamp yet), `TASK.stamped` (stamp written, the work dir's record of done tasks not yet). And:
/// * `fetch.partial` — a download or mirror copy has written its first bytes to `sources/FILE.part`;
/// * `unpack.source` — after each source is placed (between two sources: a half-unpacked tree);
/// * `configure.running`, `compile.running`, `install.running` — while the step's sandbox runs
///   (fired once the step has written its first bytes to its log);
/// * `package.exchanged` — the new output is at `staging/…/PKG`, the old one not yet removed;
/// * `sstate.restored` — an output restored from the shared-state cache, its stamps not written;
/// * `tools.composed` — `toolchain/tools/` replaced, its signature not yet recorded;
/// * `image.begin`, `image.packed` — before packing the image; image written, its stamp not.
pub const POINTS: &[&str] = &[
    "fetch.begin",
    "fetch.partial",
    "fetch.end",
    "fetch.stamped",
    "unpack.begin",
    "unpack.source",
    "unpack.end",
    "unpack.stamped",
    "patch.begin",
    "patch.end",
    "patch.stamped",
    "configure.begin",
    "configure.running",
    "configure.end",
    "configure.stamped",
    "compile.begin",
    "compile.running",
    "compile.end",
    "compile.stamped",
    "install.begin",
    "install.running",
    "install.end",
    "install.stamped",
    "package.begin",
    "package.exchanged",
    "package.end",
    "package.stamped",
    "sstate.restored",
    "tools.composed",
    "image.begin",
    "image.packed",
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fault {
    point: String,
    package: Option<String>,
    stop: bool,
}

fn parse(value: &str, action: Option<&str>) -> Fault {
    let stop = action == Some("stop");
    match value.split_once('@') {
        Some((point, pkg)) => Fault { point: point.to_string(), package: Some(pkg.to_string()), stop },
        None => Fault { point: value.to_string(), package: None, stop },
    }
}

/// The armed fault of this process; unset (never armed) is the same as no fault.
static FAULT: OnceLock<Option<Fault>> = OnceLock::new();

/// Arms the hook as `settings` say (`OVM_FAULT`, `OVM_FAULT_ACTION`), once per process: a later
/// call changes nothing. Without a call no point fires.
pub fn arm(settings: &Settings) {
    let _ = FAULT.set(settings.fault.as_deref().map(|v| parse(v, settings.fault_action.as_deref())));
}

fn armed() -> Option<&'static Fault> {
    FAULT.get().and_then(Option::as_ref)
}

#[derive(Debug, thiserror::Error)]
#[error("{ENV}={given}: unknown fault point `{point}`; known points: {}", POINTS.join(" "))]
pub struct UnknownPoint {
    given: String,
    point: String,
}

/// Whether `point` is one a build can reach: a listed point, or `STEP.{begin,running,end,stamped}`
/// of a recipe's own `[[build.step]]` (those names are the recipe's, so they cannot be listed).
fn is_known(point: &str) -> bool {
    if POINTS.contains(&point) {
        return true;
    }
    let Some((step, when)) = point.rsplit_once('.') else { return false };
    let step_name = step.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && step.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    step_name && ["begin", "running", "end", "stamped"].contains(&when)
}

/// Refuses an `OVM_FAULT` that names no known point.
pub fn check() -> Result<(), UnknownPoint> {
    match armed() {
        Some(f) if !is_known(&f.point) => {
            let given = match &f.package {
                Some(p) => format!("{}@{p}", f.point),
                None => f.point.clone(),
            };
            Err(UnknownPoint { given, point: f.point.clone() })
        }
        _ => Ok(()),
    }
}

/// Whether reaching `point` for `package` would kill the process (for points that must prepare
/// something first, like waiting for a step to be under way).
pub fn is_armed(point: &str, package: &str) -> bool {
    debug_assert!(is_known(point), "fault point {point} is not a known point");
    armed().is_some_and(|f| f.point == point && f.package.as_deref().map_or(true, |p| p == package))
}

/// Kills the process with SIGKILL if `OVM_FAULT` names `point` (and `package`, or no package);
/// with `OVM_FAULT_ACTION=stop`, stops it with SIGSTOP until a SIGCONT instead.
pub fn point(point: &str, package: &str) {
    if is_armed(point, package) && armed().is_some_and(|f| f.stop) {
        let _ = writeln!(std::io::stderr(), "ovm: {ENV}: SIGSTOP at {point} ({package})");
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGSTOP);
        return;
    }
    if is_armed(point, package) {
        let _ = writeln!(std::io::stderr(), "ovm: {ENV}: SIGKILL at {point} ({package})");
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
        // SIGKILL cannot be caught or ignored; if it somehow was not delivered yet, wait for it
        // rather than let the build go on past the point it was asked to die at.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_unique_and_cover_every_task() {
        let mut seen = std::collections::BTreeSet::new();
        for p in POINTS {
            assert!(seen.insert(*p), "{p} listed twice");
        }
        for t in ["fetch", "unpack", "patch", "configure", "compile", "install", "package"] {
            for when in ["begin", "end", "stamped"] {
                assert!(seen.contains(format!("{t}.{when}").as_str()), "{t}.{when} missing");
            }
        }
    }

    #[test]
    fn points_of_a_recipes_own_steps_are_known_typos_are_not() {
        assert!(is_known("all-gcc.begin") && is_known("libgcc.running") && is_known("compile.end"));
        assert!(!is_known("compile.finished") && !is_known("Compile.begin") && !is_known("nodot"));
    }

    #[test]
    fn a_package_may_be_named() {
        assert_eq!(
            parse("compile.running", None),
            Fault { point: "compile.running".into(), package: None, stop: false }
        );
        assert_eq!(
            parse("package.exchanged@hello", Some("stop")),
            Fault { point: "package.exchanged".into(), package: Some("hello".into()), stop: true }
        );
    }
}

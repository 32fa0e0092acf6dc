//! What `ovm build` tells the person who ran it: a summary when it worked (packages built, reused
//! or taken from the shared-state cache, time, image path, size and sha256), and for each failed
//! task the last lines of its log and the log's path.

use std::io::Write;
use std::process::ExitCode;

use crate::project::Project;

use super::build::{self, BuildFailure, BuildOptions};
use super::package::{self, Outcome};

/// Runs `ovm build` and prints its outcome; the exit code is the process's.
pub fn build(project: &Project, opts: &BuildOptions, quiet: bool) -> ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    match build::build(project, opts, quiet) {
        Ok(summary) => {
            let mut out = stdout.lock();
            let count = |f: &dyn Fn(&Outcome) -> bool| summary.packages.iter().filter(|p| f(&p.outcome)).count();
            let built = count(&|o| matches!(o, Outcome::Built(_)));
            let cached = count(&|o| matches!(o, Outcome::FromCache));
            let reused = count(&|o| matches!(o, Outcome::Reused));
            if !quiet {
                for p in &summary.packages {
                    let _ = writeln!(out, "  {:<10} {:<16} {}", p.domain.to_string(), p.name, p.outcome);
                }
            }
            if built == 0 && cached == 0 {
                let _ = writeln!(out, "ovm: nothing to do: reused all {reused} packages");
            } else {
                let _ = writeln!(out, "ovm: {built} built, {cached} from cache, {reused} reused");
            }
            if let Some(img) = &summary.image {
                let _ = writeln!(
                    out,
                    "ovm: image {} ({} bytes, {:.2} MB){}",
                    img.path.display(),
                    img.size,
                    img.size as f64 / 1e6,
                    if img.repacked { "" } else { ", unchanged" }
                );
                let _ = writeln!(out, "ovm: manifest {}", img.manifest.display());
                let _ = writeln!(out, "{}  {}", img.sha256, img.path.display());
            }
            let _ = writeln!(out, "ovm: done in {:.1} s", summary.elapsed.as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(failure) => {
            print_failure(&failure, &mut stderr.lock());
            ExitCode::FAILURE
        }
    }
}

/// A run that stopped (`ovm build`, `ovm toolchain`): each failed task's log tail and path, the
/// run's own error, and how to go on.
pub(crate) fn print_failure(failure: &BuildFailure, err: &mut dyn Write) {
    for f in &failure.failures {
        package::report_failure(f, err);
    }
    if let Some(e) = &failure.error {
        let _ = writeln!(err, "ovm: error: {e}");
    }
    if !failure.failures.is_empty() {
        let _ = writeln!(err, "ovm: fix the cause and run the same command again: it resumes where it stopped");
    }
}

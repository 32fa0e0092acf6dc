//! `ovm list`, `ovm info`, `ovm status --json`, `ovm build --dry-run` and `ovm completions`:
//! arguments in, one `engine::inspect` call, its report printed as text or `--json`.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::arch::Arch;
use crate::engine::build::BuildOptions;
use crate::engine::inspect;
use crate::engine::status::Line;
use crate::project::Project;

/// Prints `text` to stdout; a closed pipe (`ovm list | head`) is not an error worth a message.
fn emit(text: &[u8]) -> anyhow::Result<()> {
    match std::io::stdout().lock().write_all(text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// `ovm status --json`; returns whether everything is built.
pub fn status_json(lines: Vec<Line>) -> anyhow::Result<bool> {
    let report = inspect::StatusReport::new(lines);
    emit(inspect::to_json(&report)?.as_bytes())?;
    Ok(report.all_built)
}

/// Prints `report` as `--json` asked, else as `text` writes it for a person.
fn print_report<T: serde::Serialize>(
    report: &T,
    json: bool,
    text: impl FnOnce(&T, &mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    if json {
        out = inspect::to_json(report)?.into_bytes();
    } else {
        text(report, &mut out)?;
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

pub fn list(project: &Project, arch: Option<Arch>, json: bool) -> anyhow::Result<ExitCode> {
    print_report(&inspect::list(project, arch)?, json, inspect::print_list)
}

pub fn info(project: &Project, pkg: &str, arch: Option<Arch>, json: bool) -> anyhow::Result<ExitCode> {
    let arch = arch.unwrap_or_else(Arch::host_or_default);
    let info = inspect::info(project, pkg, arch)?;
    print_report(&info, json, |i, out| inspect::print_info(project.root(), i, out))
}

pub fn dry_run(project: &Project, opts: &BuildOptions, json: bool) -> anyhow::Result<ExitCode> {
    print_report(&inspect::dry_run(project, opts)?, json, inspect::print_plan)
}

/// The command line as completions offer it: clap_complete walks hidden subcommands too
/// (clap-rs/clap#1335) and clap cannot remove one, so the root is rebuilt from the parser's own
/// arguments and its visible subcommands (nothing restated, so nothing can drift).
fn visible_command() -> clap::Command {
    let full = super::Cli::command();
    clap::Command::new("ovm")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut visible_command(), "ovm", &mut out);
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

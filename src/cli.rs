//! Command-line interface: clap definitions, and one call into the library per command.
//! Nothing here decides how a build works; it only turns arguments into calls.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::project::Project;

#[derive(Debug, Parser)]
#[command(
    name = "ovm",
    version,
    about = "Build a bootable busybox + musl initrd from recipes, every package in an unprivileged sandbox",
    arg_required_else_help = true
)]
pub struct Cli {
    /// Project directory (default: the nearest directory at or above the current one with recipes/ and config/)
    #[arg(short = 'C', long = "project", global = true, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// More output (-v: debug, -vv: trace)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less output (warnings and errors only)
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the project root and its configuration as ovm understood it
    Config,
    /// Run a command in the strict build sandbox (exactly the given mounts, no network)
    Sandbox(crate::sandbox::cli::SandboxArgs),
    /// Check that this host can run the build sandbox; prints the fix for each problem
    Doctor,
    /// Internal: run an OCI spec given as JSON (how multi-threaded callers start a sandbox)
    #[command(name = "__sandbox-exec", hide = true)]
    SandboxExec(crate::sandbox::cli::ExecArgs),
}

impl Cli {
    pub fn project(&self) -> anyhow::Result<Project> {
        match &self.project {
            Some(dir) => Project::open(dir).with_context(|| format!("opening project {}", dir.display())),
            None => {
                let cwd = std::env::current_dir().context("reading the current directory")?;
                Ok(Project::discover(&cwd)?)
            }
        }
    }
}

/// Runs one command; the returned code is the process exit status.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Config => {
            let project = cli.project()?;
            println!("project: {}", project.root().display());
            println!("{:#?}", project.config);
            Ok(ExitCode::SUCCESS)
        }
        Command::Sandbox(args) => Ok(crate::sandbox::cli::sandbox(args)),
        Command::Doctor => Ok(crate::sandbox::cli::doctor()),
        Command::SandboxExec(args) => Ok(crate::sandbox::cli::exec(args)),
    }
}

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
    /// Fetch and verify sources into sources/ (parallel, resumable, mirror-aware, sha256-checked)
    Download {
        /// An architecture (every recipe) or package names (each with its dependencies); none: every recipe
        #[arg(value_name = "ARCH|PKG")]
        items: Vec<String>,
        /// Concurrent downloads (default: fetch.jobs in config/ovm.toml)
        #[arg(short, long)]
        jobs: Option<usize>,
    },
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
        Command::Download { items, jobs } => {
            let project = cli.project()?;
            let recipes = crate::recipe::RecipeSet::load(&project)?;
            let mut fetcher = crate::fetch::Fetcher::new(&project)?;
            if let Some(jobs) = jobs {
                fetcher.set_jobs(*jobs);
            }
            let sources: Vec<_> = recipes.select(items)?.into_iter().flat_map(|r| &r.sources).collect();
            let report = fetcher.fetch_all(&sources);
            println!("{report}");
            Ok(if report.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

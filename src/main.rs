//! The `ovm` binary: parse arguments, set up logging, run one command, turn errors into a message
//! and a non-zero exit status. All behaviour lives in the library.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = ovm::cli::Cli::parse();
    let default_level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("OVM_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_writer(std::io::stderr)
        .init();

    match ovm::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ovm: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

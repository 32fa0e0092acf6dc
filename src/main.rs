//! The `ovm` binary: parse arguments, set up logging, run one command, turn errors into a message
//! and a non-zero exit status. All behaviour lives in the library.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // The environment, read once: everything below gets ovm's configuration from here.
    let settings = ovm::settings::Settings::from_env();
    // One process per sandbox (`ovm sandbox`, the engine's `ovm __sandbox-exec`): those skip
    // building the whole CLI and the log subscriber, which they do not use.
    if let Some(code) = ovm::sandbox::cli::fast_path(&settings) {
        return code;
    }
    // A bare `ovm` asks what ovm can do, as a bare `make` does in a Makefile project: the help goes
    // to stdout and the status is 0. clap treats it as a usage error (stderr, status 2), which
    // stays right for incomplete invocations such as `ovm -q` or `ovm build`.
    if std::env::args_os().len() <= 1 {
        return match ovm::cli::Cli::command().print_help() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    let cli = ovm::cli::Cli::parse();
    let default_level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    // `OVM_LOG` when it parses (as `EnvFilter::try_from_env` would take it), else -q / -v.
    let filter = settings
        .log
        .as_deref()
        .and_then(|value| EnvFilter::builder().parse(value).ok())
        .unwrap_or_else(|| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && !settings.no_color)
        .without_time()
        // Through the build's live progress lines while they are drawn, so neither tears the other.
        .with_writer(ovm::cli::progress::log_writer)
        .init();

    match ovm::cli::run(cli, &settings) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ovm: error: {}", report(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-separated, leaving out a cause that the text already ends with:
/// most of ovm's errors quote their source in their own message ("cannot read X: {source}").
fn report(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

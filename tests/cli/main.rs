//! The everyday command line as a person meets it: help and usage errors, the remembered
//! toolchain, progress and failure reports, the inspection commands and their `--json`, and the
//! sharp edges (pack with nothing built, clean asking first). Terminal behaviour is tested through
//! a pseudo-terminal (`terminal_support`).
//!
//! One test binary per subsystem, one module per test file: `cargo test --test cli` runs the group,
//! `cargo test --test cli cli_bare::` one file's tests.

#[path = "../build_support/mod.rs"]
mod build_support;
#[path = "../engine_fixture/mod.rs"]
mod engine_fixture;
#[path = "../fetch_support/mod.rs"]
mod fetch_support;
#[path = "../terminal_support/mod.rs"]
mod terminal_support;

mod cli_bare;
mod cli_completions;
mod cli_dry_run;
mod cli_failures;
mod cli_graph;
mod cli_inspect;
mod cli_menuconfig;
mod cli_progress;
mod cli_toolchain;
mod standin;

//! The sandbox: isolation, exit and signals, limits, terminals, `ovm sandbox` and `ovm doctor`,
//! OCI bundles.
//!
//! One test binary per subsystem, one module per test file: ovm and its dependencies are linked
//! once per group instead of once per file. `cargo test --test sandbox` runs the group,
//! `cargo test --test sandbox sandbox_bundle::` one file's tests.

#[macro_use] // `both!`, for the isolation cases
#[path = "../sandbox_support/mod.rs"]
mod sandbox_support;
#[path = "../terminal_support/mod.rs"]
mod terminal_support;

mod sandbox_bundle;
mod sandbox_cli;
mod sandbox_doctor;
mod sandbox_exit;
mod sandbox_isolation;
mod sandbox_limits;
mod sandbox_tty;

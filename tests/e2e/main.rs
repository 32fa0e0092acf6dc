//! Whole builds of the repository's own recipes, `ovm shell`, and the initrd's reproducibility.
//!
//! One test binary per subsystem, one module per test file: ovm and its dependencies are linked
//! once per group instead of once per file. `cargo test --test e2e` runs the group,
//! `cargo test --test e2e e2e_aarch64::` one file's tests.

#[path = "../build_support/mod.rs"]
mod build_support;
#[path = "../e2e_support/mod.rs"]
mod e2e_support;
#[path = "../e2e_support/root_disk.rs"]
mod root_disk;
#[path = "../sandbox_support/mod.rs"]
mod sandbox_support;
#[path = "../terminal_support/mod.rs"]
mod terminal_support;

mod e2e_aarch64;
mod e2e_set;
mod e2e_shell;
mod e2e_x86_64;
mod repro_check;
mod repro_initrd;

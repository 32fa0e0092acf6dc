//! ovm inside containers: rootless Podman, rootful Docker, and a runtime's masked `/proc`
//! without one.
//!
//! One test binary per subsystem, one module per test file: ovm and its dependencies are linked
//! once per group instead of once per file. `cargo test --test container` runs the group,
//! `cargo test --test container container_docker::` one file's tests.

#[path = "../build_support/mod.rs"]
mod build_support;
#[path = "../container_support/mod.rs"]
mod container_support;
#[path = "../e2e_support/mod.rs"]
mod e2e_support;

mod container_docker;
mod container_podman;
mod container_proc;

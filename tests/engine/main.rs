//! The build engine on small test recipes: hermeticity, incremental rebuilds, parallelism,
//! resume, named steps, native tools, the remote cache, injected faults, hostile inputs, the gcc toolchain's recipes and tasks.
//!
//! One test binary per subsystem, one module per test file: ovm and its dependencies are linked
//! once per group instead of once per file. `cargo test --test engine` runs the group,
//! `cargo test --test engine engine_hermetic::` one file's tests.

#[path = "../build_support/mod.rs"]
mod build_support;
#[path = "../cache_support/mod.rs"]
mod cache_support;
#[path = "../engine_fixture/mod.rs"]
mod engine_fixture;
#[path = "../sandbox_support/mod.rs"]
mod sandbox_support;

mod engine_cache;
mod engine_hermetic;
mod engine_incremental;
mod engine_native;
mod engine_packages;
mod engine_packaging;
mod engine_parallel;
mod engine_real;
mod engine_resume;
mod engine_smoke;
mod engine_steps;
mod engine_sysroot;
mod faults_disk;
mod faults_random;
mod hostile_inputs;
mod toolchain_engine;
mod toolchain_recipes;

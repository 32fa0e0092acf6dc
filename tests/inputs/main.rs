//! What goes into a build: downloads and mirrors, archives, patch series, recipe validation.
//!
//! One test binary per subsystem, one module per test file: ovm and its dependencies are linked
//! once per group instead of once per file. `cargo test --test inputs` runs the group,
//! `cargo test --test inputs fetch_archives::` one file's tests.

#[path = "../fetch_support/mod.rs"]
mod fetch_support;
#[path = "../unpack_support/mod.rs"]
mod unpack_support;

mod fetch_archives;
mod fetch_http;
mod fetch_mirror;
mod patch_series;
mod recipe_validation;
mod unpack_formats;
mod unpack_hostile;

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

/// Copies a directory tree of plain files (the fixtures these tests start from).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

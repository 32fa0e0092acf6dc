//! The image: `ovm pack`, its determinism, the cpio round trip, its kernel modules, booting it under QEMU.
//!
//! One test binary per subsystem, one module per test file: ovm and its dependencies are linked
//! once per group instead of once per file. `cargo test --test pack` runs the group,
//! `cargo test --test pack boot_qemu::` one file's tests.

#[path = "../pack_support/mod.rs"]
mod pack_support;

mod boot_qemu;
mod pack_cli;
mod pack_determinism;
mod pack_kernel_modules;
mod pack_roundtrip;

//! Link a glibc build of `ovm` as a non-PIE (fixed-address) binary.
//!
//! The default build is static, non-PIE musl (`.cargo/config.toml`, which says why); this covers
//! the glibc build (`CARGO_BUILD_TARGET=x86_64-unknown-linux-gnu`, or `RUSTFLAGS` set, which
//! replaces the config's flags). Every sandbox is one `ovm` process start (`ovm sandbox`, and the
//! engine's `ovm __sandbox-exec` per build step), and as a position-independent executable ovm
//! spends a large share of that start in the dynamic loader: ~23,000 relative relocations applied
//! to 430 KB of read-only-after-relocation data, i.e. a copy-on-write page fault for each of its
//! ~100 pages, in every process (measured with perf: ~0.3 ms of a ~3 ms sandbox; see
//! docs/performance.md "Sandbox start-up"). Linked at a fixed address, those pointers are final in the
//! file and nothing is written at start.
//!
//! Only the link step of this package's binaries changes (`rustc-link-arg-bins`): the object code
//! stays position-independent, so proc macros, build scripts, tests and the library are untouched.
//! What is given up is address-space randomisation of ovm's own image (its libraries, heap, stack
//! and mappings stay randomised). `OVM_PIE=1 cargo build` keeps the usual PIE link.

// A build script's inputs are environment variables (cargo's `CARGO_CFG_*`, and `OVM_PIE`): it
// runs at build time, apart from ovm, whose own settings are read in src/settings.rs.
#[allow(clippy::disallowed_methods)]
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=OVM_PIE");
    let pie_requested = std::env::var_os("OVM_PIE").is_some_and(|v| v == "1");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    // A static build (`-C target-feature=+crt-static`) gets its link mode from rustc, which a
    // `-no-pie` after its `-static-pie` would turn into a broken hybrid.
    let crt_static = std::env::var("CARGO_CFG_TARGET_FEATURE").is_ok_and(|f| f.split(',').any(|f| f == "crt-static"));
    // `-no-pie` is a gcc/clang driver flag; Linux with glibc is the only platform ovm supports
    // (and the one whose default toolchain links PIE).
    if !pie_requested && !crt_static && target_os == "linux" && target_env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}

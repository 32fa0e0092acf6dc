//! ovm: recipes → sources → sandboxed package builds → a deterministic, bootable initrd.
//!
//! Data flows top-down through one module per pipeline stage (see README "Architecture"):
//! `recipe` → `fetch` → `unpack` → `patch` → `sandbox` → `engine` → `pack` → `boot`.

pub mod arch;
pub mod boot;
pub mod cli;
pub mod digest;
pub mod engine;
pub mod fault;
pub mod fetch;
pub mod file_kind;
pub mod layout;
pub mod pack;
pub mod patch;
pub mod project;
pub mod recipe;
pub mod sandbox;
pub mod settings;
pub mod signature;
pub mod size;
pub mod toolchain;
pub mod tree;
pub mod unpack;

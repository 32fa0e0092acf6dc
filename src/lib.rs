//! ovm: recipes → sources → sandboxed package builds → a deterministic, bootable initrd.
//!
//! One module per pipeline stage: `recipe` → `fetch` → `unpack` → `patch` → sandboxed steps
//! (`sandbox`, run by `engine`) → `pack` → `boot`. ARCHITECTURE.md gives every module its layer
//! (a module uses only lower layers; the `layering` test checks it) and says how they fit.

pub mod arch;
pub mod boot;
pub mod cli;
pub mod digest;
pub mod elf;
pub mod engine;
pub mod error_text;
pub mod fault;
pub mod feed;
pub mod fetch;
pub mod file_kind;
pub mod graph;
pub mod image;
pub mod kernel_modules;
pub mod layout;
pub mod listing;
pub mod pack;
pub mod patch;
pub mod project;
pub mod qa;
pub mod recipe;
pub mod remote_cache;
pub mod sandbox;
pub mod sbom;
pub mod settings;
pub mod signature;
pub mod size;
pub mod split;
pub mod toolchain;
pub mod tree;
pub mod unpack;

#[cfg(test)]
mod doc_refs;
#[cfg(test)]
mod layering;

//! The build engine: recipes become per-package task chains (fetch → unpack → patch → configure →
//! compile → install → package), each task guarded by a signature stamp, run in the sandbox, in
//! parallel across packages under one jobserver, with the state kept on the host.

pub mod context_log;
pub mod env;
pub mod lock;
pub mod scheduler;
pub mod signature;
pub mod state;
pub mod steps;
pub mod tree;

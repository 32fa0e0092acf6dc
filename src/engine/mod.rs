//! The build engine: recipes become per-package task chains (fetch → unpack → patch → configure →
//! compile → install → package), each task guarded by a signature stamp, run in the sandbox, in
//! parallel across packages under one jobserver, with the state kept on the host.

pub mod build;
pub mod clean;
pub mod context_log;
pub mod cross;
mod ctx;
pub mod devshell;
pub mod env;
mod error;
pub mod freshness;
pub mod lock;
pub mod package;
pub mod report;
pub mod scheduler;
pub mod sstate;
pub mod state;
pub mod status;
pub mod step;
pub mod steplog;
pub mod steps;
pub mod task;

pub use ctx::{Ctx, Isolation};
pub use error::EngineError;

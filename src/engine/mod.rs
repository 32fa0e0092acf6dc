//! The build engine: recipes become per-package task chains (fetch → unpack → patch →
//! [autoreconf] → configure → compile → install → package), each task guarded by a signature
//! stamp, run in the sandbox, in parallel across packages under one jobserver, with the state kept
//! on the host.

// Public: what the CLI calls (`build`, `choice`, `clean`, `cross`, `devshell`, `inspect`, `menuconfig`,
// `progress`, `report`, `status`) and the integration tests read (`context_log`). The rest is the
// engine's inside.
mod autoreconf;
pub mod build;
pub mod cache;
pub mod choice;
pub mod clean;
mod contents;
pub mod context_log;
pub mod cross;
mod ctx;
pub mod devshell;
pub(crate) mod env;
mod error;
pub(crate) mod freshness;
mod image;
pub mod inspect;
pub mod legal;
pub(crate) mod lock;
pub mod menuconfig;
pub(crate) mod package;
mod packaging;
pub mod progress;
pub mod report;
pub(crate) mod scheduler;
pub(crate) mod setscene;
pub(crate) mod sstate;
pub(crate) mod state;
pub mod status;
pub(crate) mod step;
pub(crate) mod steplog;
pub(crate) mod steps;
pub(crate) mod task;

pub use error::EngineError;

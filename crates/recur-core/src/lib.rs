//! Foundations shared by every recur crate: the error type, the YAML config,
//! a seeded random generator, atomic file writes and the strict checkpoint
//! format. Nothing here knows about a particular model or data set; crates
//! further down the pipe (data -> model -> train -> serve) build on it.

pub mod checkpoint;
pub mod config;
pub mod config_file;
pub mod contain;
pub mod dirwrite;
pub mod error;
pub mod fsx;
pub mod job_a;
pub mod lvm_config;
pub mod pickle_guard;
pub mod progress;
pub mod rng;
pub mod stats;
pub mod terminal;

pub use error::{Error, Result};

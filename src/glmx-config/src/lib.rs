//! glmx config engine.
//!
//! Pure Rust: no torch, no Python. Templates (minijinja), YAML with tags, Hydra-style
//! composition and the node graph that the Python layer materializes.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod codegen;
pub mod compose;
pub mod error;
pub mod graph;
pub mod interp;
pub mod limits;
pub mod meta;
pub mod overrides;
pub mod tags;
pub mod template;
pub mod tree;
pub mod yaml;

pub use error::{ConfigError, Result};

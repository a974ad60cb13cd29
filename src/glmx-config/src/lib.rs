//! glmx config engine.
//!
//! Pure Rust: no torch, no Python. Templates (minijinja), YAML with tags, Hydra-style
//! composition and the node graph that the Python layer materializes.

pub mod error;

pub use error::{ConfigError, Result};

//! glmx core: the parts of the training stack that run without Python.
//!
//! The data loader and the checkpoint coordinator live here and use `tch` (the training loop is
//! Python: see "Trainer: who owns what" in docs/development.md).
//! Nothing in this crate holds the GIL; the bindings in `glmx-py` pass an [`cancel::Interrupt`]
//! so long calls can stop at step boundaries when the user presses Ctrl-C.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cancel;
pub mod ckpt;

pub mod data;
pub mod error;

pub use error::{CoreError, Result};

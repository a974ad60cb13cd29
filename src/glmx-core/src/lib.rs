//! glmx core: the parts of the training stack that run without Python.
//!
//! The data loader, the checkpoint coordinator and the training loop live here and use `tch`.
//! Nothing in this crate holds the GIL; the bindings in `glmx-py` pass an [`cancel::Interrupt`]
//! so long calls can stop at step boundaries when the user presses Ctrl-C.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cancel;
pub mod ckpt;

pub mod data;
pub mod error;
pub mod train;

pub use error::{CoreError, Result};

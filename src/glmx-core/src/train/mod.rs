//! The training loop: epochs, steps, gradient accumulation, backward, clipping, finite-loss
//! checks and stopping, in Rust.
//!
//! The loop owns the order of operations; everything user-defined (fetching a batch and running
//! `training_step`, the optimizer and scheduler, callbacks, logging) sits behind [`FitHooks`],
//! which the Python bindings implement by taking the GIL for each call. The loop itself runs
//! without the GIL, so `backward()` never blocks other Python threads.

mod clip;
mod fit;

pub use clip::{clip_grad_norm, clip_grad_value, ClipAlgorithm};
pub use fit::{fit, Control, FitConfig, FitHooks, FitState, ForwardOutcome};

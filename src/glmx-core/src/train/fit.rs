//! `fit`: the order of operations of one training run.

use tch::Tensor;

use super::clip::{clip_grad_norm, clip_grad_value, ClipAlgorithm};
use crate::cancel::Interrupt;
use crate::error::{CoreError, Result};

/// What the loop needs to know; the Python `Trainer` fills it from its arguments.
#[derive(Debug, Clone)]
pub struct FitConfig {
    /// Stop after this many optimizer steps (`None`: no limit).
    pub max_steps: Option<u64>,
    /// Stop after this many epochs (`None`: no limit; at least one limit must be set).
    pub max_epochs: Option<u64>,
    /// Batches whose gradients are summed before one optimizer step.
    pub accumulate_grad_batches: u64,
    /// Gradient clipping threshold and how it applies.
    pub gradient_clip: Option<(f64, ClipAlgorithm)>,
    /// Train batches per epoch at most (`limit_train_batches` as a count).
    pub limit_train_batches: Option<u64>,
    /// Batches in one epoch when known (`len(loader)`, capped by the limit): the last batch
    /// then closes an unfinished accumulation window itself, so that step is logged and
    /// checkpointed like any other (Lightning's `is_last_batch`).
    pub batches_per_epoch: Option<u64>,
    /// Stop with an error naming the step when the loss is NaN or infinite.
    pub check_finite_loss: bool,
    /// Call [`FitHooks::before_optimizer_step`] before clipping (gradient-scaler unscaling,
    /// `on_before_optimizer_step` callbacks); off when nothing implements it.
    pub before_optimizer_step_hook: bool,
    /// Call [`FitHooks::after_backward`] after each backward pass (`on_after_backward`).
    pub after_backward_hook: bool,
    /// Pass the loss through [`FitHooks::scale_loss`] before backward (a gradient scaler).
    pub scale_loss: bool,
}

impl FitConfig {
    fn validate(&self) -> Result<()> {
        if self.max_steps.is_none() && self.max_epochs.is_none() {
            return Err(CoreError::Train(
                "set max_steps or max_epochs: a run with neither never ends".into(),
            ));
        }
        if self.accumulate_grad_batches == 0 {
            return Err(CoreError::Train(
                "accumulate_grad_batches must be at least 1".into(),
            ));
        }
        if let Some((value, _)) = self.gradient_clip {
            if !(value.is_finite() && value > 0.0) {
                return Err(CoreError::Train(format!(
                    "gradient_clip_val must be a positive number, got {value}"
                )));
            }
        }
        Ok(())
    }
}

/// Counters of a run; saved in checkpoints and restored on resume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FitState {
    /// Optimizer steps taken.
    pub global_step: u64,
    /// Current epoch (0-based).
    pub epoch: u64,
    /// Index of the current batch within the epoch.
    pub batch_idx: u64,
    /// Batches whose gradients are accumulated but not yet stepped.
    pub pending_batches: u64,
}

/// What one call of `forward` produced.
pub enum ForwardOutcome {
    /// A loss to back-propagate.
    Loss(Tensor),
    /// `training_step` returned `None`: skip this batch.
    Skip,
    /// The epoch's data is exhausted.
    EndOfEpoch,
}

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep training.
    Continue,
    /// Stop after this point (early stopping, a stop command, a signal).
    Stop,
}

/// The user-defined parts of training, called at step boundaries.
pub trait FitHooks {
    /// Trainable parameters, for clipping (shares storage with the model's).
    fn parameters(&self) -> &[Tensor];
    /// Called before the first batch of `state.epoch`.
    fn start_epoch(&mut self, state: &FitState) -> Result<Control>;
    /// Fetches the next batch and runs `training_step` on it.
    fn forward(&mut self, state: &FitState) -> Result<ForwardOutcome>;
    /// Back-propagates `loss` (already divided by `accumulate_grad_batches`). The Python
    /// bindings override this to release the GIL for the duration of the backward pass.
    fn backward(&mut self, loss: Tensor) -> Result<()> {
        Ok(loss.f_backward()?)
    }
    /// Scales the loss before backward (only with [`FitConfig::scale_loss`]).
    fn scale_loss(&mut self, loss: Tensor) -> Result<Tensor> {
        Ok(loss)
    }
    /// After each backward pass (only with [`FitConfig::after_backward_hook`]).
    fn after_backward(&mut self) -> Result<()> {
        Ok(())
    }
    /// Before clipping and the optimizer step, with the accumulated gradients (only with
    /// [`FitConfig::before_optimizer_step_hook`]): unscales them and runs callbacks.
    fn before_optimizer_step(&mut self) -> Result<()> {
        Ok(())
    }
    /// Runs the optimizer: step, zero_grad, per-step LR schedulers. Gradients are already
    /// accumulated and clipped; `grad_norm` is the norm before clipping (norm clipping only).
    fn optimizer_step(&mut self, state: &FitState, grad_norm: Option<f64>) -> Result<()>;
    /// After a batch (callbacks, logging). `loss` is the unscaled, detached batch loss (`None`
    /// for a skipped batch); `stepped` says whether an optimizer step just happened.
    fn end_batch(
        &mut self,
        state: &FitState,
        loss: Option<&Tensor>,
        stepped: bool,
    ) -> Result<Control>;
    /// After the last batch of an epoch (validation, epoch schedulers, checkpoints).
    fn end_epoch(&mut self, state: &FitState) -> Result<Control>;
}

fn ensure_finite(loss: &Tensor, state: &FitState) -> Result<()> {
    let value = loss.f_double_value(&[])?;
    if value.is_finite() {
        return Ok(());
    }
    Err(CoreError::Train(format!(
        "loss is {value} at global step {} (epoch {}, batch {}); lower the learning rate, \
         enable gradient clipping, or pass detect_nonfinite_loss=False to continue anyway",
        state.global_step, state.epoch, state.batch_idx
    )))
}

fn reached_max_steps(config: &FitConfig, state: &FitState) -> bool {
    config.max_steps.is_some_and(|max| state.global_step >= max)
}

/// Runs the pre-step hook, clips, counts the step and calls the optimizer hook.
fn take_step(config: &FitConfig, state: &mut FitState, hooks: &mut dyn FitHooks) -> Result<()> {
    if config.before_optimizer_step_hook {
        hooks.before_optimizer_step()?;
    }
    let grad_norm = match config.gradient_clip {
        None => None,
        Some((value, algorithm)) => match algorithm {
            ClipAlgorithm::Norm => Some(clip_grad_norm(hooks.parameters(), value)?),
            ClipAlgorithm::Value => {
                clip_grad_value(hooks.parameters(), value)?;
                None
            }
        },
    };
    state.global_step += 1;
    state.pending_batches = 0;
    hooks.optimizer_step(state, grad_norm)
}

/// Runs training from `state` until a limit is reached or a hook says stop.
///
/// Order per batch: `forward` -> backward of `loss / accumulate_grad_batches` -> (every
/// `accumulate_grad_batches` batches, and at the end of an epoch with pending gradients) clip ->
/// `optimizer_step` -> `end_batch`. `interrupt` is polled once per batch.
pub fn fit(
    config: &FitConfig,
    state: &mut FitState,
    hooks: &mut dyn FitHooks,
    interrupt: &dyn Interrupt,
) -> Result<()> {
    config.validate()?;
    let accumulate = config.accumulate_grad_batches;
    while !reached_max_steps(config, state) && config.max_epochs.is_none_or(|m| state.epoch < m) {
        if hooks.start_epoch(state)? == Control::Stop {
            return Ok(());
        }
        loop {
            interrupt.check()?;
            if config
                .limit_train_batches
                .is_some_and(|n| state.batch_idx >= n)
            {
                break;
            }
            let loss = match hooks.forward(state)? {
                ForwardOutcome::EndOfEpoch => break,
                ForwardOutcome::Skip => None,
                ForwardOutcome::Loss(loss) => {
                    if config.check_finite_loss {
                        ensure_finite(&loss, state)?;
                    }
                    let scaled = if accumulate > 1 {
                        loss.f_div_scalar(accumulate as f64)?
                    } else {
                        loss.shallow_clone()
                    };
                    let scaled = if config.scale_loss {
                        hooks.scale_loss(scaled)?
                    } else {
                        scaled
                    };
                    hooks.backward(scaled)?;
                    if config.after_backward_hook {
                        hooks.after_backward()?;
                    }
                    state.pending_batches += 1;
                    Some(loss.detach())
                }
            };
            let last_batch = config
                .batches_per_epoch
                .is_some_and(|n| state.batch_idx + 1 >= n);
            let stepped =
                state.pending_batches >= accumulate || (last_batch && state.pending_batches > 0);
            if stepped {
                take_step(config, state, hooks)?;
            }
            let control = hooks.end_batch(state, loss.as_ref(), stepped)?;
            state.batch_idx += 1;
            if control == Control::Stop || reached_max_steps(config, state) {
                return Ok(());
            }
        }
        if state.pending_batches > 0 {
            // Lightning steps the remainder of an accumulation window at the end of an epoch.
            take_step(config, state, hooks)?;
        }
        let control = hooks.end_epoch(state)?;
        state.epoch += 1;
        state.batch_idx = 0;
        if control == Control::Stop {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

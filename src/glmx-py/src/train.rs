//! Binding of the Rust training loop: a Python hooks object drives `glmx_core::train::fit`.
//!
//! The loop holds the GIL while it calls the hooks (they are Python) and releases it for the
//! backward pass, the long native part of a step; re-taking a held GIL costs nothing, so a step
//! pays for one release instead of one per hook. A Python exception in a hook (the user's
//! `training_step`, a callback) stops the loop and is re-raised unchanged.

use std::sync::Mutex;

use glmx_core::train::{
    self, ClipAlgorithm, Control, FitConfig, FitHooks, FitState, ForwardOutcome,
};
use glmx_core::CoreError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_tch::tch::Tensor;

use crate::errors::{BindingError, BindingResult};
use crate::{gil, tensor};

/// Calls into the Python object that implements the hooks (`glmx.trainer._loop.FitLoopHooks`).
struct PyHooks {
    hooks: Py<PyAny>,
    end_of_epoch: Py<PyAny>,
    params: Vec<Tensor>,
    failure: Mutex<Option<PyErr>>,
}

impl PyHooks {
    /// Runs `call` with the GIL; a Python error is stored and reported as `CoreError::Hook`.
    fn with_py<T>(&self, call: impl FnOnce(Python<'_>) -> PyResult<T>) -> Result<T, CoreError> {
        Python::with_gil(|py| {
            call(py).map_err(|err| {
                if let Ok(mut slot) = self.failure.lock() {
                    *slot = Some(err);
                }
                CoreError::Hook
            })
        })
    }

    fn control(value: &Bound<'_, PyAny>) -> PyResult<Control> {
        Ok(if value.is_truthy()? {
            Control::Stop
        } else {
            Control::Continue
        })
    }
}

fn state_args(state: &FitState) -> (u64, u64, u64) {
    (state.global_step, state.epoch, state.batch_idx)
}

impl FitHooks for PyHooks {
    fn parameters(&self) -> &[Tensor] {
        &self.params
    }

    fn start_epoch(&mut self, state: &FitState) -> Result<Control, CoreError> {
        let hooks = &self.hooks;
        self.with_py(|py| {
            Self::control(
                &hooks
                    .call_method1(py, "start_epoch", state_args(state))?
                    .into_bound(py),
            )
        })
    }

    fn forward(&mut self, state: &FitState) -> Result<ForwardOutcome, CoreError> {
        let (hooks, end) = (&self.hooks, &self.end_of_epoch);
        self.with_py(|py| {
            let out = hooks
                .call_method1(py, "forward", state_args(state))?
                .into_bound(py);
            if out.is_none() {
                Ok(ForwardOutcome::Skip)
            } else if out.is(end) {
                Ok(ForwardOutcome::EndOfEpoch)
            } else {
                Ok(ForwardOutcome::Loss(tensor::from_py(&out)?))
            }
        })
    }

    fn backward(&mut self, loss: Tensor) -> Result<(), CoreError> {
        // `Tensor` is Send but not Sync: move it into the GIL-free closure.
        Python::with_gil(|py| py.allow_threads(move || loss.f_backward()))?;
        Ok(())
    }

    fn scale_loss(&mut self, loss: Tensor) -> Result<Tensor, CoreError> {
        let hooks = &self.hooks;
        self.with_py(|py| {
            let scaled = hooks.call_method1(py, "scale_loss", (tensor::to_py(py, &loss)?,))?;
            tensor::from_py(scaled.bind(py))
        })
    }

    fn after_backward(&mut self) -> Result<(), CoreError> {
        let hooks = &self.hooks;
        self.with_py(|py| hooks.call_method0(py, "after_backward").map(|_| ()))
    }

    fn before_optimizer_step(&mut self) -> Result<(), CoreError> {
        let hooks = &self.hooks;
        self.with_py(|py| hooks.call_method0(py, "before_optimizer_step").map(|_| ()))
    }

    fn optimizer_step(
        &mut self,
        state: &FitState,
        grad_norm: Option<f64>,
    ) -> Result<(), CoreError> {
        let hooks = &self.hooks;
        self.with_py(|py| {
            let (step, epoch, batch) = state_args(state);
            hooks
                .call_method1(py, "optimizer_step", (step, epoch, batch, grad_norm))
                .map(|_| ())
        })
    }

    fn end_batch(
        &mut self,
        state: &FitState,
        loss: Option<&Tensor>,
        stepped: bool,
    ) -> Result<Control, CoreError> {
        let hooks = &self.hooks;
        self.with_py(|py| {
            let loss = match loss {
                Some(t) => tensor::to_py(py, t)?,
                None => py.None(),
            };
            let (step, epoch, batch) = state_args(state);
            let out = hooks.call_method1(py, "end_batch", (step, epoch, batch, loss, stepped))?;
            Self::control(&out.into_bound(py))
        })
    }

    fn end_epoch(&mut self, state: &FitState) -> Result<Control, CoreError> {
        let hooks = &self.hooks;
        self.with_py(|py| {
            Self::control(
                &hooks
                    .call_method1(py, "end_epoch", state_args(state))?
                    .into_bound(py),
            )
        })
    }
}

fn opt<'py, T: FromPyObject<'py>>(config: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<T>> {
    match config.get_item(key)? {
        Some(value) if !value.is_none() => value.extract().map(Some),
        _ => Ok(None),
    }
}

fn fit_config(config: &Bound<'_, PyDict>) -> BindingResult<FitConfig> {
    let clip_val: Option<f64> = opt(config, "gradient_clip_val")?;
    let algorithm: String =
        opt(config, "gradient_clip_algorithm")?.unwrap_or_else(|| "norm".into());
    let algorithm: ClipAlgorithm = algorithm.parse()?;
    Ok(FitConfig {
        max_steps: opt(config, "max_steps")?,
        max_epochs: opt(config, "max_epochs")?,
        accumulate_grad_batches: opt(config, "accumulate_grad_batches")?.unwrap_or(1),
        gradient_clip: clip_val.map(|v| (v, algorithm)),
        limit_train_batches: opt(config, "limit_train_batches")?,
        batches_per_epoch: opt(config, "batches_per_epoch")?,
        check_finite_loss: opt(config, "detect_nonfinite_loss")?.unwrap_or(true),
        before_optimizer_step_hook: opt(config, "before_optimizer_step_hook")?.unwrap_or(false),
        after_backward_hook: opt(config, "after_backward_hook")?.unwrap_or(false),
        scale_loss: opt(config, "scale_loss")?.unwrap_or(false),
    })
}

/// Runs the training loop. `state` is `(global_step, epoch, batch_idx)` to start from; returns
/// the state reached. `hooks` implements `start_epoch`, `forward`, `optimizer_step`,
/// `end_batch`, `end_epoch` (and, when the config asks, `scale_loss`, `after_backward`,
/// `before_optimizer_step`); `forward`
/// returns a loss tensor, `None` to skip the batch, or `end_of_epoch`.
#[pyfunction]
#[pyo3(signature = (hooks, params, config, state, end_of_epoch))]
fn fit_loop(
    hooks: Py<PyAny>,
    params: Vec<Bound<'_, PyAny>>,
    config: &Bound<'_, PyDict>,
    state: (u64, u64, u64),
    end_of_epoch: Py<PyAny>,
) -> BindingResult<(u64, u64, u64)> {
    let config = fit_config(config)?;
    let params = params
        .iter()
        .map(tensor::from_py)
        .collect::<PyResult<Vec<_>>>()?;
    let mut py_hooks = PyHooks {
        hooks,
        end_of_epoch,
        params,
        failure: Mutex::new(None),
    };
    let mut fit_state = FitState {
        global_step: state.0,
        epoch: state.1,
        batch_idx: state.2,
        pending_batches: 0,
    };
    let signals = gil::PySignals::default();
    let outcome = train::fit(&config, &mut fit_state, &mut py_hooks, &signals);
    let outcome = gil::reraise_interrupt(outcome, &signals);
    if let Some(err) = py_hooks
        .failure
        .lock()
        .ok()
        .and_then(|mut slot| slot.take())
    {
        return Err(BindingError::Python(err));
    }
    outcome?;
    Ok((fit_state.global_step, fit_state.epoch, fit_state.batch_idx))
}

/// Registers the training functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fit_loop, m)?)
}

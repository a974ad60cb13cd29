//! `glmx._glmx._testing`: hooks the test-suite uses to exercise the binding layer itself
//! (tensor hand-over, error mapping, GIL release and Ctrl-C, log forwarding). Not public API.

use std::time::Duration;

use glmx_core::CoreError;
use pyo3::prelude::*;

use crate::errors::{BindingError, BindingResult};
use crate::{gil, tensor};

/// Passes a tensor into Rust and back; the result shares storage with the input.
#[pyfunction]
fn tensor_roundtrip(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let t = tensor::from_py(value)?;
    tensor::to_py(py, &t)
}

/// Adds `amount` in place from Rust with the GIL released, proving writes reach Python's tensor.
#[pyfunction]
fn add_in_place(py: Python<'_>, value: &Bound<'_, PyAny>, amount: f64) -> BindingResult<()> {
    let mut t = tensor::from_py(value)?;
    gil::run_released(py, move |_signals| {
        let _ = t.f_add_scalar_(amount)?;
        Ok(())
    })
}

/// Raises the core error `kind` ("data", "checkpoint", "train") carrying `message`, through the
/// same mapping real bindings use (config errors: `glmx._config._raise_config_error`).
#[pyfunction]
fn raise_error(kind: &str, message: String) -> BindingResult<()> {
    let err: BindingError = match kind {
        "data" => CoreError::Data(message).into(),
        "checkpoint" => CoreError::Checkpoint(message).into(),
        "train" => CoreError::Train(message).into(),
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown error kind '{other}'"
            ))
            .into())
        }
    };
    Err(err)
}

/// Spins in Rust for `seconds` without the GIL, polling for Ctrl-C every millisecond.
#[pyfunction]
fn spin(py: Python<'_>, seconds: f64) -> BindingResult<u64> {
    let duration = Duration::from_secs_f64(seconds.max(0.0));
    gil::run_released(py, move |signals| {
        glmx_core::cancel::spin_for(duration, signals)
    })
}

/// Emits one `tracing` event at `level` ("debug", "info", "warn", "error") from a Rust thread
/// other than the caller's, so forwarding does not depend on holding the GIL.
#[pyfunction]
fn emit_log(py: Python<'_>, level: &str, message: String) -> PyResult<()> {
    let level = level.to_string();
    py.allow_threads(move || {
        std::thread::spawn(move || match level.as_str() {
            "debug" => tracing::debug!(target: "glmx_core::testing", "{message}"),
            "warn" => tracing::warn!(target: "glmx_core::testing", "{message}"),
            "error" => tracing::error!(target: "glmx_core::testing", "{message}"),
            _ => tracing::info!(target: "glmx_core::testing", answer = 42, "{message}"),
        })
        .join()
        .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("log thread panicked"))
    })
}

/// Builds the `_testing` submodule.
pub fn register(parent: &Bound<'_, PyModule>) -> PyResult<()> {
    let m = PyModule::new(parent.py(), "_testing")?;
    m.add_function(wrap_pyfunction!(tensor_roundtrip, &m)?)?;
    m.add_function(wrap_pyfunction!(add_in_place, &m)?)?;
    m.add_function(wrap_pyfunction!(raise_error, &m)?)?;
    m.add_function(wrap_pyfunction!(spin, &m)?)?;
    m.add_function(wrap_pyfunction!(emit_log, &m)?)?;
    parent.add_submodule(&m)
}

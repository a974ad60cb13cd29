//! One mapping from `glmx-core` errors to the Python exception hierarchy (the config engine's
//! errors are mapped in `glmx._config`, which defines the classes).
//!
//! `glmx.GlmxError` is the root; each core module has its subclass. A Python exception raised by
//! user code inside a callback travels through Rust as [`BindingError::Python`] and surfaces
//! unchanged.

use glmx_core::CoreError;
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::import_exception;
use pyo3::prelude::*;

// The classes are defined once, in `glmx._config` (which every glmx import loads first), so
// `except glmx.DataError` catches what either extension raises.
import_exception!(glmx._config, DataError);
import_exception!(glmx._config, CheckpointError);
import_exception!(glmx._config, TrainError);

/// Every error a binding can return.
#[derive(Debug)]
pub enum BindingError {
    /// From the core (data, checkpoint, training).
    Core(CoreError),
    /// A Python exception, passed through unchanged.
    Python(PyErr),
}

impl From<CoreError> for BindingError {
    fn from(err: CoreError) -> Self {
        Self::Core(err)
    }
}

impl From<PyErr> for BindingError {
    fn from(err: PyErr) -> Self {
        Self::Python(err)
    }
}

impl From<BindingError> for PyErr {
    fn from(err: BindingError) -> Self {
        match err {
            BindingError::Python(err) => err,
            BindingError::Core(err) => core_to_py(err),
        }
    }
}

fn core_to_py(err: CoreError) -> PyErr {
    let message = err.to_string();
    match err {
        CoreError::Data(_) => DataError::new_err(message),
        CoreError::Checkpoint(_) => CheckpointError::new_err(message),
        CoreError::Interrupted => PyKeyboardInterrupt::new_err(message),
        CoreError::Io { .. } | CoreError::Torch(_) | CoreError::Train(_) | CoreError::Hook => {
            TrainError::new_err(message)
        }
    }
}

/// Result alias for bindings.
pub type BindingResult<T> = Result<T, BindingError>;

//! One mapping from Rust errors to the Python exception hierarchy.
//!
//! `glmx.GlmxError` is the root; each core module has its subclass. A Python exception raised by
//! user code inside a callback travels through Rust as [`BindingError::Python`] and surfaces
//! unchanged.

use glmx_config::ConfigError as CfgErr;
use glmx_core::CoreError;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt};
use pyo3::prelude::*;

create_exception!(glmx, GlmxError, PyException, "Root of every error glmx raises.");
create_exception!(glmx, ConfigError, GlmxError, "A config file, template or YAML tag is invalid.");
create_exception!(
    glmx,
    ConfigCompositionError,
    ConfigError,
    "Composing a config tree failed (defaults list, package, missing option)."
);
create_exception!(glmx, OverrideError, ConfigError, "A command-line override is malformed or cannot apply.");
create_exception!(glmx, DataError, GlmxError, "Training data is malformed or unreadable.");
create_exception!(glmx, CheckpointError, GlmxError, "A checkpoint cannot be written, read or validated.");
create_exception!(glmx, TrainError, GlmxError, "The training loop failed.");

/// Every error a binding can return.
#[derive(Debug)]
pub enum BindingError {
    /// From the config engine.
    Config(CfgErr),
    /// From the core (data, checkpoint, training).
    Core(CoreError),
    /// A Python exception, passed through unchanged.
    Python(PyErr),
}

impl From<CfgErr> for BindingError {
    fn from(err: CfgErr) -> Self {
        Self::Config(err)
    }
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
            BindingError::Config(err) => config_to_py(err),
            BindingError::Core(err) => core_to_py(err),
        }
    }
}

fn config_to_py(err: CfgErr) -> PyErr {
    let message = err.to_string();
    match err {
        CfgErr::Composition(_) => ConfigCompositionError::new_err(message),
        CfgErr::Override(_) => OverrideError::new_err(message),
        _ => ConfigError::new_err(message),
    }
}

fn core_to_py(err: CoreError) -> PyErr {
    let message = err.to_string();
    match err {
        CoreError::Data(_) => DataError::new_err(message),
        CoreError::Checkpoint(_) => CheckpointError::new_err(message),
        CoreError::Interrupted => PyKeyboardInterrupt::new_err(message),
        CoreError::Io { .. } | CoreError::Torch(_) | CoreError::Train(_) | CoreError::Hook => TrainError::new_err(message),
    }
}

/// Result alias for bindings.
pub type BindingResult<T> = Result<T, BindingError>;

/// Registers the exception classes on the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("GlmxError", py.get_type::<GlmxError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("ConfigCompositionError", py.get_type::<ConfigCompositionError>())?;
    m.add("OverrideError", py.get_type::<OverrideError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("CheckpointError", py.get_type::<CheckpointError>())?;
    m.add("TrainError", py.get_type::<TrainError>())?;
    Ok(())
}

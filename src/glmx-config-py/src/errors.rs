//! The exception hierarchy of glmx, defined here once: `glmx._config` is the extension every
//! `import glmx` loads (it does not link libtorch), and `glmx._glmx` imports these classes.

use glmx_config::ConfigError as CfgErr;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    glmx,
    GlmxError,
    PyException,
    "Root of every error glmx raises."
);
create_exception!(
    glmx,
    ConfigError,
    GlmxError,
    "A config file, template or YAML tag is invalid."
);
create_exception!(
    glmx,
    ConfigCompositionError,
    ConfigError,
    "Composing a config tree failed (defaults list, package, missing option)."
);
create_exception!(
    glmx,
    OverrideError,
    ConfigError,
    "A command-line override is malformed or cannot apply."
);
create_exception!(
    glmx,
    DataError,
    GlmxError,
    "Training data is malformed or unreadable."
);
create_exception!(
    glmx,
    CheckpointError,
    GlmxError,
    "A checkpoint cannot be written, read or validated."
);
create_exception!(glmx, TrainError, GlmxError, "The training loop failed.");

/// Every error a config binding can return.
#[derive(Debug)]
pub enum BindingError {
    /// From the config engine.
    Config(CfgErr),
    /// A Python exception (e.g. raised by a user resolver), passed through unchanged.
    Python(PyErr),
}

impl From<CfgErr> for BindingError {
    fn from(err: CfgErr) -> Self {
        Self::Config(err)
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
            BindingError::Config(err) => {
                let message = err.to_string();
                match err {
                    CfgErr::Composition(_) => ConfigCompositionError::new_err(message),
                    CfgErr::Override(_) => OverrideError::new_err(message),
                    _ => ConfigError::new_err(message),
                }
            }
        }
    }
}

/// Result alias for bindings.
pub type BindingResult<T> = Result<T, BindingError>;

/// Registers the exception classes on the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("GlmxError", py.get_type::<GlmxError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add(
        "ConfigCompositionError",
        py.get_type::<ConfigCompositionError>(),
    )?;
    m.add("OverrideError", py.get_type::<OverrideError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("CheckpointError", py.get_type::<CheckpointError>())?;
    m.add("TrainError", py.get_type::<TrainError>())?;
    Ok(())
}

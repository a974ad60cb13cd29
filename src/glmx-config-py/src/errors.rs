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
    /// A Rust panic caught at the binding boundary (a bug in glmx, never the user's fault).
    Internal(String),
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
            BindingError::Internal(what) => ConfigError::new_err(format!(
                "internal error in glmx's config engine ({what}); please report this input"
            )),
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

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

/// Runs a binding's body; a Rust panic becomes a `glmx.ConfigError` (a `GlmxError`) instead
/// of escaping as `pyo3_runtime.PanicException`, which `except Exception` does not catch.
pub fn guard<T, E: Into<BindingError>>(f: impl FnOnce() -> Result<T, E>) -> BindingResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(Into::into),
        Err(payload) => Err(BindingError::Internal(panic_text(payload.as_ref()))),
    }
}

/// Python strings to Rust: a lone surrogate (from a non-UTF-8 command line or file name)
/// becomes a `glmx.ConfigError` naming `what`, not a `UnicodeEncodeError`.
pub fn utf8(s: &Bound<'_, pyo3::types::PyString>, what: &str) -> PyResult<String> {
    match s.to_str() {
        Ok(t) => Ok(t.to_string()),
        Err(_) => {
            let shown = s.to_string_lossy().chars().take(80).collect::<String>();
            Err(ConfigError::new_err(format!(
                "{what} '{shown}' is not valid UTF-8 (it holds a lone surrogate, e.g. from a \
                 non-UTF-8 command line or file name); pass UTF-8 text"
            )))
        }
    }
}

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

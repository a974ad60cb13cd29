//! A hook the test-suite uses to check the config-error mapping itself. Not public API.

use glmx_config::error::Location;
use glmx_config::ConfigError as CfgErr;
use pyo3::prelude::*;

use crate::errors::{BindingError, BindingResult};

/// Raises the config error `kind` ("config", "composition", "override") carrying `message`,
/// through the same mapping real bindings use; "config" is located at `test.yaml:7`.
#[pyfunction]
fn _raise_config_error(kind: &str, message: String) -> BindingResult<()> {
    let err = match kind {
        "config" => CfgErr::Template {
            location: Location {
                file: Some("test.yaml".into()),
                line: Some(7),
            },
            message,
        },
        "composition" => CfgErr::Composition(message),
        "override" => CfgErr::Override(message),
        other => {
            return Err(BindingError::Python(
                pyo3::exceptions::PyValueError::new_err(format!("unknown error kind '{other}'")),
            ))
        }
    };
    Err(err.into())
}

/// Panics with `message` inside the binding guard: checks that a Rust panic reaches Python
/// as `glmx.ConfigError`, never as `PanicException`.
#[pyfunction]
fn _panic_in_guard(message: String) -> BindingResult<()> {
    crate::errors::guard(|| -> Result<(), BindingError> { panic!("{message}") })
}

/// Registers the hooks.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_raise_config_error, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_in_guard, m)?)
}

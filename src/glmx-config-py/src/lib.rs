//! `glmx._config`: bindings of the config engine (templates, YAML graph, projects).
//!
//! Kept apart from `glmx._glmx` because that one links libtorch (half a second to load): config
//! tools (`glmx ls`, `glmx pp`, `--cfg job`) must answer in milliseconds.

mod compose;
mod config;
mod errors;
mod project_info;
mod testing;

use pyo3::prelude::*;

/// The native config module.
#[pymodule]
fn _config(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    glmx_pylog::register(m)?;
    config::register(m)?;
    testing::register(m)?;
    compose::register(m)?;
    project_info::register(m)?;
    Ok(())
}

//! Project inspection for the command line: `meta.yaml` alone, without rendering a config.

use std::path::Path;

use glmx_config::meta;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::BindingResult;

/// Reads the `meta.yaml` of `project_dir` (defaults filled in) as a one-element tuple
/// `(meta dict,)`.
#[pyfunction]
fn config_load_meta<'py>(
    py: Python<'py>,
    project_dir: String,
) -> BindingResult<(Bound<'py, PyDict>,)> {
    let m = crate::errors::guard(|| {
        py.allow_threads(move || meta::load_meta(Path::new(&project_dir)))
    })?;
    let d = PyDict::new(py);
    d.set_item("name", &m.name)?;
    d.set_item("description", &m.description)?;
    d.set_item("project_dir", m.project_dir.display().to_string())?;
    let sp: Vec<String> = m
        .search_path
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    d.set_item("search_path", sp)?;
    d.set_item("config_prefix", &m.config_prefix)?;
    d.set_item("default_config", m.default_config.clone())?;
    d.set_item("configs", m.configs.clone())?;
    Ok((d,))
}

/// Registers the project inspection functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(config_load_meta, m)?)?;
    Ok(())
}

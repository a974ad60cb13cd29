//! Bindings for Hydra-style composition (`glmx_config::compose`), overrides and interpolation.

use std::path::PathBuf;

use glmx_config::compose::{self, repo::Source, Composed, Request};
use glmx_config::interp::{Interpolator, Resolvers};
use glmx_config::overrides::{expand_sweeps_limited, parse_override};
use glmx_config::tree::{Map, Node};
use glmx_config::ConfigError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::errors::{guard, utf8, BindingResult};

/// Deepest Python container converted (self-referencing lists must not overflow the stack).
const MAX_PY_DEPTH: usize = 1000;

/// Converts a tree to plain Python containers.
pub fn node_to_py(py: Python<'_>, n: &Node) -> PyResult<PyObject> {
    Ok(match n {
        Node::Null => py.None(),
        Node::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Node::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Node::Float(f) => PyFloat::new(py, *f).into_any().unbind(),
        Node::Str(s) => PyString::new(py, s).into_any().unbind(),
        Node::List(items) => {
            let l = PyList::empty(py);
            for i in items {
                l.append(node_to_py(py, i)?)?;
            }
            l.into_any().unbind()
        }
        Node::Map(m) => {
            let d = PyDict::new(py);
            for (k, v) in m {
                d.set_item(k, node_to_py(py, v)?)?;
            }
            d.into_any().unbind()
        }
    })
}

/// Converts plain Python values to a tree; other objects become their `str()`.
pub fn py_to_node(obj: &Bound<'_, PyAny>) -> PyResult<Node> {
    py_to_node_at(obj, 0)
}

fn py_to_node_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Node> {
    if depth > MAX_PY_DEPTH {
        return Err(crate::errors::ConfigError::new_err(format!(
            "value nests deeper than {MAX_PY_DEPTH} levels (a container that contains itself?)"
        )));
    }
    if obj.is_none() {
        return Ok(Node::Null);
    }
    if let Ok(b) = obj.downcast::<PyBool>() {
        return Ok(Node::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.extract().map(Node::Int).map_err(|_| {
            crate::errors::ConfigError::new_err(format!(
                "integer {} does not fit in 64 bits",
                obj.str().map(|s| s.to_string()).unwrap_or_default()
            ))
        });
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Node::Float(obj.extract()?));
    }
    if let Ok(s) = obj.downcast::<PyString>() {
        return Ok(Node::Str(s.to_string()));
    }
    if let Ok(d) = obj.downcast::<PyDict>() {
        let mut m = Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            m.insert(k.str()?.to_string(), py_to_node_at(&v, depth + 1)?);
        }
        return Ok(Node::Map(m));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for item in obj.try_iter()? {
            out.push(py_to_node_at(&item?, depth + 1)?);
        }
        return Ok(Node::List(out));
    }
    Ok(Node::Str(obj.str()?.to_string()))
}

/// User resolvers: a dict of name -> callable.
struct PyResolvers<'py> {
    table: Bound<'py, PyDict>,
}

impl Resolvers for PyResolvers<'_> {
    fn call(
        &mut self,
        name: &str,
        args: Vec<Node>,
        key: &str,
    ) -> Option<glmx_config::Result<Node>> {
        let f = self.table.get_item(name).ok().flatten()?;
        let py = self.table.py();
        let run = || -> PyResult<Node> {
            let py_args: Vec<PyObject> = args
                .iter()
                .map(|a| node_to_py(py, a))
                .collect::<PyResult<_>>()?;
            let out = f.call1(PyTuple::new(py, py_args)?)?;
            py_to_node(&out)
        };
        Some(run().map_err(|e| {
            ConfigError::Interpolation(format!(
                "resolver '{name}' failed while resolving '{key}': {e}"
            ))
        }))
    }
}

fn sources(search_path: Vec<(String, String)>) -> Vec<Source> {
    search_path
        .into_iter()
        .map(|(provider, dir)| Source {
            provider,
            dir: PathBuf::from(dir),
        })
        .collect()
}

/// A composed config, before interpolation.
#[pyclass(module = "glmx._config", name = "ComposedConfig")]
pub struct PyComposed {
    inner: Composed,
}

fn set_key(root: &mut Node, key: &str, value: Node) {
    let mut cur = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !matches!(cur, Node::Map(_)) {
            *cur = Node::Map(Map::new());
        }
        let Node::Map(m) = cur else { return };
        if i + 1 == parts.len() {
            m.insert(part.to_string(), value);
            return;
        }
        cur = m
            .entry(part.to_string())
            .or_insert_with(|| Node::Map(Map::new()));
    }
}

#[pymethods]
impl PyComposed {
    /// The tree as plain containers, `${...}` left as written.
    fn raw(&self, py: Python<'_>) -> PyResult<PyObject> {
        node_to_py(py, &self.inner.config)
    }

    /// The tree with every interpolation resolved; `skip` lists top-level keys to leave out.
    #[pyo3(signature = (resolvers, skip=Vec::new()))]
    fn resolve(
        &self,
        py: Python<'_>,
        resolvers: Bound<'_, PyDict>,
        skip: Vec<String>,
    ) -> BindingResult<PyObject> {
        guard(|| {
            let mut r = PyResolvers { table: resolvers };
            let skip: Vec<&str> = skip.iter().map(String::as_str).collect();
            let out = glmx_config::interp::resolve(&self.inner.config, &mut r, &skip)?;
            Ok::<_, crate::errors::BindingError>(node_to_py(py, &out)?)
        })
    }

    /// The resolved value at dotted `key`, or `None` when absent.
    fn select(
        &self,
        py: Python<'_>,
        key: &str,
        resolvers: Bound<'_, PyDict>,
    ) -> BindingResult<PyObject> {
        guard(|| {
            let mut r = PyResolvers { table: resolvers };
            let mut it = Interpolator::new(&self.inner.config, &mut r);
            match it.select(key)? {
                Some(v) => Ok::<_, crate::errors::BindingError>(node_to_py(py, &v)?),
                None => Ok(py.None()),
            }
        })
    }

    /// Sets dotted `key` (creating mappings); used to fill `hydra.runtime.*`.
    fn set(&mut self, key: &str, value: &Bound<'_, PyAny>) -> BindingResult<()> {
        guard(|| {
            set_key(&mut self.inner.config, key, py_to_node(value)?);
            Ok::<_, PyErr>(())
        })
    }

    /// The merge order: `(config_path, package, parent)` per entry.
    #[getter]
    fn defaults(&self) -> Vec<(String, String, Option<String>)> {
        self.inner
            .defaults
            .iter()
            .map(|f| (f.config_path.clone(), f.package.clone(), f.parent.clone()))
            .collect()
    }

    /// Final group choices.
    #[getter]
    fn choices(&self) -> Vec<(String, Option<String>)> {
        self.inner
            .choices
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Job overrides as typed.
    #[getter]
    fn task_overrides(&self) -> Vec<String> {
        self.inner
            .task_overrides
            .iter()
            .map(|o| o.input.clone())
            .collect()
    }

    /// `hydra.*` overrides as typed.
    #[getter]
    fn hydra_overrides(&self) -> Vec<String> {
        self.inner
            .hydra_overrides
            .iter()
            .map(|o| o.input.clone())
            .collect()
    }

    /// The search path, formatted as in errors.
    #[getter]
    fn searchpath(&self) -> String {
        self.inner.searchpath.clone()
    }

    /// `hydra.job.override_dirname` for the task overrides.
    fn override_dirname(&self, kv_sep: &str, item_sep: &str, exclude_keys: Vec<String>) -> String {
        compose::override_dirname(&self.inner.task_overrides, &exclude_keys, kv_sep, item_sep)
    }
}

/// Composes `config_name` over `search_path` (`[(provider, dir)]`) with `overrides`.
#[pyfunction]
#[pyo3(signature = (config_name, search_path, overrides, with_hydra=true, multirun=false))]
fn compose_config(
    py: Python<'_>,
    config_name: Option<Bound<'_, PyString>>,
    search_path: Vec<(String, String)>,
    overrides: Vec<Bound<'_, PyString>>,
    with_hydra: bool,
    multirun: bool,
) -> BindingResult<PyComposed> {
    let config_name = config_name.map(|n| utf8(&n, "config name")).transpose()?;
    let overrides = overrides
        .iter()
        .map(|o| utf8(o, "override"))
        .collect::<PyResult<Vec<_>>>()?;
    let req = Request {
        config_name,
        sources: sources(search_path),
        overrides,
        with_hydra,
        multirun,
    };
    guard(|| {
        let inner = py.allow_threads(|| compose::compose(&req))?;
        Ok::<_, ConfigError>(PyComposed { inner })
    })
}

/// Expands sweep overrides into one override list per job (basic sweeper order). More than
/// `max_jobs` jobs (default: `GLMX_MAX_SWEEP_JOBS`, 10,000) raise `OverrideError`.
#[pyfunction]
#[pyo3(signature = (overrides, search_path, max_jobs=None))]
fn sweep_jobs(
    py: Python<'_>,
    overrides: Vec<Bound<'_, PyString>>,
    search_path: Vec<(String, String)>,
    max_jobs: Option<usize>,
) -> BindingResult<Vec<Vec<String>>> {
    let overrides = overrides
        .iter()
        .map(|o| utf8(o, "override"))
        .collect::<PyResult<Vec<_>>>()?;
    let max_jobs = max_jobs.unwrap_or_else(glmx_config::limits::max_sweep_jobs);
    guard(|| {
        let parsed = overrides
            .iter()
            .map(|s| parse_override(s))
            .collect::<Result<Vec<_>, _>>()?;
        let dirs = sources(search_path);
        py.allow_threads(|| {
            let repo = compose::repo::Repo::new(dirs);
            expand_sweeps_limited(&parsed, &|g| repo.group_options(g), max_jobs)
        })
    })
}

/// Parses one override; returns `(prefix, key, package, value, is_sweep)`.
#[pyfunction]
fn parse_override_py(
    py: Python<'_>,
    text: Bound<'_, PyString>,
) -> BindingResult<(String, String, Option<String>, PyObject, bool)> {
    let text = utf8(&text, "override")?;
    let o = guard(|| parse_override(&text))?;
    let value = match &o.value {
        Some(glmx_config::overrides::Value::Node(n)) => node_to_py(py, n)?,
        _ => py.None(),
    };
    Ok((
        o.prefix.as_str().to_string(),
        o.key.clone(),
        o.package.clone(),
        value,
        o.is_sweep(),
    ))
}

/// Registers the composition bindings.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyComposed>()?;
    m.add_function(wrap_pyfunction!(compose_config, m)?)?;
    m.add_function(wrap_pyfunction!(sweep_jobs, m)?)?;
    let f = wrap_pyfunction!(parse_override_py, m)?;
    m.add("parse_override", f)?;
    Ok(())
}

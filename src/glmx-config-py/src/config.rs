//! `glmx._glmx` config functions: template rendering, graph loading and template projects.
//! Materialization lives in Python (`glmx.config._materialize`); this module only converts.

use std::path::{Path, PathBuf};

use glmx_config::graph::{Callable, Graph, Node};
use glmx_config::meta::ProjectMeta;
use glmx_config::{codegen, graph, meta, template};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::errors::{guard, utf8, BindingResult};

/// Deepest Python container converted to a template variable.
const MAX_PY_DEPTH: usize = 1000;

/// Python template variables to JSON (containers and scalars; other objects as `str(obj)`).
fn to_json(value: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    to_json_at(value, 0)
}

fn to_json_at(value: &Bound<'_, PyAny>, depth: usize) -> PyResult<serde_json::Value> {
    use serde_json::Value as J;
    if depth > MAX_PY_DEPTH {
        return Err(crate::errors::ConfigError::new_err(format!(
            "template variable nests deeper than {MAX_PY_DEPTH} levels (a container that \
             contains itself?)"
        )));
    }
    if value.is_none() {
        return Ok(J::Null);
    }
    if value.is_instance_of::<PyBool>() {
        return Ok(J::Bool(value.extract()?));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(i) = value.extract::<i64>() {
            return Ok(J::from(i));
        }
    }
    if value.is_instance_of::<PyFloat>() {
        let f: f64 = value.extract()?;
        return Ok(serde_json::Number::from_f64(f)
            .map(J::Number)
            .unwrap_or(J::Null));
    }
    if let Ok(s) = value.downcast::<PyString>() {
        return Ok(J::String(utf8(s, "template variable value")?));
    }
    if let Ok(d) = value.downcast::<PyDict>() {
        let mut map = serde_json::Map::new();
        for (k, v) in d.iter() {
            map.insert(
                utf8(&k.str()?, "template variable name")?,
                to_json_at(&v, depth + 1)?,
            );
        }
        return Ok(J::Object(map));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let items: PyResult<Vec<J>> = value
            .try_iter()?
            .map(|v| to_json_at(&v?, depth + 1))
            .collect();
        return Ok(J::Array(items?));
    }
    Ok(J::String(utf8(&value.str()?, "template variable value")?))
}

fn vars_json(vars: Option<&Bound<'_, PyDict>>) -> PyResult<serde_json::Value> {
    match vars {
        Some(d) => to_json(d.as_any()),
        None => Ok(serde_json::Value::Object(Default::default())),
    }
}

fn paths(search_path: Vec<String>) -> Vec<PathBuf> {
    search_path.into_iter().map(PathBuf::from).collect()
}

/// `(name, node id)` of a target or definition.
type Root = (String, usize);

/// A node graph built from tagged YAML (see `glmx.config.Graph` for the Python API).
#[pyclass(module = "glmx._config", name = "ConfigGraph", frozen)]
pub struct PyGraph {
    graph: Graph,
}

fn scalar(py: Python<'_>, node: &Node) -> Option<PyObject> {
    Some(match node {
        Node::Null => py.None(),
        Node::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Node::Int(i) => i.into_pyobject(py).ok()?.into_any().unbind(),
        Node::Float(f) => PyFloat::new(py, *f).into_any().unbind(),
        Node::Str(s) => PyString::new(py, s).into_any().unbind(),
        _ => return None,
    })
}

#[pymethods]
impl PyGraph {
    /// Target names (top-level keys not starting with `.`), in order.
    #[getter]
    fn targets(&self) -> Vec<String> {
        self.graph
            .target_names()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// `[(name, node_id)]` for targets and for `.definitions`.
    fn roots(&self) -> (Vec<Root>, Vec<Root>) {
        (
            self.graph.targets().to_vec(),
            self.graph.definitions().to_vec(),
        )
    }

    /// The file the graph came from (for messages), or None.
    #[getter]
    fn file(&self) -> Option<String> {
        self.graph.file().map(str::to_string)
    }

    /// The node table: one tuple per node, see `glmx.config._materialize`.
    fn nodes(&self, py: Python<'_>) -> PyResult<Vec<PyObject>> {
        let mut out = Vec::with_capacity(self.graph.nodes().len());
        for (id, node) in self.graph.nodes().iter().enumerate() {
            let origin = self.graph.origin(id);
            let loc = (origin.line, origin.key.clone());
            let item: PyObject = if let Some(v) = scalar(py, node) {
                ("value", v, loc).into_pyobject(py)?.into_any().unbind()
            } else {
                match node {
                    Node::List { items, shared } => ("list", items.clone(), *shared, loc)
                        .into_pyobject(py)?
                        .into_any()
                        .unbind(),
                    Node::Tuple(items) => ("tuple", items.clone(), true, loc)
                        .into_pyobject(py)?
                        .into_any()
                        .unbind(),
                    Node::Dict { entries, shared } => ("dict", entries.clone(), *shared, loc)
                        .into_pyobject(py)?
                        .into_any()
                        .unbind(),
                    Node::Call {
                        kind,
                        callable,
                        args,
                        kwargs,
                        name,
                    } => {
                        let spec = match callable {
                            Callable::Builtin(n) => ("builtin", n.clone(), String::new()),
                            Callable::Module { module, attr } => {
                                ("module", module.clone(), attr.clone())
                            }
                            Callable::File { path, attr } => ("file", path.clone(), attr.clone()),
                        };
                        let call = (
                            kind.as_str(),
                            spec,
                            callable.to_string(),
                            args.clone(),
                            kwargs.clone(),
                            name.clone(),
                        );
                        ("call", call, loc).into_pyobject(py)?.into_any().unbind()
                    }
                    Node::Var { name, default } => ("var", name.clone(), *default, loc)
                        .into_pyobject(py)?
                        .into_any()
                        .unbind(),
                    Node::Meta(inner) => {
                        ("meta", *inner, loc).into_pyobject(py)?.into_any().unbind()
                    }
                    _ => ("value", py.None(), loc)
                        .into_pyobject(py)?
                        .into_any()
                        .unbind(),
                }
            };
            out.push(item);
        }
        Ok(out)
    }

    /// The graph as YAML with tags, anchors for shared nodes.
    fn to_yaml(&self) -> BindingResult<String> {
        guard(|| Ok::<_, PyErr>(self.graph.to_yaml()))
    }

    /// Standalone Python source defining `construct(**vars)` that builds `target`.
    fn code(&self, target: &str) -> BindingResult<String> {
        guard(|| codegen::generate(&self.graph, target))
    }
}

/// Line syntax translated to plain Jinja.
#[pyfunction]
fn config_preprocess(text: Bound<'_, PyString>) -> BindingResult<String> {
    let text = utf8(&text, "template text")?;
    guard(|| Ok::<_, PyErr>(template::preprocess(&text)))
}

/// Renders `text` over `search_path` with template variables `vars`.
#[pyfunction]
#[pyo3(signature = (text, search_path, vars=None, name=None))]
fn config_render(
    py: Python<'_>,
    text: Bound<'_, PyString>,
    search_path: Vec<String>,
    vars: Option<&Bound<'_, PyDict>>,
    name: Option<String>,
) -> BindingResult<String> {
    let vars = vars_json(vars)?;
    let text = utf8(&text, "template text")?;
    let name = name.unwrap_or_else(|| "<string>".into());
    guard(|| {
        py.allow_threads(move || {
            template::Renderer::new(paths(search_path)).render_str(&name, &text, vars)
        })
    })
}

/// Renders `text` and builds its graph.
#[pyfunction]
#[pyo3(signature = (text, search_path, vars=None, name=None))]
fn config_load(
    py: Python<'_>,
    text: Bound<'_, PyString>,
    search_path: Vec<String>,
    vars: Option<&Bound<'_, PyDict>>,
    name: Option<String>,
) -> BindingResult<PyGraph> {
    let vars = vars_json(vars)?;
    let text = utf8(&text, "template text")?;
    let name = name.unwrap_or_else(|| "<string>".into());
    let graph = guard(|| {
        py.allow_threads(move || {
            let rendered =
                template::Renderer::new(paths(search_path)).render_str(&name, &text, vars)?;
            graph::load_str(&rendered, Some(&name))
        })
    })?;
    Ok(PyGraph { graph })
}

fn meta_dict<'py>(py: Python<'py>, meta: &ProjectMeta) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &meta.name)?;
    d.set_item("description", &meta.description)?;
    d.set_item("project_dir", meta.project_dir.display().to_string())?;
    let sp: Vec<String> = meta
        .search_path
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    d.set_item("search_path", sp)?;
    d.set_item("config_prefix", &meta.config_prefix)?;
    d.set_item("default_config", meta.default_config.clone())?;
    d.set_item("configs", meta.configs.clone())?;
    Ok(d)
}

/// Loads config `config` of the template project in `project_dir`:
/// returns `(meta dict, template name, rendered text, graph)`.
#[pyfunction]
#[pyo3(signature = (config, project_dir, vars=None))]
fn config_load_project<'py>(
    py: Python<'py>,
    config: Option<Bound<'py, PyString>>,
    project_dir: String,
    vars: Option<&Bound<'py, PyDict>>,
) -> BindingResult<(Bound<'py, PyDict>, String, String, PyGraph)> {
    let vars = vars_json(vars)?;
    let config = config.map(|c| utf8(&c, "config name")).transpose()?;
    let loaded = guard(|| {
        py.allow_threads(move || {
            meta::load_project(config.as_deref(), Path::new(&project_dir), vars)
        })
    })?;
    let meta = meta_dict(py, &loaded.meta)?;
    Ok((
        meta,
        loaded.template,
        loaded.rendered,
        PyGraph {
            graph: loaded.graph,
        },
    ))
}

/// Registers the config functions on the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyGraph>()?;
    m.add_function(wrap_pyfunction!(config_preprocess, m)?)?;
    m.add_function(wrap_pyfunction!(config_render, m)?)?;
    m.add_function(wrap_pyfunction!(config_load, m)?)?;
    m.add_function(wrap_pyfunction!(config_load_project, m)?)?;
    Ok(())
}

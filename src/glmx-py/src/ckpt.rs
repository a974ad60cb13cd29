//! Bindings for `glmx_core::ckpt`: the checkpoint coordinator and raw safetensors I/O.
//!
//! Only conversion happens here; nested Python state is flattened by `glmx.ckpt` (Python)
//! into named tensors plus a JSON structure before it reaches Rust.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use glmx_core::ckpt::{format, ComponentInput, Coordinator, Mode, Options, SaveRequest, Sharing};
use glmx_core::CoreError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{Map, Value};

use crate::errors::{float_arg, guard, opt_uint_arg, uint_arg, ArgKind, BindingResult};

/// Largest world size (and rank + 1) accepted.
const MAX_RANKS: u64 = 1 << 24;
/// Largest `save_total_limit` / `keep_best` accepted.
const MAX_KEEP: u64 = u32::MAX as u64;
/// Longest `barrier_timeout` accepted, in seconds (about 31 years: "wait forever" in practice).
const MAX_BARRIER_S: f64 = 1e9;
use crate::{gil, tensor};

type PyNamed<'py> = Vec<(String, Bound<'py, PyAny>)>;
/// `(list of (name, tensor), metadata)` of one file.
type FileOut = (Vec<(String, PyObject)>, BTreeMap<String, String>);
/// `(name, sharing, tensors, file metadata, manifest info as JSON)`.
type PyComponent<'py> = (
    String,
    String,
    PyNamed<'py>,
    BTreeMap<String, String>,
    String,
);

fn ckpt_err(msg: String) -> CoreError {
    CoreError::Checkpoint(msg)
}

fn to_tch(items: PyNamed<'_>) -> PyResult<Vec<(String, tch::Tensor)>> {
    items
        .into_iter()
        .map(|(name, obj)| Ok((name, tensor::from_py(&obj)?)))
        .collect()
}

fn to_list(py: Python<'_>, items: &[(String, tch::Tensor)]) -> PyResult<Vec<(String, PyObject)>> {
    items
        .iter()
        .map(|(name, t)| Ok((name.clone(), tensor::to_py(py, t)?)))
        .collect()
}

fn parse_json(what: &str, text: &str) -> Result<Value, CoreError> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| ckpt_err(format!("{what} is not valid JSON: {e}")))
}

/// The Rust checkpoint coordinator of one rank (use `glmx.ckpt.CheckpointManager`).
#[pyclass(module = "glmx._glmx", name = "CheckpointCoordinator")]
pub struct PyCoordinator {
    // A Mutex makes the class Sync (tch tensors in the buffer pool are only Send).
    inner: Mutex<Coordinator>,
}

impl PyCoordinator {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Coordinator) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| ckpt_err("checkpoint coordinator is poisoned by a panic".into()))?;
        f(&mut guard)
    }
}

#[pymethods]
impl PyCoordinator {
    #[new]
    #[pyo3(signature = (run_dir, *, world_size=None, rank=None, local_world_size=None,
        group_size=None, save_total_limit=None, keep_best=None, monitor=None, mode="min",
        max_shard_size=None, barrier_timeout_s=None, torch_version=String::new(),
        validate_replicated=false, session=String::new()))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        run_dir: PathBuf,
        world_size: Option<&Bound<'_, PyAny>>,
        rank: Option<&Bound<'_, PyAny>>,
        local_world_size: Option<&Bound<'_, PyAny>>,
        group_size: Option<&Bound<'_, PyAny>>,
        save_total_limit: Option<&Bound<'_, PyAny>>,
        keep_best: Option<&Bound<'_, PyAny>>,
        monitor: Option<String>,
        mode: &str,
        max_shard_size: Option<&Bound<'_, PyAny>>,
        barrier_timeout_s: Option<&Bound<'_, PyAny>>,
        torch_version: String,
        validate_replicated: bool,
        session: String,
    ) -> BindingResult<Self> {
        guard("CheckpointCoordinator()", || {
            let k = ArgKind::Checkpoint;
            let count = |name, obj| opt_uint_arg(k, name, obj, 1, MAX_RANKS);
            let world_size = count("world_size", world_size)?.unwrap_or(1) as usize;
            let rank = opt_uint_arg(k, "rank", rank, 0, MAX_RANKS - 1)?.unwrap_or(0) as usize;
            let local_world_size = count("local_world_size", local_world_size)?;
            let group_size = count("group_size", group_size)?;
            let save_total_limit =
                opt_uint_arg(k, "save_total_limit", save_total_limit, 0, MAX_KEEP)?;
            let keep_best = opt_uint_arg(k, "keep_best", keep_best, 0, MAX_KEEP)?.unwrap_or(0);
            let max_shard_size =
                opt_uint_arg(k, "max_shard_size", max_shard_size, 0, i64::MAX as u64)?
                    .unwrap_or(5_000_000_000);
            let barrier_timeout_s = match barrier_timeout_s {
                Some(obj) if !obj.is_none() => {
                    float_arg(k, "barrier_timeout", obj, 0.0, MAX_BARRIER_S)?
                }
                _ => 600.0,
            };
            let mode = Mode::parse(mode)
                .ok_or_else(|| ckpt_err(format!("mode must be 'min' or 'max', got '{mode}'")))?;
            let opts = Options {
                run_dir,
                world_size,
                rank,
                local_world_size: local_world_size.map_or(world_size, |v| v as usize),
                group_size: group_size.map_or(world_size, |v| v as usize),
                save_total_limit: save_total_limit.map(|v| v as usize),
                keep_best: keep_best as usize,
                monitor,
                mode,
                max_shard_size: max_shard_size.max(1),
                barrier_timeout: Duration::from_secs_f64(barrier_timeout_s),
                torch_version,
                validate_replicated,
                session,
            };
            Ok(Self {
                inner: Mutex::new(Coordinator::new(opts)?),
            })
        })
    }

    /// Saves checkpoint `step`; returns its final directory. See `CheckpointManager.save`.
    #[pyo3(signature = (step, model, components, metrics_json, async_save))]
    fn save(
        &self,
        py: Python<'_>,
        step: &Bound<'_, PyAny>,
        model: PyNamed<'_>,
        components: Vec<PyComponent<'_>>,
        metrics_json: &str,
        async_save: bool,
    ) -> BindingResult<String> {
        guard("CheckpointCoordinator.save", || {
            let step = uint_arg(ArgKind::Checkpoint, "step", step, 0, i64::MAX as u64)?;
            let model = to_tch(model)?;
            let mut inputs = Vec::with_capacity(components.len());
            for (name, sharing, tensors, file_metadata, info) in components {
                inputs.push(ComponentInput {
                    sharing: Sharing::parse(&sharing)?,
                    tensors: to_tch(tensors)?,
                    info: parse_json(&format!("metadata of component '{name}'"), &info)?,
                    name,
                    file_metadata,
                });
            }
            let metrics = match parse_json("metrics", metrics_json)? {
                Value::Object(m) => m,
                Value::Null => Map::new(),
                other => {
                    return Err(
                        ckpt_err(format!("metrics must be a JSON object, got {other}")).into(),
                    )
                }
            };
            let req = SaveRequest {
                step,
                model,
                components: inputs,
                metrics,
            };
            let dir = gil::run_released(py, |signals| {
                self.with(|c| c.save(req, async_save, signals))
            })?;
            Ok(dir.display().to_string())
        })
    }

    /// Waits for the background save; returns its directory or None; raises its error.
    fn wait(&self, py: Python<'_>) -> BindingResult<Option<String>> {
        guard("CheckpointCoordinator.wait", || {
            let done = gil::run_released(py, |_| self.with(|c| c.wait()))?;
            Ok(done.map(|p| p.display().to_string()))
        })
    }

    /// Whether a background save is running.
    fn busy(&self) -> BindingResult<bool> {
        Ok(self.with(|c| Ok(c.busy()))?)
    }

    /// Bytes held by the reusable host buffers.
    #[getter]
    fn buffer_bytes(&self) -> BindingResult<usize> {
        Ok(self.with(|c| Ok(c.buffer_bytes()))?)
    }

    /// Directory of "last", "best" or a path.
    fn resolve(&self, which: &str) -> BindingResult<String> {
        guard("CheckpointCoordinator.resolve", || {
            Ok(self.with(|c| c.resolve(which))?.display().to_string())
        })
    }

    /// Committed checkpoints, oldest first, as a JSON list of `{"dir", "manifest"}`.
    fn list(&self) -> BindingResult<String> {
        guard("CheckpointCoordinator.list", || {
            let listed = self.with(|c| c.list())?;
            let items: Vec<Value> = listed
                .into_iter()
                .map(|(dir, m)| serde_json::json!({ "dir": dir.display().to_string(), "manifest": m }))
                .collect();
            Ok(Value::Array(items).to_string())
        })
    }

    /// Resolves and checks a load without reading tensors: dict with `dir`, `manifest` (JSON),
    /// `files` (list of component, sharing, path, size, checksum, info JSON), `skipped`.
    #[pyo3(signature = (which, components=None))]
    fn plan(
        &self,
        py: Python<'_>,
        which: &str,
        components: Option<Vec<String>>,
    ) -> BindingResult<PyObject> {
        guard("CheckpointCoordinator.plan", || {
            let plan =
                gil::run_released(py, |_| self.with(|c| c.plan(which, components.as_deref())))?;
            let out = PyDict::new(py);
            out.set_item("dir", plan.dir.display().to_string())?;
            let manifest =
                serde_json::to_string(&plan.manifest).map_err(|e| ckpt_err(e.to_string()))?;
            out.set_item("manifest", manifest)?;
            let files: Vec<_> = plan
                .files
                .iter()
                .map(|f| {
                    let path = f.path.display().to_string();
                    (
                        f.component.clone(),
                        f.sharing.as_str(),
                        path,
                        f.record.size,
                        f.record.checksum.clone(),
                        f.info.to_string(),
                    )
                })
                .collect();
            out.set_item("files", files)?;
            out.set_item("skipped", plan.skipped)?;
            Ok(out.into_any().unbind())
        })
    }

    /// Reads a checkpoint: dict with `dir`, `manifest` (JSON), `model` (list of name, tensor),
    /// `components` (list of name, sharing, tensors, file metadata, info JSON), `skipped`.
    #[pyo3(signature = (which, components=None, verify=true))]
    fn load(
        &self,
        py: Python<'_>,
        which: &str,
        components: Option<Vec<String>>,
        verify: bool,
    ) -> BindingResult<PyObject> {
        guard("CheckpointCoordinator.load", || {
            let loaded = gil::run_released(py, |_| {
                self.with(|c| c.load(which, components.as_deref(), verify))
            })?;
            let out = PyDict::new(py);
            out.set_item("dir", loaded.dir.display().to_string())?;
            let manifest =
                serde_json::to_string(&loaded.manifest).map_err(|e| ckpt_err(e.to_string()))?;
            out.set_item("manifest", manifest)?;
            out.set_item("model", to_list(py, &loaded.model)?)?;
            let mut comps = Vec::with_capacity(loaded.components.len());
            for c in &loaded.components {
                let tensors = to_list(py, &c.tensors)?;
                comps.push((
                    c.name.clone(),
                    c.sharing.as_str(),
                    tensors,
                    c.file_metadata.clone(),
                    c.info.to_string(),
                ));
            }
            out.set_item("components", comps)?;
            out.set_item("skipped", loaded.skipped)?;
            Ok(out.into_any().unbind())
        })
    }
}

/// crc32 of a buffer (e.g. a memory-mapped checkpoint file), formatted as in manifests. Runs
/// without the GIL; reading a fresh mapping here also faults its pages in.
#[pyfunction]
fn checksum_buffer(py: Python<'_>, data: &Bound<'_, PyAny>) -> BindingResult<String> {
    guard("checksum_buffer", || checksum_buffer_inner(py, data))
}

fn checksum_buffer_inner(py: Python<'_>, data: &Bound<'_, PyAny>) -> BindingResult<String> {
    let buffer = pyo3::buffer::PyBuffer::<u8>::get(data)?;
    if !buffer.is_c_contiguous() {
        return Err(ckpt_err("checksum_buffer needs a contiguous buffer".into()).into());
    }
    let (ptr, len) = (buffer.buf_ptr() as usize, buffer.len_bytes());
    let sum = py.allow_threads(move || {
        // SAFETY: `buffer` keeps the exporter's memory alive and unmoved until it is dropped
        // after this closure returns; we only read it.
        let bytes = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) };
        format::checksum_parallel(bytes, glmx_core::ckpt::snapshot::COPY_THREADS)
    });
    drop(buffer);
    Ok(sum)
}

/// `(size, checksum)` of a file on disk.
#[pyfunction]
fn checksum_file(py: Python<'_>, path: PathBuf) -> BindingResult<(u64, String)> {
    guard("checksum_file", || {
        gil::run_released(py, move |_| format::file_checksum(&path))
    })
}

/// Writes named tensors to a safetensors file (fsynced); returns `(size, checksum)`.
#[pyfunction]
#[pyo3(signature = (path, tensors, metadata=None))]
fn write_safetensors(
    py: Python<'_>,
    path: PathBuf,
    tensors: PyNamed<'_>,
    metadata: Option<BTreeMap<String, String>>,
) -> BindingResult<(u64, String)> {
    guard("write_safetensors", || {
        let tensors = glmx_core::ckpt::snapshot::host_views("file", to_tch(tensors)?)?;
        let metadata = metadata.unwrap_or_default();
        let rec = gil::run_released(py, move |_| {
            format::write_file(
                &path,
                &path.display().to_string(),
                &format::raw_views(&tensors)?,
                &metadata,
            )
        })?;
        Ok((rec.size, rec.checksum))
    })
}

/// Reads a safetensors file fully; returns `(list of (name, tensor), metadata)`.
#[pyfunction]
fn read_safetensors(py: Python<'_>, path: PathBuf) -> BindingResult<FileOut> {
    guard("read_safetensors", || {
        let contents = gil::run_released(py, |_| format::read_file(&path, None))?;
        Ok((to_list(py, &contents.tensors)?, contents.metadata))
    })
}

/// Registers the checkpoint classes and functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCoordinator>()?;
    m.add_function(wrap_pyfunction!(write_safetensors, m)?)?;
    m.add_function(wrap_pyfunction!(checksum_buffer, m)?)?;
    m.add_function(wrap_pyfunction!(checksum_file, m)?)?;
    m.add_function(wrap_pyfunction!(read_safetensors, m)?)?;
    Ok(())
}

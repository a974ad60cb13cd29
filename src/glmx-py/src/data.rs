//! Bindings for `glmx_core::data`: the native half of `glmx.data.DnaMlmLoader`.

use std::sync::{Arc, Mutex};

use glmx_core::data::loader::{check_limits, MAX_PREFETCH, MAX_THREADS};
use glmx_core::data::windows::WindowSpec;
use glmx_core::data::{
    check_spec, Batch, Dataset, DatasetConfig, Loader, LoaderConfig, MaskSpec, Next, Position,
};
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{float_arg, guard, uint_arg, ArgKind, BindingResult};

/// Longest window (and stride) accepted, in bases.
const MAX_SEQ_LEN: u64 = 1 << 32;
/// Largest per-rank batch accepted.
const MAX_BATCH: u64 = 1 << 24;
/// Largest world size accepted.
const MAX_RANKS: u64 = 1 << 24;
use crate::gil::run_released;
use crate::tensor::to_py;

/// Native batch stream of one rank. Use `glmx.data.DnaMlmLoader`, which wraps it.
///
/// Iterating yields dicts of CPU tensors (pinned when `pin_memory`); a new `iter()` restarts the
/// producer from the current position.
#[pyclass(module = "glmx._glmx", name = "NativeDnaLoader")]
pub struct NativeDnaLoader {
    // A pyclass must be Sync; the mutex is uncontended (methods take `&mut self`).
    loader: Mutex<Loader>,
}

impl NativeDnaLoader {
    fn get(&mut self) -> &mut Loader {
        self.loader
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn peek(&self) -> std::sync::MutexGuard<'_, Loader> {
        self.loader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[pymethods]
impl NativeDnaLoader {
    #[new]
    #[pyo3(signature = (
        paths, *, seq_len, stride, regions, max_n_fraction, skip_invalid, batch_size, shuffle, seed,
        rank, world_size, drop_last, num_threads, prefetch, pin_memory, compact,
        mlm_probability, mask_fraction, random_fraction, rc_prob, soft_masked_weight, epoch_in_rng
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        paths: Vec<String>,
        seq_len: &Bound<'_, PyAny>,
        stride: &Bound<'_, PyAny>,
        regions: Option<String>,
        max_n_fraction: Option<&Bound<'_, PyAny>>,
        skip_invalid: bool,
        batch_size: &Bound<'_, PyAny>,
        shuffle: bool,
        seed: &Bound<'_, PyAny>,
        rank: &Bound<'_, PyAny>,
        world_size: &Bound<'_, PyAny>,
        drop_last: bool,
        num_threads: &Bound<'_, PyAny>,
        prefetch: &Bound<'_, PyAny>,
        pin_memory: bool,
        compact: bool,
        mlm_probability: &Bound<'_, PyAny>,
        mask_fraction: &Bound<'_, PyAny>,
        random_fraction: &Bound<'_, PyAny>,
        rc_prob: &Bound<'_, PyAny>,
        soft_masked_weight: &Bound<'_, PyAny>,
        epoch_in_rng: bool,
    ) -> BindingResult<Self> {
        guard("NativeDnaLoader()", || {
            let k = ArgKind::Data;
            let unit = |name, obj| float_arg(k, name, obj, 0.0, 1.0);
            let seq_len = uint_arg(k, "seq_len", seq_len, 1, MAX_SEQ_LEN)?;
            let stride = uint_arg(k, "stride", stride, 1, MAX_SEQ_LEN)?;
            let batch_size = uint_arg(k, "batch_size", batch_size, 1, MAX_BATCH)?;
            let seed = uint_arg(k, "seed", seed, 0, u64::MAX)?;
            let world_size = uint_arg(k, "world_size", world_size, 1, MAX_RANKS)?;
            let rank = uint_arg(k, "rank", rank, 0, world_size - 1)?;
            let num_threads = uint_arg(k, "num_threads", num_threads, 1, MAX_THREADS as u64)?;
            let prefetch = uint_arg(k, "prefetch", prefetch, 1, MAX_PREFETCH as u64)?;
            let max_n_fraction = match max_n_fraction {
                Some(obj) if !obj.is_none() => Some(unit("max_n_fraction", obj)?),
                _ => None,
            };
            let mask = MaskSpec {
                mlm_probability: unit("mlm_probability", mlm_probability)?,
                mask_fraction: unit("mask_fraction", mask_fraction)?,
                random_fraction: unit("random_fraction", random_fraction)?,
                rc_prob: unit("rc_prob", rc_prob)?,
                soft_masked_weight: float_arg(
                    k,
                    "soft_masked_weight",
                    soft_masked_weight,
                    0.0,
                    f64::from(f32::MAX),
                )? as f32,
            };
            let dcfg = DatasetConfig {
                paths,
                regions,
                windows: WindowSpec {
                    seq_len,
                    stride,
                    max_n_fraction,
                    skip_short: skip_invalid,
                },
                skip_invalid,
            };
            let cfg = LoaderConfig {
                batch_size,
                shuffle,
                seed,
                rank,
                world_size,
                drop_last,
                num_threads: num_threads as usize,
                prefetch: prefetch as usize,
                pin_memory,
                compact,
                mask,
                epoch_in_rng,
            };
            // Settings are checked before the (possibly long) read of the data.
            check_limits(&cfg)?;
            check_spec(&cfg.mask)?;
            let data = run_released(py, |_| Dataset::open(&dcfg))?;
            Ok(Self {
                loader: Mutex::new(Loader::new(Arc::new(data), cfg)?),
            })
        })
    }

    /// Batches per epoch on this rank (the same on every rank).
    fn __len__(&self) -> usize {
        self.peek().len() as usize
    }

    /// Number of windows (samples) in the dataset.
    #[getter]
    fn num_samples(&self) -> u64 {
        self.peek().dataset().len()
    }

    /// Current epoch.
    #[getter]
    fn epoch(&self) -> u64 {
        self.peek().position().epoch
    }

    /// Samples of the global order consumed in the current epoch (all ranks together).
    #[getter]
    fn consumed(&self) -> u64 {
        self.peek().position().consumed
    }

    /// (malformed lines skipped, short sequences skipped, mostly-N windows dropped).
    #[getter]
    fn skipped(&self) -> (u64, u64, u64) {
        self.peek().dataset().skipped()
    }

    /// Moves to (epoch, consumed) and stops any running producer.
    fn seek(&mut self, epoch: &Bound<'_, PyAny>, consumed: &Bound<'_, PyAny>) -> BindingResult<()> {
        let epoch = uint_arg(ArgKind::Data, "epoch", epoch, 0, u64::MAX)?;
        let consumed = uint_arg(ArgKind::Data, "consumed", consumed, 0, u64::MAX)?;
        guard("NativeDnaLoader.seek", || {
            Ok(self.get().seek(Position { epoch, consumed })?)
        })
    }

    /// Stops the producer; prefetched batches are discarded, the position is kept.
    fn stop(&mut self) {
        self.get().stop();
    }

    /// Raw text of window `index` (case preserved, before RC and masking).
    fn window(&self, index: &Bound<'_, PyAny>) -> BindingResult<String> {
        let index = uint_arg(ArgKind::Data, "index", index, 0, u64::MAX)?;
        let loader = self.peek();
        loader.dataset().origin(index)?;
        Ok(String::from_utf8_lossy(loader.dataset().window(index)).into_owned())
    }

    /// (record name, 0-based start) of window `index`.
    fn origin(&self, index: &Bound<'_, PyAny>) -> BindingResult<(String, u64)> {
        let index = uint_arg(ArgKind::Data, "index", index, 0, u64::MAX)?;
        Ok(self.peek().dataset().origin(index)?)
    }

    fn __iter__(mut slf: PyRefMut<'_, Self>) -> BindingResult<PyRefMut<'_, Self>> {
        guard("NativeDnaLoader.__iter__", || Ok(slf.get().start()?))?;
        Ok(slf)
    }

    fn __next__(&mut self, py: Python<'_>) -> BindingResult<PyObject> {
        guard("NativeDnaLoader.__next__", || self.next_inner(py))
    }
}

impl NativeDnaLoader {
    fn next_inner(&mut self, py: Python<'_>) -> BindingResult<PyObject> {
        // Fast path: a prefetched batch is waiting, no need to release the GIL.
        let loader = self.get();
        let batch = match loader.poll()? {
            Next::Batch(b) => Some(b),
            Next::End => None,
            Next::Pending => run_released(py, |signals| loader.next_batch(signals))?,
        };
        match batch {
            Some(b) => Ok(batch_to_dict(py, &b)?),
            None => Err(PyStopIteration::new_err(()).into()),
        }
    }
}

fn batch_to_dict(py: Python<'_>, b: &Batch) -> PyResult<PyObject> {
    let d = PyDict::new(py);
    d.set_item("input_ids", to_py(py, &b.input_ids)?)?;
    d.set_item("labels", to_py(py, &b.labels)?)?;
    d.set_item("loss_weight", to_py(py, &b.loss_weight)?)?;
    d.set_item("sample_index", to_py(py, &b.sample_index)?)?;
    Ok(d.into_any().unbind())
}

/// Registers the classes on the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeDnaLoader>()?;
    Ok(())
}

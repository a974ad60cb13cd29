//! Bindings for `glmx_core::data`: the native half of `glmx.data.DnaMlmLoader`.

use std::sync::{Arc, Mutex};

use glmx_core::data::windows::WindowSpec;
use glmx_core::data::{
    Batch, Dataset, DatasetConfig, Loader, LoaderConfig, MaskSpec, Next, Position,
};
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::BindingResult;
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
        seq_len: u64,
        stride: u64,
        regions: Option<String>,
        max_n_fraction: Option<f64>,
        skip_invalid: bool,
        batch_size: u64,
        shuffle: bool,
        seed: u64,
        rank: u64,
        world_size: u64,
        drop_last: bool,
        num_threads: usize,
        prefetch: usize,
        pin_memory: bool,
        compact: bool,
        mlm_probability: f64,
        mask_fraction: f64,
        random_fraction: f64,
        rc_prob: f64,
        soft_masked_weight: f32,
        epoch_in_rng: bool,
    ) -> BindingResult<Self> {
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
        let data = run_released(py, |_| Dataset::open(&dcfg))?;
        let mask = MaskSpec {
            mlm_probability,
            mask_fraction,
            random_fraction,
            rc_prob,
            soft_masked_weight,
        };
        let cfg = LoaderConfig {
            batch_size,
            shuffle,
            seed,
            rank,
            world_size,
            drop_last,
            num_threads,
            prefetch,
            pin_memory,
            compact,
            mask,
            epoch_in_rng,
        };
        Ok(Self {
            loader: Mutex::new(Loader::new(Arc::new(data), cfg)?),
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
    fn seek(&mut self, epoch: u64, consumed: u64) -> BindingResult<()> {
        Ok(self.get().seek(Position { epoch, consumed })?)
    }

    /// Stops the producer; prefetched batches are discarded, the position is kept.
    fn stop(&mut self) {
        self.get().stop();
    }

    /// Raw text of window `index` (case preserved, before RC and masking).
    fn window(&self, index: u64) -> BindingResult<String> {
        let loader = self.peek();
        loader.dataset().origin(index)?;
        Ok(String::from_utf8_lossy(loader.dataset().window(index)).into_owned())
    }

    /// (record name, 0-based start) of window `index`.
    fn origin(&self, index: u64) -> BindingResult<(String, u64)> {
        Ok(self.peek().dataset().origin(index)?)
    }

    fn __iter__(mut slf: PyRefMut<'_, Self>) -> BindingResult<PyRefMut<'_, Self>> {
        slf.get().start()?;
        Ok(slf)
    }

    fn __next__(&mut self, py: Python<'_>) -> BindingResult<PyObject> {
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

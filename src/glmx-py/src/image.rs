//! Bindings for `glmx_core::data::image`: the native half of `glmx.data.ImageFolderLoader`.

use std::sync::{Arc, Mutex};

use glmx_core::data::image::pool::PooledBuffer;
use glmx_core::data::image::{
    ImageBatch, ImageFolder, ImageLoader, ImageLoaderConfig, ImageNext, ImageSpec, OnBad, Pixels,
};
use glmx_core::data::Position;
use glmx_core::CoreError;
use numpy::ndarray::ArrayView1;
use numpy::PyArray1;
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyDict;

use crate::errors::BindingResult;
use crate::gil::run_released;
use crate::tensor::to_py;

/// Native image batch stream of one rank. Use `glmx.data.ImageFolderLoader`, which wraps it.
#[pyclass(module = "glmx._glmx", name = "NativeImageLoader")]
pub struct NativeImageLoader {
    loader: Mutex<ImageLoader>,
}

impl NativeImageLoader {
    fn get(&mut self) -> &mut ImageLoader {
        self.loader
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn peek(&self) -> std::sync::MutexGuard<'_, ImageLoader> {
        self.loader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[pymethods]
impl NativeImageLoader {
    #[new]
    #[pyo3(signature = (
        root, split, *, classes, height, width, train, resize, scale, ratio, hflip_prob, mean,
        std, batch_size, shuffle, seed, rank, world_size, drop_last, num_threads, prefetch,
        pin_memory, uint8, skip_bad
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        root: String,
        split: String,
        classes: Option<Vec<String>>,
        height: u32,
        width: u32,
        train: bool,
        resize: u32,
        scale: (f64, f64),
        ratio: (f64, f64),
        hflip_prob: f64,
        mean: [f32; 3],
        std: [f32; 3],
        batch_size: u64,
        shuffle: bool,
        seed: u64,
        rank: u64,
        world_size: u64,
        drop_last: bool,
        num_threads: usize,
        prefetch: usize,
        pin_memory: bool,
        uint8: bool,
        skip_bad: bool,
    ) -> BindingResult<Self> {
        let folder = run_released(py, |_| ImageFolder::scan(&root, &split, classes.as_deref()))?;
        let spec = ImageSpec {
            height,
            width,
            train,
            resize,
            scale,
            ratio,
            hflip_prob,
            mean,
            std,
        };
        let cfg = ImageLoaderConfig {
            batch_size,
            shuffle,
            seed,
            rank,
            world_size,
            drop_last,
            num_threads,
            prefetch,
            pin_memory,
            uint8,
            spec,
            on_bad: if skip_bad { OnBad::Skip } else { OnBad::Error },
        };
        Ok(Self {
            loader: Mutex::new(ImageLoader::new(Arc::new(folder), cfg)?),
        })
    }

    /// Batches per epoch on this rank (the same on every rank).
    fn __len__(&self) -> usize {
        self.peek().len() as usize
    }

    /// Number of images in the split.
    #[getter]
    fn num_samples(&self) -> u64 {
        self.peek().folder().len()
    }

    /// Class names (index = label).
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.peek().folder().classes.clone()
    }

    /// Current epoch.
    #[getter]
    fn epoch(&self) -> u64 {
        self.peek().position().epoch
    }

    /// Images of the global order consumed in the current epoch (all ranks together).
    #[getter]
    fn consumed(&self) -> u64 {
        self.peek().position().consumed
    }

    /// Images skipped as unreadable so far.
    #[getter]
    fn bad_images(&self) -> u64 {
        self.peek().bad_images()
    }

    /// (path, label) of image `index`.
    fn item(&self, index: u64) -> BindingResult<(String, u32)> {
        let loader = self.peek();
        let f = loader.folder();
        if index >= f.len() {
            return Err(CoreError::Data(format!(
                "image {index} out of range (the split has {})",
                f.len()
            ))
            .into());
        }
        Ok((
            f.files[index as usize].display().to_string(),
            f.labels[index as usize],
        ))
    }

    /// Moves to (epoch, consumed) and stops any running producer.
    fn seek(&mut self, epoch: u64, consumed: u64) -> BindingResult<()> {
        Ok(self.get().seek(Position { epoch, consumed })?)
    }

    /// Stops the producer; prefetched batches are discarded, the position is kept.
    fn stop(&mut self) {
        self.get().stop();
    }

    fn __iter__(mut slf: PyRefMut<'_, Self>) -> BindingResult<PyRefMut<'_, Self>> {
        slf.get().start()?;
        Ok(slf)
    }

    fn __next__(&mut self, py: Python<'_>) -> BindingResult<PyObject> {
        let loader = self.get();
        let batch = match loader.poll()? {
            ImageNext::Batch(b) => Some(b),
            ImageNext::End => None,
            ImageNext::Pending => run_released(py, |signals| loader.next_batch(signals))?,
        };
        match batch {
            Some(b) => Ok(batch_to_dict(py, b)?),
            None => Err(PyStopIteration::new_err(()).into()),
        }
    }
}

/// Decodes one JPEG or PNG file to an `[H, W, 3]` uint8 tensor (the loader's decoder).
#[pyfunction]
fn decode_image(py: Python<'_>, path: String) -> BindingResult<PyObject> {
    let img = run_released(py, |_| {
        glmx_core::data::image::decode_file(std::path::Path::new(&path))
    })?;
    let t = tch::Tensor::from_slice(&img.data).reshape([img.height as i64, img.width as i64, 3]);
    Ok(to_py(py, &t)?)
}

fn batch_to_dict(py: Python<'_>, b: ImageBatch) -> PyResult<PyObject> {
    let d = PyDict::new(py);
    d.set_item("pixel_values", pixels_to_py(py, b.pixel_values)?)?;
    d.set_item("labels", to_py(py, &b.labels)?)?;
    d.set_item("sample_index", to_py(py, &b.sample_index)?)?;
    Ok(d.into_any().unbind())
}

/// Keeps a pooled pixel buffer alive while a tensor views it; dropping the last view gives the
/// buffer back to the loader's pool.
#[pyclass(module = "glmx._glmx", name = "_HostPixels", frozen)]
struct HostPixels {
    buffer: PooledBuffer,
}

static FROM_NUMPY: GILOnceCell<PyObject> = GILOnceCell::new();

/// A torch tensor over the batch's pixels without a copy: pooled host memory is viewed through
/// a numpy array whose base object owns the buffer (`torch.from_numpy` keeps it alive).
fn pixels_to_py(py: Python<'_>, pixels: Pixels) -> PyResult<PyObject> {
    let (buffer, shape) = match pixels {
        Pixels::Tensor(t) => return to_py(py, &t),
        Pixels::Host { buffer, shape } => (buffer, shape),
    };
    let owner = Bound::new(py, HostPixels { buffer })?;
    let view = ArrayView1::from(owner.get().buffer.as_slice());
    // SAFETY: `owner` becomes the array's base object, so the buffer outlives the array; the
    // buffer is never reallocated while a `HostPixels` holds it.
    let array = unsafe { PyArray1::borrow_from_array(&view, owner.clone().into_any()) };
    let from_numpy = FROM_NUMPY.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("torch")?.getattr("from_numpy")?.unbind())
    })?;
    let flat = from_numpy.bind(py).call1((array,))?;
    Ok(flat.call_method1("view", (shape.to_vec(),))?.unbind())
}

/// Registers the classes on the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeImageLoader>()?;
    m.add_class::<HostPixels>()?;
    m.add_function(wrap_pyfunction!(decode_image, m)?)?;
    Ok(())
}

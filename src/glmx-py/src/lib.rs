//! `glmx._glmx`: thin PyO3 bindings over `glmx-core` (and the Hydra composition of
//! `glmx-config`). The config engine's own bindings live in `glmx._config`, which does not link
//! libtorch, so config tools start in milliseconds.
//!
//! Code without a `Python<'_>` in it belongs in a core crate; this crate only converts.

mod ckpt;
mod data;
mod errors;
mod gil;
mod image;
mod tensor;
mod testing;

use pyo3::prelude::*;

/// The native extension module.
#[pymodule]
fn _glmx(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("torch_version_built", tch_version())?;
    ckpt::register(m)?;
    data::register(m)?;
    glmx_pylog::register(m)?;
    image::register(m)?;
    testing::register(m)?;
    Ok(())
}

/// The libtorch version this extension was compiled against.
fn tch_version() -> &'static str {
    "2.13.0"
}

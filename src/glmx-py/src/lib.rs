//! `glmx._glmx`: thin PyO3 bindings over `glmx-config` and `glmx-core`.
//!
//! Code without a `Python<'_>` in it belongs in a core crate; this crate only converts.

mod ckpt;
mod compose;
mod config;
mod data;
mod errors;
mod gil;
mod logging;
mod tensor;
mod testing;
mod train;

use pyo3::prelude::*;

/// The native extension module.
#[pymodule]
fn _glmx(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("torch_version_built", tch_version())?;
    errors::register(m)?;
    ckpt::register(m)?;
    compose::register(m)?;
    config::register(m)?;
    data::register(m)?;
    logging::register(m)?;
    testing::register(m)?;
    train::register(m)?;
    Ok(())
}

/// The libtorch version this extension was compiled against.
fn tch_version() -> &'static str {
    "2.13.0"
}

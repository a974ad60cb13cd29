//! One mapping from `glmx-core` errors to the Python exception hierarchy (the config engine's
//! errors are mapped in `glmx._config`, which defines the classes).
//!
//! `glmx.GlmxError` is the root; each core module has its subclass. A Python exception raised by
//! user code inside a callback travels through Rust as [`BindingError::Python`] and surfaces
//! unchanged.
//!
//! The boundary is also where input is validated: numeric arguments go through [`uint_arg`] and
//! [`float_arg`] (a GlmxError subclass naming the argument, never OverflowError), and every
//! entry point runs inside [`guard`], which turns a Rust panic (a glmx bug) into `GlmxError`
//! rather than `PanicException`, which `except Exception` does not catch.

use std::panic::{catch_unwind, AssertUnwindSafe};

use glmx_core::CoreError;
use pyo3::exceptions::{PyFileNotFoundError, PyKeyboardInterrupt, PyPermissionError};
use pyo3::import_exception;
use pyo3::prelude::*;

// The classes are defined once, in `glmx._config` (which every glmx import loads first), so
// `except glmx.DataError` catches what either extension raises.
import_exception!(glmx._config, GlmxError);
import_exception!(glmx._config, DataError);
import_exception!(glmx._config, CheckpointError);
import_exception!(glmx._config, TrainError);

/// Every error a binding can return.
#[derive(Debug)]
pub enum BindingError {
    /// From the core (data, checkpoint, training).
    Core(CoreError),
    /// A Python exception, passed through unchanged.
    Python(PyErr),
    /// A Rust panic caught at the boundary (a bug in glmx): raised as `GlmxError`.
    Panic(String),
}

impl From<CoreError> for BindingError {
    fn from(err: CoreError) -> Self {
        Self::Core(err)
    }
}

impl From<PyErr> for BindingError {
    fn from(err: PyErr) -> Self {
        Self::Python(err)
    }
}

impl From<BindingError> for PyErr {
    fn from(err: BindingError) -> Self {
        match err {
            BindingError::Python(err) => err,
            BindingError::Core(err) => core_to_py(err),
            BindingError::Panic(msg) => {
                GlmxError::new_err(format!("internal error in glmx (please report it): {msg}"))
            }
        }
    }
}

fn core_to_py(err: CoreError) -> PyErr {
    let message = err.to_string();
    match err {
        CoreError::Data(_) => DataError::new_err(message),
        CoreError::Checkpoint(_) => CheckpointError::new_err(message),
        CoreError::Interrupted => PyKeyboardInterrupt::new_err(message),
        // As Python's own open(): `except FileNotFoundError` / `PermissionError` work.
        CoreError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(message)
        }
        CoreError::Io { ref source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            PyPermissionError::new_err(message)
        }
        CoreError::Io { .. } | CoreError::Torch(_) | CoreError::Train(_) | CoreError::Hook => {
            TrainError::new_err(message)
        }
    }
}

/// Result alias for bindings.
pub type BindingResult<T> = Result<T, BindingError>;

/// Runs a binding's body, turning a panic into [`BindingError::Panic`] (the last line of
/// defence: input is validated before it reaches code that could panic).
pub fn guard<T>(what: &str, body: impl FnOnce() -> BindingResult<T>) -> BindingResult<T> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(BindingError::Panic(format!("{what} panicked: {msg}")))
        }
    }
}

/// Which exception class an invalid argument raises.
#[derive(Clone, Copy)]
pub enum ArgKind {
    /// `glmx.DataError`.
    Data,
    /// `glmx.CheckpointError`.
    Checkpoint,
}

fn arg_error(kind: ArgKind, message: String) -> PyErr {
    match kind {
        ArgKind::Data => DataError::new_err(message),
        ArgKind::Checkpoint => CheckpointError::new_err(message),
    }
}

/// `obj` as an integer in `[lo, hi]`, else the `kind` error naming `name` and the range.
pub fn uint_arg(
    kind: ArgKind,
    name: &str,
    obj: &Bound<'_, PyAny>,
    lo: u64,
    hi: u64,
) -> PyResult<u64> {
    let value = if obj.is_instance_of::<pyo3::types::PyBool>() {
        None
    } else {
        obj.extract::<i128>().ok()
    };
    match value {
        Some(v) if v >= i128::from(lo) && v <= i128::from(hi) => Ok(v as u64),
        _ => {
            let shown = obj
                .repr()
                .map(|r| r.to_string())
                .unwrap_or_else(|_| "?".into());
            let shown: String = shown.chars().take(40).collect();
            Err(arg_error(
                kind,
                format!("{name} must be an integer in [{lo}, {hi}], got {shown}"),
            ))
        }
    }
}

/// Like [`uint_arg`] for an optional argument (`None` passes through).
pub fn opt_uint_arg(
    kind: ArgKind,
    name: &str,
    obj: Option<&Bound<'_, PyAny>>,
    lo: u64,
    hi: u64,
) -> PyResult<Option<u64>> {
    match obj {
        Some(o) if !o.is_none() => uint_arg(kind, name, o, lo, hi).map(Some),
        _ => Ok(None),
    }
}

/// `obj` as a finite float in `[lo, hi]`, else the `kind` error naming `name`.
pub fn float_arg(
    kind: ArgKind,
    name: &str,
    obj: &Bound<'_, PyAny>,
    lo: f64,
    hi: f64,
) -> PyResult<f64> {
    let value = if obj.is_instance_of::<pyo3::types::PyBool>() {
        None
    } else {
        obj.extract::<f64>().ok()
    };
    match value {
        Some(v) if v.is_finite() && v >= lo && v <= hi => Ok(v),
        _ => {
            let shown = obj
                .repr()
                .map(|r| r.to_string())
                .unwrap_or_else(|_| "?".into());
            let shown: String = shown.chars().take(40).collect();
            Err(arg_error(
                kind,
                format!("{name} must be a finite number in [{lo}, {hi}], got {shown}"),
            ))
        }
    }
}

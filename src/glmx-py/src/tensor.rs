//! Zero-copy tensor glue: a `torch.Tensor` becomes a `tch::Tensor` sharing its storage and back.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3_tch::tch;

/// Borrows the storage of a Python `torch.Tensor` as a `tch::Tensor` (no copy).
pub fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<tch::Tensor> {
    let ptr = obj.as_ptr() as *mut tch::python::CPyObject;
    // SAFETY: `ptr` is a live Python object for the duration of this call (we hold `obj`).
    let unpacked = unsafe { tch::Tensor::pyobject_unpack(ptr) };
    unpacked
        .map_err(|err| PyValueError::new_err(format!("cannot read tensor: {err}")))?
        .ok_or_else(|| {
            let type_name = obj
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into());
            PyTypeError::new_err(format!("expected a torch.Tensor, got {type_name}"))
        })
}

/// Wraps a `tch::Tensor` as a Python `torch.Tensor` (no copy). Unlike pyo3-tch's conversion,
/// a failure is an error, never a silent `None`.
pub fn to_py(py: Python<'_>, tensor: &tch::Tensor) -> PyResult<PyObject> {
    let ptr = tensor
        .pyobject_wrap()
        .map_err(|err| PyValueError::new_err(format!("cannot wrap tensor: {err}")))?;
    // SAFETY: `pyobject_wrap` returns a new reference to a valid PyObject.
    Ok(unsafe { PyObject::from_owned_ptr(py, ptr as *mut pyo3::ffi::PyObject) })
}

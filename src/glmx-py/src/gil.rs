//! The one helper that releases the GIL around long work and lets Ctrl-C stop it.

use std::sync::Mutex;

use glmx_core::cancel::Interrupt;
use glmx_core::CoreError;
use pyo3::prelude::*;

use crate::errors::BindingError;

/// Checks for pending Python signals by briefly re-taking the GIL. A raised exception (usually
/// `KeyboardInterrupt`) is kept so the caller can re-raise the original, not a copy.
#[derive(Default)]
pub struct PySignals {
    raised: Mutex<Option<PyErr>>,
}

impl Interrupt for PySignals {
    fn check(&self) -> Result<(), CoreError> {
        match Python::with_gil(|py| py.check_signals()) {
            Ok(()) => Ok(()),
            Err(err) => {
                if let Ok(mut slot) = self.raised.lock() {
                    *slot = Some(err);
                }
                Err(CoreError::Interrupted)
            }
        }
    }
}

/// Runs `work` without the GIL. `work` receives an [`Interrupt`] to poll at step boundaries; if
/// it stops because of a Python signal, the signal's exception is raised here.
pub fn run_released<T, F>(py: Python<'_>, work: F) -> Result<T, BindingError>
where
    T: Send,
    F: FnOnce(&PySignals) -> Result<T, CoreError> + Send,
{
    let signals = PySignals::default();
    let result = py.allow_threads(|| work(&signals));
    reraise_interrupt(result, &signals)
}

/// Turns `CoreError::Interrupted` caused by a Python signal back into that signal's exception
/// (usually `KeyboardInterrupt`); other errors map as usual.
pub fn reraise_interrupt<T>(
    result: Result<T, CoreError>,
    signals: &PySignals,
) -> Result<T, BindingError> {
    match result {
        Ok(value) => Ok(value),
        Err(CoreError::Interrupted) => {
            let raised = signals.raised.lock().ok().and_then(|mut slot| slot.take());
            Err(match raised {
                Some(err) => BindingError::Python(err),
                None => BindingError::Core(CoreError::Interrupted),
            })
        }
        Err(err) => Err(BindingError::Core(err)),
    }
}

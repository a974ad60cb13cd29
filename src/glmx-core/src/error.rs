//! The error type of `glmx-core`; the bindings map each variant to a Python exception.

/// Errors raised by the data loader, checkpoint coordinator and training loop.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Bad or unreadable training data (names the file and line where known).
    #[error("{0}")]
    Data(String),
    /// A checkpoint could not be written, read or validated.
    #[error("{0}")]
    Checkpoint(String),
    /// The training loop failed (names the step where known).
    #[error("{0}")]
    Train(String),
    /// A libtorch operation failed.
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
    /// An I/O operation failed on `path`.
    #[error("cannot access '{path}': {source}")]
    Io {
        /// The path that failed.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A user hook (Python code) failed; the binding that called it holds the original error
    /// and raises it unchanged.
    #[error("a training hook failed")]
    Hook,
    /// The user asked to stop (Ctrl-C); the caller turns this into `KeyboardInterrupt`.
    #[error("interrupted")]
    Interrupted,
}

/// Result alias used throughout the crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

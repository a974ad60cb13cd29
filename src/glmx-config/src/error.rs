//! Errors of the config engine. Every variant carries enough context (file, line, key) for a
//! user to find the problem without reading glmx's source.

use std::fmt;

/// Where in a user's file something went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// File name as the user wrote or the search path resolved it.
    pub file: Option<String>,
    /// 1-based line in the user's file (not in translated text).
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}"),
            (Some(file), None) => write!(f, "{file}"),
            (None, Some(line)) => write!(f, "<string>:{line}"),
            (None, None) => write!(f, "<string>"),
        }
    }
}

/// The error type of `glmx-config`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Template syntax or rendering failed.
    #[error("{location}: template error: {message}")]
    Template {
        /// Where the problem is.
        location: Location,
        /// What is wrong and what to do.
        message: String,
    },
    /// YAML could not be parsed or a tag is malformed.
    #[error("{location}: YAML error{}: {message}", key.as_ref().map(|k| format!(" at '{k}'")).unwrap_or_default())]
    Yaml {
        /// Where the problem is.
        location: Location,
        /// Dotted key path, when known.
        key: Option<String>,
        /// What is wrong and what to do.
        message: String,
    },
    /// Composition of a config tree failed (defaults lists, packages, options).
    #[error("{0}")]
    Composition(String),
    /// A command-line override is malformed or cannot be applied.
    #[error("{0}")]
    Override(String),
    /// An `${...}` interpolation cannot be resolved (missing key, cycle, missing value).
    #[error("{0}")]
    Interpolation(String),
    /// A file could not be read.
    #[error("cannot read '{path}': {source}")]
    Io {
        /// Path that failed.
        path: String,
        /// Underlying OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias used throughout the crate.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_formats_file_and_line() {
        let loc = Location {
            file: Some("configs/a.yaml".into()),
            line: Some(12),
        };
        assert_eq!(loc.to_string(), "configs/a.yaml:12");
        assert_eq!(Location::default().to_string(), "<string>");
    }

    #[test]
    fn yaml_error_names_key() {
        let err = ConfigError::Yaml {
            location: Location {
                file: Some("x.yaml".into()),
                line: Some(3),
            },
            key: Some("model.hidden".into()),
            message: "bad tag".into(),
        };
        assert_eq!(
            err.to_string(),
            "x.yaml:3: YAML error at 'model.hidden': bad tag"
        );
    }
}

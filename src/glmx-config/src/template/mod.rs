//! Template rendering: the line syntax, block shorthand and inline templates on top of
//! minijinja, with strict undefined, `trim_blocks`, a search path and errors that point into the
//! user's files.
//!
//! ```
//! use glmx_config::template::{preprocess, Renderer};
//! assert_eq!(preprocess("-- set x = 1\n== x\n"), "{% set x = 1 %}\n{{ x }}\n");
//! let r = Renderer::new(vec![]);
//! let out = r.render_str("cfg.yaml", "-- set x = 2\nv: {{ x * y }}\n", minijinja::context!(y => 3)).unwrap();
//! assert_eq!(out, "v: 6\n");
//! ```

mod errors;
pub mod globals;
pub mod inline;
mod lines;
mod pyrepr;
pub mod quoting;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use minijinja::value::ValueKind;
use minijinja::{Environment, UndefinedBehavior, Value};

use crate::error::{ConfigError, Location, Result};
pub use lines::preprocess;
pub use quoting::{needs_quoting, yaml_quote};

/// Deepest template nesting (extends, include, macro calls) before rendering stops with an error.
const RECURSION_LIMIT: usize = 64;

/// Where a loaded template came from, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The user's file (or `None` for a string).
    pub file: Option<PathBuf>,
    /// Lines before the template's first line in `file` (inline templates).
    pub line_offset: usize,
    /// The translated text minijinja sees.
    pub translated: String,
}

/// Templates known to one renderer: inline chunks registered on load, and every loaded source.
#[derive(Debug, Default)]
pub(crate) struct Store {
    search_path: Vec<PathBuf>,
    sources: Mutex<HashMap<String, Source>>,
}

impl Store {
    fn sources(&self) -> std::sync::MutexGuard<'_, HashMap<String, Source>> {
        self.sources.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `text` (split into inline chunks, each translated) under `name`.
    fn register(&self, name: &str, file: Option<PathBuf>, text: &str) -> String {
        let mut sources = self.sources();
        let mut first = String::new();
        for chunk in inline::split(text) {
            let translated = preprocess(&chunk.text);
            let source = Source {
                file: file.clone(),
                line_offset: chunk.line_offset,
                translated: translated.clone(),
            };
            match chunk.name {
                None => {
                    first = translated;
                    sources.insert(name.to_string(), source);
                }
                // An inline template already registered under this name (from a file loaded
                // earlier) keeps priority, like the first hit on a search path.
                Some(n) => {
                    // Errors in an inline template name the file (or string) that holds it.
                    let file = source.file.clone().or_else(|| Some(PathBuf::from(name)));
                    sources.entry(n).or_insert(Source { file, ..source });
                }
            }
        }
        first
    }

    /// Finds `name`: an already registered template, else the first search dir holding it.
    fn load(&self, name: &str) -> Result<Option<String>> {
        if let Some(src) = self.sources().get(name) {
            return Ok(Some(src.translated.clone()));
        }
        if !crate::limits::name_stays_inside(name) {
            return Err(ConfigError::Template {
                location: Location::default(),
                message: crate::limits::outside_message("template", name),
            });
        }
        for dir in &self.search_path {
            let path = dir.join(name);
            if path.is_file() {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
                return Ok(Some(self.register(name, Some(path), &text)));
            }
        }
        Ok(None)
    }

    pub(crate) fn source(&self, name: &str) -> Option<Source> {
        self.sources().get(name).cloned()
    }

    pub(crate) fn search_path(&self) -> &[PathBuf] {
        &self.search_path
    }
}

/// A minijinja environment configured for glmx templates over a search path.
///
/// One renderer renders one config (templates are cached after the first load).
pub struct Renderer {
    env: Environment<'static>,
    store: Arc<Store>,
}

impl Renderer {
    /// A renderer whose loader looks up template names in `search_path`, first hit wins.
    pub fn new(search_path: Vec<PathBuf>) -> Self {
        Self::with_project_dir(search_path, Path::new("."))
    }

    /// Like [`Renderer::new`], with the `project_dir` global set.
    pub fn with_project_dir(search_path: Vec<PathBuf>, project_dir: &Path) -> Self {
        let store = Arc::new(Store {
            search_path,
            sources: Mutex::default(),
        });
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        // A file without template syntax must render to itself, final newline included.
        env.set_keep_trailing_newline(true);
        env.set_recursion_limit(RECURSION_LIMIT);
        // Values are data, never YAML structure: `{{ x }}` of a string that could change the
        // document's structure is placed by `quoting` where it lands (escaped inside quotes,
        // verbatim in comments and block scalars, double-quoted where it would not read back
        // as one plain scalar). `toyaml` and `|safe` are template text and go in verbatim.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Custom("yaml"));
        env.set_formatter(format_value);
        globals::register(&mut env, project_dir);
        // `[name!]` wraps its block in this filter; safe: the block's text is template text.
        env.add_filter(lines::TRIM_FILTER, |body: Value| {
            Value::from_safe_string(lines::trim_block(&body.to_string()))
        });
        let loader_store = Arc::clone(&store);
        env.set_loader(move |name| {
            loader_store.load(name).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
            })
        });
        Self { env, store }
    }

    /// The directories searched for template names.
    pub fn search_path(&self) -> &[PathBuf] {
        self.store.search_path()
    }

    /// Renders `text` registered under `name` (used in errors and by `extends` cycles).
    pub fn render_str<S: serde::Serialize>(
        &self,
        name: &str,
        text: &str,
        vars: S,
    ) -> Result<String> {
        self.store.register(name, None, text);
        self.render_template(name, vars)
    }

    /// Renders the file at `path`; its directory is not added to the search path.
    pub fn render_file<S: serde::Serialize>(&self, path: &Path, vars: S) -> Result<String> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let name = path.display().to_string();
        self.store.register(&name, Some(path.to_path_buf()), &text);
        self.render_template(&name, vars)
    }

    /// Renders the template `name` found on the search path (or registered before).
    pub fn render_template<S: serde::Serialize>(&self, name: &str, vars: S) -> Result<String> {
        let chain = errors::extends_chain(&self.store, name)?;
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|e| errors::convert(&self.store, &chain, e))?;
        tmpl.render(Value::from_serialize(&vars))
            .map(quoting::finish)
            .map_err(|e| errors::convert(&self.store, &chain, e))
    }
}

/// The output formatter: a string that could change the YAML structure is marked, and
/// [`quoting::finish`] places it once the document's text around it is known.
fn format_value(
    out: &mut minijinja::Output,
    _state: &minijinja::State,
    value: &Value,
) -> std::result::Result<(), minijinja::Error> {
    let written = match value.as_str() {
        Some(s) if !value.is_safe() && !quoting::safe_everywhere(s) => {
            let mut marked = String::with_capacity(s.len() + 2);
            quoting::mark(&mut marked, s);
            out.write_str(&marked)
        }
        Some(s) => out.write_str(s),
        // a list or dict prints as Jinja2 prints it (Python's repr: `['en']`, not `["en"]`)
        None if matches!(
            value.kind(),
            ValueKind::Seq | ValueKind::Iterable | ValueKind::Map
        ) =>
        {
            pyrepr::write_repr(out, value)
        }
        None => pyrepr::write_scalar(out, value),
    };
    written.map_err(minijinja::Error::from)
}

/// Renders `text` with a fresh [`Renderer`] over `search_path`.
pub fn render_str<S: serde::Serialize>(
    text: &str,
    search_path: &[PathBuf],
    vars: S,
) -> Result<String> {
    Renderer::new(search_path.to_vec()).render_str("<string>", text, vars)
}

/// Renders the file at `path` with a fresh [`Renderer`]; the file's directory is searched first.
pub fn render_file<S: serde::Serialize>(
    path: &Path,
    search_path: &[PathBuf],
    vars: S,
) -> Result<String> {
    let mut dirs = Vec::with_capacity(search_path.len() + 1);
    if let Some(parent) = path.parent() {
        dirs.push(parent.to_path_buf());
    }
    dirs.extend(search_path.iter().cloned());
    Renderer::new(dirs).render_file(path, vars)
}

/// The location of line `line` (1-based, in translated text) of template `name`.
pub(crate) fn locate(store: &Store, name: &str, line: Option<usize>) -> Location {
    match store.source(name) {
        Some(src) => Location {
            file: Some(
                src.file
                    .map(|f| f.display().to_string())
                    .unwrap_or_else(|| name.to_string()),
            ),
            line: line.map(|l| l + src.line_offset),
        },
        None => Location {
            file: Some(name.to_string()),
            line,
        },
    }
}

#[cfg(test)]
mod parity_tests;
#[cfg(test)]
mod tests;

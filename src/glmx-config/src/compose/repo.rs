//! The config search path: where configs and config groups are found, loaded once and cached.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::error::{ConfigError, Result};
use crate::tree::{Map, Node};

/// One directory on the search path.
#[derive(Debug, Clone)]
pub struct Source {
    /// Who contributed it (`main`, `glmx`, `env`, `command-line`).
    pub provider: String,
    /// The directory.
    pub dir: PathBuf,
}

/// A choice in a defaults-list entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// `null`: a placeholder, dropped unless overridden.
    Null,
    /// One option (`???` included: a required choice).
    Name(String),
    /// Several options merged in order.
    Options(Vec<String>),
}

/// A defaults-list entry as written in a file.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// `_self_`.
    SelfRef,
    /// `- name` or `- name@pkg`: another config, relative to the containing group.
    Config {
        /// Path as written.
        path: String,
        /// `@pkg`.
        package: Option<String>,
    },
    /// `- [optional] [override] group[@pkg]: choice`.
    Group {
        /// Group as written (a leading `/` makes it absolute).
        group: String,
        /// `@pkg`.
        package: Option<String>,
        /// The option(s).
        choice: Choice,
        /// `optional`.
        optional: bool,
        /// `override`.
        is_override: bool,
    },
}

/// A loaded config file.
#[derive(Debug)]
pub struct Loaded {
    /// `# @package` header.
    pub header: Option<String>,
    /// Its `defaults:` list.
    pub defaults: Option<Vec<Entry>>,
    /// Its content without `defaults`.
    pub config: Node,
    /// Where it was found.
    pub file: PathBuf,
}

/// Search path plus a per-composition cache of loaded files.
pub struct Repo {
    sources: Vec<Source>,
    cache: RefCell<HashMap<String, Option<Rc<Loaded>>>>,
}

impl Repo {
    /// A repository over `sources`, searched in order.
    pub fn new(sources: Vec<Source>) -> Self {
        Self {
            sources,
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// The search path.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// The search path as shown in errors and `--info searchpath`.
    pub fn describe(&self) -> String {
        let lines: Vec<String> = self
            .sources
            .iter()
            .map(|s| format!("\tprovider={}, path=file://{}", s.provider, s.dir.display()))
            .collect();
        format!("Config search path:\n{}", lines.join("\n"))
    }

    fn find_file(&self, path: &str) -> Option<PathBuf> {
        if !crate::limits::name_stays_inside(path) {
            return None;
        }
        for s in &self.sources {
            for ext in ["yaml", "yml"] {
                let p = s.dir.join(format!("{path}.{ext}"));
                if p.is_file() {
                    return Some(p);
                }
            }
        }
        None
    }

    /// True when a config exists at `path` (a group path plus an option name).
    pub fn config_exists(&self, path: &str) -> bool {
        self.find_file(path).is_some()
    }

    /// True when `group` is a directory in some source.
    pub fn group_exists(&self, group: &str) -> bool {
        !group.is_empty()
            && crate::limits::name_stays_inside(group)
            && self.sources.iter().any(|s| s.dir.join(group).is_dir())
    }

    /// Sorted option names of a group across all sources.
    pub fn group_options(&self, group: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if !crate::limits::name_stays_inside(group) {
            return out;
        }
        for s in &self.sources {
            let Ok(rd) = std::fs::read_dir(s.dir.join(group)) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if !p.is_file() {
                    continue;
                }
                let ext = p.extension().and_then(|x| x.to_str());
                if matches!(ext, Some("yaml" | "yml")) {
                    if let Some(stem) = p.file_stem().and_then(|x| x.to_str()) {
                        out.push(stem.to_string());
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Loads (once) the config at `path`; `None` when no source has it.
    pub fn load(&self, path: &str) -> Result<Option<Rc<Loaded>>> {
        if let Some(hit) = self.cache.borrow().get(path) {
            return Ok(hit.clone());
        }
        if !crate::limits::name_stays_inside(path) {
            return Err(ConfigError::Composition(crate::limits::outside_message(
                "config", path,
            )));
        }
        let loaded = match self.find_file(path) {
            None => None,
            Some(file) => Some(Rc::new(load_file(&file)?)),
        };
        self.cache
            .borrow_mut()
            .insert(path.to_string(), loaded.clone());
        Ok(loaded)
    }
}

/// The single place where a config file's text becomes YAML: templates render first, so a
/// Hydra group file may also use template line statements.
fn render_source(file: &Path, text: String) -> Result<String> {
    crate::compose::render_hook(file, text)
}

fn load_file(file: &Path) -> Result<Loaded> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Io {
        path: name.clone(),
        source,
    })?;
    let header = package_header(&text);
    let text = render_source(file, text)?;
    let mut config = match super::yaml11::load(&text, &name)? {
        Node::Null => Node::Map(Map::new()),
        m @ Node::Map(_) => m,
        _ => {
            return Err(ConfigError::Composition(format!(
                "{name}: a config file must hold a mapping at the top level"
            )))
        }
    };
    let defaults = match config.as_map_mut().and_then(|m| m.shift_remove("defaults")) {
        None => None,
        Some(Node::List(items)) => Some(
            items
                .into_iter()
                .map(|i| parse_entry(i, &name))
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(_) => {
            return Err(ConfigError::Composition(format!(
                "In '{name}': the defaults list must be a list"
            )))
        }
    };
    Ok(Loaded {
        header,
        defaults,
        config,
        file: file.to_path_buf(),
    })
}

/// `# @package X` among the leading comment lines.
fn package_header(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix('#') else {
            break;
        };
        let mut words = comment.split_whitespace();
        if words.next() == Some("@package") {
            if let (Some(v), None) = (words.next(), words.next()) {
                return Some(v.to_string());
            }
        }
    }
    None
}

fn split_pkg(s: &str) -> (String, Option<String>) {
    match s.split_once('@') {
        Some((a, b)) => (a.to_string(), Some(b.to_string())),
        None => (s.to_string(), None),
    }
}

fn parse_entry(item: Node, file: &str) -> Result<Entry> {
    match item {
        Node::Str(s) if s == "_self_" => Ok(Entry::SelfRef),
        Node::Str(s) => {
            let (path, package) = split_pkg(&s);
            Ok(Entry::Config { path, package })
        }
        Node::Map(m) if m.len() == 1 => {
            let Some((key, value)) = m.into_iter().next() else {
                return Err(ConfigError::Composition(format!(
                    "In '{file}': empty defaults entry"
                )));
            };
            let words: Vec<&str> = key.split_whitespace().collect();
            let (flags, group) = words.split_at(words.len().saturating_sub(1));
            let mut optional = false;
            let mut is_override = false;
            for f in flags {
                match *f {
                    "optional" => optional = true,
                    "override" => is_override = true,
                    other => {
                        return Err(ConfigError::Composition(format!(
                            "In '{file}': unknown keyword '{other}' in defaults entry '{key}'; expected 'optional' or 'override'"
                        )))
                    }
                }
            }
            let (group, package) = split_pkg(group.first().copied().unwrap_or(""));
            let choice = match value {
                Node::Null => Choice::Null,
                Node::Str(s) => Choice::Name(s),
                Node::List(items) => Choice::Options(items.iter().map(Node::to_py_str).collect()),
                other => {
                    return Err(ConfigError::Composition(format!(
                        "In '{file}': unsupported value '{}' for defaults entry '{key}'; use an option name, a list of names or null",
                        other.to_py_str()
                    )))
                }
            };
            Ok(Entry::Group {
                group,
                package,
                choice,
                optional,
                is_override,
            })
        }
        Node::Map(_) => Err(ConfigError::Composition(format!(
            "In '{file}': Defaults list item must have exactly one key"
        ))),
        other => Err(ConfigError::Composition(format!(
            "In '{file}': unsupported defaults list item '{}'",
            other.to_py_str()
        ))),
    }
}

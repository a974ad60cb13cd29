//! Hydra-style composition: defaults lists over a search path, then command-line overrides.
//!
//! Split as Hydra is: [`repo`] (search path, loading), [`defaults`] (the defaults tree),
//! [`apply`] (config overrides). The result keeps the `hydra` node so `${hydra:...}` resolves
//! from Python too; callers drop it unless asked.

pub mod apply;
pub mod defaults;
pub mod repo;
pub mod tagged;
pub mod yaml11;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::error::{ConfigError, Result};
use crate::overrides::{parse_override, sweep_legal, Override, Prefix, Value};
use crate::tree::{merge, wrap_package, Map, Node};
use defaults::{DNode, Flat, Overrides};
use repo::{Choice, Repo, Source};

/// Renders a config file's text before YAML parsing. Identity for text without template
/// syntax; the single call site where the template engine plugs in.
pub fn render_hook(file: &Path, text: String) -> Result<String> {
    if !has_template_syntax(&text) {
        return Ok(text);
    }
    let dirs: Vec<PathBuf> = file
        .parent()
        .map(|p| vec![p.to_path_buf()])
        .unwrap_or_default();
    crate::template::Renderer::new(dirs).render_file(file, minijinja::context! {})
}

/// Cheap check so plain Hydra files skip the template engine (rendering them is the identity).
fn has_template_syntax(text: &str) -> bool {
    text.contains("{{")
        || text.contains("{%")
        || text.lines().any(|l| {
            let t = l.trim_start();
            t == "--"
                || t == "=="
                || t.starts_with("-- ")
                || t.starts_with("== ")
                || t.starts_with("=> ")
        })
}

/// What to compose.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Primary config name (`train` or `train.yaml`); `None` composes only the hydra node.
    pub config_name: Option<String>,
    /// Search path, in order.
    pub sources: Vec<Source>,
    /// Command-line overrides as typed.
    pub overrides: Vec<String>,
    /// Also compose `hydra/config` into the `hydra` node.
    pub with_hydra: bool,
    /// Multirun: sweeps are legal (and skipped here; the sweeper expands them).
    pub multirun: bool,
}

/// A composed, not yet interpolated, config.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The tree (with a `hydra` node when requested).
    pub config: Node,
    /// Merge order of the defaults list.
    pub defaults: Vec<Flat>,
    /// Final group choices (`hydra.runtime.choices`).
    pub choices: IndexMap<String, Option<String>>,
    /// Overrides that target the job (not `hydra.*`), as typed.
    pub task_overrides: Vec<Override>,
    /// Overrides that target `hydra.*`.
    pub hydra_overrides: Vec<Override>,
    /// The search path, formatted.
    pub searchpath: String,
}

/// Builds the search path: the user's dir, the package's shipped groups, then extra dirs.
pub fn search_path(
    user_dir: Option<&Path>,
    package_dir: Option<&Path>,
    extra: &[PathBuf],
) -> Vec<Source> {
    let mut out = Vec::new();
    if let Some(d) = user_dir {
        out.push(Source {
            provider: "main".into(),
            dir: d.to_path_buf(),
        });
    }
    if let Some(d) = package_dir {
        out.push(Source {
            provider: "glmx".into(),
            dir: d.to_path_buf(),
        });
    }
    for d in extra {
        out.push(Source {
            provider: "extra".into(),
            dir: d.clone(),
        });
    }
    out
}

fn strip_ext(name: &str) -> &str {
    name.strip_suffix(".yaml")
        .or_else(|| name.strip_suffix(".yml"))
        .unwrap_or(name)
}

/// Composes one config.
pub fn compose(req: &Request) -> Result<Composed> {
    let repo = Repo::new(req.sources.clone());
    let parsed: Vec<Override> = req
        .overrides
        .iter()
        .map(|s| parse_override(s))
        .collect::<Result<_>>()?;
    sweep_legal(&parsed, req.multirun)?;
    let mut ov = Overrides::default();
    let mut config_overrides: Vec<&Override> = Vec::new();
    for o in &parsed {
        if o.is_sweep() {
            continue;
        }
        let value = match &o.value {
            Some(Value::Node(n)) => Some(n),
            _ => None,
        };
        let is_group = repo.group_exists(&o.key);
        if matches!(value, Some(Node::Map(_)))
            || !is_group
            || matches!(o.value, Some(Value::Extend(_)))
        {
            config_overrides.push(o);
            continue;
        }
        let choice = match value {
            None => None,
            Some(Node::Str(s)) => Some(Choice::Name(s.clone())),
            Some(Node::List(items)) => {
                Some(Choice::Options(items.iter().map(Node::to_py_str).collect()))
            }
            Some(Node::Null) => Some(Choice::Null),
            Some(other) => {
                return Err(ConfigError::Override(format!(
                    "Config group override must be a string or a list. Got {} in '{}'",
                    other.to_py_str(),
                    o.input
                )))
            }
        };
        match o.prefix {
            Prefix::ForceAdd => {
                return Err(ConfigError::Override(format!(
                    "force-add of config groups is not supported: '{}'",
                    o.input
                )))
            }
            Prefix::Delete => {
                let name = match choice {
                    Some(Choice::Name(n)) => Some(n),
                    _ => None,
                };
                ov.delete(o.key_with_package(), name);
            }
            Prefix::Add => {
                let mut d = DNode::group(
                    o.key.clone(),
                    choice.unwrap_or(Choice::Null),
                    o.package.clone(),
                    false,
                    false,
                );
                d.external_append = true;
                ov.appends.push(d);
            }
            Prefix::Set => ov.choose(o.key_with_package(), choice.unwrap_or(Choice::Null)),
        }
    }
    let mut roots = Vec::new();
    if req.with_hydra {
        roots.push(DNode::config("hydra/config".into(), None));
    }
    if let Some(name) = &req.config_name {
        roots.push(DNode::primary(strip_ext(name)));
    }
    let trees = defaults::build(&repo, roots, &mut ov)?;
    let flat = defaults::flatten(&trees);
    let mut cfg = Node::Map(Map::new());
    for f in &flat {
        let Some(loaded) = repo.load(&f.config_path)? else {
            continue;
        };
        merge(&mut cfg, wrap_package(loaded.config.clone(), &f.package));
    }
    for o in &config_overrides {
        apply::apply(&mut cfg, o)?;
    }
    let (hydra_overrides, task_overrides): (Vec<Override>, Vec<Override>) =
        parsed.into_iter().partition(|o| {
            o.key == "hydra" || o.key.starts_with("hydra.") || o.key.starts_with("hydra/")
        });
    Ok(Composed {
        config: cfg,
        defaults: flat,
        choices: ov.known.clone(),
        task_overrides,
        hydra_overrides,
        searchpath: repo.describe(),
    })
}

/// `hydra.job.override_dirname`: sorted `key=value` of the task overrides, minus excluded keys.
pub fn override_dirname(
    overrides: &[Override],
    exclude: &[String],
    kv_sep: &str,
    item_sep: &str,
) -> String {
    let mut lines: Vec<String> = overrides
        .iter()
        .filter(|o| !exclude.contains(&o.key_element()))
        .map(|o| match o.value {
            None => o.key_element(),
            Some(_) => format!("{}{kv_sep}{}", o.key_element(), o.value_text()),
        })
        .collect();
    lines.sort();
    lines.join(item_sep)
}

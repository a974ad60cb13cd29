//! Template projects: `meta.yaml` (itself a template) declares the search path, the config
//! prefix and the default config; [`load_project`] renders one config and builds its graph.

use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Location, Result};
use crate::graph::{load_str, Graph};
use crate::template::Renderer;

/// What `meta.yaml` declares, with defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectMeta {
    /// The project directory.
    pub project_dir: PathBuf,
    /// `name` (default: the directory's name).
    pub name: String,
    /// `description` (default: empty).
    pub description: String,
    /// Template search path: each `searchdir` (relative to the project), then the project itself.
    pub search_path: Vec<PathBuf>,
    /// `config_prefix` (default `configs`): config `X` is template `{config_prefix}/X`.
    pub config_prefix: String,
    /// `default_config`, used when no config is named.
    pub default_config: Option<String>,
    /// Config names found under the prefix, sorted.
    pub configs: Vec<String>,
}

fn meta_err(file: &Path, message: String) -> ConfigError {
    ConfigError::Yaml {
        location: Location {
            file: Some(file.display().to_string()),
            line: None,
        },
        key: None,
        message,
    }
}

fn string_field(map: &serde_yaml::Mapping, key: &str, file: &Path) -> Result<Option<String>> {
    match map.get(key) {
        None | Some(serde_yaml::Value::Null) => Ok(None),
        Some(serde_yaml::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(meta_err(
            file,
            format!("'{key}' must be a string, got {other:?}"),
        )),
    }
}

/// Reads `project_dir/meta.yaml` (rendered as a template) or derives defaults without one.
pub fn load_meta(project_dir: &Path) -> Result<ProjectMeta> {
    let meta_path = project_dir.join("meta.yaml");
    let mut meta = ProjectMeta {
        project_dir: project_dir.to_path_buf(),
        name: project_dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default(),
        description: String::new(),
        search_path: Vec::new(),
        config_prefix: "configs".into(),
        default_config: None,
        configs: Vec::new(),
    };
    let mut searchdirs = vec!["templates".to_string()];
    if meta_path.is_file() {
        let renderer = Renderer::with_project_dir(vec![project_dir.to_path_buf()], project_dir);
        let text = renderer.render_file(&meta_path, ())?;
        let value: serde_yaml::Value = serde_yaml::from_str(&text)
            .map_err(|e| meta_err(&meta_path, format!("invalid YAML: {e}")))?;
        let map = match value {
            serde_yaml::Value::Mapping(m) => m,
            serde_yaml::Value::Null => serde_yaml::Mapping::new(),
            _ => return Err(meta_err(&meta_path, "meta.yaml must be a mapping".into())),
        };
        if let Some(name) = string_field(&map, "name", &meta_path)? {
            meta.name = name;
        }
        meta.description = string_field(&map, "description", &meta_path)?.unwrap_or_default();
        if let Some(prefix) = string_field(&map, "config_prefix", &meta_path)? {
            meta.config_prefix = prefix;
        }
        meta.default_config = string_field(&map, "default_config", &meta_path)?;
        match map.get("searchdir") {
            None | Some(serde_yaml::Value::Null) => {}
            Some(serde_yaml::Value::String(s)) => searchdirs = vec![s.clone()],
            Some(serde_yaml::Value::Sequence(items)) => {
                searchdirs = items
                    .iter()
                    .map(|v| match v {
                        serde_yaml::Value::String(s) => Ok(s.clone()),
                        other => Err(meta_err(
                            &meta_path,
                            format!("searchdir entries must be strings, got {other:?}"),
                        )),
                    })
                    .collect::<Result<_>>()?;
            }
            Some(other) => {
                return Err(meta_err(
                    &meta_path,
                    format!("searchdir must be a list of directories, got {other:?}"),
                ))
            }
        }
    }
    for dir in searchdirs {
        let path = project_dir.join(&dir);
        if path.is_dir() {
            meta.search_path.push(path);
        } else {
            tracing::debug!("search dir {} does not exist; skipped", path.display());
        }
    }
    meta.search_path.push(project_dir.to_path_buf());
    meta.configs = list_configs(&project_dir.join(&meta.config_prefix));
    Ok(meta)
}

fn list_configs(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
    }
    out.sort();
    out
}

/// A rendered config and its graph.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The project's meta data.
    pub meta: ProjectMeta,
    /// Template name of the config on the search path.
    pub template: String,
    /// The rendered YAML text.
    pub rendered: String,
    /// The node graph.
    pub graph: Graph,
}

/// Template name for `config` (or the default config) in project `meta`.
pub fn resolve_config(meta: &ProjectMeta, config: Option<&str>) -> Result<String> {
    let Some(config) = config.or(meta.default_config.as_deref()) else {
        return Err(ConfigError::Template {
            location: Location::default(),
            message: format!(
                "no config named and meta.yaml declares no default_config; configs in '{}': {}",
                meta.project_dir.join(&meta.config_prefix).display(),
                meta.configs.join(", ")
            ),
        });
    };
    if !crate::limits::name_stays_inside(config) {
        return Err(ConfigError::Template {
            location: Location::default(),
            message: format!(
                "{} (configs: {})",
                crate::limits::outside_message("config", config),
                meta.configs.join(", ")
            ),
        });
    }
    let prefixed = format!("{}/{config}", meta.config_prefix);
    if meta.project_dir.join(&prefixed).is_file() {
        return Ok(prefixed);
    }
    if meta.search_path.iter().any(|d| d.join(config).is_file()) {
        return Ok(config.to_string());
    }
    Err(ConfigError::Template {
        location: Location {
            file: Some(config.to_string()),
            line: None,
        },
        message: format!(
            "config '{config}' not found as '{prefixed}' nor on the search path [{}]; available \
             configs: {}",
            meta.search_path
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if meta.configs.is_empty() {
                "(none)".to_string()
            } else {
                meta.configs.join(", ")
            }
        ),
    })
}

/// Renders config `config` of the project in `project_dir` with template `vars` and builds its
/// graph.
pub fn load_project<S: serde::Serialize>(
    config: Option<&str>,
    project_dir: &Path,
    vars: S,
) -> Result<LoadedConfig> {
    let meta = load_meta(project_dir)?;
    let template = resolve_config(&meta, config)?;
    let renderer = Renderer::with_project_dir(meta.search_path.clone(), project_dir);
    let rendered = renderer.render_template(&template, vars)?;
    let file = meta
        .search_path
        .iter()
        .map(|d| d.join(&template))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| template.clone());
    let graph = load_str(&rendered, Some(&format!("{file} (rendered)")))?;
    Ok(LoadedConfig {
        meta,
        template,
        rendered,
        graph,
    })
}

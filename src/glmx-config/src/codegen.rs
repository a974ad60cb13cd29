//! Graph -> standalone Python source that builds one target (`Project.code(target)`).
//!
//! Shared nodes (singletons, partials, `!dict`/`!list`/`!tuple`) become local variables assigned
//! once, children first; factories and plain containers are written inline at every occurrence,
//! which gives the same sharing as materialization.

use std::collections::{BTreeMap, HashMap};

use crate::error::{ConfigError, Location, Result};
use crate::graph::{CallKind, Callable, Graph, Node, NodeId};

const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// Python source defining `construct(**vars)` that returns target `target`.
pub fn generate(graph: &Graph, target: &str) -> Result<String> {
    let Some(root) = graph.target(target) else {
        return Err(ConfigError::Yaml {
            location: Location {
                file: graph.file().map(str::to_string),
                line: None,
            },
            key: Some(target.to_string()),
            message: format!(
                "no target '{target}'; targets: {}",
                graph.target_names().join(", ")
            ),
        });
    };
    let mut gen = Gen {
        g: graph,
        imports: BTreeMap::new(),
        import_names: HashMap::new(),
        vars: HashMap::new(),
        hoisted: HashMap::new(),
        body: Vec::new(),
        uses_file: false,
    };
    for id in graph.reachable(root) {
        if gen.is_hoisted(id) {
            let expr = gen.expr_of(id);
            let name = gen.local_name(id);
            gen.body.push(format!("    {name} = {expr}"));
            gen.hoisted.insert(id, name);
        } else if let Node::Var { name, default } = graph.node(id) {
            gen.vars.insert(name.clone(), *default);
        }
    }
    let result = gen.expr(root);
    Ok(gen.finish(target, &result))
}

struct Gen<'g> {
    g: &'g Graph,
    /// module -> [(attr, local alias)]
    imports: BTreeMap<String, Vec<(String, String)>>,
    import_names: HashMap<(String, String), String>,
    vars: HashMap<String, Option<NodeId>>,
    hoisted: HashMap<NodeId, String>,
    body: Vec<String>,
    uses_file: bool,
}

fn py_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

impl Gen<'_> {
    fn is_hoisted(&self, id: NodeId) -> bool {
        match self.g.node(id) {
            Node::Call { kind, .. } => *kind != CallKind::Factory,
            Node::List { shared, .. } | Node::Dict { shared, .. } => *shared,
            Node::Tuple(_) => true,
            _ => false,
        }
    }

    fn local_name(&self, id: NodeId) -> String {
        let base = match self.g.node(id) {
            Node::Call { name: Some(n), .. } => n.clone(),
            Node::Call { callable, .. } => {
                let last = match callable {
                    Callable::Builtin(n) => n.as_str(),
                    Callable::Module { attr, .. } | Callable::File { attr, .. } => {
                        attr.rsplit('.').next().unwrap_or(attr)
                    }
                };
                format!("{}_{id}", last.to_lowercase())
            }
            _ => format!("node_{id}"),
        };
        if KEYWORDS.contains(&base.as_str()) || self.vars.contains_key(&base) {
            format!("{base}_")
        } else {
            base
        }
    }

    fn callable_expr(&mut self, callable: &Callable) -> String {
        match callable {
            Callable::Builtin(name) => name.clone(),
            Callable::Module { module, attr } => {
                let (first, rest) = match attr.split_once('.') {
                    Some((f, r)) => (f, Some(r)),
                    None => (attr.as_str(), None),
                };
                let key = (module.clone(), first.to_string());
                let alias = match self.import_names.get(&key) {
                    Some(a) => a.clone(),
                    None => {
                        let taken = self.import_names.values().any(|a| a == first);
                        let alias = if taken {
                            format!("{first}_{}", self.import_names.len())
                        } else {
                            first.to_string()
                        };
                        self.import_names.insert(key, alias.clone());
                        self.imports
                            .entry(module.clone())
                            .or_default()
                            .push((first.to_string(), alias.clone()));
                        alias
                    }
                };
                match rest {
                    Some(r) => format!("{alias}.{r}"),
                    None => alias,
                }
            }
            Callable::File { path, attr } => {
                self.uses_file = true;
                format!("_load_file({}).{attr}", py_str(path))
            }
        }
    }

    fn expr(&mut self, id: NodeId) -> String {
        if let Some(name) = self.hoisted.get(&id) {
            return name.clone();
        }
        self.expr_of(id)
    }

    fn expr_of(&mut self, id: NodeId) -> String {
        match self.g.node(id).clone() {
            Node::Null => "None".into(),
            Node::Bool(b) => if b { "True" } else { "False" }.into(),
            Node::Int(i) => i.to_string(),
            Node::Float(f) if f.is_nan() => "float(\"nan\")".into(),
            Node::Float(f) if f.is_infinite() => {
                format!("float(\"{}inf\")", if f < 0.0 { "-" } else { "" })
            }
            Node::Float(f) => format!("{f:?}"),
            Node::Str(s) => py_str(&s),
            Node::List { items, .. } => format!("[{}]", self.list(&items)),
            Node::Tuple(items) => match items.len() {
                1 => format!("({},)", self.list(&items)),
                _ => format!("({})", self.list(&items)),
            },
            Node::Dict { entries, .. } => {
                let parts: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{}: {}", self.expr(*k), self.expr(*v)))
                    .collect();
                format!("{{{}}}", parts.join(", "))
            }
            Node::Call {
                kind,
                callable,
                args,
                kwargs,
                ..
            } => {
                let func = self.callable_expr(&callable);
                let mut parts: Vec<String> = args.iter().map(|a| self.expr(*a)).collect();
                for (k, v) in &kwargs {
                    let value = self.expr(*v);
                    let valid = k.chars().all(|c| c.is_alphanumeric() || c == '_')
                        && !KEYWORDS.contains(&k.as_str());
                    parts.push(if valid {
                        format!("{k}={value}")
                    } else {
                        format!("**{{{}: {value}}}", py_str(k))
                    });
                }
                match kind {
                    CallKind::Partial => {
                        parts.insert(0, func);
                        format!("functools.partial({})", parts.join(", "))
                    }
                    _ => format!("{func}({})", parts.join(", ")),
                }
            }
            Node::Var { name, .. } => name,
            Node::Meta(_) => "None  # !meta values are not generated".into(),
        }
    }

    fn list(&mut self, items: &[NodeId]) -> String {
        items
            .iter()
            .map(|i| self.expr(*i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn finish(mut self, target: &str, result: &str) -> String {
        let mut out = format!(
            "# Generated by glmx from {}: builds target '{target}'.\nimport functools  # noqa: F401\n",
            self.g.file().unwrap_or("<string>")
        );
        if self.uses_file {
            out.push_str("import importlib.util\nimport pathlib\n");
        }
        for (module, names) in &self.imports {
            let parts: Vec<String> = names
                .iter()
                .map(|(a, alias)| {
                    if a == alias {
                        a.clone()
                    } else {
                        format!("{a} as {alias}")
                    }
                })
                .collect();
            out.push_str(&format!("from {module} import {}\n", parts.join(", ")));
        }
        if self.uses_file {
            out.push_str(
                "\n\n@functools.cache\ndef _load_file(path):\n    path = pathlib.Path(path)\n    spec = importlib.util.spec_from_file_location(path.stem, path)\n    module = importlib.util.module_from_spec(spec)\n    spec.loader.exec_module(module)\n    return module\n",
            );
        }
        let mut vars: Vec<(String, Option<NodeId>)> = self.vars.clone().into_iter().collect();
        vars.sort_by(|a, b| (a.1.is_some(), &a.0).cmp(&(b.1.is_some(), &b.0)));
        let mut params = Vec::new();
        let mut defaults = Vec::new();
        for (name, default) in vars {
            match default {
                None => params.push(name),
                Some(d) => {
                    let expr = self.expr(d);
                    if matches!(
                        self.g.node(d),
                        Node::Null | Node::Bool(_) | Node::Int(_) | Node::Float(_) | Node::Str(_)
                    ) {
                        params.push(format!("{name}={expr}"));
                    } else {
                        params.push(format!("{name}=None"));
                        defaults.push(format!("    if {name} is None:\n        {name} = {expr}"));
                    }
                }
            }
        }
        out.push_str(&format!("\n\ndef construct({}):\n", params.join(", ")));
        out.push_str(&format!("    \"\"\"Builds target '{target}'.\"\"\"\n"));
        for d in &defaults {
            out.push_str(d);
            out.push('\n');
        }
        for line in &self.body {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!("    return {result}\n"));
        out
    }
}

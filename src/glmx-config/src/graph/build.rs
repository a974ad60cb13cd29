//! YAML tree -> graph: tags, anchors, aliases, merge keys, `argN` keys, `.definitions`.

use std::collections::{HashMap, HashSet};

use super::{Graph, Node, NodeId, Origin};
use crate::error::{ConfigError, Location, Result};
use crate::tags::{parse_tag, Container, Core, TagKind};

use crate::yaml::{parse, resolve_plain, Scalar, YKind, YNode};

pub(super) fn load_str(text: &str, file: Option<&str>) -> Result<Graph> {
    let root = parse(text, file)?;
    let mut b = Builder {
        graph: Graph {
            file: file.map(str::to_string),
            ..Graph::default()
        },
        anchors: HashMap::new(),
        built: HashMap::new(),
        in_progress: HashSet::new(),
        names: HashMap::new(),
    };
    let Some(root) = root else {
        return Ok(b.graph);
    };
    let max_depth = crate::limits::max_depth();
    if let Some(line) = prewalk(&root, &mut b.anchors, max_depth) {
        return Err(b.err(
            line,
            "",
            crate::limits::exceeded("nesting", max_depth, crate::limits::DEPTH_VAR),
        ));
    }
    match &root.kind {
        YKind::Map(_) if root.tag.is_none() => {
            b.register_anchor(&root);
            let entries = b.flatten_entries(&root, "")?;
            for (key, value) in entries {
                let name = b.key_text(key, "")?;
                let id = b.build(value, &name)?;
                let list = if name.starts_with('.') {
                    &mut b.graph.definitions
                } else {
                    &mut b.graph.targets
                };
                match list.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = id,
                    None => list.push((name, id)),
                }
            }
        }
        _ => {
            let id = b.build(&root, "main")?;
            b.graph.targets.push(("main".into(), id));
        }
    }
    // Aliases share graph nodes, but materializing (and `code()`) copies plain containers once
    // per reference: a "billion laughs" document must be refused here, not built.
    let limit = crate::limits::max_alias_nodes();
    let expanded = b.graph.expanded_size();
    if expanded.saturating_sub(b.graph.nodes.len()) > limit {
        return Err(b.err(
            1,
            "",
            crate::limits::exceeded(
                "the number of nodes created by expanding YAML aliases",
                limit,
                crate::limits::ALIAS_NODES_VAR,
            ),
        ));
    }
    Ok(b.graph)
}

struct Builder<'a> {
    graph: Graph,
    anchors: HashMap<usize, &'a YNode>,
    /// Each YAML node is built once (keyed by address): aliases and merged values share nodes.
    built: HashMap<*const YNode, NodeId>,
    in_progress: HashSet<*const YNode>,
    names: HashMap<String, (NodeId, usize)>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn is_merge_key(key: &YNode) -> bool {
    match &key.kind {
        YKind::Scalar { value, plain } => {
            (*plain && value == "<<") || key.tag.as_deref() == Some("tag:yaml.org,2002:merge")
        }
        _ => false,
    }
}

fn is_null(node: &YNode) -> bool {
    matches!(&node.kind, YKind::Scalar { value, plain: true } if node.tag.is_none() && resolve_plain(value) == Scalar::Null)
}

impl<'a> Builder<'a> {
    fn err(&self, line: usize, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Yaml {
            location: Location {
                file: self.graph.file.clone(),
                line: Some(line),
            },
            key: (!key.is_empty()).then(|| key.to_string()),
            message: message.into(),
        }
    }

    fn register_anchor(&mut self, node: &'a YNode) {
        if node.anchor != 0 {
            self.anchors.insert(node.anchor, node);
        }
    }

    /// Follows an alias to its anchored node.
    fn deref(&mut self, node: &'a YNode, key: &str) -> Result<&'a YNode> {
        match node.kind {
            YKind::Alias(id) => self
                .anchors
                .get(&id)
                .copied()
                .ok_or_else(|| self.err(node.line, key, "alias refers to an unknown anchor")),
            _ => {
                self.register_anchor(node);
                Ok(node)
            }
        }
    }

    /// The entries of a mapping with merge keys applied: merged keys first, explicit keys
    /// override them in place, later duplicates override earlier ones (first position kept).
    fn flatten_entries(
        &mut self,
        node: &'a YNode,
        key: &str,
    ) -> Result<Vec<(&'a YNode, &'a YNode)>> {
        self.flatten_depth(node, key, 0)
    }

    fn flatten_depth(
        &mut self,
        node: &'a YNode,
        key: &str,
        depth: usize,
    ) -> Result<Vec<(&'a YNode, &'a YNode)>> {
        if depth > 64 {
            return Err(self.err(node.line, key, "merge keys nest too deep (a merge cycle?)"));
        }
        let YKind::Map(entries) = &node.kind else {
            return Err(self.err(node.line, key, "expected a mapping"));
        };
        let mut merged: Vec<(&'a YNode, &'a YNode)> = Vec::new();
        let mut explicit: Vec<(&'a YNode, &'a YNode)> = Vec::new();
        for (k, v) in entries {
            self.register_anchor(k);
            if !is_merge_key(k) {
                self.register_anchor(v);
                explicit.push((k, v));
                continue;
            }
            let sources: Vec<&'a YNode> = match &v.kind {
                YKind::Seq(items) => items.iter().collect(),
                _ => vec![v],
            };
            for src in sources {
                let src = self.deref(src, key)?;
                if !matches!(src.kind, YKind::Map(_)) {
                    return Err(self.err(
                        src.line,
                        key,
                        "a merge key `<<` needs a mapping or a list of mappings",
                    ));
                }
                for (mk, mv) in self.flatten_depth(src, key, depth + 1)? {
                    // Earlier merge sources win over later ones.
                    if !self.contains_key(&merged, mk) {
                        merged.push((mk, mv));
                    }
                }
            }
        }
        for (k, v) in explicit {
            match self.position(&merged, k) {
                Some(i) => merged[i].1 = v,
                None => merged.push((k, v)),
            }
        }
        Ok(merged)
    }

    fn position(&self, list: &[(&YNode, &YNode)], key: &YNode) -> Option<usize> {
        let text = scalar_key(key)?;
        list.iter()
            .position(|(k, _)| scalar_key(k).as_ref() == Some(&text))
    }

    fn contains_key(&self, list: &[(&YNode, &YNode)], key: &YNode) -> bool {
        self.position(list, key).is_some()
    }

    fn key_text(&mut self, key: &'a YNode, path: &str) -> Result<String> {
        let key = self.deref(key, path)?;
        scalar_key(key).ok_or_else(|| self.err(key.line, path, "mapping keys must be scalars here"))
    }

    fn push(&mut self, node: Node, line: usize, key: &str) -> NodeId {
        self.graph.nodes.push(node);
        self.graph.origins.push(Origin {
            line,
            key: key.to_string(),
        });
        self.graph.nodes.len() - 1
    }

    fn build(&mut self, node: &'a YNode, key: &str) -> Result<NodeId> {
        let node = self.deref(node, key)?;
        let addr = node as *const YNode;
        if let Some(id) = self.built.get(&addr) {
            return Ok(*id);
        }
        if !self.in_progress.insert(addr) {
            return Err(self.err(
                node.line,
                key,
                "an alias refers to a node that contains it (recursive alias)",
            ));
        }
        let result = self.build_new(node, key);
        self.in_progress.remove(&addr);
        let id = result?;
        self.built.insert(addr, id);
        Ok(id)
    }

    fn build_new(&mut self, node: &'a YNode, key: &str) -> Result<NodeId> {
        let tag = match &node.tag {
            None => None,
            Some(t) => Some(parse_tag(t).map_err(|m| self.err(node.line, key, m))?),
        };
        let line = node.line;
        match tag {
            None => self.build_plain(node, key, false),
            Some(TagKind::Core(core)) => self.build_core(node, key, core),
            Some(TagKind::Container(kind, name)) => {
                let id = self.build_container(node, key, kind)?;
                self.name_node(id, name, line, key)?;
                Ok(id)
            }
            Some(TagKind::Var) => self.build_var(node, key),
            Some(TagKind::Meta) => {
                let inner = self.build_plain(node, key, false)?;
                Ok(self.push(Node::Meta(inner), line, key))
            }
            Some(TagKind::Call {
                kind,
                callable,
                name,
            }) => {
                let (args, kwargs) = self.build_args(node, key)?;
                let id = self.push(
                    Node::Call {
                        kind,
                        callable,
                        args,
                        kwargs,
                        name: name.clone(),
                    },
                    line,
                    key,
                );
                self.name_node(id, name, line, key)?;
                Ok(id)
            }
        }
    }

    fn name_node(
        &mut self,
        id: NodeId,
        name: Option<String>,
        line: usize,
        key: &str,
    ) -> Result<()> {
        let Some(name) = name else { return Ok(()) };
        if let Some((_, other_line)) = self.names.get(&name) {
            return Err(self.err(line, key, format!("node name '@{name}' is already used at line {other_line}; names must be unique")));
        }
        self.names.insert(name, (id, line));
        Ok(())
    }

    /// Untagged node (or the content of `!meta`): scalars resolve by the core schema.
    fn build_plain(&mut self, node: &'a YNode, key: &str, shared: bool) -> Result<NodeId> {
        let line = node.line;
        let built = match &node.kind {
            YKind::Scalar { value, plain } => {
                if *plain {
                    scalar_node(resolve_plain(value))
                } else {
                    Node::Str(value.clone())
                }
            }
            YKind::Seq(items) => {
                let mut ids = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    ids.push(self.build(item, &join(key, &i.to_string()))?);
                }
                Node::List { items: ids, shared }
            }
            YKind::Map(_) => {
                let mut entries = Vec::new();
                for (k, v) in self.flatten_entries(node, key)? {
                    let text = scalar_key(k).unwrap_or_default();
                    let kid = self.build(k, key)?;
                    let vid = self.build(v, &join(key, &text))?;
                    entries.push((kid, vid));
                }
                Node::Dict { entries, shared }
            }
            YKind::Alias(_) => return Err(self.err(line, key, "unresolved alias")),
        };
        Ok(self.push(built, line, key))
    }

    fn build_core(&mut self, node: &'a YNode, key: &str, core: Core) -> Result<NodeId> {
        let line = node.line;
        let text = match (&node.kind, core) {
            (YKind::Map(_), Core::Map) | (YKind::Seq(_), Core::Seq) => {
                return self.build_plain(node, key, false)
            }
            (YKind::Scalar { value, .. }, _) => value.clone(),
            _ => return Err(self.err(line, key, "this core tag does not fit the node kind")),
        };
        let resolved = resolve_plain(&text);
        let built = match (core, resolved) {
            (Core::Str, _) => Node::Str(text),
            (Core::Int, Scalar::Int(v)) => Node::Int(v),
            (Core::Float, Scalar::Float(v)) => Node::Float(v),
            (Core::Float, Scalar::Int(v)) => Node::Float(v as f64),
            (Core::Bool, Scalar::Bool(v)) => Node::Bool(v),
            (Core::Null, Scalar::Null) => Node::Null,
            (core, _) => {
                return Err(self.err(line, key, format!("'{text}' is not a valid {core:?}")))
            }
        };
        Ok(self.push(built, line, key))
    }

    fn build_container(&mut self, node: &'a YNode, key: &str, kind: Container) -> Result<NodeId> {
        let line = node.line;
        match (kind, &node.kind) {
            (Container::Dict, YKind::Map(_)) => self.build_plain(node, key, true),
            (Container::List, YKind::Seq(_)) => self.build_plain(node, key, true),
            (Container::Tuple, YKind::Seq(items)) => {
                let mut ids = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    ids.push(self.build(item, &join(key, &i.to_string()))?);
                }
                Ok(self.push(Node::Tuple(ids), line, key))
            }
            (Container::DList, YKind::Map(_)) => {
                let mut ids = Vec::new();
                for (k, v) in self.flatten_entries(node, key)? {
                    let v = self.deref(v, key)?;
                    if is_null(v) {
                        continue;
                    }
                    let text = scalar_key(k).unwrap_or_default();
                    ids.push(self.build(v, &join(key, &text))?);
                }
                Ok(self.push(
                    Node::List {
                        items: ids,
                        shared: false,
                    },
                    line,
                    key,
                ))
            }
            (kind, _) => {
                let want = if matches!(kind, Container::Dict | Container::DList) {
                    "a mapping"
                } else {
                    "a sequence"
                };
                Err(self.err(
                    line,
                    key,
                    format!("!{} needs {want}", format!("{kind:?}").to_lowercase()),
                ))
            }
        }
    }

    fn build_var(&mut self, node: &'a YNode, key: &str) -> Result<NodeId> {
        let line = node.line;
        let (name, default) = match &node.kind {
            YKind::Scalar { value, .. } => (value.trim().to_string(), None),
            YKind::Map(_) => {
                let mut name = None;
                let mut default = None;
                for (k, v) in self.flatten_entries(node, key)? {
                    match scalar_key(k).as_deref() {
                        Some("name") => {
                            let v = self.deref(v, key)?;
                            match &v.kind {
                                YKind::Scalar { value, .. } => name = Some(value.clone()),
                                _ => {
                                    return Err(self.err(v.line, key, "!var name must be a string"))
                                }
                            }
                        }
                        Some("default") => default = Some(self.build(v, &join(key, "default"))?),
                        other => {
                            return Err(self.err(
                                k.line,
                                key,
                                format!(
                                    "!var takes `name` and `default`, not '{}'",
                                    other.unwrap_or("?")
                                ),
                            ))
                        }
                    }
                }
                (name.unwrap_or_default(), default)
            }
            _ => (String::new(), None),
        };
        let valid = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !valid {
            return Err(self.err(
                line,
                key,
                "!var needs a name: `!var x` or `!var {name: x, default: 1}`",
            ));
        }
        Ok(self.push(Node::Var { name, default }, line, key))
    }

    /// Arguments of a call: a sequence is positional, a mapping is kwargs (with `argN` keys
    /// positional, sorted numerically), `{args: [...], kwargs: {...}}` is taken as written, a
    /// scalar is one positional argument and an empty plain scalar is no argument.
    #[allow(clippy::type_complexity)]
    fn build_args(
        &mut self,
        node: &'a YNode,
        key: &str,
    ) -> Result<(Vec<NodeId>, Vec<(String, NodeId)>)> {
        match &node.kind {
            YKind::Scalar { value, plain: true } if value.is_empty() => Ok((vec![], vec![])),
            YKind::Scalar { .. } => {
                let mut bare = node.clone();
                bare.tag = None;
                bare.anchor = 0;
                // A scalar has no children, so a detached copy is safe to build.
                let id = self.build_plain_owned(bare, key)?;
                Ok((vec![id], vec![]))
            }
            YKind::Seq(items) => {
                let mut args = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    args.push(self.build(item, &join(key, &format!("arg{i}")))?);
                }
                Ok((args, vec![]))
            }
            YKind::Map(_) => {
                let entries = self.flatten_entries(node, key)?;
                let keys: Vec<Option<String>> =
                    entries.iter().map(|(k, _)| scalar_key(k)).collect();
                let literal = !entries.is_empty()
                    && keys
                        .iter()
                        .all(|k| matches!(k.as_deref(), Some("args" | "kwargs")));
                let mut positional: Vec<(u64, NodeId)> = Vec::new();
                let mut args = Vec::new();
                let mut kwargs = Vec::new();
                for ((k, v), text) in entries.into_iter().zip(keys) {
                    let Some(text) = text else {
                        return Err(self.err(
                            k.line,
                            key,
                            "keyword argument names must be strings",
                        ));
                    };
                    let path = join(key, &text);
                    if literal {
                        let v = self.deref(v, &path)?;
                        if text == "args" {
                            let YKind::Seq(items) = &v.kind else {
                                return Err(self.err(v.line, &path, "`args` must be a sequence"));
                            };
                            for (i, item) in items.iter().enumerate() {
                                args.push(self.build(item, &join(&path, &i.to_string()))?);
                            }
                        } else {
                            for (kk, kv) in self.flatten_entries(v, &path)? {
                                let name = self.key_text(kk, &path)?;
                                let id = self.build(kv, &join(&path, &name))?;
                                kwargs.push((name, id));
                            }
                        }
                        continue;
                    }
                    let index = text.strip_prefix("arg").and_then(|n| n.parse::<u64>().ok());
                    let id = self.build(v, &path)?;
                    match index {
                        Some(i) => positional.push((i, id)),
                        None => kwargs.push((text, id)),
                    }
                }
                positional.sort_by_key(|(i, _)| *i);
                args.extend(positional.into_iter().map(|(_, id)| id));
                Ok((args, kwargs))
            }
            YKind::Alias(_) => Err(self.err(node.line, key, "unresolved alias")),
        }
    }

    fn build_plain_owned(&mut self, node: YNode, key: &str) -> Result<NodeId> {
        let YKind::Scalar { value, plain } = node.kind else {
            return Err(self.err(node.line, key, "expected a scalar"));
        };
        let built = if plain {
            scalar_node(resolve_plain(&value))
        } else {
            Node::Str(value)
        };
        Ok(self.push(built, node.line, key))
    }
}

fn scalar_node(s: Scalar) -> Node {
    match s {
        Scalar::Null => Node::Null,
        Scalar::Bool(b) => Node::Bool(b),
        Scalar::Int(i) => Node::Int(i),
        Scalar::Float(f) => Node::Float(f),
        Scalar::Str(s) => Node::Str(s),
    }
}

/// The text of a scalar key, `None` for collections.
fn scalar_key(node: &YNode) -> Option<String> {
    match &node.kind {
        YKind::Scalar { value, .. } => Some(value.clone()),
        _ => None,
    }
}

/// Registers every anchor and checks nesting depth without recursion (deep input must not
/// overflow the stack of the recursive builder).
fn prewalk<'a>(
    root: &'a YNode,
    anchors: &mut HashMap<usize, &'a YNode>,
    max_depth: usize,
) -> Option<usize> {
    let mut stack = vec![(root, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > max_depth {
            return Some(node.line);
        }
        if node.anchor != 0 {
            anchors.insert(node.anchor, node);
        }
        match &node.kind {
            YKind::Seq(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            YKind::Map(entries) => {
                for (k, v) in entries {
                    stack.push((k, depth + 1));
                    stack.push((v, depth + 1));
                }
            }
            _ => {}
        }
    }
    None
}

//! The node graph built from tagged YAML: an arena of nodes where YAML aliases refer to the same
//! node, so a materializer can share singletons and tagged containers between references.
//!
//! ```
//! use glmx_config::graph::{load_str, Node};
//! let g = load_str("a: &x !singleton:dict {k: 1}\nb: *x\n.hidden: 2\n", None).unwrap();
//! assert_eq!(g.target_names(), vec!["a", "b"]);
//! assert_eq!(g.target("a"), g.target("b"));
//! assert!(matches!(g.node(g.target("a").unwrap()), Node::Call { .. }));
//! ```

mod build;
mod emit;

use crate::error::Result;
pub use crate::tags::{CallKind, Callable};

/// Index of a node in [`Graph::nodes`].
pub type NodeId = usize;

/// One node of the graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `null`
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A list. `shared` (from `!list`) means every reference gets the same object; a plain YAML
    /// list referenced twice through an alias is built once per reference (a copy).
    List {
        /// Items in order.
        items: Vec<NodeId>,
        /// Built once per materialization.
        shared: bool,
    },
    /// A tuple (`!tuple`), shared.
    Tuple(Vec<NodeId>),
    /// A mapping; keys are scalar nodes. `shared` as for lists (`!dict`).
    Dict {
        /// Entries in first-key order.
        entries: Vec<(NodeId, NodeId)>,
        /// Built once per materialization.
        shared: bool,
    },
    /// A call of a Python callable.
    Call {
        /// Singleton, factory or partial.
        kind: CallKind,
        /// What to call.
        callable: Callable,
        /// Positional arguments.
        args: Vec<NodeId>,
        /// Keyword arguments in order.
        kwargs: Vec<(String, NodeId)>,
        /// The `@name`, unique in the graph.
        name: Option<String>,
    },
    /// A variable bound at materialization (`!var`).
    Var {
        /// Variable name.
        name: String,
        /// Default when not bound.
        default: Option<NodeId>,
    },
    /// Passed unmaterialized (`!meta`).
    Meta(NodeId),
}

/// Where a node was defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// 1-based line in the YAML text.
    pub line: usize,
    /// Dotted key path of the node's first occurrence (`model.encoder.arg0`).
    pub key: String,
}

/// A node graph: nodes, their origins and the top-level targets.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    nodes: Vec<Node>,
    origins: Vec<Origin>,
    targets: Vec<(String, NodeId)>,
    definitions: Vec<(String, NodeId)>,
    file: Option<String>,
}

impl Graph {
    /// All nodes; a [`NodeId`] indexes this slice.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node `id`. Panics on an id that is not from this graph.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// Where node `id` was defined.
    pub fn origin(&self, id: NodeId) -> &Origin {
        &self.origins[id]
    }

    /// Top-level keys not starting with `.`, in order, with their nodes.
    pub fn targets(&self) -> &[(String, NodeId)] {
        &self.targets
    }

    /// Names of [`Graph::targets`].
    pub fn target_names(&self) -> Vec<&str> {
        self.targets.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The node of target `name`.
    pub fn target(&self, name: &str) -> Option<NodeId> {
        self.targets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
    }

    /// `.`-prefixed top-level keys (definitions only).
    pub fn definitions(&self) -> &[(String, NodeId)] {
        &self.definitions
    }

    /// The file the graph was loaded from, for messages.
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// Every node reachable from `root`, children before parents, each once.
    pub fn reachable(&self, root: NodeId) -> Vec<NodeId> {
        let mut seen = vec![false; self.nodes.len()];
        let mut order = Vec::new();
        // Explicit stack: (node, children pushed?) so deep graphs cannot overflow the stack.
        let mut stack = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            if expanded {
                order.push(id);
                continue;
            }
            if seen[id] {
                continue;
            }
            seen[id] = true;
            stack.push((id, true));
            for child in self.children(id).into_iter().rev() {
                if !seen[child] {
                    stack.push((child, false));
                }
            }
        }
        order
    }

    /// Direct children of node `id`.
    pub fn children(&self, id: NodeId) -> Vec<NodeId> {
        match &self.nodes[id] {
            Node::List { items, .. } | Node::Tuple(items) => items.clone(),
            Node::Dict { entries, .. } => entries.iter().flat_map(|(k, v)| [*k, *v]).collect(),
            Node::Call { args, kwargs, .. } => args
                .iter()
                .copied()
                .chain(kwargs.iter().map(|(_, v)| *v))
                .collect(),
            Node::Var { default, .. } => default.iter().copied().collect(),
            Node::Meta(inner) => vec![*inner],
            _ => vec![],
        }
    }

    /// Whether materializing builds node `id` once per materialization (every reference gets
    /// the same object) rather than once per reference.
    pub fn is_shared(&self, id: NodeId) -> bool {
        match &self.nodes[id] {
            Node::List { shared, .. } | Node::Dict { shared, .. } => *shared,
            Node::Tuple(_) => true,
            Node::Call { kind, .. } => !matches!(kind, CallKind::Factory),
            _ => false,
        }
    }

    /// How many nodes materializing every target visits: aliases of plain containers count
    /// once per reference, shared nodes once. Saturates at `usize::MAX`.
    pub fn expanded_size(&self) -> usize {
        let n = self.nodes.len();
        // inner[id]: nodes visited building `id` itself; per_ref[id]: cost of one reference.
        let mut inner = vec![0usize; n];
        let mut per_ref = vec![0usize; n];
        let mut done = vec![false; n];
        let mut total = 0usize;
        let roots = self.targets.iter().chain(self.definitions.iter());
        for (_, root) in roots {
            for id in self.reachable(*root) {
                if done[id] {
                    continue;
                }
                done[id] = true;
                let size = self
                    .children(id)
                    .iter()
                    .fold(1usize, |acc, c| acc.saturating_add(per_ref[*c]));
                inner[id] = size;
                per_ref[id] = if self.is_shared(id) {
                    total = total.saturating_add(size);
                    1
                } else {
                    size
                };
            }
            total = total.saturating_add(per_ref[*root]);
        }
        total
    }

    /// The graph as YAML: shared nodes appear once with an anchor and are aliased afterwards.
    pub fn to_yaml(&self) -> String {
        emit::to_yaml(self)
    }
}

/// Parses tagged YAML text into a graph. `file` names the text in error messages.
pub fn load_str(text: &str, file: Option<&str>) -> Result<Graph> {
    build::load_str(text, file)
}

#[cfg(test)]
mod tests;

//! Graph -> YAML text (`Project.graph()`): tags spelled out, nodes reached more than once get an
//! anchor at their first appearance and an alias afterwards.

use std::collections::HashSet;

use super::{Graph, Node, NodeId};
use crate::template::globals::yaml_str;

pub(super) fn to_yaml(g: &Graph) -> String {
    let mut refs = vec![0usize; g.nodes.len()];
    let mut seen = HashSet::new();
    let mut stack: Vec<NodeId> = g
        .definitions
        .iter()
        .chain(&g.targets)
        .map(|(_, id)| *id)
        .collect();
    while let Some(id) = stack.pop() {
        refs[id] += 1;
        if seen.insert(id) {
            stack.extend(g.children(id));
        }
    }
    let mut e = Emitter {
        g,
        refs,
        emitted: HashSet::new(),
        out: String::new(),
    };
    for (name, id) in g.definitions.iter().chain(&g.targets) {
        e.out.push_str(&yaml_str(name));
        e.out.push(':');
        e.value(*id, 0);
    }
    e.out
}

struct Emitter<'g> {
    g: &'g Graph,
    refs: Vec<usize>,
    emitted: HashSet<NodeId>,
    out: String,
}

/// A scalar node as YAML text, `None` for collections and other structured nodes.
pub(crate) fn scalar_text(node: &Node) -> Option<String> {
    Some(match node {
        Node::Null => "null".into(),
        Node::Bool(b) => b.to_string(),
        Node::Int(i) => i.to_string(),
        Node::Float(f) if f.is_nan() => ".nan".into(),
        Node::Float(f) if f.is_infinite() => {
            if *f > 0.0 {
                ".inf".into()
            } else {
                "-.inf".into()
            }
        }
        Node::Float(f) => format!("{f:?}"),
        Node::Str(s) => yaml_str(s),
        _ => return None,
    })
}

impl Emitter<'_> {
    fn anchor(&self, id: NodeId) -> String {
        match &self.g.nodes[id] {
            Node::Call { name: Some(n), .. } => n.clone(),
            _ => format!("n{id}"),
        }
    }

    /// Writes the value of `id` after a `key:` or `-` already written, ending with a newline.
    fn value(&mut self, id: NodeId, indent: usize) {
        let node = &self.g.nodes[id];
        if let Some(text) = scalar_text(node) {
            self.out.push_str(&format!(" {text}\n"));
            return;
        }
        if self.emitted.contains(&id) {
            self.out.push_str(&format!(" *{}\n", self.anchor(id)));
            return;
        }
        self.emitted.insert(id);
        let mut props = String::new();
        if self.refs[id] > 1 {
            props.push_str(&format!(" &{}", self.anchor(id)));
        }
        let pad = " ".repeat(indent + 2);
        match node {
            Node::List { items, shared } => {
                if *shared {
                    props.push_str(" !list");
                }
                self.seq(&props, items, indent);
            }
            Node::Tuple(items) => self.seq(&format!("{props} !tuple"), items, indent),
            Node::Dict { entries, shared } => {
                if *shared {
                    props.push_str(" !dict");
                }
                if entries.is_empty() {
                    self.out.push_str(&format!("{props} {{}}\n"));
                    return;
                }
                self.out.push_str(&format!("{props}\n"));
                for (k, v) in entries {
                    let key = scalar_text(&self.g.nodes[*k]).unwrap_or_else(|| "?".into());
                    self.out.push_str(&format!("{pad}{key}:"));
                    self.value(*v, indent + 2);
                }
            }
            Node::Call {
                kind,
                callable,
                args,
                kwargs,
                name,
            } => {
                let at = name.as_ref().map(|n| format!("@{n}")).unwrap_or_default();
                props.push_str(&format!(" !{}:{callable}{at}", kind.as_str()));
                if args.is_empty() && kwargs.is_empty() {
                    self.out.push_str(&format!("{props} []\n"));
                    return;
                }
                self.out.push_str(&format!("{props}\n"));
                for (i, a) in args.iter().enumerate() {
                    self.out.push_str(&format!("{pad}arg{i}:"));
                    self.value(*a, indent + 2);
                }
                for (k, v) in kwargs {
                    self.out.push_str(&format!("{pad}{}:", yaml_str(k)));
                    self.value(*v, indent + 2);
                }
            }
            Node::Var { name, default } => match default {
                None => self.out.push_str(&format!("{props} !var {name}\n")),
                Some(d) => {
                    self.out
                        .push_str(&format!("{props} !var\n{pad}name: {name}\n{pad}default:"));
                    self.value(*d, indent + 2);
                }
            },
            Node::Meta(inner) => {
                self.out.push_str(&format!("{props} !meta"));
                self.value(*inner, indent);
            }
            _ => self.out.push_str(" null\n"),
        }
    }

    fn seq(&mut self, props: &str, items: &[NodeId], indent: usize) {
        if items.is_empty() {
            self.out.push_str(&format!("{props} []\n"));
            return;
        }
        self.out.push_str(&format!("{props}\n"));
        let pad = " ".repeat(indent + 2);
        for item in items {
            self.out.push_str(&format!("{pad}-"));
            self.value(*item, indent + 2);
        }
    }
}

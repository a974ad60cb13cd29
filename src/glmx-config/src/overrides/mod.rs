//! Command-line overrides: the grammar users know from Hydra, and sweep expansion.
//!
//! `key=value`, `+key=value`, `++key=value`, `~key[=value]`, `group@pkg=option`, lists, dicts,
//! quoting, escapes, type inference, and sweeps (`a,b`, `choice`, `range`, `glob`) that are only
//! legal in multirun mode.

pub(crate) mod parse;
mod sweep;

pub use parse::parse_override;
pub use sweep::{expand_sweeps, expand_sweeps_limited, sweep_legal};

use crate::tree::{py_float_repr, Node};

/// What the leading `+`, `++` or `~` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// `key=value`: the key must exist.
    Set,
    /// `+key=value`: the key must not exist.
    Add,
    /// `++key=value`: add or override.
    ForceAdd,
    /// `~key` or `~key=value`: delete.
    Delete,
}

impl Prefix {
    /// The text that spells this prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Prefix::Set => "",
            Prefix::Add => "+",
            Prefix::ForceAdd => "++",
            Prefix::Delete => "~",
        }
    }
}

/// A sweep over several values (multirun only).
#[derive(Debug, Clone, PartialEq)]
pub enum Sweep {
    /// `a,b,c` (`simple`) or `choice(a,b,c)`.
    Choice {
        /// The values, in order.
        values: Vec<Node>,
        /// True for the bare comma form, which gets the "ambiguous value" explanation.
        simple: bool,
    },
    /// `range(start, stop[, step])`.
    Range {
        /// First value.
        start: Node,
        /// Exclusive end.
        stop: Node,
        /// Step (default 1).
        step: Node,
    },
    /// `glob(pattern)` / `glob([p1,p2], exclude=p3)` over a group's options.
    Glob {
        /// Patterns to include.
        include: Vec<String>,
        /// Patterns to exclude.
        exclude: Vec<String>,
    },
    /// `interval(a, b)`: only meaningful to optimizing sweepers.
    Interval,
}

/// The value side of an override.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// One value.
    Node(Node),
    /// `extend_list(a, b)`: append to an existing list.
    Extend(Vec<Node>),
    /// A sweep.
    Sweep(Sweep),
}

/// One parsed override.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// `+`, `++`, `~` or none.
    pub prefix: Prefix,
    /// The key or config group (`trainer.max_epochs`, `model`, `hydra/launcher`).
    pub key: String,
    /// `@package` after the key, if given.
    pub package: Option<String>,
    /// The value; `None` only for `~key`.
    pub value: Option<Value>,
    /// The override exactly as the user typed it.
    pub input: String,
}

impl Override {
    /// True when the value is a sweep.
    pub fn is_sweep(&self) -> bool {
        matches!(self.value, Some(Value::Sweep(_)))
    }

    /// `key@pkg` with the prefix, as Hydra's `get_key_element`.
    pub fn key_element(&self) -> String {
        let mut s = format!("{}{}", self.prefix.as_str(), self.key);
        if let Some(p) = &self.package {
            s.push('@');
            s.push_str(p);
        }
        s
    }

    /// `key@pkg` without the prefix.
    pub fn key_with_package(&self) -> String {
        match &self.package {
            Some(p) => format!("{}@{p}", self.key),
            None => self.key.clone(),
        }
    }

    /// The value as override text (`1`, `[a,b]`, `'x y'`), used to build job overrides and
    /// `override_dirname`.
    pub fn value_text(&self) -> String {
        match &self.value {
            None => String::new(),
            Some(Value::Node(n)) => node_text(n),
            Some(Value::Extend(items)) => {
                let parts: Vec<String> = items.iter().map(node_text).collect();
                format!("extend_list({})", parts.join(","))
            }
            Some(Value::Sweep(_)) => self
                .input
                .split_once('=')
                .map(|(_, v)| v.to_string())
                .unwrap_or_default(),
        }
    }

    /// The override re-spelled with one concrete value (a job of a sweep).
    pub fn with_value(&self, value: &Node) -> String {
        format!("{}={}", self.key_element(), node_text(value))
    }
}

/// Override text for a value; strings are escaped so the text parses back to the same value.
pub fn node_text(n: &Node) -> String {
    match n {
        Node::Null => "null".into(),
        Node::Bool(b) => if *b { "true" } else { "false" }.into(),
        Node::Int(i) => i.to_string(),
        Node::Float(f) => py_float_repr(*f),
        Node::Str(s) => {
            let mut out = String::with_capacity(s.len());
            let mut depth = 0usize;
            let chars: Vec<char> = s.chars().collect();
            for (i, &c) in chars.iter().enumerate() {
                if c == '$' && chars.get(i + 1) == Some(&'{') {
                    depth += 1;
                } else if c == '}' && depth > 0 {
                    depth -= 1;
                    out.push(c);
                    continue;
                }
                if depth == 0 && "\\()[]{}:=, \t".contains(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }
        Node::List(items) => {
            let parts: Vec<String> = items.iter().map(node_text).collect();
            format!("[{}]", parts.join(","))
        }
        Node::Map(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}:{}", node_text(v)))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
    }
}

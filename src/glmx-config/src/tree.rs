//! The config value tree used by composition, overrides and interpolation.
//!
//! Mappings keep insertion order (as OmegaConf does); keys are strings. Merging follows
//! OmegaConf: mappings merge recursively, everything else (lists included) is replaced, and a
//! `???` (missing) source value never clobbers an existing destination value.

use indexmap::IndexMap;

use crate::error::{ConfigError, Result};

/// An ordered mapping of string keys to nodes.
pub type Map = IndexMap<String, Node>;

/// One config value.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `null` / `~`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Float, including `inf` and `nan`.
    Float(f64),
    /// String; may contain `${...}` interpolations or be the missing marker `???`.
    Str(String),
    /// Sequence.
    List(Vec<Node>),
    /// Ordered mapping.
    Map(Map),
}

/// The literal that marks a mandatory value.
pub const MISSING: &str = "???";

impl Node {
    /// An empty mapping.
    pub fn empty_map() -> Self {
        Node::Map(Map::new())
    }

    /// True for the mandatory-value marker `???`.
    pub fn is_missing(&self) -> bool {
        matches!(self, Node::Str(s) if s == MISSING)
    }

    /// The mapping inside, if this is one.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Mutable mapping inside, if this is one.
    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match self {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Converts a parsed YAML document. Tags are dropped (the value under the tag is kept):
    /// tagged nodes belong to the template/node-graph path, not to Hydra composition.
    pub fn from_yaml(value: serde_yaml::Value, file: &str) -> Result<Node> {
        use serde_yaml::Value as V;
        Ok(match value {
            V::Null => Node::Null,
            V::Bool(b) => Node::Bool(b),
            V::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Node::Int(i)
                } else {
                    Node::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            V::String(s) => Node::Str(s),
            V::Sequence(seq) => Node::List(
                seq.into_iter()
                    .map(|v| Node::from_yaml(v, file))
                    .collect::<Result<_>>()?,
            ),
            V::Mapping(m) => {
                let mut out = Map::with_capacity(m.len());
                for (k, v) in m {
                    let key = match k {
                        V::String(s) => s,
                        V::Bool(b) => if b { "True" } else { "False" }.to_string(),
                        V::Number(n) => n.to_string(),
                        V::Null => "null".to_string(),
                        other => {
                            return Err(ConfigError::Composition(format!(
                                "{file}: unsupported mapping key {other:?}; keys must be scalars"
                            )))
                        }
                    };
                    out.insert(key, Node::from_yaml(v, file)?);
                }
                Node::Map(out)
            }
            V::Tagged(t) => Node::from_yaml(t.value, file)?,
        })
    }

    /// Python's `str()` of this value, used when an interpolation sits inside text.
    pub fn to_py_str(&self) -> String {
        match self {
            Node::Null => "None".into(),
            Node::Bool(true) => "True".into(),
            Node::Bool(false) => "False".into(),
            Node::Int(i) => i.to_string(),
            Node::Float(f) => py_float_repr(*f),
            Node::Str(s) => s.clone(),
            Node::List(items) => {
                let inner: Vec<String> = items.iter().map(Node::to_py_repr).collect();
                format!("[{}]", inner.join(", "))
            }
            Node::Map(m) => {
                let inner: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("'{k}': {}", v.to_py_repr()))
                    .collect();
                format!("{{{}}}", inner.join(", "))
            }
        }
    }

    fn to_py_repr(&self) -> String {
        match self {
            Node::Str(s) => format!("'{s}'"),
            other => other.to_py_str(),
        }
    }
}

/// Formats a float the way Python's `repr` does (`1.0`, `1e-05`, `1e+16`, `inf`, `nan`).
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust's Debug uses the same shortest round-trip digits and the same switch to exponent
    // form (below 1e-4, from 1e16) as Python; only the exponent spelling differs.
    let s = format!("{f:?}");
    match s.split_once('e') {
        None => s,
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            let mantissa = mantissa.strip_suffix(".0").unwrap_or(mantissa);
            format!("{mantissa}e{sign}{digits:0>2}")
        }
    }
}

/// Merges `src` into `dest` with OmegaConf semantics.
pub fn merge(dest: &mut Node, src: Node) {
    match (dest, src) {
        (Node::Map(d), Node::Map(s)) => {
            for (k, v) in s {
                match d.get_mut(&k) {
                    Some(existing) => {
                        if v.is_missing() {
                            continue;
                        }
                        if matches!((&*existing, &v), (Node::Map(_), Node::Map(_))) {
                            merge(existing, v);
                        } else {
                            *existing = v;
                        }
                    }
                    None => {
                        d.insert(k, v);
                    }
                }
            }
        }
        (d, s) => {
            if !s.is_missing() {
                *d = s;
            }
        }
    }
}

/// Wraps `node` under a dotted package path (`a.b` -> `{a: {b: node}}`); empty stays as is.
pub fn wrap_package(node: Node, package: &str) -> Node {
    if package.is_empty() {
        return node;
    }
    let mut out = node;
    for part in package.rsplit('.') {
        let mut m = Map::new();
        m.insert(part.to_string(), out);
        out = Node::Map(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        assert_eq!(py_float_repr(1.0), "1.0");
        assert_eq!(py_float_repr(0.001), "0.001");
        assert_eq!(py_float_repr(1e-5), "1e-05");
        assert_eq!(py_float_repr(1e16), "1e+16");
        assert_eq!(py_float_repr(2.5e-7), "2.5e-07");
        assert_eq!(py_float_repr(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn merge_keeps_dest_on_missing_and_replaces_lists() {
        let mut d: Node = Node::from_yaml(
            serde_yaml::from_str("{a: 1, l: [1, 2], m: {x: 1}}").unwrap(),
            "t",
        )
        .unwrap();
        let s = Node::from_yaml(
            serde_yaml::from_str("{a: '???', l: [3], m: {y: 2}}").unwrap(),
            "t",
        )
        .unwrap();
        merge(&mut d, s);
        let want = Node::from_yaml(
            serde_yaml::from_str("{a: 1, l: [3], m: {x: 1, y: 2}}").unwrap(),
            "t",
        )
        .unwrap();
        assert_eq!(d, want);
    }
}

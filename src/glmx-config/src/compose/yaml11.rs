//! YAML as Hydra reads it: PyYAML's YAML 1.1 scalars (`yes`/`on` are booleans, `010` is
//! octal, `1_000` an int) with OmegaConf's float rule (`1e-3` is a float) and without
//! timestamps; anchors, aliases and `<<` merge keys; duplicate keys are errors.

use std::collections::HashMap;

use crate::error::{ConfigError, Location, Result};
use crate::limits;
use crate::tree::{Map, Node};
use crate::yaml::{parse, YKind, YNode};

/// Parses `text` (from `file`) into a tree; an empty document is an empty mapping.
pub fn load(text: &str, file: &str) -> Result<Node> {
    let Some(root) = parse(text, Some(file))? else {
        return Ok(Node::Map(Map::new()));
    };
    let mut anchors = Anchors {
        nodes: HashMap::new(),
        expanded: 0,
        limit: limits::max_alias_nodes(),
    };
    convert(&root, file, &mut anchors)
}

/// Anchored values (with their node counts) and how many nodes alias expansion has created.
struct Anchors {
    nodes: HashMap<usize, (Node, usize)>,
    expanded: usize,
    limit: usize,
}

fn convert(n: &YNode, file: &str, anchors: &mut Anchors) -> Result<Node> {
    let out = match &n.kind {
        YKind::Scalar { value, plain } => {
            let explicit_str = matches!(n.tag.as_deref(), Some("tag:yaml.org,2002:str" | "!!str"));
            if *plain && !explicit_str {
                resolve11(value)
            } else {
                Node::Str(value.clone())
            }
        }
        YKind::Seq(items) => Node::List(
            items
                .iter()
                .map(|i| convert(i, file, anchors))
                .collect::<Result<_>>()?,
        ),
        YKind::Map(pairs) => {
            let mut m = Map::with_capacity(pairs.len());
            let mut merged: Vec<Map> = Vec::new();
            for (k, v) in pairs {
                let is_merge =
                    matches!(&k.kind, YKind::Scalar { value, plain: true } if value == "<<");
                let value = convert(v, file, anchors)?;
                if is_merge {
                    match value {
                        Node::Map(x) => merged.push(x),
                        Node::List(items) => {
                            for i in items {
                                if let Node::Map(x) = i {
                                    merged.push(x);
                                }
                            }
                        }
                        _ => {
                            return Err(yaml_err(
                                file,
                                k.line,
                                "'<<' merge key needs a mapping or a list of mappings",
                            ))
                        }
                    }
                    continue;
                }
                let key = match convert(k, file, anchors)? {
                    Node::Str(s) => s,
                    Node::Null => "null".into(),
                    other => other.to_py_str(),
                };
                if m.contains_key(&key) {
                    return Err(yaml_err(
                        file,
                        k.line,
                        &format!("found duplicate key {key}"),
                    ));
                }
                m.insert(key, value);
            }
            // PyYAML (so OmegaConf) puts merged keys first, in order of first appearance, the
            // first merged mapping winning over later ones; then the mapping's own keys, which
            // override values in place.
            let mut out = Map::with_capacity(m.len());
            for x in merged {
                for (k, v) in x {
                    out.entry(k).or_insert(v);
                }
            }
            for (k, v) in m {
                out.insert(k, v);
            }
            Node::Map(out)
        }
        YKind::Alias(id) => match anchors.nodes.get(id) {
            Some((v, size)) => {
                anchors.expanded = anchors.expanded.saturating_add(*size);
                if anchors.expanded > anchors.limit {
                    return Err(yaml_err(
                        file,
                        n.line,
                        &limits::exceeded(
                            "the number of nodes created by expanding YAML aliases",
                            anchors.limit,
                            limits::ALIAS_NODES_VAR,
                        ),
                    ));
                }
                v.clone()
            }
            None => return Err(yaml_err(file, n.line, "alias to an unknown anchor")),
        },
    };
    let out = match (&n.tag, &n.kind) {
        (Some(tag), YKind::Scalar { .. } | YKind::Seq(_) | YKind::Map(_))
            if tag.starts_with('!') =>
        {
            let identity = if n.anchor != 0 {
                format!("{file}#anchor{}", n.anchor)
            } else {
                format!("{file}:{}", n.line)
            };
            super::tagged::apply(tag, out, identity, file, n.line)?
        }
        _ => out,
    };
    if n.anchor != 0 {
        let size = limits::count_nodes(&out);
        anchors.nodes.insert(n.anchor, (out.clone(), size));
    }
    Ok(out)
}

fn yaml_err(file: &str, line: usize, msg: &str) -> ConfigError {
    ConfigError::Yaml {
        location: Location {
            file: Some(file.to_string()),
            line: Some(line),
        },
        key: None,
        message: msg.to_string(),
    }
}

fn digits_us(s: &str, radix: u32) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c == '_' || c.is_digit(radix))
        && s.chars().any(|c| c.is_digit(radix))
}

/// Resolves a plain scalar the way OmegaConf's YAML loader does.
pub fn resolve11(s: &str) -> Node {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Node::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Node::Bool(true)
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Node::Bool(false)
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Node::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Node::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Node::Float(f64::NAN),
        _ => {}
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let clean: String = body.chars().filter(|c| *c != '_').collect();
    let sign = |i: i64| if neg { -i } else { i };
    // Floats first (PyYAML's 1.1 rule needs a dot; OmegaConf adds `1e5` forms).
    if is_float11(body) {
        if let Ok(f) = clean.parse::<f64>() {
            return Node::Float(if neg { -f } else { f });
        }
    }
    if let Some(b) = body.strip_prefix("0b") {
        if digits_us(b, 2) {
            if let Ok(i) = i64::from_str_radix(&b.replace('_', ""), 2) {
                return Node::Int(sign(i));
            }
        }
    }
    if let Some(h) = body.strip_prefix("0x") {
        if digits_us(h, 16) {
            if let Ok(i) = i64::from_str_radix(&h.replace('_', ""), 16) {
                return Node::Int(sign(i));
            }
        }
    }
    if body.len() > 1 && body.starts_with('0') && digits_us(&body[1..], 8) {
        if let Ok(i) = i64::from_str_radix(&clean[1..], 8) {
            return Node::Int(sign(i));
        }
    }
    if body == "0" || (body.starts_with(|c: char| ('1'..='9').contains(&c)) && digits_us(body, 10))
    {
        if let Ok(i) = clean.parse::<i64>() {
            return Node::Int(sign(i));
        }
    }
    Node::Str(s.to_string())
}

fn is_float11(body: &str) -> bool {
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if let Some(e) = exp {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !e.chars().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    match mant.split_once('.') {
        // `1.5`, `1.`, `.5` (a leading-dot float only without sign in PyYAML; close enough)
        Some((a, b)) => {
            (a.is_empty() && digits_us(b, 10) && b.starts_with(|c: char| c.is_ascii_digit()))
                || (!a.is_empty()
                    && a.starts_with(|c: char| c.is_ascii_digit())
                    && digits_us(a, 10)
                    && (b.is_empty() || b.chars().all(|c| c == '_' || c.is_ascii_digit())))
        }
        None => {
            exp.is_some() && mant.starts_with(|c: char| c.is_ascii_digit()) && digits_us(mant, 10)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml11_scalars_like_omegaconf() {
        assert_eq!(resolve11("1_000"), Node::Int(1000));
        assert_eq!(resolve11("010"), Node::Int(8));
        assert_eq!(resolve11("0x10"), Node::Int(16));
        assert_eq!(resolve11("yes"), Node::Bool(true));
        assert_eq!(resolve11("1e-3"), Node::Float(1e-3));
        assert_eq!(resolve11("0."), Node::Float(0.0));
        assert_eq!(resolve11("1.2.3"), Node::Str("1.2.3".into()));
        assert_eq!(resolve11("2020-01-01"), Node::Str("2020-01-01".into()));
        assert_eq!(resolve11("-.inf"), Node::Float(f64::NEG_INFINITY));
    }

    #[test]
    fn anchors_and_merge_keys() {
        let n = load("a: &x {k: 1, j: 2}\nb:\n  <<: *x\n  j: 3\n", "t").unwrap();
        let want = load("a: {k: 1, j: 2}\nb: {j: 3, k: 1}\n", "t").unwrap();
        assert_eq!(n, want);
        // key order as PyYAML (so Hydra) gives it: merged keys first, first source wins
        let keys = |n: &Node, at: &str| match n {
            Node::Map(m) => match m.get(at) {
                Some(Node::Map(x)) => x.keys().cloned().collect::<Vec<_>>().join(","),
                _ => String::new(),
            },
            _ => String::new(),
        };
        assert_eq!(keys(&n, "b"), "k,j");
        let text = "a: &a {p: 1, q: 1}\nc: &c {q: 2, r: 2}\nm: {z: 0, <<: [*a, *c]}\n";
        let n = load(text, "t").unwrap();
        assert_eq!(keys(&n, "m"), "p,q,r,z");
        let Node::Map(root) = &n else { panic!() };
        let Some(Node::Map(m)) = root.get("m") else {
            panic!()
        };
        assert_eq!(m.get("q"), Some(&Node::Int(1)));
    }
}

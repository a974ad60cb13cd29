//! Template-style YAML tags inside Hydra-composed files, so one config may mix both styles.
//!
//! Tags become `_target_` nodes of the same meaning for `glmx.instantiate`:
//! `!singleton:mod:Fn` / `!factory:mod:Fn` / `!partial:mod:Fn` (with `argN` keys, a sequence or
//! a scalar as positional arguments), `!tuple`, `!dlist`, `!dict`, `!list`, `!meta`. A
//! singleton carries `_glmx_singleton_` (its `@name`, else its anchor or file position) so all
//! references to it build one object per `instantiate` call.

use crate::error::{ConfigError, Location, Result};
use crate::tags::{parse_tag, CallKind, Callable, Container, TagKind};
use crate::tree::{Map, Node};

/// Key that marks a singleton call node (read by `glmx.hydra.instantiate`).
pub const SINGLETON_KEY: &str = "_glmx_singleton_";

fn err(file: &str, line: usize, tag: &str, message: String) -> ConfigError {
    ConfigError::Yaml {
        location: Location {
            file: Some(file.to_string()),
            line: Some(line),
        },
        key: None,
        message: format!("tag {tag}: {message}"),
    }
}

fn positional(map: Map) -> (Vec<Node>, Map) {
    let mut numbered: Vec<(u64, Node)> = Vec::new();
    let mut rest = Map::new();
    for (k, v) in map {
        match k.strip_prefix("arg").and_then(|n| n.parse::<u64>().ok()) {
            Some(i) => numbered.push((i, v)),
            None => {
                rest.insert(k, v);
            }
        }
    }
    numbered.sort_by_key(|(i, _)| *i);
    (numbered.into_iter().map(|(_, v)| v).collect(), rest)
}

/// Rewrites `value` (already converted) according to `tag`; `identity` names the node for
/// singleton sharing. Core tags (`!!str`, ...) and untagged nodes pass through.
pub fn apply(tag: &str, value: Node, identity: String, file: &str, line: usize) -> Result<Node> {
    let kind = parse_tag(tag).map_err(|m| err(file, line, tag, m))?;
    match kind {
        TagKind::Core(_) | TagKind::Meta => Ok(value),
        TagKind::Var => Err(err(
            file,
            line,
            tag,
            "!var is for template projects; in a Hydra tree use an interpolation (${...}) or \
             pass the value at instantiate() time"
                .into(),
        )),
        TagKind::Container(container, _) => Ok(match (container, value) {
            (Container::Tuple, Node::List(items)) => {
                let mut m = Map::new();
                m.insert("_target_".into(), Node::Str("builtins.tuple".into()));
                m.insert("_args_".into(), Node::List(vec![Node::List(items)]));
                Node::Map(m)
            }
            (Container::DList, Node::Map(map)) => Node::List(
                map.into_iter()
                    .map(|(_, v)| v)
                    .filter(|v| *v != Node::Null)
                    .collect(),
            ),
            (Container::DList, Node::Null) => Node::List(Vec::new()),
            (Container::DList, _) => {
                return Err(err(file, line, tag, "!dlist needs a mapping".into()))
            }
            (_, other) => other,
        }),
        TagKind::Call {
            kind,
            callable,
            name,
        } => {
            let target = match callable {
                Callable::Builtin(n) => format!("builtins.{n}"),
                Callable::Module { module, attr } => format!("{module}:{attr}"),
                Callable::File { path, .. } => {
                    return Err(err(
                        file,
                        line,
                        tag,
                        format!(
                            "file callables ('{path}') are for template projects; in a Hydra \
                             tree name a module (`pkg.mod:Attr`)"
                        ),
                    ))
                }
            };
            let (args, kwargs) = match value {
                Node::Map(map) => positional(map),
                Node::List(items) => (items, Map::new()),
                Node::Null => (Vec::new(), Map::new()),
                scalar => (vec![scalar], Map::new()),
            };
            let mut node = Map::new();
            node.insert("_target_".into(), Node::Str(target));
            if !args.is_empty() {
                node.insert("_args_".into(), Node::List(args));
            }
            if kind == CallKind::Partial {
                node.insert("_partial_".into(), Node::Bool(true));
            }
            if kind == CallKind::Singleton {
                node.insert(SINGLETON_KEY.into(), Node::Str(name.unwrap_or(identity)));
            }
            for (k, v) in kwargs {
                node.insert(k, v);
            }
            Ok(Node::Map(node))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::yaml11::load;

    #[test]
    fn singleton_with_positional_and_keyword_args() {
        let tree = load(
            "opt: &o !singleton:torch.optim:AdamW\n  arg1: 2\n  arg0: 1\n  lr: 0.1\nsame: *o\n",
            "x.yaml",
        )
        .unwrap();
        let Node::Map(m) = tree else { panic!() };
        let Node::Map(opt) = &m["opt"] else { panic!() };
        assert_eq!(opt["_target_"], Node::Str("torch.optim:AdamW".into()));
        assert_eq!(opt["_args_"], Node::List(vec![Node::Int(1), Node::Int(2)]));
        assert_eq!(opt["lr"], Node::Float(0.1));
        assert_eq!(
            m["same"], m["opt"],
            "an alias shares the singleton's identity"
        );
    }

    #[test]
    fn partial_dlist_and_bad_tags() {
        let tree = load(
            "f: !partial:pow [2]\nl: !dlist {a: 1, b: null, c: 3}\n",
            "x.yaml",
        )
        .unwrap();
        let Node::Map(m) = tree else { panic!() };
        let Node::Map(f) = &m["f"] else { panic!() };
        assert_eq!(f["_partial_"], Node::Bool(true));
        assert_eq!(f["_target_"], Node::Str("builtins.pow".into()));
        assert_eq!(m["l"], Node::List(vec![Node::Int(1), Node::Int(3)]));
        let e = load("v: !var x\n", "y.yaml").unwrap_err().to_string();
        assert!(
            e.contains("y.yaml:1") && e.contains("!var is for template projects"),
            "{e}"
        );
    }
}

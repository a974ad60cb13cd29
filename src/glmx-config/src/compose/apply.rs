//! Applying config overrides (`k=v`, `+k=v`, `++k=v`, `~k`) to a composed tree, with the
//! errors Hydra users know.

use crate::error::{ConfigError, Result};
use crate::overrides::{node_text, Override, Prefix, Value};
use crate::tree::{merge, Map, Node};

fn get<'a>(root: &'a Node, key: &str) -> Option<&'a Node> {
    let mut cur = root;
    for part in key.split('.') {
        cur = match cur {
            Node::Map(m) => m.get(part)?,
            Node::List(l) => l.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Walks to the parent of `key`, creating mappings when `create` is set.
fn parent_mut<'a>(root: &'a mut Node, key: &str, create: bool) -> Option<(&'a mut Node, String)> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop()?.to_string();
    let mut cur = root;
    for part in parts {
        cur = match cur {
            Node::Map(m) => {
                if create && !matches!(m.get(part), Some(Node::Map(_) | Node::List(_))) {
                    m.insert(part.to_string(), Node::Map(Map::new()));
                }
                m.get_mut(part)?
            }
            Node::List(l) => l.get_mut(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some((cur, last))
}

fn set(root: &mut Node, key: &str, value: Node, create: bool) -> bool {
    let Some((parent, last)) = parent_mut(root, key, create) else {
        return false;
    };
    match parent {
        Node::Map(m) => match m.get_mut(&last) {
            Some(existing) => {
                if matches!((&*existing, &value), (Node::Map(_), Node::Map(_))) {
                    merge(existing, value);
                } else {
                    *existing = value;
                }
                true
            }
            None if create => {
                m.insert(last, value);
                true
            }
            None => false,
        },
        Node::List(l) => match last.parse::<usize>().ok().and_then(|i| l.get_mut(i)) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Applies one config override to `cfg`.
pub fn apply(cfg: &mut Node, o: &Override) -> Result<()> {
    let key = o.key.as_str();
    let err = |m: String| Err(ConfigError::Override(m));
    let value = match &o.value {
        Some(Value::Node(n)) => Some(n.clone()),
        Some(Value::Extend(items)) => {
            return match parent_mut(cfg, key, false)
                .and_then(|(p, last)| p.as_map_mut().and_then(|m| m.get_mut(&last)))
            {
                Some(Node::List(l)) => {
                    l.extend(items.iter().cloned());
                    Ok(())
                }
                _ => err(format!(
                    "Could not append to config. '{key}' is not a list: '{}'",
                    o.input
                )),
            };
        }
        Some(Value::Sweep(_)) => {
            return err(format!(
                "Sweep parameters '{}' requires --multirun",
                o.input
            ))
        }
        None => None,
    };
    match o.prefix {
        Prefix::Delete => {
            let current = match get(cfg, key) {
                None | Some(Node::Null) => {
                    return err(format!(
                        "Could not delete from config. '{key}' does not exist."
                    ));
                }
                Some(c) => c.clone(),
            };
            if let Some(v) = &value {
                if *v != current {
                    return err(format!(
                        "Could not delete from config. The value of '{key}' is {} and not {}.",
                        node_text(&current),
                        node_text(v)
                    ));
                }
            }
            if let Some((parent, last)) = parent_mut(cfg, key, false) {
                match parent {
                    Node::Map(m) => {
                        m.shift_remove(&last);
                    }
                    Node::List(l) => {
                        if let Ok(i) = last.parse::<usize>() {
                            if i < l.len() {
                                l.remove(i);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        Prefix::Add => {
            let value = value.unwrap_or(Node::Null);
            let exists = !matches!(get(cfg, key), None | Some(Node::Null));
            if exists && !matches!(value, Node::Map(_) | Node::List(_)) {
                let line = &o.input;
                return err(format!(
                    "Could not append to config. An item is already at '{key}'.\nEither remove + prefix: '{}'\nOr add a second + to add or override '{key}': '+{line}'",
                    &line[1..]
                ));
            }
            if set(cfg, key, value, true) {
                Ok(())
            } else {
                err(format!(
                    "Could not append to config: the parent of '{key}' is not a mapping ('{}')",
                    o.input
                ))
            }
        }
        Prefix::ForceAdd => {
            if set(cfg, key, value.unwrap_or(Node::Null), true) {
                Ok(())
            } else {
                err(format!(
                    "Could not add '{key}': its parent is not a mapping ('{}')",
                    o.input
                ))
            }
        }
        Prefix::Set => {
            let value = value.unwrap_or(Node::Null);
            // Struct mode: merging a mapping may not introduce new keys.
            if let (Some(existing @ Node::Map(_)), Node::Map(_)) = (get(cfg, key), &value) {
                if !keys_subset(existing, &value) {
                    return err(format!(
                        "Could not override '{key}'.\nTo append to your config use +{}",
                        o.input
                    ));
                }
            }
            if set(cfg, key, value, false) {
                Ok(())
            } else {
                err(format!(
                    "Could not override '{key}'.\nTo append to your config use +{}",
                    o.input
                ))
            }
        }
    }
}

fn keys_subset(existing: &Node, value: &Node) -> bool {
    match (existing, value) {
        (Node::Map(e), Node::Map(v)) => v.iter().all(|(k, vv)| match e.get(k) {
            Some(ev @ Node::Map(_)) => keys_subset(ev, vv),
            Some(_) => true,
            None => false,
        }),
        _ => true,
    }
}

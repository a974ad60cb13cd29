//! The YAML tags of the node graph: `!singleton:mod:Attr@name`, `!factory`, `!partial`, `!var`,
//! `!dict`, `!list`, `!tuple`, `!dlist`, `!meta` and the core `!!` tags.

use std::fmt;

/// How a call node is materialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// Called once per materialization; every reference gets the same object.
    Singleton,
    /// Called anew at every occurrence.
    Factory,
    /// `functools.partial` of the callable with the given arguments.
    Partial,
}

impl CallKind {
    /// The tag word (`singleton`, `factory`, `partial`).
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Singleton => "singleton",
            CallKind::Factory => "factory",
            CallKind::Partial => "partial",
        }
    }
}

/// What a callable spec names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Callable {
    /// A builtin such as `dict` or `pow`.
    Builtin(String),
    /// `module.sub:Attr.sub`.
    Module {
        /// Dotted module path.
        module: String,
        /// Dotted attribute path inside the module.
        attr: String,
    },
    /// `path/to/file.py:Attr` (relative paths resolve against the config's directory).
    File {
        /// Path of the Python file.
        path: String,
        /// Dotted attribute path inside the file's module.
        attr: String,
    },
}

impl fmt::Display for Callable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Callable::Builtin(name) => write!(f, "{name}"),
            Callable::Module { module, attr } => write!(f, "{module}:{attr}"),
            Callable::File { path, attr } => write!(f, "{path}:{attr}"),
        }
    }
}

/// Containers built as shared nodes by a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// `!dict`
    Dict,
    /// `!list`
    List,
    /// `!tuple`
    Tuple,
    /// `!dlist`
    DList,
}

/// YAML core tags (`!!str` and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Core {
    /// `!!str`
    Str,
    /// `!!int`
    Int,
    /// `!!float`
    Float,
    /// `!!bool`
    Bool,
    /// `!!null`
    Null,
    /// `!!map`
    Map,
    /// `!!seq`
    Seq,
}

/// A parsed tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagKind {
    /// A call node.
    Call {
        /// Singleton, factory or partial.
        kind: CallKind,
        /// What to call.
        callable: Callable,
        /// The `@name` suffix.
        name: Option<String>,
    },
    /// A container built as a node.
    Container(Container, Option<String>),
    /// `!var`
    Var,
    /// `!meta`
    Meta,
    /// A YAML core tag.
    Core(Core),
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

fn is_dotted(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_ident)
}

/// Parses a callable spec: `mod.sub:Attr`, `file.py:Attr`, `builtin`, or `mod.sub.Attr`.
pub fn parse_callable(spec: &str) -> Result<Callable, String> {
    let hint = "expected `module.path:Attr`, `path/to/file.py:Attr` or a builtin name";
    if let Some((left, attr)) = spec.rsplit_once(':') {
        if !is_dotted(attr) {
            return Err(format!(
                "bad attribute '{attr}' in callable '{spec}'; {hint}"
            ));
        }
        if left.ends_with(".py") || left.contains('/') {
            return Ok(Callable::File {
                path: left.to_string(),
                attr: attr.to_string(),
            });
        }
        if !is_dotted(left) {
            return Err(format!("bad module '{left}' in callable '{spec}'; {hint}"));
        }
        return Ok(Callable::Module {
            module: left.to_string(),
            attr: attr.to_string(),
        });
    }
    if is_ident(spec) {
        return Ok(Callable::Builtin(spec.to_string()));
    }
    match spec.rsplit_once('.') {
        Some((module, attr)) if is_dotted(module) && is_ident(attr) => Ok(Callable::Module {
            module: module.to_string(),
            attr: attr.to_string(),
        }),
        _ => Err(format!("bad callable '{spec}'; {hint}")),
    }
}

fn split_name(text: &str) -> Result<(&str, Option<String>), String> {
    match text.rsplit_once('@') {
        Some((rest, name)) if is_ident(name) => Ok((rest, Some(name.to_string()))),
        Some((_, name)) => Err(format!(
            "bad node name '@{name}': use letters, digits and '_'"
        )),
        None => Ok((text, None)),
    }
}

const KNOWN: &str = "!singleton:SPEC (alias !call), !factory:SPEC, !partial:SPEC (alias !lambda), \
                     !var, !dict, !list, !tuple, !dlist, !meta";

/// Parses a tag as the YAML parser reports it (`!singleton:dict@x`, `tag:yaml.org,2002:str`).
pub fn parse_tag(tag: &str) -> Result<TagKind, String> {
    if let Some(core) = tag.strip_prefix("tag:yaml.org,2002:") {
        let core = match core {
            "str" => Core::Str,
            "int" => Core::Int,
            "float" => Core::Float,
            "bool" => Core::Bool,
            "null" => Core::Null,
            "map" => Core::Map,
            "seq" => Core::Seq,
            other => return Err(format!("unsupported YAML tag '!!{other}'")),
        };
        return Ok(TagKind::Core(core));
    }
    let Some(body) = tag.strip_prefix('!') else {
        return Err(format!("unknown tag '{tag}'; known tags: {KNOWN}"));
    };
    let (word, rest) = match body.split_once(':') {
        Some((w, r)) => (w, Some(r)),
        None => match body.split_once('@') {
            Some((w, _)) => (w, None),
            None => (body, None),
        },
    };
    let call_kind = match word {
        "singleton" | "call" => Some(CallKind::Singleton),
        "factory" => Some(CallKind::Factory),
        "partial" | "lambda" => Some(CallKind::Partial),
        _ => None,
    };
    if let Some(kind) = call_kind {
        let Some(rest) = rest else {
            return Err(format!(
                "tag '{tag}' needs a callable: write `!{word}:module.path:Callable`"
            ));
        };
        let (spec, name) = split_name(rest)?;
        let callable = parse_callable(spec)?;
        return Ok(TagKind::Call {
            kind,
            callable,
            name,
        });
    }
    let (_, name) = split_name(body)?;
    let container = match word {
        "dict" => Container::Dict,
        "list" => Container::List,
        "tuple" => Container::Tuple,
        "dlist" => Container::DList,
        "var" if name.is_none() && rest.is_none() => return Ok(TagKind::Var),
        "meta" if name.is_none() && rest.is_none() => return Ok(TagKind::Meta),
        _ => return Err(format!("unknown tag '{tag}'; known tags: {KNOWN}")),
    };
    if rest.is_some_and(|r| !r.is_empty() && !r.starts_with('@')) {
        return Err(format!("tag '{tag}' takes no callable"));
    }
    Ok(TagKind::Container(container, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_tags() {
        assert_eq!(
            parse_tag("!singleton:torch.nn:Linear@proj").unwrap(),
            TagKind::Call {
                kind: CallKind::Singleton,
                callable: Callable::Module {
                    module: "torch.nn".into(),
                    attr: "Linear".into()
                },
                name: Some("proj".into()),
            }
        );
        assert!(matches!(
            parse_tag("!lambda:pow").unwrap(),
            TagKind::Call { kind: CallKind::Partial, callable: Callable::Builtin(ref b), name: None } if b == "pow"
        ));
        assert!(matches!(
            parse_tag("!factory:./models/m.py:Model.build").unwrap(),
            TagKind::Call {
                callable: Callable::File { .. },
                ..
            }
        ));
        assert!(matches!(
            parse_tag("!call:os.path.join").unwrap(),
            TagKind::Call {
                callable: Callable::Module { .. },
                ..
            }
        ));
    }

    #[test]
    fn other_tags_and_errors() {
        assert_eq!(parse_tag("!var").unwrap(), TagKind::Var);
        assert_eq!(
            parse_tag("!dict@d").unwrap(),
            TagKind::Container(Container::Dict, Some("d".into()))
        );
        assert_eq!(
            parse_tag("!dlist").unwrap(),
            TagKind::Container(Container::DList, None)
        );
        assert_eq!(
            parse_tag("tag:yaml.org,2002:str").unwrap(),
            TagKind::Core(Core::Str)
        );
        assert!(parse_tag("!singleton")
            .unwrap_err()
            .contains("needs a callable"));
        assert!(parse_tag("!foo").unwrap_err().contains("unknown tag"));
        assert!(parse_tag("!singleton:a b:c").is_err());
        assert!(parse_tag("!singleton:dict@1x").is_err());
    }
}

//! A YAML tree that keeps what serde_yaml drops: tags as written, anchors (so aliases can share
//! one graph node) and the line of every node (so errors can point at it).

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::error::{ConfigError, Location, Result};
use crate::limits;

/// One YAML node with its tag, anchor id (0: none) and 1-based line.
#[derive(Debug, Clone, PartialEq)]
pub struct YNode {
    /// What the node holds.
    pub kind: YKind,
    /// The tag as written, `!` included (`!!str` is spelled `tag:yaml.org,2002:str`).
    pub tag: Option<String>,
    /// Anchor id from the parser; aliases refer to it. 0 when the node has no anchor.
    pub anchor: usize,
    /// 1-based line of the node's start.
    pub line: usize,
}

/// The content of a [`YNode`].
#[derive(Debug, Clone, PartialEq)]
pub enum YKind {
    /// A scalar and whether it was plain (unquoted), which decides its type.
    Scalar {
        /// Text of the scalar.
        value: String,
        /// Unquoted scalars resolve to null, bools, ints and floats.
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<YNode>),
    /// A mapping, duplicates and merge keys kept in order.
    Map(Vec<(YNode, YNode)>),
    /// A reference to the anchored node with this id.
    Alias(usize),
}

/// A plain scalar's resolved value (YAML 1.2 core schema).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// `null`, `~`, empty.
    Null,
    /// `true` / `false` in any of the three spellings.
    Bool(bool),
    /// Decimal, `0x`, `0o` integers; `_` separators allowed.
    Int(i64),
    /// Floats, `.inf`, `.nan`.
    Float(f64),
    /// Everything else.
    Str(String),
}

impl Scalar {
    /// Whether the scalar stays a string.
    pub fn is_str(&self) -> bool {
        matches!(self, Scalar::Str(_))
    }
}

/// Resolves a plain (unquoted) scalar by the YAML 1.2 core schema.
pub fn resolve_plain(s: &str) -> Scalar {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Scalar::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        _ => {}
    }
    let clean: String = s.chars().filter(|c| *c != '_').collect();
    let starts_ok = s.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.');
    if !starts_ok || s.ends_with('_') {
        return Scalar::Str(s.to_string());
    }
    let (sign, digits) = match clean.strip_prefix('-') {
        Some(d) => (-1i64, d),
        None => (1, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let radix = [("0x", 16), ("0o", 8)]
        .iter()
        .find_map(|(p, r)| digits.strip_prefix(p).map(|d| (d, *r)));
    if let Some((d, r)) = radix {
        if let Ok(v) = i64::from_str_radix(d, r) {
            return Scalar::Int(sign * v);
        }
        return Scalar::Str(s.to_string());
    }
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        if let Ok(v) = clean.parse::<i64>() {
            return Scalar::Int(v);
        }
    }
    let floaty = digits.chars().any(|c| c.is_ascii_digit())
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'));
    if floaty {
        if let Ok(v) = clean.parse::<f64>() {
            return Scalar::Float(v);
        }
    }
    Scalar::Str(s.to_string())
}

fn tag_text(tag: Option<Tag>) -> Option<String> {
    tag.map(|t| format!("{}{}", t.handle, t.suffix))
}

enum Frame {
    Seq(YNode, Vec<YNode>),
    Map(YNode, Vec<(YNode, YNode)>, Option<YNode>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<YNode>,
}

impl Builder {
    fn push_value(&mut self, node: YNode) {
        match self.stack.last_mut() {
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, key)) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => *key = Some(node),
            },
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let head = |anchor, tag| YNode {
            kind: YKind::Alias(0),
            tag: tag_text(tag),
            anchor,
            line: mark.line(),
        };
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let mut node = head(anchor, tag);
                node.kind = YKind::Scalar {
                    value,
                    plain: style == TScalarStyle::Plain,
                };
                self.push_value(node);
            }
            Event::Alias(id) => {
                let mut node = head(0, None);
                node.kind = YKind::Alias(id);
                self.push_value(node);
            }
            Event::SequenceStart(anchor, tag) => {
                self.stack.push(Frame::Seq(head(anchor, tag), vec![]))
            }
            Event::MappingStart(anchor, tag) => {
                self.stack.push(Frame::Map(head(anchor, tag), vec![], None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq(mut n, items)) => {
                        n.kind = YKind::Seq(items);
                        n
                    }
                    Some(Frame::Map(mut n, entries, _)) => {
                        n.kind = YKind::Map(entries);
                        n
                    }
                    None => return,
                };
                self.push_value(node);
            }
            _ => {}
        }
    }
}

/// Parses the first document of `text`; `None` for an empty document. `file` names the text in
/// errors. Collections nested deeper than [`limits::max_depth`] are refused (the tree and
/// everything that walks it recursively stays within the stack).
pub fn parse(text: &str, file: Option<&str>) -> Result<Option<YNode>> {
    let max_depth = limits::max_depth();
    let mut builder = Builder::default();
    let location = |line| Location {
        file: file.map(str::to_string),
        line,
    };
    // The parser asserts internal invariants; a malformed input must become an error, not a panic.
    // Events are pulled one by one (yaml-rust2's `load` recurses once per nesting level).
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut parser = Parser::new_from_str(text);
        loop {
            let (ev, mark) = parser.next_token()?;
            match ev {
                Event::StreamEnd | Event::DocumentEnd => break,
                Event::SequenceStart(..) | Event::MappingStart(..)
                    if builder.stack.len() >= max_depth =>
                {
                    return Ok(Err(mark.line()));
                }
                ev => builder.on_event(ev, mark),
            }
            if builder.root.is_some() && builder.stack.is_empty() {
                break;
            }
        }
        Ok(Ok(std::mem::take(&mut builder.root)))
    }));
    match outcome {
        Ok(Ok(Ok(root))) => Ok(root),
        Ok(Ok(Err(line))) => Err(ConfigError::Yaml {
            location: location(Some(line)),
            key: None,
            message: limits::exceeded("YAML nesting", max_depth, limits::DEPTH_VAR),
        }),
        Ok(Err(err)) => {
            let err: yaml_rust2::ScanError = err;
            let line = err.marker().line();
            let context = text
                .lines()
                .nth(line.saturating_sub(1))
                .map(|l| {
                    let shown: String = l.chars().take(160).collect();
                    let more = if shown.len() < l.len() { "..." } else { "" };
                    format!("\n  | {shown}{more}")
                })
                .unwrap_or_default();
            Err(ConfigError::Yaml {
                location: location(Some(line)),
                key: None,
                message: format!(
                    "{} (column {}){context}",
                    err.info(),
                    err.marker().col() + 1
                ),
            })
        }
        Err(_) => Err(ConfigError::Yaml {
            location: location(None),
            key: None,
            message: "the YAML parser failed on this input".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema() {
        assert_eq!(resolve_plain("1_000"), Scalar::Int(1000));
        assert_eq!(resolve_plain("-0x10"), Scalar::Int(-16));
        assert_eq!(resolve_plain("1e-3"), Scalar::Float(1e-3));
        assert_eq!(resolve_plain(".5"), Scalar::Float(0.5));
        assert_eq!(resolve_plain("yes"), Scalar::Str("yes".into()));
        assert_eq!(resolve_plain("1.2.3"), Scalar::Str("1.2.3".into()));
        assert_eq!(resolve_plain("~"), Scalar::Null);
        assert_eq!(resolve_plain("e5"), Scalar::Str("e5".into()));
        assert_eq!(resolve_plain("-"), Scalar::Str("-".into()));
    }

    #[test]
    fn keeps_tags_anchors_lines() {
        let root = parse("a: &x !singleton:dict@n\n  k: 1\nb: *x\n", None)
            .unwrap()
            .unwrap();
        let YKind::Map(entries) = root.kind else {
            panic!()
        };
        let (_, a) = &entries[0];
        assert_eq!(a.tag.as_deref(), Some("!singleton:dict@n"));
        assert!(a.anchor > 0);
        // A block mapping starts at its first key.
        assert_eq!(a.line, 2);
        assert_eq!(entries[1].1.kind, YKind::Alias(a.anchor));
    }

    #[test]
    fn syntax_error_has_line() {
        let err = parse("a: 1\nb: [1,\n", Some("f.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f.yaml:"), "{err}");
    }
}
